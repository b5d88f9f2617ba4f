//! `/api/paas/plans`, `/api/paas/runtimes`, `/api/paas/regions`: what a
//! customer chooses from when creating an application.

use poem_openapi::OpenApi;
use poem_openapi::payload::Json;
use skypanel_store::{catalog, reports};

use super::Tag;
use super::admin_platform::summarize_regions;
use crate::auth::BearerAuth;
use crate::dto::catalog::{PlanView, RegionView, RuntimeView};
use crate::error::ApiResult;
use crate::state::AppState;

pub struct CatalogApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/paas", tag = "Tag::Catalog")]
impl CatalogApi {
    /// List the plans on offer
    #[oai(path = "/plans", method = "get", operation_id = "listPlans")]
    async fn plans(&self, _auth: BearerAuth) -> ApiResult<Json<Vec<PlanView>>> {
        let mut conn = self.state.store().conn().await?;
        Ok(Json(
            catalog::list_plans(&mut conn, true)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// List the runtimes on offer
    #[oai(path = "/runtimes", method = "get", operation_id = "listRuntimes")]
    async fn runtimes(&self, _auth: BearerAuth) -> ApiResult<Json<Vec<RuntimeView>>> {
        let mut conn = self.state.store().conn().await?;
        Ok(Json(
            catalog::list_runtimes(&mut conn, true)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// List regions with their capacity
    ///
    /// A region exists while a node that is not disabled serves it; it is
    /// `available` while at least one of its nodes takes work (online, or
    /// degraded: under sustained pressure, used when no online node has room).
    #[oai(path = "/regions", method = "get", operation_id = "listRegions")]
    async fn regions(&self, _auth: BearerAuth) -> ApiResult<Json<Vec<RegionView>>> {
        let mut conn = self.state.store().conn().await?;
        let nodes = reports::node_capacity(&mut conn).await?;
        Ok(Json(
            summarize_regions(&nodes)
                .into_iter()
                .map(|r| RegionView {
                    available: r.online_nodes + r.degraded_nodes > 0,
                    region: r.region,
                    nodes: r.nodes,
                    online_nodes: r.online_nodes,
                    free_cpu: r.free_cpu,
                    free_memory: r.free_memory,
                })
                .collect(),
        ))
    }
}
