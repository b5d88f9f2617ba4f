//! Customers' event webhooks and their deliveries. A webhook's secret is
//! stored sealed (it signs every delivery, so it must be read back); a
//! delivery is one notice to one webhook, written once per pair, with its
//! attempts, and ends `succeeded` or, after the last attempt, `failed`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::schema::{paas_webhook_deliveries, paas_webhooks};
use crate::{Conn, Result};

/// A webhook without its secret.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_webhooks, check_for_backend(diesel::pg::Pg))]
pub struct Webhook {
    pub id: i64,
    pub user_id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl Webhook {
    /// Binds a webhook's sealed secret to the webhook.
    pub fn secret_associated_data(id: i64) -> Vec<u8> {
        format!("paas_webhooks.secret:{id}").into_bytes()
    }
}

/// The most webhooks a customer may have.
pub const MAX_PER_CUSTOMER: i64 = 20;

/// Creates a webhook with its secret sealed by `seal(id)`, in one
/// transaction; more than [`MAX_PER_CUSTOMER`] is a conflict.
pub async fn create(
    conn: &mut Conn,
    owner: i64,
    url: &str,
    events: &[String],
    seal: &(dyn Fn(i64) -> Vec<u8> + Sync),
) -> Result<Webhook> {
    conn.transaction(async |conn| {
        let count: i64 = paas_webhooks::table
            .filter(paas_webhooks::user_id.eq(owner))
            .count()
            .get_result(conn)
            .await?;
        if count >= MAX_PER_CUSTOMER {
            return Err(crate::Error::conflict(
                None,
                format!("a customer has at most {MAX_PER_CUSTOMER} webhooks"),
            ));
        }
        let id: i64 = diesel::insert_into(paas_webhooks::table)
            .values((
                paas_webhooks::user_id.eq(owner),
                paas_webhooks::url.eq(url),
                paas_webhooks::events.eq(events),
                paas_webhooks::secret.eq(Vec::<u8>::new()),
            ))
            .returning(paas_webhooks::id)
            .get_result(conn)
            .await?;
        Ok(diesel::update(paas_webhooks::table.find(id))
            .set(paas_webhooks::secret.eq(seal(id)))
            .returning(Webhook::as_returning())
            .get_result(conn)
            .await?)
    })
    .await
}

/// The owner's webhooks, oldest first.
pub async fn list(conn: &mut Conn, owner: i64) -> Result<Vec<Webhook>> {
    Ok(paas_webhooks::table
        .filter(paas_webhooks::user_id.eq(owner))
        .order(paas_webhooks::id.asc())
        .select(Webhook::as_select())
        .load(conn)
        .await?)
}

/// The owner's webhook.
pub async fn get(conn: &mut Conn, owner: i64, id: i64) -> Result<Webhook> {
    Ok(paas_webhooks::table
        .filter(paas_webhooks::id.eq(id))
        .filter(paas_webhooks::user_id.eq(owner))
        .select(Webhook::as_select())
        .first(conn)
        .await?)
}

/// Deletes the owner's webhook (and its deliveries).
pub async fn delete(conn: &mut Conn, owner: i64, id: i64) -> Result<()> {
    let rows = diesel::delete(
        paas_webhooks::table
            .filter(paas_webhooks::id.eq(id))
            .filter(paas_webhooks::user_id.eq(owner)),
    )
    .execute(conn)
    .await?;
    crate::found(rows)
}

/// A webhook with its sealed secret (for the delivering job).
pub async fn with_secret(conn: &mut Conn, id: i64) -> Result<(Webhook, Vec<u8>)> {
    Ok(paas_webhooks::table
        .find(id)
        .select((Webhook::as_select(), paas_webhooks::secret))
        .first(conn)
        .await?)
}

/// One delivery of a notice to a webhook.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_webhook_deliveries, check_for_backend(diesel::pg::Pg))]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub notification_id: i64,
    pub event: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Writes the deliveries of a notice of `owner` as `event` to every one of
/// the owner's webhooks that wants it (once per pair); answers the pending
/// ones, new or not.
pub async fn fan_out(
    conn: &mut Conn,
    owner: i64,
    notification_id: i64,
    event: &str,
) -> Result<Vec<Delivery>> {
    let hooks: Vec<i64> = paas_webhooks::table
        .filter(paas_webhooks::user_id.eq(owner))
        .filter(paas_webhooks::events.contains(vec![event.to_string()]))
        .select(paas_webhooks::id)
        .load(conn)
        .await?;
    for hook in &hooks {
        diesel::insert_into(paas_webhook_deliveries::table)
            .values((
                paas_webhook_deliveries::webhook_id.eq(hook),
                paas_webhook_deliveries::notification_id.eq(notification_id),
                paas_webhook_deliveries::event.eq(event),
            ))
            .on_conflict((
                paas_webhook_deliveries::webhook_id,
                paas_webhook_deliveries::notification_id,
            ))
            .do_nothing()
            .execute(conn)
            .await?;
    }
    Ok(paas_webhook_deliveries::table
        .filter(paas_webhook_deliveries::notification_id.eq(notification_id))
        .filter(paas_webhook_deliveries::status.eq("pending"))
        .order(paas_webhook_deliveries::id.asc())
        .select(Delivery::as_select())
        .load(conn)
        .await?)
}

/// A delivery by id.
pub async fn delivery(conn: &mut Conn, id: i64) -> Result<Delivery> {
    Ok(paas_webhook_deliveries::table
        .find(id)
        .select(Delivery::as_select())
        .first(conn)
        .await?)
}

/// The latest deliveries of the owner's webhook, newest first.
pub async fn deliveries(
    conn: &mut Conn,
    owner: i64,
    webhook_id: i64,
    limit: i64,
) -> Result<Vec<Delivery>> {
    get(conn, owner, webhook_id).await?;
    Ok(paas_webhook_deliveries::table
        .filter(paas_webhook_deliveries::webhook_id.eq(webhook_id))
        .order(paas_webhook_deliveries::id.desc())
        .limit(limit)
        .select(Delivery::as_select())
        .load(conn)
        .await?)
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// The HTTP status the endpoint answered, if it answered.
    pub response_status: Option<i32>,
    /// Why it failed; `None` for a 2xx answer.
    pub error: Option<&'a str>,
    /// When to try again; `None` for the last attempt (or a success).
    pub retry_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// Records an attempt of a pending delivery, counted only if `attempts` is
/// still what the caller read (two runs of one attempt record it once);
/// answers the delivery as it is now, or `None` when the record moved on.
pub async fn record_attempt(
    conn: &mut Conn,
    id: i64,
    attempts: i32,
    attempt: &Attempt<'_>,
) -> Result<Option<Delivery>> {
    let status = match (attempt.error, attempt.retry_at) {
        (None, _) => "succeeded",
        (Some(_), Some(_)) => "pending",
        (Some(_), None) => "failed",
    };
    Ok(diesel::update(
        paas_webhook_deliveries::table
            .find(id)
            .filter(paas_webhook_deliveries::status.eq("pending"))
            .filter(paas_webhook_deliveries::attempts.eq(attempts)),
    )
    .set((
        paas_webhook_deliveries::status.eq(status),
        paas_webhook_deliveries::attempts.eq(attempts + 1),
        paas_webhook_deliveries::response_status.eq(attempt.response_status),
        paas_webhook_deliveries::error.eq(attempt.error),
        paas_webhook_deliveries::last_attempt_at.eq(Some(attempt.at)),
        paas_webhook_deliveries::next_attempt_at.eq(attempt.retry_at),
    ))
    .returning(Delivery::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Pending deliveries whose next attempt is due by `now` (or never ran).
pub async fn due(conn: &mut Conn, now: DateTime<Utc>, limit: i64) -> Result<Vec<Delivery>> {
    Ok(paas_webhook_deliveries::table
        .filter(paas_webhook_deliveries::status.eq("pending"))
        .filter(
            paas_webhook_deliveries::next_attempt_at
                .is_null()
                .or(paas_webhook_deliveries::next_attempt_at.le(now)),
        )
        .order(paas_webhook_deliveries::id.asc())
        .limit(limit)
        .select(Delivery::as_select())
        .load(conn)
        .await?)
}
