//! `/api/paas/applications/:id/{deploy,restart,stop,start,scale,instances}`:
//! requests to change what runs, carried out by the application's actor. The
//! actor checks the request against the transition table (409 naming the
//! current state), places the application (409 `no_node_available`), and
//! queues the node's work; the answer is 202 with the application as it is now.

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use skypanel_actors::{Accepted as ActorAccepted, AppRequest};
use std::collections::BTreeMap;

use skypanel_protocol::procfile;
use skypanel_store::{apps, instances, releases};

use super::{Audit, Tag};
use crate::auth::BearerAuth;
use crate::body::JsonBody;
use crate::dto::apps::{
    ApplicationView, BuildView, DeployAccepted, FormationRequest, FormationView, InstanceView,
    ProcessTypeView, RollbackRequest, ScaleRequest,
};
use crate::error::{ActorNotFound, ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct AppCommandsApi {
    pub state: AppState,
}

/// 202: the request is accepted and carried out in the background.
#[derive(ApiResponse, Debug)]
pub enum Accepted<T: poem_openapi::types::ToJSON> {
    /// Accepted; follow the application's `status`.
    #[oai(status = 202)]
    Accepted(Json<T>),
}

impl AppCommandsApi {
    /// Checks ownership, then hands the request to the application's actor.
    async fn run(
        &self,
        request: &Request,
        user_id: i64,
        id: i64,
        app_request: AppRequest,
    ) -> ApiResult<ActorAccepted> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, user_id, id)
            .await
            .or_not_found("application")?;
        if matches!(
            app_request,
            AppRequest::Deploy { .. }
                | AppRequest::Rollback { .. }
                | AppRequest::Restart
                | AppRequest::Start
                | AppRequest::Scale(_)
        ) {
            crate::quotas::refuse_suspended(&mut conn, user_id).await?;
        }
        drop(conn);
        let action = match &app_request {
            AppRequest::Deploy { .. } => "app.deploy",
            AppRequest::Rollback { .. } => "app.rollback",
            AppRequest::Configure(_) => "app.configure",
            AppRequest::Restart => "app.restart",
            AppRequest::Stop => "app.stop",
            AppRequest::Start => "app.start",
            AppRequest::Scale(_) => "app.scale",
            AppRequest::Delete => "app.delete",
            AppRequest::CancelBuild(_) => "build.cancel",
            AppRequest::Reconfigure => "app.reconfigure",
            AppRequest::Suspend => "app.suspend",
            AppRequest::Resume => "app.resume",
        };
        let details = match &app_request {
            AppRequest::Scale(formation) => serde_json::json!({"formation": formation}),
            AppRequest::Rollback { version, .. } => serde_json::json!({"release": version}),
            AppRequest::CancelBuild(build) => serde_json::json!({"build_id": build}),
            AppRequest::Deploy {
                commit: Some(commit),
                ..
            } => serde_json::json!({"commit": commit}),
            _ => serde_json::json!({}),
        };
        let accepted = self
            .state
            .orchestrator()?
            .app_request(app.id, app_request)
            .await
            .or_not_found("application")?;
        if let Some(build) = accepted.build.as_ref().filter(|b| b.status == "pending") {
            // A failed push is not the customer's problem: the sweeper queues
            // every unfinished build's job again within half a minute.
            match self.state.queues() {
                Ok(queues) => {
                    if let Err(err) = queues.push_build(build.id).await {
                        tracing::warn!(build_id = build.id, error = %err, "cannot queue the build now; the sweeper will");
                    }
                }
                Err(_) => tracing::warn!(build_id = build.id, "no job queues; the build waits"),
            }
        }
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, user_id, action)
            .on("application", app.id)
            .with(details)
            .write(&mut conn)
            .await;
        Ok(accepted)
    }
}

