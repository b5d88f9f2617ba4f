//! What an application actor asks of a node, and how it is written: the new
//! state, the next generation, any release to record and the node's task go
//! into PostgreSQL in one transaction (version-checked), or not at all.

use diesel_async::AsyncConnection;
use skypanel_domain::Invalid;
use skypanel_domain::lifecycle::CommandPlan;
use skypanel_domain::lifecycle::ReleaseKind;
use skypanel_protocol::procfile;
use skypanel_protocol::task::{
    AppSpec, AppTarget, Certificate, ProcessSpec, ReleasePhase, TaskSpec,
};
use skypanel_store::apps::{self, Application, StateChange};
use skypanel_store::catalog;
use skypanel_store::domains::Domain;
use skypanel_store::releases::Release;
use skypanel_store::tasks::{self, NewTask, Task};
use skypanel_store::{Conn, certificates, domains, instances};

use crate::app::{Accepted, AppState};
use crate::context::Context;
use crate::error::Error;
use crate::releases::{self, ReleasePlan};
use crate::scheduler::{Placed, Requirement};

/// What the node is asked to do.
pub(crate) enum Work {
    Apply(Release),
    /// Record a release, then apply it.
    Release(Box<ReleasePlan>),
    Restart(Release),
    Stop,
    Delete,
}

/// The node the application runs on; a running application always has one.
pub(crate) fn assigned_node(app: &Application) -> Result<i64, Error> {
    app.node_id.ok_or_else(|| {
        Error::Invalid(Invalid::general(
            "the application is not placed on any node",
        ))
    })
}

/// The release the application serves (or last served).
pub(crate) async fn serving_release(state: &AppState) -> Result<Release, Error> {
    let id = state.app.current_release_id.ok_or_else(|| {
        Error::Invalid(Invalid::general(
            "the application has no release yet; deploy it first",
        ))
    })?;
    let mut conn = state.ctx.store().conn().await?;
    Ok(skypanel_store::releases::get(&mut conn, id).await?)
}

/// Whether an earlier release still serves (so a failed rollout leaves the
/// application running): it has a release and a running instance.
pub(crate) async fn still_serving(state: &AppState) -> Result<bool, Error> {
    if state.app.current_release_id.is_none() {
        return Ok(false);
    }
    let mut conn = state.ctx.store().conn().await?;
    Ok(instances::list_for_app(&mut conn, state.id)
        .await?
        .iter()
        .any(|i| i.state == "running"))
}

pub(crate) fn accepted(state: &AppState) -> Accepted {
    Accepted {
        app: state.app.clone(),
        release: None,
        build: None,
        deleted: false,
        waiting: None,
        vars: None,
    }
}

/// Writes the accepted command's state with the next generation, records the
/// release the work needs, and queues the node's task: one transaction.
pub(crate) async fn queue(
    state: &mut AppState,
    plan: CommandPlan,
    node: i64,
    extra: StateChange,
    work: Work,
) -> Result<Accepted, Error> {
    let ctx = state.ctx.clone();
    let current = state.app.clone();
    let mut conn = ctx.store().conn().await?;
    let (app, release) = conn
        .transaction(async |conn| {
            crate::shards::fence(conn, &ctx, current.id).await?;
            queue_in(conn, &ctx, &current, plan, node, extra, work).await
        })
        .await?;
    state.app = app;
    let mut answer = accepted(state);
    answer.release = release;
    Ok(answer)
}

