//! Managed databases through the orchestrator: placement by the Scheduler,
//! the node's `db.provision` and `db.delete` tasks (the password sealed with
//! the task, never in its payload), and what a finished task means for the
//! database's state (checked against `domain::lifecycle::database`, with
//! its usage interval kept in line).

use diesel_async::AsyncConnection;
use skypanel_domain::lifecycle::DatabaseEvent;
use skypanel_protocol::database::{DatabaseSpec, DatabaseTarget};
use skypanel_protocol::task::TaskSpec;
use skypanel_store::databases::{self, Database};
use skypanel_store::tasks::Task;
use skypanel_store::{Conn, catalog};

use crate::app_work::{TaskOf, create_task};
use crate::context::Context;
use crate::error::Error;
use crate::scheduler::{Placed, Requirement};

/// Places the database and queues its provisioning on the chosen node.
pub(crate) async fn provision(ctx: &Context, db: &Database) -> Result<i64, Error> {
    let mut conn = ctx.store().conn().await?;
    let plan = catalog::get_plan(&mut conn, db.plan_id).await?;
    drop(conn);
    let requirement = Requirement {
        entity: Placed::Database(db.id),
        region: db.region.clone(),
        cpu: i64::from(plan.cpu_limit),
        memory: i64::from(plan.memory_limit),
        current: db.node_id,
        held: if db.node_id.is_some() {
            (i64::from(plan.cpu_limit), i64::from(plan.memory_limit))
        } else {
            (0, 0)
        },
        may_move: db.node_id.is_none(),
    };
    let node = crate::scheduler::place(ctx, requirement).await?;
    let mut conn = ctx.store().conn().await?;
    let sealed = databases::sealed_password(&mut conn, db.user_id, db.id).await?;
    let password = ctx
        .secrets()
        .open_str(&sealed, &Database::password_associated_data(db.id))
        .map_err(|e| {
            skypanel_store::Error::Corrupt(format!("password of database {}: {e}", db.id))
        })?;
    let spec = TaskSpec::DbProvision(DatabaseSpec {
        database_id: db.id,
        user_id: db.user_id,
        db_type: db.db_type.clone(),
        image: db.image.clone().unwrap_or_default(),
        username: db.username.clone().unwrap_or_default(),
        database_name: db.database_name.clone().unwrap_or_default(),
        password,
        cpu_millicores: plan.cpu_limit,
        memory_mb: plan.memory_limit,
        pids_limit: ctx.settings().pids_limit,
    });
    queue(&mut conn, ctx, node, db.id, spec).await?;
    tracing::info!(
        database_id = db.id,
        node_id = node,
        "database provisioning queued"
    );
    Ok(node)
}

/// Suspends the owner's running and stopped databases: stopped on their
/// nodes (data kept), no longer billed. Answers the ids suspended.
pub(crate) async fn suspend_owner(ctx: &Context, user_id: i64) -> Result<Vec<i64>, Error> {
    let mut conn = ctx.store().conn().await?;
    let list = databases::of_owner_with_status(&mut conn, user_id, &["running", "stopped"]).await?;
    let mut done = Vec::new();
    for db in list {
        databases::transition(&mut conn, db.id, DatabaseEvent::Suspend, None, ctx.now()).await?;
        if let Some(node) = db.node_id {
            let spec = TaskSpec::DbStop(DatabaseTarget {
                database_id: db.id,
                user_id,
                purge: false,
            });
            queue(&mut conn, ctx, node, db.id, spec).await?;
        }
        done.push(db.id);
    }
    Ok(done)
}

/// Resumes the owner's suspended databases: running (and billed) again,
/// started on their nodes. Answers the ids resumed.
pub(crate) async fn resume_owner(ctx: &Context, user_id: i64) -> Result<Vec<i64>, Error> {
    let mut conn = ctx.store().conn().await?;
    let list = databases::of_owner_with_status(&mut conn, user_id, &["suspended"]).await?;
    drop(conn);
    let mut done = Vec::new();
    for db in list {
        let mut conn = ctx.store().conn().await?;
        let db =
            databases::transition(&mut conn, db.id, DatabaseEvent::Resume, None, ctx.now()).await?;
        drop(conn);
        provision(ctx, &db).await?;
        done.push(db.id);
    }
    Ok(done)
}

/// Queues the removal of a deleted database's container (and data with `purge`).
pub(crate) async fn remove(ctx: &Context, db: &Database, purge: bool) -> Result<(), Error> {
    let Some(node) = db.node_id else {
        return Ok(());
    };
    let spec = TaskSpec::DbDelete(DatabaseTarget {
        database_id: db.id,
        user_id: db.user_id,
        purge,
    });
    let mut conn = ctx.store().conn().await?;
    queue(&mut conn, ctx, node, db.id, spec).await?;
    Ok(())
}

/// Writes a database's task, its secrets sealed apart from the payload.
async fn queue(
    conn: &mut Conn,
    ctx: &Context,
    node: i64,
    database_id: i64,
    mut spec: TaskSpec,
) -> skypanel_store::Result<Task> {
    let of = TaskOf {
        node,
        application_id: None,
        // A deleted database's row is gone: its removal task stands alone.
        database_id: (!matches!(spec, TaskSpec::DbDelete(_))).then_some(database_id),
        build_id: None,
        generation: None,
    };
    // One transaction: the node must never lease the task before its
    // secrets are written (it would start the engine without a password).
    conn.transaction(async |conn| create_task(conn, ctx, of, &mut spec).await)
        .await
}

/// A database's provisioning task ended: the database runs, or failed with the reason.
pub(crate) async fn task_finished(
    ctx: &Context,
    task: &Task,
    database_id: i64,
) -> Result<(), Error> {
    if task.kind != "db.provision" {
        return Ok(());
    }
    let (event, reason) = match task.status.as_str() {
        "succeeded" => (DatabaseEvent::Provisioned, None),
        "failed" | "cancelled" => (
            DatabaseEvent::Fail,
            Some(
                task.error
                    .clone()
                    .unwrap_or_else(|| "provisioning failed".into()),
            ),
        ),
        _ => return Ok(()),
    };
    let mut conn = ctx.store().conn().await?;
    match databases::transition(&mut conn, database_id, event, reason.as_deref(), ctx.now()).await {
        Ok(db) => {
            tracing::info!(database_id, status = %db.status, "database provisioning ended");
            Ok(())
        }
        // Deleted meanwhile, or already past this (a repeated report).
        Err(skypanel_store::Error::NotFound | skypanel_store::Error::Conflict { .. }) => Ok(()),
        Err(err) => Err(err.into()),
    }
}
