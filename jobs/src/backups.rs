//! The `backups` queue: one job per backup or restore of a managed
//! database. The job hands the work to the database's node (a `db.backup`
//! or `db.restore` task, tied to the backup or restore in one transaction,
//! so a second run of the job queues no second task), follows the task, and
//! records how it ended: a backup's size and SHA-256, or `failed` with the
//! reason and a notice to the customer (never a silent success). After a
//! backup, the database's backups past the retention are forgotten (the
//! node removed their dumps as part of the task).
//!
//! A daily apalis-cron tick records a scheduled backup of every running
//! database that has none from the last 20 hours, and purges the data of
//! deleted databases whose retention ended.

use std::time::Duration;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use apalis_cron::Tick;
use serde::{Deserialize, Serialize};
use skypanel_actors::{Handed, Orchestrator};
use skypanel_domain::lifecycle::task::is_final;
use skypanel_domain::lifecycle::{NodeStatus, TaskStatus};
use skypanel_protocol::task::TaskResult;
use skypanel_store::backups::{self, Operation};
use skypanel_store::{Store, nodes, tasks};

use crate::{DriveError, Queues};

/// Runs of a job before it gives up on a control-plane failure (the
/// sweeper pushes it again later: the work is recorded in PostgreSQL).
const JOB_ATTEMPTS: usize = 3;

/// A backup or a restore to carry out, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupJob {
    Backup { backup_id: i64 },
    Restore { restore_id: i64 },
}

/// How backups are made and kept.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// Succeeded backups kept per database (older ones are removed).
    pub retention: i64,
    /// When the daily backups are made (a cron expression with seconds).
    pub schedule: String,
    /// How long a deleted database's data stays on its node.
    pub volume_retention: Duration,
    /// The longest between two looks at a running task; its end (the task
    /// listener's notification) wakes the job at once.
    pub poll: Duration,
    /// The longest a backup or restore may take before it is given up.
    pub follow_limit: Duration,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            retention: 7,
            schedule: "0 0 2 * * *".into(),
            volume_retention: Duration::from_secs(7 * 24 * 3600),
            poll: Duration::from_secs(2),
            // The agent gives a dump an hour; a few minutes more for the report.
            follow_limit: Duration::from_secs(65 * 60),
        }
    }
}

