//! `/api/paas/github/*` and `/api/admin/github`: the platform's GitHub App.
//! An admin configures the App; a customer installs it on GitHub
//! (`authorize` → GitHub → `callback`, a single-use `state` bound to the
//! customer, and the customer's own authorization proving which
//! installations they reach), lists the repositories an installation grants
//! and their branches, and creates applications from `owner/name`. The App's
//! webhook deploys pushed commits and says when an installation goes away.

use chrono::Duration;
use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use serde::Deserialize;
use skypanel_actors::AppRequest;
use skypanel_domain::credentials::{generate_token, token_digest};
use skypanel_domain::signatures;
use skypanel_store::github::{self as stored, GithubApp};

use super::app_commands::through_actor;
use super::{Audit, NoContent, Tag};
use crate::auth::{AdminAuth, BearerAuth};
use crate::body::{JsonBody, JsonBytes, parse};
use crate::dto::github::*;
use crate::error::{ApiError, ApiResult};
use crate::github::{AppSecrets, Github, GithubError, split_repository};
use crate::state::AppState;

/// How long an authorization's `state` works.
const STATE_MINUTES: i64 = 10;

impl From<GithubError> for ApiError {
    fn from(e: GithubError) -> Self {
        match e {
            GithubError::NotConfigured => {
                ApiError::conflict("github_not_configured", e.to_string(), None)
            }
            GithubError::Unreachable(_) | GithubError::Refused { .. } => {
                ApiError::unavailable("github_unavailable", e.to_string())
            }
            GithubError::NotFound(what) => ApiError::not_found(what),
            GithubError::Broken(_) => ApiError::internal(e),
        }
    }
}

/// A page number and size as GitHub takes them.
fn paging(page: Option<u32>, per_page: Option<u32>) -> ApiResult<(u32, u32)> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(30);
    if !(1..=1000).contains(&page) {
        return Err(ApiError::invalid("page", "a page is 1 to 1000"));
    }
    if !(1..=100).contains(&per_page) {
        return Err(ApiError::invalid("per_page", "per_page is 1 to 100"));
    }
    Ok((page, per_page))
}

/// The installation of the App that grants `full_name` to this customer, or
/// a 404 that does not tell another customer's repository from none.
pub(crate) async fn installation_for(
    state: &AppState,
    github: &Github,
    user_id: i64,
    full_name: &str,
) -> ApiResult<Option<i64>> {
    let Some(installation) = github.repository_installation(full_name).await? else {
        return Ok(None);
    };
    let mut conn = state.store().conn().await?;
    let mine = stored::has_installation(&mut conn, user_id, installation).await?;
    Ok(mine.then_some(installation))
}

pub struct GithubApi {
    pub state: AppState,
}

/// The admin's side: the App's configuration.
pub struct AdminGithubApi {
    pub state: AppState,
}

impl AdminGithubApi {
    fn view(&self, app: Option<GithubApp>) -> GithubAppView {
        let settings = self.state.settings();
        let urls = &settings.github;
        GithubAppView {
            configured: app.is_some(),
            app_id: app.as_ref().map(|a| a.app_id),
            slug: app.as_ref().map(|a| a.slug.clone()),
            client_id: app.as_ref().map(|a| a.client_id.clone()),
            updated_at: app.as_ref().map(|a| a.updated_at),
            api_url: urls.api.clone(),
            web_url: urls.web.clone(),
            callback_url: format!("{}/api/paas/github/callback", settings.public_url),
            webhook_url: format!("{}/api/paas/github/webhook", settings.public_url),
        }
    }
}

#[OpenApi(tag = "Tag::AdminGithub")]
impl AdminGithubApi {
    /// The platform's GitHub App (admin)
    ///
    /// No secrets; the URLs to enter in the App's settings on GitHub.
    #[oai(path = "/admin/github", method = "get", operation_id = "getGithubApp")]
    async fn get_app(&self, _admin: AdminAuth) -> ApiResult<Json<GithubAppView>> {
        let mut conn = self.state.store().conn().await?;
        Ok(Json(self.view(stored::app(&mut conn).await?)))
    }

