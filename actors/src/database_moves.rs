//! Databases that move to another node of their region because their own
//! has no room for the plan their owner asked for. The move is a dump and a
//! restore: the node it leaves dumps it (cut off from its network first, so
//! nothing written after the dump began is lost) and hands the dump to the
//! control plane, which keeps it under `transfer_root`; the node it goes to
//! provisions it with the new plan and restores the dump before it counts
//! as running. The owner is told before how long it should take and after
//! how long it took. A failure at any step puts it back on the node it left
//! with its old plan and data (the new node's copy is removed) and says why.
//! A database linked into applications does not move: it is reachable only
//! from its own node's network.

use diesel_async::AsyncConnection;
use skypanel_domain::lifecycle::DatabaseEvent;
use skypanel_protocol::database::{DatabaseTarget, ExportSpec, ImportSpec};
use skypanel_protocol::task::{TaskResult, TaskSpec};
use skypanel_store::catalog::{self, Plan};
use skypanel_store::database_moves::{self, Move, NewMove};
use skypanel_store::databases::{self, Database};
use skypanel_store::tasks::Task;
use skypanel_store::{Conn, nodes};

use crate::app_work::{TaskOf, create_task};
use crate::context::Context;
use crate::databases::{notify, password_of, provision_spec, queue};
use crate::error::Error;
use crate::scheduler::{Placed, Requirement};

/// What the estimate told to the owner assumes: dump, copy and restore
/// together at this many bytes a second, after a fixed start.
const ESTIMATE_BYTES_PER_SECOND: i64 = 10 * 1024 * 1024;
const ESTIMATE_START_SECONDS: i64 = 30;

