//! `/api/paas/applications/:id/env`: environment variables. Values are sealed
//! with AES-256-GCM bound to (application, key); lists show them masked unless
//! the owner asks for `reveal=true`.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_domain::env::{self, associated_data, mask};
use skypanel_store::apps;
use skypanel_store::env_vars::{self, EnvVar};

use super::{Audit, Created, NoContent, Tag};
use crate::auth::BearerAuth;
use crate::body::JsonBody;
use crate::dto::apps::{AddEnvVarRequest, EnvVarView, UpdateEnvVarRequest};
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct EnvApi {
    pub state: AppState,
}

impl EnvApi {
    /// The caller's application id, or 404.
    async fn owned_app(&self, auth: &BearerAuth, id: i64) -> ApiResult<i64> {
        let mut conn = self.state.store().conn().await?;
        Ok(apps::get(&mut conn, auth.user_id(), id)
            .await
            .or_not_found("application")?
            .id)
    }

    fn view(&self, var: EnvVar, reveal: bool) -> ApiResult<EnvVarView> {
        let value = if reveal {
            self.state
                .secrets()
                .open_str(&var.value, &associated_data(var.application_id, &var.key))
                .map_err(|err| {
                    ApiError::internal(format!(
                        "env var {} of app {}: {err}",
                        var.key, var.application_id
                    ))
                })?
        } else {
            mask("set")
        };
        Ok(EnvVarView {
            key: var.key,
            value,
            updated_at: var.updated_at,
        })
    }
}

#[OpenApi(prefix_path = "/paas/applications", tag = "Tag::Environment")]
impl EnvApi {
    /// List an application's variables
    ///
    /// Values are masked; `reveal=true` shows them to their owner.
    #[oai(path = "/:id/env", method = "get", operation_id = "listEnvVars")]
    async fn list(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        reveal: Query<Option<bool>>,
    ) -> ApiResult<Json<Vec<EnvVarView>>> {
        let app_id = self.owned_app(&auth, id.0).await?;
        let mut conn = self.state.store().conn().await?;
        let reveal = reveal.0.unwrap_or(false);
        let vars = env_vars::list(&mut conn, auth.user_id(), app_id).await?;
        Ok(Json(
            vars.into_iter()
                .map(|v| self.view(v, reveal))
                .collect::<ApiResult<_>>()?,
        ))
    }

    /// Add a variable
    ///
    /// An existing key answers 409 (use PUT to change it); at most 200 per application.
    #[oai(path = "/:id/env", method = "post", operation_id = "addEnvVar")]
    async fn add(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        body: JsonBody<AddEnvVarRequest>,
    ) -> ApiResult<Created<EnvVarView>> {
        let b = body.0;
        env::validate_key(&b.key)?;
        env::validate_value(&b.value)?;
        let app_id = self.owned_app(&auth, id.0).await?;
        let sealed = self
            .state
            .secrets()
            .seal_str(&b.value, &associated_data(app_id, &b.key));
        let mut conn = self.state.store().conn().await?;
        let var = env_vars::add(&mut conn, auth.user_id(), app_id, &b.key, &sealed).await?;
        Audit::by(request, auth.user_id(), "env.add")
            .on("application", app_id)
            .with(serde_json::json!({"key": b.key}))
            .write(&mut conn)
            .await;
        Ok(Created::Created(Json(self.view(var, false)?)))
    }

    /// Change a variable's value
    #[oai(path = "/:id/env/:key", method = "put", operation_id = "updateEnvVar")]
    async fn update(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        key: Path<String>,
        body: JsonBody<UpdateEnvVarRequest>,
    ) -> ApiResult<Json<EnvVarView>> {
        env::validate_key(&key.0)?;
        env::validate_value(&body.0.value)?;
        let app_id = self.owned_app(&auth, id.0).await?;
        let sealed = self
            .state
            .secrets()
            .seal_str(&body.0.value, &associated_data(app_id, &key.0));
        let mut conn = self.state.store().conn().await?;
        let var = env_vars::update(&mut conn, auth.user_id(), app_id, &key.0, &sealed)
            .await
            .or_not_found("variable")?;
        Audit::by(request, auth.user_id(), "env.update")
            .on("application", app_id)
            .with(serde_json::json!({"key": key.0}))
            .write(&mut conn)
            .await;
        Ok(Json(self.view(var, false)?))
    }

    /// Delete a variable
    #[oai(
        path = "/:id/env/:key",
        method = "delete",
        operation_id = "deleteEnvVar"
    )]
    async fn delete(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        key: Path<String>,
    ) -> ApiResult<NoContent> {
        let app_id = self.owned_app(&auth, id.0).await?;
        let mut conn = self.state.store().conn().await?;
        env_vars::delete(&mut conn, auth.user_id(), app_id, &key.0)
            .await
            .or_not_found("variable")?;
        Audit::by(request, auth.user_id(), "env.delete")
            .on("application", app_id)
            .with(serde_json::json!({"key": key.0}))
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }
}