    /// Configure the platform's GitHub App (admin)
    ///
    /// The client secret, private key and webhook secret are sealed at rest
    /// and never shown again.
    #[oai(path = "/admin/github", method = "put", operation_id = "setGithubApp")]
    async fn set_app(
        &self,
        request: &Request,
        admin: AdminAuth,
        body: JsonBody<SetGithubAppRequest>,
    ) -> ApiResult<Json<GithubAppView>> {
        let b = body.0;
        let slug = b.slug.trim();
        if slug.is_empty()
            || slug.len() > 100
            || !slug
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        {
            return Err(ApiError::invalid(
                "slug",
                "the App's slug is lowercase letters, digits and dashes",
            ));
        }
        let client_id = b.client_id.trim();
        if client_id.is_empty() || client_id.chars().any(char::is_whitespace) {
            return Err(ApiError::invalid("client_id", "a client id has no spaces"));
        }
        if b.app_id < 1 {
            return Err(ApiError::invalid(
                "app_id",
                "the App's id is a positive number",
            ));
        }
        // The key must sign, or every build and listing would fail later.
        crate::github::app_jwt(b.app_id, &b.private_key).map_err(|_| {
            ApiError::invalid(
                "private_key",
                "not an RSA private key in PEM (the .pem file GitHub gives for the App)",
            )
        })?;
        for (field, value) in [
            ("client_secret", &b.client_secret),
            ("webhook_secret", &b.webhook_secret),
        ] {
            if value.trim().is_empty() {
                return Err(ApiError::invalid(field, "cannot be empty"));
            }
        }
        let secrets = serde_json::to_string(&AppSecrets {
            client_secret: b.client_secret,
            private_key: b.private_key,
            webhook_secret: b.webhook_secret,
        })
        .map_err(ApiError::internal)?;
        let key = self.state.secrets().clone();
        let seal = move |id: i64| key.seal_str(&secrets, &GithubApp::secrets_associated_data(id));
        let mut conn = self.state.store().conn().await?;
        let app = stored::set_app(
            &mut conn,
            b.app_id,
            slug,
            client_id,
            &seal,
            self.state.now(),
        )
        .await?;
        Audit::by(request, admin.0.user_id, "github.app_set")
            .with(serde_json::json!({"app_id": app.app_id, "slug": app.slug}))
            .write(&mut conn)
            .await;
        Ok(Json(self.view(Some(app))))
    }

    /// Remove the platform's GitHub App (admin)
    ///
    /// Applications keep their repositories, but builds cannot clone private
    /// ones and pushes do not deploy until an App is configured again.
    #[oai(
        path = "/admin/github",
        method = "delete",
        operation_id = "deleteGithubApp"
    )]
    async fn delete_app(&self, request: &Request, admin: AdminAuth) -> ApiResult<NoContent> {
        let mut conn = self.state.store().conn().await?;
        if !stored::remove_app(&mut conn).await? {
            return Err(ApiError::not_found("GitHub App"));
        }
        Audit::by(request, admin.0.user_id, "github.app_removed")
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }
}

