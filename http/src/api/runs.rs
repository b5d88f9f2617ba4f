//! `/api/paas/applications/:id/runs`: one-off commands (`sky run`). Starting
//! one answers 201 with the run and, when attached, the one-time ticket of
//! its session (the WebSocket relay in [`crate::sessions`]). Every run is
//! in the audit log; another customer's application or run is 404.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_actors::runs::RunRequest;
use skypanel_store::{apps, runs};

use super::{Accepted, Audit, Created, Tag, page};
use crate::auth::BearerAuth;
use crate::body::JsonBody;
use crate::dto::runs::{RunCreate, RunSession, RunStarted, RunView};
use crate::error::{ActorNotFound, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct RunsApi {
    pub state: AppState,
}

/// Where an attached run's session is opened.
pub fn session_path(run_id: i64) -> String {
    format!("/api/paas/runs/{run_id}/session")
}

#[OpenApi(prefix_path = "/paas/applications", tag = "Tag::Runs")]
impl RunsApi {
    /// Run a command once in a new container of a release
    ///
    /// The container has the release's image and environment (with `env`
    /// over it), the plan's limits and hardening, no port; it never
    /// restarts. It ends when the command exits, when an attached run's
    /// session closes, or after `ttl_secs`, and is billed per second like
    /// an instance. Attached: open the WebSocket at `session.path` with
    /// `?ticket=` within a minute (messages: see the README); detached:
    /// the output goes to the application's logs as `run.<id>`. At most 5
    /// runs of an application go on at once (409). 409 when the
    /// application has no release or node yet, or is suspended.
    #[oai(path = "/:id/runs", method = "post", operation_id = "createRun")]
    async fn create(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        body: JsonBody<RunCreate>,
    ) -> ApiResult<Created<RunStarted>> {
        let asked = body.0;
        let user = auth.user_id();
        let run_request = RunRequest {
            command: asked.command,
            release: asked.release,
            env: asked.env.unwrap_or_default(),
            attach: asked.attach.unwrap_or(false),
            tty: asked.tty.unwrap_or(false),
            cols: asked.cols.unwrap_or(80),
            rows: asked.rows.unwrap_or(24),
            ttl_secs: asked.ttl_secs,
        };
        let orchestrator = self.state.orchestrator()?;
        let started =
            skypanel_actors::runs::start(orchestrator.context(), user, user, id.0, run_request)
                .await
                .or_not_found("application")?;
        let run = started.run;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, user, "app.run")
            .on("application", run.application_id)
            .with(serde_json::json!({
                "run_id": run.id,
                "release": run.release_version,
                "attach": run.attach,
            }))
            .write(&mut conn)
            .await;
        let session = started.ticket.map(|ticket| RunSession {
            path: session_path(run.id),
            ticket,
        });
        Ok(Created::Created(Json(RunStarted {
            run: RunView::of(run, self.state.now()),
            session,
        })))
    }

    /// The application's runs, newest first
    ///
    /// Who started each, the command, its status, exit code and duration.
    #[oai(path = "/:id/runs", method = "get", operation_id = "listRuns")]
    async fn list(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<RunView>>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let list = runs::list(&mut conn, auth.user_id(), app.id, page(limit.0, offset.0)).await?;
        let now = self.state.now();
        Ok(Json(
            list.into_iter().map(|r| RunView::of(r, now)).collect(),
        ))
    }

    /// One run
    #[oai(path = "/:id/runs/:run", method = "get", operation_id = "getRun")]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        run: Path<i64>,
    ) -> ApiResult<Json<RunView>> {
        let mut conn = self.state.store().conn().await?;
        let run = runs::of_owner(&mut conn, auth.user_id(), id.0, run.0)
            .await
            .or_not_found("run")?;
        Ok(Json(RunView::of(run, self.state.now())))
    }

    /// Stop a run
    ///
    /// Its container is killed; the run ends `failed` ("the run was
    /// stopped"). A run that ended already is answered as it is.
    #[oai(
        path = "/:id/runs/:run/stop",
        method = "post",
        operation_id = "stopRun"
    )]
    async fn stop(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        run: Path<i64>,
    ) -> ApiResult<Accepted<RunView>> {
        let mut conn = self.state.store().conn().await?;
        let run = runs::of_owner(&mut conn, auth.user_id(), id.0, run.0)
            .await
            .or_not_found("run")?;
        drop(conn);
        let run = if runs::is_finished(&run.status) {
            run
        } else {
            let orchestrator = self.state.orchestrator()?;
            let stopped = skypanel_actors::runs::stop(orchestrator.context(), &run)
                .await
                .or_not_found("run")?;
            let mut conn = self.state.store().conn().await?;
            Audit::by(request, auth.user_id(), "app.run.stop")
                .on("application", run.application_id)
                .with(serde_json::json!({"run_id": run.id}))
                .write(&mut conn)
                .await;
            stopped
        };
        Ok(Accepted::Accepted(Json(RunView::of(run, self.state.now()))))
    }
}
