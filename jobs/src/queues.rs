//! The named queues and the handle that pushes jobs onto them. Every push
//! carries an idempotency key, so pushing the same job twice (a retried
//! request, the sweeper, another replica) queues it once.

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::{Config, ConnectionManager, RedisStorage};

use skypanel_domain::billing::Period;

use crate::Error;
use crate::backups::BackupJob;
use crate::billing::BillingJob;
use crate::builds::BuildJob;
use crate::ssl::SslJob;
use crate::webhooks::NotifyJob;

/// How long a push may take before it counts as failed: a request never
/// waits long on a Redis that is away (the sweeper pushes the job again).
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// A push, bounded by [`PUSH_TIMEOUT`].
async fn bounded<T, E: std::fmt::Display>(
    push: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Error> {
    match tokio::time::timeout(PUSH_TIMEOUT, push).await {
        Ok(pushed) => pushed.map_err(|e| Error::Redis(e.to_string())),
        Err(_) => Err(Error::Redis(format!(
            "no answer from Redis within {} s",
            PUSH_TIMEOUT.as_secs()
        ))),
    }
}

/// How long an idempotency key keeps a second push of the same job out.
const IDEMPOTENCY: Duration = Duration::from_secs(24 * 3600);

/// The queue names, after the control plane's prefix (they are part of
/// every key in Redis: never rename one).
pub const BUILDS: &str = "builds";
pub const BILLING: &str = "billing";
pub const NOTIFY: &str = "notify";
pub const SSL: &str = "ssl";
pub const BACKUPS: &str = "backups";

/// How long a backup job's key keeps a second push out: the sweeper pushes
/// the job of an unfinished backup again after that (a second run of a
/// backup follows the same task and records its end once).
const BACKUP_IDEMPOTENCY: Duration = Duration::from_secs(10 * 60);

/// How long an ssl job's key keeps a second push out: only the pushes of
/// one moment (the claim in PostgreSQL makes a second run harmless, and a
/// deferred attempt is pushed again under the same key).
const SSL_IDEMPOTENCY: Duration = Duration::from_secs(20);

/// How often a worker tells Redis it is alive; a worker silent for three of
/// these has its jobs handed to another.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// The queues; cheap to clone.
#[derive(Clone)]
pub struct Queues {
    conn: ConnectionManager,
    prefix: String,
    builds: RedisStorage<BuildJob>,
    billing: RedisStorage<BillingJob>,
    notify: RedisStorage<NotifyJob>,
    ssl: RedisStorage<SslJob>,
    backups: RedisStorage<BackupJob>,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues").finish_non_exhaustive()
    }
}

/// How long a billing hour's key keeps a second push out: less than the
/// hour between ticks, so an hour whose job gave up is queued by a later tick
/// (a second run of an hour charges nothing), while the replicas' pushes of
/// one tick still make one job.
const BILLING_IDEMPOTENCY: Duration = Duration::from_secs(50 * 60);

/// The configuration of a queue: named, idempotent, with a short heartbeat.
pub(crate) fn config(queue: &str) -> Config {
    config_with(queue, IDEMPOTENCY)
}

fn config_with(queue: &str, idempotency: Duration) -> Config {
    Config::default()
        .queue(queue)
        .idempotency_ttl(Some(idempotency))
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(3)
}

