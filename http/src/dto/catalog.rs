//! Plans, runtimes and regions.

use chrono::{DateTime, Utc};
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object};
use serde::Deserialize;
use skypanel_domain::money::format_amount;
use skypanel_store::catalog::{Plan, Runtime};

#[derive(Object, Debug)]
pub struct PlanView {
    pub id: i64,
    pub name: String,
    /// Millicores: 1000 is one CPU core.
    pub cpu_limit: i32,
    /// MB of memory.
    pub memory_limit: i32,
    /// MB of disk.
    pub storage_limit: i32,
    /// Decimal string: the most a resource on this plan costs in a calendar month.
    pub monthly_price: String,
    /// Decimal string: the price of one instance for one hour.
    pub hourly_rate: String,
    /// Runtime ids this plan allows; empty allows every runtime.
    pub supported_runtimes: Vec<i64>,
    pub is_active: bool,
    /// What a build may use on its node: millicores, MB of memory and
    /// processes (a build that goes past one fails, naming it).
    pub build_cpu_limit: i32,
    pub build_memory_limit: i32,
    pub build_pids_limit: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Plan> for PlanView {
    fn from(p: Plan) -> Self {
        Self {
            id: p.id,
            name: p.name,
            cpu_limit: p.cpu_limit,
            memory_limit: p.memory_limit,
            storage_limit: p.storage_limit,
            monthly_price: format_amount(&p.monthly_price, 2),
            hourly_rate: format_amount(&p.hourly_rate, 4),
            supported_runtimes: p.supported_runtimes,
            is_active: p.is_active,
            build_cpu_limit: p.build_cpu_limit,
            build_memory_limit: p.build_memory_limit,
            build_pids_limit: p.build_pids_limit,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreatePlanRequest {
    #[oai(validator(pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,98}[A-Za-z0-9]$"))]
    pub name: String,
    /// Millicores, 1 to 256000.
    #[oai(validator(minimum(value = "1"), maximum(value = "256000")))]
    pub cpu_limit: i32,
    /// MB, 16 to 4194304.
    #[oai(validator(minimum(value = "16"), maximum(value = "4194304")))]
    pub memory_limit: i32,
    /// MB, 1 to 16777216.
    #[oai(validator(minimum(value = "1"), maximum(value = "16777216")))]
    pub storage_limit: i32,
    /// Decimal string, at most two decimals.
    #[oai(validator(pattern = r"^[0-9]{1,5}(\.[0-9]{1,2})?$"))]
    pub monthly_price: String,
    /// Decimal string, at most four decimals.
    #[oai(validator(pattern = r"^[0-9]{1,3}(\.[0-9]{1,4})?$"))]
    pub hourly_rate: String,
    #[serde(default)]
    #[oai(nullable)]
    pub supported_runtimes: Option<Vec<i64>>,
    #[oai(nullable)]
    pub is_active: Option<bool>,
    /// Millicores a build may use, 100 to 64000 (1000 by default).
    #[oai(nullable, validator(minimum(value = "100"), maximum(value = "64000")))]
    pub build_cpu_limit: Option<i32>,
    /// MB a build may use, 64 to 262144 (2048 by default).
    #[oai(nullable, validator(minimum(value = "64"), maximum(value = "262144")))]
    pub build_memory_limit: Option<i32>,
    /// Processes a build may run at once, 32 to 65536 (1024 by default).
    #[oai(nullable, validator(minimum(value = "32"), maximum(value = "65536")))]
    pub build_pids_limit: Option<i32>,
}

/// Every field is optional: only the ones sent change.
#[derive(Object, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlanRequest {
    #[oai(
        nullable,
        validator(pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,98}[A-Za-z0-9]$")
    )]
    pub name: Option<String>,
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "256000")))]
    pub cpu_limit: Option<i32>,
    #[oai(nullable, validator(minimum(value = "16"), maximum(value = "4194304")))]
    pub memory_limit: Option<i32>,
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "16777216")))]
    pub storage_limit: Option<i32>,
    #[oai(nullable, validator(pattern = r"^[0-9]{1,5}(\.[0-9]{1,2})?$"))]
    pub monthly_price: Option<String>,
    #[oai(nullable, validator(pattern = r"^[0-9]{1,3}(\.[0-9]{1,4})?$"))]
    pub hourly_rate: Option<String>,
    #[oai(nullable)]
    pub supported_runtimes: Option<Vec<i64>>,
    #[oai(nullable)]
    pub is_active: Option<bool>,
    #[oai(nullable, validator(minimum(value = "100"), maximum(value = "64000")))]
    pub build_cpu_limit: Option<i32>,
    #[oai(nullable, validator(minimum(value = "64"), maximum(value = "262144")))]
    pub build_memory_limit: Option<i32>,
    #[oai(nullable, validator(minimum(value = "32"), maximum(value = "65536")))]
    pub build_pids_limit: Option<i32>,
}

