//! Customer commands inside the application actor: each is checked against
//! the transition table, placed if it needs a node, and then written with
//! its task in one transaction (see `app_work`).

use std::collections::BTreeMap;

use diesel_async::AsyncConnection;
use skypanel_domain::lifecycle::{
    AppEvent, AppStatus, BuildEvent, BuildStatus, CommandPlan, ReleaseKind, app_event,
    app_transition, build_transition,
};
use skypanel_domain::{Invalid, validate_instance_count};
use skypanel_protocol::procfile;
use skypanel_store::apps::{self, StateChange};
use skypanel_store::builds::{self, NewBuild};
use skypanel_store::{app_requests, instances, releases, tasks};

use crate::app::{Accepted, AppRequest, AppState};
use crate::app_work::{Work, accepted, assigned_node, place, queue, serving_release};
use crate::error::Error;
use crate::releases::{EnvSource, ImageSource, ReleasePlan};

pub(crate) async fn handle(state: &mut AppState, request: AppRequest) -> Result<Accepted, Error> {
    state.refresh().await?;
    if let AppRequest::CancelBuild(build_id) = request {
        return crate::app_builds::cancel(state, build_id, "cancelled by the customer").await;
    }
    match request {
        AppRequest::Reconfigure => return reconfigure(state).await,
        AppRequest::Suspend => return suspend(state).await,
        AppRequest::Resume => return resume(state).await,
        _ => {}
    }
    let Some(command) = request.command() else {
        unreachable!("every other request names a command")
    };
    let plan = app_transition(state.status()?, command)?;
    match request {
        AppRequest::Deploy { by, commit } if plan.waits => {
            crate::app_config::wait(state, "deploy", serde_json::json!({"commit": commit}), by)
                .await
        }
        AppRequest::Rollback { version, by } if plan.waits => {
            // Only a release that exists may wait.
            let mut conn = state.ctx.store().conn().await?;
            releases::by_version(&mut conn, state.id, version).await?;
            drop(conn);
            crate::app_config::wait(
                state,
                "rollback",
                serde_json::json!({"version": version}),
                by,
            )
            .await
        }
        AppRequest::Deploy { by, commit } => deploy(state, plan, by, commit).await,
        AppRequest::Rollback { version, by } => rollback(state, plan, version, by).await,
        AppRequest::Configure(change) => crate::app_config::configure(state, plan, *change).await,
        AppRequest::Scale(formation) => scale(state, plan, formation).await,
        AppRequest::Start => {
            let release = serving_release(state).await;
            let may_move = release
                .as_ref()
                .map_or(true, |r| crate::app_moves::portable(&state.ctx, r));
            let count = state.app.total_instances();
            let node = place(state, count, may_move).await?;
            let release = release?;
            queue(
                state,
                plan,
                node,
                StateChange::default(),
                Work::Apply(release),
            )
            .await
        }
        AppRequest::Restart => {
            let node = assigned_node(&state.app)?;
            let release = serving_release(state).await?;
            queue(
                state,
                plan,
                node,
                StateChange::default(),
                Work::Restart(release),
            )
            .await
        }
        AppRequest::Stop => {
            let node = assigned_node(&state.app)?;
            queue(state, plan, node, StateChange::default(), Work::Stop).await
        }
        AppRequest::Delete => delete(state, plan).await,
        AppRequest::CancelBuild(_)
        | AppRequest::Reconfigure
        | AppRequest::Suspend
        | AppRequest::Resume => {
            unreachable!("answered before the transition table")
        }
    }
}

/// Queues the work that brings the node back to what `status` (running or
/// stopped) means, under a new generation. Not a customer command: the
/// status does not change.
pub(crate) async fn repair(state: &mut AppState, status: AppStatus) -> Result<(), Error> {
    let node = assigned_node(&state.app)?;
    let plan = CommandPlan::new(status, status, true);
    let work = match status {
        AppStatus::Stopped => Work::Stop,
        _ => Work::Apply(serving_release(state).await?),
    };
    queue(state, plan, node, StateChange::default(), work)
        .await
        .map(|_| ())
}

