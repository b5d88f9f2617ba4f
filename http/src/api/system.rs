//! `/api/health`: whether the control plane and its dependencies answer, as
//! a check made every second in the background last found.

use std::sync::Arc;
use std::time::Duration;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use tokio::sync::watch;

use super::Tag;
use crate::state::AppState;

pub struct SystemApi {
    pub state: AppState,
}

#[derive(Object, Debug, Clone)]
pub struct Health {
    /// `ok` when every dependency answers, else `degraded`.
    pub status: String,
    /// `ok` or `unavailable` (the reason is in the server log).
    pub database: String,
    /// `ok`, `unavailable` or `not configured`.
    pub redis: String,
    /// `ok` while the supervision tree runs, `stopped` after it gave up, or
    /// `not configured`.
    pub actors: String,
    pub version: String,
    /// When the dependencies were checked (every second, in the background).
    pub checked_at: chrono::DateTime<chrono::Utc>,
}

#[derive(ApiResponse, Debug)]
pub enum HealthResponse {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ok(Json<Health>),
    /// A dependency does not answer.
    #[oai(status = 503)]
    Degraded(Json<Health>),
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the dependencies are checked, in the background.
const CHECK_EVERY: Duration = Duration::from_secs(1);

async fn check_redis(client: &redis::Client) -> Result<(), String> {
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// What is checked: the parts of the state the check needs (not the state
/// itself, which holds the [`Readiness`]: the checker must not keep it alive).
struct Checked {
    store: skypanel_store::Store,
    redis: Option<redis::Client>,
    orchestrator: Option<skypanel_actors::Orchestrator>,
}

impl Checked {
    async fn check(&self) -> Health {
        let database = match tokio::time::timeout(CHECK_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "health: PostgreSQL does not answer");
                "unavailable".to_string()
            }
            Err(_) => "unavailable (timed out)".to_string(),
        };
        let redis = match &self.redis {
            Some(client) => match check_redis(client).await {
                Ok(()) => "ok".to_string(),
                Err(err) => {
                    tracing::warn!(error = %err, "health: Redis does not answer");
                    "unavailable".to_string()
                }
            },
            None => "not configured".to_string(),
        };
        let actors = match &self.orchestrator {
            Some(orchestrator) if orchestrator.is_running() => "ok",
            Some(_) => "stopped",
            None => "not configured",
        }
        .to_string();
        let fine = |s: &str| s == "ok" || s == "not configured";
        let healthy = database == "ok" && fine(&redis) && fine(&actors);
        Health {
            status: if healthy { "ok" } else { "degraded" }.to_string(),
            database,
            redis,
            actors,
            version: env!("CARGO_PKG_VERSION").to_string(),
            checked_at: chrono::Utc::now(),
        }
    }
}

/// The last health check, made in the background every [`CHECK_EVERY`]
/// from the first time it is asked for, so that `/api/health` costs no round
/// trip to PostgreSQL or Redis however often a load balancer asks.
#[derive(Default)]
pub struct Readiness {
    latest: std::sync::OnceLock<watch::Receiver<Option<Health>>>,
    /// The checker runs while this lives (it holds a weak reference).
    alive: Arc<()>,
}

impl Readiness {
    /// The latest check (waits for the first one).
    async fn latest(&self, state: &AppState) -> Health {
        let mut latest = self
            .latest
            .get_or_init(|| {
                let (tx, rx) = watch::channel(None);
                let checked = Checked {
                    store: state.store().clone(),
                    redis: state.redis().cloned(),
                    orchestrator: state.orchestrator().ok().cloned(),
                };
                tokio::spawn(check_forever(checked, Arc::downgrade(&self.alive), tx));
                rx
            })
            .clone();
        let health = match latest.wait_for(Option::is_some).await {
            Ok(health) => health.clone(),
            // The checker is gone (only while the state is dropped).
            Err(_) => None,
        };
        health.unwrap_or_else(Health::stopped)
    }
}

async fn check_forever(
    checked: Checked,
    alive: std::sync::Weak<()>,
    tx: watch::Sender<Option<Health>>,
) {
    while alive.upgrade().is_some() {
        let health = checked.check().await;
        if tx.send(Some(health)).is_err() {
            return;
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

impl Health {
    fn stopped() -> Self {
        Self {
            status: "degraded".into(),
            database: "unavailable".into(),
            redis: "unavailable".into(),
            actors: "stopped".into(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            checked_at: chrono::Utc::now(),
        }
    }
}

#[OpenApi(tag = "Tag::System")]
impl SystemApi {
    /// Health of the control plane, PostgreSQL and Redis
    ///
    /// Answers the latest check, made in the background every second
    /// (`checked_at` says when), so asking costs no database round trip.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> HealthResponse {
        let health = self.state.readiness().latest(&self.state).await;
        if health.status == "ok" {
            HealthResponse::Ok(Json(health))
        } else {
            HealthResponse::Degraded(Json(health))
        }
    }
}
