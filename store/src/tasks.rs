//! The agent task queue: tasks per node, leased with `FOR UPDATE SKIP LOCKED`,
//! fenced by lease id, expired back to the queue. Tasks of one application on
//! one node are handed out strictly in order: a task waits while an earlier
//! one of the same application on that node is unfinished. Status changes
//! follow `domain::lifecycle::task`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};
use skypanel_domain::lifecycle::task::is_final;
use skypanel_domain::lifecycle::{TaskEvent, TaskStatus, task_transition};
use uuid::Uuid;

use crate::schema::{paas_task_logs, paas_tasks};
use crate::{Conn, Error, Result};

#[derive(Queryable, QueryableByName, Selectable, Clone)]
#[diesel(table_name = paas_tasks, check_for_backend(diesel::pg::Pg))]
pub struct Task {
    pub id: i64,
    pub node_id: i64,
    pub application_id: Option<i64>,
    pub database_id: Option<i64>,
    pub build_id: Option<i64>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub lease_id: Option<Uuid>,
    pub lease_deadline: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub generation: Option<i64>,
    /// Sealed; associated data from [`Task::secrets_associated_data`].
    pub sealed_secrets: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Someone cancelled the task while an agent held it.
    pub cancel_requested: bool,
    /// What the agent reported beyond the status (`protocol::task::TaskResult`).
    pub result: Option<serde_json::Value>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("node_id", &self.node_id)
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Task {
    pub fn status(&self) -> Result<TaskStatus> {
        Ok(self.status.parse()?)
    }

    /// Binds a task's sealed secrets to the task.
    pub fn secrets_associated_data(id: i64) -> Vec<u8> {
        format!("paas_tasks.sealed_secrets:{id}").into_bytes()
    }
}

/// A task to queue.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub node_id: i64,
    pub application_id: Option<i64>,
    /// The build the task carries out, for `app.build`.
    pub build_id: Option<i64>,
    /// The managed database the task acts on, for `db.*`.
    pub database_id: Option<i64>,
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub generation: Option<i64>,
    pub max_attempts: i32,
}

/// Why a report about a task was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The report carries a lease that is no longer the task's.
    StaleLease,
    /// The report contradicts what is recorded (e.g. failed after succeeded).
    Contradiction(String),
}

/// The outcome of a report: the task after it, and whether it changed anything.
#[derive(Debug, Clone)]
pub struct Reported {
    pub task: Task,
    pub changed: bool,
}

/// Queues a task, sealing `secrets` with the platform key once its id is known.
/// Runs inside the caller's transaction, which a task with secrets needs: the
/// insert and the secrets must commit together, or an agent may lease the
/// task without them.
pub async fn create(
    conn: &mut Conn,
    new: &NewTask,
    seal: Option<&(dyn Fn(i64) -> Vec<u8> + Sync)>,
) -> Result<Task> {
    let task: Task = diesel::insert_into(paas_tasks::table)
        .values((
            paas_tasks::node_id.eq(new.node_id),
            paas_tasks::application_id.eq(new.application_id),
            paas_tasks::build_id.eq(new.build_id),
            paas_tasks::database_id.eq(new.database_id),
            paas_tasks::kind.eq(new.kind),
            paas_tasks::payload.eq(&new.payload),
            paas_tasks::generation.eq(new.generation),
            paas_tasks::max_attempts.eq(new.max_attempts),
        ))
        .returning(Task::as_returning())
        .get_result(conn)
        .await?;
    match seal {
        Some(seal) => Ok(diesel::update(paas_tasks::table.find(task.id))
            .set(paas_tasks::sealed_secrets.eq(Some(seal(task.id))))
            .returning(Task::as_returning())
            .get_result(conn)
            .await?),
        None => Ok(task),
    }
}

