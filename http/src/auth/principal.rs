//! The bearer security scheme and the `Principal` it yields: the user behind a
//! valid access token or API token, with their role from the database (read
//! at most [`REMEMBERED_FOR`] ago).

use std::time::Duration;

use poem::{Request, RequestBody};
use poem_openapi::auth::Bearer;
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};
use skypanel_domain::credentials::{API_TOKEN_PREFIX, token_digest};
use skypanel_domain::lifecycle::Role;

use super::remembered::Remembered;
use super::session;
use crate::error::ApiError;
use crate::state::AppState;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub email: String,
    pub role: Role,
}

/// A customer's or admin's credential: `Authorization: Bearer <token>` (a
/// JWT from `/api/auth/login` or an `spt_` API token) or, from the web
/// console, the `skypanel_session` cookie with its CSRF header.
pub struct BearerAuth(pub Principal);

impl BearerAuth {
    pub fn user_id(&self) -> i64 {
        self.0.user_id
    }
}

/// Like [`BearerAuth`], for a user with the admin role; anyone else gets 403
/// before the request body is even read.
pub struct AdminAuth(pub Principal);

/// `Authorization: Bearer <token>`: a JWT from `/api/auth/login` or an `spt_` API token.
#[derive(SecurityScheme)]
#[oai(
    rename = "BearerAuth",
    ty = "bearer",
    bearer_format = "JWT or spt_ API token",
    checker = "authenticate"
)]
struct Token(Principal);

/// `Authorization: Bearer <token>` of a user with the admin role.
#[derive(SecurityScheme)]
#[oai(
    rename = "AdminAuth",
    ty = "bearer",
    bearer_format = "JWT or spt_ API token of an admin",
    checker = "authenticate_admin"
)]
struct AdminToken(Principal);

/// Implements the extractor of `$outer` as "`$token` when the request has
/// an `Authorization` header or no session cookie, else the web console's
/// session cookie (`POST /api/auth/session`) checked by `$check`": an API
/// client's error names its missing token, a browser's its session. The
/// cookie scheme is documented as `$scheme`; every request other than GET
/// and HEAD made with it must carry the session's CSRF token in
/// `X-CSRF-Token`.
macro_rules! token_or_session {
    ($outer:ident, $token:ident, $scheme:literal, $check:path) => {
        impl<'a> ApiExtractor<'a> for $outer {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                <$token as ApiExtractor>::register(registry);
                registry.create_security_scheme($scheme, session::security_scheme());
            }

            fn security_schemes() -> Vec<&'static str> {
                let mut schemes = <$token as ApiExtractor>::security_schemes();
                schemes.push($scheme);
                schemes
            }

            async fn from_request(
                request: &'a Request,
                body: &mut RequestBody,
                options: ExtractParamOptions<()>,
            ) -> poem::Result<Self> {
                match session::cookie(request) {
                    Some(secret)
                        if !request
                            .headers()
                            .contains_key(poem::http::header::AUTHORIZATION) =>
                    {
                        $check(request, secret).await.map(Self)
                    }
                    _ => <$token as ApiExtractor>::from_request(request, body, options)
                        .await
                        .map(|t| Self(t.0)),
                }
            }
        }
    };
}

token_or_session!(BearerAuth, Token, "ConsoleSession", session::authenticate);
token_or_session!(
    AdminAuth,
    AdminToken,
    "AdminConsoleSession",
    session::authenticate_admin
);

/// The admin calling a handler outside the OpenAPI service, by
/// `Authorization: Bearer <token>` (a JWT or an admin's `spt_` API token).
pub async fn admin_of(request: &Request) -> poem::Result<Principal> {
    let token = request
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <token> of an admin"))?;
    authenticate_admin(
        request,
        Bearer {
            token: token.trim().to_string(),
        },
    )
    .await
}

async fn authenticate_admin(request: &Request, bearer: Bearer) -> poem::Result<Principal> {
    admin_only(authenticate(request, bearer).await?)
}

/// The principal if it has the admin role, else 403.
pub(super) fn admin_only(principal: Principal) -> poem::Result<Principal> {
    if principal.role == Role::Admin {
        Ok(principal)
    } else {
        Err(ApiError::forbidden("this operation needs the admin role").into())
    }
}

/// How long a user's principal is answered from memory. Users are never
/// deleted or demoted by the platform (`skypanel admin create` only
/// promotes, from another process: it shows within this time); a revoked API
/// token is forgotten at once on this replica and within this time on others.
const REMEMBERED_FOR: Duration = Duration::from_secs(2);

/// Past this many remembered credentials the memory starts over.
const MOST_REMEMBERED: usize = 100_000;