impl GithubApi {
    /// Acts on a push: deploys every connected application on that
    /// repository's branch with `auto_deploy` on.
    async fn on_push(
        &self,
        request: &Request,
        bytes: &[u8],
        installation: i64,
    ) -> ApiResult<GithubDelivery> {
        #[derive(Deserialize)]
        struct Repository {
            full_name: String,
        }
        #[derive(Deserialize)]
        struct Push {
            #[serde(rename = "ref")]
            reference: String,
            after: Option<String>,
            #[serde(default)]
            deleted: bool,
            repository: Repository,
        }
        let push: Push = parse(bytes)?;
        let said = |message: String| Ok(GithubDelivery::said(message));
        if push.deleted {
            return said("a deleted branch does not deploy".into());
        }
        let Some(branch) = push.reference.strip_prefix("refs/heads/") else {
            return said(format!("{} is not a branch", push.reference));
        };
        let commit = push
            .after
            .filter(|sha| sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()));
        let mut conn = self.state.store().conn().await?;
        let targets =
            stored::push_targets(&mut conn, installation, &push.repository.full_name, branch)
                .await?;
        drop(conn);
        let mut deploying = Vec::new();
        let mut waiting = Vec::new();
        let mut refused = Vec::new();
        for target in targets {
            let deploy = AppRequest::Deploy {
                by: target.user_id,
                commit: commit.clone(),
            };
            match through_actor(
                &self.state,
                request,
                target.user_id,
                target.application_id,
                deploy,
            )
            .await
            {
                Ok(accepted) => {
                    if let Some(build) = accepted.build {
                        deploying.push(DeployingApp {
                            application_id: target.application_id,
                            build_id: build.id,
                        });
                    } else if let Some(wait) = accepted.waiting {
                        waiting.push(WaitingApp {
                            application_id: target.application_id,
                            position: wait.position,
                            behind: wait.behind,
                        });
                    }
                    let mut conn = self.state.store().conn().await?;
                    Audit::by(request, target.user_id, "app.github_push_deploy")
                        .on("application", target.application_id)
                        .with(serde_json::json!({"commit": commit}))
                        .write(&mut conn)
                        .await;
                }
                // One application that cannot deploy now (suspended, being
                // deleted) does not stop the others; its owner sees why on
                // the application.
                Err(e) => refused.push(format!(
                    "application {}: {}",
                    target.application_id,
                    e.body().message
                )),
            }
        }
        let mut message = format!(
            "{} application(s) deploying {} of {}",
            deploying.len(),
            branch,
            push.repository.full_name
        );
        if !waiting.is_empty() {
            let behind: Vec<String> = waiting
                .iter()
                .map(|w| format!("application {} after {}", w.application_id, w.behind))
                .collect();
            message.push_str(&format!("; waiting: {}", behind.join("; ")));
        }
        if !refused.is_empty() {
            message.push_str(&format!("; not deployed: {}", refused.join("; ")));
        }
        Ok(GithubDelivery {
            message,
            deploying,
            waiting,
        })
    }

    /// An installation removed or suspended on GitHub disconnects its
    /// applications and tells their owners; one unsuspended reconnects them.
    async fn on_installation(&self, action: &str, installation: i64) -> ApiResult<String> {
        let now = self.state.now();
        let mut conn = self.state.store().conn().await?;
        match action {
            "deleted" | "suspend" => {
                let how = if action == "deleted" {
                    "removed"
                } else {
                    "suspended"
                };
                let notice = |app: &stored::Disconnected| {
                    let message = format!(
                        "The GitHub App's installation for {} was {how} on GitHub: pushes no longer deploy {} and its builds cannot clone until the App is installed again.",
                        app.repository, app.name
                    );
                    let data = serde_json::json!({
                        "application_id": app.application_id,
                        "application": app.name,
                        "repository": app.repository,
                    });
                    (message, data)
                };
                let gone =
                    stored::disconnect(&mut conn, installation, action == "deleted", &notice, now)
                        .await?;
                Ok(format!("{} application(s) disconnected", gone.len()))
            }
            "unsuspend" => {
                let back = stored::reconnect(&mut conn, installation).await?;
                Ok(format!("{back} application(s) connected again"))
            }
            other => Ok(format!("installation {other}: nothing to do")),
        }
    }
}

