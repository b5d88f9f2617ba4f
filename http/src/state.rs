//! What every handler shares: the store, the settings, the secret key, and Redis.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use skypanel_domain::git::GitUrlPolicy;
use skypanel_domain::secrets::SecretKey;
use skypanel_store::Store;

use skypanel_actors::Orchestrator;
use skypanel_jobs::{LogStreams, Queues};

use crate::auth::jwt::JwtKeys;
use crate::auth::node::NodeCredentials;
use crate::error::ApiError;

/// The part of the configuration the HTTP layer needs. `Debug` hides the secret.
#[derive(Clone)]
pub struct Settings {
    /// Secret for HS256 access tokens.
    pub jwt_secret: String,
    /// Lifetime of an access token.
    pub jwt_ttl: Duration,
    /// System domains are `<slug>.<platform_domain>`.
    pub platform_domain: String,
    /// Accept `file://` git URLs (local use and tests).
    pub allow_file_git: bool,
    /// Accept plain `http://` git URLs (local use and tests).
    pub allow_plain_http_git: bool,
    /// The URL agents and users reach this control plane at.
    pub public_url: String,
    /// How long a node registration token stays valid.
    pub registration_ttl: Duration,
    /// Domains get certificates from an ACME server (`SKYPANEL_ACME_DIRECTORY`).
    pub https: bool,
    /// Certificates expiring within this are renewed.
    pub renew_before: Duration,
    /// How long a database deleted without purging keeps its data on its node.
    pub volume_retention: Duration,
    /// Webhooks may point at loopback and private addresses (tests, one machine).
    pub webhook_allow_private: bool,
    /// Requests allowed per minute (counted in Redis).
    pub rate_limits: crate::rate_limit::RateLimits,
    /// Proxies (load balancers) whose `X-Forwarded-For` names the client
    /// (`SKYPANEL_TRUSTED_PROXIES`); from any other address it is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How much a customer may create.
    pub quotas: crate::quotas::Quotas,
    /// The registry's token server, when the platform is one.
    pub registry: Option<crate::registry_token::TokenServer>,
    /// The registry's retention (admins may run it now).
    pub registry_retention: Option<skypanel_jobs::RegistryRetention>,
    /// Where GitHub answers (github.com, or a GitHub Enterprise Server).
    pub github: crate::github::GithubUrls,
    /// The applications' repositories for `git push`.
    pub git: crate::git::GitSettings,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("platform_domain", &self.platform_domain)
            .field("allow_file_git", &self.allow_file_git)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn git_policy(&self) -> GitUrlPolicy {
        GitUrlPolicy {
            allow_file: self.allow_file_git,
            allow_plain_http: self.allow_plain_http_git,
        }
    }
}

use skypanel_store::wakeups::Forget;

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Store,
    settings: Settings,
    secrets: SecretKey,
    jwt: JwtKeys,
    redis: Option<redis::Client>,
    orchestrator: Option<Orchestrator>,
    queues: OnceLock<Queues>,
    logs: OnceLock<LogStreams>,
    node_credentials: NodeCredentials,
    principals: crate::auth::Principals,
    request_counts: Arc<crate::rate_limit::counts::Counts>,
    readiness: crate::api::system::Readiness,
    sessions: crate::sessions::Sessions,
    /// The `git push`es under way (their hooks' tickets).
    pushes: crate::git::Pushes,
    /// Calls to GitHub (one pool of connections).
    http_client: reqwest::Client,
}

impl AppState {
    /// `orchestrator` is `None` only where nothing is served (printing the spec).
    pub fn new(
        store: Store,
        settings: Settings,
        secrets: SecretKey,
        redis: Option<redis::Client>,
        orchestrator: Option<Orchestrator>,
    ) -> Self {
        let jwt = JwtKeys::new(&settings.jwt_secret, settings.jwt_ttl);
        let state = Self(Arc::new(Inner {
            store,
            settings,
            secrets,
            jwt,
            redis,
            orchestrator,
            queues: OnceLock::new(),
            http_client: reqwest::Client::new(),
            logs: OnceLock::new(),
            node_credentials: NodeCredentials::default(),
            principals: Default::default(),
            request_counts: Arc::default(),
            readiness: Default::default(),
            sessions: Default::default(),
            pushes: Default::default(),
        }));
        state.hear_forgets();
        state
    }