/// [`queue`] inside the caller's transaction (with more to write in it);
/// answers the application as written and the release recorded, if any.
pub(crate) async fn queue_in(
    conn: &mut Conn,
    ctx: &Context,
    current: &Application,
    plan: CommandPlan,
    node: i64,
    extra: StateChange,
    work: Work,
) -> skypanel_store::Result<(Application, Option<i32>)> {
    let generation = current.generation + 1;
    let (work, release) = match work {
        Work::Release(release_plan) => {
            let release = releases::record(conn, ctx, current, *release_plan).await?;
            (Work::Apply(release.clone()), Some(release.version))
        }
        other => (other, None),
    };
    // The registry gets the image from the node that has it, while the rollout runs.
    if let Work::Apply(release) | Work::Restart(release) = &work {
        crate::images::ensure_pushed(conn, ctx, current, release).await?;
    }
    let mut change = StateChange {
        status: Some(plan.now.as_str().to_string()),
        target_status: Some(Some(plan.done.as_str().to_string())),
        generation: Some(generation),
        node_id: Some(Some(node)),
        last_error: Some(None),
        ..extra
    };
    if let Work::Apply(release) = &work
        && release.build_id.is_some()
    {
        change.current_build_id = Some(release.build_id);
    }
    let app = apps::write_state(conn, current.id, current.version, &change, ctx.now()).await?;
    // Work still queued for a node the application left is moot.
    tasks::cancel_elsewhere(conn, app.id, node).await?;
    let mut spec = work.spec(conn, ctx, &app, generation, node).await?;
    let of = TaskOf {
        node,
        application_id: Some(app.id),
        database_id: None,
        build_id: None,
        generation: Some(generation),
    };
    create_task(conn, ctx, of, &mut spec).await?;
    tracing::info!(app_id = app.id, generation, node_id = node, status = %plan.now, "command accepted");
    Ok((app, release))
}

/// What a task belongs to, besides its spec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskOf {
    pub node: i64,
    pub application_id: Option<i64>,
    pub database_id: Option<i64>,
    pub build_id: Option<i64>,
    pub generation: Option<i64>,
}

/// Queues a task, its secrets sealed apart from its payload. Runs inside the
/// caller's transaction (a task with secrets needs one: see `tasks::create`).
pub(crate) async fn create_task(
    conn: &mut Conn,
    ctx: &Context,
    of: TaskOf,
    spec: &mut TaskSpec,
) -> skypanel_store::Result<Task> {
    let attempts = ctx.settings().task_max_attempts;
    create_task_with(conn, ctx, of, spec, attempts).await
}

/// [`create_task`] with a number of leases of its own (`1`: never carried
/// out twice, such as a one-off command).
pub(crate) async fn create_task_with(
    conn: &mut Conn,
    ctx: &Context,
    of: TaskOf,
    spec: &mut TaskSpec,
    max_attempts: i32,
) -> skypanel_store::Result<Task> {
    let secrets = serde_json::to_string(&spec.take_secrets())
        .map_err(|e| skypanel_store::Error::Corrupt(e.to_string()))?;
    let new = NewTask {
        node_id: of.node,
        application_id: of.application_id,
        build_id: of.build_id,
        database_id: of.database_id,
        kind: spec.kind(),
        payload: serde_json::to_value(&*spec)
            .map_err(|e| skypanel_store::Error::Corrupt(e.to_string()))?,
        generation: of.generation,
        max_attempts,
    };
    let seal = |task_id| {
        ctx.secrets()
            .seal_str(&secrets, &Task::secrets_associated_data(task_id))
    };
    tasks::create(conn, &new, Some(&seal)).await
}

impl Work {
    async fn spec(
        &self,
        conn: &mut Conn,
        ctx: &Context,
        app: &Application,
        generation: i64,
        node: i64,
    ) -> skypanel_store::Result<TaskSpec> {
        let hostnames = domains::hostnames(conn, app.id).await?;
        let certificates = tls_certificates(conn, ctx, app).await?;
        let target = || AppTarget {
            app_id: app.id,
            user_id: app.user_id,
            generation,
            hostnames: hostnames.clone(),
            certificates: certificates.clone(),
        };
        Ok(match self {
            Work::Apply(release) => {
                TaskSpec::AppApply(app_spec(conn, ctx, app, release, generation, node).await?)
            }
            Work::Restart(release) => {
                TaskSpec::AppRestart(app_spec(conn, ctx, app, release, generation, node).await?)
            }
            Work::Release(_) => {
                return Err(skypanel_store::Error::Corrupt(
                    "a release must be recorded before its spec is made".into(),
                ));
            }
            Work::Stop => TaskSpec::AppStop(target()),
            Work::Delete => TaskSpec::AppDelete(target()),
        })
    }
}

