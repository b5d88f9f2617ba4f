//! Managed databases through the orchestrator: placement by the Scheduler,
//! the node's `db.provision` and `db.delete` tasks (the password sealed with
//! the task, never in its payload), and what a finished task means for the
//! database's state (checked against `domain::lifecycle::database`, with
//! its usage interval kept in line).

use diesel_async::AsyncConnection;
use skypanel_domain::lifecycle::DatabaseEvent;
use skypanel_protocol::database::{
    BackupSpec, DatabaseSpec, DatabaseTarget, ImportSpec, RestoreSpec,
};
use skypanel_protocol::task::TaskSpec;
use skypanel_store::backups::{self, Backup, Restore};
use skypanel_store::catalog::Plan;
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
    let node = place(ctx, db, &plan).await?;
    queue_provision(ctx, db, node, &plan).await?;
    Ok(node)
}

/// The node that runs the database with `plan`'s limits: its own node when
/// that has room (counting what the database holds there now, at its
/// current plan), any node of its region with room when it has none yet.
async fn place(ctx: &Context, db: &Database, plan: &Plan) -> Result<i64, Error> {
    let holds = db.node_id.is_some() && db.status().is_ok_and(|s| s.holds_capacity());
    let held = if holds {
        let mut conn = ctx.store().conn().await?;
        let current = catalog::get_plan(&mut conn, db.plan_id).await?;
        (
            i64::from(current.cpu_limit),
            i64::from(current.memory_limit),
        )
    } else {
        (0, 0)
    };
    let requirement = Requirement {
        entity: Placed::Database(db.id),
        region: db.region.clone(),
        cpu: i64::from(plan.cpu_limit),
        memory: i64::from(plan.memory_limit),
        current: db.node_id,
        held,
        may_move: db.node_id.is_none(),
    };
    crate::scheduler::place(ctx, requirement).await
}

/// Queues the database's provisioning (with `plan`'s limits) on `node`.
async fn queue_provision(
    ctx: &Context,
    db: &Database,
    node: i64,
    plan: &Plan,
) -> Result<(), Error> {
    let mut conn = ctx.store().conn().await?;
    let spec = provision_spec(&mut conn, ctx, db, plan, None).await?;
    queue(&mut conn, ctx, node, db.id, spec).await?;
    tracing::info!(
        database_id = db.id,
        node_id = node,
        "database provisioning queued"
    );
    Ok(())
}

/// The provisioning task of `db` at `plan`'s limits (its password
/// opened), starting from a moving database's dump with `import`.
pub(crate) async fn provision_spec(
    conn: &mut Conn,
    ctx: &Context,
    db: &Database,
    plan: &Plan,
    import: Option<ImportSpec>,
) -> skypanel_store::Result<TaskSpec> {
    let password = password_of(conn, ctx, db.id).await?;
    Ok(TaskSpec::DbProvision(DatabaseSpec {
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
        import,
    }))
}

/// Stops a running database at its owner's request: its container stops
/// on its node (the data stays), its billing and the capacity it held end
/// now, and when applications are linked to it the owner gets a notice
/// naming them (they cannot reach it until it starts again).
pub(crate) async fn stop(ctx: &Context, db: &Database) -> Result<Database, Error> {
    let mut conn = ctx.store().conn().await?;
    if db.status == "stopped" {
        return Ok(db.clone());
    }
    let stopped =
        databases::transition(&mut conn, db.id, DatabaseEvent::Stop, None, ctx.now()).await?;
    if let Some(node) = stopped.node_id {
        let spec = TaskSpec::DbStop(DatabaseTarget {
            database_id: db.id,
            user_id: db.user_id,
            purge: false,
        });
        queue(&mut conn, ctx, node, db.id, spec).await?;
    }
    let linked = databases::linked_applications(&mut conn, db.id).await?;
    if !linked.is_empty() {
        let message = format!(
            "Database {} is stopped; {} cannot reach it until it is started again",
            db.name,
            linked.join(", ")
        );
        notify(
            &mut conn,
            ctx,
            &stopped,
            "database_stopped",
            &message,
            &linked,
        )
        .await?;
    }
    Ok(stopped)
}

