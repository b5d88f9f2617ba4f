//! A build's steps inside its application's actor, as the build job drives
//! them: start it on a node (again, after an infrastructure failure), roll
//! out what it built, or record that it failed or was cancelled. Every step
//! checks that the build is still the application's current one.

use diesel_async::AsyncConnection;
use skypanel_domain::lifecycle::{
    AppEvent, AppStatus, BuildEvent, BuildStatus, CommandPlan, ReleaseKind, app_event,
    build_transition,
};
use skypanel_protocol::task::{BuildLimits, BuildSpec, RuntimeSpec, TaskResult, TaskSpec};
use skypanel_store::apps::{self, Application, StateChange};
use skypanel_store::builds::{self, Build, BuildChange};
use skypanel_store::catalog;
use skypanel_store::tasks;

use crate::app::{Accepted, AppState};
use crate::app_work::{TaskOf, Work, accepted, create_task, place, queue, still_serving};
use crate::error::Error;
use crate::releases::{EnvSource, ImageSource, ReleasePlan};

/// What the build job asks of the application's actor.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum BuildStep {
    /// Give the build to a node (a first attempt, or another after an
    /// infrastructure failure).
    Start { build_id: i64 },
    /// The build's task succeeded: record the release and roll it out.
    Succeeded { build_id: i64, task_id: i64 },
    /// The build failed for good.
    Failed { build_id: i64, reason: String },
    /// No node has room for the build now: it waits (until `until`); the
    /// owner reads why.
    NoRoom {
        build_id: i64,
        reason: String,
        until: chrono::DateTime<chrono::Utc>,
    },
}

/// The actor's answer to a step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StepOutcome {
    /// The build went to a node as this task.
    Started { task_id: i64 },
    /// Done with the step.
    Done,
    /// The build is over (finished, cancelled, or no longer the application's
    /// current one): the job has nothing more to do.
    Over,
}

pub(crate) async fn step(state: &mut AppState, step: BuildStep) -> Result<StepOutcome, Error> {
    state.refresh().await?;
    let build_id = match &step {
        BuildStep::Start { build_id }
        | BuildStep::Succeeded { build_id, .. }
        | BuildStep::Failed { build_id, .. }
        | BuildStep::NoRoom { build_id, .. } => *build_id,
    };
    let mut conn = state.ctx.store().conn().await?;
    let build = builds::by_id(&mut conn, build_id).await?;
    drop(conn);
    if build.application_id != state.id || !crate::app_commands::unfinished(build.status()?) {
        return Ok(StepOutcome::Over);
    }
    let current =
        state.app.current_build_id == Some(build_id) && state.status()? == AppStatus::Building;
    if !current {
        finish(
            state,
            &build,
            BuildEvent::Cancel,
            "the application changed while the build waited",
        )
        .await?;
        return Ok(StepOutcome::Over);
    }
    match step {
        BuildStep::Start { .. } => start(state, &build).await,
        BuildStep::Succeeded { task_id, .. } => succeeded(state, &build, task_id).await,
        BuildStep::Failed { reason, .. } => {
            finish(state, &build, BuildEvent::Fail, &reason).await?;
            Ok(StepOutcome::Done)
        }
        BuildStep::NoRoom { reason, until, .. } => {
            let message = format!(
                "waiting for room: {reason}; build #{} starts as soon as a node of region {} \
                 has room (it gives up at {} UTC)",
                build.build_number,
                state.app.region,
                until.format("%H:%M")
            );
            if state.app.last_error.as_deref() != Some(message.as_str()) {
                let mut conn = state.ctx.store().conn().await?;
                let max = state.ctx.settings().build_max_log_bytes;
                builds::append_log(&mut conn, build.id, &message, max).await?;
            }
            let occasion = format!("build:{}", build.id);
            crate::app_config::note_no_room(state, &message, &occasion).await?;
            Ok(StepOutcome::Done)
        }
    }
}

