//! The lease loop: long-polls for tasks while there is room, runs each one
//! with its lease kept alive and its log shipped, and reports the outcome.
//! A task whose lease is lost is abandoned at once (another attempt owns it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use skypanel_protocol::task::{LeasedTask, LogBatch, ReportedStatus, StatusReport, TaskSpec};
use tokio::sync::{Semaphore, watch};

use crate::backoff::Backoff;
use crate::client::{ClientError, ControlPlane};
use crate::executor::{Executor, TaskLog};

#[derive(Clone)]
pub struct Runner {
    pub client: ControlPlane,
    pub executor: Executor,
    /// One-off runs (`app.run` tasks).
    pub runs: crate::runs::Runs,
    pub max_tasks: usize,
    pub lease_wait: u64,
    pub task_timeout: Duration,
    /// Tasks being worked on, each with the signal that abandons it: a task
    /// leased again while an older lease of it still runs here (the agent was
    /// cut off longer than the lease) replaces the older run.
    pub running: Arc<std::sync::Mutex<HashMap<i64, watch::Sender<bool>>>>,
}

impl Runner {
    /// Leases and runs tasks until `shutdown` turns true, then waits for the
    /// running ones (up to `grace`).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let slots = Arc::new(Semaphore::new(self.max_tasks));
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        // A failed request is sent again under the same id: if it reached the
        // control plane and only its answer was lost, the answer comes again.
        let mut request = uuid::Uuid::new_v4();
        while !*shutdown.borrow() {
            let Ok(first) = slots.clone().acquire_owned().await else {
                break;
            };
            let room = slots.available_permits() + 1;
            let leased = tokio::select! {
                leased = self.client.lease(jittered(self.lease_wait), room, request) => leased,
                _ = shutdown.changed() => break,
            };
            match leased {
                Ok(tasks) => {
                    backoff.reset();
                    request = uuid::Uuid::new_v4();
                    let mut permit = Some(first);
                    for task in tasks {
                        let slot = match permit.take() {
                            Some(slot) => slot,
                            None => match slots.clone().acquire_owned().await {
                                Ok(slot) => slot,
                                Err(_) => break,
                            },
                        };
                        let runner = self.clone();
                        // A one-off run may last hours: it does not hold
                        // one of the slots deploys and builds need.
                        let slot = (!matches!(task.spec, TaskSpec::AppRun(_))).then_some(slot);
                        tokio::spawn(async move {
                            runner.handle(task).await;
                            drop(slot);
                        });
                    }
                }
                Err(err) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %err, retry_in = ?delay, "cannot lease tasks");
                    drop(first);
                    tokio::time::sleep(delay).await;
                }
            }
        }
        // Let running tasks finish.
        let all = u32::try_from(self.max_tasks).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
    }

    /// Abandons an older run of the task, if one is still going here, and
    /// waits until it has stopped.
    async fn take_over(&self, id: i64) {
        let older = self.lock_running().get(&id).cloned();
        let Some(older) = older else { return };
        tracing::warn!(
            task_id = id,
            "leased again while an older lease runs here; abandoning the older run"
        );
        let _ = older.send(true);
        while self.lock_running().contains_key(&id) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, watch::Sender<bool>>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one leased task to its report.
    async fn handle(&self, task: LeasedTask) {
        let id = task.task_id;
        let kind = task.spec.kind();
        tracing::info!(task_id = id, kind, attempt = task.attempt, "task leased");
        self.take_over(id).await;
        let (lost_tx, lost) = watch::channel(false);
        self.lock_running().insert(id, lost_tx.clone());
        let span = tracing::info_span!("task", task_id = id, kind, attempt = task.attempt);
        tracing::Instrument::instrument(self.run_leased(&task, lost_tx, lost), span).await;
        self.lock_running().remove(&id);
    }

    async fn run_leased(
        &self,
        task: &LeasedTask,
        lost_tx: watch::Sender<bool>,
        mut lost: watch::Receiver<bool>,
    ) {
        let id = task.task_id;
        let kind = task.spec.kind();
        let running = StatusReport::new(task.lease_id, ReportedStatus::Running);
        if let Err(ClientError::StaleLease) = self.report(task, running).await {
            return;
        }
        let log = TaskLog::default();
        let (done_tx, done) = watch::channel(false);
        let (cancel_tx, cancel) = watch::channel(false);
        let keeper = tokio::spawn(keep_lease(
            self.client.clone(),
            task.clone(),
            lost_tx,
            cancel_tx,
        ));
        let shipper = tokio::spawn(ship_logs(
            self.client.clone(),
            task.clone(),
            log.clone(),
            done,
        ));
        let limit = limit_of(&task.spec, self.task_timeout);
        let started = std::time::Instant::now();
        let work =
            tokio::time::timeout(limit, async {
                match &task.spec {
                    TaskSpec::AppRun(run) => self.runs.run(run, &log, cancel).await.map(|ended| {
                        crate::executor::Outcome {
                            run: Some(ended),
                            ..Default::default()
                        }
                    }),
                    spec => self.executor.run(spec, &log, cancel).await,
                }
            });
        let result = tokio::select! {
            result = work => Some(result),
            _ = lost.changed() => None,
        };
        keeper.abort();
        let _ = done_tx.send(true);
        let _ = shipper.await;
        let Some(result) = result else {
            tracing::warn!(task_id = id, "lease lost; abandoning the task");
            return;
        };
        let mut report = match result {
            Ok(Ok(outcome)) => StatusReport {
                instances: outcome.instances,
                observed_at: outcome.observed_at,
                build: outcome.build,
                backup: outcome.backup,
                resolved: outcome
                    .resolved
                    .map(|image_id| skypanel_protocol::image::Resolved { image_id }),
                pushed: outcome.pushed,
                run: outcome.run,
                ..StatusReport::new(task.lease_id, ReportedStatus::Succeeded)
            },
            Ok(Err(failure)) => StatusReport {
                error: Some(failure.message),
                infrastructure: failure.infrastructure,
                ..StatusReport::new(task.lease_id, ReportedStatus::Failed)
            },
            Err(_) => StatusReport {
                error: Some(format!("the task ran longer than {} s", limit.as_secs())),
                ..StatusReport::new(task.lease_id, ReportedStatus::Failed)
            },
        };
        crate::exporter::task_done(kind, report.status, started.elapsed());
        if report.status == ReportedStatus::Failed
            && !matches!(
                task.spec,
                TaskSpec::AppBuild(_)
                    | TaskSpec::AppRun(_)
                    | TaskSpec::IngressChallenge(_)
                    | TaskSpec::DbProvision(_)
                    | TaskSpec::DbStop(_)
                    | TaskSpec::DbDelete(_)
                    | TaskSpec::DbBackup(_)
                    | TaskSpec::DbExport(_)
                    | TaskSpec::DbRestore(_)
            )
            && let Ok((instances, at)) = self.executor.report(task.spec.app_id()).await
        {
            report.instances = instances;
            report.observed_at = Some(at);
        }
        tracing::info!(task_id = id, kind, status = ?report.status, "task done");
        let _ = self.report(task, report).await;
    }

    /// Sends a status report, retrying while the control plane is unreachable.
    async fn report(&self, task: &LeasedTask, report: StatusReport) -> Result<(), ClientError> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        for _ in 0..30 {
            match self.client.status(task.task_id, &report).await {
                Ok(_) => return Ok(()),
                Err(err) if err.is_transient() => tokio::time::sleep(backoff.next_delay()).await,
                Err(err) => {
                    tracing::warn!(task_id = task.task_id, error = %err, "status report refused");
                    return Err(err);
                }
            }
        }
        Err(ClientError::Unreachable("gave up reporting".into()))
    }
}

