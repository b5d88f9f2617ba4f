//! `/api/admin/paas/nodes`: registering worker nodes and managing them, admin only.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use skypanel_domain::Invalid;
use skypanel_domain::credentials::{REGISTRATION_TOKEN_PREFIX, generate_token, token_digest};
use skypanel_domain::lifecycle::{NodeEvent, node_transition};
use skypanel_domain::names::{normalize_host_address, normalize_hostname, validate_region};
use skypanel_store::nodes::{self, NodeChanges};
use skypanel_store::wakeups::Forget;

use super::{Audit, Created, NoContent, Tag};
use crate::auth::AdminAuth;
use crate::body::JsonBody;
use crate::dto::nodes::*;
use crate::error::{ApiResult, OrNotFound};
use crate::state::AppState;

pub struct AdminNodesApi {
    pub state: AppState,
}

/// A node name: hostname rules (`worker-1`, `fra1.nodes.example.com`).
fn node_name(name: &str) -> Result<String, Invalid> {
    normalize_hostname("name", name).map_err(|_| {
        Invalid::new(
            "name",
            "a node name has letters, digits, hyphens and dots, like worker-1",
        )
    })
}

/// What `part` of a percentage `used` is of `total`, or 0 when the total is unknown.
fn percent(used: i32, total: i32) -> f64 {
    if total <= 0 {
        0.0
    } else {
        (f64::from(used) * 1000.0 / f64::from(total)).round() / 10.0
    }
}

/// The shell command that installs the agent on a node. The token is not in
/// it: the script asks for it (or reads it from its standard input), so that
/// it shows neither in `ps` nor in the shell's history.
pub fn install_command(public_url: &str) -> String {
    format!("sudo ./ops/install-agent.sh {public_url}")
}

#[OpenApi(prefix_path = "/admin/paas/nodes", tag = "Tag::AdminNodes")]
impl AdminNodesApi {
    /// List every worker node
    #[oai(path = "/", method = "get", operation_id = "adminListNodes")]
    async fn list(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<NodeView>>> {
        let mut conn = self.state.store().conn().await?;
        Ok(Json(
            nodes::list(&mut conn)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// Register a node and get its one-time agent token
    ///
    /// The node stays `pending` until its agent registers with the token; the
    /// answer carries the exact command to run on the node.
    #[oai(
        path = "/register",
        method = "post",
        operation_id = "adminRegisterNode"
    )]
    async fn register(
        &self,
        request: &Request,
        auth: AdminAuth,
        body: JsonBody<RegisterNodeRequest>,
    ) -> ApiResult<Created<NodeRegistration>> {
        let admin = &auth.0;
        let b = body.0;
        let name = node_name(&b.name)?;
        let region = b.region.trim().to_string();
        validate_region("region", &region)?;
        let host = normalize_host_address(&b.host_address)?;
        let token = generate_token(REGISTRATION_TOKEN_PREFIX);
        let ttl = chrono::Duration::from_std(self.state.settings().registration_ttl)
            .unwrap_or(chrono::Duration::hours(24));
        let expires_at = chrono::Utc::now() + ttl;
        let mut conn = self.state.store().conn().await?;
        let node = nodes::create(
            &mut conn,
            &name,
            &region,
            &host,
            &token_digest(&token),
            expires_at,
        )
        .await?;
        Audit::by(request, admin.user_id, "node.register")
            .on("node", node.id)
            .with(serde_json::json!({"name": name, "region": region}))
            .write(&mut conn)
            .await;
        Ok(Created::Created(Json(NodeRegistration {
            node_id: node.id,
            install_command: install_command(&self.state.settings().public_url),
            registration_token: token,
            expires_at,
        })))
    }

    /// Update a node's configuration
    ///
    /// `disabled: true` keeps the scheduler away from the node; `false` brings
    /// it back (offline until its next heartbeat, or pending if it never registered).
    #[oai(path = "/:id", method = "put", operation_id = "adminUpdateNode")]
    async fn update(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
        body: JsonBody<UpdateNodeRequest>,
    ) -> ApiResult<Json<NodeView>> {
        let admin = &auth.0;
        let b = body.0;
        let mut conn = self.state.store().conn().await?;
        let current = nodes::get(&mut conn, id.0).await.or_not_found("node")?;
        let event = b.disabled.map(|disabled| {
            if disabled {
                NodeEvent::Disable
            } else {
                NodeEvent::Enable {
                    registered: current.credential_issued_at.is_some(),
                }
            }
        });
        let now = current.status()?;
        let status = event.and_then(|e| node_transition(now, e));
        let region = match b.region {
            Some(region) => {
                let region = region.trim().to_string();
                validate_region("region", &region)?;
                Some(region)
            }
            None => None,
        };
        let changes = NodeChanges {
            name: b.name.map(|n| node_name(&n)).transpose()?,
            region,
            host_address: b
                .host_address
                .map(|h| normalize_host_address(&h))
                .transpose()?,
            status: status.map(|s| s.as_str().to_string()),
        };
        let node = nodes::update(&mut conn, id.0, &changes)
            .await
            .or_not_found("node")?;
        if node.credential_issued_at.is_some() {
            self.state.orchestrator()?.node_changed(node.id).await?;
        }
        Audit::by(request, admin.user_id, "node.update")
            .on("node", node.id)
            .with(serde_json::json!({"status": node.status}))
            .write(&mut conn)
            .await;
        Ok(Json(node.into()))
    }

    /// Remove a node
    ///
    /// A node that still hosts applications or databases answers 409.
    #[oai(path = "/:id", method = "delete", operation_id = "adminDeleteNode")]
    async fn delete(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
    ) -> ApiResult<NoContent> {
        let admin = &auth.0;
        let mut conn = self.state.store().conn().await?;
        nodes::delete(&mut conn, id.0).await.or_not_found("node")?;
        self.state.forget(&mut conn, Forget::Node(id.0)).await;
        self.state.orchestrator()?.node_removed(id.0).await;
        Audit::by(request, admin.user_id, "node.delete")
            .on("node", id.0)
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }

    /// A node's capacity, usage and reservations
    #[oai(
        path = "/:id/metrics",
        method = "get",
        operation_id = "adminNodeMetrics"
    )]
    async fn metrics(&self, _auth: AdminAuth, id: Path<i64>) -> ApiResult<Json<NodeMetrics>> {
        let mut conn = self.state.store().conn().await?;
        let node = nodes::get(&mut conn, id.0).await.or_not_found("node")?;
        let capacity = skypanel_store::reports::node_capacity_of(&mut conn, node.id).await?;
        Ok(Json(NodeMetrics {
            cpu_used_percent: percent(node.cpu_used, node.cpu_total),
            memory_used_percent: percent(node.memory_used, node.memory_total),
            disk_used_percent: percent(node.disk_used, node.disk_total),
            cpu_allocated: capacity.cpu_allocated,
            memory_allocated: capacity.memory_allocated,
            applications: capacity.applications,
            databases: capacity.databases,
            node: node.into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(512, 2048), 25.0);
        assert_eq!(percent(1, 3), 33.3);
    }

    #[test]
    fn node_names() {
        assert_eq!(node_name("Worker-1").unwrap(), "worker-1");
        assert!(node_name("bad name").is_err());
    }
}
