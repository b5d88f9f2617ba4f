//! Customer commands inside the application actor: each is checked against
//! the transition table, placed if it needs a node, and then the new state,
//! the new generation and the node's task are written in one transaction.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel_async::AsyncConnection;
use ractor::ActorRef;
use skypanel_domain::env::associated_data;
use skypanel_domain::lifecycle::{AppStatus, CommandPlan, app_transition};
use skypanel_domain::{Invalid, validate_instance_count};
use skypanel_protocol::task::{AppSpec, AppTarget, TaskSpec};
use skypanel_store::apps::{self, Application, StateChange};
use skypanel_store::catalog::{self, Plan};
use skypanel_store::releases::{self, NewRelease, Release};
use skypanel_store::tasks::{self, NewTask, Task};
use skypanel_store::{Conn, domains, env_vars, instances};

use crate::app::{Accepted, AppRequest, AppState};
use crate::context::Context;
use crate::error::Error;
use crate::scheduler::{Requirement, SchedulerMsg};

pub(crate) async fn handle(state: &mut AppState, request: AppRequest) -> Result<Accepted, Error> {
    state.refresh().await?;
    let plan = app_transition(state.status()?, request.command())?;
    match request {
        AppRequest::Deploy { by } => deploy(state, plan, by).await,
        AppRequest::Scale(count) => scale(state, plan, count).await,
        AppRequest::Start => {
            let release = serving_release(state).await;
            let may_move = release.as_ref().map_or(true, |r| r.node_id.is_none());
            let count = state.app.instance_count;
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
    }
}

/// Queues the work that brings the node back to what `status` (running or
/// stopped) means, under a new generation. Not a customer command: the
/// status does not change.
pub(crate) async fn repair(state: &mut AppState, status: AppStatus) -> Result<(), Error> {
    let node = assigned_node(&state.app)?;
    let plan = CommandPlan {
        now: status,
        done: status,
        converge: true,
    };
    let work = match status {
        AppStatus::Stopped => Work::Stop,
        _ => Work::Apply(serving_release(state).await?),
    };
    queue(state, plan, node, StateChange::default(), work)
        .await
        .map(|_| ())
}

/// The node the application runs on; a running application always has one.
fn assigned_node(app: &Application) -> Result<i64, Error> {
    app.node_id.ok_or_else(|| {
        Error::Invalid(Invalid::general(
            "the application is not placed on any node",
        ))
    })
}

/// The release the application serves (or last served).
async fn serving_release(state: &AppState) -> Result<Release, Error> {
    let id = state.app.current_release_id.ok_or_else(|| {
        Error::Invalid(Invalid::general(
            "the application has no release yet; deploy it first",
        ))
    })?;
    let mut conn = state.ctx.store().conn().await?;
    Ok(releases::get(&mut conn, id).await?)
}

async fn deploy(state: &mut AppState, plan: CommandPlan, by: i64) -> Result<Accepted, Error> {
    let image = state.app.image.clone().ok_or_else(|| {
        Error::Invalid(Invalid::new(
            "git_repo_url",
            "deploying from a git repository needs the build pipeline, which this control plane \
             does not have yet; set `image` to deploy a prebuilt image",
        ))
    })?;
    let count = state.app.instance_count;
    let node = place(state, count, true).await?;
    let app = state.app.clone();
    let config = serde_json::json!({"instances": app.instance_count, "port": app.port});
    let new = NewRelease {
        application_id: app.id,
        build_id: None,
        image_tag: &image,
        config,
        description: &format!("Deploy of image {image}"),
        created_by: Some(by),
        node_id: None,
        env_snapshot: None,
    };
    let mut conn = state.ctx.store().conn().await?;
    let release = releases::create(&mut conn, &new).await?;
    drop(conn);
    let version = release.version;
    let mut accepted = queue(
        state,
        plan,
        node,
        StateChange::default(),
        Work::Apply(release),
    )
    .await?;
    accepted.release = Some(version);
    Ok(accepted)
}

async fn scale(state: &mut AppState, plan: CommandPlan, count: i32) -> Result<Accepted, Error> {
    let count = validate_instance_count(count)?;
    let change = StateChange {
        instance_count: Some(count),
        ..StateChange::default()
    };
    if !plan.converge {
        let mut conn = state.ctx.store().conn().await?;
        state.app = apps::write_state(&mut conn, state.id, state.app.version, &change).await?;
        return Ok(accepted(state, None));
    }
    // While a deploy rolls out, scaling applies to the release being rolled out.
    let release = if state.status()? == AppStatus::Building {
        let mut conn = state.ctx.store().conn().await?;
        releases::latest(&mut conn, state.id)
            .await?
            .ok_or(Error::NotFound)?
    } else {
        serving_release(state).await?
    };
    let node = if count > state.app.instance_count {
        place(state, count, false).await?
    } else {
        assigned_node(&state.app)?
    };
    queue(state, plan, node, change, Work::Apply(release)).await
}

async fn delete(state: &mut AppState, plan: CommandPlan) -> Result<Accepted, Error> {
    let mut conn = state.ctx.store().conn().await?;
    tasks::cancel_queued_for_app(&mut conn, state.id).await?;
    let placed = state.app.node_id;
    let running_somewhere = !instances::list_for_app(&mut conn, state.id)
        .await?
        .is_empty();
    match placed {
        None if !running_somewhere => {
            apps::delete_by_id(&mut conn, state.id).await?;
            Ok(Accepted {
                app: state.app.clone(),
                release: None,
                deleted: true,
            })
        }
        _ => {
            drop(conn);
            let node = assigned_node(&state.app)?;
            queue(state, plan, node, StateChange::default(), Work::Delete).await
        }
    }
}

/// What the node is asked to do.
enum Work {
    Apply(Release),
    Restart(Release),
    Stop,
    Delete,
}

impl Work {
    async fn spec(
        &self,
        conn: &mut Conn,
        ctx: &Context,
        app: &Application,
        generation: i64,
    ) -> skypanel_store::Result<TaskSpec> {
        let hostnames = domains::hostnames(conn, app.id).await?;
        let target = || AppTarget {
            app_id: app.id,
            user_id: app.user_id,
            generation,
            hostnames: hostnames.clone(),
        };
        Ok(match self {
            Work::Apply(release) => {
                TaskSpec::AppApply(app_spec(conn, ctx, app, release, generation).await?)
            }
            Work::Restart(release) => {
                TaskSpec::AppRestart(app_spec(conn, ctx, app, release, generation).await?)
            }
            Work::Stop => TaskSpec::AppStop(target()),
            Work::Delete => TaskSpec::AppDelete(target()),
        })
    }
}

/// Writes the accepted command's state with the next generation and queues
/// the node's task, in one transaction.
async fn queue(
    state: &mut AppState,
    plan: CommandPlan,
    node: i64,
    extra: StateChange,
    work: Work,
) -> Result<Accepted, Error> {
    let ctx = state.ctx.clone();
    let current = state.app.clone();
    let generation = current.generation + 1;
    let change = StateChange {
        status: Some(plan.now.as_str().to_string()),
        target_status: Some(Some(plan.done.as_str().to_string())),
        generation: Some(generation),
        node_id: Some(Some(node)),
        last_error: Some(None),
        ..extra
    };
    let mut conn = ctx.store().conn().await?;
    let app = conn
        .transaction(async |conn| {
            let app = apps::write_state(conn, current.id, current.version, &change).await?;
            // Work still queued for a node the application left is moot.
            tasks::cancel_elsewhere(conn, app.id, node).await?;
            let mut spec = work.spec(conn, &ctx, &app, generation).await?;
            let secrets = serde_json::to_string(&spec.take_secrets())
                .map_err(|e| skypanel_store::Error::Corrupt(e.to_string()))?;
            let new = NewTask {
                node_id: node,
                application_id: Some(app.id),
                kind: spec.kind(),
                payload: serde_json::to_value(&spec)
                    .map_err(|e| skypanel_store::Error::Corrupt(e.to_string()))?,
                generation: Some(generation),
                max_attempts: ctx.settings().task_max_attempts,
            };
            let seal = |task_id| {
                ctx.secrets()
                    .seal_str(&secrets, &Task::secrets_associated_data(task_id))
            };
            tasks::create(conn, &new, Some(&seal)).await?;
            Ok::<_, skypanel_store::Error>(app)
        })
        .await?;
    state.app = app;
    tracing::info!(app_id = state.id, generation, node_id = node, status = %plan.now, "command accepted");
    Ok(accepted(state, None))
}

fn accepted(state: &AppState, release: Option<i32>) -> Accepted {
    Accepted {
        app: state.app.clone(),
        release,
        deleted: false,
    }
}

/// The desired state of the application's containers: its release, size,
/// limits and environment (opened here; sealed again for the task).
async fn app_spec(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
    release: &Release,
    generation: i64,
) -> skypanel_store::Result<AppSpec> {
    let plan: Plan = catalog::get_plan(conn, app.plan_id).await?;
    let mut env = BTreeMap::new();
    for var in env_vars::list(conn, app.user_id, app.id).await? {
        let value = ctx
            .secrets()
            .open_str(&var.value, &associated_data(app.id, &var.key))
            .map_err(|e| {
                skypanel_store::Error::Corrupt(format!(
                    "variable {} of app {}: {e}",
                    var.key, app.id
                ))
            })?;
        env.insert(var.key, value);
    }
    env.insert("PORT".to_string(), app.port.to_string());
    Ok(AppSpec {
        app_id: app.id,
        user_id: app.user_id,
        slug: app.slug.clone(),
        generation,
        release: release.version,
        image: release.image_tag.clone(),
        instances: app.instance_count,
        port: app.port,
        health_check_path: app.health_check_path.clone(),
        env,
        cpu_millicores: plan.cpu_limit,
        memory_mb: plan.memory_limit,
        pids_limit: ctx.settings().pids_limit,
        hostnames: domains::hostnames(conn, app.id).await?,
    })
}

/// A node for `instances` instances of the application: its current one
/// while that is up and has room, else (when `may_move`) the Scheduler's
/// choice, recorded on the row before it answers.
async fn place(state: &mut AppState, instances: i32, may_move: bool) -> Result<i64, Error> {
    let app = &state.app;
    let mut conn = state.ctx.store().conn().await?;
    let plan = catalog::get_plan(&mut conn, app.plan_id).await?;
    drop(conn);
    let (cpu, memory) = (i64::from(plan.cpu_limit), i64::from(plan.memory_limit));
    let held = i64::from(app.instance_count);
    let requirement = Requirement {
        app_id: app.id,
        region: app.region.clone(),
        cpu: cpu * i64::from(instances),
        memory: memory * i64::from(instances),
        current: app.node_id,
        held: if app.node_id.is_some() {
            (cpu * held, memory * held)
        } else {
            (0, 0)
        },
        may_move,
    };
    let scheduler: ActorRef<SchedulerMsg> = ractor::registry::where_is(state.ctx.name("scheduler"))
        .ok_or_else(|| Error::Unavailable("the scheduler is not running".into()))?
        .into();
    let answer = scheduler
        .call(
            |reply| SchedulerMsg::Place(requirement, reply),
            Some(Duration::from_secs(10)),
        )
        .await?;
    let node = match answer {
        ractor::rpc::CallResult::Success(result) => result?,
        _ => return Err(Error::Unavailable("the scheduler did not answer".into())),
    };
    state.refresh().await?;
    Ok(node)
}