/// Leases up to `max` queued tasks of the node. The lease lasts `ack_secs`
/// until the agent acknowledges it with a `Run` report (an answer lost on the
/// way, to an agent that died, frees the task soon). Tasks other agents are
/// leasing at the same moment are skipped, never handed twice.
pub async fn lease(
    conn: &mut Conn,
    node_id: i64,
    max: i64,
    ack_secs: i64,
    request: Option<Uuid>,
) -> Result<Vec<Task>> {
    let leased = task_transition(TaskStatus::Queued, TaskEvent::Lease)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let mut tasks: Vec<Task> = LeaseStatement {
        node_id,
        max,
        ack_secs,
        status: leased.as_str(),
        request,
    }
    .load(conn)
    .await?;
    tasks.sort_by_key(|t| t.id);
    Ok(tasks)
}

/// [`lease`]'s statement. Written out as a query fragment rather than a
/// `sql_query` (which is parsed and planned at every call) so that each
/// pooled connection prepares it once: it runs for every task an agent
/// picks up, and planning was half its time (0.65 ms a lease against
/// 0.35 ms prepared, `pgbench` on this machine).
#[derive(diesel::query_builder::QueryId)]
struct LeaseStatement {
    node_id: i64,
    max: i64,
    ack_secs: i64,
    status: &'static str,
    request: Option<Uuid>,
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for LeaseStatement {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        out.push_sql("UPDATE paas_tasks t SET status = ");
        out.push_bind_param::<Text, _>(&self.status)?;
        out.push_sql(", lease_id = gen_random_uuid(), lease_request = ");
        out.push_bind_param::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(
            &self.request,
        )?;
        out.push_sql(", lease_deadline = now() + make_interval(secs => ");
        out.push_bind_param::<BigInt, _>(&self.ack_secs)?;
        out.push_sql(
            "), attempt = t.attempt + 1, started_at = COALESCE(t.started_at, now()) \
             FROM (SELECT q.id FROM paas_tasks q WHERE q.node_id = ",
        );
        out.push_bind_param::<BigInt, _>(&self.node_id)?;
        out.push_sql(
            " AND q.status = 'queued' \
               AND NOT EXISTS (SELECT 1 FROM paas_tasks p \
                                WHERE p.application_id = q.application_id \
                                  AND p.node_id = q.node_id AND p.id < q.id \
                                  AND p.status IN ('queued', 'leased', 'running')) \
             ORDER BY q.id LIMIT ",
        );
        out.push_bind_param::<BigInt, _>(&self.max)?;
        out.push_sql(
            " FOR UPDATE SKIP LOCKED) chosen \
             WHERE t.id = chosen.id \
             RETURNING t.id, t.node_id, t.application_id, t.database_id, t.build_id, t.kind, \
                       t.payload, t.status, t.attempt, t.max_attempts, t.lease_id, \
                       t.lease_deadline, t.error, t.generation, t.sealed_secrets, t.created_at, \
                       t.finished_at, t.cancel_requested, t.result",
        );
        Ok(())
    }
}

impl diesel::query_builder::Query for LeaseStatement {
    type SqlType = diesel::sql_types::Untyped;
}

/// The tasks lease request `request` of the node leased and the node has not
/// taken up yet (still `leased`): the request came again because its answer
/// was lost. Their acknowledgement window starts again.
pub async fn leased_for_request(
    conn: &mut Conn,
    node_id: i64,
    request: Uuid,
    ack_secs: i64,
) -> Result<Vec<Task>> {
    let mut tasks: Vec<Task> = diesel::sql_query(
        "UPDATE paas_tasks t
            SET lease_deadline = now() + make_interval(secs => $3)
          WHERE t.node_id = $1 AND t.lease_request = $2 AND t.status = 'leased'
      RETURNING t.id, t.node_id, t.application_id, t.database_id, t.build_id, t.kind, t.payload,
                t.status, t.attempt, t.max_attempts, t.lease_id, t.lease_deadline, t.error,
                t.generation, t.sealed_secrets, t.created_at, t.finished_at, t.cancel_requested,
                t.result",
    )
    .bind::<BigInt, _>(node_id)
    .bind::<diesel::sql_types::Uuid, _>(request)
    .bind::<BigInt, _>(ack_secs)
    .load(conn)
    .await?;
    tasks.sort_by_key(|t| t.id);
    Ok(tasks)
}

