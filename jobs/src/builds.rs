//! The build job: drives one build to its end. It starts the build on a node
//! (through the application's actor, which places it and queues the agent
//! task), follows the task, and then has the actor record the release and
//! roll it out, or record the failure.
//!
//! Retries: a failure of the infrastructure (the node went away, its lease
//! expired, Docker failed) starts the build again (on another node when its
//! own is gone), at most `max_attempts` times with exponential backoff. A
//! build that fails on the application's own code is not retried. A failure
//! of the control plane itself (PostgreSQL, an actor) fails the job, which
//! apalis runs again, up to `JOB_ATTEMPTS` times.
//!
//! Everything is read from PostgreSQL at each step, so running the job again
//! (a restart, a duplicate delivery) picks up where the build is.

use std::time::Duration;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use serde::{Deserialize, Serialize};
use skypanel_actors::{BuildStep, Orchestrator, StepOutcome};
use skypanel_domain::lifecycle::build::is_finished;
use skypanel_domain::lifecycle::task::is_final;
use skypanel_domain::lifecycle::{BuildStatus, NodeStatus, TaskStatus};
use skypanel_protocol::task::TaskResult;
use skypanel_store::tasks::{self, Task};
use skypanel_store::{Store, apps, builds, nodes, notifications};

use crate::DriveError;

/// A build to drive, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildJob {
    pub build_id: i64,
}

/// Runs of the job apalis makes before it gives up on a control-plane failure.
const JOB_ATTEMPTS: usize = 5;

/// How a build is driven.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// Attempts a build gets when the infrastructure fails it.
    pub max_attempts: i32,
    /// The wait before the second attempt; doubled for each later one.
    pub backoff: Duration,
    /// The longest between two looks at the build's task; its end (the
    /// task listener's notification) wakes the job at once.
    pub poll: Duration,
    /// The longest a task may take before the job gives up on it (the
    /// agent's own limit plus a margin).
    pub follow_limit: Duration,
}

impl Default for BuildSettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Duration::from_secs(2),
            poll: Duration::from_secs(2),
            follow_limit: Duration::from_secs(20 * 60),
        }
    }
}

/// What the build job works with.
#[derive(Clone)]
pub(crate) struct BuildContext {
    pub orchestrator: Orchestrator,
    pub store: Store,
    pub queues: crate::Queues,
    pub settings: BuildSettings,
}

/// The apalis handler.
pub(crate) async fn handle(
    job: BuildJob,
    attempt: Attempt,
    ctx: Data<BuildContext>,
) -> Result<(), BoxDynError> {
    let run = attempt.current();
    match drive(&ctx, job.build_id).await {
        Ok(()) => Ok(()),
        Err(err) if run < JOB_ATTEMPTS => {
            tracing::warn!(build_id = job.build_id, run, error = %err, "build job failed; it will run again");
            Err(err.to_string().into())
        }
        Err(err) => {
            tracing::error!(build_id = job.build_id, run, error = %err, "build job gave up");
            let reason = "the platform could not carry the build through; try again".to_string();
            if let Ok(build) = load_build(&ctx.store, job.build_id).await {
                let step = BuildStep::Failed {
                    build_id: job.build_id,
                    reason,
                };
                let _ = ctx
                    .orchestrator
                    .build_step(build.application_id, step)
                    .await;
                if let Ok(build) = load_build(&ctx.store, job.build_id).await {
                    announce(&ctx, &build).await;
                }
            }
            Err(AbortError::new(err.to_string()).into())
        }
    }
}

async fn load_build(store: &Store, build_id: i64) -> Result<builds::Build, DriveError> {
    let mut conn = store.conn().await?;
    Ok(builds::by_id(&mut conn, build_id).await?)
}

