//! Requests that wait for an application's rollout in flight: a deploy, a
//! rollback or a configuration release asked for while another one runs.
//! One per kind and application (the newest request of a kind replaces the
//! older one); they run oldest first once the rollout ends.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::schema::paas_app_requests;
use crate::{Conn, Result};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_app_requests, check_for_backend(diesel::pg::Pg))]
pub struct AppRequestRow {
    pub id: i64,
    pub application_id: i64,
    /// `deploy`, `rollback` or `config`.
    pub kind: String,
    /// What the request carries (a commit, a release version, a description).
    pub payload: serde_json::Value,
    pub requested_by: Option<i64>,
    pub requested_at: DateTime<Utc>,
}

/// Records a waiting request, replacing an earlier one of the same kind;
/// answers its place in the line (1 = next).
pub async fn wait(
    conn: &mut Conn,
    application_id: i64,
    kind: &str,
    payload: &serde_json::Value,
    requested_by: Option<i64>,
) -> Result<i64> {
    diesel::insert_into(paas_app_requests::table)
        .values((
            paas_app_requests::application_id.eq(application_id),
            paas_app_requests::kind.eq(kind),
            paas_app_requests::payload.eq(payload),
            paas_app_requests::requested_by.eq(requested_by),
        ))
        .on_conflict((paas_app_requests::application_id, paas_app_requests::kind))
        .do_update()
        .set((
            paas_app_requests::payload.eq(excluded(paas_app_requests::payload)),
            paas_app_requests::requested_by.eq(excluded(paas_app_requests::requested_by)),
        ))
        .execute(conn)
        .await?;
    let line = waiting(conn, application_id).await?;
    Ok(line
        .iter()
        .position(|r| r.kind == kind)
        .map_or(line.len() as i64, |p| p as i64 + 1))
}

/// The application's waiting requests, the oldest first.
pub async fn waiting(conn: &mut Conn, application_id: i64) -> Result<Vec<AppRequestRow>> {
    Ok(paas_app_requests::table
        .filter(paas_app_requests::application_id.eq(application_id))
        .order((paas_app_requests::requested_at, paas_app_requests::id))
        .select(AppRequestRow::as_select())
        .load(conn)
        .await?)
}

/// Removes a request that ran (or no longer can). Answers whether it was
/// still there: a request taken by someone else is not run twice.
pub async fn take(conn: &mut Conn, id: i64) -> Result<bool> {
    Ok(diesel::delete(paas_app_requests::table.find(id))
        .execute(conn)
        .await?
        == 1)
}

/// Forgets every waiting request of the application (it is being deleted).
pub async fn clear(conn: &mut Conn, application_id: i64) -> Result<()> {
    diesel::delete(
        paas_app_requests::table.filter(paas_app_requests::application_id.eq(application_id)),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets the application's waiting request of one kind.
pub async fn clear_kind(conn: &mut Conn, application_id: i64, kind: &str) -> Result<()> {
    diesel::delete(
        paas_app_requests::table
            .filter(paas_app_requests::application_id.eq(application_id))
            .filter(paas_app_requests::kind.eq(kind)),
    )
    .execute(conn)
    .await?;
    Ok(())
}
