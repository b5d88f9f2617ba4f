//! Middleware around every route: refuse oversized bodies up front, turn every
//! error that did not come out as our JSON body (poem's routing and parameter
//! errors, panics) into `{"code","message","field"}`, and trace each request.

use std::time::Instant;

use poem::http::StatusCode;
use poem::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::error::ParseParamError;

use crate::body::MAX_BODY_BYTES;
use crate::error::{ApiError, ErrorBody, code_for_status};

/// Wraps `endpoint` in the error mapping, size limit and tracing.
pub async fn around<E: Endpoint>(endpoint: E, request: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();

    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // A NUL character in the path or the query cannot be stored (nor is it
    // in any name the platform gives): refused before it reaches a handler.
    let nul = request
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().to_ascii_lowercase().contains("%00"));
    // git's routes keep their own limits and answer git in plain text
    // (it shows a text/plain error body to its user).
    let git = path.starts_with("/git/");
    let response = if git {
        match endpoint.call(request).await {
            Ok(response) => response.into_response(),
            Err(err) => err.into_response(),
        }
    } else if declared.is_some_and(|len| len > MAX_BODY_BYTES)
        // A moving database's dump keeps its own limit.
        && !crate::moves::is_dump_path(&path)
    {
        ApiError::payload_too_large().into_response()
    } else if nul {
        ApiError::invalid_request(
            "a NUL character (%00) cannot be stored; leave it out of the address",
        )
        .into_response()
    } else {
        match endpoint.call(request).await {
            // Boxed: a request that waits in the endpoint (an agent's
            // long-poll, one per agent) then holds no room for this step.
            Ok(response) => Box::pin(json_error_body(response.into_response())).await,
            Err(err) => error_response(err, &path),
        }
    };

    let status = response.status().as_u16();
    crate::metrics::record(
        method.as_str(),
        &path,
        status,
        started.elapsed().as_secs_f64(),
    );
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %path, status, elapsed_ms, "request failed");
    } else {
        tracing::debug!(%method, %path, status, elapsed_ms, "request");
    }
    Ok(response)
}

/// Turns any `poem::Error` of a request for `path` into a response with our JSON body.
pub fn error_response(err: poem::Error, path: &str) -> Response {
    // Query and header parameters keep their names. Path parameters are
    // renamed `param0`… inside poem-openapi (and their errors do not always
    // downcast), so for those the message says what is wrong instead.
    let field = err
        .downcast_ref::<ParseParamError>()
        .map(|e| e.name.to_string());
    let message = err.to_string();
    if message == "authorization error" {
        // The agents' endpoints take a node credential, not a bearer token.
        let wanted = if path.starts_with("/api/internal/") {
            "send X-SkyPanel-Node-Credential: <credential> (the spn_… credential an agent gets at registration)"
        } else {
            "send Authorization: Bearer <token> (an access token from /api/auth/login or an API token)"
        };
        return json_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            wanted.into(),
            None,
        );
    }
    let message = match message.strip_prefix("failed to parse path `") {
        Some(rest) => format!(
            "a path parameter is not valid: {}",
            rest.split_once("`: ").map_or(rest, |(_, reason)| reason)
        ),
        None => message,
    };
    let response = err.into_response();
    if is_json(&response) {
        return response;
    }
    let status = response.status();
    let message = if status.is_server_error() {
        tracing::error!(error = %message, "unhandled error");
        "internal error".to_string()
    } else {
        message
    };
    json_response(status, code_for_status(status), message, field)
}

/// An error status whose body is not JSON (poem's 404 and 405 arrive like
/// this) gets our JSON body, with its text as the message.
async fn json_error_body(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let text = response.into_body().into_string().await.unwrap_or_default();
    let message = if text.trim().is_empty() || status.is_server_error() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text.trim().to_string()
    };
    json_response(status, code_for_status(status), message, None)
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn json_response(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<String>,
) -> Response {
    let body = ErrorBody {
        code: code.to_string(),
        message,
        field,
    };
    let json =
        serde_json::to_string(&body).unwrap_or_else(|_| "{\"code\":\"internal_error\"}".into());
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(json)
}

/// The answer to a panic inside a handler: a plain 500 with our body.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error".to_string(),
        None,
    )
}
