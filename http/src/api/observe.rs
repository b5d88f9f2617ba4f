//! `/api/paas/applications/:id/{logs,metrics,overview}`: what an application writes
//! (the node's agent ships its containers' output into a capped stream per
//! application) and what it uses (from the node's heartbeats).

use futures::StreamExt;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_jobs::LogLine;
use skypanel_store::apps::Application;
use skypanel_store::catalog::Plan;
use skypanel_store::{apps, catalog, instances, releases};

use super::Tag;
use super::streams::JsonOrEvents;
use crate::auth::BearerAuth;
use crate::dto::domains::ReleaseView;
use crate::dto::observe::{AppLogLine, AppMetrics, AppOverview, InstanceUsage, UsagePoint};
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

/// How often a followed log is read again.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(300);
/// The most lines one read answers.
const MAX_TAIL: usize = 10_000;

pub struct ObserveApi {
    pub state: AppState,
}

fn unavailable(err: skypanel_jobs::Error) -> ApiError {
    tracing::warn!(error = %err, "application logs unavailable");
    ApiError::unavailable("unavailable", "application logs cannot be read right now")
}

#[OpenApi(prefix_path = "/paas/applications", tag = "Tag::Observability")]
impl ObserveApi {
    /// An application's runtime logs
    ///
    /// The last `tail` lines (100 by default, at most 10,000) its containers
    /// wrote, oldest first. With `follow=true`, a Server-Sent Events stream:
    /// those lines, then each new one as it comes.
    #[oai(
        path = "/:id/logs",
        method = "get",
        operation_id = "getApplicationLogs"
    )]
    async fn logs(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        tail: Query<Option<i64>>,
        follow: Query<Option<bool>>,
    ) -> ApiResult<JsonOrEvents<Vec<AppLogLine>, AppLogLine>> {
        let tail = match tail.0 {
            None => 100,
            Some(n) if (0..=MAX_TAIL as i64).contains(&n) => n as usize,
            Some(_) => {
                return Err(ApiError::invalid(
                    "tail",
                    format!("tail is a number of lines from 0 to {MAX_TAIL}"),
                ));
            }
        };
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        drop(conn);
        let streams = self.state.log_streams()?.clone();
        let first = if tail == 0 {
            Vec::new()
        } else {
            streams.tail(app.id, tail).await.map_err(unavailable)?
        };
        if !follow.0.unwrap_or(false) {
            return Ok(JsonOrEvents::Json(
                first.into_iter().map(Into::into).collect(),
            ));
        }
        // Where to go on from: the last line shown, or the stream's end now.
        let start = match first.last() {
            Some(line) => line.id.clone(),
            None => streams
                .tail(app.id, 1)
                .await
                .map_err(unavailable)?
                .pop()
                .map_or_else(|| "0-0".to_string(), |l| l.id),
        };
        let app_id = app.id;
        let later = futures::stream::unfold(start, move |last| {
            let streams = streams.clone();
            async move {
                loop {
                    match streams.after(app_id, &last, 1000).await {
                        Ok(lines) if !lines.is_empty() => {
                            let next = lines.last().map(|l| l.id.clone()).unwrap_or(last);
                            return Some((futures::stream::iter(lines), next));
                        }
                        Ok(_) => tokio::time::sleep(FOLLOW_EVERY).await,
                        Err(err) => {
                            tracing::warn!(error = %err, "a followed log stopped");
                            return None;
                        }
                    }
                }
            }
        })
        .flatten();
        let events = futures::stream::iter(first)
            .chain(later)
            .map(AppLogLine::from)
            .boxed();
        Ok(JsonOrEvents::Events(events))
    }

    /// An application's resource use
    ///
    /// Each instance's CPU and memory at the node's last heartbeat, the
    /// plan's limits, and the application's totals over the recent
    /// heartbeats (oldest first).
    #[oai(
        path = "/:id/metrics",
        method = "get",
        operation_id = "getApplicationMetrics"
    )]
    async fn metrics(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<AppMetrics>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let plan = catalog::get_plan(&mut conn, app.plan_id).await?;
        drop(conn);
        Ok(Json(self.metrics_of(&app, &plan).await?))
    }

    /// An application's overview, in one read
    ///
    /// What a dashboard shows of one application: its instances as the node
    /// last reported them (node, state, restarts), its resource use (as
    /// `metrics`), and the release it runs (`null` before its first).
    #[oai(
        path = "/:id/overview",
        method = "get",
        operation_id = "getApplicationOverview"
    )]
    async fn overview(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<AppOverview>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let plan = catalog::get_plan(&mut conn, app.plan_id).await?;
        let instances = instances::list_for_owner(&mut conn, auth.user_id(), app.id).await?;
        let current_release = match app.current_release_id {
            Some(release) => Some(ReleaseView::of(
                releases::get(&mut conn, release).await?,
                Some(release),
            )),
            None => None,
        };
        drop(conn);
        Ok(Json(AppOverview {
            metrics: self.metrics_of(&app, &plan).await?,
            instances: instances.into_iter().map(Into::into).collect(),
            current_release,
        }))
    }
}

impl ObserveApi {
    /// The application's figures from its node's heartbeats.
    async fn metrics_of(&self, app: &Application, plan: &Plan) -> ApiResult<AppMetrics> {
        let samples = match app.node_id {
            Some(node) => self.state.orchestrator()?.usage(node, app.id).await?,
            None => Vec::new(),
        };
        let instances = samples
            .last()
            .map(|s| {
                s.instances
                    .iter()
                    .map(|(instance, release, state, cpu, memory)| InstanceUsage {
                        instance: *instance,
                        release: *release,
                        state: state.clone(),
                        cpu_percent: *cpu,
                        memory_used_mb: *memory,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let history = samples
            .iter()
            .map(|s| UsagePoint {
                at: s.at,
                cpu_percent: s.instances.iter().map(|i| i.3).sum(),
                memory_used_mb: s.instances.iter().map(|i| i.4).sum(),
            })
            .collect();
        Ok(AppMetrics {
            application_id: app.id,
            instance_count: app.instance_count,
            cpu_limit_millicores: plan.cpu_limit,
            memory_limit_mb: plan.memory_limit,
            sampled_at: samples.last().map(|s| s.at),
            instances,
            history,
        })
    }
}

impl From<LogLine> for AppLogLine {
    fn from(l: LogLine) -> Self {
        Self {
            id: l.id,
            timestamp: l.timestamp,
            instance: l.instance,
            release: l.release,
            process: l.process,
            stream: l.stream,
            line: l.line,
        }
    }
}
