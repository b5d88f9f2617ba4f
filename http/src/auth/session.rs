//! The web console's browser session: an HttpOnly, SameSite=Strict cookie
//! holding a random secret (stored as its digest), and a CSRF token the page
//! sends back in `X-CSRF-Token` on every request that is not a GET or HEAD.
//! A cross-site form cannot set that header, so it is refused even where the
//! browser sends the cookie (another port of the same host is the same site).

use std::time::Duration;

use poem::Request;
use poem::http::Method;
use poem_openapi::registry::MetaSecurityScheme;
use skypanel_domain::credentials::{generate_token, token_digest};

use super::principal::{Credential, Known, Principal, admin_only};
use crate::error::ApiError;
use crate::state::AppState;

/// The cookie's name.
pub const COOKIE: &str = "skypanel_session";
/// The header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session's secret starts with this.
pub const SECRET_PREFIX: &str = "sps_";
/// How long a session lasts after its login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A new session's secret (for the cookie) and CSRF token (for the page).
pub struct NewSession {
    pub secret: String,
    pub digest: String,
    pub csrf_token: String,
}

impl NewSession {
    pub fn generate() -> Self {
        let secret = generate_token(SECRET_PREFIX);
        Self {
            digest: token_digest(&secret),
            secret,
            csrf_token: generate_token(""),
        }
    }
}

/// The session cookie's value in `request`, if it sent one.
pub fn cookie(request: &Request) -> Option<&str> {
    request
        .headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether the browser reached us over HTTPS (directly, or through a proxy
/// that says so): the cookie is then marked `Secure`.
fn over_https(request: &Request) -> bool {
    request.uri().scheme_str() == Some("https")
        || request
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(request: &Request, secret: &str) -> String {
    let secure = if over_https(request) { "; Secure" } else { "" };
    format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_cookie(request: &Request) -> String {
    let secure = if over_https(request) { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// Compares in time that does not depend on where the two differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Refuses a state-changing request without the session's CSRF token.
pub fn check_csrf(request: &Request, csrf_token: &str) -> Result<(), ApiError> {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return Ok(());
    }
    let sent = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if same(sent, csrf_token) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(poem_openapi::payload::Json(
            crate::error::ErrorBody {
                code: "csrf_refused".into(),
                message: "a request with the console's session cookie must carry the session's \
                          X-CSRF-Token header (pages of the console send it)"
                    .into(),
                field: None,
            },
        )))
    }
}

/// A session that has not ended.
pub struct LiveSession {
    /// The digest of its secret.
    pub digest: String,
    pub principal: Principal,
    pub csrf_token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl LiveSession {
    fn new(digest: String, known: Known) -> Self {
        Self {
            digest,
            principal: known.principal,
            csrf_token: known.csrf_token.unwrap_or_default(),
            expires_at: known.expires_at.unwrap_or_default(),
        }
    }
}

/// The live session behind `secret`: remembered, or read from the database.
pub async fn find(state: &AppState, secret: &str) -> Result<Option<LiveSession>, ApiError> {
    let digest = token_digest(secret);
    let credential = Credential::Session(digest.clone());
    if let Some(known) = state.principals().get(&credential) {
        return Ok(Some(LiveSession::new(digest, known)));
    }
    let mut conn = state.store().conn().await?;
    let Some(session) = skypanel_store::console_sessions::find(&mut conn, &digest).await? else {
        return Ok(None);
    };
    drop(conn);
    let known = Known {
        principal: Principal {
            user_id: session.user.id,
            role: session.user.role()?,
            email: session.user.email,
        },
        expires_at: Some(session.expires_at),
        csrf_token: Some(session.csrf_token),
    };
    state.principals().0.remember(credential, known.clone());
    Ok(Some(LiveSession::new(digest, known)))
}

fn state(request: &Request) -> Result<&AppState, ApiError> {
    request
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal("AppState missing from request data"))
}

/// How the spec documents the session: an API key in the cookie.
pub(super) fn security_scheme() -> MetaSecurityScheme {
    MetaSecurityScheme {
        ty: "apiKey",
        description: Some(
            "The web console's session cookie from `POST /api/auth/session`; every request \
             other than GET and HEAD made with it must carry the session's CSRF token in \
             `X-CSRF-Token`.",
        ),
        name: Some(COOKIE),
        key_in: Some("cookie"),
        scheme: None,
        bearer_format: None,
        flows: None,
        openid_connect_url: None,
    }
}

/// The session's check: a live session, and its CSRF token on a
/// state-changing request.
pub(super) async fn authenticate(request: &Request, secret: &str) -> poem::Result<Principal> {
    let state = state(request)?;
    let Some(session) = find(state, secret).await? else {
        return Err(ApiError::unauthorized("the console session has ended; log in again").into());
    };
    check_csrf(request, &session.csrf_token)?;
    crate::rate_limit::check_user(state, request, session.principal.user_id).await?;
    Ok(session.principal)
}

pub(super) async fn authenticate_admin(request: &Request, secret: &str) -> poem::Result<Principal> {
    admin_only(authenticate(request, secret).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_an_empty_one_is_none() {
        let request = Request::builder()
            .header("cookie", "a=1; skypanel_session=sps_abc; b=2")
            .finish();
        assert_eq!(cookie(&request), Some("sps_abc"));
        let request = Request::builder()
            .header("cookie", "skypanel_session=")
            .finish();
        assert_eq!(cookie(&request), None);
        assert_eq!(cookie(&Request::default()), None);
    }

    #[test]
    fn a_state_changing_request_needs_the_exact_csrf_token() {
        let get = Request::builder().method(Method::GET).finish();
        assert!(check_csrf(&get, "t0k3n").is_ok());
        let post = Request::builder().method(Method::POST).finish();
        assert!(check_csrf(&post, "t0k3n").is_err());
        let wrong = Request::builder()
            .method(Method::DELETE)
            .header(CSRF_HEADER, "t0k3m")
            .finish();
        assert!(check_csrf(&wrong, "t0k3n").is_err());
        let right = Request::builder()
            .method(Method::PATCH)
            .header(CSRF_HEADER, "t0k3n")
            .finish();
        assert!(check_csrf(&right, "t0k3n").is_ok());
    }

    #[test]
    fn the_cookie_is_secure_only_over_https() {
        let plain = Request::default();
        let cookie = set_cookie(&plain, "sps_x");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"));
        let proxied = Request::builder()
            .header("x-forwarded-proto", "https")
            .finish();
        assert!(set_cookie(&proxied, "sps_x").ends_with("; Secure"));
    }
}
