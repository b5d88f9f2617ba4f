//! What an application actor asks of a node, and how it is written: the new
//! state, the next generation, any release to record and the node's task go
//! into PostgreSQL in one transaction (version-checked), or not at all.

use std::collections::BTreeMap;

use diesel_async::AsyncConnection;
use skypanel_domain::Invalid;
use skypanel_domain::env::associated_data;
use skypanel_domain::lifecycle::{BuildEvent, BuildStatus, CommandPlan, build_transition};
use skypanel_protocol::database::Connection;
use skypanel_protocol::task::{AppSpec, AppTarget, BuildResult, Certificate, TaskSpec};
use skypanel_store::apps::{self, Application, StateChange};
use skypanel_store::builds::{self, BuildChange};
use skypanel_store::catalog::{self, Plan};
use skypanel_store::domains::Domain;
use skypanel_store::releases::{self, NewRelease, Release};
use skypanel_store::tasks::{self, NewTask, Task};
use skypanel_store::{Conn, certificates, databases, domains, env_vars, instances};

use crate::app::{Accepted, AppState};
use crate::context::Context;
use crate::error::Error;
use crate::scheduler::{Placed, Requirement};

/// A release recorded in the same transaction as its rollout.
#[derive(Debug, Clone)]
pub(crate) struct ReleasePlan {
    pub image: String,
    pub description: String,
    pub created_by: Option<i64>,
    /// The build that made the image, marked succeeded with its result.
    pub build: Option<(i64, BuildResult)>,
    /// The node holding a built image.
    pub node_id: Option<i64>,
    /// A rollback: the environment of this earlier release comes back.
    pub restore_env_of: Option<Release>,
}

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
    Ok(releases::get(&mut conn, id).await?)
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
    let generation = current.generation + 1;
    let mut conn = ctx.store().conn().await?;
    let (app, release) = conn
        .transaction(async |conn| {
            let (work, release) = match work {
                Work::Release(release_plan) => {
                    let release = record_release(conn, &ctx, &current, *release_plan).await?;
                    (Work::Apply(release.clone()), Some(release.version))
                }
                other => (other, None),
            };
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
            let app =
                apps::write_state(conn, current.id, current.version, &change, ctx.now()).await?;
            // Work still queued for a node the application left is moot.
            tasks::cancel_elsewhere(conn, app.id, node).await?;
            let mut spec = work.spec(conn, &ctx, &app, generation).await?;
            let of = TaskOf {
                node,
                application_id: Some(app.id),
                database_id: None,
                build_id: None,
                generation: Some(generation),
            };
            create_task(conn, &ctx, of, &mut spec).await?;
            Ok::<_, skypanel_store::Error>((app, release))
        })
        .await?;
    state.app = app;
    tracing::info!(app_id = state.id, generation, node_id = node, status = %plan.now, "command accepted");
    let mut answer = accepted(state);
    answer.release = release;
    Ok(answer)
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
        max_attempts: ctx.settings().task_max_attempts,
    };
    let seal = |task_id| {
        ctx.secrets()
            .seal_str(&secrets, &Task::secrets_associated_data(task_id))
    };
    tasks::create(conn, &new, Some(&seal)).await
}

