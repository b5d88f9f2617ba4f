//! Hostnames of applications: the system domain (`<slug>.<platform domain>`,
//! made with the application) and custom domains. A hostname belongs to one
//! application across all customers (a unique constraint).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::apps::owned_id;
use crate::schema::{paas_applications, paas_domains};
use crate::{Conn, Result, found};

/// A domain without its certificate's private key.
#[derive(Queryable, QueryableByName, Selectable, Debug, Clone)]
#[diesel(table_name = paas_domains, check_for_backend(diesel::pg::Pg))]
pub struct Domain {
    pub id: i64,
    pub application_id: i64,
    pub hostname: String,
    pub is_system: bool,
    pub ssl_status: String,
    pub ssl_error: Option<String>,
    pub certificate_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Attempts used of the current certificate request (at most 3).
    pub ssl_attempts: i32,
    /// When the next attempt may run; `None`: nothing to do.
    pub ssl_due_at: Option<DateTime<Utc>>,
    /// Numbers the certificate requests of this domain.
    pub ssl_request: i32,
    pub certificate_issued_at: Option<DateTime<Utc>>,
}

impl Domain {
    /// Binds a domain's sealed private key to the domain.
    pub fn key_associated_data(id: i64) -> Vec<u8> {
        format!("paas_domains.private_key:{id}").into_bytes()
    }
}

/// The names the ingress routes to an application: the system domain first,
/// then custom domains in the order they were added.
pub async fn hostnames(conn: &mut Conn, application_id: i64) -> Result<Vec<String>> {
    Ok(paas_domains::table
        .filter(paas_domains::application_id.eq(application_id))
        .order((paas_domains::is_system.desc(), paas_domains::id.asc()))
        .select(paas_domains::hostname)
        .load(conn)
        .await?)
}

/// The owner's domains of an application, system domain first.
pub async fn list(conn: &mut Conn, owner: i64, application_id: i64) -> Result<Vec<Domain>> {
    Ok(paas_domains::table
        .filter(paas_domains::application_id.eq_any(owned_id(owner, application_id)))
        .order((paas_domains::is_system.desc(), paas_domains::id.asc()))
        .select(Domain::as_select())
        .load(conn)
        .await?)
}

/// Adds a custom domain to the owner's application. A hostname taken by any
/// application is a conflict on `hostname`.
pub async fn add(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
    hostname: &str,
) -> Result<Domain> {
    let app: i64 = paas_applications::table
        .filter(paas_applications::id.eq(application_id))
        .filter(paas_applications::user_id.eq(owner))
        .select(paas_applications::id)
        .first(conn)
        .await?;
    Ok(diesel::insert_into(paas_domains::table)
        .values((
            paas_domains::application_id.eq(app),
            paas_domains::hostname.eq(hostname),
            paas_domains::is_system.eq(false),
        ))
        .returning(Domain::as_returning())
        .get_result(conn)
        .await?)
}

/// Removes a custom domain of the owner's application (the system domain stays).
pub async fn remove(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
    hostname: &str,
) -> Result<()> {
    let rows = diesel::delete(
        paas_domains::table
            .filter(paas_domains::application_id.eq_any(owned_id(owner, application_id)))
            .filter(paas_domains::hostname.eq(hostname))
            .filter(paas_domains::is_system.eq(false)),
    )
    .execute(conn)
    .await?;
    found(rows)
}
