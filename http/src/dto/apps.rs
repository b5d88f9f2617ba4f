//! Applications, their environment and builds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use poem_openapi::types::{Example, MaybeUndefined};
use serde::Deserialize;
use skypanel_store::apps::Application;
use skypanel_store::builds::Build;

#[derive(Object, Debug)]
pub struct ApplicationView {
    pub id: i64,
    pub name: String,
    /// URL-safe name, unique on the platform; the system domain starts with it.
    pub slug: String,
    /// `pending`, `building`, `running`, `stopped`, `failed` or `suspended`.
    pub status: String,
    pub region: String,
    pub plan_id: i64,
    #[oai(nullable)]
    pub runtime_id: Option<i64>,
    #[oai(nullable)]
    pub node_id: Option<i64>,
    #[oai(nullable)]
    pub git_repo_url: Option<String>,
    pub git_branch: String,
    /// Whether a git access token is set (the token itself is never shown).
    pub has_git_token: bool,
    /// A prebuilt image deployed instead of a repository.
    #[oai(nullable)]
    pub image: Option<String>,
    /// The port the application listens on inside its container.
    pub port: i32,
    #[oai(nullable)]
    pub health_check_path: Option<String>,
    pub auto_deploy: bool,
    /// The `web` process's instances (`formation.web`).
    pub instance_count: i32,
    /// Instances per process type: `web` and the others scaled above zero.
    pub formation: BTreeMap<String, i32>,
    /// An image application's declared process types (type → command).
    #[oai(nullable)]
    pub processes: Option<BTreeMap<String, String>>,
    /// The release phase's command when the release's Procfile has none.
    #[oai(nullable)]
    pub release_command: Option<String>,
    pub system_domain: String,
    /// Where the application answers once running.
    pub url: String,
    #[oai(nullable)]
    pub current_build_id: Option<i64>,
    #[oai(nullable)]
    pub current_release_id: Option<i64>,
    /// Why the last command failed, when it did.
    #[oai(nullable)]
    pub last_error: Option<String>,
    /// The GitHub repository the application builds from through the
    /// platform's GitHub App, and whether its installation is still there.
    #[oai(nullable)]
    pub github: Option<super::github::AppGithubView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The port the nodes' ingress answers customers' HTTP on (80 unless the
/// platform says otherwise at start: `SKYPANEL_APPS_HTTP_PORT`).
static APPS_HTTP_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(80);

/// Sets the port applications' URLs name (once, at start).
pub fn set_apps_http_port(port: u16) {
    APPS_HTTP_PORT.store(port, std::sync::atomic::Ordering::Relaxed);
}

/// `http://<domain>`, with the ingress port when it is not 80.
pub(crate) fn app_url(domain: &str) -> String {
    match APPS_HTTP_PORT.load(std::sync::atomic::Ordering::Relaxed) {
        80 => format!("http://{domain}"),
        port => format!("http://{domain}:{port}"),
    }
}

impl From<Application> for ApplicationView {
    fn from(a: Application) -> Self {
        let formation = a.formation();
        let processes = a.declared_processes();
        Self {
            url: app_url(&a.system_domain),
            id: a.id,
            name: a.name,
            slug: a.slug,
            status: a.status,
            region: a.region,
            plan_id: a.plan_id,
            runtime_id: a.runtime_id,
            node_id: a.node_id,
            git_repo_url: a.git_repo_url,
            git_branch: a.git_branch,
            has_git_token: a.git_oauth_token.is_some(),
            image: a.image,
            port: a.port,
            health_check_path: a.health_check_path,
            auto_deploy: a.auto_deploy,
            instance_count: a.instance_count,
            formation,
            processes,
            release_command: a.release_command,
            system_domain: a.system_domain,
            current_build_id: a.current_build_id,
            current_release_id: a.current_release_id,
            last_error: a.last_error,
            github: None,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Object, Deserialize)]
#[oai(example)]
#[serde(deny_unknown_fields)]
pub struct CreateApplicationRequest {
    /// Becomes the slug: lowercase letters, digits and hyphens, 3 to 63
    /// characters (other characters are accepted and become hyphens).
    #[oai(validator(pattern = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"))]
    pub name: String,
    /// A plan of `GET /api/paas/plans`.
    #[oai(validator(minimum(value = "1")))]
    pub plan_id: i64,
    /// A region of a registered node (see `GET /api/paas/regions`).
    #[oai(validator(pattern = r"^[a-z0-9][a-z0-9-]{0,49}$"))]
    pub region: String,
    /// Omitted: detected from the repository at build time.
    #[oai(nullable)]
    pub runtime_id: Option<i64>,
    /// `https://…`, `ssh://…` or `user@host:path`. Exclusive with `image`.
    #[oai(nullable)]
    pub git_repo_url: Option<String>,
    /// Defaults to `main`.
    #[oai(nullable)]
    pub git_branch: Option<String>,
    /// Access token for a private repository; stored encrypted, never shown again.
    #[oai(nullable)]
    pub git_oauth_token: Option<String>,
    /// A prebuilt image reference. Exclusive with `git_repo_url`.
    #[oai(nullable, validator(max_length = 255))]
    pub image: Option<String>,
    /// `owner/name` of a repository the caller's GitHub App installation
    /// grants (`GET /api/paas/github/repositories`): builds clone it with a
    /// token minted per build, and pushes deploy through the App's webhook
    /// (with `auto_deploy`). Exclusive with `git_repo_url`, `git_oauth_token`
    /// and `image`.
    #[oai(
        nullable,
        validator(
            max_length = 201,
            pattern = r"^[A-Za-z0-9-]{1,100}/[A-Za-z0-9._-]{1,100}$"
        )
    )]
    pub github_repository: Option<String>,
    /// Defaults to 8080.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "65535")))]
    pub port: Option<i32>,
    /// An HTTP path checked before traffic is switched, e.g. `/healthz`.
    #[oai(nullable, validator(pattern = r"^/[!-~]{0,254}$"))]
    pub health_check_path: Option<String>,
    #[oai(nullable)]
    pub auto_deploy: Option<bool>,
    /// 1 to 10, defaults to 1.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "10")))]
    pub instance_count: Option<i32>,
    /// An image application's process types and commands (run by
    /// `/bin/sh -c`), as a Procfile would declare them: `web` replaces the
    /// image's own command, `release` is the release phase. A git
    /// application's come from its repository's Procfile.
    #[oai(nullable)]
    pub processes: Option<BTreeMap<String, String>>,
    /// A command run once per new release, before its processes start (a
    /// Procfile's `release` entry wins).
    #[oai(nullable, validator(max_length = 4096))]
    pub release_command: Option<String>,
}

impl Example for CreateApplicationRequest {
    fn example() -> Self {
        Self {
            name: "shop".into(),
            plan_id: 1,
            region: "local".into(),
            runtime_id: None,
            git_repo_url: None,
            git_branch: None,
            git_oauth_token: None,
            image: Some("nginx:1.27".into()),
            github_repository: None,
            port: Some(80),
            health_check_path: Some("/".into()),
            auto_deploy: None,
            instance_count: Some(1),
            processes: None,
            release_command: None,
        }
    }
}

/// Every field is optional; send `null` to clear a nullable one.
#[derive(Object, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateApplicationRequest {
    #[oai(nullable)]
    pub plan_id: Option<i64>,
    #[serde(default)]
    pub runtime_id: MaybeUndefined<i64>,
    #[serde(default)]
    pub git_repo_url: MaybeUndefined<String>,
    #[oai(nullable)]
    pub git_branch: Option<String>,
    #[serde(default)]
    pub git_oauth_token: MaybeUndefined<String>,
    #[serde(default)]
    pub image: MaybeUndefined<String>,
    #[oai(nullable)]
    pub port: Option<i32>,
    #[serde(default)]
    pub health_check_path: MaybeUndefined<String>,
    #[oai(nullable)]
    pub auto_deploy: Option<bool>,
    /// An image application's process types (see create); `null` clears.
    /// Takes effect with the next release.
    #[serde(default)]
    pub processes: MaybeUndefined<BTreeMap<String, String>>,
    /// `null` clears. Takes effect with the next release.
    #[serde(default)]
    pub release_command: MaybeUndefined<String>,
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// 1 to 10.
    #[oai(validator(minimum(value = "1"), maximum(value = "10")))]
    pub instance_count: i32,
}