impl Queues {
    /// Connects to Redis. Its answers may take long under load (apalis-redis
    /// #76: the default 500 ms response timeout stops workers silently).
    /// `prefix` names this platform's queues (`<prefix>:builds` …): control
    /// planes sharing one Redis for different platforms use different ones.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, Error> {
        let client = apalis_redis::Client::open(url).map_err(|e| Error::Redis(e.to_string()))?;
        let settings = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(60)));
        let conn = client
            .get_connection_manager_with_config(settings)
            .await
            .map_err(|e| Error::Redis(e.to_string()))?;
        let builds =
            RedisStorage::new(conn.clone()).with_config(config(&format!("{prefix}:{BUILDS}")));
        let billing = RedisStorage::new(conn.clone()).with_config(config_with(
            &format!("{prefix}:{BILLING}"),
            BILLING_IDEMPOTENCY,
        ));
        let notify =
            RedisStorage::new(conn.clone()).with_config(config(&format!("{prefix}:{NOTIFY}")));
        let ssl = RedisStorage::new(conn.clone())
            .with_config(config_with(&format!("{prefix}:{SSL}"), SSL_IDEMPOTENCY));
        let backups = RedisStorage::new(conn.clone()).with_config(config_with(
            &format!("{prefix}:{BACKUPS}"),
            BACKUP_IDEMPOTENCY,
        ));
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            builds,
            billing,
            notify,
            ssl,
            backups,
        })
    }

    pub(crate) fn builds(&self) -> RedisStorage<BuildJob> {
        self.builds.clone()
    }

    pub(crate) fn billing(&self) -> RedisStorage<BillingJob> {
        self.billing.clone()
    }

    pub(crate) fn notify(&self) -> RedisStorage<NotifyJob> {
        self.notify.clone()
    }

    pub(crate) fn ssl(&self) -> RedisStorage<SslJob> {
        self.ssl.clone()
    }

    pub(crate) fn backups(&self) -> RedisStorage<BackupJob> {
        self.backups.clone()
    }

    /// The prefix naming this platform's keys in Redis (rate limits use it too).
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix naming this platform's queues.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis connection the queues use (for the inspector's counts).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The applications' log streams, in the same Redis, `cap` lines each.
    pub fn log_streams(&self, cap: usize) -> crate::LogStreams {
        crate::LogStreams::new(self.conn.clone(), &self.prefix, cap)
    }

    /// Queues the build's job (once, whoever asks).
    pub async fn push_build(&self, build_id: i64) -> Result<(), Error> {
        let task = TaskBuilder::new(BuildJob { build_id })
            .idempotency_key(format!("build:{build_id}"))
            .build();
        bounded(self.builds.clone().push_task(task)).await
    }

    /// Queues the billing of one hour (once, however many control planes ask).
    pub async fn push_billing(&self, period: Period) -> Result<(), Error> {
        let task = TaskBuilder::new(BillingJob {
            period_start: period.start(),
        })
        .idempotency_key(period.key())
        .build();
        bounded(self.billing.clone().push_task(task)).await
    }

    /// Queues the delivery of a notice (once).
    pub async fn push_notice(&self, notification_id: i64) -> Result<(), Error> {
        let task = TaskBuilder::new(NotifyJob {
            notification_id,
            delivery_id: None,
            attempts: None,
        })
        .idempotency_key(format!("notify:{notification_id}"))
        .build();
        bounded(self.notify.clone().push_task(task)).await
    }

    /// Queues attempt `attempts + 1` of a webhook delivery (once), to run after `delay`.
    pub async fn push_delivery(
        &self,
        notification_id: i64,
        delivery_id: i64,
        attempts: i32,
        delay: Option<Duration>,
    ) -> Result<(), Error> {
        let job = NotifyJob {
            notification_id,
            delivery_id: Some(delivery_id),
            attempts: Some(attempts),
        };
        let mut task =
            TaskBuilder::new(job).idempotency_key(format!("webhook:{delivery_id}:{attempts}"));
        if let Some(delay) = delay {
            task = task.run_after(delay);
        }
        bounded(self.notify.clone().push_task(task.build())).await
    }

    /// The sweeper's push of a due delivery: keyed by the five minutes it is
    /// in as well, so that a job that died (its key kept for a day) is
    /// pushed again soon; a duplicate does nothing (the job knows its attempt).
    pub async fn sweep_delivery(
        &self,
        notification_id: i64,
        delivery_id: i64,
        attempts: i32,
        now: i64,
    ) -> Result<(), Error> {
        let job = NotifyJob {
            notification_id,
            delivery_id: Some(delivery_id),
            attempts: Some(attempts),
        };
        let key = format!("webhook:{delivery_id}:{attempts}:{}", now / 300);
        bounded(
            self.notify
                .clone()
                .push_task(TaskBuilder::new(job).idempotency_key(key).build()),
        )
        .await
    }

    /// Queues a backup or restore (once while its key lasts).
    pub async fn push_backup(&self, job: &BackupJob) -> Result<(), Error> {
        let key = match job {
            BackupJob::Backup { backup_id } => format!("backup:{backup_id}"),
            BackupJob::Restore { restore_id } => format!("restore:{restore_id}"),
        };
        let task = TaskBuilder::new(job.clone()).idempotency_key(key).build();
        bounded(self.backups.clone().push_task(task)).await
    }

    /// Queues an attempt of a certificate request, to run after `delay`.
    pub async fn push_ssl(&self, job: &SslJob, delay: Option<Duration>) -> Result<(), Error> {
        let key = format!("ssl:{}:{}:{}", job.domain_id, job.request, job.attempt);
        let mut task = TaskBuilder::new(job.clone()).idempotency_key(key);
        if let Some(delay) = delay {
            task = task.run_after(delay);
        }
        bounded(self.ssl.clone().push_task(task.build())).await
    }
}