/// The application's names changed (a domain added or removed): a running
/// or stopped application's node rewrites its ingress; in other states the
/// next rollout carries the new names.
async fn reconfigure(state: &mut AppState) -> Result<Accepted, Error> {
    let status = state.status()?;
    if matches!(status, AppStatus::Running | AppStatus::Stopped) && state.app.node_id.is_some() {
        repair(state, status).await?;
    }
    Ok(accepted(state))
}

/// Suspends the application for its owner's unpaid balance: a build in
/// progress is cancelled, the containers are stopped (data kept), and the
/// status it had is kept for the resume. Suspended or deleting: nothing to do.
async fn suspend(state: &mut AppState) -> Result<Accepted, Error> {
    if let Some(build_id) = state.app.current_build_id
        && state.status()? == AppStatus::Building
        && build_in_progress(state).await?
    {
        crate::app_builds::cancel(state, build_id, "the owner's balance is below zero").await?;
        state.refresh().await?;
    }
    let status = state.status()?;
    let Some(next) = app_event(status, AppEvent::Suspend) else {
        return Ok(accepted(state));
    };
    // What the application is becoming (a stop in flight) is what comes back.
    let becoming = state
        .app
        .target_status
        .as_deref()
        .and_then(|t| t.parse::<AppStatus>().ok())
        .unwrap_or(status);
    let change = StateChange {
        suspended_from: Some(Some(becoming.as_str().to_string())),
        ..StateChange::default()
    };
    match state.app.node_id {
        // Containers run (or may, after a failure): stop them.
        Some(node) if !matches!(status, AppStatus::Pending | AppStatus::Stopped) => {
            let plan = CommandPlan::new(next, next, true);
            queue(state, plan, node, change, Work::Stop).await
        }
        _ => {
            let change = StateChange {
                status: Some(next.as_str().to_string()),
                target_status: Some(None),
                ..change
            };
            state.write(&change).await?;
            Ok(accepted(state))
        }
    }
}

/// Brings a suspended application back to the status it had: one that ran
/// is started again on its serving release; any other takes its status back.
async fn resume(state: &mut AppState) -> Result<Accepted, Error> {
    let status = state.status()?;
    let previous = state
        .app
        .suspended_from
        .as_deref()
        .and_then(|s| s.parse::<AppStatus>().ok())
        .unwrap_or(AppStatus::Stopped);
    let Some(back) = app_event(status, AppEvent::Resume { previous }) else {
        return Ok(accepted(state));
    };
    let cleared = StateChange {
        suspended_from: Some(None),
        ..StateChange::default()
    };
    if matches!(back, AppStatus::Running | AppStatus::Building)
        && let Ok(release) = serving_release(state).await
    {
        let may_move = crate::app_moves::portable(&state.ctx, &release);
        let count = state.app.total_instances();
        let node = place(state, count, may_move).await?;
        // Stopped until the node reports the containers up, then running.
        let plan = CommandPlan::new(AppStatus::Stopped, AppStatus::Running, true);
        return queue(state, plan, node, cleared, Work::Apply(release)).await;
    }
    // Nothing ran (or nothing can run without a release): its status comes back.
    let back = match back {
        AppStatus::Running | AppStatus::Building => AppStatus::Pending,
        other => other,
    };
    let change = StateChange {
        status: Some(back.as_str().to_string()),
        target_status: Some(None),
        ..cleared
    };
    state.write(&change).await?;
    Ok(accepted(state))
}

async fn deploy(
    state: &mut AppState,
    plan: CommandPlan,
    by: i64,
    commit: Option<String>,
) -> Result<Accepted, Error> {
    let Some(image) = state.app.image.clone() else {
        return build_from_git(state, plan, by, commit).await;
    };
    let count = state.app.total_instances();
    let node = match place(state, count, true).await {
        Ok(node) => node,
        Err(Error::NoCapacity(reason)) => {
            let since = state.room_since.take();
            return crate::app_config::wait_for_room(state, by, commit, &reason, since).await;
        }
        Err(other) => return Err(other),
    };
    let work = Work::Release(Box::new(ReleasePlan {
        kind: ReleaseKind::Image,
        description: format!("Deploy of image {image}"),
        created_by: Some(by),
        image: ImageSource::Prebuilt(image),
        env: EnvSource::Current,
        build: None,
    }));
    queue(state, plan, node, StateChange::default(), work).await
}