/// Instances per process type: `{"web": 2, "worker": 1}`. Types not named
/// keep their count; `web` 1 to 10, the others 0 to 10.
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FormationRequest {
    pub formation: BTreeMap<String, i32>,
}

/// One process type of the application: its command and how many run.
#[derive(Object, Debug)]
pub struct ProcessTypeView {
    /// `web`, `worker` …
    pub process: String,
    /// Run by `/bin/sh -c`; `null`: the image's own command (`web` only).
    #[oai(nullable)]
    pub command: Option<String>,
    pub quantity: i32,
}

/// The application's formation: each process type of its release and its count.
#[derive(Object, Debug)]
pub struct FormationView {
    /// The release the types come from (the serving one, else the newest).
    #[oai(nullable)]
    pub release: Option<i32>,
    pub processes: Vec<ProcessTypeView>,
    /// The release phase's command, if the release has one.
    #[oai(nullable)]
    pub release_command: Option<String>,
}

#[derive(Object)]
pub struct EnvVarView {
    pub key: String,
    /// Masked (`********`) unless listed with `reveal=true`.
    pub value: String,
    pub updated_at: DateTime<Utc>,
}

/// One variable (`key` and `value`), or several at once (`vars` to set and
/// `unset` to remove): a change of several variables makes one release.
#[derive(Object, Deserialize)]
#[oai(example)]
#[serde(deny_unknown_fields)]
pub struct AddEnvVarRequest {
    /// `[A-Za-z_][A-Za-z0-9_]*`, at most 255 characters. An existing key is
    /// a conflict (change it with PUT).
    #[oai(nullable, validator(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"))]
    pub key: Option<String>,
    /// At most 32 KiB.
    #[oai(nullable, validator(max_length = 32768))]
    pub value: Option<String>,
    /// Variables to set (created or replaced), instead of `key` and `value`.
    #[oai(nullable)]
    pub vars: Option<std::collections::BTreeMap<String, String>>,
    /// Variables to remove in the same change (missing ones are ignored).
    #[oai(nullable)]
    pub unset: Option<Vec<String>>,
}