/// The seconds a move of `size_bytes` of data is expected to take.
pub fn estimate_seconds(size_bytes: i64) -> i32 {
    let seconds = ESTIMATE_START_SECONDS + size_bytes.max(0) / ESTIMATE_BYTES_PER_SECOND;
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

/// Where the control plane keeps a move's dump while it travels.
pub fn dump_file(ctx: &Context, move_id: i64) -> std::path::PathBuf {
    ctx.settings()
        .transfer_root
        .join(format!("move-{move_id}.dump"))
}

/// Moves a running database whose node refused `plan` (`refused` says
/// why) to another node of its region with room for it. Answers the
/// database, pending while it moves; when it cannot move, `refused` with
/// the reason it cannot, and nothing changes.
pub(crate) async fn start(
    ctx: &Context,
    db: &Database,
    plan: &Plan,
    refused: String,
) -> Result<Database, Error> {
    let Some(from) = db.node_id else {
        return Err(Error::NoCapacity(refused));
    };
    let mut conn = ctx.store().conn().await?;
    // Only a node that answers can hand its data over.
    let node = nodes::get(&mut conn, from).await?;
    if !matches!(node.status.as_str(), "online" | "degraded") {
        return Err(Error::NoCapacity(refused));
    }
    let linked = databases::linked_applications(&mut conn, db.id).await?;
    if !linked.is_empty() {
        return Err(Error::NoCapacity(format!(
            "{refused}; it cannot move to another node while applications are linked to it \
             ({}): a database is reachable only on its own node",
            linked.join(", ")
        )));
    }
    let current = catalog::get_plan(&mut conn, db.plan_id).await?;
    let size = databases::health_of(&mut conn, db.id)
        .await?
        .and_then(|h| h.size_bytes)
        .unwrap_or(0);
    drop(conn);
    let requirement = Requirement {
        entity: Placed::Database(db.id),
        region: db.region.clone(),
        cpu: i64::from(plan.cpu_limit),
        memory: i64::from(plan.memory_limit),
        current: Some(from),
        held: (
            i64::from(current.cpu_limit),
            i64::from(current.memory_limit),
        ),
        may_move: true,
    };
    let to = match crate::scheduler::place(ctx, requirement).await {
        Ok(to) if to != from => to,
        // Room was freed on its own node meanwhile: the owner tries again.
        Ok(_) => return Err(Error::NoCapacity(format!("{refused}; try again"))),
        Err(Error::NoCapacity(_)) => {
            return Err(Error::NoCapacity(format!(
                "no node of region \"{}\" has room for {} millicores and {} MB (neither the one \
                 holding this database's data nor another); pick a smaller plan",
                db.region, plan.cpu_limit, plan.memory_limit
            )));
        }
        Err(err) => return Err(err),
    };
    // The Scheduler recorded the new node; the rest is one transaction, and
    // when it fails the database is put back on its node as if nothing happened.
    let estimated = estimate_seconds(size);
    let (at, to_plan) = (ctx.now(), plan.id);
    let mut conn = ctx.store().conn().await?;
    let begun = conn
        .transaction(async |conn| {
            let resized = databases::resize(conn, db.user_id, db.id, to_plan, at).await?;
            let new = NewMove {
                database_id: db.id,
                from_node_id: from,
                to_node_id: to,
                from_plan_id: db.plan_id,
                to_plan_id: to_plan,
                estimated_seconds: estimated,
                started_at: at,
            };
            let moving = database_moves::begin(conn, &new).await?;
            let mut spec = TaskSpec::DbExport(ExportSpec {
                database_id: db.id,
                user_id: db.user_id,
                db_type: db.db_type.clone(),
                move_id: moving.id,
                username: db.username.clone().unwrap_or_default(),
                database_name: db.database_name.clone().unwrap_or_default(),
                password: password_of(conn, ctx, db.id).await?,
            });
            let of = TaskOf {
                node: from,
                application_id: None,
                database_id: Some(db.id),
                build_id: None,
                generation: None,
            };
            let task = create_task(conn, ctx, of, &mut spec).await?;
            database_moves::set_export_task(conn, moving.id, task.id).await?;
            Ok::<_, skypanel_store::Error>(resized)
        })
        .await;
    let moving = match begun {
        Ok(db) => db,
        Err(err) => {
            databases::place(&mut conn, db.id, from).await?;
            return Err(err.into());
        }
    };
    let message = format!(
        "Database {} moves to another node for plan {} ({} millicores, {} MB): its node has no \
         room for it. It is dumped ({}), copied and restored there, which should take about {}; \
         it cannot be reached meanwhile. Its host name, user and password stay the same.",
        db.name,
        plan.name,
        plan.cpu_limit,
        plan.memory_limit,
        megabytes(size),
        duration(i64::from(estimated)),
    );
    notify(&mut conn, ctx, &moving, "database_resized", &message, &[]).await?;
    tracing::info!(
        database_id = db.id,
        from,
        to,
        estimated,
        "database moving to another node"
    );
    Ok(moving)
}

/// A task of a move under way ended: the move goes on, succeeds or is
/// undone. Answers whether the task was a move's (the caller does nothing
/// more with it).
pub(crate) async fn task_finished(
    ctx: &Context,
    task: &Task,
    database_id: i64,
) -> Result<bool, Error> {
    let mut conn = ctx.store().conn().await?;
    let Some(moving) = database_moves::active(&mut conn, database_id).await? else {
        return Ok(false);
    };
    drop(conn);
    let export = moving.export_task_id == Some(task.id);
    let import = moving.import_task_id == Some(task.id);
    if !(export || import) {
        return Ok(false);
    }
    let failure = || {
        task.error
            .clone()
            .unwrap_or_else(|| format!("its {} task ended {}", task.kind, task.status))
    };
    match (task.status.as_str(), export) {
        ("succeeded", true) => exported(ctx, &moving, task).await?,
        ("succeeded", false) => arrived(ctx, &moving).await?,
        ("failed" | "cancelled", true) => {
            let reason = format!("its dump on the node it leaves failed: {}", failure());
            undo(ctx, &moving, &reason).await?
        }
        ("failed" | "cancelled", false) => {
            let reason = format!("its restore on the new node failed: {}", failure());
            undo(ctx, &moving, &reason).await?
        }
        _ => {}
    }
    Ok(true)
}

/// The node it leaves handed the dump over: the new node provisions the
/// database with the new plan and restores the dump.
async fn exported(ctx: &Context, moving: &Move, task: &Task) -> Result<(), Error> {
    let result = TaskResult::from_json(task.result.as_ref());
    let Some(dump) = result.backup.filter(|b| b.backup_id == moving.id) else {
        return undo(ctx, moving, "the node it leaves reported no dump").await;
    };
    let kept = tokio::fs::metadata(dump_file(ctx, moving.id))
        .await
        .map(|m| m.len())
        .ok();
    if kept != u64::try_from(dump.size_bytes).ok() {
        return undo(
            ctx,
            moving,
            "the dump the control plane holds is not the one the node made",
        )
        .await;
    }
    let mut conn = ctx.store().conn().await?;
    let db = databases::by_id(&mut conn, moving.database_id).await?;
    let plan = catalog::get_plan(&mut conn, moving.to_plan_id).await?;
    let import = ImportSpec {
        move_id: moving.id,
        size_bytes: dump.size_bytes,
        sha256: dump.sha256.clone(),
    };
    let (to, id) = (moving.to_node_id, moving.id);
    let mut spec = provision_spec(&mut conn, ctx, &db, &plan, Some(import)).await?;
    conn.transaction(async |conn| {
        let of = TaskOf {
            node: to,
            application_id: None,
            database_id: Some(db.id),
            build_id: None,
            generation: None,
        };
        let task = create_task(conn, ctx, of, &mut spec).await?;
        if database_moves::exported(conn, id, dump.size_bytes, &dump.sha256, task.id).await? {
            Ok(())
        } else {
            // Carried on by another report already: this task is not written.
            Err(skypanel_store::Error::Stale)
        }
    })
    .await
    .or_else(|err| match err {
        skypanel_store::Error::Stale => Ok(()),
        other => Err(other),
    })?;
    tracing::info!(
        database_id = db.id,
        move_id = id,
        size = dump.size_bytes,
        "database dumped; restoring it on its new node"
    );
    Ok(())
}

/// The new node restored the dump and runs the database: it is running
/// (billed at its new plan), its old copy goes, its owner is told.
async fn arrived(ctx: &Context, moving: &Move) -> Result<(), Error> {
    let mut conn = ctx.store().conn().await?;
    if !database_moves::finish(&mut conn, moving.id, None, ctx.now()).await? {
        return Ok(());
    }
    let db = match databases::transition(
        &mut conn,
        moving.database_id,
        DatabaseEvent::Provisioned,
        None,
        ctx.now(),
    )
    .await
    {
        Ok(db) => db,
        Err(skypanel_store::Error::NotFound | skypanel_store::Error::Conflict { .. }) => {
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    };
    forget_old_copy(&mut conn, ctx, &db, moving.from_node_id).await?;
    discard_dump(ctx, moving.id).await;
    let plan = catalog::get_plan(&mut conn, moving.to_plan_id).await?;
    let took = (ctx.now() - moving.started_at).num_seconds();
    let message = format!(
        "Database {} moved to another node and runs with plan {} ({} millicores, {} MB): \
         {} of data, moved in {} (about {} was expected).",
        db.name,
        plan.name,
        plan.cpu_limit,
        plan.memory_limit,
        megabytes(moving.size_bytes.unwrap_or(0)),
        duration(took),
        duration(i64::from(moving.estimated_seconds)),
    );
    notify(&mut conn, ctx, &db, "database_moved", &message, &[]).await?;
    tracing::info!(database_id = db.id, took, "database moved");
    Ok(())
}

/// Removes the database's container and data on the node it left.
async fn forget_old_copy(
    conn: &mut Conn,
    ctx: &Context,
    db: &Database,
    node: i64,
) -> Result<(), Error> {
    let spec = TaskSpec::DbDelete(DatabaseTarget {
        database_id: db.id,
        user_id: db.user_id,
        purge: true,
    });
    queue(conn, ctx, node, db.id, spec).await?;
    Ok(())
}

/// Undoes a move: its copy on the new node (if the restore began there)
/// goes, the database is provisioned again on the node it left with its old
/// plan and data, and its owner is told why.
async fn undo(ctx: &Context, moving: &Move, reason: &str) -> Result<(), Error> {
    let mut conn = ctx.store().conn().await?;
    if !database_moves::finish(&mut conn, moving.id, Some(reason), ctx.now()).await? {
        return Ok(());
    }
    let db = match databases::by_id(&mut conn, moving.database_id).await {
        Ok(db) => db,
        Err(skypanel_store::Error::NotFound) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    if moving.import_task_id.is_some() {
        forget_old_copy(&mut conn, ctx, &db, moving.to_node_id).await?;
    }
    let db = databases::rehome(&mut conn, db.id, moving.from_node_id, moving.from_plan_id).await?;
    let plan = catalog::get_plan(&mut conn, moving.from_plan_id).await?;
    let spec = provision_spec(&mut conn, ctx, &db, &plan, None).await?;
    queue(&mut conn, ctx, moving.from_node_id, db.id, spec).await?;
    discard_dump(ctx, moving.id).await;
    let message = format!(
        "Database {} could not move to another node ({reason}). It starts again on its own \
         node with plan {} and its data as it was; nothing written to it was lost.",
        db.name, plan.name
    );
    notify(&mut conn, ctx, &db, "database_move_failed", &message, &[]).await?;
    tracing::warn!(database_id = db.id, reason, "database move undone");
    Ok(())
}

/// Removes a move's dump from the control plane (a missing one is fine).
async fn discard_dump(ctx: &Context, move_id: i64) {
    let path = dump_file(ctx, move_id);
    if let Err(err) = tokio::fs::remove_file(&path).await
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(move_id, error = %err, "cannot remove a move's dump");
    }
}

/// `bytes` for people: "12.3 MB".
fn megabytes(bytes: i64) -> String {
    format!("{:.1} MB", bytes.max(0) as f64 / 1_000_000.0)
}

/// `seconds` for people: "45 s", "3 min 20 s".
fn duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    if seconds < 60 {
        format!("{seconds} s")
    } else {
        format!("{} min {} s", seconds / 60, seconds % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_grows_with_the_data_from_a_fixed_start() {
        assert_eq!(estimate_seconds(0), 30);
        assert_eq!(estimate_seconds(-5), 30);
        assert_eq!(estimate_seconds(100 * 1024 * 1024), 40);
        assert_eq!(estimate_seconds(i64::MAX), i32::MAX);
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(200), "3 min 20 s");
        assert_eq!(megabytes(12_345_678), "12.3 MB");
    }
}
