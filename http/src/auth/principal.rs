//! The bearer security scheme and the `Principal` it yields: the user behind a
//! valid access token or API token, with their role from the database (read
//! at most [`REMEMBERED_FOR`] ago).

use std::time::Duration;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use skypanel_domain::credentials::{API_TOKEN_PREFIX, token_digest};
use skypanel_domain::lifecycle::Role;

use super::remembered::Remembered;
use crate::error::ApiError;
use crate::state::AppState;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub email: String,
    pub role: Role,
}

/// `Authorization: Bearer <token>`: a JWT from `/api/auth/login` or an `spt_` API token.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "JWT or spt_ API token",
    checker = "authenticate"
)]
pub struct BearerAuth(pub Principal);

impl BearerAuth {
    pub fn user_id(&self) -> i64 {
        self.0.user_id
    }
}

/// Like [`BearerAuth`], for a user with the admin role; anyone else gets 403
/// before the request body is even read.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "JWT or spt_ API token of an admin",
    checker = "authenticate_admin"
)]
pub struct AdminAuth(pub Principal);

async fn authenticate_admin(request: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let principal = authenticate(request, bearer).await?;
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

/// What a bearer token named: a user (a JWT, already verified) or an API token.
#[derive(PartialEq, Eq, Hash)]
enum Credential {
    User(i64),
    ApiToken(String),
}

/// A principal and when its credential expires (API tokens may).
#[derive(Clone)]
struct Known {
    principal: Principal,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Principals that authenticated lately, so that a client's every request
/// costs no user query; see [`REMEMBERED_FOR`] for what that can delay.
#[derive(Clone)]
pub struct Principals(Remembered<Credential, Known>);

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

    fn get(&self, credential: &Credential) -> Option<Principal> {
        self.0
            .get(credential)
            .filter(|known| {
                known
                    .expires_at
                    .is_none_or(|expires| expires > chrono::Utc::now())
            })
            .map(|known| known.principal)
    }
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
        Some(principal) => principal,
        None => {
            let mut conn = state.store().conn().await.map_err(ApiError::from)?;
            let (user, expires_at) = match &credential {
                Credential::ApiToken(digest) => {
                    skypanel_store::accounts::authenticate_token(&mut conn, digest)
                        .await
                        .map_err(ApiError::from)?
                        .ok_or_else(refused)?
                }
                Credential::User(user_id) => {
                    match skypanel_store::accounts::get_user(&mut conn, *user_id).await {
                        Ok(user) => (user, None),
                        Err(skypanel_store::Error::NotFound) => return Err(refused().into()),
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
        assert_eq!(principals.get(&token).map(|p| p.user_id), Some(7));
        std::thread::sleep(std::time::Duration::from_millis(40));
        assert!(principals.get(&token).is_none(), "expired");
        principals.forget_user(8);
        assert!(principals.get(&Credential::User(8)).is_none(), "revoked");
    }
}
