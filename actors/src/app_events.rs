//! What happens to an application without a customer asking: a task's
//! outcome, and reconciliation of what its node reports against what should
//! run (missing or extra containers, a crash loop, containers left on a node
//! the application has moved away from).

use std::time::Instant;

use chrono::{DateTime, Utc};

use diesel_async::AsyncConnection;
use skypanel_domain::lifecycle::{AppEvent, AppStatus, BuildStatus, ReleaseKind, app_event};

use skypanel_protocol::node::{ContainerReport, ContainerState};
use skypanel_protocol::task::{AppTarget, TaskSpec};
use skypanel_store::apps::{self, StateChange};
use skypanel_store::tasks::{self, NewTask};
use skypanel_store::{builds, instances, releases};

use crate::app::{AppState, TaskOutcome};
use crate::error::Error;

/// Records a task's outcome. Answers true when the application is gone.
pub(crate) async fn task_finished(
    state: &mut AppState,
    outcome: TaskOutcome,
) -> Result<bool, Error> {
    // A build's outcome is the build job's business (it reads the task).
    if outcome.kind == "app.build" {
        return Ok(false);
    }
    if let Some(reported) = &outcome.instances
        && (!reported.is_empty() || outcome.succeeded)
        && state.fresh_report(outcome.node_id, outcome.observed_at)
    {
        let mut conn = state.ctx.store().conn().await?;
        instances::sync_app(&mut conn, state.id, outcome.node_id, reported).await?;
    }
    state.refresh().await?;
    let generation = outcome.generation.unwrap_or(0);
    // Superseded by a later command, or recorded already (a replayed outcome).
    if generation < state.app.generation || generation <= state.app.applied_generation {
        tracing::debug!(
            app_id = state.id,
            generation,
            "outcome of a superseded task"
        );
        return Ok(false);
    }
    let status = state.status()?;
    let mut conn = state.ctx.store().conn().await?;
    if status == AppStatus::Deleting {
        if outcome.kind == "app.delete" && outcome.succeeded {
            apps::delete_by_id(&mut conn, state.id, state.ctx.now()).await?;
            tracing::info!(app_id = state.id, "application deleted");
            return Ok(true);
        }
        // The delete failed; deleting again (a new generation) retries it.
        let change = StateChange {
            last_error: Some(outcome.error.clone()),
            applied_generation: Some(generation),
            ..StateChange::default()
        };
        state.write(&change).await?;
        return Ok(false);
    }
    let target = state
        .app
        .target_status
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(status);
    let mut change = StateChange {
        applied_generation: Some(generation),
        target_status: Some(None),
        ..StateChange::default()
    };
    let event = match (outcome.kind.as_str(), outcome.succeeded) {
        (_, true) => {
            change.last_error = Some(None);
            if outcome.kind == "app.apply"
                && let Some(version) = outcome.release
            {
                let release = releases::by_version(&mut conn, state.id, version).await?;
                change.current_release_id = Some(Some(release.id));
                releases::finish(&mut conn, state.id, version, releases::SUCCEEDED, None).await?;
                // Types the release no longer has run no more (and cost nothing).
                let types = crate::releases::process_types(&release);
                let mut others = state.app.formation();
                others.retain(|name, _| types.contains(name));
                change = change.with_formation(&others);
                if let Some(image_id) = &outcome.resolved {
                    crate::images::resolved(
                        &state.ctx,
                        state.id,
                        version,
                        image_id,
                        outcome.node_id,
                    )
                    .await?;
                }
            }
            Some(AppEvent::Converged { done: target })
        }
        ("app.apply" | "app.restart", false) => {
            change.last_error = Some(outcome.error.clone());
            let serving = outcome.kind == "app.apply" && state.app.current_release_id.is_some();
            if let Some(version) = outcome.release {
                restore_vars_after_failed_rollback(state, &mut conn, version).await?;
                release_failed(state, &mut conn, version, outcome.error.as_deref()).await?;
            }
            Some(AppEvent::RolloutFailed { serving })
        }
        _ => {
            change.last_error = Some(outcome.error.clone());
            None
        }
    };
    // A deploy from git marks the application building without a new
    // generation, so the outcome of a command before it (a scale, a restart)
    // can arrive while its build runs: record it, but the application stays
    // building (with its target) until the build's own rollout ends.
    let build_under_way = match (status, state.app.current_build_id) {
        (AppStatus::Building, Some(build_id)) => matches!(
            builds::by_id(&mut conn, build_id).await?.status()?,
            BuildStatus::Pending | BuildStatus::Building
        ),
        _ => false,
    };
    if build_under_way {
        change.target_status = None;
    } else if let Some(next) = event.and_then(|e| app_event(status, e)) {
        change.status = Some(next.as_str().to_string());
    }
    state.write(&change).await?;
    state.last_change = Some(Instant::now());
    tracing::info!(
        app_id = state.id,
        task_id = outcome.task_id,
        generation,
        kind = %outcome.kind,
        succeeded = outcome.succeeded,
        status = %state.app.status,
        "task outcome recorded"
    );
    Ok(false)
}

