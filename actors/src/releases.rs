//! What a release freezes and how it is recorded: its image (by content, and
//! where the registry has it), the environment (the customer's variables and
//! the linked databases' ones, sealed), the plan's limits and the port. Every
//! container of the release is made from this, whoever makes it (a deploy,
//! a scale, a restart, a resume, a move to another node).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use skypanel_domain::env::associated_data;
use skypanel_domain::lifecycle::{BuildEvent, BuildStatus, ReleaseKind, build_transition};
use skypanel_protocol::database::Connection;
use skypanel_protocol::image::{RegistryLogin, ReleaseImage};
use skypanel_protocol::procfile;
use skypanel_protocol::task::BuildResult;
use skypanel_store::apps::Application;
use skypanel_store::builds::{self, BuildChange};
use skypanel_store::catalog::{self, Plan};
use skypanel_store::releases::{self, NewRelease, Release};
use skypanel_store::{Conn, databases, env_vars};

use crate::context::Context;

/// The environment a release runs with.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReleaseEnv {
    /// The customer's variables.
    pub vars: BTreeMap<String, String>,
    /// The linked databases' variables (a customer's variable of the same
    /// name wins). `None` in releases recorded before links were frozen.
    pub linked: Option<BTreeMap<String, String>>,
}

impl ReleaseEnv {
    /// The containers' environment: linked variables, the customer's over
    /// them, and `PORT`.
    pub fn for_containers(&self, port: i32) -> BTreeMap<String, String> {
        let mut env = self.linked.clone().unwrap_or_default();
        env.extend(self.vars.clone());
        env.insert("PORT".to_string(), port.to_string());
        env
    }
}

/// The configuration a release freezes besides its environment.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleaseConfig {
    pub port: i32,
    pub plan_id: Option<i64>,
    pub cpu_millicores: Option<i32>,
    pub memory_mb: Option<i32>,
    /// The instance count when it was made (informational: scaling is not a release).
    #[serde(default)]
    pub instances: i32,
    /// Process types and their commands (a Procfile's entries, `release`
    /// among them); `None`: `web` only, with the image's own command.
    #[serde(default)]
    pub processes: Option<BTreeMap<String, String>>,
    /// The release phase's command (the Procfile's `release`, else the
    /// application's setting when the release was made).
    #[serde(default)]
    pub release_command: Option<String>,
}

impl ReleaseConfig {
    fn of(release: &Release) -> Option<Self> {
        serde_json::from_value(release.config.clone()).ok()
    }
}

/// Whether a new release from `serving` would change nothing its
/// containers get: the same environment, port and plan limits.
pub(crate) async fn unchanged(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
    serving: &Release,
) -> skypanel_store::Result<bool> {
    let now = current_env(conn, ctx, app).await?;
    if open_env(ctx, serving)?.as_ref() != Some(&now) {
        return Ok(false);
    }
    let plan = catalog::get_plan(conn, app.plan_id).await?;
    Ok(ReleaseConfig::of(serving).is_some_and(|c| {
        c.port == app.port
            && c.cpu_millicores == Some(plan.cpu_limit)
            && c.memory_mb == Some(plan.memory_limit)
    }))
}

/// Where a new release's image comes from.
#[derive(Debug, Clone)]
pub(crate) enum ImageSource {
    /// A build made it on `node` (its tag and digest there).
    Built { node: i64, result: BuildResult },
    /// A prebuilt image by its reference: pinned when a node first resolves it.
    Prebuilt(String),
    /// The same image as an earlier release (a configuration change, a rollback).
    Of(Box<Release>),
}

/// Where a new release's environment comes from.
#[derive(Debug, Clone)]
pub(crate) enum EnvSource {
    /// The application's variables and links as they are now.
    Current,
    /// An earlier release's variables (a rollback; they become the
    /// application's variables again) with the links as they are now.
    VarsOf(Box<Release>),
}

/// A release to record in the caller's transaction.
#[derive(Debug, Clone)]
pub(crate) struct ReleasePlan {
    pub kind: ReleaseKind,
    pub description: String,
    pub created_by: Option<i64>,
    pub image: ImageSource,
    pub env: EnvSource,
    /// The build that made the image, marked succeeded with its result.
    pub build: Option<i64>,
}

