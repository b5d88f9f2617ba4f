//! The catalog admins manage: hosting plans and runtimes. Deleting one that is
//! still in use is a conflict that says what uses it, never a foreign-key error.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::schema::{
    paas_applications, paas_billing_records, paas_databases, paas_plans, paas_runtimes,
};
use crate::{Conn, Error, Result};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_plans, check_for_backend(diesel::pg::Pg))]
pub struct Plan {
    pub id: i64,
    pub name: String,
    pub cpu_limit: i32,
    pub memory_limit: i32,
    pub storage_limit: i32,
    pub monthly_price: BigDecimal,
    pub hourly_rate: BigDecimal,
    pub supported_runtimes: Vec<i64>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What a build may use: millicores, MB, processes.
    pub build_cpu_limit: i32,
    pub build_memory_limit: i32,
    pub build_pids_limit: i32,
}

impl Plan {
    /// Whether an app on this plan may use `runtime_id` (an empty list allows all).
    pub fn supports_runtime(&self, runtime_id: i64) -> bool {
        self.supported_runtimes.is_empty() || self.supported_runtimes.contains(&runtime_id)
    }
}

#[derive(Insertable, AsChangeset, Debug, Clone, Default)]
#[diesel(table_name = paas_plans)]
pub struct PlanFields {
    pub name: Option<String>,
    pub cpu_limit: Option<i32>,
    pub memory_limit: Option<i32>,
    pub storage_limit: Option<i32>,
    pub monthly_price: Option<BigDecimal>,
    pub hourly_rate: Option<BigDecimal>,
    pub supported_runtimes: Option<Vec<i64>>,
    pub is_active: Option<bool>,
    pub build_cpu_limit: Option<i32>,
    pub build_memory_limit: Option<i32>,
    pub build_pids_limit: Option<i32>,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_runtimes, check_for_backend(diesel::pg::Pg))]
