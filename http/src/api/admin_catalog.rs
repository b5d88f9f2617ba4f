//! `/api/admin/paas/plans`, `/api/admin/paas/runtimes` and
//! `/api/admin/paas/database-engines`: the catalog, admin only.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use skypanel_domain::Invalid;
use skypanel_domain::money::{self, PRICE, RATE};
use skypanel_domain::names::{clean_text, validate_image_reference};
use skypanel_store::Conn;
use skypanel_store::catalog::{self, PlanFields, RuntimeFields};
use skypanel_store::database_engines;

use super::{Audit, Created, NoContent, Tag};
use crate::auth::AdminAuth;
use crate::body::JsonBody;
use crate::dto::catalog::*;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct AdminCatalogApi {
    pub state: AppState,
}

fn in_range(
    field: &str,
    value: i32,
    range: std::ops::RangeInclusive<i32>,
    unit: &str,
) -> Result<i32, Invalid> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Invalid::new(
            field,
            format!("{field} is {} to {} {unit}", range.start(), range.end()),
        ))
    }
}

/// Checks a plan change (every field that is present) and turns it into columns.
async fn plan_fields(conn: &mut Conn, req: UpdatePlanRequest) -> ApiResult<PlanFields> {
    let supported_runtimes = match req.supported_runtimes {
        Some(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            let missing = catalog::missing_runtimes(conn, &ids).await?;
            if !missing.is_empty() {
                return Err(ApiError::invalid(
                    "supported_runtimes",
                    format!("no runtime has id {missing:?}"),
                ));
            }
            Some(ids)
        }
        None => None,
    };
    Ok(PlanFields {
        name: req.name.map(|n| clean_text("name", &n, 100)).transpose()?,
        cpu_limit: req
            .cpu_limit
            .map(|v| in_range("cpu_limit", v, 1..=256_000, "millicores"))
            .transpose()?,
        memory_limit: req
            .memory_limit
            .map(|v| in_range("memory_limit", v, 16..=4_194_304, "MB"))
            .transpose()?,
        storage_limit: req
            .storage_limit
            .map(|v| in_range("storage_limit", v, 1..=16_777_216, "MB"))
            .transpose()?,
        monthly_price: req
            .monthly_price
            .map(|v| money::parse_amount("monthly_price", &v, PRICE))
            .transpose()?,
        hourly_rate: req
            .hourly_rate
            .map(|v| money::parse_amount("hourly_rate", &v, RATE))
            .transpose()?,
        supported_runtimes,
        is_active: req.is_active,
        build_cpu_limit: req
            .build_cpu_limit
            .map(|v| in_range("build_cpu_limit", v, 100..=64_000, "millicores"))
            .transpose()?,
        build_memory_limit: req
            .build_memory_limit
            .map(|v| in_range("build_memory_limit", v, 64..=262_144, "MB"))
            .transpose()?,
        build_pids_limit: req
            .build_pids_limit
            .map(|v| in_range("build_pids_limit", v, 32..=65_536, "processes"))
            .transpose()?,
    })
}

fn optional_command(field: &str, command: Option<String>) -> Result<Option<String>, Invalid> {
    match command {
        Some(c) if c.trim().is_empty() => Ok(None),
        Some(c) => clean_text(field, &c, 4096).map(Some),
        None => Ok(None),
    }
}

/// Checks a runtime change (every field that is present) and turns it into columns.
fn runtime_fields(req: UpdateRuntimeRequest) -> Result<RuntimeFields, Invalid> {
    let base_image = match req.base_image {
        Some(image) => {
            let image = image.trim().to_string();
            validate_image_reference("base_image", &image)?;
            Some(image)
        }
        None => None,
    };
    let command = |field: &str, value: MaybeUndefined<String>| {
        let as_option: Option<Option<String>> = value.into();
        as_option.map(|c| optional_command(field, c)).transpose()
    };
    Ok(RuntimeFields {
        name: req.name.map(|n| clean_text("name", &n, 100)).transpose()?,
        runtime_type: req.runtime_type.map(|t| t.as_str().to_string()),
        version: req
            .version
            .map(|v| clean_text("version", &v, 50))
            .transpose()?,
        base_image,
        default_build_cmd: command("default_build_cmd", req.default_build_cmd)?,
        default_start_cmd: command("default_start_cmd", req.default_start_cmd)?,
        is_active: req.is_active,
    })
}

