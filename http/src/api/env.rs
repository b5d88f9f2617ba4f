//! `/api/paas/applications/:id/env`: environment variables. Values are sealed
//! with AES-256-GCM bound to (application, key); lists show them masked unless
//! the owner asks for `reveal=true`. Every change goes through the
//! application's actor and makes a release, as Heroku's config changes do:
//! rolled out at once on a running application (no request dropped),
//! recorded for the next start on a stopped one.

use std::collections::BTreeMap;

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use skypanel_actors::{Accepted as ActorAccepted, AppRequest, ConfigChange};
use skypanel_domain::env::{self, associated_data, change_description, mask};
use skypanel_domain::lifecycle::ReleaseKind;
use skypanel_store::apps;
use skypanel_store::env_vars::{self, Change, EnvVar, Mode};

use super::{Audit, NoContent, Tag};
use crate::auth::BearerAuth;
use crate::body::JsonBody;
use crate::dto::apps::{
    AddEnvVarRequest, EnvChangeView, EnvVarChanged, EnvVarView, UpdateEnvVarRequest,
};
use crate::error::{ActorNotFound, ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct EnvApi {
    pub state: AppState,
}

/// The answers of `POST .../env`.
#[derive(ApiResponse)]
pub enum EnvAdded {
    /// One variable added (`key` and `value`).
    #[oai(status = 201)]
    Added(Json<EnvVarChanged>),
    /// Several variables set or removed at once (`vars`, `unset`).
    #[oai(status = 200)]
    Changed(Json<EnvChangeView>),
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

    /// The application's variable `key`; 404 without one.
    async fn existing(&self, auth: &BearerAuth, app_id: i64, key: &str) -> ApiResult<EnvVar> {
        let mut conn = self.state.store().conn().await?;
        env_vars::list(&mut conn, auth.user_id(), app_id)
            .await?
            .into_iter()
            .find(|v| v.key == key)
            .ok_or_else(|| ApiError::not_found("variable"))
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

    /// Seals values for the application, bound to their keys.
    fn sealed(&self, app_id: i64, vars: &BTreeMap<String, String>) -> Vec<(String, Vec<u8>)> {
        vars.iter()
            .map(|(key, value)| {
                let sealed = self
                    .state
                    .secrets()
                    .seal_str(value, &associated_data(app_id, key));
                (key.clone(), sealed)
            })
            .collect()
    }

    /// Hands the change to the application's actor and audits it.
    async fn change(
        &self,
        request: &Request,
        auth: &BearerAuth,
        app_id: i64,
        change: Change,
        mode: Mode,
        action: &'static str,
    ) -> ApiResult<ActorAccepted> {
        let set: Vec<&str> = change.set.iter().map(|(k, _)| k.as_str()).collect();
        let removed: Vec<&str> = change.removed.iter().map(String::as_str).collect();
        let description = change_description(&set, &removed);
        let mut details = match (set.as_slice(), removed.as_slice()) {
            ([key], []) | ([], [key]) => serde_json::json!({"key": key}),
            _ => serde_json::json!({"set": set, "removed": removed}),
        };
        let configure = AppRequest::Configure(Box::new(ConfigChange {
            env: Some((change, mode)),
            kind: ReleaseKind::Config,
            description,
            by: auth.user_id(),
        }));
        let accepted = self
            .state
            .orchestrator()?
            .app_request(app_id, configure)
            .await
            .or_not_found("variable")?;
        let mut conn = self.state.store().conn().await?;
        if let Some(release) = accepted.release {
            details["release"] = release.into();
        }
        Audit::by(request, auth.user_id(), action)
            .on("application", app_id)
            .with(details)
            .write(&mut conn)
            .await;
        Ok(accepted)
    }

    /// The answer about one variable after a change.
    fn changed(&self, accepted: ActorAccepted, key: &str) -> ApiResult<EnvVarChanged> {
        let var = accepted
            .vars
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.key == key)
            .ok_or_else(|| ApiError::internal("a changed variable is missing"))?;
        let view = self.view(var, false)?;
        Ok(EnvVarChanged {
            key: view.key,
            value: view.value,
            updated_at: view.updated_at,
            release: accepted.release,
            waiting: accepted.waiting.map(Into::into),
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

    /// Get one variable
    ///
    /// Masked, as in the list; `reveal=true` shows its value to its owner
    /// (and only this one, as `heroku config:get` does).
    #[oai(path = "/:id/env/:key", method = "get", operation_id = "getEnvVar")]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        key: Path<String>,
        reveal: Query<Option<bool>>,
    ) -> ApiResult<Json<EnvVarView>> {
        let app_id = self.owned_app(&auth, id.0).await?;
        let var = self.existing(&auth, app_id, &key.0).await?;
        Ok(Json(self.view(var, reveal.0.unwrap_or(false))?))
    }

    /// Add a variable, or set and remove several at once
    ///
    /// `{"key", "value"}` adds one variable: an existing key answers 409 (use
    /// PUT to change it). `{"vars": {...}, "unset": [...]}` sets (creates or
    /// replaces) and removes several in one change. At most 200 variables per
    /// application. Every change makes one release ("Set GREETING"): a
    /// running application is rolled out again with it at once, without
    /// dropping a request; a stopped one runs it at its next start; during a
    /// rollout the release waits for it (`waiting`).
    #[oai(path = "/:id/env", method = "post", operation_id = "addEnvVar")]
    async fn add(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        body: JsonBody<AddEnvVarRequest>,
    ) -> ApiResult<EnvAdded> {
        let b = body.0;
        let several = b.vars.is_some() || b.unset.is_some();
        if several {
            if b.key.is_some() || b.value.is_some() {
                return Err(ApiError::invalid(
                    "key",
                    "send either key and value, or vars and unset, not both",
                ));
            }
            let vars = b.vars.unwrap_or_default();
            let unset = b.unset.unwrap_or_default();
            if vars.is_empty() && unset.is_empty() {
                return Err(ApiError::invalid(
                    "vars",
                    "name at least one variable to set or unset",
                ));
            }
            for (key, value) in &vars {
                env::validate_key(key)?;
                env::validate_value(value)?;
            }
            for key in &unset {
                env::validate_key(key)?;
                if vars.contains_key(key) {
                    return Err(ApiError::invalid(
                        "unset",
                        format!("{key} is both set and unset"),
                    ));
                }
            }
            let app_id = self.owned_app(&auth, id.0).await?;
            let change = Change {
                set: self.sealed(app_id, &vars),
                removed: unset,
            };
            let accepted = self
                .change(request, &auth, app_id, change, Mode::Set, "env.set")
                .await?;
            let vars = accepted
                .vars
                .unwrap_or_default()
                .into_iter()
                .map(|v| self.view(v, false))
                .collect::<ApiResult<_>>()?;
            return Ok(EnvAdded::Changed(Json(EnvChangeView {
                vars,
                release: accepted.release,
                waiting: accepted.waiting.map(Into::into),
            })));
        }
        let key = b
            .key
            .ok_or_else(|| ApiError::invalid("key", "a key is needed (or vars to set several)"))?;
        let value = b
            .value
            .ok_or_else(|| ApiError::invalid("value", "a value is needed"))?;
        env::validate_key(&key)?;
        env::validate_value(&value)?;
        let app_id = self.owned_app(&auth, id.0).await?;
        let change = Change {
            set: self.sealed(app_id, &BTreeMap::from([(key.clone(), value)])),
            removed: Vec::new(),
        };
        let accepted = self
            .change(request, &auth, app_id, change, Mode::Add, "env.add")
            .await?;
        Ok(EnvAdded::Added(Json(self.changed(accepted, &key)?)))
    }

    /// Change a variable's value
    ///
    /// Makes a release like every change (see `POST .../env`).
    #[oai(path = "/:id/env/:key", method = "put", operation_id = "updateEnvVar")]
    async fn update(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        key: Path<String>,
        body: JsonBody<UpdateEnvVarRequest>,
    ) -> ApiResult<Json<EnvVarChanged>> {
        env::validate_key(&key.0)?;
        env::validate_value(&body.0.value)?;
        let app_id = self.owned_app(&auth, id.0).await?;
        self.existing(&auth, app_id, &key.0).await?;
        let change = Change {
            set: self.sealed(app_id, &BTreeMap::from([(key.0.clone(), body.0.value)])),
            removed: Vec::new(),
        };
        let accepted = self
            .change(request, &auth, app_id, change, Mode::Update, "env.update")
            .await?;
        Ok(Json(self.changed(accepted, &key.0)?))
    }

    /// Delete a variable
    ///
    /// Makes a release like every change ("Remove GREETING").
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
        self.existing(&auth, app_id, &key.0).await?;
        let change = Change {
            set: Vec::new(),
            removed: vec![key.0],
        };
        self.change(request, &auth, app_id, change, Mode::Update, "env.delete")
            .await?;
        Ok(NoContent::NoContent)
    }
}