pub struct Runtime {
    pub id: i64,
    pub name: String,
    pub runtime_type: String,
    pub version: String,
    pub base_image: String,
    pub default_build_cmd: Option<String>,
    pub default_start_cmd: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Runtime columns to write. For the nullable commands, `Some(None)` clears.
#[derive(Insertable, AsChangeset, Debug, Clone, Default)]
#[diesel(table_name = paas_runtimes)]
pub struct RuntimeFields {
    pub name: Option<String>,
    pub runtime_type: Option<String>,
    pub version: Option<String>,
    pub base_image: Option<String>,
    pub default_build_cmd: Option<Option<String>>,
    pub default_start_cmd: Option<Option<String>>,
    pub is_active: Option<bool>,
}

pub async fn list_plans(conn: &mut Conn, active_only: bool) -> Result<Vec<Plan>> {
    let mut query = paas_plans::table
        .select(Plan::as_select())
        .order(paas_plans::id)
        .into_boxed();
    if active_only {
        query = query.filter(paas_plans::is_active.eq(true));
    }
    Ok(query.load(conn).await?)
}

pub async fn get_plan(conn: &mut Conn, id: i64) -> Result<Plan> {
    Ok(paas_plans::table
        .find(id)
        .select(Plan::as_select())
        .first(conn)
        .await?)
}

/// Inserts a plan; `fields` must carry every required column.
pub async fn create_plan(conn: &mut Conn, fields: &PlanFields) -> Result<Plan> {
    Ok(diesel::insert_into(paas_plans::table)
        .values(fields)
        .returning(Plan::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn update_plan(conn: &mut Conn, id: i64, fields: &PlanFields) -> Result<Plan> {
    if is_empty_plan_change(fields) {
        return get_plan(conn, id).await;
    }
    Ok(diesel::update(paas_plans::table.find(id))
        .set(fields)
        .returning(Plan::as_returning())
        .get_result(conn)
        .await?)
}

fn is_empty_plan_change(f: &PlanFields) -> bool {
    f.name.is_none()
        && f.cpu_limit.is_none()
        && f.memory_limit.is_none()
        && f.storage_limit.is_none()
        && f.monthly_price.is_none()
        && f.hourly_rate.is_none()
        && f.supported_runtimes.is_none()
        && f.is_active.is_none()
        && f.build_cpu_limit.is_none()
        && f.build_memory_limit.is_none()
        && f.build_pids_limit.is_none()
}

/// Deletes a plan no application, database or billing record refers to.
pub async fn delete_plan(conn: &mut Conn, id: i64) -> Result<()> {
    conn.transaction(async |conn| {
        paas_plans::table.find(id).select(paas_plans::id).for_update().first::<i64>(conn).await?;
        let apps: i64 = paas_applications::table
            .filter(paas_applications::plan_id.eq(id))
            .count()
            .get_result(conn)
            .await?;
        let dbs: i64 = paas_databases::table
            .filter(paas_databases::plan_id.eq(id))
            .count()
            .get_result(conn)
            .await?;
        if apps + dbs > 0 {
            return Err(Error::conflict(
                None,
                format!("the plan is used by {apps} application(s) and {dbs} database(s); deactivate it instead"),
            ));
        }
        let billed: bool = diesel::select(diesel::dsl::exists(
            paas_billing_records::table.filter(paas_billing_records::plan_id.eq(id)),
        ))
        .get_result(conn)
        .await?;
        if billed {
            return Err(Error::conflict(
                None,
                "the plan has billing history; deactivate it instead",
            ));
        }
        diesel::delete(paas_plans::table.find(id)).execute(conn).await?;
        Ok(())
    })
    .await
}

pub async fn list_runtimes(conn: &mut Conn, active_only: bool) -> Result<Vec<Runtime>> {
    let mut query = paas_runtimes::table
        .select(Runtime::as_select())
        .order(paas_runtimes::id)
        .into_boxed();
    if active_only {
        query = query.filter(paas_runtimes::is_active.eq(true));
    }
    Ok(query.load(conn).await?)
}

pub async fn get_runtime(conn: &mut Conn, id: i64) -> Result<Runtime> {
    Ok(paas_runtimes::table
        .find(id)
        .select(Runtime::as_select())
        .first(conn)
        .await?)
}

/// Ids among `ids` that name no runtime.
pub async fn missing_runtimes(conn: &mut Conn, ids: &[i64]) -> Result<Vec<i64>> {
    let found: Vec<i64> = paas_runtimes::table
        .filter(paas_runtimes::id.eq_any(ids))
        .select(paas_runtimes::id)
        .load(conn)
        .await?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect())
}

/// Inserts a runtime; `fields` must carry every required column.
pub async fn create_runtime(conn: &mut Conn, fields: &RuntimeFields) -> Result<Runtime> {
    Ok(diesel::insert_into(paas_runtimes::table)
        .values(fields)
        .returning(Runtime::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn update_runtime(conn: &mut Conn, id: i64, fields: &RuntimeFields) -> Result<Runtime> {
    let empty = fields.name.is_none()
        && fields.runtime_type.is_none()
        && fields.version.is_none()
        && fields.base_image.is_none()
        && fields.default_build_cmd.is_none()
        && fields.default_start_cmd.is_none()
        && fields.is_active.is_none();
    if empty {
        return get_runtime(conn, id).await;
    }
    Ok(diesel::update(paas_runtimes::table.find(id))
        .set(fields)
        .returning(Runtime::as_returning())
        .get_result(conn)
        .await?)
}

/// Deletes a runtime no application uses and no plan lists.
pub async fn delete_runtime(conn: &mut Conn, id: i64) -> Result<()> {
    conn.transaction(async |conn| {
        paas_runtimes::table
            .find(id)
            .select(paas_runtimes::id)
            .for_update()
            .first::<i64>(conn)
            .await?;
        let apps: i64 = paas_applications::table
            .filter(paas_applications::runtime_id.eq(id))
            .count()
            .get_result(conn)
            .await?;
        if apps > 0 {
            return Err(Error::conflict(
                None,
                format!("the runtime is used by {apps} application(s); deactivate it instead"),
            ));
        }
        let plans: Vec<String> = paas_plans::table
            .filter(paas_plans::supported_runtimes.contains(vec![id]))
            .select(paas_plans::name)
            .load(conn)
            .await?;
        if !plans.is_empty() {
            return Err(Error::conflict(
                None,
                format!(
                    "the runtime is listed by plan(s) {}; remove it there first",
                    plans.join(", ")
                ),
            ));
        }
        diesel::delete(paas_runtimes::table.find(id))
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
}