/// The desired state of the application's containers on `node`: its
/// release (image, environment, port and limits as the release froze them),
/// size, names and certificates (keys opened here; sealed again for the task).
async fn app_spec(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
    release: &Release,
    generation: i64,
    node: i64,
) -> skypanel_store::Result<AppSpec> {
    let frozen = releases::frozen(conn, ctx, app, release).await?;
    let (release_image, registry_login) = releases::release_image(ctx, app, release, node);
    let formation = app.formation();
    let processes = frozen
        .processes
        .iter()
        .filter(|(name, _)| *name != procfile::WEB && *name != procfile::RELEASE)
        .filter_map(|(name, command)| {
            let instances = formation.get(name).copied().unwrap_or(0);
            (instances > 0).then(|| ProcessSpec {
                process: name.clone(),
                command: command.clone(),
                instances,
            })
        })
        .collect();
    // The release phase runs until the release's first rollout succeeded;
    // a rollback runs an image whose release phase ran already.
    let release_phase = frozen
        .release_command
        .clone()
        .filter(|_| {
            release.status == skypanel_store::releases::PENDING
                && release.kind != ReleaseKind::Rollback.as_str()
        })
        .map(|command| ReleasePhase {
            command,
            timeout_secs: ctx.settings().release_phase_timeout.as_secs(),
        });
    Ok(AppSpec {
        app_id: app.id,
        user_id: app.user_id,
        slug: app.slug.clone(),
        generation,
        release: release.version,
        image: release.image_tag.clone(),
        release_image,
        registry_login,
        instances: app.instance_count,
        port: frozen.port,
        health_check_path: app.health_check_path.clone(),
        env: frozen.env,
        cpu_millicores: frozen.cpu_millicores,
        memory_mb: frozen.memory_mb,
        pids_limit: ctx.settings().pids_limit,
        hostnames: domains::hostnames(conn, app.id).await?,
        certificates: tls_certificates(conn, ctx, app).await?,
        web_command: frozen.processes.get(procfile::WEB).cloned(),
        processes,
        release_phase,
    })
}

/// The HTTPS certificates of the application's names, keys opened (sealed
/// again with the task). A key that does not open is left out, with a
/// warning: the name is then served over HTTP only.
async fn tls_certificates(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
) -> skypanel_store::Result<Vec<Certificate>> {
    let mut list = Vec::new();
    for cert in certificates::installable(conn, app.id).await? {
        match ctx.secrets().open_str(
            &cert.sealed_key,
            &Domain::key_associated_data(cert.domain_id),
        ) {
            Ok(key_pem) => list.push(Certificate {
                hostname: cert.hostname,
                chain_pem: cert.chain_pem,
                key_pem,
            }),
            Err(err) => tracing::warn!(
                app_id = app.id,
                hostname = %cert.hostname,
                error = %err,
                "a certificate's key does not open; the name is served over HTTP"
            ),
        }
    }
    Ok(list)
}

/// A node for `instances` instances of the application: its current one
/// while that is up and has room, else (when `may_move`) the Scheduler's
/// choice, recorded on the row before it answers.
pub(crate) async fn place(
    state: &mut AppState,
    instances: i32,
    may_move: bool,
) -> Result<i64, Error> {
    let app = &state.app;
    let mut conn = state.ctx.store().conn().await?;
    let plan = catalog::get_plan(&mut conn, app.plan_id).await?;
    drop(conn);
    let (cpu, memory) = (i64::from(plan.cpu_limit), i64::from(plan.memory_limit));
    let held = i64::from(app.total_instances());
    // What the application holds on its node now counts as free for it.
    let holding = |status: Option<&str>| {
        status
            .and_then(|s| s.parse::<skypanel_domain::lifecycle::AppStatus>().ok())
            .is_some_and(|s| s.holds_capacity())
    };
    let holds = app.node_id.is_some()
        && (holding(Some(&app.status)) || holding(app.target_status.as_deref()));
    let requirement = Requirement {
        entity: Placed::App(app.id),
        region: app.region.clone(),
        cpu: cpu * i64::from(instances),
        memory: memory * i64::from(instances),
        current: app.node_id,
        held: if holds {
            (cpu * held, memory * held)
        } else {
            (0, 0)
        },
        may_move,
    };
    let node = crate::scheduler::place(&state.ctx, requirement).await?;
    state.refresh().await?;
    Ok(node)
}
