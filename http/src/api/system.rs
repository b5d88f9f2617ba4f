//! `/api/health`: whether the control plane and its dependencies answer.

use std::time::Duration;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::Tag;
use crate::state::AppState;

pub struct SystemApi {
    pub state: AppState,
}

#[derive(Object, Debug)]
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

#[OpenApi(tag = "Tag::System")]
impl SystemApi {
    /// Health of the control plane, PostgreSQL and Redis
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> HealthResponse {
        let database = match tokio::time::timeout(CHECK_TIMEOUT, self.state.store().ping()).await {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "health: PostgreSQL does not answer");
                "unavailable".to_string()
            }
            Err(_) => "unavailable (timed out)".to_string(),
        };
        let redis = match self.state.redis() {
            Some(client) => match check_redis(client).await {
                Ok(()) => "ok".to_string(),
                Err(err) => {
                    tracing::warn!(error = %err, "health: Redis does not answer");
                    "unavailable".to_string()
                }
            },
            None => "not configured".to_string(),
        };
        let actors = match self.state.orchestrator() {
            Ok(orchestrator) if orchestrator.is_running() => "ok",
            Ok(_) => "stopped",
            Err(_) => "not configured",
        }
        .to_string();
        let fine = |s: &str| s == "ok" || s == "not configured";
        let healthy = database == "ok" && fine(&redis) && fine(&actors);
        let health = Health {
            status: if healthy { "ok" } else { "degraded" }.to_string(),
            database,
            redis,
            actors,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        if healthy {
            HealthResponse::Ok(Json(health))
        } else {
            HealthResponse::Degraded(Json(health))
        }
    }
}
