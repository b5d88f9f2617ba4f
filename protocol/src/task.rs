//! Task messages: what a lease hands an agent, and what the agent reports back
//! (extend, status, logs). Every report carries the lease id; a stale one is refused.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The desired state of one application on the node. Applying it is
/// idempotent: containers already as described are left alone.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct AppSpec {
    pub app_id: i64,
    pub user_id: i64,
    pub slug: String,
    /// The application generation this spec belongs to.
    pub generation: i64,
    pub release: i32,
    /// The image as it was named (a build's tag, or the customer's reference).
    pub image: String,
    /// The image the release runs, by content, and where to pull it from.
    #[serde(default)]
    pub release_image: crate::image::ReleaseImage,
    /// How the node logs in to the platform's registry to pull it. Secret:
    /// empty in stored payloads.
    #[serde(default)]
    pub registry_login: Option<crate::image::RegistryLogin>,
    pub instances: i32,
    /// The port the application listens on inside the container.
    pub port: i32,
    /// An HTTP path that must answer 2xx or 3xx before an instance counts as
    /// up; without one, a TCP connection to the port is enough.
    #[serde(default)]
    pub health_check_path: Option<String>,
    /// Environment variables, `PORT` included. Secret: never logged.
    pub env: BTreeMap<String, String>,
    pub cpu_millicores: i32,
    pub memory_mb: i32,
    pub pids_limit: i32,
    /// The names the node's ingress routes to the application (its system
    /// domain first, then its custom domains).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// HTTPS certificates of some of those names.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// The web process's command (run by `/bin/sh -c`); the image's own
    /// command when absent.
    #[serde(default)]
    pub web_command: Option<String>,
    /// The other process types to run and how many of each (no port, no
    /// health check, no ingress); types not listed run none.
    #[serde(default)]
    pub processes: Vec<ProcessSpec>,
    /// The release phase: a command that must succeed, in a one-off
    /// container of this release, before any of its processes starts.
    /// Present only until the release's first rollout succeeded.
    #[serde(default)]
    pub release_phase: Option<ReleasePhase>,
}

/// One process type besides `web`: its command and how many run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ProcessSpec {
    /// The type's name (`worker`).
    pub process: String,
    /// Run by `/bin/sh -c`.
    pub command: String,
    pub instances: i32,
}

/// The release phase's command and how long it may take.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ReleasePhase {
    /// Run by `/bin/sh -c`.
    pub command: String,
    pub timeout_secs: u64,
}

/// A one-off command in a new container of a release (`sky run`): the
/// release's image, environment and limits, no port, never restarted.
/// Its `Debug` leaves the environment out (through `AppSpec`'s).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RunSpec {
    pub run_id: i64,
    /// The release's container spec (no processes, no names to route).
    pub app: AppSpec,
    /// Run by `/bin/sh -c`.
    pub command: String,
    /// Attached: stdin, stdout and stderr go through a session the node
    /// opens to the control plane; detached: the output goes to the
    /// application's logs.
    pub attach: bool,
    /// A terminal for the command (attached runs only).
    pub tty: bool,
    /// The terminal's first size.
    #[serde(default)]
    pub cols: u16,
    #[serde(default)]
    pub rows: u16,
    /// The longest the command may run, in seconds.
    pub ttl_secs: u64,
    /// How long an attached run waits for its caller to open the session.
    pub attach_timeout_secs: u64,
}

/// How a run ended, as its node saw it.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RunResult {
    /// The command's exit code, when it exited (a kill's is 137).
    pub exit_code: Option<i32>,
    /// Why it ended other than by itself (its time limit, its session).
    #[serde(default)]
    pub failure: Option<String>,
}

/// An HTTPS certificate the ingress serves one name with. The private key
/// is a secret: it travels sealed with the task and is put back only into
/// the lease answer to the node.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Certificate {
    pub hostname: String,
    /// The certificate and its chain, PEM.
    pub chain_pem: String,
    /// The private key, PEM. Secret: empty in stored payloads.
    #[serde(default)]
    pub key_pem: String,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// Answer an ACME HTTP-01 challenge: the node's ingress serves
