//! Read-only aggregates for admins and customers: platform statistics,
//! capacity per node and region, and the regions customers may deploy to.

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Numeric, Text};
use diesel_async::RunQueryDsl;

use skypanel_domain::lifecycle::{AppStatus, DatabaseStatus};

use crate::{Conn, Result};

/// Capacity of one node: what it has, what it reports using, and what the
/// plans placed on it reserve. CPU in millicores, memory and disk in MB.
#[derive(QueryableByName, Debug, Clone)]
pub struct NodeCapacity {
    #[diesel(sql_type = BigInt)]
    pub node_id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub region: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Int4)]
    pub cpu_total: i32,
    #[diesel(sql_type = Int4)]
    pub cpu_used: i32,
    #[diesel(sql_type = Int4)]
    pub memory_total: i32,
    #[diesel(sql_type = Int4)]
    pub memory_used: i32,
    #[diesel(sql_type = Int4)]
    pub disk_total: i32,
    #[diesel(sql_type = Int4)]
    pub disk_used: i32,
    #[diesel(sql_type = Int4)]
    pub container_count: i32,
    #[diesel(sql_type = BigInt)]
    pub cpu_allocated: i64,
    #[diesel(sql_type = BigInt)]
    pub memory_allocated: i64,
    #[diesel(sql_type = BigInt)]
    pub applications: i64,
    #[diesel(sql_type = BigInt)]
    pub databases: i64,
}

/// Every node with its reservations, ordered by region then id. Only
/// applications and databases whose status holds capacity reserve any
/// (`AppStatus::HOLDING`, `DatabaseStatus::HOLDING`), or is becoming one (a
/// stopped application starting): a failed, stopped or suspended one leaves
/// its node's room to others.
pub async fn node_capacity(conn: &mut Conn) -> Result<Vec<NodeCapacity>> {
    capacity_of(conn, None).await
}

/// One node's capacity and reservations (as [`node_capacity`] counts them).
pub async fn node_capacity_of(conn: &mut Conn, node_id: i64) -> Result<NodeCapacity> {
    capacity_of(conn, Some(node_id))
        .await?
        .into_iter()
        .next()
        .ok_or(crate::Error::NotFound)
}

async fn capacity_of(conn: &mut Conn, node_id: Option<i64>) -> Result<Vec<NodeCapacity>> {
    let names = |list: Vec<&str>| list.join(",");
    Ok(diesel::sql_query(
        "WITH reserved AS (
             SELECT a.node_id, (a.instance_count + o.count)::bigint * p.cpu_limit AS cpu,
                    (a.instance_count + o.count)::bigint * p.memory_limit AS memory, 1 AS apps, 0 AS dbs
               FROM paas_applications a JOIN paas_plans p ON p.id = a.plan_id
                    CROSS JOIN LATERAL (SELECT COALESCE(sum(value::int), 0) AS count
                                          FROM jsonb_each_text(a.formation)) o
              WHERE a.node_id IS NOT NULL
                AND (a.status = ANY(string_to_array($1, ','))
                     OR a.target_status = ANY(string_to_array($1, ',')))
             UNION ALL
             SELECT d.node_id, p.cpu_limit::bigint, p.memory_limit::bigint, 0, 1
               FROM paas_databases d JOIN paas_plans p ON p.id = d.plan_id
              WHERE d.node_id IS NOT NULL AND d.status = ANY(string_to_array($2, ','))
         )
         SELECT n.id AS node_id, n.name, n.region, n.status,
                n.cpu_total, n.cpu_used, n.memory_total, n.memory_used,
                n.disk_total, n.disk_used, n.container_count,
                COALESCE(SUM(r.cpu), 0)::bigint AS cpu_allocated,
                COALESCE(SUM(r.memory), 0)::bigint AS memory_allocated,
                COALESCE(SUM(r.apps), 0)::bigint AS applications,
                COALESCE(SUM(r.dbs), 0)::bigint AS databases
           FROM paas_nodes n LEFT JOIN reserved r ON r.node_id = n.id
          WHERE $3::bigint IS NULL OR n.id = $3
          GROUP BY n.id
          ORDER BY n.region, n.id",
    )
    .bind::<diesel::sql_types::Text, _>(names(
        AppStatus::HOLDING.iter().map(|s| s.as_str()).collect(),
    ))
    .bind::<diesel::sql_types::Text, _>(names(
        DatabaseStatus::HOLDING.iter().map(|s| s.as_str()).collect(),
    ))
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(node_id)
    .load(conn)
    .await?)
}

/// Databases by status, for the admin statistics.
pub async fn count_databases_by_status(conn: &mut Conn) -> Result<Vec<(String, i64)>> {
    use crate::schema::paas_databases;
    Ok(paas_databases::table
        .group_by(paas_databases::status)
        .select((paas_databases::status, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}

/// Nodes by status, for the admin statistics.
pub async fn count_nodes_by_status(conn: &mut Conn) -> Result<Vec<(String, i64)>> {
    use crate::schema::paas_nodes;
    Ok(paas_nodes::table
        .group_by(paas_nodes::status)
        .select((paas_nodes::status, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}

#[derive(QueryableByName, Debug, Clone)]
pub struct Revenue {
    /// Sum of billing records whose period started this calendar month (UTC).
    #[diesel(sql_type = Numeric)]
    pub billed_this_month: BigDecimal,
    /// Sum of wallet credits made this calendar month (UTC).
    #[diesel(sql_type = Numeric)]
    pub credited_this_month: BigDecimal,
    /// Sum of all wallet balances now.
    #[diesel(sql_type = Numeric)]
    pub wallet_balances: BigDecimal,
}

pub async fn revenue(conn: &mut Conn) -> Result<Revenue> {
    Ok(diesel::sql_query(
        "SELECT
           (SELECT COALESCE(SUM(total_cost), 0) FROM paas_billing_records
             WHERE billing_period_start >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
             AS billed_this_month,
           (SELECT COALESCE(SUM(amount), 0) FROM wallet_transactions
             WHERE kind = 'credit'
               AND created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
             AS credited_this_month,
           (SELECT COALESCE(SUM(balance), 0) FROM wallets) AS wallet_balances",
    )
    .get_result(conn)
    .await?)
}

/// One count of the platform's state for `/metrics`: what is counted
/// (`tasks`, `nodes`, `containers`, `applications`, `databases`), by what
/// (a status or state), and for tasks by kind.
#[derive(QueryableByName, Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    #[diesel(sql_type = Text)]
    pub what: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

/// The platform's state counts, in one query: unfinished tasks by kind
/// and status; nodes, containers, applications and databases by status.
pub async fn state_counts(conn: &mut Conn) -> Result<Vec<StateCount>> {
    Ok(diesel::sql_query(
        "SELECT 'tasks' AS what, status AS state, kind, count(*) AS count FROM paas_tasks
          WHERE status IN ('queued', 'leased', 'running') GROUP BY status, kind
         UNION ALL
         SELECT 'nodes', status, '', count(*) FROM paas_nodes GROUP BY status
         UNION ALL
         SELECT 'containers', state, '', count(*) FROM paas_instances GROUP BY state
         UNION ALL
         SELECT 'applications', status, '', count(*) FROM paas_applications GROUP BY status
         UNION ALL
         SELECT 'databases', status, '', count(*) FROM paas_databases GROUP BY status",
    )
    .load(conn)
    .await?)
}