impl BackupSettings {
    /// Whether `schedule` is a cron expression the daily tick can run on.
    pub fn check_schedule(schedule: &str) -> Result<(), String> {
        <cron::Schedule as std::str::FromStr>::from_str(schedule)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// What the backup jobs work with.
#[derive(Clone)]
pub(crate) struct BackupContext {
    pub orchestrator: Orchestrator,
    pub store: Store,
    pub queues: Queues,
    pub settings: BackupSettings,
}

/// The `backups` queue's handler.
pub(crate) async fn handle(
    job: BackupJob,
    attempt: Attempt,
    ctx: Data<BackupContext>,
) -> Result<(), BoxDynError> {
    match drive(&ctx, &job).await {
        Ok(()) => Ok(()),
        Err(err) if attempt.current() < JOB_ATTEMPTS => {
            tracing::warn!(?job, error = %err, "backup job failed; it will run again");
            Err(err.to_string().into())
        }
        Err(err) => {
            tracing::error!(?job, error = %err, "backup job gave up; the sweeper pushes it again");
            Err(AbortError::new(err.to_string()).into())
        }
    }
}

/// Where a backup or restore is, read from PostgreSQL.
struct Progress {
    database_id: i64,
    finished: bool,
    /// Handed to the node (its task may since have been removed).
    running: bool,
    task_id: Option<i64>,
}

async fn progress(ctx: &BackupContext, job: &BackupJob) -> Result<Option<Progress>, DriveError> {
    let mut conn = ctx.store.conn().await?;
    let found =
        match *job {
            BackupJob::Backup { backup_id } => backups::backup_by_id(&mut conn, backup_id)
                .await
                .map(|b| Progress {
                    database_id: b.database_id,
                    finished: backups::is_finished(&b.status),
                    running: b.status == "running",
                    task_id: b.task_id,
                }),
            BackupJob::Restore { restore_id } => backups::restore_by_id(&mut conn, restore_id)
                .await
                .map(|r| Progress {
                    database_id: r.database_id,
                    finished: backups::is_finished(&r.status),
                    running: r.status == "running",
                    task_id: r.task_id,
                }),
        };
    match found {
        Ok(p) => Ok(Some(p)),
        // Deleted with its database.
        Err(skypanel_store::Error::NotFound) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Takes the backup or restore from wherever it is to its end.
pub(crate) async fn drive(ctx: &BackupContext, job: &BackupJob) -> Result<(), DriveError> {
    loop {
        let Some(now) = progress(ctx, job).await? else {
            return Ok(());
        };
        if now.finished {
            return Ok(());
        }
        let Some(task_id) = now.task_id else {
            let handed = match *job {
                BackupJob::Backup { backup_id } => {
                    let mut conn = ctx.store.conn().await?;
                    let backup = backups::backup_by_id(&mut conn, backup_id).await?;
                    // The node keeps the dumps of the newest `retention`
                    // earlier backups: one more than the retention once
                    // this one succeeds, so that if it is recorded failed
                    // after all (its node went away), every backup still
                    // listed keeps its dump. The extra one goes next time.
                    let keep = backups::newest_succeeded(
                        &mut conn,
                        backup.database_id,
                        ctx.settings.retention,
                    )
                    .await?;
                    drop(conn);
                    ctx.orchestrator.start_backup(&backup, keep).await?
                }
                BackupJob::Restore { restore_id } => {
                    let mut conn = ctx.store.conn().await?;
                    let restore = backups::restore_by_id(&mut conn, restore_id).await?;
                    drop(conn);
                    ctx.orchestrator.start_restore(&restore).await?
                }
            };
            match handed {
                Handed::Refused(reason) => {
                    finish(ctx, job, &now, Err(reason)).await?;
                    return Ok(());
                }
                // Another run handed it over meanwhile (or its task is gone):
                // read it again after a moment.
                Handed::Already if now.running => {
                    let reason = "the node's task was removed (its node was deleted)".to_string();
                    finish(ctx, job, &now, Err(reason)).await?;
                    return Ok(());
                }
                Handed::Already => tokio::time::sleep(ctx.settings.poll).await,
                Handed::Task(_) => {}
            }
            continue;
        };
        let task = follow(ctx, task_id).await?;
        let outcome = match task.status()? {
            TaskStatus::Succeeded => Ok(TaskResult::from_json(task.result.as_ref())),
            _ => Err(task.error.clone().unwrap_or_else(|| match job {
                BackupJob::Backup { .. } => "the backup did not finish".to_string(),
                BackupJob::Restore { .. } => "the restore did not finish".to_string(),
            })),
        };
        finish(ctx, job, &now, outcome).await?;
        return Ok(());
    }
}

/// Waits until the task ends. A task whose node goes offline, or that
/// outlives the limit, is cancelled (and so fails). A disabled node still
/// runs its databases and their tasks.
async fn follow(ctx: &BackupContext, task_id: i64) -> Result<tasks::Task, DriveError> {
    let deadline = tokio::time::Instant::now() + ctx.settings.follow_limit;
    let mut cancelled = false;
    loop {
        // Armed before the look, so an end committed after it is not missed.
        let end = ctx.store.task_ends().arm(task_id);
        let mut conn = ctx.store.conn().await?;
        let task = tasks::by_id(&mut conn, task_id).await?;
        if is_final(task.status()?) {
            return Ok(task);
        }
        let node = nodes::get(&mut conn, task.node_id).await?;
        let gone = node.status()? == NodeStatus::Offline;
        let late = tokio::time::Instant::now() >= deadline;
        if (gone || late) && !cancelled {
            tracing::warn!(task_id, gone, late, "giving up on a backup task");
            tasks::request_cancel(&mut conn, task_id).await?;
            cancelled = true;
        }
        drop(conn);
        end.wait(ctx.settings.poll).await;
    }
}

/// Records the end: a backup's dump (and the retention applied), or the
/// failure with a notice to the owner, once.
async fn finish(
    ctx: &BackupContext,
    job: &BackupJob,
    progress: &Progress,
    outcome: Result<TaskResult, String>,
) -> Result<(), DriveError> {
    let now = ctx.orchestrator.context().now();
    let mut conn = ctx.store.conn().await?;
    let failure = match (job, outcome) {
        (BackupJob::Backup { backup_id }, Ok(result)) => {
            match result.backup.filter(|b| b.backup_id == *backup_id) {
                Some(dump) => {
                    let (size, sha) = (dump.size_bytes, dump.sha256.as_str());
                    let retention = ctx.settings.retention;
                    if let Some(expired) =
                        backups::written(&mut conn, *backup_id, size, sha, retention, now).await?
                    {
                        tracing::info!(backup_id, size, expired, "backup written");
                    }
                    return Ok(());
                }
                None => "the node reported no dump".to_string(),
            }
        }
        (BackupJob::Restore { restore_id }, Ok(_)) => {
            if backups::finish_restore(&mut conn, *restore_id, None, now).await? {
                tracing::info!(restore_id, "restore done");
            }
            return Ok(());
        }
        (_, Err(reason)) => reason,
    };
    let database = progress.database_id;
    let (operation, id, notice) = match *job {
        BackupJob::Backup { backup_id } => (
            Operation::Backup,
            backup_id,
            format!("Backup {backup_id} of database {database} failed: {failure}"),
        ),
        BackupJob::Restore { restore_id } => (
            Operation::Restore,
            restore_id,
            format!(
                "Restore {restore_id} of database {database} failed; the database was left as it was: {failure}"
            ),
        ),
    };
    let Some(notice) = backups::fail(&mut conn, operation, id, &failure, &notice, now).await?
    else {
        return Ok(());
    };
    drop(conn);
    tracing::warn!(?job, reason = %failure, "backup work failed");
    if let Err(err) = ctx.queues.push_notice(notice).await {
        tracing::warn!(error = %err, "cannot queue a notice; the sweeper will");
    }
    Ok(())
}

/// The daily tick's handler.
pub(crate) async fn tick(_tick: Tick, ctx: Data<BackupContext>) -> Result<(), BoxDynError> {
    let now = ctx.orchestrator.context().now();
    let made = schedule_backups(&ctx.store, &ctx.queues, now).await?;
    purge_expired_volumes(&ctx.orchestrator, &ctx.store).await?;
    tracing::info!(backups = made, "daily backups queued");
    Ok(())
}

/// Records and queues a scheduled backup of every running database with
/// none from the last 20 hours (a database busy with another backup or a
/// restore is left for the next day); answers how many.
pub async fn schedule_backups(
    store: &Store,
    queues: &Queues,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, BoxDynError> {
    let since = now - chrono::Duration::hours(20);
    let mut conn = store.conn().await?;
    let due = backups::due_for_schedule(&mut conn, since).await?;
    let mut made = 0;
    for (owner, database_id) in due {
        match backups::create_backup(&mut conn, owner, database_id, "scheduled").await {
            Ok(backup) => {
                queues
                    .push_backup(&BackupJob::Backup {
                        backup_id: backup.id,
                    })
                    .await?;
                made += 1;
            }
            Err(skypanel_store::Error::Conflict { message, .. }) => {
                tracing::info!(database_id, %message, "no scheduled backup today");
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(made)
}

/// Queues the purge of every deleted database's data whose retention ended.
pub async fn purge_expired_volumes(
    orchestrator: &Orchestrator,
    store: &Store,
) -> Result<usize, BoxDynError> {
    let now = orchestrator.context().now();
    let mut conn = store.conn().await?;
    let expired = backups::expired_volumes(&mut conn, now).await?;
    drop(conn);
    let count = expired.len();
    for volume in expired {
        orchestrator.purge_kept_volume(&volume).await?;
        tracing::info!(
            database_id = volume.database_id,
            "a deleted database's data purged"
        );
    }
    Ok(count)
}

/// Pushes the job of every unfinished backup and restore (once each: pushes are idempotent).
pub(crate) async fn push_unfinished(store: &Store, queues: &Queues) {
    let unfinished = match store.conn().await {
        Ok(mut conn) => backups::unfinished(&mut conn).await,
        Err(err) => Err(err),
    };
    match unfinished {
        Ok((backups, restores)) => {
            let jobs = backups
                .into_iter()
                .map(|backup_id| BackupJob::Backup { backup_id })
                .chain(
                    restores
                        .into_iter()
                        .map(|restore_id| BackupJob::Restore { restore_id }),
                );
            for job in jobs {
                if let Err(err) = queues.push_backup(&job).await {
                    tracing::warn!(?job, error = %err, "cannot queue a backup job");
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot look for unfinished backups"),
    }
}