/// `key_authorization` at `/.well-known/acme-challenge/<token>` for every name.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ChallengeSpec {
    /// The application whose name is being validated (for the logs).
    pub app_id: i64,
    pub hostname: String,
    pub token: String,
    pub key_authorization: String,
}

impl std::fmt::Debug for AppSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSpec")
            .field("app_id", &self.app_id)
            .field("generation", &self.generation)
            .field("release", &self.release)
            .field("image", &self.image)
            .field("instances", &self.instances)
            .field("processes", &self.processes)
            .field("env_keys", &self.env.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// An application by identity only, for stopping or removing it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct AppTarget {
    pub app_id: i64,
    pub user_id: i64,
    pub generation: i64,
    /// The names the ingress answers for the application (a stopped
    /// application's names answer 503).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// HTTPS certificates of some of those names.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
}

/// A runtime the builder can generate a Dockerfile for.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RuntimeSpec {
    pub name: String,
    /// `node`, `python`, `php`, `static` or `docker`.
    pub runtime_type: String,
    pub base_image: String,
    pub build_cmd: Option<String>,
    pub start_cmd: Option<String>,
}

/// Build an image from an application's git repository, on the node that
/// will run it first (the image then goes to the platform's registry).
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct BuildSpec {
    pub app_id: i64,
    pub user_id: i64,
    pub build_id: i64,
    pub build_number: i32,
    pub repo_url: String,
    pub branch: String,
    /// A pinned commit; the branch's head when absent.
    pub commit: Option<String>,
    /// The token of a private repository. Secret: handed to git through
    /// `GIT_ASKPASS` only, never in a URL, an argument or a log.
    #[serde(default)]
    pub git_token: Option<String>,
    /// Why the control plane could not hand out the repository's token (a
    /// GitHub App's installation gone, GitHub unreachable): the build fails
    /// with it rather than with git's bare authentication error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_token_refused: Option<String>,
    /// Fetch this ref of the repository and build its commit (a pushed
    /// commit the branch does not point at yet) instead of cloning the branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_ref: Option<String>,
    /// The runtime the customer chose, if any.
    pub runtime: Option<RuntimeSpec>,
    /// The platform's active runtimes, to pick from by the repository's files.
    pub runtimes: Vec<RuntimeSpec>,
    /// The port the application will listen on (`PORT` in generated images).
    pub port: i32,
    pub timeout_secs: u64,
    pub max_log_bytes: u64,
    pub max_image_mb: u64,
    /// What the build's commands may use on the node.
    #[serde(default)]
    pub limits: BuildLimits,
}

/// What a build's commands may use: each step's CPU and memory, the
/// processes of the whole build, and the size of its context.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct BuildLimits {
    pub cpu_millicores: i32,
    pub memory_mb: i32,
    pub pids: i32,
    /// The largest context (the checkout, packed) the build takes.
    pub context_mb: u64,
}

impl Default for BuildLimits {
    fn default() -> Self {
        Self {
            cpu_millicores: 1000,
            memory_mb: 2048,
            pids: 1024,
            context_mb: 1024,
        }
    }
}

impl std::fmt::Debug for BuildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildSpec")
            .field("app_id", &self.app_id)
            .field("build_id", &self.build_id)
            .field("build_number", &self.build_number)
            .field("branch", &self.branch)
            .field("commit", &self.commit)
            .field("git_token", &self.git_token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// What a finished build tells the control plane.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct BuildResult {
    /// The image's tag on the node.
    pub image_tag: String,
    pub image_id: String,
    pub image_size_mb: i64,
    pub commit_sha: String,
    pub commit_message: String,
    /// `dockerfile`, or the runtime type the Dockerfile was generated for.
    pub builder: String,
    /// The repository's Procfile, parsed (`None`: it has none).
    #[serde(default)]
    pub procfile: Option<BTreeMap<String, String>>,
}

