//! `/api/auth/...`: registration, login, the current user, API tokens.

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use skypanel_domain::credentials::{self, API_TOKEN_PREFIX};
use skypanel_domain::lifecycle::Role;
use skypanel_domain::names::{clean_text, normalize_email};
use skypanel_store::accounts;
use skypanel_store::audit::Actor;
use skypanel_store::wakeups::Forget;

use super::{Audit, Created, NoContent, Tag, blocking};
use crate::auth::BearerAuth;
use crate::auth::session::{self, LiveSession, NewSession};
use crate::body::JsonBody;
use crate::dto::accounts::*;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct AuthApi {
    pub state: AppState,
}

/// 201 with the session, and its cookie.
#[derive(ApiResponse)]
enum SessionStarted {
    /// Logged in; the cookie is set.
    #[oai(status = 201)]
    Created(Json<SessionView>, #[oai(header = "Set-Cookie")] String),
}

/// 204, and the cookie cleared.
#[derive(ApiResponse)]
enum SessionEnded {
    /// Logged out.
    #[oai(status = 204)]
    NoContent(#[oai(header = "Set-Cookie")] String),
}

impl AuthApi {
    /// The user whose e-mail and password these are (audited either way),
    /// or 401 that does not say which was wrong.
    async fn check_password(
        &self,
        request: &Request,
        body: LoginRequest,
        via: &str,
    ) -> ApiResult<accounts::User> {
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
                .with(serde_json::json!({"email": email, "via": via}))
                .write(&mut conn)
                .await;
            return Err(refused());
        };
        Audit::by(request, user.id, "user.login")
            .on("user", user.id)
            .with(serde_json::json!({"via": via}))
            .write(&mut conn)
            .await;
        Ok(user)
    }

    /// The live console session of this request's cookie, or 401.
    async fn live_session(&self, request: &Request) -> ApiResult<LiveSession> {
        let ended = || ApiError::unauthorized("no console session: log in");
        let secret = session::cookie(request).ok_or_else(ended)?;
        session::find(&self.state, secret).await?.ok_or_else(ended)
    }
}

/// The console session the request's cookie names, as `GET /auth/session`
/// answers it; `None` without a live one. The console's page carries it too.
pub(crate) async fn current_session(
    state: &AppState,
    request: &Request,
) -> ApiResult<Option<SessionView>> {
    let Some(secret) = session::cookie(request) else {
        return Ok(None);
    };
    let Some(session) = session::find(state, secret).await? else {
        return Ok(None);
    };
    let mut conn = state.store().conn().await?;
    let user = accounts::get_user(&mut conn, session.principal.user_id)
        .await
        .or_not_found("user")?;
    Ok(Some(SessionView {
        user: user.into(),
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    }))
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
        let user = self.check_password(request, body.0, "api").await?;
        let token = self
            .state
            .jwt()
            .issue(user.id)
            .map_err(ApiError::internal)?;
        Ok(Json(AccessToken {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: self.state.jwt().ttl_seconds(),
        }))
    }

    /// Log in to the web console
    ///
    /// Sets the `skypanel_session` cookie (HttpOnly, SameSite=Strict, Secure
    /// over HTTPS; 12 hours) and answers the session's CSRF token, which
    /// every request other than GET and HEAD made with the cookie must carry
    /// in `X-CSRF-Token`.
    #[oai(path = "/session", method = "post", operation_id = "createSession")]
    async fn create_session(
        &self,
        request: &Request,
        body: JsonBody<LoginRequest>,
    ) -> ApiResult<SessionStarted> {
        let user = self.check_password(request, body.0, "console").await?;
        let session = NewSession::generate();
        let expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(session::LIFETIME).map_err(ApiError::internal)?;
        let mut conn = self.state.store().conn().await?;
        skypanel_store::console_sessions::create(
            &mut conn,
            user.id,
            &session.digest,
            &session.csrf_token,
            expires_at,
        )
        .await?;
        Ok(SessionStarted::Created(
            Json(SessionView {
                user: user.into(),
                csrf_token: session.csrf_token,
                expires_at,
            }),
            session::set_cookie(request, &session.secret),
        ))
    }

    /// The console session of this browser
    ///
    /// Who is logged in and the session's CSRF token (a page that was
    /// reloaded reads it here); 401 without a live session cookie.
    #[oai(path = "/session", method = "get", operation_id = "getSession")]
    async fn get_session(&self, request: &Request) -> ApiResult<Json<SessionView>> {
        current_session(&self.state, request)
            .await?
            .map(Json)
            .ok_or_else(|| ApiError::unauthorized("no console session: log in"))
    }

    /// Log out of the web console
    ///
    /// Ends the session on the server (the cookie is worthless from now on)
    /// and clears the cookie. Needs the session's `X-CSRF-Token`.
    #[oai(path = "/session", method = "delete", operation_id = "deleteSession")]
    async fn delete_session(&self, request: &Request) -> ApiResult<SessionEnded> {
        let live = self.live_session(request).await?;
        session::check_csrf(request, &live.csrf_token)?;
        let mut conn = self.state.store().conn().await?;
        skypanel_store::console_sessions::delete(&mut conn, &live.digest).await?;
        self.state
            .forget(&mut conn, Forget::Session(live.digest.clone()))
            .await;
        Audit::by(request, live.principal.user_id, "user.logout")
            .on("user", live.principal.user_id)
            .write(&mut conn)
            .await;
        Ok(SessionEnded::NoContent(session::clear_cookie(request)))
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
        self.state
            .forget(&mut conn, Forget::User(auth.user_id()))
            .await;
        Audit::by(request, auth.user_id(), "api_token.delete")
            .on("api_token", id.0)
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }
}