/// Records a release (and the build's success) inside the caller's transaction.
pub(crate) async fn record(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
    plan: ReleasePlan,
) -> skypanel_store::Result<Release> {
    if let (Some(build_id), ImageSource::Built { result, .. }) = (plan.build, &plan.image) {
        mark_build_succeeded(conn, build_id, result).await?;
    }
    let mut env = current_env(conn, ctx, app).await?;
    if let EnvSource::VarsOf(earlier) = &plan.env {
        env.vars = open_env(ctx, earlier)?.map(|e| e.vars).unwrap_or_default();
        let sealed: Vec<(String, Vec<u8>)> = env
            .vars
            .iter()
            .map(|(key, value)| {
                let sealed = ctx.secrets().seal_str(value, &associated_data(app.id, key));
                (key.clone(), sealed)
            })
            .collect();
        env_vars::replace_all(conn, app.id, &sealed).await?;
    }
    let sealed_env = serde_json::to_string(&env).map_err(corrupt)?;
    let plan_row: Plan = catalog::get_plan(conn, app.plan_id).await?;
    let processes = processes_of(app, &plan.image);
    let release_command = processes
        .as_ref()
        .and_then(|p| p.get(procfile::RELEASE).cloned())
        .or_else(|| app.release_command.clone());
    let config = serde_json::to_value(ReleaseConfig {
        port: app.port,
        plan_id: Some(plan_row.id),
        cpu_millicores: Some(plan_row.cpu_limit),
        memory_mb: Some(plan_row.memory_limit),
        instances: app.instance_count,
        processes,
        release_command,
    })
    .map_err(corrupt)?;
    let (tag, node_id, image_id, registry_ref, image_digest, build_id) = match &plan.image {
        ImageSource::Built { node, result } => (
            result.image_tag.clone(),
            Some(*node),
            Some(result.image_id.clone()).filter(|id| !id.is_empty()),
            None,
            None,
            plan.build,
        ),
        ImageSource::Prebuilt(reference) => (reference.clone(), None, None, None, None, None),
        ImageSource::Of(earlier) => (
            earlier.image_tag.clone(),
            earlier.node_id,
            earlier.image_id.clone(),
            earlier.registry_ref.clone(),
            earlier.image_digest.clone(),
            earlier.build_id,
        ),
    };
    let new = NewRelease {
        application_id: app.id,
        build_id,
        image_tag: &tag,
        config,
        description: &plan.description,
        created_by: plan.created_by,
        node_id,
        kind: plan.kind,
        image_id: image_id.as_deref(),
        registry_ref: registry_ref.as_deref(),
        image_digest: image_digest.as_deref(),
    };
    let seal = |release_id| {
        ctx.secrets()
            .seal_str(&sealed_env, &Release::env_associated_data(release_id))
    };
    releases::create_sealed(conn, &new, &seal).await
}

/// A new release's process types: a build's Procfile; an image
/// application's declared processes; else those of the release whose image
/// it reuses.
fn processes_of(app: &Application, image: &ImageSource) -> Option<BTreeMap<String, String>> {
    match image {
        ImageSource::Built { result, .. } => result.procfile.clone(),
        ImageSource::Prebuilt(_) => app.declared_processes(),
        ImageSource::Of(earlier) => match app.declared_processes() {
            Some(declared) if app.git_repo_url.is_none() => Some(declared),
            _ => ReleaseConfig::of(earlier).and_then(|c| c.processes),
        },
    }
}

/// A release's declared processes (type → command, `release` among them
/// when its Procfile has it) and its release phase's command.
pub fn processes_and_release_command(
    release: &Release,
) -> (BTreeMap<String, String>, Option<String>) {
    let config = ReleaseConfig::of(release);
    (
        config
            .as_ref()
            .and_then(|c| c.processes.clone())
            .unwrap_or_default(),
        config.and_then(|c| c.release_command),
    )
}

/// The process types of a release (always `web`).
pub(crate) fn process_types(release: &Release) -> Vec<String> {
    let processes = ReleaseConfig::of(release)
        .and_then(|c| c.processes)
        .unwrap_or_default();
    procfile::process_types(&processes)
}

async fn mark_build_succeeded(
    conn: &mut Conn,
    build_id: i64,
    result: &BuildResult,
) -> skypanel_store::Result<()> {
    let next = build_transition(BuildStatus::Building, BuildEvent::Succeed).map_err(corrupt)?;
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
    builds::change(conn, build_id, BuildStatus::Building, &change)
        .await?
        .ok_or_else(|| {
            skypanel_store::Error::conflict(None, "the build was cancelled meanwhile")
        })?;
    Ok(())
}

fn corrupt(err: impl std::fmt::Display) -> skypanel_store::Error {
    skypanel_store::Error::Corrupt(err.to_string())
}

