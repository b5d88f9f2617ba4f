//! Worker nodes as admins see them.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use skypanel_store::nodes::Node;

#[derive(Object, Debug)]
pub struct NodeView {
    pub id: i64,
    pub name: String,
    pub region: String,
    pub host_address: String,
    /// `pending` (no agent yet), `online`, `degraded`, `offline` or `disabled`.
    pub status: String,
    /// Millicores.
    pub cpu_total: i32,
    pub cpu_used: i32,
    /// MB.
    pub memory_total: i32,
    pub memory_used: i32,
    /// MB.
    pub disk_total: i32,
    pub disk_used: i32,
    pub container_count: i32,
    #[oai(nullable)]
    pub agent_version: Option<String>,
    #[oai(nullable)]
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Until when the registration token works, while the agent has not registered.
    #[oai(nullable)]
    pub registration_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Node> for NodeView {
    fn from(n: Node) -> Self {
        Self {
            id: n.id,
            name: n.name,
            region: n.region,
            host_address: n.host_address,
            status: n.status,
            cpu_total: n.cpu_total,
            cpu_used: n.cpu_used,
            memory_total: n.memory_total,
            memory_used: n.memory_used,
            disk_total: n.disk_total,
            disk_used: n.disk_used,
            container_count: n.container_count,
            agent_version: n.agent_version,
            last_heartbeat: n.last_heartbeat,
            registration_expires_at: n.registration_expires_at,
            created_at: n.created_at,
            updated_at: n.updated_at,
        }
    }
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RegisterNodeRequest {
    /// A unique name, e.g. `worker-1`.
    #[oai(validator(max_length = 63, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub name: String,
    /// Lowercase letters, digits and hyphens, e.g. `us-east`.
    #[oai(validator(pattern = r"^[a-z0-9][a-z0-9-]{0,49}$"))]
    pub region: String,
    /// Hostname or IP address of the node.
    #[oai(validator(
        max_length = 253,
        pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
    ))]
    pub host_address: String,
}

#[derive(Object)]
pub struct NodeRegistration {
    pub node_id: i64,
    /// One-time token for the agent's first start; shown only here.
    pub registration_token: String,
    pub expires_at: DateTime<Utc>,
    /// Run this on the node, from a checkout of SkyPanel, to install and start
    /// the agent; it asks for the registration token (or reads it from its
    /// standard input: `printf %s "$TOKEN" | sudo ./ops/install-agent.sh URL`),
    /// which is never put on a command line.
    pub install_command: String,
}

/// Every field is optional. `disabled: true` takes the node out of placement.
#[derive(Object, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateNodeRequest {
    #[oai(nullable)]
    pub name: Option<String>,
    #[oai(nullable)]
    pub region: Option<String>,
    #[oai(nullable)]
    pub host_address: Option<String>,
    #[oai(nullable)]
    pub disabled: Option<bool>,
}

#[derive(Object, Debug)]
pub struct NodeMetrics {
    pub node: NodeView,
    /// Millicores the plans of the node's applications and databases reserve.
    pub cpu_allocated: i64,
    /// MB reserved the same way.
    pub memory_allocated: i64,
    pub applications: i64,
    pub databases: i64,
    /// Percentages of the totals the agent last reported in use (0 when unknown).
    pub cpu_used_percent: f64,
    pub memory_used_percent: f64,
    pub disk_used_percent: f64,
}
