//! What every actor shares: the store, the secret key, and the settings.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use skypanel_domain::clock::Clock;
use skypanel_domain::registry::{RegistryAddress, Ticket};
use skypanel_domain::secrets::SecretKey;
use skypanel_protocol::image::RegistryLogin;
use skypanel_store::Store;

use crate::beats::Heartbeats;
use crate::broker::Waiters;

/// Orchestration settings (from the control plane's configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// A node without a heartbeat for this long is offline.
    pub node_offline_after: Duration,
    /// How often agents should heartbeat.
    pub heartbeat_interval: Duration,
    /// How long a lease lasts unless extended.
    pub lease_ttl: Duration,
    /// How long a fresh lease lasts until the agent acknowledges it.
    pub lease_ack: Duration,
    /// Agents are told to rotate credentials older than this.
    pub credential_max_age: Duration,
    /// Leases a task may have before it fails for good.
    pub task_max_attempts: i32,
    /// The pids limit of every application container.
    pub pids_limit: i32,
    /// A supervised actor may be restarted this many times …
    pub restart_budget: u32,
    /// … within this window; beyond that it stays down and is reported.
    pub restart_window: Duration,
    /// The longest a build may run on its node.
    pub build_timeout: Duration,
    /// The most bytes of build log kept.
    pub build_max_log_bytes: i64,
    /// The largest image a build may make, in MB.
    pub build_max_image_mb: u64,
    /// The largest context (the checkout, packed) a build takes, in MB.
    pub build_max_context_mb: u64,
    /// How long a wallet may stay below zero before its owner's
    /// applications and databases are suspended.
    pub billing_grace: Duration,
    /// The time the actors act at (a manual clock in tests).
    pub clock: Clock,
    /// The platform's image registry; without one a release's image stays
    /// on the node that made it.
    pub registry: Option<RegistrySettings>,
    /// How long a node must stay under pressure (memory or disk at 90 %,
    /// CPU at 95 %) before it is degraded.
    pub pressure_window: Duration,
    /// How long a deploy waits for a node with room before it gives up.
    pub placement_wait: Duration,
    /// How long a release phase's command may run (Heroku: an hour).
    pub release_phase_timeout: Duration,
    /// Where moving databases' dumps wait between their two nodes.
    pub transfer_root: std::path::PathBuf,
}

/// The platform's image registry and how nodes log in to it.
#[derive(Clone)]
pub struct RegistrySettings {
    pub address: RegistryAddress,
    pub logins: RegistryLogins,
    /// How long a ticket given to a node in a task stays good.
    pub ticket_ttl: Duration,
}

/// How nodes log in to the registry.
#[derive(Clone)]
pub enum RegistryLogins {
    /// The control plane is the registry's token server: each task carries a
    /// ticket signed with this key for its node and its application only.
    Tickets { key: Vec<u8> },
    /// One account for every node (a registry the platform does not run:
    /// Harbor's robot account, a GHCR or ECR token).
    Account { username: String, password: String },
}

impl std::fmt::Debug for RegistrySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let logins = match &self.logins {
            RegistryLogins::Tickets { .. } => "tickets",
            RegistryLogins::Account { .. } => "account",
        };
        f.debug_struct("RegistrySettings")
            .field("address", &self.address)
            .field("logins", &logins)
            .finish()
    }
}

impl RegistrySettings {
    /// The login a task gives `node` to pull (or also push) `app_id`'s images.
    pub fn login(&self, node: i64, app_id: i64, push: bool, now: DateTime<Utc>) -> RegistryLogin {
        let (username, password) = match &self.logins {
            RegistryLogins::Tickets { key } => {
                let ticket = Ticket {
                    node_id: node,
                    repositories: vec![self.address.repository_name(app_id)],
                    push,
                    expires_at: now.timestamp() + self.ticket_ttl.as_secs() as i64,
                };
                (Ticket::username(node), ticket.issue(key))
            }
            RegistryLogins::Account { username, password } => (username.clone(), password.clone()),
        };
        RegistryLogin {
            server: self.address.host().to_string(),
            username,
            password,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            node_offline_after: Duration::from_secs(90),
            heartbeat_interval: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(30),
            lease_ack: Duration::from_secs(10),
            credential_max_age: Duration::from_secs(24 * 3600),
            task_max_attempts: 3,
            pids_limit: 256,
            restart_budget: 5,
            restart_window: Duration::from_secs(60),
            build_timeout: Duration::from_secs(15 * 60),
            build_max_log_bytes: 4 * 1024 * 1024,
            build_max_image_mb: 4096,
            build_max_context_mb: 1024,
            billing_grace: Duration::from_secs(24 * 3600),
            clock: Clock::system(),
            registry: None,
            pressure_window: Duration::from_secs(300),
            placement_wait: Duration::from_secs(1800),
            release_phase_timeout: Duration::from_secs(3600),
            transfer_root: std::env::temp_dir().join("skypanel-transfers"),
        }
    }
}

