//! `/api/paas/applications/:id/builds`: build history and stored logs.

use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_store::{apps, builds, releases, tasks};

use super::{Tag, page};
use crate::auth::BearerAuth;
use futures::StreamExt;

use super::streams::JsonOrEvents;
use crate::dto::apps::{BuildLog, BuildLogEvent, BuildView, ReleaseLog};
use crate::dto::domains::ReleaseView;
use crate::error::{ApiResult, OrNotFound};
use crate::state::AppState;

pub struct BuildsApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/paas/applications", tag = "Tag::Builds")]
impl BuildsApi {
    /// List an application's builds, newest first
    #[oai(path = "/:id/builds", method = "get", operation_id = "listBuilds")]
    async fn list(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<BuildView>>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let list = builds::list(&mut conn, auth.user_id(), app.id, page(limit.0, offset.0)).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Get one build
    #[oai(
        path = "/:id/builds/:buildId",
        method = "get",
        operation_id = "getBuild"
    )]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        #[oai(name = "buildId")] build_id: Path<i64>,
    ) -> ApiResult<Json<BuildView>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let build = builds::get(&mut conn, auth.user_id(), app.id, build_id.0)
            .await
            .or_not_found("build")?;
        Ok(Json(build.into()))
    }

    /// List an application's releases, newest first
    #[oai(
        path = "/:id/releases",
        method = "get",
        operation_id = "listReleases",
        tag = "Tag::Releases"
    )]
    async fn releases(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<ReleaseView>>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let list =
            releases::list(&mut conn, auth.user_id(), app.id, page(limit.0, offset.0)).await?;
        Ok(Json(
            list.into_iter()
                .map(|r| ReleaseView::of(r, app.current_release_id))
                .collect(),
        ))
    }

    /// Get a release's rollout log
    ///
    /// What its rollouts wrote: the release phase's output (`[release] …`)
    /// and the instances starting. Follow `status` (`pending` until the
    /// first rollout ends) to know when it is complete.
    #[oai(
        path = "/:id/releases/:version/log",
        method = "get",
        operation_id = "getReleaseLog",
        tag = "Tag::Releases"
    )]
    async fn release_log(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        version: Path<i32>,
    ) -> ApiResult<Json<ReleaseLog>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let release = releases::by_version(&mut conn, app.id, version.0)
            .await
            .or_not_found("release")?;
        let lines = tasks::rollout_log(&mut conn, app.id, release.version).await?;
        Ok(Json(ReleaseLog {
            version: release.version,
            status: release.status,
            failure: release.failure,
            log: lines.join("\n"),
        }))
    }

    /// Get a build's log
    ///
    /// The stored log (capped at the platform's limit). With `follow=true`,
    /// a Server-Sent Events stream: the log so far, then each line as the
    /// node sends it, and a last event with the build's final status.
    #[oai(
        path = "/:id/builds/:buildId/logs",
        method = "get",
        operation_id = "getBuildLog"
    )]
    async fn logs(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        #[oai(name = "buildId")] build_id: Path<i64>,
        follow: Query<Option<bool>>,
    ) -> ApiResult<JsonOrEvents<BuildLog, BuildLogEvent>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let log = builds::log(&mut conn, auth.user_id(), app.id, build_id.0)
            .await
            .or_not_found("build")?;
        if !follow.0.unwrap_or(false) {
            return Ok(JsonOrEvents::Json(BuildLog {
                build_id: build_id.0,
                log,
            }));
        }
        let follower = LogFollower::new(self.state.clone(), auth.user_id(), app.id, build_id.0);
        let events = futures::stream::unfold(follower, |mut f| async move {
            let events = f.next_events().await?;
            Some((futures::stream::iter(events), f))
        })
        .flatten()
        .boxed();
        Ok(JsonOrEvents::Events(events))
    }
}

/// Follows a build's stored log from a byte offset until the build ends.
pub(crate) struct LogFollower {
    state: AppState,
    owner: i64,
    app: i64,
    build: i64,
    offset: i64,
    done: bool,
}

/// How often a followed build's log is read again.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(300);

impl LogFollower {
    /// Follows build `build` of `owner`'s application `app` from its start.
    pub(crate) fn new(state: AppState, owner: i64, app: i64, build: i64) -> Self {
        Self {
            state,
            owner,
            app,
            build,
            offset: 0,
            done: false,
        }
    }

    /// The next events, waiting for some; `None` once the stream is over.
    pub(crate) async fn next_events(&mut self) -> Option<Vec<BuildLogEvent>> {
        if self.done {
            return None;
        }
        loop {
            let read = async {
                let mut conn = self.state.store().conn().await?;
                builds::log_since(&mut conn, self.owner, self.app, self.build, self.offset).await
            };
            let (text, status, length) = match read.await {
                Ok(part) => part,
                Err(err) => {
                    tracing::warn!(build_id = self.build, error = %err, "a followed build log stopped");
                    return None;
                }
            };
            self.offset = length;
            let mut events: Vec<BuildLogEvent> = text
                .split('\n')
                .filter(|l| !l.is_empty())
                .map(|l| BuildLogEvent {
                    line: Some(l.to_string()),
                    status: None,
                })
                .collect();
            if !matches!(status.as_str(), "pending" | "building") {
                self.done = true;
                events.push(BuildLogEvent {
                    line: None,
                    status: Some(status),
                });
            }
            if !events.is_empty() {
                return Some(events);
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }
}
