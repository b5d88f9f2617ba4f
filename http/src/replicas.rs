//! `POST /api/internal/replicas/call`: another control-plane replica carries
//! a request for an actor this replica owns (`skypanel_actors::replicas`):
//! the call is checked for the replicas' signature, run on the local actor,
//! and answered (a refusal included) as JSON. Not part of the public API.

use poem::web::Json;
use poem::{Body, IntoResponse, Request, Response, handler};
use skypanel_actors::replicas::{Call, SIGNATURE_HEADER, TIME_HEADER};

use crate::body::MAX_BODY_BYTES;
use crate::error::ApiError;
use crate::state::AppState;

#[handler]
pub async fn call(request: &Request, body: Body) -> poem::Result<Response> {
    let Some(state) = request.data::<AppState>() else {
        return Err(ApiError::internal("AppState missing from request data").into());
    };
    let orchestrator = state.orchestrator()?;
    let body = body
        .into_bytes_limit(2 * MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large("a replica call is at most 2 MiB"))?;
    let header = |name: &str| request.header(name).unwrap_or_default().to_string();
    if !orchestrator.verify_call(&header(TIME_HEADER), &header(SIGNATURE_HEADER), &body) {
        return Err(ApiError::unauthorized(
            "a replica call needs the replicas' signature, made within a minute",
        )
        .into());
    }
    let call: Call = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("not a replica call: {e}"), None)
    })?;
    Ok(Json(orchestrator.serve(call).await).into_response())
}
