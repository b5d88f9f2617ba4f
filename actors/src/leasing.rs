//! Leasing a node's tasks to its agent: one look at the node's queue
//! (decoding each spec, opening its sealed secrets, failing a task that
//! cannot be read and telling its owner), and the long-poll that waits on
//! the node's wake-ups between looks. `http` serves it twice (the HTTP
//! long-poll and the lease stream) and adds only what it mints itself
//! (clone tokens of builds).

use std::future::Future;
use std::time::{Duration, Instant};

use skypanel_domain::Invalid;
use skypanel_protocol::MAX_LEASE_WAIT_SECS;
use skypanel_protocol::task::{LeasedTask, TaskSecrets, TaskSpec};
use skypanel_store::tasks::{self, Task};

use crate::Orchestrator;
use crate::broker::NodeWaiter;
use crate::context::Context;
use crate::error::Error;

/// The most tasks one lease answer hands out.
const MAX_TASKS_PER_LEASE: i64 = 32;

/// How a long-poll ended.
pub enum Polled {
    /// Tasks leased (none when the wait ran out).
    Tasks(Vec<LeasedTask>),
    /// `gone` finished while the poll waited: nobody is left to answer.
    Gone,
}

impl Orchestrator {
    /// Leases up to `max` of `node`'s tasks, waiting up to `wait` seconds
    /// for one, or until `gone` finishes (the caller's connection closed).
    /// `wait` past [`MAX_LEASE_WAIT_SECS`] is refused. A `request` id seen
    /// lately answers the tasks it leased again (its answer was lost).
    pub async fn lease_tasks(
        &self,
        node: i64,
        wait: u64,
        max: i64,
        request: Option<uuid::Uuid>,
        gone: impl Future<Output = ()>,
    ) -> Result<Polled, Error> {
        if wait > MAX_LEASE_WAIT_SECS {
            return Err(Invalid::new(
                "wait",
                format!("wait is at most {MAX_LEASE_WAIT_SECS} seconds"),
            )
            .into());
        }
        let max = max.clamp(1, MAX_TASKS_PER_LEASE);
        let deadline = Instant::now() + Duration::from_secs(wait);
        let waiter = self.lease_waiter(node);
        tokio::pin!(gone);
        loop {
            // Arm the wake-up before looking, so a task committed in between is not missed.
            let notified = waiter.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Boxed: a waiting long-poll (one per agent) then holds no room
            // for the look's queries while it waits.
            let look = tracing::Instrument::instrument(
                try_lease(self, &waiter, node, max, request, wait > 0),
                tracing::debug_span!("lease", node_id = node),
            );
            let leased = Box::pin(look).await?;
            if !leased.is_empty() {
                return Ok(Polled::Tasks(leased));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(Polled::Tasks(Vec::new()));
            }
            tokio::select! {
                _ = tokio::time::timeout(remaining, notified) => {}
                _ = &mut gone => return Ok(Polled::Gone),
            }
        }
    }
}

/// The lease answer for a task: its spec, with its sealed secrets opened.
/// An error says why the stored task cannot be read.
fn handed_out(ctx: &Context, task: Task) -> Result<LeasedTask, String> {
    let mut spec: TaskSpec = serde_json::from_value(task.payload.clone())
        .map_err(|e| format!("unreadable spec: {e}"))?;
    if let Some(sealed) = &task.sealed_secrets {
        let opened = ctx
            .secrets()
            .open_str(sealed, &Task::secrets_associated_data(task.id))
            .map_err(|e| format!("secrets do not open: {e}"))?;
        let secrets: TaskSecrets =
            serde_json::from_str(&opened).map_err(|_| "unreadable secrets".to_string())?;
        spec.put_secrets(secrets);
    }
    Ok(LeasedTask {
        task_id: task.id,
        lease_id: task.lease_id.ok_or("a leased task without a lease id")?,
        lease_deadline: task
            .lease_deadline
            .ok_or("a leased task without a deadline")?,
        attempt: task.attempt,
        spec,
    })
}

/// One look at the node's queue. None at all when `trust_empty` and
/// `waiter` knows the queue is empty (no wake-up since a look found
/// nothing): an idle agent's long-poll costs no query. A poll that does
/// not wait always looks (a task committed a moment ago may not have
/// woken anyone yet).
async fn try_lease(
    orchestrator: &Orchestrator,
    waiter: &NodeWaiter,
    node: i64,
    max: i64,
    request: Option<uuid::Uuid>,
    trust_empty: bool,
) -> Result<Vec<LeasedTask>, Error> {
    let seen = waiter.wakeups();
    let repeated = request.filter(|r| waiter.leased_lately(*r));
    if trust_empty && repeated.is_none() && waiter.known_empty(seen) {
        return Ok(Vec::new());
    }
    let ctx = orchestrator.context();
    let ack = ctx.settings().lease_ack.as_secs().max(1) as i64;
    let mut conn = ctx.store().conn().await?;
    // The same request again (its answer was lost): the same tasks.
    if let Some(request) = repeated {
        let again = tasks::leased_for_request(&mut conn, node, request, ack).await?;
        if !again.is_empty() {
            tracing::info!(node_id = node, %request, tasks = again.len(), "lease request repeated; answering its tasks again");
            drop(conn);
            let again = again
                .into_iter()
                .filter_map(|task| handed_out(ctx, task).ok())
                .collect();
            return Ok(again);
        }
    }
    let leased = tasks::lease(&mut conn, node, max, ack, request).await?;
    match request {
        _ if leased.is_empty() => waiter.found_empty(seen),
        Some(request) => waiter.leased(request),
        None => {}
    }
    for task in &leased {
        let queued_ms = (chrono::Utc::now() - task.created_at)
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1000.0;
        tracing::debug!(task_id = task.id, node_id = node, queued_ms, "task leased");
        if task.attempt == 1 {
            skypanel_protocol::metrics::global().observe(
                "skypanel_task_lease_wait_seconds",
                "Time from a task's queueing to its first lease, by kind.",
                &[("kind", &task.kind)],
                queued_ms / 1000.0,
            );
        }
    }
    let mut answer = Vec::with_capacity(leased.len());
    let mut unreadable = Vec::new();
    for task in leased {
        let id = task.id;
        match handed_out(ctx, task) {
            Ok(leased) => answer.push(leased),
            // One unreadable task must not hold up the node's queue.
            Err(reason) => {
                tracing::error!(task_id = id, node_id = node, %reason, "failing a task that cannot be handed out");
                let failed = tasks::fail_unreadable(
                    &mut conn,
                    id,
                    "the task could not be read; it was not run",
                )
                .await?;
                unreadable.extend(failed);
            }
        }
    }
    drop(conn);
    // Its owner (application, database, run) learns that it failed.
    for task in unreadable {
        crate::metrics::task_ended(&task);
        if let Err(err) = orchestrator.task_finished(&task, Vec::new(), None).await {
            tracing::warn!(task_id = task.id, error = %err, "cannot tell an unreadable task's owner");
        }
    }
    Ok(answer)
}
