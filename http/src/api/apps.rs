//! `/api/paas/applications`: a customer's applications (create, read, update,
//! delete). Every lookup is scoped to the caller: another customer's id is 404.

use futures::future::BoxFuture;
use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_actors::{AppRequest, ConfigChange};
use skypanel_domain::git::{validate_branch, validate_repo_url};
use skypanel_domain::lifecycle::ReleaseKind;
use skypanel_domain::names::{
    clean_text, slug_from_app_name, validate_http_path, validate_image_reference, validate_region,
};
use skypanel_domain::{Invalid, validate_instance_count, validate_port};
use skypanel_store::apps::{self, Application, ApplicationChanges, NewApplication};
use skypanel_store::catalog::{self, Plan};
use skypanel_store::{Conn, nodes};

use super::app_commands::through_actor;
use super::streams::{Events, changes};
use super::{Audit, Created, Tag, page};
use crate::auth::BearerAuth;
use crate::body::JsonBody;
use crate::dto::apps::*;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct AppsApi {
    pub state: AppState,
}

/// An active plan, or 422 on `plan_id`.
pub(crate) async fn usable_plan(conn: &mut Conn, plan_id: i64) -> ApiResult<Plan> {
    match catalog::get_plan(conn, plan_id).await {
        Ok(plan) if plan.is_active => Ok(plan),
        Ok(_) => Err(ApiError::invalid(
            "plan_id",
            format!("plan {plan_id} is not offered any more"),
        )),
        Err(skypanel_store::Error::NotFound) => Err(ApiError::invalid(
            "plan_id",
            format!("no plan has id {plan_id}"),
        )),
        Err(other) => Err(other.into()),
    }
}

/// Checks that `runtime_id` names an active runtime the plan allows (422 on `runtime_id`).
async fn check_runtime(conn: &mut Conn, plan: &Plan, runtime_id: i64) -> ApiResult<()> {
    let runtime = match catalog::get_runtime(conn, runtime_id).await {
        Ok(runtime) => runtime,
        Err(skypanel_store::Error::NotFound) => {
            return Err(ApiError::invalid(
                "runtime_id",
                format!("no runtime has id {runtime_id}"),
            ));
        }
        Err(other) => return Err(other.into()),
    };
    if !runtime.is_active {
        return Err(ApiError::invalid(
            "runtime_id",
            format!("runtime \"{}\" is not offered any more", runtime.name),
        ));
    }
    if !plan.supports_runtime(runtime_id) {
        return Err(ApiError::invalid(
            "runtime_id",
            format!(
                "plan \"{}\" does not support runtime \"{}\"",
                plan.name, runtime.name
            ),
        ));
    }
    Ok(())
}

/// A git access token: non-empty, at most 4096 characters, no whitespace.
fn git_token(token: &str) -> Result<&str, Invalid> {
    let ok = !token.is_empty()
        && token.len() <= 4096
        && !token.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(token)
    } else {
        Err(Invalid::new(
            "git_oauth_token",
            "a token is 1 to 4096 characters without spaces",
        ))
    }
}