/// How often a build waiting for room asks for a node again.
const ROOM_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes the build from wherever it is to its end.
#[tracing::instrument(name = "build", skip_all, fields(build_id, app_id = tracing::field::Empty))]
pub(crate) async fn drive(ctx: &BuildContext, build_id: i64) -> Result<(), DriveError> {
    loop {
        let build = match load_build(&ctx.store, build_id).await {
            Ok(build) => build,
            // The application (and its builds) was deleted.
            Err(DriveError::Store(skypanel_store::Error::NotFound)) => return Ok(()),
            Err(err) => return Err(err),
        };
        if is_finished(build.status()?) {
            announce(ctx, &build).await;
            return Ok(());
        }
        let app = build.application_id;
        tracing::Span::current().record("app_id", app);
        let mut conn = ctx.store.conn().await?;
        let task = tasks::latest_for_build(&mut conn, build_id).await?;
        drop(conn);
        let step = match task {
            None => BuildStep::Start { build_id },
            Some(task) if !is_final(task.status()?) => {
                follow(ctx, &task).await?;
                continue;
            }
            Some(task) if task.status()? == TaskStatus::Succeeded => BuildStep::Succeeded {
                build_id,
                task_id: task.id,
            },
            Some(task) => {
                let reason = task
                    .error
                    .clone()
                    .unwrap_or_else(|| "the build failed".into());
                if !infrastructure(&task) {
                    BuildStep::Failed { build_id, reason }
                } else if build.attempt >= ctx.settings.max_attempts {
                    BuildStep::Failed {
                        build_id,
                        reason: format!("{reason} (the build was tried {} times)", build.attempt),
                    }
                } else {
                    let wait = ctx.settings.backoff * 2u32.pow((build.attempt - 1).max(0) as u32);
                    tracing::warn!(build_id, attempt = build.attempt, %reason, retry_in = ?wait, "the infrastructure failed a build; trying again");
                    tokio::time::sleep(wait).await;
                    BuildStep::Start { build_id }
                }
            }
        };
        match ctx.orchestrator.build_step(app, step).await {
            Ok(StepOutcome::Started { .. }) => continue,
            Ok(StepOutcome::Done | StepOutcome::Over) => {
                if let Ok(build) = load_build(&ctx.store, build_id).await
                    && is_finished(build.status()?)
                {
                    announce(ctx, &build).await;
                }
                return Ok(());
            }
            Err(skypanel_actors::Error::NotFound) => return Ok(()),
            // No room anywhere now: the build waits for room (the owner
            // reads why), for `placement_wait` at most; then it fails.
            Err(skypanel_actors::Error::NoCapacity(reason)) => {
                let limit = ctx.orchestrator.context().settings().placement_wait;
                let until =
                    build.created_at + chrono::Duration::from_std(limit).unwrap_or_default();
                if ctx.orchestrator.context().now() < until {
                    let step = BuildStep::NoRoom {
                        build_id,
                        reason,
                        until,
                    };
                    ctx.orchestrator.build_step(app, step).await?;
                    tokio::time::sleep(ROOM_RETRY).await;
                    continue;
                }
                let minutes = limit.as_secs().div_ceil(60);
                let reason = format!(
                    "no node had room for it for {minutes} minutes ({reason}); deploy again once there is room"
                );
                let step = BuildStep::Failed { build_id, reason };
                ctx.orchestrator.build_step(app, step).await?;
                if let Ok(build) = load_build(&ctx.store, build_id).await {
                    announce(ctx, &build).await;
                }
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Tells the application's owner how a build ended (a notice, and the
/// `build.succeeded`/`build.failed` webhooks), once per build however many
/// runs of the job see it end. A cancelled build is the owner's own doing.
async fn announce(ctx: &BuildContext, build: &builds::Build) {
    let (kind, outcome) = match build.status() {
        Ok(BuildStatus::Success) => ("build_succeeded", "succeeded".to_string()),
        Ok(BuildStatus::Failed) => (
            "build_failed",
            format!(
                "failed: {}",
                build
                    .failure_reason
                    .as_deref()
                    .unwrap_or("no reason recorded")
            ),
        ),
        _ => return,
    };
    let written = async {
        let mut conn = ctx.store.conn().await?;
        let app = apps::load(&mut conn, build.application_id).await?;
        let message = format!("Build #{} of {} {outcome}", build.build_number, app.name);
        let data = serde_json::json!({
            "application_id": app.id,
            "application": app.name,
            "build_id": build.id,
            "build_number": build.build_number,
            "commit": build.git_commit_sha,
        });
        let key = format!("build:{}", build.id);
        let now = ctx.orchestrator.context().now();
        notifications::create_once(&mut conn, app.user_id, kind, &message, &data, &key, now).await
    }
    .await;
    match written {
        Ok(Some(notice)) => {
            if let Err(err) = ctx.queues.push_notice(notice.id).await {
                tracing::warn!(error = %err, "cannot queue a notice; the sweeper will");
            }
        }
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(build_id = build.id, error = %err, "cannot write the build's notice")
        }
    }
}

/// Whether a failed task failed for the infrastructure's sake: the agent
/// said so, its node stopped answering, or it was cancelled because its node
/// went away (a customer's cancel ends the build before the task).
fn infrastructure(task: &Task) -> bool {
    match task.status() {
        Ok(TaskStatus::Cancelled) => true,
        _ => TaskResult::from_json(task.result.as_ref()).infrastructure,
    }
}

/// Waits until the task ends. A task whose node goes offline or is disabled
/// is cancelled (its build then starts elsewhere); one that takes longer
/// than the limit is cancelled too.
async fn follow(ctx: &BuildContext, task: &Task) -> Result<(), DriveError> {
    let deadline = tokio::time::Instant::now() + ctx.settings.follow_limit;
    let mut cancelled = false;
    loop {
        // Armed before the look, so an end committed after it is not missed.
        let end = ctx.store.task_ends().arm(task.id);
        let mut conn = ctx.store.conn().await?;
        let now = tasks::by_id(&mut conn, task.id).await?;
        if is_final(now.status()?) {
            return Ok(());
        }
        let build = match task.build_id {
            Some(id) => Some(builds::by_id(&mut conn, id).await?),
            None => None,
        };
        if build.is_some_and(|b| {
            is_finished(
                b.status()
                    .unwrap_or(skypanel_domain::lifecycle::BuildStatus::Failed),
            )
        }) {
            return Ok(());
        }
        let node = nodes::get(&mut conn, now.node_id).await?;
        let gone = matches!(node.status()?, NodeStatus::Offline | NodeStatus::Disabled);
        let late = tokio::time::Instant::now() >= deadline;
        if (gone || late) && !cancelled {
            tracing::warn!(
                task_id = task.id,
                node_id = now.node_id,
                gone,
                late,
                "giving up on a build task"
            );
            tasks::request_cancel(&mut conn, task.id).await?;
            cancelled = true;
        }
        drop(conn);
        end.wait(ctx.settings.poll).await;
    }
}