/// Starts a stopped (or failed) database again: placed on its node (which
/// must have room for its plan: otherwise nothing changes and the answer
/// says why), pending until the engine accepts connections, then running
/// and billed.
pub(crate) async fn start(ctx: &Context, db: &Database) -> Result<Database, Error> {
    if matches!(db.status.as_str(), "running" | "pending") {
        return Ok(db.clone());
    }
    let mut conn = ctx.store().conn().await?;
    let plan = catalog::get_plan(&mut conn, db.plan_id).await?;
    drop(conn);
    // Checked first, so a refused placement leaves the database as it was.
    skypanel_domain::lifecycle::database_transition(db.status()?, DatabaseEvent::Start)
        .map_err(|e| skypanel_store::Error::conflict(None, e.to_string()))?;
    let node = place(ctx, db, &plan).await?;
    let mut conn = ctx.store().conn().await?;
    let started =
        databases::transition(&mut conn, db.id, DatabaseEvent::Start, None, ctx.now()).await?;
    drop(conn);
    queue_provision(ctx, &started, node, &plan).await?;
    Ok(started)
}

/// Moves a database to `plan`. A running one is made again on its node
/// with the new limits on the same volume (pending for the few seconds the
/// engine restarts; the owner and the apps linked to it are told); a node
/// without room for the new plan refuses it and nothing changes. A stopped
/// one takes the plan for its next start.
pub(crate) async fn resize(ctx: &Context, db: &Database, plan: &Plan) -> Result<Database, Error> {
    if db.plan_id == plan.id {
        return Ok(db.clone());
    }
    let node = if db.status == "running" {
        match place(ctx, db, plan).await {
            Ok(node) => Some(node),
            // Its node has no room: another node of its region may.
            Err(Error::NoCapacity(refused)) => {
                return crate::database_moves::start(ctx, db, plan, refused).await;
            }
            Err(err) => return Err(err),
        }
    } else {
        None
    };
    let mut conn = ctx.store().conn().await?;
    let resized = databases::resize(&mut conn, db.user_id, db.id, plan.id, ctx.now()).await?;
    let Some(node) = node.filter(|_| resized.status == "pending") else {
        return Ok(resized);
    };
    let linked = databases::linked_applications(&mut conn, db.id).await?;
    let reach = if linked.is_empty() {
        String::new()
    } else {
        format!(" ({} cannot reach it meanwhile)", linked.join(", "))
    };
    let message = format!(
        "Database {} restarts with plan {} ({} millicores, {} MB): its engine shuts down and \
         starts again on the same data, usually within a minute{reach}",
        db.name, plan.name, plan.cpu_limit, plan.memory_limit
    );
    notify(
        &mut conn,
        ctx,
        &resized,
        "database_resized",
        &message,
        &linked,
    )
    .await?;
    drop(conn);
    queue_provision(ctx, &resized, node, plan).await?;
    Ok(resized)
}