/// Extends the lease every third of its length; signals when it is lost, and
/// when the control plane asks to cancel the task.
///
/// The first extension goes out at once: the deadline the lease answer gave
/// is the acknowledgement window, and the `Run` report just replaced it with
/// the lease's real length, which only an extension's answer tells (a 3 s
/// lease kept on a 10 s window's rhythm expired under every task that took
/// longer than 3 s).
async fn keep_lease(
    client: ControlPlane,
    task: LeasedTask,
    lost: watch::Sender<bool>,
    cancel: watch::Sender<bool>,
) {
    let mut every = third_of(task.lease_deadline);
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tokio::time::sleep(every).await;
        }
        match client.extend(task.task_id, task.lease_id).await {
            Ok(extended) => {
                every = third_of(extended.lease_deadline);
                if extended.cancel_requested && !*cancel.borrow() {
                    tracing::info!(task_id = task.task_id, "the task was cancelled");
                    let _ = cancel.send(true);
                }
            }
            Err(ClientError::StaleLease) => {
                let _ = lost.send(true);
                return;
            }
            Err(err) => {
                tracing::warn!(task_id = task.task_id, error = %err, "cannot extend the lease")
            }
        }
    }
}

/// A third of the time left until `deadline` (at least 300 ms): how often a
/// lease is extended.
fn third_of(deadline: chrono::DateTime<chrono::Utc>) -> Duration {
    let left = (deadline - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::from_secs(3));
    (left / 3).max(Duration::from_millis(300))
}