/// `now() + ttl` on the database's clock, the one every deadline is compared with.
fn deadline_in(
    ttl_secs: i64,
) -> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>> {
    // An integer from our own configuration, not user input.
    diesel::dsl::sql(&format!("now() + make_interval(secs => {ttl_secs})"))
}

/// A lease the holder extended.
#[derive(Debug, Clone, Copy)]
pub struct Extension {
    pub deadline: DateTime<Utc>,
    /// The task was cancelled: the holder should stop and report.
    pub cancel_requested: bool,
}

/// Pushes the lease deadline of a task the caller still holds.
pub async fn extend(
    conn: &mut Conn,
    task_id: i64,
    node_id: i64,
    lease_id: Uuid,
    ttl_secs: i64,
) -> Result<Result<Extension, Refusal>> {
    let extended: Option<(Option<DateTime<Utc>>, bool)> = diesel::update(
        paas_tasks::table
            .filter(paas_tasks::id.eq(task_id))
            .filter(paas_tasks::node_id.eq(node_id))
            .filter(paas_tasks::lease_id.eq(lease_id))
            .filter(
                paas_tasks::status
                    .eq_any([TaskStatus::Leased.as_str(), TaskStatus::Running.as_str()]),
            ),
    )
    .set(paas_tasks::lease_deadline.eq(deadline_in(ttl_secs)))
    .returning((paas_tasks::lease_deadline, paas_tasks::cancel_requested))
    .get_result(conn)
    .await
    .optional()?;
    match extended {
        Some((Some(deadline), cancel_requested)) => Ok(Ok(Extension {
            deadline,
            cancel_requested,
        })),
        _ => {
            get_for_node(conn, task_id, node_id).await?;
            Ok(Err(Refusal::StaleLease))
        }
    }
}

/// A task of the node (`NotFound` for another node's task).
pub async fn get_for_node(conn: &mut Conn, task_id: i64, node_id: i64) -> Result<Task> {
    Ok(paas_tasks::table
        .filter(paas_tasks::id.eq(task_id))
        .filter(paas_tasks::node_id.eq(node_id))
        .select(Task::as_select())
        .first(conn)
        .await?)
}

/// What an agent reports about a task.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub lease_id: Uuid,
    pub event: TaskEvent,
    pub error: Option<&'a str>,
    /// What the work produced (`protocol::task::TaskResult`), stored with the task.
    pub result: Option<serde_json::Value>,
}

/// Records an agent's report, fenced by its lease id. A report repeating the
/// recorded status is accepted without change.
/// A `Run` report acknowledges the lease: its deadline moves to `ttl_secs`
/// from now (until then a lease only lasts its short acknowledgement window).
pub async fn report(
    conn: &mut Conn,
    task_id: i64,
    node_id: i64,
    report: Report<'_>,
    ttl_secs: i64,
) -> Result<Result<Reported, Refusal>> {
    let Report {
        lease_id,
        event,
        error,
        result,
    } = report;
    conn.transaction(async |conn| {
        let task: Task = paas_tasks::table
            .filter(paas_tasks::id.eq(task_id))
            .filter(paas_tasks::node_id.eq(node_id))
            .for_update()
            .select(Task::as_select())
            .first(conn)
            .await?;
        if task.lease_id != Some(lease_id) {
            return Ok(Err(Refusal::StaleLease));
        }
        let current = task.status()?;
        let next = match task_transition(current, event) {
            Ok(next) => next,
            Err(err) => return Ok(Err(Refusal::Contradiction(err.to_string()))),
        };
        if next == current {
            return Ok(Ok(Reported {
                task,
                changed: false,
            }));
        }
        let finished = is_final(next).then(Utc::now);
        let deadline = (next == TaskStatus::Running).then(|| deadline_in(ttl_secs));
        let task = diesel::update(paas_tasks::table.find(task_id))
            .set((
                paas_tasks::status.eq(next.as_str()),
                paas_tasks::error.eq(error),
                paas_tasks::finished_at.eq(finished),
                deadline.map(|d| paas_tasks::lease_deadline.eq(d)),
                result.map(|r| paas_tasks::result.eq(r)),
            ))
            .returning(Task::as_returning())
            .get_result(conn)
            .await?;
        Ok::<_, Error>(Ok(Reported {
            task,
            changed: true,
        }))
    })
    .await
}

