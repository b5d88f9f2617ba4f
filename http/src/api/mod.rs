//! The poem-openapi API groups, one module per area, and what they share:
//! tags, the `Created`/`NoContent` responses, audit logging, blocking hashes.

pub mod account;
pub mod admin_catalog;
pub mod admin_nodes;
pub mod admin_platform;
pub mod admin_users;
pub mod agents;
pub mod app_commands;
pub mod apps;
pub mod auth;
pub mod backups;
pub mod billing;
pub mod builds;
pub mod catalog;
pub mod databases;
pub mod domains;
pub mod env;
pub mod github;
pub mod hooks;
pub mod inspector;
pub mod observe;
pub mod runs;
pub mod streams;
pub mod system;
pub mod wallet;
pub mod webhooks;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Tags};
use skypanel_store::Conn;
use skypanel_store::audit::{Actor, Entry};

use crate::error::ApiError;

#[derive(Tags)]
pub enum Tag {
    /// Registration, login, the current user and API tokens.
    Auth,
    /// Customer applications: create, configure, deploy, scale.
    Applications,
    /// Environment variables of an application (values encrypted at rest).
    Environment,
    /// Builds of an application: history, live logs, cancelling.
    Builds,
    /// Releases of an application and rolling back to one.
    Releases,
    /// One-off commands in a new container of a release (`sky run`):
    /// attached through a WebSocket session, or detached into the logs.
    Runs,
    /// The hostnames an application answers to.
    Domains,
    /// Runtime logs and resource usage of an application.
    Observability,
    /// Push webhooks from git hosts that deploy an application.
    Webhooks,
    /// The platform's GitHub App: installing it, repositories and branches,
    /// its push webhook (and, for admins, its configuration).
    Github,
    /// Signed webhooks the platform calls on events: builds, crashes, the
    /// balance, suspensions, certificates and backups.
    EventWebhooks,
    /// Plans, runtimes and regions customers choose from.
    Catalog,
    /// Managed databases (PostgreSQL, MySQL, Redis, MongoDB) on the nodes.
    Databases,
    /// The customer's prepaid wallet.
    Wallet,
    /// Hourly charges, this month's usage, balance notices; billing runs (admin).
    Billing,
    /// Admin: hosting plans.
    AdminPlans,
    /// Admin: runtimes.
    AdminRuntimes,
    /// Admin: managed database engines (the image per type and version), the
    /// data deleted databases left on their nodes, and the daily backups.
    AdminDatabaseEngines,
    /// Admin: worker nodes.
    AdminNodes,
    /// Admin: the platform's GitHub App (its id, keys and secrets).
    AdminGithub,
    /// Admin: statistics, capacity and wallet credits.
    AdminPlatform,
    /// Admin: the platform's users, found by e-mail, with their
    /// applications, databases and wallet.
    AdminUsers,
    /// Admin: the inspector's view of queues, actors and applications.
    AdminInspector,
    /// Health of the control plane.
    System,
    /// The agent protocol: registration, heartbeats, task leases (node credentials only).
    Agents,
}

/// 201 with the created resource.
#[derive(ApiResponse, Debug)]
pub enum Created<T: ToJSON> {
    /// Created.
    #[oai(status = 201)]
    Created(Json<T>),
}

/// 202 with the resource as it is now: the work goes on in the background.
#[derive(ApiResponse, Debug)]
pub enum Accepted<T: ToJSON> {
    /// Accepted.
    #[oai(status = 202)]
    Accepted(Json<T>),
}

/// 204 without a body.
#[derive(ApiResponse, Debug)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

/// The caller's address: the connection's, or, when that is a trusted
/// proxy (`SKYPANEL_TRUSTED_PROXIES`), the one its `X-Forwarded-For` names.
pub fn client_ip(request: &Request) -> Option<String> {
    let remote = request.remote_addr().as_socket_addr()?.ip();
    let trusted = request
        .data::<crate::state::AppState>()
        .map(|s| s.settings().trusted_proxies.as_slice())
        .unwrap_or_default();
    if trusted.is_empty() {
        return Some(remote.to_string());
    }
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    Some(forwarded_client(remote, &forwarded.join(","), trusted).to_string())
}