#[OpenApi(prefix_path = "/paas/applications", tag = "Tag::Applications")]
impl AppCommandsApi {
    /// Deploy the application
    ///
    /// An application with an `image` rolls it out as a new release. One
    /// with a git repository records a build (numbered per application) and
    /// queues it: the repository is cloned and built on a node, and the
    /// image rolled out as a new release without downtime. Follow `status`
    /// (`building`, then `running`, or `failed` with `last_error`) and the
    /// build (`GET .../builds/:buildId`, its log live with `?follow=true`).
    #[oai(
        path = "/:id/deploy",
        method = "post",
        operation_id = "deployApplication"
    )]
    async fn deploy(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<Accepted<DeployAccepted>> {
        let by = auth.user_id();
        let deploy = AppRequest::Deploy { by, commit: None };
        let accepted = self.run(request, auth.user_id(), id.0, deploy).await?;
        Ok(Accepted::Accepted(Json(DeployAccepted {
            release: accepted.release,
            build: accepted.build.map(Into::into),
            application: accepted.app.into(),
            waiting: accepted.waiting.map(Into::into),
        })))
    }

    /// Roll back to an earlier release
    ///
    /// Rolls release N's image out again with the environment variables it
    /// had (they become the application's again), as a new release. Nothing
    /// is rebuilt.
    #[oai(
        path = "/:id/rollback",
        method = "post",
        operation_id = "rollbackApplication"
    )]
    async fn rollback(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        body: JsonBody<RollbackRequest>,
    ) -> ApiResult<Accepted<DeployAccepted>> {
        if body.0.release < 1 {
            return Err(ApiError::invalid("release", "releases are numbered from 1"));
        }
        let rollback = AppRequest::Rollback {
            version: body.0.release,
            by: auth.user_id(),
        };
        let accepted = self
            .run(request, auth.user_id(), id.0, rollback)
            .await
            .map_err(|e| match e {
                ApiError::NotFound(_) => ApiError::not_found("release"),
                other => other,
            })?;
        Ok(Accepted::Accepted(Json(DeployAccepted {
            release: accepted.release,
            build: None,
            application: accepted.app.into(),
            waiting: accepted.waiting.map(Into::into),
        })))
    }

    /// Cancel a build that has not finished
    ///
    /// The node stops the build and removes what it made; the release before
    /// keeps serving. A finished build answers 409.
    #[oai(
        path = "/:id/builds/:buildId/cancel",
        method = "post",
        operation_id = "cancelBuild",
        tag = "Tag::Builds"
    )]
    async fn cancel_build(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        #[oai(name = "buildId")] build_id: Path<i64>,
    ) -> ApiResult<Json<BuildView>> {
        let mut conn = self.state.store().conn().await?;
        // 404 for a build that is not this customer's application's.
        skypanel_store::builds::get(&mut conn, auth.user_id(), id.0, build_id.0)
            .await
            .or_not_found("build")?;
        drop(conn);
        let accepted = self
            .run(
                request,
                auth.user_id(),
                id.0,
                AppRequest::CancelBuild(build_id.0),
            )
            .await?;
        let build = accepted
            .build
            .ok_or_else(|| ApiError::internal("a cancelled build was not answered"))?;
        Ok(Json(build.into()))
    }

    /// Restart the application's containers, one after the other
    #[oai(
        path = "/:id/restart",
        method = "post",
        operation_id = "restartApplication"
    )]
    async fn restart(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<Accepted<ApplicationView>> {
        let accepted = self
            .run(request, auth.user_id(), id.0, AppRequest::Restart)
            .await?;
        Ok(Accepted::Accepted(Json(accepted.app.into())))
    }

    /// Stop the application
    ///
    /// Its containers stop and billing stops; data and settings are kept.
    #[oai(path = "/:id/stop", method = "post", operation_id = "stopApplication")]
    async fn stop(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<Accepted<ApplicationView>> {
        let accepted = self
            .run(request, auth.user_id(), id.0, AppRequest::Stop)
            .await?;
        Ok(Accepted::Accepted(Json(accepted.app.into())))
    }

    /// Start a stopped application
    #[oai(
        path = "/:id/start",
        method = "post",
        operation_id = "startApplication"
    )]
    async fn start(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<Accepted<ApplicationView>> {
        let accepted = self
            .run(request, auth.user_id(), id.0, AppRequest::Start)
            .await?;
        Ok(Accepted::Accepted(Json(accepted.app.into())))
    }

    /// Scale the application to 1 to 10 instances
    ///
    /// A running application is scaled at once; otherwise the count is kept
    /// for its next start or deploy.
    #[oai(
        path = "/:id/scale",
        method = "post",
        operation_id = "scaleApplication"
    )]
    async fn scale(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        body: JsonBody<ScaleRequest>,
    ) -> ApiResult<Accepted<ApplicationView>> {
        let count = skypanel_domain::validate_instance_count(body.0.instance_count)?;
        let web = BTreeMap::from([(procfile::WEB.to_string(), count)]);
        let accepted = self
            .run(request, auth.user_id(), id.0, AppRequest::Scale(web))
            .await?;
        Ok(Accepted::Accepted(Json(accepted.app.into())))
    }

    /// The application's process types and how many of each run
    ///
    /// The types come from the release (its Procfile, or an image
    /// application's declared processes); `web` is always there.
    #[oai(path = "/:id/formation", method = "get", operation_id = "getFormation")]
    async fn formation(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<FormationView>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        Ok(Json(formation_of(&mut conn, &app).await?))
    }

    /// Scale process types
    ///
    /// `{"formation": {"web": 2, "worker": 1}}`: `web` 1 to 10, the other
    /// types 0 to 10; types not named keep their count. Each type must be
    /// in the application's release (422 naming it otherwise). A running
    /// application is scaled at once; otherwise the counts are kept for its
    /// next start or deploy. Every process instance is billed like a web one.
    #[oai(
        path = "/:id/formation",
        method = "patch",
        operation_id = "scaleFormation"
    )]
    async fn scale_formation(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        body: JsonBody<FormationRequest>,
    ) -> ApiResult<Accepted<FormationView>> {
        if body.0.formation.is_empty() {
            return Err(ApiError::invalid(
                "formation",
                "name at least one process type and its count",
            ));
        }
        let accepted = self
            .run(
                request,
                auth.user_id(),
                id.0,
                AppRequest::Scale(body.0.formation),
            )
            .await?;
        let mut conn = self.state.store().conn().await?;
        Ok(Accepted::Accepted(Json(
            formation_of(&mut conn, &accepted.app).await?,
        )))
    }

    /// The application's containers, as its node last reported them
    #[oai(
        path = "/:id/instances",
        method = "get",
        operation_id = "listInstances"
    )]
    async fn instances(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<Json<Vec<InstanceView>>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let list = instances::list_for_owner(&mut conn, auth.user_id(), app.id).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }
}