/// Stores a batch of log lines once; answers whether it was new. The lease
/// must be the task's (current or, for a finished task, its last). A build
/// task's lines go to its build's log too (at most `build_log_cap` bytes).
pub async fn append_log(
    conn: &mut Conn,
    task_id: i64,
    node_id: i64,
    lease_id: Uuid,
    seq: i32,
    lines: &str,
    build_log_cap: i64,
) -> Result<Result<bool, Refusal>> {
    let task = get_for_node(conn, task_id, node_id).await?;
    if task.lease_id != Some(lease_id) {
        return Ok(Err(Refusal::StaleLease));
    }
    let attempt = task.attempt.max(1);
    let stored = conn
        .transaction(async |conn| {
            let inserted = diesel::insert_into(paas_task_logs::table)
                .values((
                    paas_task_logs::task_id.eq(task_id),
                    paas_task_logs::attempt.eq(attempt),
                    paas_task_logs::seq.eq(seq),
                    paas_task_logs::lines.eq(lines),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            if inserted == 1
                && let Some(build_id) = task.build_id
            {
                crate::builds::append_log(conn, build_id, lines, build_log_cap).await?;
            }
            Ok::<_, Error>(inserted == 1)
        })
        .await?;
    Ok(Ok(stored))
}

/// The stored log of a task, in order.
pub async fn log_lines(conn: &mut Conn, task_id: i64) -> Result<Vec<String>> {
    Ok(paas_task_logs::table
        .filter(paas_task_logs::task_id.eq(task_id))
        .order((paas_task_logs::attempt, paas_task_logs::seq))
        .select(paas_task_logs::lines)
        .load(conn)
        .await?)
}

/// The log of release `version`'s rollouts: every `app.apply` task of the
/// application that rolled that release out (its release phase and its
/// instances starting), in order.
pub async fn rollout_log(
    conn: &mut Conn,
    application_id: i64,
    version: i32,
) -> Result<Vec<String>> {
    Ok(paas_task_logs::table
        .inner_join(paas_tasks::table)
        .filter(paas_tasks::application_id.eq(application_id))
        .filter(paas_tasks::kind.eq("app.apply"))
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("(paas_tasks.payload->>'release')::int = ")
                .bind::<diesel::sql_types::Integer, _>(version),
        )
        .order((paas_tasks::id, paas_task_logs::attempt, paas_task_logs::seq))
        .select(paas_task_logs::lines)
        .load(conn)
        .await?)
}

/// A task whose lease ran out, after the expiry was applied.
#[derive(Debug, Clone)]
pub struct Expired {
    pub task: Task,
    /// True when it went back to the queue, false when it failed for good.
    pub requeued: bool,
}

/// Returns tasks whose lease deadline passed to the queue (attempt + 1 at the
/// next lease), or fails those that used their last attempt. A lease that was
/// never acknowledged goes back without using up an attempt.
pub async fn expire_leases(conn: &mut Conn) -> Result<Vec<Expired>> {
    conn.transaction(async |conn| {
        let candidates: Vec<Task> = paas_tasks::table
            .filter(
                paas_tasks::status
                    .eq_any([TaskStatus::Leased.as_str(), TaskStatus::Running.as_str()]),
            )
            .filter(paas_tasks::lease_deadline.lt(diesel::dsl::now))
            .for_update()
            .skip_locked()
            .select(Task::as_select())
            .load(conn)
            .await?;
        let mut expired = Vec::with_capacity(candidates.len());
        for task in candidates {
            // A lease never acknowledged (the answer went to an agent that was
            // gone) did not start the work: it costs time, not an attempt.
            let acknowledged = task.status()? == TaskStatus::Running;
            let exhausted = acknowledged && task.attempt >= task.max_attempts;
            // A cancelled task whose holder went silent ends here.
            let event = if task.cancel_requested {
                TaskEvent::Cancel
            } else {
                TaskEvent::Expire { exhausted }
            };
            let next = task_transition(task.status()?, event)
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            let requeued = next == TaskStatus::Queued;
            let attempt = if acknowledged {
                task.attempt
            } else {
                task.attempt - 1
            };
            let error = match next {
                TaskStatus::Cancelled => Some("cancelled".to_string()),
                _ if !requeued => Some(format!(
                    "the node stopped answering {} time(s) while working on it",
                    task.attempt
                )),
                _ => None,
            };
            let task: Task = diesel::update(paas_tasks::table.find(task.id))
                .set((
                    paas_tasks::status.eq(next.as_str()),
                    paas_tasks::attempt.eq(attempt),
                    paas_tasks::lease_id.eq(None::<Uuid>),
                    paas_tasks::lease_deadline.eq(None::<DateTime<Utc>>),
                    paas_tasks::error.eq(error),
                    paas_tasks::finished_at.eq((!requeued).then(Utc::now)),
                    // The node failed, not the work: `protocol::task::TaskResult`'s shape.
                    paas_tasks::result.eq((next == TaskStatus::Failed)
                        .then(|| serde_json::json!({"infrastructure": true}))),
                ))
                .returning(Task::as_returning())
                .get_result(conn)
                .await?;
            expired.push(Expired { task, requeued });
        }
        Ok::<_, Error>(expired)
    })
    .await
}

/// Cancels the application's tasks that no agent holds yet; answers how many.
pub async fn cancel_queued_for_app(conn: &mut Conn, application_id: i64) -> Result<usize> {
    let cancelled = task_transition(TaskStatus::Queued, TaskEvent::Cancel)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(diesel::update(
        paas_tasks::table
            .filter(paas_tasks::application_id.eq(application_id))
            .filter(paas_tasks::status.eq(TaskStatus::Queued.as_str())),
    )
    .set((
        paas_tasks::status.eq(cancelled.as_str()),
        paas_tasks::finished_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?)
}

/// Cancels a task: at once when no agent holds it, else by asking its holder
/// (who learns it from its next lease extension). Answers the task after it.
pub async fn request_cancel(conn: &mut Conn, task_id: i64) -> Result<Task> {
    conn.transaction(async |conn| {
        let task: Task = paas_tasks::table
            .find(task_id)
            .for_update()
            .select(Task::as_select())
            .first(conn)
            .await?;
        let status = task.status()?;
        if is_final(status) {
            return Ok(task);
        }
        let update = diesel::update(paas_tasks::table.find(task_id));
        let task = if status == TaskStatus::Queued {
            let cancelled = task_transition(status, TaskEvent::Cancel)
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            update
                .set((
                    paas_tasks::status.eq(cancelled.as_str()),
                    paas_tasks::error.eq(Some("cancelled")),
                    paas_tasks::finished_at.eq(Utc::now()),
                ))
                .returning(Task::as_returning())
                .get_result(conn)
                .await?
        } else {
            update
                .set(paas_tasks::cancel_requested.eq(true))
                .returning(Task::as_returning())
                .get_result(conn)
                .await?
        };
        Ok::<_, Error>(task)
    })
    .await
}

/// Cancels the application's generation tasks on nodes other than `node`
/// (it moved there); cleanup tasks without a generation still run. Answers how many.
pub async fn cancel_elsewhere(conn: &mut Conn, application_id: i64, node: i64) -> Result<usize> {
    let ids: Vec<i64> = paas_tasks::table
        .filter(paas_tasks::application_id.eq(application_id))
        .filter(paas_tasks::node_id.ne(node))
        .filter(paas_tasks::generation.is_not_null())
        .filter(paas_tasks::status.eq_any([
            TaskStatus::Queued.as_str(),
            TaskStatus::Leased.as_str(),
            TaskStatus::Running.as_str(),
        ]))
        .select(paas_tasks::id)
        .load(conn)
        .await?;
    for id in &ids {
        request_cancel(conn, *id).await?;
    }
    Ok(ids.len())
}

/// The newest finished task of an application's generation, if any.
pub async fn finished_of_generation(
    conn: &mut Conn,
    application_id: i64,
    generation: i64,
) -> Result<Option<Task>> {
    Ok(paas_tasks::table
        .filter(paas_tasks::application_id.eq(application_id))
        .filter(paas_tasks::generation.eq(generation))
        .filter(paas_tasks::status.eq_any([
            TaskStatus::Succeeded.as_str(),
            TaskStatus::Failed.as_str(),
            TaskStatus::Cancelled.as_str(),
        ]))
        .order(paas_tasks::id.desc())
        .select(Task::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Fails a queued or leased task that cannot be handed out (its stored spec
/// or secrets do not open): it must not block its node's queue.
pub async fn fail_unreadable(conn: &mut Conn, task_id: i64, reason: &str) -> Result<Option<Task>> {
    let failed = task_transition(TaskStatus::Leased, TaskEvent::Unreadable)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(diesel::update(paas_tasks::table.find(task_id).filter(
        paas_tasks::status.eq_any([TaskStatus::Queued.as_str(), TaskStatus::Leased.as_str()]),
    ))
    .set((
        paas_tasks::status.eq(failed.as_str()),
        paas_tasks::error.eq(Some(reason)),
        paas_tasks::lease_id.eq(None::<Uuid>),
        paas_tasks::lease_deadline.eq(None::<DateTime<Utc>>),
        paas_tasks::finished_at.eq(Utc::now()),
    ))
    .returning(Task::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// The newest task of a build, if it has one.
pub async fn latest_for_build(conn: &mut Conn, build_id: i64) -> Result<Option<Task>> {
    Ok(paas_tasks::table
        .filter(paas_tasks::build_id.eq(build_id))
        .order(paas_tasks::id.desc())
        .select(Task::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A task by id (no node check: for the control plane's own jobs).
pub async fn by_id(conn: &mut Conn, task_id: i64) -> Result<Task> {
    Ok(paas_tasks::table
        .find(task_id)
        .select(Task::as_select())
        .first(conn)
        .await?)
}

/// Unfinished tasks of an application, oldest first.
pub async fn unfinished_for_app(conn: &mut Conn, application_id: i64) -> Result<Vec<Task>> {
    Ok(paas_tasks::table
        .filter(paas_tasks::application_id.eq(application_id))
        .filter(paas_tasks::status.eq_any([
            TaskStatus::Queued.as_str(),
            TaskStatus::Leased.as_str(),
            TaskStatus::Running.as_str(),
        ]))
        .order(paas_tasks::id)
        .select(Task::as_select())
        .load(conn)
        .await?)
}

/// Recent tasks of an application, newest first (for the owner and the inspector).
pub async fn recent_for_app(conn: &mut Conn, application_id: i64, limit: i64) -> Result<Vec<Task>> {
    Ok(paas_tasks::table
        .filter(paas_tasks::application_id.eq(application_id))
        .order(paas_tasks::id.desc())
        .limit(limit)
        .select(Task::as_select())
        .load(conn)
        .await?)
}

/// Counts tasks by status, for statistics and the benchmark.
pub async fn count_by_status(conn: &mut Conn) -> Result<Vec<(String, i64)>> {
    Ok(paas_tasks::table
        .group_by(paas_tasks::status)
        .select((paas_tasks::status, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}

/// Whether a push of the application's image `image_id` is queued or under
/// way (push tasks belong to no application: they never wait for, nor hold
/// up, its rollouts; the payload names it).
pub async fn push_under_way(conn: &mut Conn, application_id: i64, image_id: &str) -> Result<bool> {
    let wanted =
        serde_json::json!({"kind": "image.push", "app_id": application_id, "image_id": image_id});
    let found: i64 = paas_tasks::table
        .filter(paas_tasks::kind.eq("image.push"))
        .filter(paas_tasks::status.eq_any(["queued", "leased", "running"]))
        .filter(paas_tasks::payload.contains(wanted))
        .count()
        .get_result(conn)
        .await?;
    Ok(found > 0)
}