/// Places the application (a built image lives on its node, so a build may
/// go anywhere) and queues the build's task there.
async fn start(state: &mut AppState, build: &Build) -> Result<StepOutcome, Error> {
    let count = state.app.total_instances();
    let node = place(state, count, true).await?;
    let ctx = state.ctx.clone();
    let app = state.app.clone();
    let build = build.clone();
    let mut conn = ctx.store().conn().await?;
    let spec = build_spec(&mut conn, &ctx, &app, &build).await?;
    let task = conn
        .transaction(async |conn| {
            crate::shards::fence(conn, &ctx, app.id).await?;
            let mut spec = TaskSpec::AppBuild(spec);
            let of = TaskOf {
                node,
                application_id: Some(app.id),
                database_id: None,
                build_id: Some(build.id),
                generation: None,
            };
            let task = create_task(conn, &ctx, of, &mut spec).await?;
            let next = build_transition(build.status()?, BuildEvent::Start)
                .map_err(|e| skypanel_store::Error::Corrupt(e.to_string()))?;
            let change = BuildChange {
                status: Some(next),
                node_id: Some(node),
                attempt: Some(build.attempt + 1),
                started: true,
                ..BuildChange::default()
            };
            builds::change(conn, build.id, build.status()?, &change)
                .await?
                .ok_or_else(|| {
                    skypanel_store::Error::conflict(None, "the build changed meanwhile")
                })?;
            if build.attempt > 0 {
                let note = format!(
                    "--- attempt {} of the build, on another try after a failure of the node ---",
                    build.attempt + 1
                );
                builds::append_log(conn, build.id, &note, ctx.settings().build_max_log_bytes)
                    .await?;
            }
            Ok::<_, skypanel_store::Error>(task)
        })
        .await?;
    tracing::info!(
        app_id = state.id,
        build_id = build.id,
        task_id = task.id,
        node_id = node,
        attempt = build.attempt + 1,
        "build started"
    );
    Ok(StepOutcome::Started { task_id: task.id })
}

/// What the node needs to build: the repository, the token (sealed with the
/// task), the runtimes and the limits.
async fn build_spec(
    conn: &mut skypanel_store::Conn,
    ctx: &crate::context::Context,
    app: &Application,
    build: &Build,
) -> Result<BuildSpec, Error> {
    let repo_url = app.git_repo_url.clone().ok_or_else(|| {
        Error::Invalid(skypanel_domain::Invalid::new(
            "git_repo_url",
            "the application has no git repository",
        ))
    })?;
    let git_token = match &app.git_oauth_token {
        Some(sealed) => Some(
            ctx.secrets()
                .open_str(sealed, &Application::git_token_associated_data(app.id))
                .map_err(|e| {
                    Error::Store(skypanel_store::Error::Corrupt(format!(
                        "git token of app {}: {e}",
                        app.id
                    )))
                })?,
        ),
        None => None,
    };
    let runtimes = catalog::list_runtimes(conn, true).await?;
    let to_spec = |r: &catalog::Runtime| RuntimeSpec {
        name: r.name.clone(),
        runtime_type: r.runtime_type.clone(),
        base_image: r.base_image.clone(),
        build_cmd: r.default_build_cmd.clone(),
        start_cmd: r.default_start_cmd.clone(),
    };
    let chosen = app
        .runtime_id
        .and_then(|id| runtimes.iter().find(|r| r.id == id))
        .map(to_spec);
    let settings = ctx.settings();
    let plan = catalog::get_plan(conn, app.plan_id).await?;
    Ok(BuildSpec {
        app_id: app.id,
        user_id: app.user_id,
        build_id: build.id,
        build_number: build.build_number,
        repo_url,
        branch: build
            .git_branch
            .clone()
            .unwrap_or_else(|| app.git_branch.clone()),
        commit: build.commit_requested.clone(),
        git_token,
        git_token_refused: None,
        fetch_ref: None,
        runtime: chosen,
        // The newest runtime of a kind wins detection (admins add new versions).
        runtimes: runtimes.iter().rev().map(to_spec).collect(),
        port: app.port,
        timeout_secs: settings.build_timeout.as_secs(),
        max_log_bytes: settings.build_max_log_bytes as u64,
        max_image_mb: settings.build_max_image_mb,
        limits: BuildLimits {
            cpu_millicores: plan.build_cpu_limit,
            memory_mb: plan.build_memory_limit,
            pids: plan.build_pids_limit,
            context_mb: settings.build_max_context_mb,
        },
    })
}