/// What a finished task leaves for the control plane beyond its status,
/// stored with the task.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
pub struct TaskResult {
    /// The failure was the node's or its Docker's, not the application's.
    #[serde(default)]
    pub infrastructure: bool,
    #[serde(default)]
    pub build: Option<BuildResult>,
    #[serde(default)]
    pub backup: Option<crate::database::BackupResult>,
    /// The image a prebuilt reference resolved to (an apply's first run).
    #[serde(default)]
    pub resolved: Option<crate::image::Resolved>,
    /// What a push left in the registry.
    #[serde(default)]
    pub pushed: Option<crate::image::Pushed>,
    /// How a one-off run ended.
    #[serde(default)]
    pub run: Option<RunResult>,
}

impl TaskResult {
    /// The stored form; `None` when there is nothing to store.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        if *self == Self::default() {
            return None;
        }
        serde_json::to_value(self).ok()
    }

    /// Reads a stored result; an absent or unreadable one is empty.
    pub fn from_json(value: Option<&serde_json::Value>) -> Self {
        value
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }
}

/// The secret parts of a task, stored sealed apart from its payload and put
/// back only into the lease answer to its node.
#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
pub struct TaskSecrets {
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub git_token: Option<String>,
    /// Certificates' private keys by hostname.
    #[serde(default)]
    pub tls_keys: BTreeMap<String, String>,
    /// A managed database's password.
    #[serde(default)]
    pub database_password: Option<String>,
    /// A login to the platform's image registry.
    #[serde(default)]
    pub registry: Option<crate::image::RegistryLogin>,
}

/// Moves certificates' keys out (leaving them empty).
fn take_keys(certificates: &mut [Certificate]) -> BTreeMap<String, String> {
    certificates
        .iter_mut()
        .map(|c| (c.hostname.clone(), std::mem::take(&mut c.key_pem)))
        .collect()
}

/// Puts certificates' keys back.
fn put_keys(certificates: &mut [Certificate], mut keys: BTreeMap<String, String>) {
    for c in certificates {
        if let Some(key) = keys.remove(&c.hostname) {
            c.key_pem = key;
        }
    }
}

/// What to do. The `kind` field names the variant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Union))]
#[cfg_attr(feature = "openapi", oai(discriminator_name = "kind"))]
pub enum TaskSpec {
    /// Make exactly `instances` containers of this release run, then remove
    /// containers of other releases.
    #[serde(rename = "app.apply")]
    #[cfg_attr(feature = "openapi", oai(mapping = "app.apply"))]
    AppApply(AppSpec),
    /// Restart the application's containers one after the other.
    #[serde(rename = "app.restart")]
    #[cfg_attr(feature = "openapi", oai(mapping = "app.restart"))]
    AppRestart(AppSpec),
    /// Stop every container of the application (they are kept).
    #[serde(rename = "app.stop")]
    #[cfg_attr(feature = "openapi", oai(mapping = "app.stop"))]
    AppStop(AppTarget),
    /// Remove every container of the application, and the customer's network once empty.
    #[serde(rename = "app.delete")]
    #[cfg_attr(feature = "openapi", oai(mapping = "app.delete"))]
    AppDelete(AppTarget),
    /// Clone the repository and build the application's image.
    #[serde(rename = "app.build")]
    #[cfg_attr(feature = "openapi", oai(mapping = "app.build"))]
    AppBuild(BuildSpec),
    /// Serve an ACME HTTP-01 challenge's answer from the node's ingress.
    #[serde(rename = "ingress.challenge")]
    #[cfg_attr(feature = "openapi", oai(mapping = "ingress.challenge"))]
    IngressChallenge(ChallengeSpec),
    /// Run a managed database (its volume and container), until it accepts connections.
    #[serde(rename = "db.provision")]
    #[cfg_attr(feature = "openapi", oai(mapping = "db.provision"))]
    DbProvision(crate::database::DatabaseSpec),
    /// Stop a managed database's container (its data kept): its owner is suspended.
    #[serde(rename = "db.stop")]
    #[cfg_attr(feature = "openapi", oai(mapping = "db.stop"))]
    DbStop(crate::database::DatabaseTarget),
    /// Remove a managed database's container (and, with `purge`, its data).
    #[serde(rename = "db.delete")]
    #[cfg_attr(feature = "openapi", oai(mapping = "db.delete"))]
    DbDelete(crate::database::DatabaseTarget),
    /// Dump a managed database into a file on the node.
    #[serde(rename = "db.backup")]
    #[cfg_attr(feature = "openapi", oai(mapping = "db.backup"))]
    DbBackup(crate::database::BackupSpec),
    /// Dump a managed database that moves to another node, for that node.
    #[serde(rename = "db.export")]
    #[cfg_attr(feature = "openapi", oai(mapping = "db.export"))]
    DbExport(crate::database::ExportSpec),
    /// Put a managed database back as one of its dumps says.
    #[serde(rename = "db.restore")]
    #[cfg_attr(feature = "openapi", oai(mapping = "db.restore"))]
    DbRestore(crate::database::RestoreSpec),
    /// Push a release's image to the platform's registry.
    #[serde(rename = "image.push")]
    #[cfg_attr(feature = "openapi", oai(mapping = "image.push"))]
    ImagePush(crate::image::PushSpec),
    /// Run a one-off command in a new container of a release.
    #[serde(rename = "app.run")]
    #[cfg_attr(feature = "openapi", oai(mapping = "app.run"))]
    AppRun(RunSpec),
}