/// The client behind trusted proxies: `X-Forwarded-For` read from the right
/// (each proxy appends the address it was reached from), the first address
/// that is not a trusted proxy. A request not from a trusted proxy is its
/// own client, whatever it claims; an unreadable entry stops the walk.
pub fn forwarded_client(
    remote: std::net::IpAddr,
    forwarded: &str,
    trusted: &[std::net::IpAddr],
) -> std::net::IpAddr {
    let mut client = remote;
    for hop in forwarded.rsplit(',') {
        if !trusted.contains(&client) {
            break;
        }
        match hop.trim().parse() {
            Ok(ip) => client = ip,
            Err(_) => break,
        }
    }
    client
}

/// One audit-log entry being written: who did what, to what, from where.
///
/// `Audit::by(request, user_id, "plan.delete").on("plan", id).write(&mut conn).await`
pub struct Audit<'a> {
    request: &'a Request,
    actor: Actor,
    action: &'static str,
    target: (&'static str, Option<i64>),
    details: serde_json::Value,
}

impl<'a> Audit<'a> {
    /// An action of a user.
    pub fn by(request: &'a Request, user_id: i64, action: &'static str) -> Self {
        Self::new(request, Actor::User(user_id), action)
    }

    pub fn new(request: &'a Request, actor: Actor, action: &'static str) -> Self {
        Self {
            request,
            actor,
            action,
            target: ("", None),
            details: serde_json::json!({}),
        }
    }

    /// What the action was done to.
    pub fn on(mut self, target_type: &'static str, target_id: impl Into<Option<i64>>) -> Self {
        self.target = (target_type, target_id.into());
        self
    }

    /// Extra facts: ids, names and counts, never a secret.
    pub fn with(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Appends the entry; a failure is logged, never shown to the caller,
    /// since the action itself already happened.
    pub async fn write(self, conn: &mut Conn) {
        let ip = client_ip(self.request);
        let entry = Entry {
            actor: self.actor,
            action: self.action,
            target_type: Some(self.target.0).filter(|t| !t.is_empty()),
            target_id: self.target.1,
            details: self.details,
            ip_address: ip.as_deref(),
        };
        if let Err(err) = skypanel_store::audit::record(conn, entry).await {
            tracing::error!(error = %err, action = self.action, "cannot write the audit log");
        }
    }
}

/// Runs CPU-heavy work (argon2) off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)
}

/// Query parameters `limit` (1 to 200, default 50) and `offset` as a store page.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> skypanel_store::Page {
    skypanel_store::Page::new(limit, offset)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report
mod client_tests {
    use super::forwarded_client;

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let lb = [ip("10.0.0.5")];
        // Through the load balancer: the address it appended.
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), "203.0.113.7", &lb),
            ip("203.0.113.7")
        );
        // A client's own forged entry is left of the one the balancer appended.
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), "1.2.3.4, 203.0.113.7", &lb),
            ip("203.0.113.7")
        );
        // Straight from the client: its header means nothing.
        assert_eq!(
            forwarded_client(ip("198.51.100.9"), "1.2.3.4", &lb),
            ip("198.51.100.9")
        );
        // Two trusted proxies in a row.
        let two = [ip("10.0.0.5"), ip("10.0.0.6")];
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), "203.0.113.7, 10.0.0.6", &two),
            ip("203.0.113.7")
        );
        // Nothing forwarded, or garbage: the proxy itself.
        assert_eq!(forwarded_client(ip("10.0.0.5"), "", &lb), ip("10.0.0.5"));
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), "not-an-ip", &lb),
            ip("10.0.0.5")
        );
    }
}
