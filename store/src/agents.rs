//! The agent side of nodes: one-time registration, credential lookup and
//! rotation (secrets stored as digests only), heartbeat figures and status.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use skypanel_domain::lifecycle::NodeStatus;

use crate::nodes::Node;
use crate::schema::paas_nodes;
use crate::{Conn, Error, Result};

/// What a registering agent tells about its machine.
#[derive(Debug, Clone)]
pub struct MachineInfo<'a> {
    pub hostname: &'a str,
    pub agent_version: &'a str,
    pub cpu_total: i32,
    pub memory_total_mb: i32,
    pub disk_total_mb: i32,
}

/// Exchanges a one-time registration token for a credential. `None` when the
/// token is unknown, already used, or expired: the caller answers 401.
pub async fn register(
    conn: &mut Conn,
    token_digest: &str,
    credential_digest: &str,
    info: &MachineInfo<'_>,
) -> Result<Option<Node>> {
    conn.transaction(async |conn| {
        let node: Option<Node> = paas_nodes::table
            .filter(paas_nodes::registration_token_digest.eq(token_digest))
            .for_update()
            .select(Node::as_select())
            .first(conn)
            .await
            .optional()?;
        let Some(node) = node else { return Ok(None) };
        if node
            .registration_expires_at
            .is_some_and(|at| at <= Utc::now())
        {
            return Ok(None);
        }
        let node = diesel::update(paas_nodes::table.find(node.id))
            .set((
                paas_nodes::registration_token_digest.eq(None::<String>),
                paas_nodes::registration_expires_at.eq(None::<DateTime<Utc>>),
                paas_nodes::credential_digest.eq(credential_digest),
                paas_nodes::credential_issued_at.eq(Utc::now()),
                paas_nodes::hostname.eq(info.hostname),
                paas_nodes::agent_version.eq(info.agent_version),
                paas_nodes::cpu_total.eq(info.cpu_total),
                paas_nodes::memory_total.eq(info.memory_total_mb),
                paas_nodes::disk_total.eq(info.disk_total_mb),
            ))
            .returning(Node::as_returning())
            .get_result(conn)
            .await?;
        Ok::<_, Error>(Some(node))
    })
    .await
}

/// The node a credential belongs to: its current credential, or the previous
/// one within its grace period (then `true`: the node has not taken up its
/// rotated credential yet).
pub async fn authenticate(conn: &mut Conn, credential_digest: &str) -> Result<Option<(i64, bool)>> {
    let found: Option<(i64, Option<String>)> = paas_nodes::table
        .filter(
            paas_nodes::credential_digest.eq(credential_digest).or(
                paas_nodes::previous_credential_digest
                    .eq(credential_digest)
                    .and(paas_nodes::previous_credential_expires_at.gt(Utc::now())),
            ),
        )
        .select((paas_nodes::id, paas_nodes::credential_digest))
        .first(conn)
        .await
        .optional()?;
    Ok(found.map(|(node, current)| (node, current.as_deref() != Some(credential_digest))))
}