impl TaskSpec {
    /// The `kind` string, as stored in `paas_tasks.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AppApply(_) => "app.apply",
            Self::AppRestart(_) => "app.restart",
            Self::AppStop(_) => "app.stop",
            Self::AppDelete(_) => "app.delete",
            Self::AppBuild(_) => "app.build",
            Self::IngressChallenge(_) => "ingress.challenge",
            Self::DbProvision(_) => "db.provision",
            Self::DbStop(_) => "db.stop",
            Self::DbDelete(_) => "db.delete",
            Self::DbBackup(_) => "db.backup",
            Self::DbExport(_) => "db.export",
            Self::DbRestore(_) => "db.restore",
            Self::ImagePush(_) => "image.push",
            Self::AppRun(_) => "app.run",
        }
    }

    /// Moves the secrets out of the spec (to be stored sealed).
    pub fn take_secrets(&mut self) -> TaskSecrets {
        match self {
            Self::AppRun(RunSpec { app: s, .. }) | Self::AppApply(s) | Self::AppRestart(s) => {
                TaskSecrets {
                    env: std::mem::take(&mut s.env),
                    tls_keys: take_keys(&mut s.certificates),
                    registry: s.registry_login.take(),
                    ..TaskSecrets::default()
                }
            }
            Self::ImagePush(p) => TaskSecrets {
                registry: p.login.take(),
                ..TaskSecrets::default()
            },
            Self::AppBuild(b) => TaskSecrets {
                git_token: b.git_token.take(),
                ..TaskSecrets::default()
            },
            Self::AppStop(t) | Self::AppDelete(t) => TaskSecrets {
                tls_keys: take_keys(&mut t.certificates),
                ..TaskSecrets::default()
            },
            Self::DbProvision(d) => TaskSecrets {
                database_password: Some(std::mem::take(&mut d.password)),
                ..TaskSecrets::default()
            },
            Self::DbBackup(d) => TaskSecrets {
                database_password: Some(std::mem::take(&mut d.password)),
                ..TaskSecrets::default()
            },
            Self::DbRestore(d) => TaskSecrets {
                database_password: Some(std::mem::take(&mut d.password)),
                ..TaskSecrets::default()
            },
            Self::DbExport(d) => TaskSecrets {
                database_password: Some(std::mem::take(&mut d.password)),
                ..TaskSecrets::default()
            },
            Self::IngressChallenge(_) | Self::DbStop(_) | Self::DbDelete(_) => {
                TaskSecrets::default()
            }
        }
    }

    /// Puts opened secrets back into the spec.
    pub fn put_secrets(&mut self, secrets: TaskSecrets) {
        match self {
            Self::AppRun(RunSpec { app: s, .. }) | Self::AppApply(s) | Self::AppRestart(s) => {
                s.env = secrets.env;
                s.registry_login = secrets.registry;
                put_keys(&mut s.certificates, secrets.tls_keys);
            }
            Self::ImagePush(p) => p.login = secrets.registry,
            Self::AppBuild(b) => b.git_token = secrets.git_token,
            Self::AppStop(t) | Self::AppDelete(t) => {
                put_keys(&mut t.certificates, secrets.tls_keys)
            }
            Self::DbProvision(d) => d.password = secrets.database_password.unwrap_or_default(),
            Self::DbBackup(d) => d.password = secrets.database_password.unwrap_or_default(),
            Self::DbRestore(d) => d.password = secrets.database_password.unwrap_or_default(),
            Self::DbExport(d) => d.password = secrets.database_password.unwrap_or_default(),
            Self::IngressChallenge(_) | Self::DbStop(_) | Self::DbDelete(_) => {}
        }
    }

    /// The application the task acts on (0 for a database's task).
    pub fn app_id(&self) -> i64 {
        match self {
            Self::DbProvision(_)
            | Self::DbStop(_)
            | Self::DbDelete(_)
            | Self::DbBackup(_)
            | Self::DbExport(_)
            | Self::DbRestore(_) => 0,
            Self::AppApply(spec) | Self::AppRestart(spec) => spec.app_id,
            Self::AppRun(run) => run.app.app_id,
            Self::AppStop(target) | Self::AppDelete(target) => target.app_id,
            Self::AppBuild(build) => build.app_id,
            Self::IngressChallenge(challenge) => challenge.app_id,
            Self::ImagePush(push) => push.app_id,
        }
    }
}