fn trimmed(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The one rule about sources: a repository or an image, not both.
fn check_single_source(repo: Option<&str>, image: Option<&str>) -> Result<(), Invalid> {
    if repo.is_some() && image.is_some() {
        Err(Invalid::new(
            "image",
            "an application deploys from a git repository or an image, not both",
        ))
    } else {
        Ok(())
    }
}

#[OpenApi(prefix_path = "/paas/applications", tag = "Tag::Applications")]
impl AppsApi {
    /// List the caller's applications
    #[oai(path = "/", method = "get", operation_id = "listApplications")]
    async fn list(
        &self,
        auth: BearerAuth,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<ApplicationView>>> {
        let read = list_reader(&self.state, auth.user_id(), page(limit.0, offset.0));
        Ok(Json(read().await?))
    }

    /// Watch the caller's applications
    ///
    /// A Server-Sent Events stream of the list (as `GET
    /// /api/paas/applications` answers it, with the same paging): at once,
    /// then again within a second of any change (a status, a release, an
    /// application created or deleted). The web console's card grid reads it.
    #[oai(path = "/stream", method = "get", operation_id = "watchApplications")]
    async fn watch_list(
        &self,
        auth: BearerAuth,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Events<Vec<ApplicationView>>> {
        let read = list_reader(&self.state, auth.user_id(), page(limit.0, offset.0));
        let first = read().await?;
        Ok(Events(changes(first, move || {
            let next = read();
            async move { next.await.ok() }
        })))
    }

    /// Create an application
    ///
    /// The name becomes the slug and the system domain `<slug>.<platform domain>`.
    /// Nothing runs until the first deploy.
    #[oai(path = "/", method = "post", operation_id = "createApplication")]
    async fn create(
        &self,
        request: &Request,
        auth: BearerAuth,
        body: JsonBody<CreateApplicationRequest>,
    ) -> ApiResult<Created<ApplicationView>> {
        let b = body.0;
        let name = clean_text("name", &b.name, 100)?;
        let slug = slug_from_app_name(&name)?;
        let repo = trimmed(b.git_repo_url);
        if let Some(url) = &repo {
            validate_repo_url(url, self.state.settings().git_policy())?;
        }
        let branch = trimmed(b.git_branch).unwrap_or_else(|| "main".into());
        validate_branch(&branch)?;
        let image = trimmed(b.image);
        if let Some(image) = &image {
            validate_image_reference("image", image)?;
        }
        check_single_source(repo.as_deref(), image.as_deref())?;
        let token = b
            .git_oauth_token
            .as_deref()
            .map(git_token)
            .transpose()?
            .map(str::to_string);
        let health = trimmed(b.health_check_path);
        if let Some(path) = &health {
            validate_http_path("health_check_path", path)?;
        }
        let region = b.region.trim().to_string();
        validate_region("region", &region)?;
        let port = validate_port(b.port.unwrap_or(8080))?;
        let instance_count = validate_instance_count(b.instance_count.unwrap_or(1))?;

        let mut conn = self.state.store().conn().await?;
        let quotas = &self.state.settings().quotas;
        crate::quotas::check(
            &mut conn,
            quotas,
            auth.user_id(),
            crate::quotas::Creating::Application,
        )
        .await?;
        let plan = usable_plan(&mut conn, b.plan_id).await?;
        if let Some(runtime_id) = b.runtime_id {
            check_runtime(&mut conn, &plan, runtime_id).await?;
        }
        if !nodes::region_exists(&mut conn, &region).await? {
            return Err(ApiError::invalid(
                "region",
                format!("no node serves region \"{region}\"; see GET /api/paas/regions"),
            ));
        }
        let new = NewApplication {
            user_id: auth.user_id(),
            system_domain: format!("{slug}.{}", self.state.settings().platform_domain),
            name,
            slug,
            runtime_id: b.runtime_id,
            plan_id: plan.id,
            region,
            git_repo_url: repo,
            git_branch: branch,
            image,
            port,
            health_check_path: health,
            auto_deploy: b.auto_deploy.unwrap_or(false),
            instance_count,
        };
        let secrets = self.state.secrets().clone();
        let seal = token.map(|token| {
            move |id: i64| secrets.seal_str(&token, &Application::git_token_associated_data(id))
        });
        let app = apps::create(
            &mut conn,
            &new,
            seal.as_ref().map(|f| f as &(dyn Fn(i64) -> Vec<u8> + Sync)),
        )
        .await?;
        Audit::by(request, auth.user_id(), "app.create")
            .on("application", app.id)
            .with(serde_json::json!({"slug": app.slug}))
            .write(&mut conn)
            .await;
        Ok(Created::Created(Json(app.into())))
    }

    /// Get one of the caller's applications
    #[oai(path = "/:id", method = "get", operation_id = "getApplication")]
    async fn get(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<ApplicationView>> {
        let read = app_reader(&self.state, auth.user_id(), id.0);
        Ok(Json(read().await?))
    }

    /// Watch one of the caller's applications
    ///
    /// A Server-Sent Events stream of the application (as `GET
    /// /api/paas/applications/{id}` answers it): at once, then again within
    /// a second of any change; it ends when the application is deleted.
    #[oai(
        path = "/:id/stream",
        method = "get",
        operation_id = "watchApplication"
    )]
    async fn watch(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Events<ApplicationView>> {
        let read = app_reader(&self.state, auth.user_id(), id.0);
        let first = read().await?;
        Ok(Events(changes(first, move || {
            let next = read();
            async move { next.await.ok() }
        })))
    }

    /// Update an application's settings
    ///
    /// Only the fields sent change; send `null` to clear a nullable one.
    /// Another plan or port makes a release of the serving image (rolled out
    /// at once on a running application, for the next start of a stopped
    /// one; 409 `no_node_available`, nothing changed, when its node has no
    /// room for the new plan); the other settings take effect at the next deploy.
    #[oai(path = "/:id", method = "put", operation_id = "updateApplication")]
    async fn update(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        body: JsonBody<UpdateApplicationRequest>,
    ) -> ApiResult<Json<ApplicationView>> {
        let b = body.0;
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;

        let repo: Option<Option<String>> =
            Option::<Option<String>>::from(b.git_repo_url).map(trimmed);
        if let Some(Some(url)) = &repo {
            validate_repo_url(url, self.state.settings().git_policy())?;
        }
        let image: Option<Option<String>> = Option::<Option<String>>::from(b.image).map(trimmed);
        if let Some(Some(image)) = &image {
            validate_image_reference("image", image)?;
        }
        let final_repo = repo.clone().unwrap_or(app.git_repo_url.clone());
        let final_image = image.clone().unwrap_or(app.image.clone());
        check_single_source(final_repo.as_deref(), final_image.as_deref())?;
        let branch = b.git_branch.map(|b| b.trim().to_string());
        if let Some(branch) = &branch {
            validate_branch(branch)?;
        }
        let health: Option<Option<String>> =
            Option::<Option<String>>::from(b.health_check_path).map(trimmed);
        if let Some(Some(path)) = &health {
            validate_http_path("health_check_path", path)?;
        }
        let port = b.port.map(validate_port).transpose()?;
        let token: Option<Option<String>> = b.git_oauth_token.into();
        let sealed_token = match token {
            Some(Some(token)) => Some(Some(self.state.secrets().seal_str(
                git_token(&token)?,
                &Application::git_token_associated_data(app.id),
            ))),
            Some(None) => Some(None),
            None => None,
        };
        let runtime: Option<Option<i64>> = b.runtime_id.into();
        if b.plan_id.is_some() || matches!(runtime, Some(Some(_))) {
            let plan = usable_plan(&mut conn, b.plan_id.unwrap_or(app.plan_id)).await?;
            if let Some(runtime_id) = runtime.unwrap_or(app.runtime_id) {
                check_runtime(&mut conn, &plan, runtime_id).await?;
            }
        }
        let changes = ApplicationChanges {
            runtime_id: runtime,
            plan_id: b.plan_id,
            git_repo_url: repo,
            git_branch: branch,
            git_oauth_token: sealed_token,
            image,
            port,
            health_check_path: health,
            auto_deploy: b.auto_deploy,
        };
        let before = app;
        let mut app = apps::update(
            &mut conn,
            auth.user_id(),
            before.id,
            &changes,
            self.state.now(),
        )
        .await
        .or_not_found("application")?;
        Audit::by(request, auth.user_id(), "app.update")
            .on("application", app.id)
            .write(&mut conn)
            .await;
        drop(conn);
        if let Some(description) = release_change(&before, &app, &self.state).await?
            && before.current_release_id.is_some()
        {
            app = self
                .release_settings(request, &auth, &before, description)
                .await?;
        }
        Ok(Json(app.into()))
    }

    /// Delete an application
    ///
    /// Its containers are removed by its node, then the application with its
    /// builds, releases, variables and domains. Answers 204 when nothing ran
    /// anywhere (it is gone at once), else 202 with status `deleting`.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteApplication")]
    async fn delete(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<DeleteAnswer> {
        let accepted =
            super::app_commands::delete_through_actor(&self.state, request, auth.user_id(), id.0)
                .await?;
        // Its runtime logs go with it.
        if let Ok(streams) = self.state.log_streams()
            && let Err(err) = streams.remove(accepted.app.id).await
        {
            tracing::warn!(app_id = accepted.app.id, error = %err, "cannot remove the application's logs");
        }
        if accepted.deleted {
            Ok(DeleteAnswer::Deleted)
        } else {
            Ok(DeleteAnswer::Deleting(Json(Box::new(accepted.app.into()))))
        }
    }
}

/// What a settings change means for the running containers: another plan
/// or port is a release ("Change plan to large and port to 3000").
async fn release_change(
    before: &Application,
    after: &Application,
    state: &AppState,
) -> ApiResult<Option<String>> {
    let mut what = Vec::new();
    if after.plan_id != before.plan_id {
        let mut conn = state.store().conn().await?;
        let plan = catalog::get_plan(&mut conn, after.plan_id).await?;
        what.push(format!("plan to {}", plan.name));
    }
    if after.port != before.port {
        what.push(format!("port to {}", after.port));
    }
    Ok((!what.is_empty()).then(|| format!("Change {}", what.join(" and "))))
}

impl AppsApi {
    /// Makes the release a new plan or port needs; when the application's
    /// actor refuses it (no room on its node for the new plan), the plan
    /// and port go back to what they were and the refusal is the answer.
    async fn release_settings(
        &self,
        request: &Request,
        auth: &BearerAuth,
        before: &Application,
        description: String,
    ) -> ApiResult<Application> {
        let configure = AppRequest::Configure(Box::new(ConfigChange {
            env: None,
            kind: ReleaseKind::Config,
            description,
            by: auth.user_id(),
        }));
        match through_actor(&self.state, request, auth.user_id(), before.id, configure).await {
            Ok(accepted) => Ok(accepted.app),
            Err(refused) => {
                let back = ApplicationChanges {
                    plan_id: Some(before.plan_id),
                    port: Some(before.port),
                    ..ApplicationChanges::default()
                };
                let mut conn = self.state.store().conn().await?;
                apps::update(
                    &mut conn,
                    auth.user_id(),
                    before.id,
                    &back,
                    self.state.now(),
                )
                .await?;
                Err(refused)
            }
        }
    }
}

#[derive(poem_openapi::ApiResponse)]
pub enum DeleteAnswer {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
    /// The node is removing the containers; the application disappears after.
    #[oai(status = 202)]
    Deleting(Json<Box<ApplicationView>>),
}

/// Reads a page of the caller's applications, as often as it is called.
fn list_reader(
    state: &AppState,
    user_id: i64,
    page: skypanel_store::Page,
) -> impl Fn() -> BoxFuture<'static, ApiResult<Vec<ApplicationView>>> + Send + 'static {
    let store = state.store().clone();
    move || {
        let store = store.clone();
        Box::pin(async move {
            let mut conn = store.conn().await?;
            let list = apps::list(&mut conn, user_id, page).await?;
            Ok(list.into_iter().map(Into::into).collect())
        })
    }
}

/// Reads one of the caller's applications, as often as it is called.
fn app_reader(
    state: &AppState,
    user_id: i64,
    app_id: i64,
) -> impl Fn() -> BoxFuture<'static, ApiResult<ApplicationView>> + Send + 'static {
    let store = state.store().clone();
    move || {
        let store = store.clone();
        Box::pin(async move {
            let mut conn = store.conn().await?;
            let app = apps::get(&mut conn, user_id, app_id)
                .await
                .or_not_found("application")?;
            Ok(ApplicationView::from(app))
        })
    }
}
