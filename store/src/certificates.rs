//! HTTPS certificates of domains: each request (a domain added, a retry, a
//! renewal) is numbered by `ssl_request`; its attempts are claimed one by one
//! (`ssl_attempts`), each claim holding the domain for a while through
//! `ssl_due_at` so an attempt lost with its process is taken up again by the
//! sweeper. Also the control plane's ACME account.

use chrono::{DateTime, Utc};
use diesel::dsl::{now, sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use crate::domains::Domain;
use crate::schema::{paas_acme_accounts, paas_applications, paas_domains};
use crate::{Conn, Result};

/// Where a domain's certificate work stands, with what the job needs of its application.
#[derive(Debug, Clone)]
pub struct Work {
    pub domain: Domain,
    pub user_id: i64,
    /// The node the application's ingress runs on (where DNS must point).
    pub node_id: Option<i64>,
    /// A certificate that has not expired serves the domain now.
    pub serving: bool,
}

/// The columns of [`Domain`], for queries written in SQL.
const DOMAIN_COLUMNS: &str = "id, application_id, hostname, is_system, ssl_status, ssl_error, \
     certificate_expires_at, created_at, ssl_attempts, ssl_due_at, ssl_request, certificate_issued_at";

/// Which domains a new request is for.
enum Which {
    One(i64),
    Unasked,
    ExpiringBefore(DateTime<Utc>),
}

/// Starts a new certificate request for some domains: the attempts start
/// again and the first is due at `at`. A domain whose certificate still
/// serves stays `active` (a renewal); any other is `pending`.
async fn request_where(conn: &mut Conn, which: Which, at: DateTime<Utc>) -> Result<Vec<Domain>> {
    let condition = match which {
        Which::One(_) => "id = $2",
        Which::Unasked => "ssl_status = 'none'",
        Which::ExpiringBefore(_) => {
            "certificate_pem IS NOT NULL AND certificate_expires_at < $2 AND ssl_due_at IS NULL"
        }
    };
    let query = diesel::sql_query(format!(
        "UPDATE paas_domains
            SET ssl_status = CASE WHEN certificate_pem IS NOT NULL AND certificate_expires_at > $1
                                  THEN 'active' ELSE 'pending' END,
                ssl_error = NULL, ssl_attempts = 0, ssl_due_at = $1, ssl_request = ssl_request + 1
          WHERE {condition}
      RETURNING {DOMAIN_COLUMNS}"
    ))
    .into_boxed()
    .bind::<Timestamptz, _>(at);
    let query = match which {
        Which::One(id) => query.bind::<BigInt, _>(id),
        Which::ExpiringBefore(before) => query.bind::<Timestamptz, _>(before),
        Which::Unasked => query,
    };
    Ok(query.load(conn).await?)
}

/// Requests a certificate for one domain (added, or retried by its owner).
pub async fn request(conn: &mut Conn, domain_id: i64, at: DateTime<Utc>) -> Result<Domain> {
    request_where(conn, Which::One(domain_id), at)
        .await?
        .pop()
        .ok_or(crate::Error::NotFound)
}

/// Requests a certificate for every domain that never had one asked for
/// (HTTPS was turned on after they were added); answers them.
pub async fn request_unasked(conn: &mut Conn, at: DateTime<Utc>) -> Result<Vec<Domain>> {
    request_where(conn, Which::Unasked, at).await
}

/// Starts a renewal of every certificate expiring before `before` that no
/// request is working on; answers the domains.
pub async fn request_renewals(
    conn: &mut Conn,
    at: DateTime<Utc>,
    before: DateTime<Utc>,
) -> Result<Vec<Domain>> {
    request_where(conn, Which::ExpiringBefore(before), at).await
}

/// Domains whose next attempt is due at `at` (for the sweeper).
pub async fn due(conn: &mut Conn, at: DateTime<Utc>, limit: i64) -> Result<Vec<Domain>> {
    Ok(paas_domains::table
        .filter(paas_domains::ssl_due_at.le(at))
        .order(paas_domains::ssl_due_at.asc())
        .limit(limit)
        .select(Domain::as_select())
        .load(conn)
        .await?)
}

/// The domain's certificate work, or `None` when the domain is gone.
pub async fn work(conn: &mut Conn, domain_id: i64, at: DateTime<Utc>) -> Result<Option<Work>> {
    let row: Option<(Domain, i64, Option<i64>, bool)> = paas_domains::table
        .inner_join(paas_applications::table)
        .filter(paas_domains::id.eq(domain_id))
        .select((
            Domain::as_select(),
            paas_applications::user_id,
            paas_applications::node_id,
            paas_domains::certificate_pem.is_not_null(),
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(domain, user_id, node_id, has_certificate)| Work {
        serving: has_certificate && domain.certificate_expires_at.is_some_and(|e| e > at),
        domain,
        user_id,
        node_id,
    }))
}

/// Claims attempt `attempt` of request `request`: it runs only when it is
/// the next one and due; the domain is then held until `hold_until`, after
/// which the sweeper hands the next attempt out. `false`: someone else has it.
pub async fn claim(
    conn: &mut Conn,
    domain_id: i64,
    request: i32,
    attempt: i32,
    at: DateTime<Utc>,
    hold_until: DateTime<Utc>,
) -> Result<bool> {
    let rows = diesel::update(
        paas_domains::table
            .filter(paas_domains::id.eq(domain_id))
            .filter(paas_domains::ssl_request.eq(request))
            .filter(paas_domains::ssl_attempts.eq(attempt - 1))
            .filter(paas_domains::ssl_due_at.le(at)),
    )
    .set((
        paas_domains::ssl_attempts.eq(attempt),
        paas_domains::ssl_due_at.eq(Some(hold_until)),
    ))
    .execute(conn)
    .await?;
    Ok(rows == 1)
}

/// Puts the request off until `until` without using an attempt (the
/// application has no node yet; `used` attempts so far); `reason` says why
/// to its owner.
pub async fn defer(
    conn: &mut Conn,
    domain_id: i64,
    request: i32,
    used: i32,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<bool> {
    let rows = diesel::update(
        paas_domains::table
            .filter(paas_domains::id.eq(domain_id))
            .filter(paas_domains::ssl_request.eq(request))
            .filter(paas_domains::ssl_attempts.eq(used)),
    )
    .set((
        paas_domains::ssl_due_at.eq(Some(until)),
        paas_domains::ssl_error.eq(Some(reason)),
    ))
    .execute(conn)
    .await?;
    Ok(rows == 1)
}

/// A certificate the request obtained.
pub struct Issued<'a> {
    pub chain_pem: &'a str,
    /// The private key, sealed with [`Domain::key_associated_data`].
    pub sealed_key: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

/// Stores the certificate attempt `attempt` obtained: the domain is
/// `active`. `false` when the attempt is no longer the current one (a newer
/// request, or the next attempt took over after the hold): nothing is stored.
pub async fn issued(
    conn: &mut Conn,
    domain_id: i64,
    request: i32,
    attempt: i32,
    cert: Issued<'_>,
    at: DateTime<Utc>,
) -> Result<bool> {
    let rows = diesel::update(current(domain_id, request, attempt))
        .set((
            paas_domains::ssl_status.eq("active"),
            paas_domains::ssl_error.eq(None::<String>),
            paas_domains::certificate_pem.eq(Some(cert.chain_pem)),
            paas_domains::private_key.eq(Some(cert.sealed_key)),
            paas_domains::certificate_expires_at.eq(Some(cert.expires_at)),
            paas_domains::certificate_issued_at.eq(Some(at)),
            paas_domains::ssl_attempts.eq(0),
            paas_domains::ssl_due_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?;
    Ok(rows == 1)
}

/// The filters selecting the row of the current attempt (see [`current`]).
type CurrentAttempt = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<
            diesel::dsl::Filter<paas_domains::table, diesel::dsl::Eq<paas_domains::id, i64>>,
            diesel::dsl::Eq<paas_domains::ssl_request, i32>,
        >,
        diesel::dsl::Eq<paas_domains::ssl_attempts, i32>,
    >,
    diesel::dsl::IsNotNull<paas_domains::ssl_due_at>,
>;

/// The domains row of attempt `attempt` while it is the current one: its
/// request, its number, and still holding the domain.
fn current(domain_id: i64, request: i32, attempt: i32) -> CurrentAttempt {
    paas_domains::table
        .filter(paas_domains::id.eq(domain_id))
        .filter(paas_domains::ssl_request.eq(request))
        .filter(paas_domains::ssl_attempts.eq(attempt))
        .filter(paas_domains::ssl_due_at.is_not_null())
}

/// Attempt `attempt` failed with attempts left: the next is due at
/// `retry_at`. `false` when the attempt is no longer the current one.
pub async fn attempt_failed(
    conn: &mut Conn,
    domain_id: i64,
    request: i32,
    attempt: i32,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<bool> {
    let rows = diesel::update(current(domain_id, request, attempt))
        .set((
            paas_domains::ssl_due_at.eq(Some(retry_at)),
            paas_domains::ssl_error.eq(Some(error)),
        ))
        .execute(conn)
        .await?;
    Ok(rows == 1)
}

/// The last attempt (`attempt`) failed: the domain is `failed`, unless a
/// certificate still serves it (a renewal that failed keeps the old one,
/// `active`). Answers the domain, or `None` when the attempt is no longer
/// the current one (so the owner is told once).
pub async fn gave_up(
    conn: &mut Conn,
    domain_id: i64,
    request: i32,
    attempt: i32,
    error: &str,
    at: DateTime<Utc>,
) -> Result<Option<Domain>> {
    let status = sql::<Text>("CASE WHEN certificate_pem IS NOT NULL AND certificate_expires_at > ")
        .bind::<Timestamptz, _>(at)
        .sql(" THEN 'active' ELSE 'failed' END");
    Ok(diesel::update(current(domain_id, request, attempt))
        .set((
            paas_domains::ssl_status.eq(status),
            paas_domains::ssl_error.eq(Some(error)),
            paas_domains::ssl_due_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(Domain::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// A certificate to install, its key still sealed.
#[derive(Clone)]
pub struct Installable {
    pub domain_id: i64,
    pub hostname: String,
    pub chain_pem: String,
    pub sealed_key: Vec<u8>,
}

impl std::fmt::Debug for Installable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installable")
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// The certificates that serve an application's names now (not expired).
pub async fn installable(conn: &mut Conn, application_id: i64) -> Result<Vec<Installable>> {
    type Row = (i64, String, Option<String>, Option<Vec<u8>>);
    let rows: Vec<Row> = paas_domains::table
        .filter(paas_domains::application_id.eq(application_id))
        .filter(paas_domains::certificate_pem.is_not_null())
        .filter(paas_domains::private_key.is_not_null())
        .filter(paas_domains::certificate_expires_at.gt(now))
        .order((paas_domains::is_system.desc(), paas_domains::id.asc()))
        .select((
            paas_domains::id,
            paas_domains::hostname,
            paas_domains::certificate_pem,
            paas_domains::private_key,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(domain_id, hostname, chain, key)| {
            Some(Installable {
                domain_id,
                hostname,
                chain_pem: chain?,
                sealed_key: key?,
            })
        })
        .collect())
}

/// Running or stopped applications with a certificate issued after their
/// node was last told their names (no apply, restart or stop task created
/// since): their ingress still lacks it (it was issued during a rollout).
pub async fn awaiting_install(conn: &mut Conn, limit: i64) -> Result<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        application_id: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT DISTINCT d.application_id
           FROM paas_domains d JOIN paas_applications a ON a.id = d.application_id
          WHERE d.certificate_issued_at IS NOT NULL
            AND a.status IN ('running', 'stopped') AND a.node_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM paas_tasks t
                             WHERE t.application_id = d.application_id
                               AND t.kind IN ('app.apply', 'app.restart', 'app.stop')
                               AND t.created_at > d.certificate_issued_at)
          LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.application_id).collect())
}

/// Certificates by status, and the ones expiring first (for the admin).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub by_status: Vec<(String, i64)>,
    /// (hostname, expiry, status), soonest first.
    pub expiring_first: Vec<(String, DateTime<Utc>, String)>,
}

pub async fn summary(conn: &mut Conn, limit: i64) -> Result<Summary> {
    let by_status = paas_domains::table
        .group_by(paas_domains::ssl_status)
        .select((paas_domains::ssl_status, diesel::dsl::count_star()))
        .order(paas_domains::ssl_status.asc())
        .load(conn)
        .await?;
    let expiring: Vec<(String, Option<DateTime<Utc>>, String)> = paas_domains::table
        .filter(paas_domains::certificate_expires_at.is_not_null())
        .order(paas_domains::certificate_expires_at.asc())
        .limit(limit)
        .select((
            paas_domains::hostname,
            paas_domains::certificate_expires_at,
            paas_domains::ssl_status,
        ))
        .load(conn)
        .await?;
    Ok(Summary {
        by_status,
        expiring_first: expiring
            .into_iter()
            .filter_map(|(h, at, s)| Some((h, at?, s)))
            .collect(),
    })
}

/// The sealed credentials of the ACME account at `directory_url`, if any.
pub async fn acme_account(conn: &mut Conn, directory_url: &str) -> Result<Option<Vec<u8>>> {
    Ok(paas_acme_accounts::table
        .filter(paas_acme_accounts::directory_url.eq(directory_url))
        .select(paas_acme_accounts::credentials)
        .first(conn)
        .await
        .optional()?)
}

/// Stores the account's credentials (sealed with
/// [`account_associated_data`]); when another process stored an account for
/// the directory first, answers that one instead.
pub async fn save_acme_account(
    conn: &mut Conn,
    directory_url: &str,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    diesel::insert_into(paas_acme_accounts::table)
        .values((
            paas_acme_accounts::directory_url.eq(directory_url),
            paas_acme_accounts::credentials.eq(sealed),
        ))
        .on_conflict(paas_acme_accounts::directory_url)
        .do_nothing()
        .execute(conn)
        .await?;
    acme_account(conn, directory_url)
        .await?
        .ok_or(crate::Error::NotFound)
}

/// Binds the account's sealed credentials to its directory.
pub fn account_associated_data(directory_url: &str) -> Vec<u8> {
    format!("paas_acme_accounts.credentials:{directory_url}").into_bytes()
}