/// A task handed to an agent under a lease.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct LeasedTask {
    pub task_id: i64,
    /// Fences every report about this task: after the lease is lost, reports are refused.
    pub lease_id: Uuid,
    pub lease_deadline: DateTime<Utc>,
    /// 1 on the first lease, more when an earlier lease expired.
    pub attempt: i32,
    pub spec: TaskSpec,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Leases {
    pub tasks: Vec<LeasedTask>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct LeaseRef {
    pub lease_id: Uuid,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Extended {
    pub lease_deadline: DateTime<Utc>,
    /// The task was cancelled (a cancelled build): stop, clean up and report `failed`.
    #[serde(default)]
    pub cancel_requested: bool,
}

/// How far the agent got.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "lowercase"))]
pub enum ReportedStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct StatusReport {
    pub lease_id: Uuid,
    pub status: ReportedStatus,
    /// Why it failed, in words a customer can act on.
    pub error: Option<String>,
    /// The application's containers after the work (for apply, restart, stop).
    #[serde(default)]
    pub instances: Vec<super::node::ContainerReport>,
    /// When the agent read `instances` (its clock, as a heartbeat's timestamp).
    #[serde(default)]
    pub observed_at: Option<DateTime<Utc>>,
    /// A failure of the node or its Docker rather than of the application:
    /// worth trying again elsewhere.
    #[serde(default)]
    pub infrastructure: bool,
    /// What a successful build produced.
    #[serde(default)]
    pub build: Option<BuildResult>,
    /// What a successful backup wrote.
    #[serde(default)]
    pub backup: Option<crate::database::BackupResult>,
    /// The image a prebuilt reference resolved to.
    #[serde(default)]
    pub resolved: Option<crate::image::Resolved>,
    /// What a successful push left in the registry.
    #[serde(default)]
    pub pushed: Option<crate::image::Pushed>,
    /// How a one-off run ended.
    #[serde(default)]
    pub run: Option<RunResult>,
}

impl StatusReport {
    /// A report of `status` with nothing else to say.
    pub fn new(lease_id: Uuid, status: ReportedStatus) -> Self {
        Self {
            lease_id,
            status,
            error: None,
            instances: Vec::new(),
            observed_at: None,
            infrastructure: false,
            build: None,
            backup: None,
            resolved: None,
            pushed: None,
            run: None,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct StatusAck {
    /// The task's status after the report.
    pub status: String,
    /// False when the report repeated what was already recorded.
    pub changed: bool,
}

/// A batch of log lines; `seq` numbers batches from 0 so a resent batch is ignored.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct LogBatch {
    pub lease_id: Uuid,
    pub seq: i32,
    pub lines: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct LogAck {
    /// False when a batch with this `seq` was already stored.
    pub stored: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_tagged_by_kind() {
        let spec = TaskSpec::AppStop(AppTarget {
            app_id: 1,
            user_id: 2,
            generation: 3,
            hostnames: vec!["a.example.com".into()],
            certificates: vec![],
        });
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["kind"], "app.stop");
        assert_eq!(json["app_id"], 1);
        assert_eq!(serde_json::from_value::<TaskSpec>(json).unwrap(), spec);
        assert_eq!(spec.kind(), "app.stop");
    }

    #[test]
    fn debug_hides_environment_values() {
        let spec = AppSpec {
            app_id: 1,
            user_id: 1,
            slug: "a".into(),
            generation: 1,
            release: 1,
            image: "img".into(),
            release_image: Default::default(),
            registry_login: None,
            instances: 1,
            port: 8080,
            health_check_path: None,
            env: BTreeMap::from([("SECRET".to_string(), "canary-value".to_string())]),
            cpu_millicores: 100,
            memory_mb: 64,
            pids_limit: 64,
            hostnames: vec![],
            certificates: vec![],
            web_command: None,
            processes: vec![],
            release_phase: None,
        };
        let shown = format!("{spec:?}");
        assert!(shown.contains("SECRET") && !shown.contains("canary-value"));
    }

    fn build_spec() -> BuildSpec {
        BuildSpec {
            app_id: 1,
            user_id: 2,
            build_id: 3,
            build_number: 1,
            repo_url: "https://git.example.com/a.git".into(),
            branch: "main".into(),
            commit: None,
            git_token: Some("canary-token".into()),
            git_token_refused: None,
            fetch_ref: None,
            runtime: None,
            runtimes: vec![],
            port: 8080,
            timeout_secs: 900,
            max_log_bytes: 4 << 20,
            max_image_mb: 2048,
            limits: BuildLimits::default(),
        }
    }

    #[test]
    fn secrets_leave_the_payload_and_come_back() {
        let mut spec = TaskSpec::AppBuild(build_spec());
        assert!(!format!("{spec:?}").contains("canary-token"));
        let secrets = spec.take_secrets();
        assert_eq!(secrets.git_token.as_deref(), Some("canary-token"));
        let payload = serde_json::to_string(&spec).unwrap();
        assert!(!payload.contains("canary-token"), "{payload}");
        spec.put_secrets(secrets);
        assert_eq!(spec, TaskSpec::AppBuild(build_spec()));
    }

    #[test]
    fn certificate_keys_leave_the_payload_and_come_back() {
        let certificate = Certificate {
            hostname: "shop.example.com".into(),
            chain_pem: "-----BEGIN CERTIFICATE-----".into(),
            key_pem: "canary-private-key".into(),
        };
        let original = TaskSpec::AppStop(AppTarget {
            app_id: 1,
            user_id: 2,
            generation: 3,
            hostnames: vec!["shop.example.com".into()],
            certificates: vec![certificate.clone()],
        });
        let mut spec = original.clone();
        assert!(!format!("{certificate:?}").contains("canary"));
        let secrets = spec.take_secrets();
        let payload = serde_json::to_string(&spec).unwrap();
        assert!(!payload.contains("canary-private-key"), "{payload}");
        assert!(payload.contains("BEGIN CERTIFICATE"));
        spec.put_secrets(secrets);
        assert_eq!(spec, original);
    }
}