#[OpenApi(prefix_path = "/admin/paas")]
impl AdminCatalogApi {
    /// List every plan
    #[oai(
        path = "/plans",
        method = "get",
        tag = "Tag::AdminPlans",
        operation_id = "adminListPlans"
    )]
    async fn list_plans(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<PlanView>>> {
        let mut conn = self.state.store().conn().await?;
        let plans = catalog::list_plans(&mut conn, false).await?;
        Ok(Json(plans.into_iter().map(Into::into).collect()))
    }

    /// Create a plan
    #[oai(
        path = "/plans",
        method = "post",
        tag = "Tag::AdminPlans",
        operation_id = "adminCreatePlan"
    )]
    async fn create_plan(
        &self,
        request: &Request,
        auth: AdminAuth,
        body: JsonBody<CreatePlanRequest>,
    ) -> ApiResult<Created<PlanView>> {
        let admin = &auth.0;
        let b = body.0;
        let mut conn = self.state.store().conn().await?;
        let fields = plan_fields(
            &mut conn,
            UpdatePlanRequest {
                name: Some(b.name),
                cpu_limit: Some(b.cpu_limit),
                memory_limit: Some(b.memory_limit),
                storage_limit: Some(b.storage_limit),
                monthly_price: Some(b.monthly_price),
                hourly_rate: Some(b.hourly_rate),
                supported_runtimes: b.supported_runtimes,
                is_active: b.is_active,
                build_cpu_limit: b.build_cpu_limit,
                build_memory_limit: b.build_memory_limit,
                build_pids_limit: b.build_pids_limit,
            },
        )
        .await?;
        let plan = catalog::create_plan(&mut conn, &fields).await?;
        Audit::by(request, admin.user_id, "plan.create")
            .on("plan", plan.id)
            .with(serde_json::json!({"name": plan.name}))
            .write(&mut conn)
            .await;
        Ok(Created::Created(Json(plan.into())))
    }

    /// Update a plan
    ///
    /// Only the fields sent change. Applications keep running on their plan;
    /// new limits apply at their next deploy.
    #[oai(
        path = "/plans/:id",
        method = "put",
        tag = "Tag::AdminPlans",
        operation_id = "adminUpdatePlan"
    )]
    async fn update_plan(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
        body: JsonBody<UpdatePlanRequest>,
    ) -> ApiResult<Json<PlanView>> {
        let admin = &auth.0;
        let mut conn = self.state.store().conn().await?;
        let fields = plan_fields(&mut conn, body.0).await?;
        let plan = catalog::update_plan(&mut conn, id.0, &fields)
            .await
            .or_not_found("plan")?;
        Audit::by(request, admin.user_id, "plan.update")
            .on("plan", plan.id)
            .write(&mut conn)
            .await;
        Ok(Json(plan.into()))
    }

    /// Delete a plan
    ///
    /// A plan used by an application or database, or with billing history,
    /// answers 409: deactivate it instead.
    #[oai(
        path = "/plans/:id",
        method = "delete",
        tag = "Tag::AdminPlans",
        operation_id = "adminDeletePlan"
    )]
    async fn delete_plan(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
    ) -> ApiResult<NoContent> {
        let admin = &auth.0;
        let mut conn = self.state.store().conn().await?;
        catalog::delete_plan(&mut conn, id.0)
            .await
            .or_not_found("plan")?;
        Audit::by(request, admin.user_id, "plan.delete")
            .on("plan", id.0)
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }

    /// List every runtime
    #[oai(
        path = "/runtimes",
        method = "get",
        tag = "Tag::AdminRuntimes",
        operation_id = "adminListRuntimes"
    )]
    async fn list_runtimes(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<RuntimeView>>> {
        let mut conn = self.state.store().conn().await?;
        let runtimes = catalog::list_runtimes(&mut conn, false).await?;
        Ok(Json(runtimes.into_iter().map(Into::into).collect()))
    }

    /// Add a runtime
    #[oai(
        path = "/runtimes",
        method = "post",
        tag = "Tag::AdminRuntimes",
        operation_id = "adminCreateRuntime"
    )]
    async fn create_runtime(
        &self,
        request: &Request,
        auth: AdminAuth,
        body: JsonBody<CreateRuntimeRequest>,
    ) -> ApiResult<Created<RuntimeView>> {
        let admin = &auth.0;
        let b = body.0;
        let fields = runtime_fields(UpdateRuntimeRequest {
            name: Some(b.name),
            runtime_type: Some(b.runtime_type),
            version: Some(b.version),
            base_image: Some(b.base_image),
            default_build_cmd: MaybeUndefined::from_opt_undefined(b.default_build_cmd),
            default_start_cmd: MaybeUndefined::from_opt_undefined(b.default_start_cmd),
            is_active: b.is_active,
        })?;
        let mut conn = self.state.store().conn().await?;
        let runtime = catalog::create_runtime(&mut conn, &fields).await?;
        Audit::by(request, admin.user_id, "runtime.create")
            .on("runtime", runtime.id)
            .with(serde_json::json!({"name": runtime.name}))
            .write(&mut conn)
            .await;
        Ok(Created::Created(Json(runtime.into())))
    }

    /// Update a runtime
    #[oai(
        path = "/runtimes/:id",
        method = "put",
        tag = "Tag::AdminRuntimes",
        operation_id = "adminUpdateRuntime"
    )]
    async fn update_runtime(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
        body: JsonBody<UpdateRuntimeRequest>,
    ) -> ApiResult<Json<RuntimeView>> {
        let admin = &auth.0;
        let fields = runtime_fields(body.0)?;
        let mut conn = self.state.store().conn().await?;
        let runtime = catalog::update_runtime(&mut conn, id.0, &fields)
            .await
            .or_not_found("runtime")?;
        Audit::by(request, admin.user_id, "runtime.update")
            .on("runtime", runtime.id)
            .write(&mut conn)
            .await;
        Ok(Json(runtime.into()))
    }

    /// Remove a runtime
    ///
    /// A runtime used by an application or listed by a plan answers 409.
    #[oai(
        path = "/runtimes/:id",
        method = "delete",
        tag = "Tag::AdminRuntimes",
        operation_id = "adminDeleteRuntime"
    )]
    async fn delete_runtime(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
    ) -> ApiResult<NoContent> {
        let admin = &auth.0;
        let mut conn = self.state.store().conn().await?;
        catalog::delete_runtime(&mut conn, id.0)
            .await
            .or_not_found("runtime")?;
        Audit::by(request, admin.user_id, "runtime.delete")
            .on("runtime", id.0)
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }

    /// List the managed database engines
    #[oai(
        path = "/database-engines",
        method = "get",
        tag = "Tag::AdminDatabaseEngines",
        operation_id = "adminListDatabaseEngines"
    )]
    async fn list_engines(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<DatabaseEngineView>>> {
        let mut conn = self.state.store().conn().await?;
        let engines = database_engines::list(&mut conn).await?;
        Ok(Json(engines.into_iter().map(Into::into).collect()))
    }

    /// Add a database engine
    ///
    /// The same type and version twice is 409.
    #[oai(
        path = "/database-engines",
        method = "post",
        tag = "Tag::AdminDatabaseEngines",
        operation_id = "adminCreateDatabaseEngine"
    )]
    async fn create_engine(
        &self,
        request: &Request,
        auth: AdminAuth,
        body: JsonBody<CreateDatabaseEngineRequest>,
    ) -> ApiResult<Created<DatabaseEngineView>> {
        let b = body.0;
        if !DB_TYPES.contains(&b.db_type.as_str()) {
            return Err(ApiError::invalid(
                "db_type",
                format!("db_type is one of {}", DB_TYPES.join(", ")),
            ));
        }
        let version_ok = b.version.len() <= 32
            && b.version.starts_with(|c: char| c.is_ascii_alphanumeric())
            && b.version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !version_ok {
            return Err(ApiError::invalid(
                "version",
                "a version is letters, digits, '.', '_' and '-', up to 32, starting with a letter or digit",
            ));
        }
        validate_image_reference("image", &b.image)?;
        let mut conn = self.state.store().conn().await?;
        let engine = database_engines::create(&mut conn, &b.db_type, &b.version, &b.image).await?;
        Audit::by(request, auth.0.user_id, "database_engine.create")
            .on("database_engine", engine.id)
            .with(serde_json::json!({"db_type": engine.db_type, "version": engine.version, "image": engine.image}))
            .write(&mut conn)
            .await;
        Ok(Created::Created(Json(engine.into())))
    }

    /// Change a database engine's image
    #[oai(
        path = "/database-engines/:id",
        method = "put",
        tag = "Tag::AdminDatabaseEngines",
        operation_id = "adminUpdateDatabaseEngine"
    )]
    async fn update_engine(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
        body: JsonBody<UpdateDatabaseEngineRequest>,
    ) -> ApiResult<Json<DatabaseEngineView>> {
        validate_image_reference("image", &body.0.image)?;
        let mut conn = self.state.store().conn().await?;
        let engine = database_engines::set_image(&mut conn, id.0, &body.0.image)
            .await
            .or_not_found("database engine")?;
        Audit::by(request, auth.0.user_id, "database_engine.update")
            .on("database_engine", engine.id)
            .with(serde_json::json!({"image": engine.image}))
            .write(&mut conn)
            .await;
        Ok(Json(engine.into()))
    }

    /// Remove a database engine
    ///
    /// An engine some database runs answers 409.
    #[oai(
        path = "/database-engines/:id",
        method = "delete",
        tag = "Tag::AdminDatabaseEngines",
        operation_id = "adminDeleteDatabaseEngine"
    )]
    async fn delete_engine(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
    ) -> ApiResult<NoContent> {
        let mut conn = self.state.store().conn().await?;
        database_engines::delete(&mut conn, id.0)
            .await
            .or_not_found("database engine")?;
        Audit::by(request, auth.0.user_id, "database_engine.delete")
            .on("database_engine", id.0)
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }
}

/// The database types the platform runs.
const DB_TYPES: [&str; 4] = ["postgresql", "mysql", "redis", "mongodb"];
