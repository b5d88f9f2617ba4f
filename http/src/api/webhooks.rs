//! Auto-deploy from git pushes. A git host (GitHub, Gitea, GitLab with its
//! GitHub-compatible mode) posts its push event to
//! `/api/paas/webhooks/git/:appId`, signed with the application's secret
//! (`X-Hub-Signature-256`). A push to the application's branch deploys that
//! commit when the application's `auto_deploy` is on; other events and other
//! branches are acknowledged and ignored. A bad signature (or an unknown
//! application, which looks the same) answers 401.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use serde::Deserialize;
use skypanel_actors::AppRequest;
use skypanel_domain::credentials::generate_token;
use skypanel_domain::signatures;
use skypanel_store::apps;

use super::app_commands::through_actor;
use super::{Audit, Tag};
use crate::auth::BearerAuth;
use crate::body::{JsonBytes, parse};
use crate::dto::webhooks::{DeployHook, PushEvent, WebhookAnswer};
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct WebhooksApi {
    pub state: AppState,
}

/// The fields of a push event this platform reads.
#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    reference: String,
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
}

fn refused() -> ApiError {
    ApiError::unauthorized("the signature does not match this application's webhook secret")
}

impl WebhooksApi {
    /// The application's webhook secret, made on first use.
    async fn secret(&self, owner: i64, app: i64, fresh: bool) -> ApiResult<String> {
        let candidate = generate_token("whsec_");
        let ad = apps::webhook_secret_associated_data(app);
        let sealed = self.state.secrets().seal_str(&candidate, &ad);
        let mut conn = self.state.store().conn().await?;
        let stored = apps::set_webhook_secret(&mut conn, owner, app, &sealed, !fresh)
            .await
            .or_not_found("application")?;
        self.state
            .secrets()
            .open_str(&stored, &ad)
            .map_err(ApiError::internal)
    }

    fn hook(&self, app: i64, secret: String) -> DeployHook {
        DeployHook {
            url: format!(
                "{}/api/paas/webhooks/git/{app}",
                self.state.settings().public_url
            ),
            secret,
            content_type: "application/json".into(),
            events: vec!["push".into()],
        }
    }
}

#[OpenApi(tag = "Tag::Webhooks")]
impl WebhooksApi {
    /// Receive a git host's push event
    ///
    /// Authenticated by its signature: `X-Hub-Signature-256: sha256=<HMAC-SHA256
    /// of the body with the application's webhook secret>`. A push to the
    /// application's branch deploys the pushed commit when `auto_deploy` is on.
    #[oai(
        path = "/paas/webhooks/git/:appId",
        method = "post",
        operation_id = "receiveGitPush"
    )]
    async fn receive(
        &self,
        request: &Request,
        #[oai(name = "appId")] app_id: Path<i64>,
        #[oai(name = "X-Hub-Signature-256")] signature: Header<Option<String>>,
        #[oai(name = "X-GitHub-Event")] event: Header<Option<String>>,
        body: JsonBytes<PushEvent>,
    ) -> ApiResult<WebhookAnswer> {
        let mut conn = self.state.store().conn().await?;
        let (app, sealed) = apps::with_webhook_secret(&mut conn, app_id.0)
            .await
            .map_err(|_| refused())?;
        drop(conn);
        let secret = sealed
            .and_then(|s| {
                self.state
                    .secrets()
                    .open_str(&s, &apps::webhook_secret_associated_data(app.id))
                    .ok()
            })
            .ok_or_else(refused)?;
        let header = signature.0.ok_or_else(refused)?;
        if !signatures::verify(secret.as_bytes(), &body.bytes, &header) {
            return Err(refused());
        }
        let ignored = |why: &str| Ok(WebhookAnswer::Ignored(Json(why.to_string())));
        match event.0.as_deref() {
            None | Some("push") => {}
            Some("ping") => return ignored("pong"),
            Some(other) => return ignored(&format!("{other} events do not deploy")),
        }
        let push: Push = parse(&body.bytes)?;
        if push.deleted {
            return ignored("a deleted branch does not deploy");
        }
        if push.reference != format!("refs/heads/{}", app.git_branch) {
            return ignored(&format!(
                "a push to {} is not to the application's branch {}",
                push.reference, app.git_branch
            ));
        }
        if !app.auto_deploy {
            return ignored("auto_deploy is off for this application");
        }
        let commit = push
            .after
            .filter(|sha| sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()));
        // The push acts for the application's owner.
        let deploy = AppRequest::Deploy {
            by: app.user_id,
            commit,
        };
        let accepted = through_actor(&self.state, request, app.user_id, app.id, deploy).await?;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, app.user_id, "app.push_deploy")
            .on("application", app.id)
            .write(&mut conn)
            .await;
        let build = accepted
            .build
            .ok_or_else(|| ApiError::internal("a push deploy started no build"))?;
        Ok(WebhookAnswer::Deploying(Json(Box::new(build.into()))))
    }

    /// Get the application's push webhook (URL and secret)
    ///
    /// Give both to the git host (GitHub: Settings → Webhooks, content type
    /// `application/json`, the push event). The secret is made on first use.
    #[oai(
        path = "/paas/applications/:id/deploy-hook",
        method = "get",
        operation_id = "getDeployHook"
    )]
    async fn get_hook(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<DeployHook>> {
        let secret = self.secret(auth.user_id(), id.0, false).await?;
        Ok(Json(self.hook(id.0, secret)))
    }

    /// Replace the application's webhook secret
    #[oai(
        path = "/paas/applications/:id/deploy-hook/rotate",
        method = "post",
        operation_id = "rotateDeployHook"
    )]
    async fn rotate_hook(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<Json<DeployHook>> {
        let secret = self.secret(auth.user_id(), id.0, true).await?;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, auth.user_id(), "app.deploy_hook_rotated")
            .on("application", id.0)
            .write(&mut conn)
            .await;
        Ok(Json(self.hook(id.0, secret)))
    }
}
