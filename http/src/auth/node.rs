//! The agents' security scheme: a per-node credential in its own header.
//! Customer tokens never authenticate here, and node credentials never
//! authenticate on customer endpoints (they are neither JWTs nor `spt_` tokens).

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::ApiKey;
use skypanel_domain::credentials::token_digest;

use crate::error::ApiError;
use crate::state::AppState;

/// The header agents send their credential in.
pub const NODE_CREDENTIAL_HEADER: &str = "X-SkyPanel-Node-Credential";

/// `X-SkyPanel-Node-Credential: spn_…`, the credential a node got at registration.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_in = "header",
    key_name = "X-SkyPanel-Node-Credential",
    checker = "authenticate_node"
)]
pub struct NodeAuth(pub NodeCaller);

/// Who called: a node, and whether with its previous credential (one that a
/// rotation replaced, within its grace period).
pub struct NodeCaller {
    pub node: i64,
    pub previous: bool,
}

impl NodeAuth {
    /// Whether the node called with a credential a rotation replaced (it has
    /// not taken up the new one: the answer of its rotation was lost).
    pub fn previous_credential(&self) -> bool {
        self.0.previous
    }

    /// The calling node, which must be `node_id` (a node speaks only for itself).
    pub fn require(&self, node_id: i64) -> Result<i64, ApiError> {
        if self.0.node == node_id {
            Ok(node_id)
        } else {
            Err(ApiError::forbidden(
                "this credential belongs to another node",
            ))
        }
    }
}

async fn authenticate_node(request: &Request, key: ApiKey) -> poem::Result<NodeCaller> {
    let Some(state) = request.data::<AppState>() else {
        return Err(ApiError::internal("AppState missing from request data").into());
    };
    let mut conn = state.store().conn().await.map_err(ApiError::from)?;
    skypanel_store::agents::authenticate(&mut conn, &token_digest(&key.key))
        .await
        .map_err(ApiError::from)?
        .map(|(node, previous)| NodeCaller { node, previous })
        .ok_or_else(|| ApiError::unauthorized("unknown or expired node credential").into())
}
