//! Node messages: one-time registration, heartbeats with the containers a node
//! runs, and credential rotation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// First contact: the one-time token from the admin, and what the node has.
#[derive(Serialize, Deserialize, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(rename = "AgentRegisterRequest"))]
pub struct RegisterRequest {
    /// The `spr_` token `POST /api/admin/paas/nodes/register` answered; it works once.
    pub registration_token: String,
    pub agent_version: String,
    pub hostname: String,
    /// Millicores: 1000 per CPU core.
    pub cpu_total: i32,
    pub memory_total_mb: i64,
    pub disk_total_mb: i64,
}

impl std::fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// The node's identity and credential; the credential is shown only here.
#[derive(Serialize, Deserialize, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Registered {
    pub node_id: i64,
    /// Send it in the `X-SkyPanel-Node-Credential` header from now on.
    pub credential: String,
    pub heartbeat_interval_secs: u64,
    /// How long a lease lasts unless extended.
    pub lease_ttl_secs: u64,
}

/// A new credential; the previous one keeps working for a short grace period.
#[derive(Serialize, Deserialize, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Rotated {
    pub credential: String,
}

/// The state of a container as Docker reports it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", oai(rename_all = "lowercase"))]
pub enum ContainerState {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
    Removing,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Paused => "paused",
            Self::Exited => "exited",
            Self::Dead => "dead",
            Self::Removing => "removing",
        }
    }

    /// Docker's state word (`running`, `exited` …); unknown words count as dead.
    pub fn from_docker(state: &str) -> Self {
        match state {
            "created" => Self::Created,
            "running" => Self::Running,
            "restarting" => Self::Restarting,
            "paused" => Self::Paused,
            "exited" => Self::Exited,
            "removing" => Self::Removing,
            _ => Self::Dead,
        }
    }
}

/// One application container on the node.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ContainerReport {
    pub container_id: String,
    pub name: String,
    pub application_id: i64,
    pub user_id: i64,
    pub release: i32,
    /// The process type (`web`, `worker` …); reports of agents before
    /// process types say nothing, which is `web`.
    #[serde(default = "web")]
    pub process: String,
    pub instance: i32,
    pub generation: i64,
    pub state: ContainerState,
    /// The port on the node's 127.0.0.1 the app port is published on.
    pub host_port: Option<i32>,
    pub cpu_usage_percent: f64,
    pub memory_used_mb: i64,
    /// Restarts the agent made after crashes in the current window.
    pub restart_count: i32,
    /// The agent stopped restarting it: it crashed too often.
    pub crash_looping: bool,
}

fn web() -> String {
    crate::procfile::WEB.to_string()
}

/// Every heartbeat interval: the seed's HeartbeatMessage plus the containers.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Heartbeat {
    pub node_id: i64,
    /// When the agent read its container list (its clock): a report is
    /// newer than another when this is later, whatever order they arrive in.
    pub timestamp: DateTime<Utc>,
    pub agent_version: String,
    pub cpu_usage_percent: f64,
    /// Millicores: 1000 per CPU core.
    pub cpu_total: i32,
    pub memory_used_mb: i64,
    pub memory_total_mb: i64,
    pub disk_used_mb: i64,
    pub disk_total_mb: i64,
    pub container_count: i32,
    pub containers: Vec<ContainerReport>,
    /// The platform's images the node holds (a cache of the registry).
    #[serde(default)]
    pub images: Option<ImageUsage>,
    /// Managed databases whose containers crashed too often (3 restarts
    /// within 5 minutes): the node left them stopped.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub crashed_databases: Vec<i64>,
    /// Databases measured since the last heartbeat (about once a minute each).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub database_health: Vec<crate::database::DatabaseHealthReport>,
}

/// The platform's images on a node.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ImageUsage {
    pub count: i32,
    pub bytes: i64,
}

/// What the control plane thinks of the node after a heartbeat.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct HeartbeatAck {
    /// `online`, `degraded` or `disabled`.
    pub node_status: String,
    /// The credential is old enough to rotate (`POST .../credentials/rotate`).
    pub rotate_credential: bool,
    /// The address of the control-plane replica holding this node's actor
    /// (its `SKYPANEL_REPLICA_URL`). An agent given several addresses
    /// sends to this one when it is among them: its heartbeats then reach
    /// the actor without a hop between replicas.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub owner: Option<String>,
}

/// A line an application's container wrote, as the node's agent ships it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct AppLogEntry {
    pub application_id: i64,
    pub instance: i32,
    pub release: i32,
    /// Which container, as Heroku names dynos: `web.0`, `worker.1`,
    /// `release` (the release phase), `run.12` (a one-off run).
    #[serde(default)]
    pub process: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When the container wrote it (RFC 3339, from Docker).
    pub timestamp: String,
    pub line: String,
}

/// A batch of application log lines.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct AppLogBatch {
    pub lines: Vec<AppLogEntry>,
}

/// How many lines of a batch were kept.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct AppLogAck {
    pub stored: usize,
    /// Lines of applications this node does not run (dropped).
    pub refused: usize,
}