/// Records a build and marks the application building; the build job takes
/// it from there (it is pushed once this answers).
async fn build_from_git(
    state: &mut AppState,
    plan: CommandPlan,
    by: i64,
    commit: Option<String>,
) -> Result<Accepted, Error> {
    if state.app.git_repo_url.is_none() {
        return Err(Error::Invalid(Invalid::new(
            "git_repo_url",
            "the application has neither a git repository nor an image to deploy; set one",
        )));
    }
    let current = state.app.clone();
    let at = state.ctx.now();
    let mut conn = state.ctx.store().conn().await?;
    let (app, build) = conn
        .transaction(async |conn| {
            crate::shards::fence(conn, &state.ctx, current.id).await?;
            let new = NewBuild {
                application_id: current.id,
                branch: &current.git_branch,
                commit: commit.as_deref(),
                requested_by: Some(by),
            };
            let build = builds::create(conn, &new).await?;
            let change = StateChange {
                status: Some(plan.now.as_str().to_string()),
                target_status: Some(Some(plan.done.as_str().to_string())),
                current_build_id: Some(Some(build.id)),
                last_error: Some(None),
                ..StateChange::default()
            };
            let app = apps::write_state(conn, current.id, current.version, &change, at).await?;
            Ok::<_, skypanel_store::Error>((app, build))
        })
        .await?;
    tracing::info!(
        app_id = state.id,
        build_id = build.id,
        number = build.build_number,
        "build requested"
    );
    state.app = app;
    let mut answer = accepted(state);
    answer.build = Some(build);
    Ok(answer)
}

/// Rolls release `version`'s image out again with the variables it had, as
/// a new release; nothing is rebuilt. The image comes from the registry
/// wherever the application runs (without a registry, only from the node
/// that has it).
async fn rollback(
    state: &mut AppState,
    plan: CommandPlan,
    version: i32,
    by: i64,
) -> Result<Accepted, Error> {
    let mut conn = state.ctx.store().conn().await?;
    let earlier = releases::by_version(&mut conn, state.id, version).await?;
    drop(conn);
    let portable = crate::app_moves::portable(&state.ctx, &earlier);
    if !portable
        && let Some(holder) = earlier.node_id
        && state.app.node_id != Some(holder)
    {
        return Err(Error::Conflict(format!(
            "release {version}'s image is only on a node this application no longer runs \
             on (it never reached the registry); deploy again instead"
        )));
    }
    let count = state.app.total_instances();
    let node = place(state, count, portable).await?;
    let work = Work::Release(Box::new(ReleasePlan {
        kind: ReleaseKind::Rollback,
        description: format!("Rollback to v{version}"),
        created_by: Some(by),
        image: ImageSource::Of(Box::new(earlier.clone())),
        env: EnvSource::VarsOf(Box::new(earlier)),
        build: None,
    }));
    queue(state, plan, node, StateChange::default(), work).await
}

