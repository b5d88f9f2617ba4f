//! Backups and restores of managed databases on the wire, and the data
//! admins see kept after a database is deleted.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use skypanel_store::backups::{Backup, KeptVolume, Restore};

/// A dump of the database, kept on its node.
#[derive(Object, Debug)]
pub struct BackupView {
    pub id: i64,
    pub database_id: i64,
    /// `manual` or `scheduled` (the daily backup).
    pub origin: String,
    /// `pending`, `running`, `succeeded` or `failed` (see `error`).
    pub status: String,
    #[oai(nullable)]
    pub size_bytes: Option<i64>,
    /// The dump's SHA-256 (hex), checked again before a restore.
    #[oai(nullable)]
    pub sha256: Option<String>,
    #[oai(nullable)]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Backup> for BackupView {
    fn from(b: Backup) -> Self {
        Self {
            id: b.id,
            database_id: b.database_id,
            origin: b.origin,
            status: b.status,
            size_bytes: b.size_bytes,
            sha256: b.sha256,
            error: b.error,
            created_at: b.created_at,
            finished_at: b.finished_at,
        }
    }
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// A succeeded backup of this database.
    #[oai(validator(minimum(value = "1")))]
    pub backup_id: i64,
}

/// A restore of the database from one of its backups.
#[derive(Object, Debug)]
pub struct RestoreView {
    pub id: i64,
    pub database_id: i64,
    /// The backup restored (absent once that backup has expired).
    #[oai(nullable)]
    pub backup_id: Option<i64>,
    /// `pending`, `running`, `succeeded` or `failed` (see `error`; a
    /// failed restore leaves the data as it was wherever the engine allows).
    pub status: String,
    #[oai(nullable)]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Restore> for RestoreView {
    fn from(r: Restore) -> Self {
        Self {
            id: r.id,
            database_id: r.database_id,
            backup_id: r.backup_id,
            status: r.status,
            error: r.error,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// The data (volume and backups) of a deleted database, kept on its node.
#[derive(Object, Debug)]
pub struct KeptVolumeView {
    pub id: i64,
    /// The deleted database's id.
    pub database_id: i64,
    pub user_id: i64,
    pub node_id: i64,
    /// The deleted database's name and type.
    pub name: String,
    pub db_type: String,
    pub deleted_at: DateTime<Utc>,
    /// When the daily run removes it.
    pub purge_after: DateTime<Utc>,
}

impl From<KeptVolume> for KeptVolumeView {
    fn from(v: KeptVolume) -> Self {
        Self {
            id: v.id,
            database_id: v.database_id,
            user_id: v.user_id,
            node_id: v.node_id,
            name: v.name,
            db_type: v.db_type,
            deleted_at: v.deleted_at,
            purge_after: v.purge_after,
        }
    }
}

/// What running the daily backup round now did.
#[derive(Object, Debug)]
pub struct BackupRunResult {
    /// Scheduled backups recorded and queued.
    pub backups_queued: i64,
    /// Deleted databases' data whose purge was queued.
    pub volumes_purged: i64,
}