/// The image is built: record the release and roll it out on the node that
/// holds it, in one transaction with the build's success.
async fn succeeded(
    state: &mut AppState,
    build: &Build,
    task_id: i64,
) -> Result<StepOutcome, Error> {
    let mut conn = state.ctx.store().conn().await?;
    let task = tasks::by_id(&mut conn, task_id).await?;
    drop(conn);
    let Some(result) = TaskResult::from_json(task.result.as_ref()).build else {
        finish(state, build, BuildEvent::Fail, "the node reported no image").await?;
        return Ok(StepOutcome::Done);
    };
    let plan = CommandPlan::new(AppStatus::Building, AppStatus::Running, true);
    let work = Work::Release(Box::new(ReleasePlan {
        kind: ReleaseKind::Build,
        description: format!(
            "Build #{} of {}",
            build.build_number,
            result.commit_sha.get(..7).unwrap_or(&result.commit_sha)
        ),
        created_by: build.requested_by,
        image: ImageSource::Built {
            node: task.node_id,
            result,
        },
        env: EnvSource::Current,
        build: Some(build.id),
    }));
    queue(state, plan, task.node_id, StateChange::default(), work).await?;
    Ok(StepOutcome::Done)
}

/// Ends the build as failed or cancelled; if it was the application's
/// current build, the rollout failed (an earlier release keeps serving).
async fn finish(
    state: &mut AppState,
    build: &Build,
    event: BuildEvent,
    reason: &str,
) -> Result<(), Error> {
    let next = build_transition(build.status()?, event)
        .map_err(|e| Error::Conflict(format!("build #{}: {e}", build.build_number)))?;
    let serving = still_serving(state).await?;
    let current = state.app.current_build_id == Some(build.id);
    let status = state.status()?;
    let ctx = state.ctx.clone();
    let app = state.app.clone();
    let message = match next {
        BuildStatus::Cancelled => format!("build #{} was cancelled: {reason}", build.build_number),
        _ => format!("build #{} failed: {reason}", build.build_number),
    };
    let mut conn = ctx.store().conn().await?;
    let written = conn
        .transaction(async |conn| {
            crate::shards::fence(conn, &ctx, app.id).await?;
            let change = BuildChange {
                status: Some(next),
                completed: true,
                failure_reason: Some(reason.to_string()),
                ..BuildChange::default()
            };
            builds::change(conn, build.id, build.status()?, &change).await?;
            if !current {
                return Ok::<_, skypanel_store::Error>(None);
            }
            let mut change = StateChange {
                last_error: Some(Some(message.clone())),
                target_status: Some(None),
                ..StateChange::default()
            };
            if let Some(after) = app_event(status, AppEvent::RolloutFailed { serving }) {
                change.status = Some(after.as_str().to_string());
            }
            Ok(Some(
                apps::write_state(conn, app.id, app.version, &change, ctx.now()).await?,
            ))
        })
        .await?;
    if let Some(app) = written {
        state.app = app;
    }
    tracing::info!(app_id = state.id, build_id = build.id, status = %next, %reason, "build ended");
    Ok(())
}

/// The customer cancels a build that has not finished: its task is told to
/// stop, and the release before keeps serving.
pub(crate) async fn cancel(
    state: &mut AppState,
    build_id: i64,
    reason: &str,
) -> Result<Accepted, Error> {
    let mut conn = state.ctx.store().conn().await?;
    let build = builds::by_id(&mut conn, build_id).await?;
    if build.application_id != state.id {
        return Err(Error::NotFound);
    }
    if !crate::app_commands::unfinished(build.status()?) {
        return Err(Error::Conflict(format!(
            "build #{} has already finished ({})",
            build.build_number, build.status
        )));
    }
    if let Some(task) = tasks::latest_for_build(&mut conn, build_id).await? {
        tasks::request_cancel(&mut conn, task.id).await?;
    }
    drop(conn);
    finish(state, &build, BuildEvent::Cancel, reason).await?;
    let mut answer = accepted(state);
    let mut conn = state.ctx.store().conn().await?;
    answer.build = Some(builds::by_id(&mut conn, build_id).await?);
    Ok(answer)
}