impl Example for AddEnvVarRequest {
    fn example() -> Self {
        Self {
            key: Some("GREETING".into()),
            value: Some("hello".into()),
            vars: None,
            unset: None,
        }
    }
}

/// A variable after a change, and the release the change made.
#[derive(Object)]
pub struct EnvVarChanged {
    pub key: String,
    /// Masked (`********`).
    pub value: String,
    pub updated_at: DateTime<Utc>,
    /// The release the change made and rolls out (a running application),
    /// or made for the next start (a stopped one); none before the first
    /// deploy, or when nothing changed.
    #[oai(nullable)]
    pub release: Option<i32>,
    /// The change waits for the rollout in flight (its release comes then).
    #[oai(nullable)]
    pub waiting: Option<WaitingView>,
}

/// Several variables changed at once, and the one release it made.
#[derive(Object)]
pub struct EnvChangeView {
    /// Every variable of the application after the change (masked).
    pub vars: Vec<EnvVarView>,
    #[oai(nullable)]
    pub release: Option<i32>,
    #[oai(nullable)]
    pub waiting: Option<WaitingView>,
}

/// A request that waits for the rollout in flight and runs after it.
#[derive(Object, Debug)]
pub struct WaitingView {
    /// 1: it runs next.
    pub position: i64,
    /// What it waits for: `build #4`, `the rollout of v7`.
    pub behind: String,
}