/// The environment a release was recorded with (`None`: none was recorded).
/// Releases recorded before links were frozen hold the variables alone.
pub(crate) fn open_env(
    ctx: &Context,
    release: &Release,
) -> skypanel_store::Result<Option<ReleaseEnv>> {
    let Some(sealed) = &release.env_snapshot else {
        return Ok(None);
    };
    let opened = ctx
        .secrets()
        .open_str(sealed, &Release::env_associated_data(release.id))
        .map_err(|e| corrupt(format!("environment of release {}: {e}", release.version)))?;
    if let Ok(env) = serde_json::from_str::<ReleaseEnv>(&opened) {
        return Ok(Some(env));
    }
    let vars: BTreeMap<String, String> = serde_json::from_str(&opened).map_err(corrupt)?;
    Ok(Some(ReleaseEnv { vars, linked: None }))
}

/// The application's variables and linked databases' variables as they are now.
pub(crate) async fn current_env(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
) -> skypanel_store::Result<ReleaseEnv> {
    let mut vars = BTreeMap::new();
    for var in env_vars::list(conn, app.user_id, app.id).await? {
        let value = ctx
            .secrets()
            .open_str(&var.value, &associated_data(app.id, &var.key))
            .map_err(|e| corrupt(format!("variable {} of app {}: {e}", var.key, app.id)))?;
        vars.insert(var.key, value);
    }
    Ok(ReleaseEnv {
        vars,
        linked: Some(linked_variables(conn, ctx, app).await?),
    })
}

/// The variables of the databases linked into the application (passwords opened).
async fn linked_variables(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
) -> skypanel_store::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for link in databases::links(conn, app.id).await? {
        let db = &link.database;
        let sealed = databases::sealed_password_of(conn, db.id).await?;
        let password = ctx
            .secrets()
            .open_str(
                &sealed,
                &databases::Database::password_associated_data(db.id),
            )
            .map_err(|e| corrupt(format!("password of database {}: {e}", db.id)))?;
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

/// What a container of `release` is made of: its environment, port and limits.
pub(crate) struct Frozen {
    pub env: BTreeMap<String, String>,
    pub port: i32,
    pub cpu_millicores: i32,
    pub memory_mb: i32,
    /// Process types and commands (`release` among them when the Procfile has it).
    pub processes: BTreeMap<String, String>,
    pub release_command: Option<String>,
}

/// The environment, port and limits of a release's containers. Releases
/// recorded before these were frozen take what is missing from the
/// application as it is now.
pub(crate) async fn frozen(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
    release: &Release,
) -> skypanel_store::Result<Frozen> {
    let config = ReleaseConfig::of(release);
    let port = config.as_ref().map_or(app.port, |c| c.port);
    let (cpu, memory) = match config
        .as_ref()
        .and_then(|c| c.cpu_millicores.zip(c.memory_mb))
    {
        Some(limits) => limits,
        None => {
            let plan = catalog::get_plan(conn, app.plan_id).await?;
            (plan.cpu_limit, plan.memory_limit)
        }
    };
    let mut env = match open_env(ctx, release)? {
        Some(env) => env,
        None => current_env(conn, ctx, app).await?,
    };
    if env.linked.is_none() {
        env.linked = Some(linked_variables(conn, ctx, app).await?);
    }
    Ok(Frozen {
        env: env.for_containers(port),
        port,
        cpu_millicores: cpu,
        memory_mb: memory,
        processes: config
            .as_ref()
            .and_then(|c| c.processes.clone())
            .unwrap_or_default(),
        release_command: config.and_then(|c| c.release_command),
    })
}

/// The image of a release as a node needs it, and the login that pulls it
/// (a ticket for this node and this application only).
pub(crate) fn release_image(
    ctx: &Context,
    app: &Application,
    release: &Release,
    node: i64,
) -> (ReleaseImage, Option<RegistryLogin>) {
    let pull = ctx.settings().registry.as_ref().and_then(|registry| {
        let repository = registry.address.repository(app.id);
        match (&release.image_digest, &release.registry_ref) {
            (Some(digest), _) => Some(format!("{repository}@{digest}")),
            // The push is under way: the tag is there once it ends.
            (None, Some(reference)) => Some(reference.clone()),
            (None, None) => None,
        }
    });
    let login = match (&pull, ctx.settings().registry.as_ref()) {
        (Some(_), Some(registry)) => Some(registry.login(node, app.id, false, ctx.now())),
        _ => None,
    };
    (
        ReleaseImage {
            id: release.image_id.clone(),
            pull,
        },
        login,
    )
}