/// Scales process types: `web` to 1..=10 instances, the others to 0..=10.
/// Types must be in the serving release (or the one rolling out); an
/// application without a release yet may name any type.
async fn scale(
    state: &mut AppState,
    plan: CommandPlan,
    wanted: BTreeMap<String, i32>,
) -> Result<Accepted, Error> {
    let status = state.status()?;
    let mut conn = state.ctx.store().conn().await?;
    let latest = releases::latest(&mut conn, state.id).await?;
    let serving = match state.app.current_release_id {
        Some(id) => Some(releases::get(&mut conn, id).await?),
        None => None,
    };
    drop(conn);
    let known: Option<Vec<String>> = match (&serving, &latest) {
        (None, None) => None,
        _ => Some(
            serving
                .iter()
                .chain(latest.iter())
                .flat_map(crate::releases::process_types)
                .collect(),
        ),
    };
    let mut formation = state.app.formation();
    for (name, count) in &wanted {
        let field = format!("formation.{name}");
        procfile::check_type(name).map_err(|e| Invalid::new(&field, e.0))?;
        if known.as_ref().is_some_and(|k| !k.contains(name)) {
            return Err(Error::Invalid(Invalid::new(
                &field,
                format!(
                    "the application's release has no process type {name:?} (its Procfile declares the types)"
                ),
            )));
        }
        let count = if name == procfile::WEB {
            validate_instance_count(*count).map_err(|e| Invalid::new(&field, e.message))?
        } else if (0..=*skypanel_domain::INSTANCE_COUNT_RANGE.end()).contains(count) {
            *count
        } else {
            return Err(Error::Invalid(Invalid::new(
                &field,
                format!(
                    "{name} can be scaled to 0 to {} instances, got {count}",
                    skypanel_domain::INSTANCE_COUNT_RANGE.end()
                ),
            )));
        };
        formation.insert(name.clone(), count);
    }
    let web = formation.remove(procfile::WEB).unwrap_or(1);
    let change = StateChange {
        instance_count: Some(web),
        ..StateChange::default()
    }
    .with_formation(&formation);
    let total = web + change.other_instances().unwrap_or(0);
    // While a build runs, the counts wait for the release it makes.
    let building = status == AppStatus::Building && build_in_progress(state).await?;
    if !plan.converge || building {
        state.write(&change).await?;
        return Ok(accepted(state));
    }
    // While a release rolls out, scaling applies to the release being rolled out.
    let release = if status == AppStatus::Building {
        latest.ok_or(Error::NotFound)?
    } else {
        serving_release(state).await?
    };
    let node = if total > state.app.total_instances() {
        place(state, total, false).await?
    } else {
        assigned_node(&state.app)?
    };
    queue(state, plan, node, change, Work::Apply(release)).await
}

/// Whether the application's current build has not finished.
async fn build_in_progress(state: &AppState) -> Result<bool, Error> {
    let Some(build_id) = state.app.current_build_id else {
        return Ok(false);
    };
    let mut conn = state.ctx.store().conn().await?;
    let build = builds::by_id(&mut conn, build_id).await?;
    Ok(!skypanel_domain::lifecycle::build::is_finished(
        build.status()?,
    ))
}

async fn delete(state: &mut AppState, plan: CommandPlan) -> Result<Accepted, Error> {
    let mut conn = state.ctx.store().conn().await?;
    tasks::cancel_queued_for_app(&mut conn, state.id).await?;
    app_requests::clear(&mut conn, state.id).await?;
    // A build still running is moot.
    if let Some(build_id) = state.app.current_build_id {
        let build = builds::by_id(&mut conn, build_id).await?;
        if let Ok(next) = build_transition(build.status()?, BuildEvent::Cancel) {
            let change = builds::BuildChange {
                status: Some(next),
                completed: true,
                failure_reason: Some("the application was deleted".into()),
                ..Default::default()
            };
            builds::change(&mut conn, build_id, build.status()?, &change).await?;
            if let Some(task) = tasks::latest_for_build(&mut conn, build_id).await? {
                tasks::request_cancel(&mut conn, task.id).await?;
            }
        }
    }
    let placed = state.app.node_id;
    let running_somewhere = !instances::list_for_app(&mut conn, state.id)
        .await?
        .is_empty();
    match placed {
        None if !running_somewhere => {
            apps::delete_by_id(&mut conn, state.id, state.ctx.now()).await?;
            Ok(Accepted {
                deleted: true,
                ..accepted(state)
            })
        }
        _ => {
            drop(conn);
            let node = assigned_node(&state.app)?;
            queue(state, plan, node, StateChange::default(), Work::Delete).await
        }
    }
}

/// The status a build that has not finished can still take.
pub(crate) fn unfinished(status: BuildStatus) -> bool {
    !skypanel_domain::lifecycle::build::is_finished(status)
}