/// How an application of this runtime is built.
#[derive(Enum, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RuntimeType {
    Node,
    Python,
    Php,
    Static,
    Docker,
}

impl RuntimeType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Python => "python",
            Self::Php => "php",
            Self::Static => "static",
            Self::Docker => "docker",
        }
    }
}

#[derive(Object, Debug)]
pub struct RuntimeView {
    pub id: i64,
    pub name: String,
    /// `node`, `python`, `php`, `static` or `docker` (the repository's own Dockerfile).
    pub runtime_type: String,
    pub version: String,
    pub base_image: String,
    #[oai(nullable)]
    pub default_build_cmd: Option<String>,
    #[oai(nullable)]
    pub default_start_cmd: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Runtime> for RuntimeView {
    fn from(r: Runtime) -> Self {
        Self {
            id: r.id,
            name: r.name,
            runtime_type: r.runtime_type,
            version: r.version,
            base_image: r.base_image,
            default_build_cmd: r.default_build_cmd,
            default_start_cmd: r.default_start_cmd,
            is_active: r.is_active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateRuntimeRequest {
    #[oai(validator(pattern = r"^[A-Za-z0-9][A-Za-z0-9 ()._-]{0,98}[A-Za-z0-9)]$"))]
    pub name: String,
    pub runtime_type: RuntimeType,
    #[oai(validator(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,48}$"))]
    pub version: String,
    /// A Docker image reference such as `node:20-slim`.
    #[oai(validator(
        max_length = 255,
        pattern = r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,30})?$"
    ))]
    pub base_image: String,
    #[oai(nullable)]
    pub default_build_cmd: Option<String>,
    #[oai(nullable)]
    pub default_start_cmd: Option<String>,
    #[oai(nullable)]
    pub is_active: Option<bool>,
}

/// Every field is optional; send `null` to clear a default command.
#[derive(Object, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateRuntimeRequest {
    #[oai(nullable)]
    pub name: Option<String>,
    #[oai(nullable)]
    pub runtime_type: Option<RuntimeType>,
    #[oai(nullable)]
    pub version: Option<String>,
    #[oai(nullable)]
    pub base_image: Option<String>,
    #[serde(default)]
    pub default_build_cmd: MaybeUndefined<String>,
    #[serde(default)]
    pub default_start_cmd: MaybeUndefined<String>,
    #[oai(nullable)]
    pub is_active: Option<bool>,
}

#[derive(Object, Debug)]
pub struct RegionView {
    pub region: String,
    /// Registered nodes that are not disabled.
    pub nodes: i64,
    /// Nodes online now.
    pub online_nodes: i64,
    /// Whether an application can be deployed here now.
    pub available: bool,
    /// Millicores not yet reserved by plans, over online nodes.
    pub free_cpu: i64,
    /// MB not yet reserved by plans, over online nodes.
    pub free_memory: i64,
}

/// A managed database engine: the image a database type and version runs.
#[derive(Object, Debug)]
pub struct DatabaseEngineView {
    pub id: i64,
    /// `postgresql`, `mysql`, `redis` or `mongodb`.
    pub db_type: String,
    pub version: String,
    /// The image, started the way the official image of its type expects
    /// (`POSTGRES_PASSWORD`, `MYSQL_ROOT_PASSWORD`, `redis-server --requirepass`,
    /// `MONGO_INITDB_ROOT_PASSWORD` …).
    pub image: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<skypanel_store::database_engines::Engine> for DatabaseEngineView {
    fn from(e: skypanel_store::database_engines::Engine) -> Self {
        Self {
            id: e.id,
            db_type: e.db_type,
            version: e.version,
            image: e.image,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Object, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabaseEngineRequest {
    /// `postgresql`, `mysql`, `redis` or `mongodb`.
    #[oai(validator(pattern = "^(postgresql|mysql|redis|mongodb)$"))]
    pub db_type: String,
    /// Letters, digits, `.`, `_` and `-`, up to 32 (`16`, `8.4`, `7.2-alpine`).
    #[oai(validator(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"))]
    pub version: String,
    #[oai(validator(
        max_length = 255,
        pattern = r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,30})?$"
    ))]
    pub image: String,
}

#[derive(Object, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDatabaseEngineRequest {
    /// The image databases created from now on run.
    pub image: String,
}