#[OpenApi(tag = "Tag::Github")]
impl GithubApi {
    /// Install and authorize the GitHub App
    ///
    /// Answers `302` to the App's installation page on GitHub with a `state`
    /// that is bound to the caller, works once and for 10 minutes. GitHub
    /// sends the browser back to `callback`. The body carries the same URL
    /// for clients that do not follow redirects.
    #[oai(
        path = "/paas/github/authorize",
        method = "get",
        operation_id = "authorizeGithub"
    )]
    async fn authorize(&self, auth: BearerAuth) -> ApiResult<AuthorizeAnswer> {
        let github = Github::load(&self.state).await?;
        let mut conn = self.state.store().conn().await?;
        let state = generate_token("ghs_");
        let now = self.state.now();
        let expires_at = now + Duration::minutes(STATE_MINUTES);
        stored::create_state(
            &mut conn,
            auth.user_id(),
            &token_digest(&state),
            expires_at,
            now,
        )
        .await?;
        let url = github.install_url(&state);
        Ok(AuthorizeAnswer::Redirect(
            Json(GithubAuthorize {
                url: url.clone(),
                expires_at,
            }),
            url,
        ))
    }

    /// GitHub's redirect after an installation or authorization
    ///
    /// GitHub sends the customer's browser here with the `state` from
    /// `authorize`, a `code` and the `installation_id`. The code is exchanged
    /// for the customer's authorization, which lists the installations they
    /// can reach; those are connected to the customer who asked. A state
    /// that is unknown, used or older than 10 minutes is refused.
    #[oai(
        path = "/paas/github/callback",
        method = "get",
        operation_id = "githubCallback"
    )]
    async fn callback(
        &self,
        request: &Request,
        state: Query<Option<String>>,
        code: Query<Option<String>>,
        installation_id: Query<Option<i64>>,
        setup_action: Query<Option<String>>,
    ) -> ApiResult<Json<GithubConnected>> {
        let bad_state = || {
            ApiError::bad_request(
                "invalid_state",
                "this link is not valid any more (used, older than 10 minutes, or not from this platform); start again at GET /api/paas/github/authorize",
                Some("state"),
            )
        };
        let state_value = state.0.filter(|s| !s.is_empty() && s.len() <= 200);
        let state_value = state_value.ok_or_else(bad_state)?;
        let mut conn = self.state.store().conn().await?;
        let user_id = stored::take_state(&mut conn, &token_digest(&state_value), self.state.now())
            .await?
            .ok_or_else(bad_state)?;
        if setup_action.0.as_deref() == Some("request") {
            return Ok(Json(GithubConnected {
                installations: stored::installations(&mut conn, user_id)
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                message: "the installation waits for an organisation owner's approval on GitHub; authorize again once it is approved".into(),
            }));
        }
        let code = code.0.filter(|c| !c.is_empty() && c.len() <= 200).ok_or_else(|| {
            ApiError::invalid(
                "code",
                "GitHub sent no authorization code: the App must have \"Request user authorization (OAuth) during installation\" on",
            )
        })?;
        drop(conn);
        let github = Github::load(&self.state).await?;
        let reachable = github
            .installations_of_code(&code)
            .await
            .map_err(|e| match e {
                GithubError::Refused {
                    status: 400,
                    message,
                } => ApiError::invalid(
                    "code",
                    format!("GitHub did not accept the authorization code: {message}"),
                ),
                other => other.into(),
            })?;
        if let Some(asked) = installation_id.0
            && !reachable.iter().any(|i| i.id == asked)
        {
            return Err(ApiError::forbidden(format!(
                "installation {asked} is not one your GitHub account can reach"
            )));
        }
        let mut conn = self.state.store().conn().await?;
        for installation in &reachable {
            stored::connect(
                &mut conn,
                user_id,
                installation.id,
                &installation.account.login,
            )
            .await?;
        }
        Audit::by(request, user_id, "github.connect")
            .with(serde_json::json!({
                "installations": reachable.iter().map(|i| i.id).collect::<Vec<_>>()
            }))
            .write(&mut conn)
            .await;
        let installations: Vec<GithubInstallationView> = stored::installations(&mut conn, user_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(Json(GithubConnected {
            message: format!(
                "GitHub connected: {} installation(s); list repositories at GET /api/paas/github/repositories",
                installations.len()
            ),
            installations,
        }))
    }

    /// The caller's connected GitHub installations
    #[oai(
        path = "/paas/github/installations",
        method = "get",
        operation_id = "listGithubInstallations"
    )]
    async fn installations(
        &self,
        auth: BearerAuth,
    ) -> ApiResult<Json<Vec<GithubInstallationView>>> {
        let mut conn = self.state.store().conn().await?;
        Ok(Json(
            stored::installations(&mut conn, auth.user_id())
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// Repositories the caller's installation grants
    ///
    /// One page as GitHub pages them (`page` from 1, `per_page` up to 100).
    /// `installation_id` is needed when the caller connected more than one.
    #[oai(
        path = "/paas/github/repositories",
        method = "get",
        operation_id = "listGithubRepositories"
    )]
    async fn repositories(
        &self,
        auth: BearerAuth,
        installation_id: Query<Option<i64>>,
        page: Query<Option<u32>>,
        per_page: Query<Option<u32>>,
    ) -> ApiResult<Json<GithubRepositories>> {
        let (page, per_page) = paging(page.0, per_page.0)?;
        let mut conn = self.state.store().conn().await?;
        let mine = stored::installations(&mut conn, auth.user_id()).await?;
        let installation = match installation_id.0 {
            Some(id) if mine.iter().any(|i| i.installation_id == id) => id,
            Some(_) => return Err(ApiError::not_found("installation")),
            None => match mine.as_slice() {
                [] => {
                    return Err(ApiError::conflict(
                        "github_not_connected",
                        "connect GitHub first: GET /api/paas/github/authorize",
                        None,
                    ));
                }
                [one] => one.installation_id,
                several => {
                    return Err(ApiError::invalid(
                        "installation_id",
                        format!(
                            "you connected {} installations; name one (GET /api/paas/github/installations)",
                            several.len()
                        ),
                    ));
                }
            },
        };
        drop(conn);
        let github = Github::load(&self.state).await?;
        let listed = github.repositories(installation, page, per_page).await?;
        Ok(Json(GithubRepositories {
            installation_id: installation,
            page,
            per_page,
            total_count: listed.total_count,
            next_page: listed.has_next.then_some(page + 1),
            repositories: listed
                .items
                .into_iter()
                .map(|r| GithubRepositoryView {
                    full_name: r.full_name,
                    owner: r.owner.login,
                    name: r.name,
                    private: r.private,
                    default_branch: r.default_branch,
                })
                .collect(),
        }))
    }

    /// Branches of a repository the caller's installation grants
    #[oai(
        path = "/paas/github/repositories/:owner/:repo/branches",
        method = "get",
        operation_id = "listGithubBranches"
    )]
    async fn branches(
        &self,
        auth: BearerAuth,
        owner: Path<String>,
        repo: Path<String>,
        page: Query<Option<u32>>,
        per_page: Query<Option<u32>>,
    ) -> ApiResult<Json<GithubBranches>> {
        let (page, per_page) = paging(page.0, per_page.0)?;
        let full_name = format!("{}/{}", owner.0, repo.0);
        if split_repository(&full_name).is_none() {
            return Err(ApiError::not_found("repository"));
        }
        let github = Github::load(&self.state).await?;
        let installation = installation_for(&self.state, &github, auth.user_id(), &full_name)
            .await?
            .ok_or_else(|| ApiError::not_found("repository"))?;
        let listed = github
            .branches(installation, &full_name, page, per_page)
            .await?;
        Ok(Json(GithubBranches {
            repository: full_name,
            page,
            per_page,
            next_page: listed.has_next.then_some(page + 1),
            branches: listed
                .items
                .into_iter()
                .map(|b| GithubBranchView {
                    name: b.name,
                    commit_sha: b.commit.sha,
                    protected: b.protected,
                })
                .collect(),
        }))
    }

    /// Receive the GitHub App's webhook deliveries
    ///
    /// Authenticated by `X-Hub-Signature-256` (HMAC-SHA256 of the body with
    /// the App's webhook secret). `push` deploys the pushed commit to every
    /// connected application on that branch with `auto_deploy` on;
    /// `installation` `deleted`/`suspend` disconnects applications and tells
    /// their owners. A delivery (`X-GitHub-Delivery`) acts once.
    #[oai(
        path = "/paas/github/webhook",
        method = "post",
        operation_id = "receiveGithubWebhook"
    )]
    async fn webhook(
        &self,
        request: &Request,
        #[oai(name = "X-Hub-Signature-256")] signature: Header<Option<String>>,
        #[oai(name = "X-GitHub-Event")] event: Header<Option<String>>,
        #[oai(name = "X-GitHub-Delivery")] delivery: Header<Option<String>>,
        body: JsonBytes<GithubEvent>,
    ) -> ApiResult<Json<GithubDelivery>> {
        let refused = || {
            ApiError::unauthorized("the signature does not match the GitHub App's webhook secret")
        };
        let github = match Github::load(&self.state).await {
            Ok(github) => github,
            Err(GithubError::NotConfigured) => return Err(refused()),
            Err(e) => return Err(e.into()),
        };
        let header = signature.0.ok_or_else(refused)?;
        if !signatures::verify(github.webhook_secret().as_bytes(), &body.bytes, &header) {
            return Err(refused());
        }
        let event = event.0.unwrap_or_default();
        let said = |message: &str| Ok(Json(GithubDelivery::said(message)));
        let delivery = delivery
            .0
            .filter(|d| !d.is_empty() && d.len() <= 100)
            .ok_or_else(|| ApiError::invalid("X-GitHub-Delivery", "a delivery has an id"))?;
        let mut conn = self.state.store().conn().await?;
        if !stored::first_delivery(&mut conn, &delivery, &event, self.state.now()).await? {
            return said("this delivery was acted on already");
        }
        drop(conn);
        #[derive(Deserialize)]
        struct Installation {
            id: i64,
        }
        #[derive(Deserialize)]
        struct Envelope {
            installation: Option<Installation>,
            action: Option<String>,
        }
        let envelope: Envelope = parse(&body.bytes)?;
        let Some(installation) = envelope.installation else {
            return said("an event without an installation does nothing");
        };
        match event.as_str() {
            "ping" => said("pong"),
            "push" => Ok(Json(
                self.on_push(request, &body.bytes, installation.id).await?,
            )),
            "installation" => {
                let action = envelope.action.unwrap_or_default();
                let message = self.on_installation(&action, installation.id).await?;
                said(&message)
            }
            other => said(&format!("{other} events do nothing here")),
        }
    }
}

