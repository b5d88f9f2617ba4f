//! Backups and restores of managed databases, and the volumes kept after a
//! database is deleted without purging. One backup or restore runs at a
//! time per database (checked under the database's row lock); each is
//! `pending` until the job hands it to the node, `running` with its task,
//! then `succeeded` or `failed` with the reason, once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::schema::{
    paas_database_backups, paas_database_restores, paas_databases, paas_kept_volumes,
};
use crate::{Conn, Error, Result};

/// A dump of a database on its node.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_database_backups, check_for_backend(diesel::pg::Pg))]
pub struct Backup {
    pub id: i64,
    pub database_id: i64,
    pub user_id: i64,
    /// `manual` or `scheduled`.
    pub origin: String,
    pub status: String,
    pub node_id: Option<i64>,
    pub task_id: Option<i64>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A restore of a database from one of its backups.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_database_restores, check_for_backend(diesel::pg::Pg))]
pub struct Restore {
    pub id: i64,
    pub database_id: i64,
    pub user_id: i64,
    pub backup_id: Option<i64>,
    pub status: String,
    pub task_id: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Whether a status is an end.
pub fn is_finished(status: &str) -> bool {
    matches!(status, "succeeded" | "failed")
}

const UNFINISHED: [&str; 2] = ["pending", "running"];

/// Locks the owner's database and checks that it can take a backup or a
/// restore now: it runs, and nothing else is being done to it.
async fn lock_idle(conn: &mut Conn, owner: i64, database_id: i64) -> Result<()> {
    let status: String = paas_databases::table
        .filter(paas_databases::id.eq(database_id))
        .filter(paas_databases::user_id.eq(owner))
        .select(paas_databases::status)
        .for_update()
        .first(conn)
        .await?;
    if status != "running" {
        return Err(Error::conflict(
            None,
            format!("the database is {status}; backups and restores need it running"),
        ));
    }
    let backups: i64 = paas_database_backups::table
        .filter(paas_database_backups::database_id.eq(database_id))
        .filter(paas_database_backups::status.eq_any(UNFINISHED))
        .count()
        .get_result(conn)
        .await?;
    let restores: i64 = paas_database_restores::table
        .filter(paas_database_restores::database_id.eq(database_id))
        .filter(paas_database_restores::status.eq_any(UNFINISHED))
        .count()
        .get_result(conn)
        .await?;
    if backups + restores > 0 {
        return Err(Error::conflict(
            None,
            "a backup or restore of this database is in progress; try again when it ends",
        ));
    }
    Ok(())
}

/// Records a pending backup of the owner's running database.
pub async fn create_backup(
    conn: &mut Conn,
    owner: i64,
    database_id: i64,
    origin: &str,
) -> Result<Backup> {
    conn.transaction(async |conn| {
        lock_idle(conn, owner, database_id).await?;
        Ok(diesel::insert_into(paas_database_backups::table)
            .values((
                paas_database_backups::database_id.eq(database_id),
                paas_database_backups::user_id.eq(owner),
                paas_database_backups::origin.eq(origin),
            ))
            .returning(Backup::as_returning())
            .get_result(conn)
            .await?)
    })
    .await
}

/// Records a pending restore of the owner's running database from one of
/// its succeeded backups (another database's backup is `NotFound`).
pub async fn create_restore(
    conn: &mut Conn,
    owner: i64,
    database_id: i64,
    backup_id: i64,
) -> Result<Restore> {
    conn.transaction(async |conn| {
        lock_idle(conn, owner, database_id).await?;
        let backup = get_backup(conn, owner, database_id, backup_id).await?;
        if backup.status != "succeeded" {
            return Err(Error::conflict(
                Some("backup_id"),
                format!(
                    "backup {backup_id} is {}: only a succeeded backup can be restored",
                    backup.status
                ),
            ));
        }
        lock_idle(conn, owner, database_id).await?;
        Ok(diesel::insert_into(paas_database_restores::table)
            .values((
                paas_database_restores::database_id.eq(database_id),
                paas_database_restores::user_id.eq(owner),
                paas_database_restores::backup_id.eq(backup_id),
            ))
            .returning(Restore::as_returning())
            .get_result(conn)
            .await?)
    })
    .await
}

/// The owner's backup of a database.
pub async fn get_backup(conn: &mut Conn, owner: i64, database_id: i64, id: i64) -> Result<Backup> {
    Ok(paas_database_backups::table
        .filter(paas_database_backups::id.eq(id))
        .filter(paas_database_backups::database_id.eq(database_id))
        .filter(paas_database_backups::user_id.eq(owner))
        .select(Backup::as_select())
        .first(conn)
        .await?)
}

/// The owner's backups of a database, newest first.
pub async fn backups(
    conn: &mut Conn,
    owner: i64,
    database_id: i64,
    limit: i64,
) -> Result<Vec<Backup>> {
    Ok(paas_database_backups::table
        .filter(paas_database_backups::database_id.eq(database_id))
        .filter(paas_database_backups::user_id.eq(owner))
        .order(paas_database_backups::id.desc())
        .limit(limit)
        .select(Backup::as_select())
        .load(conn)
        .await?)
}

/// The newest backup that ended (succeeded or failed) of each of `databases`.
pub async fn last_ended(conn: &mut Conn, databases: &[i64]) -> Result<Vec<Backup>> {
    Ok(paas_database_backups::table
        .filter(paas_database_backups::database_id.eq_any(databases))
        .filter(paas_database_backups::status.eq_any(["succeeded", "failed"]))
        .distinct_on(paas_database_backups::database_id)
        .order((
            paas_database_backups::database_id,
            paas_database_backups::id.desc(),
        ))
        .select(Backup::as_select())
        .load(conn)
        .await?)
}

/// The owner's restores of a database, newest first.
pub async fn restores(
    conn: &mut Conn,
    owner: i64,
    database_id: i64,
    limit: i64,
) -> Result<Vec<Restore>> {
    Ok(paas_database_restores::table
        .filter(paas_database_restores::database_id.eq(database_id))
        .filter(paas_database_restores::user_id.eq(owner))
        .order(paas_database_restores::id.desc())
        .limit(limit)
        .select(Restore::as_select())
        .load(conn)
        .await?)
}

/// A backup by id alone (for the platform's own work).
pub async fn backup_by_id(conn: &mut Conn, id: i64) -> Result<Backup> {
    Ok(paas_database_backups::table
        .find(id)
        .select(Backup::as_select())
        .first(conn)
        .await?)
}

/// A restore by id alone (for the platform's own work).
pub async fn restore_by_id(conn: &mut Conn, id: i64) -> Result<Restore> {
    Ok(paas_database_restores::table
        .find(id)
        .select(Restore::as_select())
        .first(conn)
        .await?)
}

/// Ties a pending backup to its node's task (in the task's transaction);
/// false when another run of the job got there first.
pub async fn backup_started(
    conn: &mut Conn,
    id: i64,
    node_id: i64,
    task_id: i64,
    at: DateTime<Utc>,
) -> Result<bool> {
    let rows = diesel::update(
        paas_database_backups::table
            .find(id)
            .filter(paas_database_backups::status.eq("pending"))
            .filter(paas_database_backups::task_id.is_null()),
    )
    .set((
        paas_database_backups::status.eq("running"),
        paas_database_backups::node_id.eq(Some(node_id)),
        paas_database_backups::task_id.eq(Some(task_id)),
        paas_database_backups::started_at.eq(Some(at)),
    ))
    .execute(conn)
    .await?;
    Ok(rows == 1)
}

/// Ties a pending restore to its node's task; false when another run got there first.
pub async fn restore_started(
    conn: &mut Conn,
    id: i64,
    task_id: i64,
    at: DateTime<Utc>,
) -> Result<bool> {
    let rows = diesel::update(
        paas_database_restores::table
            .find(id)
            .filter(paas_database_restores::status.eq("pending"))
            .filter(paas_database_restores::task_id.is_null()),
    )
    .set((
        paas_database_restores::status.eq("running"),
        paas_database_restores::task_id.eq(Some(task_id)),
        paas_database_restores::started_at.eq(Some(at)),
    ))
    .execute(conn)
    .await?;
    Ok(rows == 1)
}

/// How a backup ended.
#[derive(Debug, Clone)]
pub enum BackupEnd<'a> {
    Written { size_bytes: i64, sha256: &'a str },
    Failed(&'a str),
}

/// Ends an unfinished backup; false when it had ended already (a repeated run).
pub async fn finish_backup(
    conn: &mut Conn,
    id: i64,
    end: BackupEnd<'_>,
    at: DateTime<Utc>,
) -> Result<bool> {
    let target = paas_database_backups::table
        .find(id)
        .filter(paas_database_backups::status.eq_any(UNFINISHED));
    let rows = match end {
        BackupEnd::Written { size_bytes, sha256 } => {
            diesel::update(target)
                .set((
                    paas_database_backups::status.eq("succeeded"),
                    paas_database_backups::size_bytes.eq(Some(size_bytes)),
                    paas_database_backups::sha256.eq(Some(sha256)),
                    paas_database_backups::finished_at.eq(Some(at)),
                ))
                .execute(conn)
                .await?
        }
        BackupEnd::Failed(reason) => {
            diesel::update(target)
                .set((
                    paas_database_backups::status.eq("failed"),
                    paas_database_backups::error.eq(Some(reason)),
                    paas_database_backups::finished_at.eq(Some(at)),
                ))
                .execute(conn)
                .await?
        }
    };
    Ok(rows == 1)
}

/// Ends an unfinished restore (`failed` with `error`, else `succeeded`);
/// false when it had ended already.
pub async fn finish_restore(
    conn: &mut Conn,
    id: i64,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool> {
    let rows = diesel::update(
        paas_database_restores::table
            .find(id)
            .filter(paas_database_restores::status.eq_any(UNFINISHED)),
    )
    .set((
        paas_database_restores::status.eq(if error.is_some() {
            "failed"
        } else {
            "succeeded"
        }),
        paas_database_restores::error.eq(error),
        paas_database_restores::finished_at.eq(Some(at)),
    ))
    .execute(conn)
    .await?;
    Ok(rows == 1)
}

/// A backup or a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Backup,
    Restore,
}

/// Ends an unfinished backup or restore as failed with `reason` and writes
/// its owner's notice (`backup_failed` or `restore_failed`), in one
/// transaction. Answers the notice's id; `None` when it had ended already.
pub async fn fail(
    conn: &mut Conn,
    operation: Operation,
    id: i64,
    reason: &str,
    notice: &str,
    at: DateTime<Utc>,
) -> Result<Option<i64>> {
    conn.transaction(async |conn| {
        let (ended, owner, kind) = match operation {
            Operation::Backup => (
                finish_backup(conn, id, BackupEnd::Failed(reason), at).await?,
                backup_by_id(conn, id).await?.user_id,
                "backup_failed",
            ),
            Operation::Restore => (
                finish_restore(conn, id, Some(reason), at).await?,
                restore_by_id(conn, id).await?.user_id,
                "restore_failed",
            ),
        };
        if !ended {
            return Ok(None);
        }
        let notice = crate::notifications::create(conn, owner, kind, notice, at).await?;
        Ok(Some(notice.id))
    })
    .await
}

/// Ends an unfinished backup as written and forgets the database's backups
/// past the newest `retention`, in one transaction. Answers how many were
/// forgotten; `None` when it had ended already.
pub async fn written(
    conn: &mut Conn,
    id: i64,
    size_bytes: i64,
    sha256: &str,
    retention: i64,
    at: DateTime<Utc>,
) -> Result<Option<usize>> {
    conn.transaction(async |conn| {
        let end = BackupEnd::Written { size_bytes, sha256 };
        if !finish_backup(conn, id, end, at).await? {
            return Ok(None);
        }
        let database_id = backup_by_id(conn, id).await?.database_id;
        Ok(Some(expire(conn, database_id, retention).await?))
    })
    .await
}

/// The newest `n` succeeded backups of a database, newest first.
pub async fn newest_succeeded(conn: &mut Conn, database_id: i64, n: i64) -> Result<Vec<i64>> {
    Ok(paas_database_backups::table
        .filter(paas_database_backups::database_id.eq(database_id))
        .filter(paas_database_backups::status.eq("succeeded"))
        .order(paas_database_backups::id.desc())
        .limit(n)
        .select(paas_database_backups::id)
        .load(conn)
        .await?)
}

/// Forgets the succeeded backups of a database other than its newest
/// `retention` (their dumps were removed from the node); answers how many.
pub async fn expire(conn: &mut Conn, database_id: i64, retention: i64) -> Result<usize> {
    let keep = newest_succeeded(conn, database_id, retention).await?;
    Ok(diesel::delete(
        paas_database_backups::table
            .filter(paas_database_backups::database_id.eq(database_id))
            .filter(paas_database_backups::status.eq("succeeded"))
            .filter(paas_database_backups::id.ne_all(keep)),
    )
    .execute(conn)
    .await?)
}

/// Unfinished backups and restores by id (the sweeper pushes their jobs again).
pub async fn unfinished(conn: &mut Conn) -> Result<(Vec<i64>, Vec<i64>)> {
    let backups = paas_database_backups::table
        .filter(paas_database_backups::status.eq_any(UNFINISHED))
        .select(paas_database_backups::id)
        .load(conn)
        .await?;
    let restores = paas_database_restores::table
        .filter(paas_database_restores::status.eq_any(UNFINISHED))
        .select(paas_database_restores::id)
        .load(conn)
        .await?;
    Ok((backups, restores))
}

/// Running databases, as (owner, id), without a scheduled backup since `since`.
pub async fn due_for_schedule(conn: &mut Conn, since: DateTime<Utc>) -> Result<Vec<(i64, i64)>> {
    let recent = paas_database_backups::table
        .filter(paas_database_backups::origin.eq("scheduled"))
        .filter(paas_database_backups::created_at.ge(since))
        .select(paas_database_backups::database_id);
    Ok(paas_databases::table
        .filter(paas_databases::status.eq("running"))
        .filter(paas_databases::id.ne_all(recent))
        .order(paas_databases::id.asc())
        .select((paas_databases::user_id, paas_databases::id))
        .load(conn)
        .await?)
}

/// The data of a deleted database kept on its node.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_kept_volumes, check_for_backend(diesel::pg::Pg))]
pub struct KeptVolume {
    pub id: i64,
    pub database_id: i64,
    pub user_id: i64,
    pub node_id: i64,
    pub name: String,
    pub db_type: String,
    pub deleted_at: DateTime<Utc>,
    pub purge_after: DateTime<Utc>,
    pub purged_at: Option<DateTime<Utc>>,
}

/// What a kept volume is.
#[derive(Debug, Clone)]
pub struct NewKeptVolume<'a> {
    pub database_id: i64,
    pub user_id: i64,
    pub node_id: i64,
    pub name: &'a str,
    pub db_type: &'a str,
    pub deleted_at: DateTime<Utc>,
    pub purge_after: DateTime<Utc>,
}

/// Records the data a deleted database left on its node.
pub async fn keep_volume(conn: &mut Conn, new: &NewKeptVolume<'_>) -> Result<KeptVolume> {
    Ok(diesel::insert_into(paas_kept_volumes::table)
        .values((
            paas_kept_volumes::database_id.eq(new.database_id),
            paas_kept_volumes::user_id.eq(new.user_id),
            paas_kept_volumes::node_id.eq(new.node_id),
            paas_kept_volumes::name.eq(new.name),
            paas_kept_volumes::db_type.eq(new.db_type),
            paas_kept_volumes::deleted_at.eq(new.deleted_at),
            paas_kept_volumes::purge_after.eq(new.purge_after),
        ))
        .returning(KeptVolume::as_returning())
        .get_result(conn)
        .await?)
}

/// The kept volumes not purged yet, the first to expire first.
pub async fn kept_volumes(conn: &mut Conn) -> Result<Vec<KeptVolume>> {
    Ok(paas_kept_volumes::table
        .filter(paas_kept_volumes::purged_at.is_null())
        .order((
            paas_kept_volumes::purge_after.asc(),
            paas_kept_volumes::id.asc(),
        ))
        .select(KeptVolume::as_select())
        .load(conn)
        .await?)
}

/// The kept volumes whose retention ended by `now`.
pub async fn expired_volumes(conn: &mut Conn, now: DateTime<Utc>) -> Result<Vec<KeptVolume>> {
    Ok(paas_kept_volumes::table
        .filter(paas_kept_volumes::purged_at.is_null())
        .filter(paas_kept_volumes::purge_after.le(now))
        .order(paas_kept_volumes::id.asc())
        .select(KeptVolume::as_select())
        .load(conn)
        .await?)
}

/// Marks a kept volume purged (its node's purge task is queued in the
/// same transaction); `NotFound` when it is unknown or purged already.
pub async fn mark_purged(conn: &mut Conn, id: i64, at: DateTime<Utc>) -> Result<KeptVolume> {
    Ok(diesel::update(
        paas_kept_volumes::table
            .find(id)
            .filter(paas_kept_volumes::purged_at.is_null()),
    )
    .set(paas_kept_volumes::purged_at.eq(Some(at)))
    .returning(KeptVolume::as_returning())
    .get_result(conn)
    .await?)
}
