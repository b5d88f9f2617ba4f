//! One-off runs of applications (`sky run`): each is `pending` until its
//! node starts the container, `running` (billed per second through a usage
//! interval of resource type `run`) until it ends, then `succeeded` (exit 0)
//! or `failed` (another exit code, or a reason: its time limit, its session
//! ended, its node went away), once. An attached run's session opens with a
//! one-time ticket, stored as its digest.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::paas_runs;
use crate::usage::{self, Running};
use crate::{Conn, Result};

/// The usage resource type of a run.
pub const RESOURCE: &str = "run";

pub const PENDING: &str = "pending";
pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";

/// Whether a run's status is an end.
pub fn is_finished(status: &str) -> bool {
    matches!(status, SUCCEEDED | FAILED)
}

#[derive(Queryable, Selectable, Debug, Clone, PartialEq, Eq)]
#[diesel(table_name = paas_runs, check_for_backend(diesel::pg::Pg))]
pub struct Run {
    pub id: i64,
    pub application_id: i64,
    pub user_id: i64,
    pub started_by: i64,
    pub release_version: i32,
    pub plan_id: i64,
    pub command: String,
    pub attach: bool,
    pub tty: bool,
    pub status: String,
    pub exit_code: Option<i32>,
    pub failure: Option<String>,
    pub ttl_secs: i32,
    pub node_id: Option<i64>,
    pub task_id: Option<i64>,
    pub session_ticket: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl Run {
    /// How long it ran, in whole seconds (until now while it runs).
    pub fn duration_secs(&self, now: DateTime<Utc>) -> Option<i64> {
        let started = self.started_at?;
        let ended = self.ended_at.unwrap_or(now);
        Some((ended - started).num_seconds().max(0))
    }
}

/// A run to record.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub application_id: i64,
    pub user_id: i64,
    pub started_by: i64,
    pub release_version: i32,
    pub plan_id: i64,
    pub command: &'a str,
    pub attach: bool,
    pub tty: bool,
    pub ttl_secs: i32,
    pub node_id: i64,
    pub session_ticket: Option<&'a str>,
}

/// Records a run (in the caller's transaction, with its task).
pub async fn create(conn: &mut Conn, new: &NewRun<'_>) -> Result<Run> {
    Ok(diesel::insert_into(paas_runs::table)
        .values((
            paas_runs::application_id.eq(new.application_id),
            paas_runs::user_id.eq(new.user_id),
            paas_runs::started_by.eq(new.started_by),
            paas_runs::release_version.eq(new.release_version),
            paas_runs::plan_id.eq(new.plan_id),
            paas_runs::command.eq(new.command),
            paas_runs::attach.eq(new.attach),
            paas_runs::tty.eq(new.tty),
            paas_runs::ttl_secs.eq(new.ttl_secs),
            paas_runs::node_id.eq(new.node_id),
            paas_runs::session_ticket.eq(new.session_ticket),
        ))
        .returning(Run::as_returning())
        .get_result(conn)
        .await?)
}

/// Ties the run to the task that carries it out.
pub async fn set_task(conn: &mut Conn, run_id: i64, task_id: i64) -> Result<()> {
    diesel::update(paas_runs::table.find(run_id))
        .set(paas_runs::task_id.eq(task_id))
        .execute(conn)
        .await?;
    Ok(())
}

/// The owner's run of the owner's application; `NotFound` for anyone else's.
pub async fn of_owner(conn: &mut Conn, user_id: i64, app_id: i64, run_id: i64) -> Result<Run> {
    Ok(paas_runs::table
        .find(run_id)
        .filter(paas_runs::user_id.eq(user_id))
        .filter(paas_runs::application_id.eq(app_id))
        .select(Run::as_select())
        .first(conn)
        .await?)
}

/// A run by id (for the control plane's own use).
pub async fn get(conn: &mut Conn, run_id: i64) -> Result<Run> {
    Ok(paas_runs::table
        .find(run_id)
        .select(Run::as_select())
        .first(conn)
        .await?)
}

