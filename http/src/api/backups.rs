//! `/api/paas/databases/:id/backup`, `/backups`, `/restore` and `/restores`:
//! a customer's backups and restores of a managed database, carried out on
//! the `backups` queue by the database's node (`202` with the record; its
//! status says how it went). One backup or restore at a time per database,
//! and only while it runs (409 otherwise). Admins see the data deleted
//! databases left on their nodes (`/api/admin/paas/database-volumes`) and
//! can run the daily round now (`/api/admin/paas/backups/run`).

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_jobs::BackupJob;
use skypanel_store::backups;
use skypanel_store::databases;

use super::{Accepted, Audit, NoContent, Tag, page};
use crate::auth::{AdminAuth, BearerAuth};
use crate::body::JsonBody;
use crate::dto::backups::*;
use crate::dto::databases::{AdminDatabaseView, DatabaseHealth};
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

/// The most backups or restores a list shows.
const LIST_LIMIT: i64 = 100;

pub struct BackupsApi {
    pub state: AppState,
}

/// A conflict of the store as the API says it: `operation_in_progress` or `database_not_running`.
fn busy(err: skypanel_store::Error) -> ApiError {
    match err {
        skypanel_store::Error::Conflict { field, message } => {
            let code = if message.contains("in progress") {
                "operation_in_progress"
            } else if field.is_some() {
                "backup_not_restorable"
            } else {
                "database_not_running"
            };
            ApiError::conflict(code, message, field)
        }
        other => other.into(),
    }
}

#[OpenApi(prefix_path = "/paas", tag = "Tag::Databases")]
impl BackupsApi {
    /// Back a database up now
    ///
    /// The engine's own dump tool runs inside the database's container and
    /// the dump stays on its node, with its size and SHA-256. `202` with the
    /// backup (`pending`); it ends `succeeded` or `failed` with the reason
    /// (and a notice). 409 `database_not_running`, or `operation_in_progress`
    /// while another backup or restore of it runs.
    #[oai(
        path = "/databases/:id/backup",
        method = "post",
        operation_id = "backupDatabase"
    )]
    async fn backup(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<Accepted<BackupView>> {
        let user = auth.user_id();
        let mut conn = self.state.store().conn().await?;
        databases::get(&mut conn, user, id.0)
            .await
            .or_not_found("database")?;
        let backup = backups::create_backup(&mut conn, user, id.0, "manual")
            .await
            .map_err(busy)?;
        Audit::by(request, user, "database.backup")
            .on("database", id.0)
            .with(serde_json::json!({"backup_id": backup.id}))
            .write(&mut conn)
            .await;
        drop(conn);
        let job = BackupJob::Backup {
            backup_id: backup.id,
        };
        if let Err(err) = self.state.queues()?.push_backup(&job).await {
            // Recorded: the sweeper queues it once Redis answers.
            tracing::warn!(backup_id = backup.id, error = %err, "cannot queue a backup now");
        }
        Ok(Accepted::Accepted(Json(backup.into())))
    }

    /// A database's backups, newest first
    #[oai(
        path = "/databases/:id/backups",
        method = "get",
        operation_id = "listDatabaseBackups"
    )]
    async fn backups(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<Vec<BackupView>>> {
        let user = auth.user_id();
        let mut conn = self.state.store().conn().await?;
        databases::get(&mut conn, user, id.0)
            .await
            .or_not_found("database")?;
        let list = backups::backups(&mut conn, user, id.0, LIST_LIMIT).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Restore a database from one of its backups
    ///
    /// The dump's SHA-256 is checked, then the engine's own tool puts the
    /// data back (PostgreSQL in one transaction: a failing restore changes
    /// nothing; Redis is restarted with the dump as its data). What was
    /// written since the backup is lost. `202` with the restore (`pending`);
    /// it ends `succeeded` or `failed` with the reason (and a notice).
    #[oai(
        path = "/databases/:id/restore",
        method = "post",
        operation_id = "restoreDatabase"
    )]
    async fn restore(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        body: JsonBody<RestoreRequest>,
    ) -> ApiResult<Accepted<RestoreView>> {
        let user = auth.user_id();
        let mut conn = self.state.store().conn().await?;
        databases::get(&mut conn, user, id.0)
            .await
            .or_not_found("database")?;
        let restore = match backups::create_restore(&mut conn, user, id.0, body.0.backup_id).await {
            Err(skypanel_store::Error::NotFound) => {
                return Err(ApiError::invalid(
                    "backup_id",
                    format!("database {} has no backup {}", id.0, body.0.backup_id),
                ));
            }
            other => other.map_err(busy)?,
        };
        Audit::by(request, user, "database.restore")
            .on("database", id.0)
            .with(serde_json::json!({"restore_id": restore.id, "backup_id": body.0.backup_id}))
            .write(&mut conn)
            .await;
        drop(conn);
        let job = BackupJob::Restore {
            restore_id: restore.id,
        };
        if let Err(err) = self.state.queues()?.push_backup(&job).await {
            tracing::warn!(restore_id = restore.id, error = %err, "cannot queue a restore now");
        }
        Ok(Accepted::Accepted(Json(restore.into())))
    }

    /// A database's restores, newest first
    #[oai(
        path = "/databases/:id/restores",
        method = "get",
        operation_id = "listDatabaseRestores"
    )]
    async fn restores(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<Vec<RestoreView>>> {
        let user = auth.user_id();
        let mut conn = self.state.store().conn().await?;
        databases::get(&mut conn, user, id.0)
            .await
            .or_not_found("database")?;
        let list = backups::restores(&mut conn, user, id.0, LIST_LIMIT).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }
}

