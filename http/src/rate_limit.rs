//! Rate limits, counted in Redis so that every control plane shares them:
//! one-minute windows per client address (all requests, and logins and
//! registrations apart, much stricter) and per bearer token (deploys).
//! Past a limit: 429 `rate_limited` with `Retry-After` (seconds to the next
//! window). The agents' protocol and the health check are never limited;
//! without the job queues' Redis (or while it fails) requests pass.

use poem::{Endpoint, IntoResponse, Request, Response};
use sha2::{Digest, Sha256};

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
    /// Deploys (and rollbacks), per bearer token.
    pub deploy_per_token: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            api_per_ip: 3000,
            login_per_ip: 20,
            deploy_per_token: 30,
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

/// The limits `method path` counts against.
fn counted(
    limits: &RateLimits,
    method: &str,
    path: &str,
    ip: &str,
    token: Option<&str>,
) -> Vec<Counted> {
    if path.starts_with("/api/internal/") || path == "/api/health" {
        return Vec::new();
    }
    let mut list = vec![Counted {
        class: "api",
        who: ip.to_string(),
        per_minute: limits.api_per_ip,
    }];
    if method == "POST" && matches!(path, "/api/auth/login" | "/api/auth/register") {
        list.push(Counted {
            class: "login",
            who: ip.to_string(),
            per_minute: limits.login_per_ip,
        });
    }
    let deploying = method == "POST"
        && path.starts_with("/api/paas/applications/")
        && (path.ends_with("/deploy") || path.ends_with("/rollback"));
    if let (true, Some(token)) = (deploying, token) {
        // The token's digest: the key in Redis never holds a secret.
        let digest = hex::encode(&Sha256::digest(token.as_bytes())[..12]);
        list.push(Counted {
            class: "deploy",
            who: digest,
            per_minute: limits.deploy_per_token,
        });
    }
    list.retain(|c| c.per_minute > 0);
    list
}

/// Counts the request in its window; answers the count.
const COUNT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 61) end
return n
"#;

/// Checks the request against its limits before it goes on.
pub async fn check<E: Endpoint>(endpoint: E, request: Request) -> poem::Result<Response> {
    let refused = match request.data::<AppState>() {
        Some(state) => over_limit(state, &request).await,
        None => None,
    };
    match refused {
        Some(retry_after) => Ok(too_many(retry_after)),
        None => endpoint
            .call(request)
            .await
            .map(IntoResponse::into_response),
    }
}

/// Seconds until the next window when the request is over a limit.
async fn over_limit(state: &AppState, request: &Request) -> Option<u64> {
    let queues = state.queues().ok()?;
    let ip = client_ip(request).unwrap_or_else(|| "unknown".into());
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let limits = state.settings().rate_limits;
    let list = counted(
        &limits,
        request.method().as_str(),
        request.uri().path(),
        &ip,
        token,
    );
    if list.is_empty() {
        return None;
    }
    let now = state.now().timestamp();
    let window = now / 60;
    let retry_after = (60 - now % 60).max(1) as u64;
    let mut conn = queues.connection();
    for limit in list {
        let key = format!(
            "{}:ratelimit:{}:{}:{window}",
            queues.key_prefix(),
            limit.class,
            limit.who
        );
        let count: Result<u64, _> = redis::Script::new(COUNT)
            .key(&key)
            .invoke_async(&mut conn)
            .await;
        match count {
            Ok(n) if n > u64::from(limit.per_minute) => {
                tracing::warn!(class = limit.class, %ip, "rate limited");
                return Some(retry_after);
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "cannot count a request against its rate limit; letting it pass");
                return None;
            }
        }
    }
    None
}

fn too_many(retry_after: u64) -> Response {
    ApiError::rate_limited(retry_after).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_and_deploys_count_against_their_own_stricter_limits() {
        let limits = RateLimits::default();
        let classes = |method, path, token| {
            counted(&limits, method, path, "10.0.0.1", token)
                .into_iter()
                .map(|c| c.class)
                .collect::<Vec<_>>()
        };
        assert_eq!(classes("POST", "/api/auth/login", None), ["api", "login"]);
        assert_eq!(classes("GET", "/api/paas/applications", Some("t")), ["api"]);
        assert_eq!(
            classes("POST", "/api/paas/applications/7/deploy", Some("t")),
            ["api", "deploy"]
        );
        assert!(classes("POST", "/api/internal/paas/nodes/1/heartbeat", None).is_empty());
        assert!(classes("GET", "/api/health", None).is_empty());
        let deploy = counted(
            &limits,
            "POST",
            "/api/paas/applications/7/deploy",
            "ip",
            Some("spt_secret"),
        );
        assert!(!deploy[1].who.contains("spt_secret"), "no token in the key");
        let off = RateLimits {
            api_per_ip: 0,
            ..limits
        };
        assert_eq!(
            counted(&off, "GET", "/api/paas/applications", "ip", None),
            []
        );
    }
}