/// Replaces the node's credential when it is still `current_digest` (false:
/// it is not, e.g. a concurrent rotation won); the replaced one stays valid
/// for `grace`.
pub async fn rotate(
    conn: &mut Conn,
    node_id: i64,
    current_digest: &str,
    new_digest: &str,
    grace: chrono::Duration,
) -> Result<bool> {
    let updated = diesel::update(
        paas_nodes::table
            .find(node_id)
            .filter(paas_nodes::credential_digest.eq(current_digest)),
    )
    .set((
        paas_nodes::previous_credential_digest.eq(paas_nodes::credential_digest),
        paas_nodes::previous_credential_expires_at.eq(Utc::now() + grace),
        paas_nodes::credential_digest.eq(new_digest),
        paas_nodes::credential_issued_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// The digest of the node's current credential.
pub async fn credential_digest(conn: &mut Conn, node_id: i64) -> Result<Option<String>> {
    Ok(paas_nodes::table
        .find(node_id)
        .select(paas_nodes::credential_digest)
        .first::<Option<String>>(conn)
        .await?)
}

/// The figures of a heartbeat. CPU in millicores, memory and disk in MB.
#[derive(Debug, Clone)]
pub struct Figures {
    pub agent_version: String,
    pub cpu_total: i32,
    pub cpu_used: i32,
    pub memory_total: i32,
    pub memory_used: i32,
    pub disk_total: i32,
    pub disk_used: i32,
    pub container_count: i32,
    /// The platform's images on the node: how many, and their bytes.
    pub images: Option<(i32, i64)>,
}

/// Records a heartbeat's figures and, when given, a status change
/// `(from, to)`. The change is made only while the node is still `from` (an
/// admin may have disabled it meanwhile); the answer is the node as stored.
pub async fn record_heartbeat(
    conn: &mut Conn,
    node_id: i64,
    figures: &Figures,
    change: Option<(NodeStatus, NodeStatus)>,
) -> Result<Node> {
    use diesel::dsl::case_when;
    use diesel::sql_types::Text;
    // One statement: the status moves only while it is still `from`.
    let (from, to) = change.map_or((None, None), |(f, t)| (Some(f.as_str()), Some(t.as_str())));
    let status = case_when(
        paas_nodes::status
            .nullable()
            .eq(from.into_sql::<diesel::sql_types::Nullable<Text>>()),
        to.unwrap_or_default().into_sql::<Text>(),
    )
    .otherwise(paas_nodes::status);
    Ok(diesel::update(paas_nodes::table.find(node_id))
        .set((
            paas_nodes::agent_version.eq(&figures.agent_version),
            paas_nodes::cpu_total.eq(figures.cpu_total),
            paas_nodes::cpu_used.eq(figures.cpu_used),
            paas_nodes::memory_total.eq(figures.memory_total),
            paas_nodes::memory_used.eq(figures.memory_used),
            paas_nodes::disk_total.eq(figures.disk_total),
            paas_nodes::disk_used.eq(figures.disk_used),
            paas_nodes::container_count.eq(figures.container_count),
            paas_nodes::image_count.eq(figures.images.map(|i| i.0)),
            paas_nodes::image_bytes.eq(figures.images.map(|i| i.1)),
            paas_nodes::last_heartbeat.eq(Utc::now()),
            paas_nodes::status.eq(status),
        ))
        .returning(Node::as_returning())
        .get_result(conn)
        .await?)
}

/// A heartbeat's figures, as received at `at`, waiting to be recorded.
#[derive(Debug, Clone)]
pub struct Beat {
    pub node_id: i64,
    pub figures: Figures,
    pub at: DateTime<Utc>,
}

/// Records the figures of many nodes' heartbeats in one statement: the
/// beats of an interval cost one round trip and one commit, not one per
/// node. Status is not touched (a change is written at once, by
/// [`record_heartbeat`]). Answers how many nodes were updated.
pub async fn record_heartbeats(conn: &mut Conn, beats: &[Beat]) -> Result<usize> {
    use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
    if beats.is_empty() {
        return Ok(0);
    }
    let column = |f: fn(&Beat) -> i32| beats.iter().map(f).collect::<Vec<i32>>();
    Ok(diesel::sql_query(
        "UPDATE paas_nodes n
            SET agent_version = b.agent_version, cpu_total = b.cpu_total, cpu_used = b.cpu_used,
                memory_total = b.memory_total, memory_used = b.memory_used,
                disk_total = b.disk_total, disk_used = b.disk_used,
                container_count = b.container_count, image_count = b.image_count,
                image_bytes = b.image_bytes, last_heartbeat = b.at
           FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                AS b(id, agent_version, cpu_total, cpu_used, memory_total, memory_used,
                     disk_total, disk_used, container_count, image_count, image_bytes, at)
          WHERE n.id = b.id",
    )
    .bind::<Array<BigInt>, _>(beats.iter().map(|b| b.node_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        beats
            .iter()
            .map(|b| b.figures.agent_version.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Integer>, _>(column(|b| b.figures.cpu_total))
    .bind::<Array<Integer>, _>(column(|b| b.figures.cpu_used))
    .bind::<Array<Integer>, _>(column(|b| b.figures.memory_total))
    .bind::<Array<Integer>, _>(column(|b| b.figures.memory_used))
    .bind::<Array<Integer>, _>(column(|b| b.figures.disk_total))
    .bind::<Array<Integer>, _>(column(|b| b.figures.disk_used))
    .bind::<Array<Integer>, _>(column(|b| b.figures.container_count))
    .bind::<Array<Nullable<Integer>>, _>(
        beats
            .iter()
            .map(|b| b.figures.images.map(|i| i.0))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<BigInt>>, _>(
        beats
            .iter()
            .map(|b| b.figures.images.map(|i| i.1))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Timestamptz>, _>(beats.iter().map(|b| b.at).collect::<Vec<_>>())
    .execute(conn)
    .await?)
}

/// Moves a node from `from` to `to` (the caller checked the transition);
/// `None` when the node is no longer `from`.
pub async fn change_status(
    conn: &mut Conn,
    node_id: i64,
    from: NodeStatus,
    to: NodeStatus,
) -> Result<Option<Node>> {
    Ok(diesel::update(
        paas_nodes::table
            .find(node_id)
            .filter(paas_nodes::status.eq(from.as_str())),
    )
    .set(paas_nodes::status.eq(to.as_str()))
    .returning(Node::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Every node id, for rebuilding the node actors.
pub async fn all_ids(conn: &mut Conn) -> Result<Vec<i64>> {
    Ok(paas_nodes::table
        .select(paas_nodes::id)
        .order(paas_nodes::id)
        .load(conn)
        .await?)
}
