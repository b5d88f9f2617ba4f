//! `JsonBody<T>`: the JSON request body extractor. It documents `T`'s schema in
//! the OpenAPI spec like poem-openapi's `Json`, but parses with serde and
//! reports errors as our JSON error body, naming the field at fault:
//! malformed JSON → 400 `invalid_json`; not an object, a wrong type or a
//! missing field → 422 `invalid` (with `field` when one is at fault); more
//! than [`MAX_BODY_BYTES`] → 413.

use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body accepted (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body of type `T`. Deliberately not `Debug`: bodies carry
/// passwords, tokens and variable values.
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = read_limited(body).await?;
        parse(&bytes).map(JsonBody).map_err(Into::into)
    }
}

/// The body's bytes, at most [`MAX_BODY_BYTES`].
async fn read_limited(body: &mut RequestBody) -> Result<Vec<u8>, ApiError> {
    let bytes = body
        .take()
        .map_err(|_| {
            ApiError::bad_request("bad_request", "the request body was already read", None)
        })?
        .into_bytes_limit(MAX_BODY_BYTES)
        .await
        .map_err(|err| match err {
            poem::error::ReadBodyError::PayloadTooLarge => ApiError::payload_too_large(),
            other => ApiError::bad_request(
                "bad_request",
                format!("cannot read the request body: {other}"),
                None,
            ),
        })?;
    Ok(bytes.to_vec())
}

/// A JSON body kept as the bytes that came (a signature covers them);
/// `T`'s schema documents it, and [`parse`] reads it once it is trusted.
pub struct JsonBytes<T> {
    pub bytes: Vec<u8>,
    _schema: std::marker::PhantomData<T>,
}

impl<T: Type> Payload for JsonBytes<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        <JsonBody<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type> ParsePayload for JsonBytes<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(JsonBytes {
            bytes: read_limited(body).await?,
            _schema: std::marker::PhantomData,
        })
    }
}

/// Parses `bytes` as `T`, classifying failures as described in the module docs.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON object",
            None,
        ));
    }
    // Every body of this API is an object; serde would also read a struct
    // from an array, and name fields `[0]` in its errors.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid_request(
            "the request body must be a JSON object",
        ));
    }
    refuse_nul(bytes)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::bad_request(
                "invalid_json",
                format!("the request body is not valid JSON: {inner}"),
                None,
            );
        }
        let message = strip_position(&inner.to_string());
        let field = if path == "." {
            missing_field(&message).or_else(|| unknown_field(&message))
        } else {
            Some(path)
        };
        match field {
            Some(field) => ApiError::invalid(&field, format!("{field}: {message}")),
            None => ApiError::invalid_request(message),
        }
    })?;
    deserializer.end().map_err(|err| {
        ApiError::bad_request(
            "invalid_json",
            format!("the request body is not valid JSON: {err}"),
            None,
        )
    })?;
    Ok(value)
}

/// serde's "unknown field `name`, expected …" names the field only in the message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// PostgreSQL cannot store a NUL character in text: a string carrying one
/// is refused here, naming where it is, before it can fail deeper down.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(()); // the parse below says what is wrong
    };
    fn find(value: &serde_json::Value, path: &str) -> Option<String> {
        match value {
            serde_json::Value::String(s) if s.contains('\0') => Some(path.to_string()),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| find(v, &format!("{path}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.contains('\0') {
                    Some(at)
                } else {
                    find(v, &at)
                }
            }),
            _ => None,
        }
    }
    match find(&value, "") {
        Some(field) => Err(ApiError::invalid(
            &field,
            format!("{field}: a NUL character cannot be stored"),
        )),
        None => Ok(()),
    }
}

