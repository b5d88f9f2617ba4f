//! Rate limits, counted in Redis so that every control plane shares them:
//! one-minute windows per client address (all requests, and logins and
//! registrations apart, much stricter) and per signed-in user (all their
//! requests, and deploys and rollbacks apart, stricter), however many
//! addresses or tokens they use. Past a limit: 429 `rate_limited` with
//! `Retry-After` (seconds to the next window). The agents' protocol and the
//! health check are never limited; without the job queues' Redis (or while
//! it fails) requests pass.
//!
//! A request far from a generous limit is counted in this process and added
//! to Redis with others a moment later ([`counts`]); strict limits and counts
//! near their limit ask Redis on every request.

pub mod counts;

use poem::{Endpoint, IntoResponse, Request, Response};

use crate::api::client_ip;
use crate::error::ApiError;
use crate::state::AppState;

/// Requests allowed per minute; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Any request, per client address.
    pub api_per_ip: u32,
    /// Logins and registrations, per client address.
    pub login_per_ip: u32,
    /// Any authenticated request, per user.
    pub api_per_user: u32,
    /// Deploys (and rollbacks), per user.
    pub deploy_per_user: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            api_per_ip: 3000,
            login_per_ip: 20,
            api_per_user: 1200,
            deploy_per_user: 30,
        }
    }
}

/// A limit a request counts against: its name, who, and how many a minute.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counted {
    class: &'static str,
    who: String,
    per_minute: u32,
}

/// Whether the path is never limited (the agents' protocol, the health check).
fn exempt(path: &str) -> bool {
    path.starts_with("/api/internal/") || path == "/api/health"
}

/// The limits of the client address that `method path` counts against.
fn counted(limits: &RateLimits, method: &str, path: &str, ip: &str) -> Vec<Counted> {
    if exempt(path) {
        return Vec::new();
    }
    let mut list = vec![Counted {
        class: "api",
        who: ip.to_string(),
        per_minute: limits.api_per_ip,
    }];
    if method == "POST"
        && matches!(
            path,
            "/api/auth/login" | "/api/auth/session" | "/api/auth/register"
        )
    {
        list.push(Counted {
            class: "login",
            who: ip.to_string(),
            per_minute: limits.login_per_ip,
        });
    }
    list.retain(|c| c.per_minute > 0);
    list
}

/// The limits of the signed-in user that `method path` counts against
/// (`path` with or without the `/api` the router strips before handlers).
fn counted_for_user(limits: &RateLimits, method: &str, path: &str, user_id: i64) -> Vec<Counted> {
    let path = path.strip_prefix("/api").unwrap_or(path);
    let mut list = vec![Counted {
        class: "user",
        who: user_id.to_string(),
        per_minute: limits.api_per_user,
    }];
    let deploying = method == "POST"
        && path.starts_with("/paas/applications/")
        && (path.ends_with("/deploy") || path.ends_with("/rollback"));
    if deploying {
        list.push(Counted {
            class: "deploy",
            who: user_id.to_string(),
            per_minute: limits.deploy_per_user,
        });
    }
    list.retain(|c| c.per_minute > 0);
    list
}

/// The longest a request waits for its count.
const COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

/// Adds to the request's count in its window; answers the count.
const COUNT: &str = r#"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return n
"#;

static COUNT_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(COUNT));

/// Checks the request against its address's limits before it goes on.
pub async fn check<E: Endpoint>(endpoint: E, request: Request) -> poem::Result<Response> {
    let refused = match request.data::<AppState>() {
        Some(state) => {
            let ip = client_ip(&request).unwrap_or_else(|| "unknown".into());
            let limits = state.settings().rate_limits;
            let list = counted(
                &limits,
                request.method().as_str(),
                request.uri().path(),
                &ip,
            );
            // Boxed: the request's future keeps no room for the count
            // while the endpoint runs (see `middleware::around`).
            Box::pin(over_limit(state, list)).await
        }
        None => None,
    };
    match refused {
        Some(retry_after) => Ok(ApiError::rate_limited(retry_after).into_response()),
        None => endpoint
            .call(request)
            .await
            .map(IntoResponse::into_response),
    }
}

