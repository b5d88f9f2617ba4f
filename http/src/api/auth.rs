//! `/api/auth/...`: registration, login, the current user, API tokens.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use skypanel_domain::credentials::{self, API_TOKEN_PREFIX};
use skypanel_domain::lifecycle::Role;
use skypanel_domain::names::{clean_text, normalize_email};
use skypanel_store::accounts;
use skypanel_store::audit::Actor;

use super::{Audit, Created, NoContent, Tag, blocking};
use crate::auth::BearerAuth;
use crate::body::JsonBody;
use crate::dto::accounts::*;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct AuthApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/auth", tag = "Tag::Auth")]
impl AuthApi {
    /// Create a customer account
    ///
    /// The account starts with an empty wallet.
    #[oai(path = "/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        request: &Request,
        body: JsonBody<RegisterRequest>,
    ) -> ApiResult<Created<UserView>> {
        let body = body.0;
        let email = normalize_email(&body.email)?;
        credentials::validate_password(&body.password)?;
        let name = body
            .name
            .as_deref()
            .map(|n| clean_text("name", n, 100))
            .transpose()?;
        let password = body.password;
        let hash = blocking(move || credentials::hash_password(&password)).await?;
        let mut conn = self.state.store().conn().await?;
        let user = accounts::create_user(&mut conn, &email, &hash, name.as_deref(), Role::Customer)
            .await?;
        Audit::by(request, user.id, "user.register")
            .on("user", user.id)
            .write(&mut conn)
            .await;
        Ok(Created::Created(Json(user.into())))
    }

    /// Log in with e-mail and password
    ///
    /// Answers a short-lived JWT access token.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        request: &Request,
        body: JsonBody<LoginRequest>,
    ) -> ApiResult<Json<AccessToken>> {
        let body = body.0;
        let refused = || ApiError::unauthorized("wrong e-mail or password");
        let email = normalize_email(&body.email).map_err(|_| refused())?;
        let mut conn = self.state.store().conn().await?;
        let user = accounts::find_user_by_email(&mut conn, &email).await?;
        let hash = user.as_ref().map_or_else(
            || credentials::dummy_password_hash().to_string(),
            |u| u.password_hash.clone(),
        );
        let password = body.password;
        let matches = blocking(move || credentials::verify_password(&password, &hash)).await?;
        let Some(user) = user.filter(|_| matches) else {
            Audit::new(request, Actor::System, "user.login_failed")
                .on("user", None)
                .with(serde_json::json!({"email": email}))
                .write(&mut conn)
                .await;
            return Err(refused());
        };
        let token = self
            .state
            .jwt()
            .issue(user.id)
            .map_err(ApiError::internal)?;
        Audit::by(request, user.id, "user.login")
            .on("user", user.id)
            .write(&mut conn)
            .await;
        Ok(Json(AccessToken {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: self.state.jwt().ttl_seconds(),
        }))
    }

    /// The current user
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(&self, auth: BearerAuth) -> ApiResult<Json<UserView>> {
        let mut conn = self.state.store().conn().await?;
        let user = accounts::get_user(&mut conn, auth.user_id())
            .await
            .or_not_found("user")?;
        Ok(Json(user.into()))
    }

    /// Create a long-lived API token
    ///
    /// The secret is in this answer only; it is stored as a digest.
    #[oai(path = "/tokens", method = "post", operation_id = "createApiToken")]
    async fn create_token(
        &self,
        request: &Request,
        auth: BearerAuth,
        body: JsonBody<CreateApiTokenRequest>,
    ) -> ApiResult<Created<CreatedApiToken>> {
        let body = body.0;
        let name = clean_text("name", &body.name, 100)?;
        let expires_at = match body.expires_in_days {
            None => None,
            Some(days @ 1..=3650) => Some(chrono::Utc::now() + chrono::Duration::days(days)),
            Some(_) => {
                return Err(ApiError::invalid(
                    "expires_in_days",
                    "expires_in_days is 1 to 3650",
                ));
            }
        };
        let secret = credentials::generate_token(API_TOKEN_PREFIX);
        let hint = secret[secret.len() - 4..].to_string();
        let mut conn = self.state.store().conn().await?;
        let token = accounts::create_token(
            &mut conn,
            auth.user_id(),
            &name,
            &credentials::token_digest(&secret),
            &hint,
            expires_at,
        )
        .await?;
        Audit::by(request, auth.user_id(), "api_token.create")
            .on("api_token", token.id)
            .with(serde_json::json!({"name": name}))
            .write(&mut conn)
            .await;
        Ok(Created::Created(Json(CreatedApiToken {
            token: secret,
            details: token.into(),
        })))
    }

    /// List the caller's API tokens (never their secrets)
    #[oai(path = "/tokens", method = "get", operation_id = "listApiTokens")]
    async fn list_tokens(&self, auth: BearerAuth) -> ApiResult<Json<Vec<ApiTokenView>>> {
        let mut conn = self.state.store().conn().await?;
        let tokens = accounts::list_tokens(&mut conn, auth.user_id()).await?;
        Ok(Json(tokens.into_iter().map(Into::into).collect()))
    }

    /// Revoke one of the caller's API tokens
    #[oai(
        path = "/tokens/:id",
        method = "delete",
        operation_id = "deleteApiToken"
    )]
    async fn delete_token(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<NoContent> {
        let mut conn = self.state.store().conn().await?;
        accounts::delete_token(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("API token")?;
        self.state.principals().forget_user(auth.user_id());
        Audit::by(request, auth.user_id(), "api_token.delete")
            .on("api_token", id.0)
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }
}