/// Shared by every actor; cheap to clone.
#[derive(Clone)]
pub struct Context(Arc<Inner>);

struct Inner {
    store: Store,
    secrets: SecretKey,
    settings: Settings,
    prefix: String,
    waiters: Waiters,
    heartbeats: Heartbeats,
    on_build: std::sync::OnceLock<BuildHook>,
    shards: crate::shards::Shards,
    /// Calls to the other replicas, and the key they are signed with.
    peers: reqwest::Client,
    signing_key: [u8; 32],
    owners: crate::replicas::Owners,
}

/// Called with a build's id when an actor records a build by itself (a
/// deploy that waited for a rollout): the jobs layer queues its job.
pub type BuildHook = Arc<dyn Fn(i64) + Send + Sync>;

impl Context {
    pub fn new(store: Store, secrets: SecretKey, settings: Settings) -> Self {
        Self::with_prefix(store, secrets, settings, String::new())
    }

    /// A context whose actors register under `prefix`: several control planes
    /// may then share one process (ractor's registry is process-wide), as tests do.
    pub fn with_prefix(
        store: Store,
        secrets: SecretKey,
        settings: Settings,
        prefix: String,
    ) -> Self {
        let signing_key = crate::replicas::signing_key(&secrets);
        Self(Arc::new(Inner {
            store,
            secrets,
            settings,
            prefix,
            waiters: Waiters::default(),
            heartbeats: Heartbeats::default(),
            on_build: std::sync::OnceLock::new(),
            shards: crate::shards::Shards::default(),
            peers: reqwest::Client::new(),
            signing_key,
            owners: Default::default(),
        }))
    }

    /// The client of calls to the other replicas.
    pub(crate) fn peers(&self) -> &reqwest::Client {
        &self.0.peers
    }

    /// Which replica owned which shard at the last look.
    pub(crate) fn owners(&self) -> &crate::replicas::Owners {
        &self.0.owners
    }

    /// The key calls between replicas are signed with.
    pub(crate) fn signing_key(&self) -> &[u8] {
        &self.0.signing_key
    }

    /// This replica and the shard leases it holds.
    pub fn shards(&self) -> &crate::shards::Shards {
        &self.0.shards
    }

    /// Sets what queues the job of a build an actor records by itself
    /// (once; a second hook is ignored). Without one the sweeper queues it.
    pub fn set_build_hook(&self, hook: BuildHook) {
        let _ = self.0.on_build.set(hook);
    }

    /// Tells the jobs layer about a build an actor recorded.
    pub(crate) fn build_requested(&self, build_id: i64) {
        match self.0.on_build.get() {
            Some(hook) => hook(build_id),
            None => tracing::info!(build_id, "no build hook; the sweeper queues the build"),
        }
    }

    /// The wake-up handles of the nodes' long-polls.
    pub fn waiters(&self) -> &Waiters {
        &self.0.waiters
    }

    /// The heartbeat figures waiting to be written.
    pub fn heartbeats(&self) -> &Heartbeats {
        &self.0.heartbeats
    }

    /// The registered name of an actor of this control plane.
    pub fn name(&self, base: &str) -> String {
        format!("{}{base}", self.0.prefix)
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn secrets(&self) -> &SecretKey {
        &self.0.secrets
    }

    /// The current time of the control plane's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.0.settings.clock.now()
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
}