/// Gives a build of a GitHub application its clone token as its lease is
/// handed out: minted now for that one repository (read only, an hour),
/// never stored or logged. When none can be had, the build is told why and
/// fails with it instead of a bare authentication error from git.
pub(crate) async fn grant_clone_token(
    state: &AppState,
    spec: &mut skypanel_protocol::task::BuildSpec,
) {
    let refused = |why: String| Some(format!("the GitHub repository cannot be cloned: {why}"));
    let link = match state.store().conn().await {
        Ok(mut conn) => stored::app_links(&mut conn, &[spec.app_id]).await,
        Err(e) => Err(e),
    };
    let link = match link {
        Ok(links) => match links.into_iter().next() {
            Some(link) => link,
            None => return,
        },
        Err(e) => {
            spec.git_token_refused = refused(format!("the platform's database: {e}"));
            return;
        }
    };
    if link.disconnected_at.is_some() {
        spec.git_token_refused = refused(format!(
            "the GitHub App's installation for {} was removed or suspended; install it again",
            link.repository
        ));
        return;
    }
    let github = Github::load(state).await.map_err(|e| e.to_string());
    let minted = match github {
        Ok(github) => github
            .installation_token(link.installation_id, Some(&link.repository))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match minted {
        Ok(token) => spec.git_token = Some(token),
        Err(why) => spec.git_token_refused = refused(why),
    }
}
