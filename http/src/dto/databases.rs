//! Managed databases on the wire: what a customer asks for and sees.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use skypanel_store::databases::Database;

#[derive(Object, Deserialize, Debug)]
pub struct CreateDatabaseRequest {
    /// 3 to 63 lowercase letters, digits and single hyphens, unique per customer.
    pub name: String,
    /// `postgresql`, `mysql`, `redis` or `mongodb`.
    pub db_type: String,
    /// A version an engine exists for (`GET /api/paas/database-engines`).
    pub version: String,
    pub plan_id: i64,
    pub region: String,
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
    /// `pending` (being provisioned), `running`, `stopped`, `failed` (see
    /// `failure_reason`) or `suspended` (unpaid balance).
    pub status: String,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Only on `GET /api/paas/databases/:id`.
    pub connection: Option<ConnectionView>,
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
        }
    }
}

/// An engine customers can choose.
#[derive(Object, Debug)]
pub struct EngineChoice {
    pub db_type: String,
    pub version: String,
}

/// The URL of a connection in the scheme its engine's clients read.
pub fn connection_url(
    db_type: &str,
    host: &str,
    port: i32,
    user: &str,
    password: &str,
    database: &str,
) -> String {
    match db_type {
        "postgresql" => format!("postgresql://{user}:{password}@{host}:{port}/{database}"),
        "mysql" => format!("mysql://{user}:{password}@{host}:{port}/{database}"),
        "redis" => format!("redis://:{password}@{host}:{port}/0"),
        _ => format!("mongodb://{user}:{password}@{host}:{port}/{database}?authSource=admin"),
    }
}
