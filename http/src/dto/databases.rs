//! Managed databases on the wire: what a customer asks for and sees.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use skypanel_store::databases::Database;

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabaseRequest {
    /// 3 to 63 lowercase letters, digits and single hyphens, unique per customer.
    #[oai(validator(pattern = r"^[a-z0-9]([a-z0-9]|-[a-z0-9]){1,61}[a-z0-9]$"))]
    pub name: String,
    /// `postgresql`, `mysql`, `redis` or `mongodb`.
    #[oai(validator(pattern = "^(postgresql|mysql|redis|mongodb)$"))]
    pub db_type: String,
    /// A version an engine exists for (`GET /api/paas/database-engines`).
    #[oai(validator(pattern = r"^[A-Za-z0-9._-]{1,32}$"))]
    pub version: String,
    /// A plan of `GET /api/paas/plans`.
    #[oai(validator(minimum(value = "1")))]
    pub plan_id: i64,
    /// A region of a registered node (see `GET /api/paas/regions`).
    #[oai(validator(pattern = r"^[a-z0-9][a-z0-9-]{0,49}$"))]
    pub region: String,
}

/// A database's new plan.
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct UpdateDatabaseRequest {
    /// A plan of `GET /api/paas/plans`.
    #[oai(validator(minimum(value = "1")))]
    pub plan_id: i64,
}

/// How to connect: reachable only from the owner's own applications
/// (their containers share the customer's network on the node).
#[derive(Object, Debug)]
pub struct ConnectionView {
    pub host: String,
    pub port: i32,
    pub username: String,
    /// Shown to the owner on this resource only (never in lists or logs).
    pub password: String,
    pub database: String,
    /// The whole thing as one URL (`postgresql://…`, `redis://…` …).
    pub url: String,
}

#[derive(Object, Debug)]
pub struct DatabaseView {
    pub id: i64,
    pub name: String,
    pub db_type: String,
    pub version: String,
    pub plan_id: i64,
    pub region: String,
    /// `pending` (being provisioned, started or resized), `running`,
    /// `stopped` (by its owner), `failed` (see `failure_reason`) or
    /// `suspended` (unpaid balance).
    pub status: String,
    #[oai(nullable)]
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Only on `GET /api/paas/databases/:id`.
    #[oai(nullable)]
    pub connection: Option<ConnectionView>,
    /// Only on `GET /api/paas/databases/:id`.
    #[oai(nullable)]
    pub health: Option<DatabaseHealth>,
    /// Its latest move to another node (a new plan its own node had no
    /// room for), under way or ended; only on `GET /api/paas/databases/:id`.
    #[oai(nullable)]
    pub last_move: Option<DatabaseMoveView>,
}

/// A database's move to another node: dumped on the node it leaves,
/// copied, restored on the node it goes to.
#[derive(Object, Debug)]
pub struct DatabaseMoveView {
    /// `exporting` (being dumped), `importing` (being restored on its new
    /// node), `succeeded`, or `failed` (see `error`; it runs again on the
    /// node it left, with its old plan and data).
    pub status: String,
    pub from_plan_id: i64,
    pub to_plan_id: i64,
    /// The dump's size, once made.
    #[oai(nullable)]
    pub size_bytes: Option<i64>,
    /// How long it was expected to take.
    pub estimated_seconds: i32,
    #[oai(nullable)]
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<skypanel_store::database_moves::Move> for DatabaseMoveView {
    fn from(m: skypanel_store::database_moves::Move) -> Self {
        Self {
            status: m.status,
            from_plan_id: m.from_plan_id,
            to_plan_id: m.to_plan_id,
            size_bytes: m.size_bytes,
            estimated_seconds: m.estimated_seconds,
            error: m.error,
            started_at: m.started_at,
            finished_at: m.finished_at,
        }
    }
}

/// How a database is doing, for its owner.
#[derive(Object, Debug)]
pub struct DatabaseHealth {
    /// Its data on disk, as its node last measured (about once a minute);
    /// null before the first measurement or when the engine did not answer.
    #[oai(nullable)]
    pub size_bytes: Option<i64>,
    /// Client connections to its engine at that measurement.
    #[oai(nullable)]
    pub connections: Option<i32>,
    /// When its node measured it.
    #[oai(nullable)]
    pub measured_at: Option<DateTime<Utc>>,
    /// The newest backup that ended (succeeded, or failed with its `error`);
    /// null before the first.
    #[oai(nullable)]
    pub last_backup: Option<crate::dto::backups::BackupView>,
}

impl DatabaseHealth {
    pub fn new(
        measured: Option<skypanel_store::databases::Health>,
        last_backup: Option<skypanel_store::backups::Backup>,
    ) -> Self {
        Self {
            size_bytes: measured.as_ref().and_then(|h| h.size_bytes),
            connections: measured.as_ref().and_then(|h| h.connections),
            measured_at: measured.map(|h| h.measured_at),
            last_backup: last_backup.map(Into::into),
        }
    }
}

/// A database in the admin's list: whose, where, and how it is doing.
#[derive(Object, Debug)]
pub struct AdminDatabaseView {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub db_type: String,
    pub version: String,
    pub plan_id: i64,
    #[oai(nullable)]
    pub node_id: Option<i64>,
    pub region: String,
    pub status: String,
    #[oai(nullable)]
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub health: DatabaseHealth,
}

impl From<Database> for DatabaseView {
    fn from(d: Database) -> Self {
        Self {
            id: d.id,
            name: d.name,
            db_type: d.db_type,
            version: d.version,
            plan_id: d.plan_id,
            region: d.region,
            status: d.status,
            failure_reason: d.failure_reason,
            created_at: d.created_at,
            connection: None,
            health: None,
            last_move: None,
        }
    }
}

/// An engine customers can choose.
#[derive(Object, Debug)]
pub struct EngineChoice {
    pub db_type: String,
    pub version: String,
}

#[derive(Object, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The variables' prefix: `DATABASE` by default (`REDIS` for Redis),
    /// giving `DATABASE_URL`, `DATABASE_HOST`, `_PORT`, `_USER`, `_PASSWORD`
    /// and `_NAME`. Capital letters, digits and `_`, starting with a letter.
    #[oai(nullable, validator(pattern = r"^[A-Z]([A-Z0-9_]{0,30}[A-Z0-9])?$"))]
    pub env_var_prefix: Option<String>,
}

/// A database linked into an application.
#[derive(Object, Debug)]
pub struct LinkView {
    pub database_id: i64,
    pub database_name: String,
    pub db_type: String,
    pub env_var_prefix: String,
    /// The variables the application gets (values are not shown here).
    pub variables: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl From<skypanel_store::databases::Link> for LinkView {
    fn from(link: skypanel_store::databases::Link) -> Self {
        let p = &link.env_var_prefix;
        Self {
            variables: ["URL", "HOST", "PORT", "USER", "PASSWORD", "NAME"]
                .iter()
                .map(|s| format!("{p}_{s}"))
                .collect(),
            database_id: link.database.id,
            database_name: link.database.name,
            db_type: link.database.db_type,
            env_var_prefix: link.env_var_prefix,
            created_at: link.created_at,
        }
    }
}
