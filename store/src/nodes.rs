//! Worker nodes as admins see them: registration (a one-time token, kept as a
//! digest), configuration, removal, and the figures agents report.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use skypanel_domain::lifecycle::NodeStatus;

use crate::schema::{paas_applications, paas_databases, paas_nodes};
use crate::{Conn, Error, Result};

/// A node row without its secret digests.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_nodes, check_for_backend(diesel::pg::Pg))]
pub struct Node {
    pub id: i64,
    pub name: String,
    pub region: String,
    pub host_address: String,
    pub status: String,
    pub cpu_total: i32,
    pub memory_total: i32,
    pub disk_total: i32,
    pub cpu_used: i32,
    pub memory_used: i32,
    pub disk_used: i32,
    pub container_count: i32,
    pub agent_version: Option<String>,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub registration_expires_at: Option<DateTime<Utc>>,
    pub credential_issued_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Node {
    pub fn status(&self) -> Result<NodeStatus> {
        Ok(self.status.parse()?)
    }
}

/// What an admin may change on a node.
#[derive(AsChangeset, Debug, Clone, Default)]
#[diesel(table_name = paas_nodes)]
pub struct NodeChanges {
    pub name: Option<String>,
    pub region: Option<String>,
    pub host_address: Option<String>,
    pub status: Option<String>,
}

/// Registers a node in `pending` state, awaiting its agent.
pub async fn create(
    conn: &mut Conn,
    name: &str,
    region: &str,
    host_address: &str,
    token_digest: &str,
    token_expires_at: DateTime<Utc>,
) -> Result<Node> {
    Ok(diesel::insert_into(paas_nodes::table)
        .values((
            paas_nodes::name.eq(name),
            paas_nodes::region.eq(region),
            paas_nodes::host_address.eq(host_address),
            paas_nodes::registration_token_digest.eq(token_digest),
            paas_nodes::registration_expires_at.eq(token_expires_at),
        ))
        .returning(Node::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn list(conn: &mut Conn) -> Result<Vec<Node>> {
    Ok(paas_nodes::table
        .order(paas_nodes::id)
        .select(Node::as_select())
        .load(conn)
        .await?)
}

pub async fn get(conn: &mut Conn, id: i64) -> Result<Node> {
    Ok(paas_nodes::table
        .find(id)
        .select(Node::as_select())
        .first(conn)
        .await?)
}

pub async fn update(conn: &mut Conn, id: i64, changes: &NodeChanges) -> Result<Node> {
    if changes.name.is_none()
        && changes.region.is_none()
        && changes.host_address.is_none()
        && changes.status.is_none()
    {
        return get(conn, id).await;
    }
    Ok(diesel::update(paas_nodes::table.find(id))
        .set(changes)
        .returning(Node::as_returning())
        .get_result(conn)
        .await?)
}

/// Removes a node that hosts no application or database.
pub async fn delete(conn: &mut Conn, id: i64) -> Result<()> {
    conn.transaction(async |conn| {
        paas_nodes::table.find(id).select(paas_nodes::id).for_update().first::<i64>(conn).await?;
        let (applications, databases) = placed(conn, id).await?;
        if applications + databases > 0 {
            return Err(Error::conflict(
                None,
                format!(
                    "the node hosts {applications} application(s) and {databases} database(s); move or delete them first"
                ),
            ));
        }
        diesel::delete(paas_nodes::table.find(id)).execute(conn).await?;
        Ok(())
    })
    .await
}

/// How many applications and databases are placed on the node, whatever
/// their state (a node that hosts any cannot be deleted).
pub async fn placed(conn: &mut Conn, node_id: i64) -> Result<(i64, i64)> {
    let apps: i64 = paas_applications::table
        .filter(paas_applications::node_id.eq(node_id))
        .count()
        .get_result(conn)
        .await?;
    let dbs: i64 = paas_databases::table
        .filter(paas_databases::node_id.eq(node_id))
        .count()
        .get_result(conn)
        .await?;
    Ok((apps, dbs))
}

/// Whether some node in `region` is registered and not disabled.
pub async fn region_exists(conn: &mut Conn, region: &str) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        paas_nodes::table
            .filter(paas_nodes::region.eq(region))
            .filter(paas_nodes::status.ne(NodeStatus::Disabled.as_str())),
    ))
    .get_result(conn)
    .await?)
}

/// Whether some node in `region` can take work now (online).
pub async fn region_has_online_node(conn: &mut Conn, region: &str) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        paas_nodes::table
            .filter(paas_nodes::region.eq(region))
            .filter(paas_nodes::status.eq(NodeStatus::Online.as_str())),
    ))
    .get_result(conn)
    .await?)
}

/// The platform's images each node holds, as its heartbeats report them:
/// (node id, name, images, bytes), by id.
pub async fn image_usage(conn: &mut Conn) -> Result<Vec<(i64, String, Option<i32>, Option<i64>)>> {
    use crate::schema::paas_nodes;
    Ok(paas_nodes::table
        .order(paas_nodes::id)
        .select((
            paas_nodes::id,
            paas_nodes::name,
            paas_nodes::image_count,
            paas_nodes::image_bytes,
        ))
        .load(conn)
        .await?)
}
