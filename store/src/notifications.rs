//! Notices to customers: stored here, pushed on the `notify` queue, and
//! marked delivered by its worker.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::paas_notifications;
use crate::{Conn, Page, Result};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_notifications, check_for_backend(diesel::pg::Pg))]
pub struct Notification {
    pub id: i64,
    pub user_id: i64,
    /// `balance_negative`, `suspended`, `resumed`, `ssl_failed`,
    /// `ssl_renewal_failed`, `backup_failed`, `restore_failed`,
    /// `build_succeeded`, `build_failed` or `app_crashed`.
    pub kind: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Facts for webhook payloads (ids, names; never a secret).
    pub data: serde_json::Value,
    /// Makes writing the same event twice a no-op.
    pub dedupe_key: Option<String>,
}

pub async fn create(
    conn: &mut Conn,
    user_id: i64,
    kind: &str,
    message: &str,
    at: DateTime<Utc>,
) -> Result<Notification> {
    Ok(diesel::insert_into(paas_notifications::table)
        .values((
            paas_notifications::user_id.eq(user_id),
            paas_notifications::kind.eq(kind),
            paas_notifications::message.eq(message),
            paas_notifications::created_at.eq(at),
        ))
        .returning(Notification::as_returning())
        .get_result(conn)
        .await?)
}

/// Writes a notice with facts for webhooks, once per `key`: a second write
/// with the same key (a job run twice) writes nothing and answers `None`.
pub async fn create_once(
    conn: &mut Conn,
    user_id: i64,
    kind: &str,
    message: &str,
    data: &serde_json::Value,
    key: &str,
    at: DateTime<Utc>,
) -> Result<Option<Notification>> {
    Ok(diesel::insert_into(paas_notifications::table)
        .values((
            paas_notifications::user_id.eq(user_id),
            paas_notifications::kind.eq(kind),
            paas_notifications::message.eq(message),
            paas_notifications::created_at.eq(at),
            paas_notifications::data.eq(data),
            paas_notifications::dedupe_key.eq(Some(key)),
        ))
        .on_conflict(paas_notifications::dedupe_key)
        .do_nothing()
        .returning(Notification::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// A notice by id.
pub async fn by_id(conn: &mut Conn, id: i64) -> Result<Notification> {
    Ok(paas_notifications::table
        .find(id)
        .select(Notification::as_select())
        .first(conn)
        .await?)
}

/// A customer's notices, newest first.
pub async fn list(conn: &mut Conn, user_id: i64, page: Page) -> Result<Vec<Notification>> {
    Ok(paas_notifications::table
        .filter(paas_notifications::user_id.eq(user_id))
        .order(paas_notifications::id.desc())
        .limit(page.limit)
        .offset(page.offset)
        .select(Notification::as_select())
        .load(conn)
        .await?)
}

/// Notices not delivered yet, oldest first.
pub async fn undelivered(conn: &mut Conn, limit: i64) -> Result<Vec<Notification>> {
    Ok(paas_notifications::table
        .filter(paas_notifications::delivered_at.is_null())
        .order(paas_notifications::id)
        .limit(limit)
        .select(Notification::as_select())
        .load(conn)
        .await?)
}

/// Marks a notice delivered (a second call changes nothing).
pub async fn mark_delivered(conn: &mut Conn, id: i64, at: DateTime<Utc>) -> Result<bool> {
    let updated = diesel::update(
        paas_notifications::table
            .find(id)
            .filter(paas_notifications::delivered_at.is_null()),
    )
    .set(paas_notifications::delivered_at.eq(at))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}