/// Checks an authenticated request against its user's limits (called once
/// the bearer token names the user); an error is the 429 to answer.
pub async fn check_user(state: &AppState, request: &Request, user_id: i64) -> Result<(), ApiError> {
    let limits = state.settings().rate_limits;
    let list = counted_for_user(
        &limits,
        request.method().as_str(),
        request.uri().path(),
        user_id,
    );
    match over_limit(state, list).await {
        Some(retry_after) => Err(ApiError::rate_limited(retry_after)),
        None => Ok(()),
    }
}

/// Seconds until the next window when a count goes over its limit.
async fn over_limit(state: &AppState, list: Vec<Counted>) -> Option<u64> {
    if list.is_empty() {
        return None;
    }
    let queues = state.queues().ok()?;
    let now = state.now().timestamp();
    let window = now / 60;
    let retry_after = (60 - now % 60).max(1) as u64;
    let counts = state.request_counts();
    let mut conn = queues.connection();
    for limit in list {
        let key = format!(
            "{}:ratelimit:{}:{}:{window}",
            queues.key_prefix(),
            limit.class,
            limit.who
        );
        let Some(add) = counts.count(&key, window, limit.per_minute) else {
            counts.start_flusher(&conn);
            continue;
        };
        // A Redis that is away must not hold requests up: past a short wait
        // the request passes uncounted.
        let count: Result<u64, String> = match tokio::time::timeout(
            COUNT_TIMEOUT,
            COUNT_SCRIPT
                .key(&key)
                .arg(add)
                .arg(counts::KEY_TTL_SECS)
                .invoke_async::<u64>(&mut conn),
        )
        .await
        {
            Ok(counted) => counted.map_err(|e| e.to_string()),
            Err(_) => Err("no answer from Redis in time".into()),
        };
        match count {
            Ok(n) => {
                counts.learned(&key, n);
                if n > u64::from(limit.per_minute) {
                    tracing::warn!(class = limit.class, who = %limit.who, "rate limited");
                    return Some(retry_after);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot count a request against its rate limit; letting it pass");
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_and_deploys_count_against_their_own_stricter_limits() {
        let limits = RateLimits::default();
        let classes = |method, path| {
            counted(&limits, method, path, "10.0.0.1")
                .into_iter()
                .map(|c| c.class)
                .collect::<Vec<_>>()
        };
        assert_eq!(classes("POST", "/api/auth/login"), ["api", "login"]);
        assert_eq!(classes("GET", "/api/paas/applications"), ["api"]);
        assert!(classes("POST", "/api/internal/paas/nodes/1/heartbeat").is_empty());
        assert!(classes("GET", "/api/health").is_empty());
        let user = |method, path| {
            counted_for_user(&limits, method, path, 7)
                .into_iter()
                .map(|c| (c.class, c.who))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            user("GET", "/api/paas/applications"),
            [("user", "7".to_string())]
        );
        assert_eq!(
            user("POST", "/api/paas/applications/3/deploy"),
            [("user", "7".to_string()), ("deploy", "7".to_string())]
        );
        assert_eq!(user("POST", "/api/paas/applications/3/rollback").len(), 2);
        // Handlers see the path without the /api prefix.
        assert_eq!(user("POST", "/paas/applications/3/deploy").len(), 2);
        let off = RateLimits {
            api_per_ip: 0,
            api_per_user: 0,
            ..limits
        };
        assert_eq!(counted(&off, "GET", "/api/paas/applications", "ip"), []);
        assert_eq!(
            counted_for_user(&off, "GET", "/api/paas/applications", 7),
            []
        );
    }
}