    /// Applies the revocations every replica announces (`Self::forget`) to
    /// this replica's memory of checked credentials, for as long as the
    /// state lives.
    fn hear_forgets(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut heard = self.store().forgets().subscribe();
        let state = Arc::downgrade(&self.0);
        runtime.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let forget = match heard.recv().await {
                    Ok(forget) => forget,
                    Err(RecvError::Lagged(_)) => Forget::Everything,
                    Err(RecvError::Closed) => return,
                };
                let Some(inner) = state.upgrade() else {
                    return;
                };
                AppState(inner).forget_here(&forget);
            }
        });
    }

    fn forget_here(&self, forget: &Forget) {
        match forget {
            Forget::Node(id) => self.node_credentials().forget_node(*id),
            Forget::User(id) => self.principals().forget_user(*id),
            Forget::Session(digest) => self.principals().forget_session(digest),
            Forget::Everything => {
                self.node_credentials().forget_all();
                self.principals().forget_all();
            }
        }
    }

    /// Forgets a revoked credential here and, through a NOTIFY every
    /// replica's listener hears, on the other replicas too (they would
    /// otherwise accept it for up to a minute from memory).
    pub async fn forget(&self, conn: &mut skypanel_store::Conn, forget: Forget) {
        self.forget_here(&forget);
        if let Err(err) = skypanel_store::wakeups::announce(conn, &forget).await {
            tracing::warn!(error = %err, "cannot tell the other replicas of a revoked credential; they forget it within a minute");
        }
    }

    /// Gives the state the applications' log streams (once).
    pub fn set_log_streams(&self, logs: LogStreams) {
        let _ = self.0.logs.set(logs);
    }

    /// The applications' log streams; 503 when this state runs without them.
    pub fn log_streams(&self) -> Result<&LogStreams, ApiError> {
        self.0.logs.get().ok_or_else(|| {
            ApiError::unavailable("unavailable", "application logs are not available")
        })
    }

    /// Gives the state the job queues (once; later calls are ignored).
    pub fn set_queues(&self, queues: Queues) {
        let _ = self.0.queues.set(queues);
    }

    /// The job queues; 503 when this state runs without them.
    pub fn queues(&self) -> Result<&Queues, ApiError> {
        self.0
            .queues
            .get()
            .ok_or_else(|| ApiError::unavailable("unavailable", "the job queues are not running"))
    }

    /// The actors; 503 when this state runs without them.
    pub fn orchestrator(&self) -> Result<&Orchestrator, ApiError> {
        self.0
            .orchestrator
            .as_ref()
            .ok_or_else(|| ApiError::unavailable("unavailable", "the orchestrator is not running"))
    }

    /// Attached runs' sessions waiting for their other side.
    pub fn pushes(&self) -> &crate::git::Pushes {
        &self.0.pushes
    }

    pub fn sessions(&self) -> &crate::sessions::Sessions {
        &self.0.sessions
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The client calls to GitHub go through.
    pub fn http_client(&self) -> &reqwest::Client {
        &self.0.http_client
    }

    /// The control plane's current time (the actors' clock, so that tests
    /// driving a manual clock drive the API too).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
            .orchestrator
            .as_ref()
            .map_or_else(chrono::Utc::now, |o| o.context().now())
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn secrets(&self) -> &SecretKey {
        &self.0.secrets
    }

    pub fn jwt(&self) -> &JwtKeys {
        &self.0.jwt
    }

    /// Node credentials that authenticated lately.
    pub fn node_credentials(&self) -> &NodeCredentials {
        &self.0.node_credentials
    }

    /// Customers' and admins' principals that authenticated lately.
    pub fn principals(&self) -> &crate::auth::Principals {
        &self.0.principals
    }

    /// Request counts kept here until they are added to Redis.
    pub fn request_counts(&self) -> &Arc<crate::rate_limit::counts::Counts> {
        &self.0.request_counts
    }

    /// The health check's latest result.
    pub fn readiness(&self) -> &crate::api::system::Readiness {
        &self.0.readiness
    }

    pub fn redis(&self) -> Option<&redis::Client> {
        self.0.redis.as_ref()
    }
}
