//! The agents' security scheme: a per-node credential in its own header.
//! Customer tokens never authenticate here, and node credentials never
//! authenticate on customer endpoints (they are neither JWTs nor `spt_` tokens).

use std::time::Duration;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::ApiKey;
use skypanel_domain::credentials::token_digest;

use super::remembered::Remembered;
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

impl NodeCaller {
    /// The calling node, which must be `node_id` (a node speaks only for itself).
    pub fn require(&self, node_id: i64) -> Result<i64, ApiError> {
        if self.node == node_id {
            Ok(node_id)
        } else {
            Err(ApiError::forbidden(
                "this credential belongs to another node",
            ))
        }
    }
}

impl NodeAuth {
    /// Whether the node called with a credential a rotation replaced (it has
    /// not taken up the new one: the answer of its rotation was lost).
    pub fn previous_credential(&self) -> bool {
        self.0.previous
    }

    /// The calling node, which must be `node_id` (see [`NodeCaller::require`]).
    pub fn require(&self, node_id: i64) -> Result<i64, ApiError> {
        self.0.require(node_id)
    }
}

/// How long a checked credential is answered from memory.
const REMEMBERED_FOR: Duration = Duration::from_secs(60);

/// Past this many remembered credentials the memory starts over (a bound,
/// far above any fleet: only credentials that authenticated are kept).
const MOST_REMEMBERED: usize = 100_000;

/// Node credentials that authenticated lately, by digest: an agent's
/// heartbeats and long-polls authenticate without a query. An entry lives
/// [`REMEMBERED_FOR`]; a rotation or the node's removal drops the node's
/// entries at once. A previous credential (within a rotation's grace) is
/// never remembered: it is looked up each time, so its expiry holds.
#[derive(Clone)]
pub struct NodeCredentials(Remembered<String, i64>);

impl Default for NodeCredentials {
    fn default() -> Self {
        Self(Remembered::new(REMEMBERED_FOR, MOST_REMEMBERED))
    }
}

impl NodeCredentials {
    /// Forgets every credential of `node` (rotated, or the node removed).
    /// Remembers a credential just issued to `node` (registration,
    /// rotation): the agent authenticates with it next, often thousands of
    /// agents at once after a fleet is set up.
    pub fn remember(&self, credential_digest: String, node: i64) {
        self.0.remember(credential_digest, node);
    }

    pub fn forget_node(&self, node: i64) {
        self.0.forget(|n| *n == node);
    }

    pub fn forget_all(&self) {
        self.0.forget(|_| true);
    }
}

/// The node whose credential a plain (non-OpenAPI) request carries in
/// [`NODE_CREDENTIAL_HEADER`] (an attached run's session).
pub async fn node_of(request: &Request) -> poem::Result<NodeCaller> {
    let key = request
        .headers()
        .get(NODE_CREDENTIAL_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("a node credential is needed"))?;
    authenticate_node(
        request,
        ApiKey {
            key: key.to_string(),
        },
    )
    .await
}

async fn authenticate_node(request: &Request, key: ApiKey) -> poem::Result<NodeCaller> {
    let Some(state) = request.data::<AppState>() else {
        return Err(ApiError::internal("AppState missing from request data").into());
    };
    Ok(authenticate(state, &key.key).await?)
}

/// The node `credential` belongs to (checked again on each ask of a lease
/// stream, so a rotated or removed credential stops working there too).
pub async fn authenticate(state: &AppState, credential: &str) -> Result<NodeCaller, ApiError> {
    let digest = token_digest(credential);
    if let Some(node) = state.node_credentials().0.get(&digest) {
        return Ok(NodeCaller {
            node,
            previous: false,
        });
    }
    // Boxed: the long-poll this authenticates keeps no room for the query.
    let found = Box::pin(async {
        let mut conn = state.store().conn().await?;
        skypanel_store::agents::authenticate(&mut conn, &digest).await
    })
    .await?;
    let (node, previous) =
        found.ok_or_else(|| ApiError::unauthorized("unknown or expired node credential"))?;
    if !previous {
        state.node_credentials().0.remember(digest, node);
    }
    Ok(NodeCaller { node, previous })
}
