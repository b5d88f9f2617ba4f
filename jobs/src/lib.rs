//! Background jobs of the control plane on apalis with Redis queues. A job
//! is a small, idempotent driver: it reads what PostgreSQL says, takes the
//! next step through the entity's actor, and can be run again at any time
//! (delivery is at-least-once). Redis holds only the queues: every job can be
//! derived again from PostgreSQL, and the sweeper does so.
//!
//! - [`Queues`]: the cheap handle that pushes jobs (the HTTP layer holds one).
//! - [`Workers`]: runs the queues' workers, restarting them when they fail.
//! - `builds`: the build job (deploys from git).
//! - `billing`: the hourly billing tick and job.
//! - `webhooks`: the `notify` queue: notices marked delivered and sent, signed, to customers' webhooks.
//! - `backups`: backups and restores of managed databases, the daily backups and the purge of deleted databases' data.
//! - `ssl`: certificates from an ACME server, one job per attempt, and the daily renewal.
//! - `inspect`: queue counts and troubled jobs from Redis, retry and kill (the admin inspector).
//! - [`LogStreams`]: applications' runtime logs, capped streams in the same Redis.

mod backups;
mod billing;
mod builds;
mod inspect;
mod logs;
mod queues;
pub mod registry;
mod retention;
mod ssl;
mod webhooks;
mod workers;

pub use backups::{BackupJob, BackupSettings, purge_expired_volumes, schedule_backups};
pub use billing::{BillingError, BillingJob, HourBilled, bill_hour};
pub use builds::{BuildJob, BuildSettings};
pub use inspect::{JobView, Moved, QUEUES, QueueOverview};
pub use logs::{LogLine, LogStreams, NewLine};
pub use queues::Queues;
pub use retention::{Pruned, RegistryRetention, prune_registry};
pub use ssl::{SslJob, SslSettings, request_certificate, request_renewals};
pub use webhooks::{NotifyJob, WebhookSettings};
pub use workers::{Workers, WorkersOptions};

/// `jobs::Error`: why a job could not be pushed or a worker not started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Redis: {0}")]
    Redis(String),
}

/// How long a request waits on Redis (logs, the inspector) before it answers
/// that Redis is unavailable instead of hanging with it.
pub const REDIS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// `work` against Redis, given up after [`REDIS_WAIT`].
pub(crate) async fn bounded<T>(
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(REDIS_WAIT, work)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Redis(format!(
                "no answer within {} s",
                REDIS_WAIT.as_secs()
            )))
        })
}

/// Why a job driving a build or a backup stopped short: the control plane
/// failed (PostgreSQL, an actor), and the job runs again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DriveError {
    #[error(transparent)]
    Store(#[from] skypanel_store::Error),
    #[error(transparent)]
    Actors(#[from] skypanel_actors::Error),
}