impl From<skypanel_actors::Waiting> for WaitingView {
    fn from(w: skypanel_actors::Waiting) -> Self {
        Self {
            position: w.position,
            behind: w.behind,
        }
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvVarRequest {
    /// At most 32 KiB.
    #[oai(validator(max_length = 32768))]
    pub value: String,
}

#[derive(Object, Debug)]
pub struct BuildView {
    pub id: i64,
    pub application_id: i64,
    /// 1, 2, 3 … per application.
    pub build_number: i32,
    #[oai(nullable)]
    pub git_commit_sha: Option<String>,
    #[oai(nullable)]
    pub git_commit_message: Option<String>,
    /// `pending`, `building`, `success`, `failed` or `cancelled`.
    pub status: String,
    #[oai(nullable)]
    pub image_tag: Option<String>,
    /// Why the build failed, in words a customer can act on.
    #[oai(nullable)]
    pub failure_reason: Option<String>,
    /// Attempts so far (a failure of the infrastructure starts another).
    pub attempt: i32,
    /// The node the build ran (or runs) on.
    #[oai(nullable)]
    pub node_id: Option<i64>,
    /// The branch built.
    #[oai(nullable)]
    pub git_branch: Option<String>,
    /// `dockerfile`, or the runtime a Dockerfile was generated for.
    #[oai(nullable)]
    pub builder: Option<String>,
    #[oai(nullable)]
    pub image_size_mb: Option<i64>,
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Build> for BuildView {
    fn from(b: Build) -> Self {
        Self {
            id: b.id,
            application_id: b.application_id,
            build_number: b.build_number,
            git_commit_sha: b.git_commit_sha,
            git_commit_message: b.git_commit_message,
            status: b.status,
            image_tag: b.image_tag,
            failure_reason: b.failure_reason,
            attempt: b.attempt,
            node_id: b.node_id,
            git_branch: b.git_branch,
            builder: b.builder,
            image_size_mb: b.image_size_mb,
            started_at: b.started_at,
            completed_at: b.completed_at,
            created_at: b.created_at,
        }
    }
}

/// What a release's rollouts wrote, and how its first rollout ended.
#[derive(Object, Debug)]
pub struct ReleaseLog {
    pub version: i32,
    /// `pending`, `succeeded`, `failed` or `superseded`.
    pub status: String,
    #[oai(nullable)]
    pub failure: Option<String>,
    pub log: String,
}

#[derive(Object, Debug)]
pub struct BuildLog {
    pub build_id: i64,
    pub log: String,
}

/// One event of a followed build log: a line, or (last) the final status.
#[derive(Object, Debug)]
pub struct BuildLogEvent {
    #[oai(nullable)]
    pub line: Option<String>,
    /// `success`, `failed` or `cancelled`, on the last event.
    #[oai(nullable)]
    pub status: Option<String>,
}

#[derive(Object, Debug)]
pub struct DeployAccepted {
    pub application: ApplicationView,
    /// The release being rolled out (an image or a rollback).
    #[oai(nullable)]
    pub release: Option<i32>,
    /// The build a deploy from git started.
    #[oai(nullable)]
    pub build: Option<BuildView>,
    /// Another rollout is in flight: this request waits and runs after it
    /// (the newest request of each kind wins).
    #[oai(nullable)]
    pub waiting: Option<WaitingView>,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The release to roll back to.
    #[oai(validator(minimum(value = "1")))]
    pub release: i32,
}

#[derive(Object, Debug)]
pub struct InstanceView {
    pub container_name: String,
    pub node_id: i64,
    pub release: i32,
    /// `web`, `worker` …
    pub process: String,
    /// 0-based instance number.
    pub instance: i32,
    /// `running`, `restarting`, `exited` …
    pub state: String,
    /// The port on the node's 127.0.0.1 the application port is published on.
    #[oai(nullable)]
    pub host_port: Option<i32>,
    pub restart_count: i32,
    /// Kept crashing; the node stopped restarting it.
    pub crash_looping: bool,
    pub cpu_percent: f64,
    pub memory_used_mb: i64,
    pub observed_at: DateTime<Utc>,
    /// When it was first seen running since its last (re)start (its
    /// uptime); `null` while it does not run.
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
}

impl From<skypanel_store::instances::Instance> for InstanceView {
    fn from(i: skypanel_store::instances::Instance) -> Self {
        Self {
            container_name: i.container_name,
            node_id: i.node_id,
            release: i.release_version,
            process: i.process_type,
            instance: i.instance,
            state: i.state,
            host_port: i.host_port,
            restart_count: i.restart_count,
            crash_looping: i.crash_looping,
            cpu_percent: i.cpu_percent,
            memory_used_mb: i.memory_used_mb,
            observed_at: i.observed_at,
            started_at: i.started_at,
        }
    }
}