/// What a credential named: a user (a JWT, already verified), an API token
/// or a console session (both by their digest).
#[derive(PartialEq, Eq, Hash)]
pub(super) enum Credential {
    User(i64),
    ApiToken(String),
    Session(String),
}

/// A principal, when its credential expires (API tokens may, sessions do),
/// and a session's CSRF token.
#[derive(Clone)]
pub(super) struct Known {
    pub(super) principal: Principal,
    pub(super) expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub(super) csrf_token: Option<String>,
}

/// Principals that authenticated lately, so that a client's every request
/// costs no user query; see [`REMEMBERED_FOR`] for what that can delay.
#[derive(Clone)]
pub struct Principals(pub(super) Remembered<Credential, Known>);

impl Default for Principals {
    fn default() -> Self {
        Self(Remembered::new(REMEMBERED_FOR, MOST_REMEMBERED))
    }
}

impl Principals {
    /// Forgets all that is remembered for `user_id` (one of their API
    /// tokens was revoked).
    pub fn forget_user(&self, user_id: i64) {
        self.0.forget(|known| known.principal.user_id == user_id);
    }

    pub fn forget_all(&self) {
        self.0.forget(|_| true);
    }

    /// Forgets a console session (its user logged out).
    pub fn forget_session(&self, digest: &str) {
        self.0.forget_key(&Credential::Session(digest.to_string()));
    }

    pub(super) fn get(&self, credential: &Credential) -> Option<Known> {
        self.0.get(credential).filter(|known| {
            known
                .expires_at
                .is_none_or(|expires| expires > chrono::Utc::now())
        })
    }
}

/// The user behind an access token or API token given some other way than
/// a bearer header (git's Basic authentication).
pub(crate) async fn authenticate_token(
    request: &Request,
    token: String,
) -> poem::Result<Principal> {
    authenticate(request, Bearer { token }).await
}

async fn authenticate(request: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let Some(state) = request.data::<AppState>() else {
        return Err(ApiError::internal("AppState missing from request data").into());
    };
    let refused = || ApiError::unauthorized("the access token is invalid or expired");
    let credential = if bearer.token.starts_with(API_TOKEN_PREFIX) {
        Credential::ApiToken(token_digest(&bearer.token))
    } else {
        Credential::User(state.jwt().verify(&bearer.token).ok_or_else(refused)?)
    };
    let principal = match state.principals().get(&credential) {
        Some(known) => known.principal,
        None => {
            let mut conn = state.store().conn().await.map_err(ApiError::from)?;
            let (user, expires_at) = match &credential {
                Credential::ApiToken(digest) => {
                    skypanel_store::accounts::authenticate_token(&mut conn, digest)
                        .await
                        .map_err(ApiError::from)?
                        .ok_or_else(refused)?
                }
                Credential::Session(_) => return Err(refused().into()),
                Credential::User(user_id) => {
                    match skypanel_store::accounts::get_user(&mut conn, *user_id).await {
                        // A deleted account's access tokens die with it.
                        Ok(user) if user.deleted_at.is_none() => (user, None),
                        Ok(_) | Err(skypanel_store::Error::NotFound) => {
                            return Err(refused().into());
                        }
                        Err(other) => return Err(ApiError::from(other).into()),
                    }
                }
            };
            drop(conn);
            let principal = Principal {
                user_id: user.id,
                role: user.role().map_err(ApiError::from)?,
                email: user.email,
            };
            let known = Known {
                principal: principal.clone(),
                expires_at,
                csrf_token: None,
            };
            state.principals().0.remember(credential, known);
            principal
        }
    };
    crate::rate_limit::check_user(state, request, principal.user_id).await?;
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(user_id: i64, expires_at: Option<chrono::DateTime<chrono::Utc>>) -> Known {
        Known {
            principal: Principal {
                user_id,
                email: format!("{user_id}@example.com"),
                role: Role::Customer,
            },
            expires_at,
            csrf_token: None,
        }
    }

    #[test]
    fn a_remembered_token_past_its_expiry_or_revoked_is_not_answered() {
        let principals = Principals::default();
        let soon = chrono::Utc::now() + chrono::Duration::milliseconds(30);
        let token = Credential::ApiToken("digest".into());
        principals.0.remember(token, known(7, Some(soon)));
        principals.0.remember(Credential::User(8), known(8, None));
        let token = Credential::ApiToken("digest".into());
        assert_eq!(principals.get(&token).map(|k| k.principal.user_id), Some(7));
        std::thread::sleep(std::time::Duration::from_millis(40));
        assert!(principals.get(&token).is_none(), "expired");
        principals.forget_user(8);
        assert!(principals.get(&Credential::User(8)).is_none(), "revoked");
    }
}
