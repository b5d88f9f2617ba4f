//! `/api/paas/applications/:id/builds`: build history and stored logs.

use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_store::{apps, builds, releases};

use super::{Tag, page};
use crate::auth::BearerAuth;
use crate::dto::apps::{BuildLog, BuildView};
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

    /// Get a build's stored log
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
    ) -> ApiResult<Json<BuildLog>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let log = builds::log(&mut conn, auth.user_id(), app.id, build_id.0)
            .await
            .or_not_found("build")?;
        Ok(Json(BuildLog {
            build_id: build_id.0,
            log,
        }))
    }
}
