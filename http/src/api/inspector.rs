//! `/api/admin/inspector/...`: the JSON behind the admin inspector page
//! (`/admin`): the queues (counts, latest failed and dead jobs, retry and
//! kill), the live actor tree, and one application's state, releases,
//! tasks and recent logs. Admin only.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use skypanel_jobs::{Moved, QUEUES};
use skypanel_store::{apps, releases, tasks};

use super::{Audit, NoContent, Tag};
use crate::auth::AdminAuth;
use crate::dto::inspector::*;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

/// Applications the list shows.
const APPS_LISTED: i64 = 200;

pub struct InspectorApi {
    pub state: AppState,
}

fn known_queue(queue: &str) -> Result<(), ApiError> {
    if QUEUES.contains(&queue) {
        Ok(())
    } else {
        Err(ApiError::not_found("queue"))
    }
}

impl From<&skypanel_store::apps::Application> for InspectedAppSummary {
    fn from(a: &skypanel_store::apps::Application) -> Self {
        Self {
            id: a.id,
            name: a.name.clone(),
            user_id: a.user_id,
            status: a.status.clone(),
            node_id: a.node_id,
            instance_count: a.instance_count,
        }
    }
}

/// A retry's or kill's audit action, and what a job not found is called.
struct Done {
    action: &'static str,
    missing: &'static str,
}

impl InspectorApi {
    /// Answers a retry or kill: 404 when the job was not where it applies,
    /// else audited and 204.
    async fn done(
        &self,
        request: &Request,
        auth: &AdminAuth,
        queue: &str,
        job_id: &str,
        moved: Result<Moved, skypanel_jobs::Error>,
        done: Done,
    ) -> ApiResult<NoContent> {
        let moved = moved.map_err(|e| ApiError::unavailable("redis_unavailable", e.to_string()))?;
        if moved == Moved::NotThere {
            return Err(ApiError::not_found(done.missing));
        }
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, auth.0.user_id, done.action)
            .with(serde_json::json!({"queue": queue, "job_id": job_id}))
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }
}

#[OpenApi(prefix_path = "/admin/inspector", tag = "Tag::AdminInspector")]
impl InspectorApi {
    /// The job queues: counts, and the latest failed and dead jobs
    #[oai(path = "/queues", method = "get", operation_id = "inspectQueues")]
    async fn queues(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<QueueView>>> {
        let list = self
            .state
            .queues()?
            .overview()
            .await
            .map_err(|e| ApiError::unavailable("redis_unavailable", e.to_string()))?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Run a failed or dead job again (first in line, attempts reset)
    #[oai(
        path = "/queues/:queue/jobs/:jobId/retry",
        method = "post",
        operation_id = "retryJob"
    )]
    async fn retry(
        &self,
        request: &Request,
        auth: AdminAuth,
        queue: Path<String>,
        #[oai(name = "jobId")] job_id: Path<String>,
    ) -> ApiResult<NoContent> {
        known_queue(&queue.0)?;
        let moved = self.state.queues()?.retry(&queue.0, &job_id.0).await;
        let done = Done {
            action: "job.retry",
            missing: "failed or dead job",
        };
        self.done(request, &auth, &queue.0, &job_id.0, moved, done)
            .await
    }

    /// Kill a waiting or failed job (it goes to the dead jobs)
    #[oai(
        path = "/queues/:queue/jobs/:jobId/kill",
        method = "post",
        operation_id = "killJob"
    )]
    async fn kill(
        &self,
        request: &Request,
        auth: AdminAuth,
        queue: Path<String>,
        #[oai(name = "jobId")] job_id: Path<String>,
    ) -> ApiResult<NoContent> {
        known_queue(&queue.0)?;
        let now = self.state.now().timestamp();
        let moved = self.state.queues()?.kill(&queue.0, &job_id.0, now).await;
        let done = Done {
            action: "job.kill",
            missing: "waiting or failed job",
        };
        self.done(request, &auth, &queue.0, &job_id.0, moved, done)
            .await
    }

    /// The live supervision trees of every control-plane replica, root first
    #[oai(path = "/actors", method = "get", operation_id = "inspectActors")]
    async fn actors(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<ActorView>>> {
        let list = self.state.orchestrator()?.cluster_actors().await;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Every application, newest first
    #[oai(path = "/apps", method = "get", operation_id = "inspectApps")]
    async fn apps(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<InspectedAppSummary>>> {
        let mut conn = self.state.store().conn().await?;
        let list = apps::list_all(&mut conn, APPS_LISTED).await?;
        Ok(Json(list.iter().map(Into::into).collect()))
    }

    /// One application: state, releases, tasks and recent logs
    #[oai(path = "/apps/:id", method = "get", operation_id = "inspectApp")]
    async fn app(&self, _auth: AdminAuth, id: Path<i64>) -> ApiResult<Json<InspectedApp>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::load(&mut conn, id.0)
            .await
            .or_not_found("application")?;
        let releases = releases::latest_of(&mut conn, app.id, 10).await?;
        let tasks = tasks::recent_for_app(&mut conn, app.id, 20).await?;
        drop(conn);
        let logs = match self.state.log_streams() {
            Ok(streams) => streams
                .tail(app.id, 50)
                .await
                .map(|lines| {
                    lines
                        .into_iter()
                        .map(|l| format!("[{}] {}", l.instance, l.line))
                        .collect()
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        Ok(Json(InspectedApp {
            app: (&app).into(),
            generation: app.generation,
            last_error: app.last_error.clone(),
            releases: releases
                .into_iter()
                .map(|r| InspectedRelease {
                    version: r.version,
                    image_tag: r.image_tag,
                    description: r.description,
                    created_at: r.created_at,
                })
                .collect(),
            tasks: tasks
                .into_iter()
                .map(|t| InspectedTask {
                    id: t.id,
                    kind: t.kind,
                    status: t.status,
                    node_id: t.node_id,
                    attempt: t.attempt,
                    error: t.error,
                    created_at: t.created_at,
                    finished_at: t.finished_at,
                })
                .collect(),
            logs,
        }))
    }
}
