//! Runtime logs and resource use of an application.

use chrono::{DateTime, Utc};
use poem_openapi::Object;

/// One line an application's container wrote.
#[derive(Object, Debug, Clone)]
pub struct AppLogLine {
    /// Its place in the application's log (ordered).
    pub id: String,
    /// When the container wrote it (RFC 3339).
    pub timestamp: String,
    pub instance: i32,
    pub release: i32,
    /// Which container wrote it: `web.0`, `worker.1`, `release` (the
    /// release phase), `run.12` (a detached one-off run).
    pub process: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
}

#[derive(Object, Debug)]
pub struct InstanceUsage {
    pub instance: i32,
    pub release: i32,
    pub state: String,
    /// Percent of one CPU core.
    pub cpu_percent: f64,
    pub memory_used_mb: i64,
}

/// The application's totals at one heartbeat.
#[derive(Object, Debug)]
pub struct UsagePoint {
    pub at: DateTime<Utc>,
    pub cpu_percent: f64,
    pub memory_used_mb: i64,
}

#[derive(Object, Debug)]
pub struct AppMetrics {
    pub application_id: i64,
    pub instance_count: i32,
    /// Per instance, from the plan.
    pub cpu_limit_millicores: i32,
    /// Per instance, from the plan.
    pub memory_limit_mb: i32,
    /// The node's last heartbeat with figures for the application.
    #[oai(nullable)]
    pub sampled_at: Option<DateTime<Utc>>,
    pub instances: Vec<InstanceUsage>,
    /// Totals over the recent heartbeats, oldest first.
    pub history: Vec<UsagePoint>,
}

/// One application as a dashboard shows it.
#[derive(Object, Debug)]
pub struct AppOverview {
    pub metrics: AppMetrics,
    /// Its containers, as its node last reported them.
    pub instances: Vec<crate::dto::apps::InstanceView>,
    /// The release it runs; `null` before its first.
    #[oai(nullable)]
    pub current_release: Option<crate::dto::domains::ReleaseView>,
}