/// serde's "missing field `name`" names the field only in the message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// serde_json appends " at line 1 column 12"; the caller knows their body.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Both bodies are request objects checked for their content type first.
macro_rules! json_extractor {
    ($body:ident, $($bound:tt)+) => {
        impl<'a, T: $($bound)+> ApiExtractor<'a> for $body<T> {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                <Self as Payload>::register(registry);
            }

            fn request_meta() -> Option<MetaRequest> {
                Some(MetaRequest {
                    description: None,
                    content: vec![MetaMediaType {
                        content_type: <Self as Payload>::CONTENT_TYPE,
                        schema: <Self as Payload>::schema_ref(),
                    }],
                    required: true,
                })
            }

            async fn from_request(
                request: &'a Request,
                body: &mut RequestBody,
                _param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                match request.content_type() {
                    Some(content_type) if <Self as Payload>::check_content_type(content_type) => {
                        <Self as ParsePayload>::from_request(request, body).await
                    }
                    Some(other) => Err(ApiError::bad_request(
                        "unsupported_media_type",
                        format!("send the body as application/json, not {other}"),
                        None,
                    )
                    .into()),
                    None => Err(ApiError::bad_request(
                        "unsupported_media_type",
                        "send the body as application/json (Content-Type header missing)",
                        None,
                    )
                    .into()),
                }
            }
        }
    };
}

json_extractor!(JsonBody, Type + DeserializeOwned);
json_extractor!(JsonBytes, Type);

/// A JSON response body written by serde (not by poem-openapi's ToJSON), for
/// wire types shared with the agent, which reads them with serde: both sides
/// then agree to the byte. `T`'s schema still documents it.
pub struct JsonReply<T>(pub T);

impl<T: Type> Payload for JsonReply<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: serde::Serialize + Send> poem::IntoResponse for JsonReply<T> {
    fn into_response(self) -> poem::Response {
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => poem::Response::builder()
                .content_type("application/json")
                .body(bytes),
            Err(err) => poem::IntoResponse::into_response(ApiError::internal(err)),
        }
    }
}

impl<T: Type + serde::Serialize + Send> poem_openapi::ApiResponse for JsonReply<T> {
    fn meta() -> poem_openapi::registry::MetaResponses {
        poem_openapi::registry::MetaResponses {
            responses: vec![poem_openapi::registry::MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: <Self as Payload>::CONTENT_TYPE,
                    schema: <Self as Payload>::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)] // fields exist to be parsed
    struct Sample {
        name: String,
        port: Option<i32>,
        nested: Option<Nested>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)] // fields exist to be parsed
    struct Nested {
        count: i32,
    }

    fn err(json: &str) -> crate::error::ErrorBody {
        parse::<Sample>(json.as_bytes()).unwrap_err().body().clone()
    }

    #[test]
    fn malformed_json_is_400_without_field() {
        let body = err("{\"name\": ");
        assert_eq!(body.code, "invalid_json");
        assert_eq!(body.field, None);
        assert_eq!(err("").code, "invalid_json");
        assert_eq!(err("{\"name\":\"a\"} trailing").code, "invalid_json");
    }

    #[test]
    fn wrong_types_and_missing_fields_name_the_field() {
        let body = err(r#"{"name": "a", "port": "eighty"}"#);
        assert_eq!(
            (body.code.as_str(), body.field.as_deref()),
            ("invalid", Some("port"))
        );
        assert!(!body.message.contains("line"), "{}", body.message);
        let body = err(r#"{"port": 80}"#);
        assert_eq!(body.field.as_deref(), Some("name"));
        let body = err(r#"{"name": "a", "nested": {"count": true}}"#);
        assert_eq!(body.field.as_deref(), Some("nested.count"));
        let body = err("[1, 2]");
        assert_eq!((body.code.as_str(), body.field), ("invalid", None));
    }

    #[test]
    fn content_types() {
        assert!(JsonBody::<String>::check_content_type("application/json"));
        assert!(JsonBody::<String>::check_content_type(
            "application/json; charset=utf-8"
        ));
        assert!(JsonBody::<String>::check_content_type(
            "application/merge-patch+json"
        ));
        assert!(!JsonBody::<String>::check_content_type("text/plain"));
    }
}
