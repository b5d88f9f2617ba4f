//! The bearer security scheme and the `Principal` it yields: the user behind a
//! valid access token or API token, with their current role from the database.

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use skypanel_domain::credentials::{API_TOKEN_PREFIX, token_digest};
use skypanel_domain::lifecycle::Role;

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

async fn authenticate(request: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let Some(state) = request.data::<AppState>() else {
        return Err(ApiError::internal("AppState missing from request data").into());
    };
    let refused = || ApiError::unauthorized("the access token is invalid or expired");
    let mut conn = state.store().conn().await.map_err(ApiError::from)?;
    let user = if bearer.token.starts_with(API_TOKEN_PREFIX) {
        skypanel_store::accounts::authenticate_token(&mut conn, &token_digest(&bearer.token))
            .await
            .map_err(ApiError::from)?
            .ok_or_else(refused)?
    } else {
        let user_id = state.jwt().verify(&bearer.token).ok_or_else(refused)?;
        match skypanel_store::accounts::get_user(&mut conn, user_id).await {
            Ok(user) => user,
            Err(skypanel_store::Error::NotFound) => return Err(refused().into()),
            Err(other) => return Err(ApiError::from(other).into()),
        }
    };
    let role = user.role().map_err(ApiError::from)?;
    drop(conn);
    crate::rate_limit::check_user(state, request, user.id).await?;
    Ok(Principal {
        user_id: user.id,
        email: user.email,
        role,
    })
}