pub struct AdminBackupsApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/admin/paas", tag = "Tag::AdminDatabaseEngines")]
impl AdminBackupsApi {
    /// Every customer's databases, with their health
    ///
    /// Oldest first, `limit` (1 to 200, 50 by default) from `offset`. Each
    /// shows its node, status (and failure reason), what its node last
    /// measured (size on disk, connections) and its last backup that ended.
    #[oai(
        path = "/databases",
        method = "get",
        operation_id = "adminListDatabases"
    )]
    async fn databases(
        &self,
        _auth: AdminAuth,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<AdminDatabaseView>>> {
        let mut conn = self.state.store().conn().await?;
        let list = databases::all_with_health(&mut conn, page(limit.0, offset.0)).await?;
        let ids: Vec<i64> = list.iter().map(|(db, _)| db.id).collect();
        let mut last: std::collections::HashMap<i64, backups::Backup> =
            backups::last_ended(&mut conn, &ids)
                .await?
                .into_iter()
                .map(|b| (b.database_id, b))
                .collect();
        Ok(Json(
            list.into_iter()
                .map(|(db, measured)| AdminDatabaseView {
                    health: DatabaseHealth::new(measured, last.remove(&db.id)),
                    id: db.id,
                    user_id: db.user_id,
                    name: db.name,
                    db_type: db.db_type,
                    version: db.version,
                    plan_id: db.plan_id,
                    node_id: db.node_id,
                    region: db.region,
                    status: db.status,
                    failure_reason: db.failure_reason,
                    created_at: db.created_at,
                })
                .collect(),
        ))
    }

    /// The data of deleted databases kept on their nodes
    ///
    /// A database deleted without `purge=true` leaves its volume and
    /// backups on its node until `purge_after`
    /// (`SKYPANEL_DB_VOLUME_RETENTION_DAYS`, 7 by default).
    #[oai(
        path = "/database-volumes",
        method = "get",
        operation_id = "adminListKeptVolumes"
    )]
    async fn kept_volumes(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<KeptVolumeView>>> {
        let mut conn = self.state.store().conn().await?;
        let list = backups::kept_volumes(&mut conn).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Purge a deleted database's kept data now
    #[oai(
        path = "/database-volumes/:id",
        method = "delete",
        operation_id = "adminPurgeKeptVolume"
    )]
    async fn purge_volume(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
    ) -> ApiResult<NoContent> {
        let mut conn = self.state.store().conn().await?;
        let volume = backups::kept_volumes(&mut conn)
            .await?
            .into_iter()
            .find(|v| v.id == id.0)
            .ok_or_else(|| ApiError::not_found("kept volume"))?;
        drop(conn);
        self.state
            .orchestrator()?
            .purge_kept_volume(&volume)
            .await
            .map_err(|e| match e {
                skypanel_actors::Error::NotFound => ApiError::not_found("kept volume"),
                other => other.into(),
            })?;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, auth.0.user_id, "database.purge")
            .on("database", volume.database_id)
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }

    /// Run the daily backup round now
    ///
    /// Records a scheduled backup of every running database without one
    /// from the last 20 hours, and purges the kept data whose retention
    /// ended: what the daily tick (`SKYPANEL_BACKUP_SCHEDULE`) does.
    #[oai(
        path = "/backups/run",
        method = "post",
        operation_id = "adminRunBackups"
    )]
    async fn run(&self, request: &Request, auth: AdminAuth) -> ApiResult<Json<BackupRunResult>> {
        let orchestrator = self.state.orchestrator()?;
        let queued = skypanel_jobs::schedule_backups(
            self.state.store(),
            self.state.queues()?,
            self.state.now(),
        )
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
        let purged = skypanel_jobs::purge_expired_volumes(orchestrator, self.state.store())
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, auth.0.user_id, "backups.run")
            .with(serde_json::json!({"backups_queued": queued, "volumes_purged": purged}))
            .write(&mut conn)
            .await;
        Ok(Json(BackupRunResult {
            backups_queued: queued as i64,
            volumes_purged: purged as i64,
        }))
    }
}