/// Marks a release whose first rollout failed (its release phase, or its
/// instances) failed with why, and tells its owner once.
async fn release_failed(
    state: &AppState,
    conn: &mut skypanel_store::Conn,
    version: i32,
    error: Option<&str>,
) -> Result<(), Error> {
    let why = error.unwrap_or("the rollout failed");
    if !releases::finish(conn, state.id, version, releases::FAILED, Some(why)).await? {
        return Ok(());
    }
    let serving = match state.app.current_release_id {
        Some(id) => format!("v{} keeps serving", releases::get(conn, id).await?.version),
        None => "nothing was serving".to_string(),
    };
    let message = format!(
        "Release v{version} of {} failed ({serving}): {why}",
        state.app.name
    );
    let data = serde_json::json!({
        "application_id": state.id,
        "application": state.app.name,
        "release": version,
        "error": why,
    });
    let key = format!("release:{}:{version}", state.id);
    skypanel_store::notifications::create_once(
        conn,
        state.app.user_id,
        "release_failed",
        &message,
        &data,
        &key,
        state.ctx.now(),
    )
    .await?;
    Ok(())
}

/// A rollback whose rollout failed gives the application back the variables
/// of the release that still serves, unless they changed since the rollback
/// (a newer wish of the customer's wins).
async fn restore_vars_after_failed_rollback(
    state: &AppState,
    conn: &mut skypanel_store::Conn,
    version: i32,
) -> Result<(), Error> {
    let failed = releases::by_version(conn, state.id, version).await?;
    let Some(serving_id) = state.app.current_release_id else {
        return Ok(());
    };
    if failed.kind != ReleaseKind::Rollback.as_str() || failed.id == serving_id {
        return Ok(());
    }
    let ctx = &state.ctx;
    let now = crate::releases::current_env(conn, ctx, &state.app).await?;
    let rolled_back_to = crate::releases::open_env(ctx, &failed)?;
    if rolled_back_to.map(|e| e.vars) != Some(now.vars) {
        return Ok(());
    }
    let serving = releases::get(conn, serving_id).await?;
    let vars = crate::releases::open_env(ctx, &serving)?
        .map(|e| e.vars)
        .unwrap_or_default();
    let sealed: Vec<(String, Vec<u8>)> = vars
        .iter()
        .map(|(key, value)| {
            let aad = skypanel_domain::env::associated_data(state.id, key);
            (key.clone(), ctx.secrets().seal_str(value, &aad))
        })
        .collect();
    skypanel_store::env_vars::replace_all(conn, state.id, &sealed).await?;
    tracing::info!(
        app_id = state.id,
        release = version,
        "the rollback failed; the serving release's variables are back"
    );
    Ok(())
}

/// Records the outcome of the current generation's task if the actor missed
/// it (the node's report was stored but the actor was down, crashing, or the
/// control plane stopped in between). Answers true when the application is gone.
pub(crate) async fn catch_up(state: &mut AppState) -> Result<bool, Error> {
    if state.app.applied_generation >= state.app.generation {
        return Ok(false);
    }
    let mut conn = state.ctx.store().conn().await?;
    let Some(task) =
        tasks::finished_of_generation(&mut conn, state.id, state.app.generation).await?
    else {
        return Ok(false);
    };
    drop(conn);
    tracing::info!(
        app_id = state.id,
        task_id = task.id,
        "recording a missed task outcome"
    );
    task_finished(state, TaskOutcome::of(&task, None, None)).await
}

