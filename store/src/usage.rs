//! Usage intervals: which resource ran, on which plan, with how many
//! instances, from when to when. Every application state write calls
//! [`sync_application`] in its transaction, so the intervals follow the
//! state exactly: a change of status, instance count or plan closes the open
//! interval and opens the next one at the same instant.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use skypanel_domain::billing::billable_instances;

use crate::apps::Application;
use crate::schema::paas_usage;
use crate::{Conn, Result};

/// The resource kinds that are billed (`resource_type` of usage and records).
pub const APPLICATION: &str = "application";
pub const DATABASE: &str = "database";

#[derive(Queryable, Selectable, Debug, Clone, PartialEq, Eq)]
#[diesel(table_name = paas_usage, check_for_backend(diesel::pg::Pg))]
pub struct Interval {
    pub id: i64,
    pub user_id: i64,
    pub resource_type: String,
    pub resource_id: i64,
    pub plan_id: i64,
    pub instances: i32,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// What a resource runs now: `None` when nothing is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    pub user_id: i64,
    pub plan_id: i64,
    pub instances: i32,
}

/// Brings the application's open interval in line with its row: called in
/// the transaction that wrote the row, with the instant of the change.
pub async fn sync_application(conn: &mut Conn, app: &Application, at: DateTime<Utc>) -> Result<()> {
    let billed = match app.status() {
        Ok(status) => billable_instances(status, app.total_instances()),
        Err(_) => Some(0),
    };
    let running = |instances: i32| {
        (instances > 0).then_some(Running {
            user_id: app.user_id,
            plan_id: app.plan_id,
            instances,
        })
    };
    match billed {
        Some(instances) => sync(conn, APPLICATION, app.id, running(instances), at).await,
        // A rollout: an interval already open goes on (with the current count
        // and plan); none is opened for a build of something that did not run.
        None => {
            if open(conn, APPLICATION, app.id).await?.is_some() {
                sync(
                    conn,
                    APPLICATION,
                    app.id,
                    running(app.total_instances()),
                    at,
                )
                .await
            } else {
                Ok(())
            }
        }
    }
}

/// The resource's open interval, locked for the caller's transaction.
async fn open(conn: &mut Conn, resource_type: &str, resource_id: i64) -> Result<Option<Interval>> {
    Ok(paas_usage::table
        .filter(paas_usage::resource_type.eq(resource_type))
        .filter(paas_usage::resource_id.eq(resource_id))
        .filter(paas_usage::ended_at.is_null())
        .for_update()
        .select(Interval::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Closes the open interval of a resource that is gone.
pub async fn close(
    conn: &mut Conn,
    resource_type: &str,
    resource_id: i64,
    at: DateTime<Utc>,
) -> Result<()> {
    sync(conn, resource_type, resource_id, None, at).await
}

/// Makes the resource's open interval say `now` from `at` on.
pub async fn sync(
    conn: &mut Conn,
    resource_type: &str,
    resource_id: i64,
    now: Option<Running>,
    at: DateTime<Utc>,
) -> Result<()> {
    let open = open(conn, resource_type, resource_id).await?;
    let unchanged = match (&open, now) {
        (Some(open), Some(now)) => open.plan_id == now.plan_id && open.instances == now.instances,
        (None, None) => true,
        _ => false,
    };
    if unchanged {
        return Ok(());
    }
    // A clock never runs backwards for a resource: an instant before the open
    // interval's start (clock skew, a racing writer) is taken as that start.
    let at = open.as_ref().map_or(at, |o| at.max(o.started_at));
    if let Some(open) = open {
        diesel::update(paas_usage::table.find(open.id))
            .set(paas_usage::ended_at.eq(at))
            .execute(conn)
            .await?;
    }
    if let Some(now) = now {
        diesel::insert_into(paas_usage::table)
            .values((
                paas_usage::user_id.eq(now.user_id),
                paas_usage::resource_type.eq(resource_type),
                paas_usage::resource_id.eq(resource_id),
                paas_usage::plan_id.eq(now.plan_id),
                paas_usage::instances.eq(now.instances),
                paas_usage::started_at.eq(at),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// A resource's intervals, oldest first (for reports and tests).
pub async fn intervals(
    conn: &mut Conn,
    resource_type: &str,
    resource_id: i64,
) -> Result<Vec<Interval>> {
    Ok(paas_usage::table
        .filter(paas_usage::resource_type.eq(resource_type))
        .filter(paas_usage::resource_id.eq(resource_id))
        .order(paas_usage::started_at)
        .select(Interval::as_select())
        .load(conn)
        .await?)
}

/// A customer's open intervals: what is billed right now.
pub async fn open_for_owner(conn: &mut Conn, user_id: i64) -> Result<Vec<Interval>> {
    Ok(paas_usage::table
        .filter(paas_usage::user_id.eq(user_id))
        .filter(paas_usage::ended_at.is_null())
        .order((paas_usage::resource_type, paas_usage::resource_id))
        .select(Interval::as_select())
        .load(conn)
        .await?)
}
