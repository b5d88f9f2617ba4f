//! Platform statistics and capacity for admins.

use std::collections::BTreeMap;

use poem_openapi::Object;
use skypanel_store::reports::NodeCapacity;

#[derive(Object, Debug)]
pub struct Revenue {
    /// Sum of billing records whose hour started this calendar month (UTC).
    pub billed_this_month: String,
    /// Sum of wallet credits this calendar month (UTC).
    pub credited_this_month: String,
    /// Sum of every wallet's balance now.
    pub wallet_balances: String,
    /// Revenue per billing hour over the last 48 hours, newest first.
    pub per_hour: Vec<crate::dto::billing::HourRevenue>,
}

#[derive(Object, Debug)]
pub struct Stats {
    /// Users by role.
    pub users: BTreeMap<String, i64>,
    /// Applications by status.
    pub applications: BTreeMap<String, i64>,
    /// Databases by status.
    pub databases: BTreeMap<String, i64>,
    /// Nodes by status.
    pub nodes: BTreeMap<String, i64>,
    /// Builds created in the last 24 hours, by status.
    pub builds_last_24h: BTreeMap<String, i64>,
    pub revenue: Revenue,
    pub certificates: Certificates,
    /// Release images: the registry's, and each node's cache.
    pub images: ImageStats,
}

/// Release images in the platform's registry and on the nodes.
#[derive(Object, Debug)]
pub struct ImageStats {
    /// Images (distinct per application) the registry holds for releases.
    pub registry_images: i64,
    /// Their size, uncompressed (what pushes reported).
    pub registry_bytes: i64,
    /// Each node's platform images, as its last heartbeat reported them.
    pub nodes: Vec<NodeImages>,
}

#[derive(Object, Debug)]
pub struct NodeImages {
    pub node_id: i64,
    pub name: String,
    /// Not reported yet by the node's agent.
    #[oai(nullable)]
    pub images: Option<i32>,
    #[oai(nullable)]
    pub bytes: Option<i64>,
}

/// What a registry retention round did.
#[derive(Object, Debug)]
pub struct RegistryPruned {
    /// Manifests deleted from the registry (their blobs go at its next
    /// garbage collection).
    pub manifests_deleted: i64,
    /// Applications whose releases were looked at.
    pub applications: i64,
    /// What could not be deleted.
    pub errors: Vec<String>,
}

/// HTTPS certificates of every domain.
#[derive(Object, Debug)]
pub struct Certificates {
    /// Domains by certificate status (`none`, `pending`, `active`, `failed`).
    pub by_status: BTreeMap<String, i64>,
    /// The 50 certificates expiring first.
    pub expiring_first: Vec<CertificateExpiry>,
}

#[derive(Object, Debug)]
pub struct CertificateExpiry {
    pub hostname: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub ssl_status: String,
}

/// Renew certificates now instead of at the daily run.
#[derive(Object, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalRequest {
    /// Renew the certificates expiring within this many days (the
    /// configured `SKYPANEL_SSL_RENEW_BEFORE_DAYS` when absent).
    #[oai(nullable)]
    pub within_days: Option<u32>,
}

#[derive(Object, Debug)]
pub struct RenewalResult {
    /// Certificates whose renewal started.
    pub started: i64,
}

#[derive(Object, Debug)]
pub struct NodeCapacityView {
    pub node_id: i64,
    pub name: String,
    pub region: String,
    pub status: String,
    /// Millicores.
    pub cpu_total: i32,
    pub cpu_used: i32,
    pub cpu_allocated: i64,
    /// MB.
    pub memory_total: i32,
    pub memory_used: i32,
    pub memory_allocated: i64,
    /// MB.
    pub disk_total: i32,
    pub disk_used: i32,
    pub container_count: i32,
    pub applications: i64,
    pub databases: i64,
}

impl From<NodeCapacity> for NodeCapacityView {
    fn from(n: NodeCapacity) -> Self {
        Self {
            node_id: n.node_id,
            name: n.name,
            region: n.region,
            status: n.status,
            cpu_total: n.cpu_total,
            cpu_used: n.cpu_used,
            cpu_allocated: n.cpu_allocated,
            memory_total: n.memory_total,
            memory_used: n.memory_used,
            memory_allocated: n.memory_allocated,
            disk_total: n.disk_total,
            disk_used: n.disk_used,
            container_count: n.container_count,
            applications: n.applications,
            databases: n.databases,
        }
    }
}

#[derive(Object, Debug, Default)]
pub struct RegionCapacity {
    pub region: String,
    pub nodes: i64,
    pub online_nodes: i64,
    /// Nodes under sustained pressure: they take work only when no online
    /// node has room.
    pub degraded_nodes: i64,
    /// Millicores over all nodes of the region.
    pub cpu_total: i64,
    pub cpu_allocated: i64,
    /// MB over all nodes of the region.
    pub memory_total: i64,
    pub memory_allocated: i64,
    /// Millicores not reserved, over online and degraded nodes: what
    /// placement can use now.
    pub free_cpu: i64,
    /// MB not reserved, over online and degraded nodes.
    pub free_memory: i64,
}

#[derive(Object, Debug)]
pub struct Capacity {
    pub regions: Vec<RegionCapacity>,
    pub nodes: Vec<NodeCapacityView>,
}

/// One entry of the audit log: who did what to what, from where. Details
/// hold ids, names and counts, never a secret.
#[derive(poem_openapi::Object, Debug)]
pub struct AuditEntryView {
    pub id: i64,
    /// The user who acted (absent for the platform itself or an agent).
    #[oai(nullable)]
    pub actor_user_id: Option<i64>,
    /// The node whose agent acted.
    #[oai(nullable)]
    pub actor_node_id: Option<i64>,
    /// `user.login`, `user.login_failed`, `api_token.create`, `env.add`,
    /// `app.deploy`, `wallet.credit`, `node.register`, `wallet.suspend` …
    pub action: String,
    #[oai(nullable)]
    pub target_type: Option<String>,
    #[oai(nullable)]
    pub target_id: Option<i64>,
    pub details: serde_json::Value,
    #[oai(nullable)]
    pub ip_address: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<skypanel_store::audit::Recorded> for AuditEntryView {
    fn from(r: skypanel_store::audit::Recorded) -> Self {
        Self {
            id: r.id,
            actor_user_id: r.actor_user_id,
            actor_node_id: r.actor_node_id,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            details: r.details,
            ip_address: r.ip_address,
            created_at: r.created_at,
        }
    }
}