/// The run a task carries out, if any.
pub async fn by_task(conn: &mut Conn, task_id: i64) -> Result<Option<Run>> {
    Ok(paas_runs::table
        .filter(paas_runs::task_id.eq(task_id))
        .select(Run::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A page of the application's runs, newest first.
pub async fn list(
    conn: &mut Conn,
    user_id: i64,
    app_id: i64,
    page: crate::Page,
) -> Result<Vec<Run>> {
    Ok(paas_runs::table
        .filter(paas_runs::user_id.eq(user_id))
        .filter(paas_runs::application_id.eq(app_id))
        .order(paas_runs::id.desc())
        .limit(page.limit)
        .offset(page.offset)
        .select(Run::as_select())
        .load(conn)
        .await?)
}

/// How many runs of the application have not ended.
pub async fn live_of_app(conn: &mut Conn, app_id: i64) -> Result<i64> {
    Ok(paas_runs::table
        .filter(paas_runs::application_id.eq(app_id))
        .filter(paas_runs::status.eq_any([PENDING, RUNNING]))
        .count()
        .get_result(conn)
        .await?)
}

/// The customer's runs that have not ended.
pub async fn live_of_owner(conn: &mut Conn, user_id: i64) -> Result<Vec<Run>> {
    Ok(paas_runs::table
        .filter(paas_runs::user_id.eq(user_id))
        .filter(paas_runs::status.eq_any([PENDING, RUNNING]))
        .order(paas_runs::id)
        .select(Run::as_select())
        .load(conn)
        .await?)
}

/// Uses an attached run's one-time ticket: answers the run when `digest`
/// is its ticket's (which is then gone), `None` otherwise.
pub async fn take_ticket(conn: &mut Conn, run_id: i64, digest: &str) -> Result<Option<Run>> {
    Ok(diesel::update(
        paas_runs::table
            .find(run_id)
            .filter(paas_runs::session_ticket.eq(digest)),
    )
    .set(paas_runs::session_ticket.eq(None::<String>))
    .returning(Run::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// The node started the run's container at `at`: `running`, and billed from
/// then on. Answers the run when this changed it (a repeated or late report,
/// or another node's, changes nothing).
pub async fn started(
    conn: &mut Conn,
    run_id: i64,
    node_id: i64,
    at: DateTime<Utc>,
) -> Result<Option<Run>> {
    use diesel_async::AsyncConnection;
    conn.transaction(async |conn| {
        let run: Option<Run> = diesel::update(
            paas_runs::table
                .find(run_id)
                .filter(paas_runs::node_id.eq(node_id))
                .filter(paas_runs::status.eq(PENDING)),
        )
        .set((paas_runs::status.eq(RUNNING), paas_runs::started_at.eq(at)))
        .returning(Run::as_returning())
        .get_result(conn)
        .await
        .optional()?;
        if let Some(run) = &run {
            let running = Running {
                user_id: run.user_id,
                plan_id: run.plan_id,
                instances: 1,
            };
            usage::sync(conn, RESOURCE, run.id, Some(running), at).await?;
        }
        Ok(run)
    })
    .await
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending<'a> {
    pub exit_code: Option<i32>,
    /// Why, when not by its command's own exit.
    pub failure: Option<&'a str>,
}

/// Ends the run (once): `succeeded` on exit 0 without a failure, else
/// `failed`; its billing stops at `at`. Answers the run when this ended it.
pub async fn finish(
    conn: &mut Conn,
    run_id: i64,
    ending: Ending<'_>,
    at: DateTime<Utc>,
) -> Result<Option<Run>> {
    use diesel_async::AsyncConnection;
    let status = if ending.exit_code == Some(0) && ending.failure.is_none() {
        SUCCEEDED
    } else {
        FAILED
    };
    conn.transaction(async |conn| {
        let run: Option<Run> = diesel::update(
            paas_runs::table
                .find(run_id)
                .filter(paas_runs::status.eq_any([PENDING, RUNNING])),
        )
        .set((
            paas_runs::status.eq(status),
            paas_runs::exit_code.eq(ending.exit_code),
            paas_runs::failure.eq(ending.failure),
            paas_runs::ended_at.eq(at),
            paas_runs::session_ticket.eq(None::<String>),
        ))
        .returning(Run::as_returning())
        .get_result(conn)
        .await
        .optional()?;
        if run.is_some() {
            usage::close(conn, RESOURCE, run_id, at).await?;
        }
        Ok(run)
    })
    .await
}

/// Runs that should have ended by `now`: created more than their time limit
/// plus `grace` seconds ago and still not ended (their node never said).
pub async fn overdue(conn: &mut Conn, now: DateTime<Utc>, grace_secs: i64) -> Result<Vec<Run>> {
    let live: Vec<Run> = paas_runs::table
        .filter(paas_runs::status.eq_any([PENDING, RUNNING]))
        .order(paas_runs::id)
        .select(Run::as_select())
        .load(conn)
        .await?;
    Ok(live
        .into_iter()
        .filter(|run| {
            let from = run.started_at.unwrap_or(run.created_at);
            now > from + chrono::Duration::seconds(i64::from(run.ttl_secs) + grace_secs)
        })
        .collect())
}