/// The formation of `app`: the types of its serving release (else its
/// newest) with their counts.
async fn formation_of(
    conn: &mut skypanel_store::Conn,
    app: &skypanel_store::apps::Application,
) -> ApiResult<FormationView> {
    let release = match app.current_release_id {
        Some(id) => Some(releases::get(conn, id).await?),
        None => releases::latest(conn, app.id).await?,
    };
    let (mut declared, release_command) = release
        .as_ref()
        .map(skypanel_actors::processes_and_release_command)
        .unwrap_or_else(|| (app.declared_processes().unwrap_or_default(), None));
    declared.remove(procfile::RELEASE);
    let counts = app.formation();
    let processes = procfile::process_types(&declared)
        .into_iter()
        .map(|process| ProcessTypeView {
            command: declared.get(&process).cloned(),
            quantity: counts.get(&process).copied().unwrap_or(0),
            process,
        })
        .collect();
    Ok(FormationView {
        release: release.map(|r| r.version),
        processes,
        release_command,
    })
}

/// A request to an application's actor from elsewhere in the API (deletion,
/// domains, webhooks), with the same checks and audit.
pub(crate) async fn through_actor(
    state: &AppState,
    request: &Request,
    user_id: i64,
    id: i64,
    app_request: AppRequest,
) -> ApiResult<ActorAccepted> {
    AppCommandsApi {
        state: state.clone(),
    }
    .run(request, user_id, id, app_request)
    .await
}

/// Deletion goes through the actor too (see `apps.rs`).
pub(crate) async fn delete_through_actor(
    state: &AppState,
    request: &Request,
    user_id: i64,
    id: i64,
) -> ApiResult<ActorAccepted> {
    AppCommandsApi {
        state: state.clone(),
    }
    .run(request, user_id, id, AppRequest::Delete)
    .await
}
