//! The agents' security scheme: a per-node credential in its own header.
//! Customer tokens never authenticate here, and node credentials never
//! authenticate on customer endpoints (they are neither JWTs nor `spt_` tokens).

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::ApiKey;
use skypanel_domain::credentials::token_digest;

use crate::error::ApiError;
use crate::state::AppState;

/// `X-SkyPanel-Node-Credential: spn_…`, the credential a node got at registration.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_in = "header",
    key_name = "X-SkyPanel-Node-Credential",
    checker = "authenticate_node"
)]
pub struct NodeAuth(pub i64);

impl NodeAuth {
    /// The calling node, which must be `node_id` (a node speaks only for itself).
    pub fn require(&self, node_id: i64) -> Result<i64, ApiError> {
        if self.0 == node_id {
            Ok(node_id)
        } else {
            Err(ApiError::forbidden(
                "this credential belongs to another node",
            ))
        }
    }
}

async fn authenticate_node(request: &Request, key: ApiKey) -> poem::Result<i64> {
    let Some(state) = request.data::<AppState>() else {
        return Err(ApiError::internal("AppState missing from request data").into());
    };
    let mut conn = state.store().conn().await.map_err(ApiError::from)?;
    skypanel_store::agents::authenticate(&mut conn, &token_digest(&key.key))
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::unauthorized("unknown or expired node credential").into())
}
