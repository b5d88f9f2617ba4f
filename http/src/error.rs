//! `ApiError`: the one error type of the HTTP layer, and the only place where
//! errors of the layers below become HTTP statuses. Every error body is
//! `{"code", "message", "field"}`; internal errors are logged here and reach the
//! caller as a bare "internal error".

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use skypanel_domain::Invalid;
use skypanel_domain::lifecycle::IllegalTransition;

/// The body of every 4xx and 5xx answer.
#[derive(Object, Debug, Clone, serde::Serialize)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `not_found` or `invalid`.
    pub code: String,
    /// A sentence a person can act on.
    pub message: String,
    /// The input field the error concerns, when there is one.
    #[oai(nullable)]
    pub field: Option<String>,
}

#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request is malformed (not JSON, a parameter of the wrong form).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Credentials are missing, expired or wrong.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The credentials are fine but do not allow this.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource, or it belongs to someone else.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with the current state (a taken name, an illegal transition, a resource in use).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body is larger than 1 MiB.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// A field breaks a rule; `field` names it.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many requests from this address or account; `Retry-After` says
    /// how many seconds to wait.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Something failed on our side; the details are in the server log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (the database) is not reachable right now.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

pub type ApiResult<T> = Result<T, ApiError>;

fn body(code: &str, message: impl Into<String>, field: Option<&str>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.to_string(),
        message: message.into(),
        field: field.map(str::to_string),
    })
}

impl ApiError {
    pub fn bad_request(code: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self::BadRequest(body(code, message, field))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(body("unauthorized", message, None))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(body("forbidden", message, None))
    }

    /// A 403 with its own code (e.g. `account_suspended`).
    pub fn forbidden_because(code: &str, message: impl Into<String>) -> Self {
        Self::Forbidden(body(code, message, None))
    }

    /// `what` names the resource: "application", "plan" ...
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(body("not_found", format!("{what} not found"), None))
    }

    pub fn conflict(code: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self::Conflict(body(code, message, field))
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Unprocessable(body("invalid", message, Some(field)))
    }

    /// A 422 about the request as a whole rather than one field.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::Unprocessable(body("invalid", message, None))
    }

    pub fn unavailable(code: &str, message: impl Into<String>) -> Self {
        Self::Unavailable(body(code, message, None))
    }

    /// A 413 that says what the limit is.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::PayloadTooLarge(body("payload_too_large", message, None))
    }

    pub fn payload_too_large() -> Self {
        Self::PayloadTooLarge(body(
            "payload_too_large",
            "the request body is larger than 1 MiB",
            None,
        ))
    }

    /// A 429 `rate_limited`: try again in `retry_after` seconds.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::TooManyRequests(
            body(
                "rate_limited",
                format!("too many requests; try again in {retry_after} s"),
                None,
            ),
            retry_after,
        )
    }

    /// Logs `err` and answers a 500 that reveals nothing of it.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::Internal(body("internal_error", "internal error", None))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn body(&self) -> &ErrorBody {
        match self {
            Self::BadRequest(b)
            | Self::Unauthorized(b)
            | Self::Forbidden(b)
            | Self::NotFound(b)
            | Self::Conflict(b)
            | Self::PayloadTooLarge(b)
            | Self::Unprocessable(b)
            | Self::TooManyRequests(b, _)
            | Self::Internal(b)
            | Self::Unavailable(b) => b,
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(err: Invalid) -> Self {
        Self::Unprocessable(body("invalid", err.message, err.field.as_deref()))
    }
}

impl From<IllegalTransition> for ApiError {
    fn from(err: IllegalTransition) -> Self {
        Self::conflict("illegal_state", err.to_string(), None)
    }
}

impl From<skypanel_store::Error> for ApiError {
    fn from(err: skypanel_store::Error) -> Self {
        use skypanel_store::Error as E;
        match err {
            E::NotFound => Self::not_found("resource"),
            E::Conflict { field, message } => Self::conflict("conflict", message, field),
            E::Unavailable(reason) => {
                tracing::error!(%reason, "database pool unavailable");
                Self::unavailable(
                    "unavailable",
                    "the database is not reachable, try again shortly",
                )
            }
            E::Fenced { shard } => {
                tracing::warn!(shard, "a write fenced: its shard moved to another replica");
                Self::unavailable(
                    "unavailable",
                    "the platform is moving this resource between its servers; try again shortly",
                )
            }
            E::Stale => Self::conflict(
                "conflict",
                "the resource changed at the same moment; try again",
                None,
            ),
            other => Self::internal(other),
        }
    }
}

impl From<skypanel_actors::Error> for ApiError {
    fn from(err: skypanel_actors::Error) -> Self {
        use skypanel_actors::Error as E;
        match err {
            E::NotFound => Self::not_found("resource"),
            E::Illegal(illegal) => illegal.into(),
            E::Invalid(invalid) => invalid.into(),
            E::NoCapacity(message) => Self::conflict("no_node_available", message, None),
            E::Conflict(message) => Self::conflict("conflict", message, None),
            E::Unavailable(message) => {
                tracing::error!(%message, "actor unavailable");
                Self::unavailable(
                    "unavailable",
                    "the platform is busy or restarting; try again shortly",
                )
            }
            E::Store(store) => store.into(),
            E::Refused {
                code,
                message,
                field,
            } => Self::conflict(&code, message, field.as_deref()),
        }
    }
}

/// Turns an actor's `NotFound` into a 404 that names the resource.
pub trait ActorNotFound<T> {
    fn or_not_found(self, what: &str) -> ApiResult<T>;
}

impl<T> ActorNotFound<T> for Result<T, skypanel_actors::Error> {
    fn or_not_found(self, what: &str) -> ApiResult<T> {
        self.map_err(|err| match err {
            skypanel_actors::Error::NotFound => ApiError::not_found(what),
            other => other.into(),
        })
    }
}

/// Turns a store `NotFound` into a 404 that names the resource.
pub trait OrNotFound<T> {
    fn or_not_found(self, what: &str) -> ApiResult<T>;
}

impl<T> OrNotFound<T> for Result<T, skypanel_store::Error> {
    fn or_not_found(self, what: &str) -> ApiResult<T> {
        self.map_err(|err| match err {
            skypanel_store::Error::NotFound => ApiError::not_found(what),
            other => other.into(),
        })
    }
}

/// A stable code for a status whose error did not come from [`ApiError`].
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        409 => "conflict",
        411 => "length_required",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "invalid",
        429 => "rate_limited",
        500..=599 => "internal_error",
        _ => "error",
    }
}
