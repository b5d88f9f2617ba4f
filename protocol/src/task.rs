//! Task messages: what a lease hands an agent, and what the agent reports back
//! (extend, status, logs). Every report carries the lease id; a stale one is refused.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The desired state of one application on the node. Applying it is
/// idempotent: containers already as described are left alone.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct AppSpec {
    pub app_id: i64,
    pub user_id: i64,
    pub slug: String,
    /// The application generation this spec belongs to.
    pub generation: i64,
    pub release: i32,
    pub image: String,
    pub instances: i32,
    /// The port the application listens on inside the container.
    pub port: i32,
    /// An HTTP path that must answer 2xx or 3xx before an instance counts as
    /// up; without one, a TCP connection to the port is enough.
    #[serde(default)]
    pub health_check_path: Option<String>,
    /// Environment variables, `PORT` included. Secret: never logged.
    pub env: BTreeMap<String, String>,
    pub cpu_millicores: i32,
    pub memory_mb: i32,
    pub pids_limit: i32,
}

impl std::fmt::Debug for AppSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSpec")
            .field("app_id", &self.app_id)
            .field("generation", &self.generation)
            .field("release", &self.release)
            .field("image", &self.image)
            .field("instances", &self.instances)
            .field("env_keys", &self.env.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// An application by identity only, for stopping or removing it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct AppTarget {
    pub app_id: i64,
    pub user_id: i64,
    pub generation: i64,
}

/// What to do. The `kind` field names the variant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Union))]
#[cfg_attr(feature = "openapi", oai(discriminator_name = "kind"))]

pub enum TaskSpec {
    /// Make exactly `instances` containers of this release run, then remove
    /// containers of other releases.
    #[serde(rename = "app.apply")]
    #[cfg_attr(feature = "openapi", oai(mapping = "app.apply"))]
    AppApply(AppSpec),
    /// Restart the application's containers one after the other.
    #[serde(rename = "app.restart")]
    #[cfg_attr(feature = "openapi", oai(mapping = "app.restart"))]
    AppRestart(AppSpec),
    /// Stop every container of the application (they are kept).
    #[serde(rename = "app.stop")]
    #[cfg_attr(feature = "openapi", oai(mapping = "app.stop"))]
    AppStop(AppTarget),
    /// Remove every container of the application, and the customer's network once empty.
    #[serde(rename = "app.delete")]
    #[cfg_attr(feature = "openapi", oai(mapping = "app.delete"))]
    AppDelete(AppTarget),
}

impl TaskSpec {
    /// The `kind` string, as stored in `paas_tasks.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AppApply(_) => "app.apply",
            Self::AppRestart(_) => "app.restart",
            Self::AppStop(_) => "app.stop",
            Self::AppDelete(_) => "app.delete",
        }
    }

    /// The application the task acts on.
    pub fn app_id(&self) -> i64 {
        match self {
            Self::AppApply(spec) | Self::AppRestart(spec) => spec.app_id,
            Self::AppStop(target) | Self::AppDelete(target) => target.app_id,
        }
    }
}

/// A task handed to an agent under a lease.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct LeasedTask {
    pub task_id: i64,
    /// Fences every report about this task: after the lease is lost, reports are refused.
    pub lease_id: Uuid,
    pub lease_deadline: DateTime<Utc>,
    /// 1 on the first lease, more when an earlier lease expired.
    pub attempt: i32,
    pub spec: TaskSpec,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Leases {
    pub tasks: Vec<LeasedTask>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct LeaseRef {
    pub lease_id: Uuid,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Extended {
    pub lease_deadline: DateTime<Utc>,
}

/// How far the agent got.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "lowercase"))]
pub enum ReportedStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct StatusReport {
    pub lease_id: Uuid,
    pub status: ReportedStatus,
    /// Why it failed, in words a customer can act on.
    pub error: Option<String>,
    /// The application's containers after the work (for apply, restart, stop).
    #[serde(default)]
    pub instances: Vec<super::node::ContainerReport>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct StatusAck {
    /// The task's status after the report.
    pub status: String,
    /// False when the report repeated what was already recorded.
    pub changed: bool,
}

/// A batch of log lines; `seq` numbers batches from 0 so a resent batch is ignored.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct LogBatch {
    pub lease_id: Uuid,
    pub seq: i32,
    pub lines: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct LogAck {
    /// False when a batch with this `seq` was already stored.
    pub stored: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_tagged_by_kind() {
        let spec = TaskSpec::AppStop(AppTarget {
            app_id: 1,
            user_id: 2,
            generation: 3,
        });
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["kind"], "app.stop");
        assert_eq!(json["app_id"], 1);
        assert_eq!(serde_json::from_value::<TaskSpec>(json).unwrap(), spec);
        assert_eq!(spec.kind(), "app.stop");
    }

    #[test]
    fn debug_hides_environment_values() {
        let spec = AppSpec {
            app_id: 1,
            user_id: 1,
            slug: "a".into(),
            generation: 1,
            release: 1,
            image: "img".into(),
            instances: 1,
            port: 8080,
            health_check_path: None,
            env: BTreeMap::from([("SECRET".to_string(), "canary-value".to_string())]),
            cpu_millicores: 100,
            memory_mb: 64,
            pids_limit: 64,
        };
        let shown = format!("{spec:?}");
        assert!(shown.contains("SECRET") && !shown.contains("canary-value"));
    }
}