/// Ships the task's log every second, and what is left once `done` turns true.
async fn ship_logs(
    client: ControlPlane,
    task: LeasedTask,
    log: TaskLog,
    mut done: watch::Receiver<bool>,
) {
    loop {
        let finished = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            _ = done.changed() => true,
        };
        if finished {
            log.finish();
        }
        // Every batch that waits (a flood makes several a second).
        loop {
            let lines = log.drain();
            if lines.is_empty() {
                break;
            }
            let batch = LogBatch {
                lease_id: task.lease_id,
                seq: log.next_seq(),
                lines,
            };
            send_batch(&client, task.task_id, &batch).await;
        }
        if finished {
            return;
        }
    }
}

/// Sends one batch, retrying briefly while the control plane is unreachable.
async fn send_batch(client: &ControlPlane, task_id: i64, batch: &LogBatch) {
    for _ in 0..3 {
        match client.logs(task_id, batch).await {
            Err(err) if err.is_transient() => tokio::time::sleep(Duration::from_millis(300)).await,
            _ => return,
        }
    }
}

/// A long-poll wait of 75 % to 100 % of `wait`: agents that (re)connected
/// together, after a control-plane restart say, drift apart instead of
/// polling in lockstep forever.
fn jittered(wait: u64) -> u64 {
    use rand::Rng;
    let low = (wait * 3 / 4).max(1);
    if wait <= low {
        wait
    } else {
        rand::thread_rng().gen_range(low..=wait)
    }
}

/// The longest a task may run: the agent's limit, and at least an hour for
/// a database's backup or restore (a large dump takes its time; the
/// control plane follows it for as long).
fn limit_of(spec: &TaskSpec, task_timeout: Duration) -> Duration {
    match spec {
        TaskSpec::DbBackup(_) | TaskSpec::DbRestore(_) | TaskSpec::DbExport(_) => {
            task_timeout.max(DUMP_LIMIT)
        }
        // A moving database's provisioning fetches and restores its dump.
        TaskSpec::DbProvision(db) if db.import.is_some() => task_timeout.max(DUMP_LIMIT),
        // Its own time limit, the wait for its caller, and pulling its image.
        TaskSpec::AppRun(run) => {
            Duration::from_secs(run.ttl_secs + run.attach_timeout_secs) + task_timeout
        }
        _ => task_timeout,
    }
}

/// How long a backup or restore may take at least.
const DUMP_LIMIT: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::jittered;

    #[test]
    fn waits_spread_within_bounds() {
        let waits: Vec<u64> = (0..200).map(|_| jittered(20)).collect();
        assert!(waits.iter().all(|w| (15..=20).contains(w)));
        assert!(waits.iter().any(|w| *w != waits[0]), "the waits differ");
        assert_eq!(jittered(1), 1);
        assert_eq!(jittered(0), 0);
    }
}