/// Records a release (and what comes with it) inside the caller's transaction.
async fn record_release(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
    plan: ReleasePlan,
) -> skypanel_store::Result<Release> {
    if let Some((build_id, result)) = &plan.build {
        let next = build_transition(BuildStatus::Building, BuildEvent::Succeed)
            .map_err(|e| skypanel_store::Error::Corrupt(e.to_string()))?;
        let change = BuildChange {
            status: Some(next),
            completed: true,
            image_tag: Some(result.image_tag.clone()),
            git_commit_sha: Some(result.commit_sha.clone()),
            git_commit_message: Some(result.commit_message.clone()),
            builder: Some(result.builder.clone()),
            image_size_mb: Some(result.image_size_mb),
            ..BuildChange::default()
        };
        builds::change(conn, *build_id, BuildStatus::Building, &change)
            .await?
            .ok_or_else(|| {
                skypanel_store::Error::conflict(None, "the build was cancelled meanwhile")
            })?;
    }
    if let Some(earlier) = &plan.restore_env_of {
        let env = release_environment(ctx, earlier)?;
        let sealed: Vec<(String, Vec<u8>)> = env
            .iter()
            .map(|(key, value)| {
                let sealed = ctx.secrets().seal_str(value, &associated_data(app.id, key));
                (key.clone(), sealed)
            })
            .collect();
        env_vars::replace_all(conn, app.id, &sealed).await?;
    }
    let env = serde_json::to_string(&environment(conn, ctx, app).await?)
        .map_err(|e| skypanel_store::Error::Corrupt(e.to_string()))?;
    let config = serde_json::json!({"instances": app.instance_count, "port": app.port});
    let new = NewRelease {
        application_id: app.id,
        build_id: plan
            .build
            .as_ref()
            .map(|(id, _)| *id)
            .or(plan.restore_env_of.as_ref().and_then(|r| r.build_id)),
        image_tag: &plan.image,
        config,
        description: &plan.description,
        created_by: plan.created_by,
        node_id: plan.node_id,
    };
    let seal = |release_id| {
        ctx.secrets()
            .seal_str(&env, &Release::env_associated_data(release_id))
    };
    releases::create_sealed(conn, &new, &seal).await
}

/// The environment a release was recorded with.
fn release_environment(
    ctx: &Context,
    release: &Release,
) -> skypanel_store::Result<BTreeMap<String, String>> {
    let Some(sealed) = &release.env_snapshot else {
        return Ok(BTreeMap::new());
    };
    let opened = ctx
        .secrets()
        .open_str(sealed, &Release::env_associated_data(release.id))
        .map_err(|e| {
            skypanel_store::Error::Corrupt(format!(
                "environment of release {}: {e}",
                release.version
            ))
        })?;
    serde_json::from_str(&opened).map_err(|e| skypanel_store::Error::Corrupt(e.to_string()))
}

/// The application's environment variables, opened.
async fn environment(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
) -> skypanel_store::Result<BTreeMap<String, String>> {
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
    Ok(env)
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
                TaskSpec::AppApply(app_spec(conn, ctx, app, release, generation).await?)
            }
            Work::Restart(release) => {
                TaskSpec::AppRestart(app_spec(conn, ctx, app, release, generation).await?)
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

/// The desired state of the application's containers: its release, size,
/// limits, names and environment (opened here; sealed again for the task).
async fn app_spec(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
    release: &Release,
    generation: i64,
) -> skypanel_store::Result<AppSpec> {
    let plan: Plan = catalog::get_plan(conn, app.plan_id).await?;
    let mut env = environment(conn, ctx, app).await?;
    // Linked databases' variables, unless the customer set one of the same name.
    for (key, value) in linked_variables(conn, ctx, app).await? {
        env.entry(key).or_insert(value);
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
        certificates: tls_certificates(conn, ctx, app).await?,
    })
}

/// The variables of the databases linked into the application (passwords opened).
async fn linked_variables(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
) -> skypanel_store::Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for link in databases::links(conn, app.id).await? {
        let db = &link.database;
        let sealed = databases::sealed_password_of(conn, db.id).await?;
        let password = ctx
            .secrets()
            .open_str(
                &sealed,
                &databases::Database::password_associated_data(db.id),
            )
            .map_err(|e| {
                skypanel_store::Error::Corrupt(format!("password of database {}: {e}", db.id))
            })?;
        let connection = Connection {
            db_type: &db.db_type,
            host: db.host.as_deref().unwrap_or_default(),
            port: db.port.unwrap_or_default(),
            user: db.username.as_deref().unwrap_or_default(),
            password: &password,
            database: db.database_name.as_deref().unwrap_or_default(),
        };
        vars.extend(connection.variables(&link.env_var_prefix));
    }
    Ok(vars)
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
    let held = i64::from(app.instance_count);
    let requirement = Requirement {
        entity: Placed::App(app.id),
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
    let node = crate::scheduler::place(&state.ctx, requirement).await?;
    state.refresh().await?;
    Ok(node)
}