/// Compares what a node reports with what should run there, and queues the
/// work that brings them together.
pub(crate) async fn observed(
    state: &mut AppState,
    node_id: i64,
    containers: Vec<ContainerReport>,
    observed_at: DateTime<Utc>,
) -> Result<(), Error> {
    // A list read before one already applied (a slow heartbeat) says nothing new.
    if !state.fresh_report(node_id, Some(observed_at)) {
        return Ok(());
    }
    state.refresh().await?;
    let status = state.status()?;
    let mut conn = state.ctx.store().conn().await?;
    let unfinished = tasks::unfinished_for_app(&mut conn, state.id).await?;

    if state.app.node_id == Some(node_id) {
        instances::sync_app(&mut conn, state.id, node_id, &containers).await?;
    }
    if state.app.node_id != Some(node_id) {
        // Containers left on a node the application moved away from.
        let cleaning = unfinished
            .iter()
            .any(|t| t.node_id == node_id && t.kind == "app.delete");
        if !containers.is_empty() && !cleaning {
            tracing::warn!(
                app_id = state.id,
                node_id,
                "removing containers left on a former node"
            );
            let spec = TaskSpec::AppDelete(AppTarget {
                app_id: state.id,
                user_id: state.app.user_id,
                generation: 0,
                hostnames: Vec::new(),
                certificates: Vec::new(),
            });
            queue_plain(&mut conn, &state.ctx, node_id, state.id, spec).await?;
        }
        return Ok(());
    }
    if !unfinished.is_empty() {
        return Ok(());
    }
    // A crash loop is reported by the agent itself and is never stale.
    if let Some(looping) = containers.iter().find(|c| c.crash_looping)
        && let Some(next) = app_event(status, AppEvent::CrashLooped)
    {
        let message = format!(
            "{}.{} kept crashing ({} restarts within 5 minutes); see its logs, fix the cause and redeploy",
            looping.process, looping.instance, looping.restart_count
        );
        let change = StateChange {
            status: Some(next.as_str().to_string()),
            last_error: Some(Some(message.clone())),
            ..StateChange::default()
        };
        state.write(&change).await?;
        tracing::warn!(app_id = state.id, "application failed: crash loop");
        // The owner hears of it (a notice, and the `app.crashed` webhooks; the sweeper sends it).
        let data = serde_json::json!({
            "application_id": state.id,
            "application": state.app.name,
            "process": looping.process,
            "instance": looping.instance,
            "restarts": looping.restart_count,
        });
        let key = format!("crash:{}:{}", state.id, state.app.generation);
        let mut conn = state.ctx.store().conn().await?;
        let notice = format!("{} stopped: {message}", state.app.name);
        skypanel_store::notifications::create_once(
            &mut conn,
            state.app.user_id,
            "app_crashed",
            &notice,
            &data,
            &key,
            state.ctx.now(),
        )
        .await?;
        return Ok(());
    }

    drop(conn);
    // Right after a change, a node's list may predate it: repair only later.
    if state.settling() {
        return Ok(());
    }
    // A command whose outcome is not recorded yet (its task finished, the
    // message on its way) decides what runs: a stopped application being
    // resumed has running containers for a moment, and must keep them.
    if state.app.applied_generation != state.app.generation {
        return Ok(());
    }
    let repair = match status {
        AppStatus::Running => !matches_release(state, &containers).await?,
        AppStatus::Stopped => containers
            .iter()
            .any(|c| c.state == ContainerState::Running),
        _ => false,
    };
    if repair {
        tracing::warn!(app_id = state.id, node_id, %status, "containers differ from the application; repairing");
        crate::app_commands::repair(state, status).await?;
    }
    Ok(())
}

/// Whether the node runs exactly the serving release's containers. A crashed
/// container the agent is restarting (or gave up on) counts as there: the
/// crash policy deals with it. One that is merely stopped (say, after the node
/// rebooted) does not.
async fn matches_release(state: &AppState, containers: &[ContainerReport]) -> Result<bool, Error> {
    let idle = |c: &ContainerReport| {
        !matches!(
            c.state,
            ContainerState::Running | ContainerState::Restarting
        ) && c.restart_count == 0
            && !c.crash_looping
    };
    if containers.iter().any(idle) {
        return Ok(false);
    }

    let Some(release_id) = state.app.current_release_id else {
        return Ok(true);
    };
    let mut conn = state.ctx.store().conn().await?;
    let release = releases::get(&mut conn, release_id).await?;
    let formation = state.app.formation();
    let mut expected: Vec<(i32, String, i32)> = Vec::new();
    for process in crate::releases::process_types(&release) {
        let count = formation.get(&process).copied().unwrap_or(0);
        expected.extend((0..count).map(|i| (release.version, process.clone(), i)));
    }
    let mut present: Vec<(i32, String, i32)> = containers
        .iter()
        .map(|c| (c.release, c.process.clone(), c.instance))
        .collect();
    expected.sort();
    present.sort();
    Ok(expected == present)
}

/// Queues a task outside the application's generations (cleanup elsewhere).
async fn queue_plain(
    conn: &mut skypanel_store::Conn,
    ctx: &crate::context::Context,
    node_id: i64,
    app_id: i64,
    spec: TaskSpec,
) -> Result<(), Error> {
    let new = NewTask {
        node_id,
        application_id: Some(app_id),
        build_id: None,
        database_id: None,
        kind: spec.kind(),
        payload: serde_json::to_value(&spec)
            .map_err(|e| skypanel_store::Error::Corrupt(e.to_string()))?,
        generation: None,
        max_attempts: ctx.settings().task_max_attempts,
    };
    conn.transaction(async |conn| {
        crate::shards::fence(conn, ctx, app_id).await?;
        tasks::create(conn, &new, None).await.map(|_| ())
    })
    .await?;
    Ok(())
}