/// A notice about a database to its owner, once per database, kind and change.
pub(crate) async fn notify(
    conn: &mut Conn,
    ctx: &Context,
    db: &Database,
    kind: &str,
    message: &str,
    linked: &[String],
) -> Result<(), Error> {
    let data = serde_json::json!({
        "database_id": db.id,
        "database": db.name,
        "plan_id": db.plan_id,
        "applications": linked,
    });
    let key = format!("{kind}:{}:{}", db.id, db.updated_at.timestamp_micros());
    skypanel_store::notifications::create_once(
        conn,
        db.user_id,
        kind,
        message,
        &data,
        &key,
        ctx.now(),
    )
    .await?;
    Ok(())
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
/// started on their nodes, or stopped when their owner had stopped them.
/// Answers the ids resumed.
pub(crate) async fn resume_owner(ctx: &Context, user_id: i64) -> Result<Vec<i64>, Error> {
    let mut conn = ctx.store().conn().await?;
    let list = databases::of_owner_with_status(&mut conn, user_id, &["suspended"]).await?;
    drop(conn);
    let mut done = Vec::new();
    for db in list {
        let mut conn = ctx.store().conn().await?;
        // One its owner had stopped comes back stopped.
        let event = if db.resume_stopped {
            DatabaseEvent::ResumeStopped
        } else {
            DatabaseEvent::Resume
        };
        let db = databases::transition(&mut conn, db.id, event, None, ctx.now()).await?;
        drop(conn);
        if event == DatabaseEvent::Resume {
            provision(ctx, &db).await?;
        }
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

/// What asking a database's node for a backup or a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handed {
    /// The node's task is queued (tied to the backup or restore).
    Task(i64),
    /// Another run handed it over already.
    Already,
    /// The database cannot do it now; the reason is for the customer.
    Refused(String),
}

/// The database's node and opened password, when it runs.
async fn running_on_node(
    ctx: &Context,
    database_id: i64,
) -> Result<Option<(Database, i64, String)>, Error> {
    let mut conn = ctx.store().conn().await?;
    let db = match databases::by_id(&mut conn, database_id).await {
        Ok(db) => db,
        Err(skypanel_store::Error::NotFound) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let Some(node) = db.node_id.filter(|_| db.status == "running") else {
        return Ok(None);
    };
    let password = password_of(&mut conn, ctx, db.id).await?;
    Ok(Some((db, node, password)))
}

/// A database's password, opened.
pub(crate) async fn password_of(
    conn: &mut Conn,
    ctx: &Context,
    id: i64,
) -> skypanel_store::Result<String> {
    let sealed = databases::sealed_password_of(conn, id).await?;
    ctx.secrets()
        .open_str(&sealed, &Database::password_associated_data(id))
        .map_err(|e| skypanel_store::Error::Corrupt(format!("password of database {id}: {e}")))
}

/// Queues a backup's dump on its database's node, tied to the backup in
/// the task's transaction (so two runs of the job queue one task). `keep`:
/// the earlier backups whose dumps stay on the node.
pub(crate) async fn start_backup(
    ctx: &Context,
    backup: &Backup,
    keep: Vec<i64>,
) -> Result<Handed, Error> {
    let Some((db, node, password)) = running_on_node(ctx, backup.database_id).await? else {
        return Ok(Handed::Refused("the database is not running".into()));
    };
    let spec = TaskSpec::DbBackup(BackupSpec {
        database_id: db.id,
        user_id: db.user_id,
        db_type: db.db_type.clone(),
        backup_id: backup.id,
        username: db.username.clone().unwrap_or_default(),
        database_name: db.database_name.clone().unwrap_or_default(),
        password,
        keep,
    });
    hand_over(ctx, node, db.id, spec, Tie::Backup(backup.id)).await
}

/// Queues a restore on its database's node, tied to the restore in the task's transaction.
pub(crate) async fn start_restore(ctx: &Context, restore: &Restore) -> Result<Handed, Error> {
    let Some(backup_id) = restore.backup_id else {
        return Ok(Handed::Refused("the backup no longer exists".into()));
    };
    let mut conn = ctx.store().conn().await?;
    let backup = match backups::backup_by_id(&mut conn, backup_id).await {
        Ok(b) => b,
        Err(skypanel_store::Error::NotFound) => {
            return Ok(Handed::Refused("the backup no longer exists".into()));
        }
        Err(err) => return Err(err.into()),
    };
    drop(conn);
    let Some((db, node, password)) = running_on_node(ctx, restore.database_id).await? else {
        return Ok(Handed::Refused("the database is not running".into()));
    };
    if backup.node_id != Some(node) {
        return Ok(Handed::Refused(
            "the backup is not on the database's node any more".into(),
        ));
    }
    let spec = TaskSpec::DbRestore(RestoreSpec {
        database_id: db.id,
        user_id: db.user_id,
        db_type: db.db_type.clone(),
        restore_id: restore.id,
        backup_id,
        sha256: backup.sha256.clone().unwrap_or_default(),
        username: db.username.clone().unwrap_or_default(),
        database_name: db.database_name.clone().unwrap_or_default(),
        password,
    });
    hand_over(ctx, node, db.id, spec, Tie::Restore(restore.id)).await
}

/// What a database's task is tied to.
#[derive(Clone, Copy)]
enum Tie {
    Backup(i64),
    Restore(i64),
}

/// Writes the task and ties it to its backup or restore, in one
/// transaction; when that one is tied already, nothing is written.
async fn hand_over(
    ctx: &Context,
    node: i64,
    database_id: i64,
    mut spec: TaskSpec,
    tie: Tie,
) -> Result<Handed, Error> {
    let at = ctx.now();
    let of = TaskOf {
        node,
        application_id: None,
        database_id: Some(database_id),
        build_id: None,
        generation: None,
    };
    let mut conn = ctx.store().conn().await?;
    let written = conn
        .transaction(async |conn| {
            let task = create_task(conn, ctx, of, &mut spec).await?;
            let tied = match tie {
                Tie::Backup(id) => backups::backup_started(conn, id, node, task.id, at).await?,
                Tie::Restore(id) => backups::restore_started(conn, id, task.id, at).await?,
            };
            if tied {
                Ok(task.id)
            } else {
                Err(skypanel_store::Error::Stale)
            }
        })
        .await;
    match written {
        Ok(task) => Ok(Handed::Task(task)),
        Err(skypanel_store::Error::Stale) => Ok(Handed::Already),
        Err(err) => Err(err.into()),
    }
}

/// Queues the purge of a deleted database's kept data (volume and dumps)
/// on its node, and marks it purged, in one transaction.
pub(crate) async fn purge_kept(ctx: &Context, volume: &backups::KeptVolume) -> Result<(), Error> {
    let mut spec = TaskSpec::DbDelete(DatabaseTarget {
        database_id: volume.database_id,
        user_id: volume.user_id,
        purge: true,
    });
    let of = TaskOf {
        node: volume.node_id,
        application_id: None,
        database_id: None,
        build_id: None,
        generation: None,
    };
    let (id, at) = (volume.id, ctx.now());
    let mut conn = ctx.store().conn().await?;
    conn.transaction(async |conn| {
        backups::mark_purged(conn, id, at).await?;
        create_task(conn, ctx, of, &mut spec).await
    })
    .await?;
    Ok(())
}

/// Writes a database's task, its secrets sealed apart from the payload.
pub(crate) async fn queue(
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

/// Node `node_id` reports that database `database_id`'s container crashed
/// too often and is left stopped: a running database there fails, with the
/// reason and a notice to its owner (once: a failed one is left as it is).
pub(crate) async fn crashed(ctx: &Context, node_id: i64, database_id: i64) -> Result<(), Error> {
    let mut conn = ctx.store().conn().await?;
    let db = match databases::by_id(&mut conn, database_id).await {
        Ok(db) => db,
        Err(skypanel_store::Error::NotFound) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    if db.node_id != Some(node_id) || db.status != "running" {
        return Ok(());
    }
    let reason = format!(
        "the database exited {} times within {} minutes; its node left it stopped \
         (its data is kept): start it again with POST /api/paas/databases/{database_id}/start",
        CRASH_RESTARTS + 1,
        CRASH_WINDOW_MINUTES
    );
    let failed = match databases::transition(
        &mut conn,
        database_id,
        DatabaseEvent::Fail,
        Some(&reason),
        ctx.now(),
    )
    .await
    {
        Ok(db) => db,
        Err(skypanel_store::Error::Conflict { .. }) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let linked = databases::linked_applications(&mut conn, database_id).await?;
    let message = format!("Database {} failed: {reason}", db.name);
    notify(
        &mut conn,
        ctx,
        &failed,
        "database_failed",
        &message,
        &linked,
    )
    .await?;
    tracing::warn!(database_id, node_id, "database crashed too often; failed");
    Ok(())
}

/// Keeps what node `node_id` measured of its databases; a failure to store
/// it is logged (the next measurement comes within a minute).
pub(crate) async fn record_health(
    ctx: &Context,
    node_id: i64,
    reports: &[skypanel_protocol::database::DatabaseHealthReport],
) {
    let measured: Vec<databases::Health> = reports
        .iter()
        .map(|r| databases::Health {
            database_id: r.database_id,
            size_bytes: r.size_bytes,
            connections: r.connections,
            measured_at: r.measured_at,
        })
        .collect();
    let recorded = async {
        let mut conn = ctx.store().conn().await?;
        databases::record_health(&mut conn, node_id, &measured).await
    };
    if let Err(err) = recorded.await {
        tracing::warn!(node_id, error = %err, "cannot keep the databases' health");
    }
}

/// The agent's crash policy: restarts within the window before it gives up.
const CRASH_RESTARTS: usize = 3;
const CRASH_WINDOW_MINUTES: u64 = 5;

/// A database's provisioning task ended: the database runs, or failed with
/// the reason (a moving database's tasks carry its move on instead).
pub(crate) async fn task_finished(
    ctx: &Context,
    task: &Task,
    database_id: i64,
) -> Result<(), Error> {
    if crate::database_moves::task_finished(ctx, task, database_id).await? {
        return Ok(());
    }
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
