//! Instances: the application containers nodes report running (or not). Each
//! application actor replaces its set with the newest report of its node (a
//! task's outcome or a heartbeat), older ones arriving late are ignored.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use skypanel_protocol::node::ContainerReport;

use crate::apps::owned_id;
use crate::schema::paas_instances;
use crate::{Conn, Error, Result};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_instances, check_for_backend(diesel::pg::Pg))]
pub struct Instance {
    pub id: i64,
    pub application_id: i64,
    pub node_id: i64,
    pub container_name: String,
    pub container_id: String,
    pub release_version: i32,
    pub instance: i32,
    pub generation: i64,
    pub state: String,
    pub host_port: Option<i32>,
    pub restart_count: i32,
    pub crash_looping: bool,
    pub cpu_percent: f64,
    pub memory_used_mb: i64,
    pub observed_at: DateTime<Utc>,
    /// `web`, `worker` …
    pub process_type: String,
    /// When it was first reported running since its last (re)start.
    pub started_at: Option<DateTime<Utc>>,
}

#[derive(Insertable, AsChangeset)]
#[diesel(table_name = paas_instances)]
struct Row<'a> {
    application_id: i64,
    node_id: i64,
    container_name: &'a str,
    container_id: &'a str,
    release_version: i32,
    instance: i32,
    generation: i64,
    state: &'a str,
    host_port: Option<i32>,
    restart_count: i32,
    crash_looping: bool,
    cpu_percent: f64,
    memory_used_mb: i64,
    observed_at: DateTime<Utc>,
    process_type: &'a str,
}

fn row(node_id: i64, r: &ContainerReport) -> Row<'_> {
    Row {
        application_id: r.application_id,
        node_id,
        container_name: &r.name,
        container_id: &r.container_id,
        release_version: r.release,
        instance: r.instance,
        generation: r.generation,
        state: r.state.as_str(),
        host_port: r.host_port,
        restart_count: r.restart_count,
        crash_looping: r.crash_looping,
        cpu_percent: r.cpu_usage_percent,
        memory_used_mb: r.memory_used_mb,
        observed_at: Utc::now(),
        process_type: &r.process,
    }
}

async fn upsert(conn: &mut Conn, node_id: i64, reports: &[&ContainerReport]) -> Result<()> {
    for report in reports {
        let row = row(node_id, report);
        let running = report.state == skypanel_protocol::node::ContainerState::Running;
        // A start is a container seen running that was not, is another
        // container, or was restarted since the last report.
        let started = diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>(
            "CASE WHEN excluded.state <> 'running' THEN NULL \
                  WHEN paas_instances.state <> 'running' \
                    OR paas_instances.container_id <> excluded.container_id \
                    OR paas_instances.restart_count <> excluded.restart_count \
                    OR paas_instances.started_at IS NULL THEN now() \
                  ELSE paas_instances.started_at END",
        );
        diesel::insert_into(paas_instances::table)
            .values((&row, paas_instances::started_at.eq(running.then(Utc::now))))
            .on_conflict(paas_instances::container_name)
            .do_update()
            .set((&row, paas_instances::started_at.eq(started)))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Replaces what is recorded for one application with a node's report (a
/// task's outcome, or a heartbeat newer than what was recorded).
pub async fn sync_app(
    conn: &mut Conn,
    application_id: i64,
    node_id: i64,
    reports: &[ContainerReport],
) -> Result<()> {
    conn.transaction(async |conn| {
        let kept: Vec<&ContainerReport> = reports
            .iter()
            .filter(|r| r.application_id == application_id)
            .collect();
        let names: Vec<&str> = kept.iter().map(|r| r.name.as_str()).collect();
        diesel::delete(
            paas_instances::table
                .filter(paas_instances::application_id.eq(application_id))
                .filter(paas_instances::container_name.ne_all(&names)),
        )
        .execute(conn)
        .await?;
        upsert(conn, node_id, &kept).await?;
        Ok::<_, Error>(())
    })
    .await
}

/// The owner's application's instances, by release and instance number.
pub async fn list_for_owner(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
) -> Result<Vec<Instance>> {
    Ok(paas_instances::table
        .filter(paas_instances::application_id.eq_any(owned_id(owner, application_id)))
        .order((
            paas_instances::release_version,
            paas_instances::process_type,
            paas_instances::instance,
        ))
        .select(Instance::as_select())
        .load(conn)
        .await?)
}

/// An application's instances, for the actors.
pub async fn list_for_app(conn: &mut Conn, application_id: i64) -> Result<Vec<Instance>> {
    Ok(paas_instances::table
        .filter(paas_instances::application_id.eq(application_id))
        .order((
            paas_instances::release_version,
            paas_instances::process_type,
            paas_instances::instance,
        ))
        .select(Instance::as_select())
        .load(conn)
        .await?)
}
