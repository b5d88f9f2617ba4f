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
use skypanel_store::{Conn, github, nodes};

use super::app_commands::through_actor;
use super::github::installation_for;
use super::streams::{Events, changes};
use super::{Audit, Created, Tag, page};
use crate::auth::BearerAuth;
use crate::body::JsonBody;
use crate::dto::apps::*;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::github::{Github, split_repository};
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
        let github_repository = trimmed(b.github_repository);
        if github_repository.is_some()
            && (repo.is_some() || image.is_some() || b.git_oauth_token.is_some())
        {
            return Err(ApiError::invalid(
                "github_repository",
                "an application builds from a GitHub repository, a git URL or an image: one of them",
            ));
        }
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
        let processes = declared_processes(b.processes, repo.is_some())?;
        let release_command = release_command(b.release_command)?;

        // A GitHub repository: one an installation the caller connected grants.
        let (repo, github_link) = match &github_repository {
            None => (repo, None),
            Some(full) => {
                if split_repository(full).is_none() {
                    return Err(ApiError::invalid(
                        "github_repository",
                        "a GitHub repository is owner/name",
                    ));
                }
                let github = Github::load(&self.state).await?;
                let installation =
                    installation_for(&self.state, &github, auth.user_id(), full)
                        .await?
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "github_repository",
                                format!(
                                    "none of your GitHub installations grants {full}: install the App on it (GET /api/paas/github/authorize)"
                                ),
                            )
                        })?;
                (
                    Some(github.clone_url(full)),
                    Some((installation, full.clone())),
                )
            }
        };
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
            processes,
            release_command,
        };
        let secrets = self.state.secrets().clone();
        let seal = token.map(|token| {
            move |id: i64| secrets.seal_str(&token, &Application::git_token_associated_data(id))
        });
        let app = match &github_link {
            Some((installation, full)) => {
                github::create_app(&mut conn, &new, *installation, full).await?
            }
            None => {
                apps::create(
                    &mut conn,
                    &new,
                    seal.as_ref().map(|f| f as &(dyn Fn(i64) -> Vec<u8> + Sync)),
                )
                .await?
            }
        };
        Audit::by(request, auth.user_id(), "app.create")
            .on("application", app.id)
            .with(serde_json::json!({"slug": app.slug, "github_repository": github_repository}))
            .write(&mut conn)
            .await;
        let mut views = vec![ApplicationView::from(app)];
        with_github(&mut conn, &mut views).await?;
        Ok(Created::Created(Json(views.remove(0))))
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
        let processes = match Option::<Option<_>>::from(b.processes) {
            Some(Some(p)) => Some(declared_processes(Some(p), final_repo.is_some())?),
            Some(None) => Some(None),
            None => None,
        };
        // Moving to git drops the declared processes: the Procfile decides.
        let processes = if final_repo.is_some() && app.processes.is_some() && processes.is_none() {
            Some(None)
        } else {
            processes
        };
        let release_cmd = match Option::<Option<String>>::from(b.release_command) {
            Some(Some(c)) => Some(release_command(Some(c))?),
            Some(None) => Some(None),
            None => None,
        };
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
            processes,
            release_command: release_cmd,
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
        // Another source ends the link to a GitHub repository.
        if changes.git_repo_url.is_some() || matches!(changes.image, Some(Some(_))) {
            github::unlink_app(&mut conn, app.id).await?;
        }
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
        let mut views = vec![ApplicationView::from(app)];
        let mut conn = self.state.store().conn().await?;
        with_github(&mut conn, &mut views).await?;
        Ok(Json(views.remove(0)))
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
        // Its repository for `git push` goes with it.
        let repository = crate::git::repo::dir(&self.state.settings().git.root, accepted.app.id);
        if let Err(err) = tokio::fs::remove_dir_all(&repository).await
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(app_id = accepted.app.id, error = %err, "cannot remove the application's repository");
        }
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
            let mut views: Vec<ApplicationView> = list.into_iter().map(Into::into).collect();
            with_github(&mut conn, &mut views).await?;
            Ok(views)
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
            let mut views = vec![ApplicationView::from(app)];
            with_github(&mut conn, &mut views).await?;
            Ok(views.remove(0))
        })
    }
}

/// Fills in the GitHub repository of the applications built from one.
pub(crate) async fn with_github(conn: &mut Conn, views: &mut [ApplicationView]) -> ApiResult<()> {
    let ids: Vec<i64> = views.iter().map(|v| v.id).collect();
    for link in github::app_links(conn, &ids).await? {
        if let Some(view) = views.iter_mut().find(|v| v.id == link.application_id) {
            view.github = Some(link.into());
        }
    }
    Ok(())
}

/// An image application's declared processes, checked as a Procfile's
/// would be; a git application's come from its Procfile (422).
fn declared_processes(
    processes: Option<std::collections::BTreeMap<String, String>>,
    git: bool,
) -> ApiResult<Option<serde_json::Value>> {
    let Some(processes) = processes else {
        return Ok(None);
    };
    if git {
        return Err(ApiError::invalid(
            "processes",
            "a git application's processes come from its repository's Procfile",
        ));
    }
    skypanel_protocol::procfile::check(&processes)
        .map_err(|e| ApiError::invalid("processes", e.0))?;
    Ok(Some(serde_json::json!(processes)))
}

/// The release phase's command setting: one line, not blank.
fn release_command(command: Option<String>) -> ApiResult<Option<String>> {
    let Some(command) = command.map(|c| c.trim().to_string()) else {
        return Ok(None);
    };
    skypanel_protocol::procfile::check_command("release", &command)
        .map_err(|e| ApiError::invalid("release_command", e.0))?;
    Ok(Some(command))
}
