//! Runs the queues' workers (builds, billing, notify, ssl, backups), the
//! hourly billing cron, the daily certificate renewal and the daily backups
//! for as long as the control plane runs. Each
//! worker is started under a name of its own run (a worker restarted under
//! its old name is refused until its old heartbeat expires), polls every
//! 100 ms, and is started again a second after it fails. The sweeper pushes
//! the job of every unfinished build, at start and every sweep interval (half a
//! minute unless configured), so a
//! job lost with Redis, or one whose push failed, comes back (pushes are
//! idempotent).

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use apalis::prelude::{BackendExt, WorkerBuilder, WorkerBuilderExt};
use apalis_cron::CronScheduler;
use skypanel_actors::Orchestrator;
use skypanel_store::{Store, builds};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Queues;
use crate::backups::{self, BackupContext, BackupSettings};
use crate::billing::{self, BillingContext};
use crate::builds::{BuildContext, BuildSettings, handle};
use crate::ssl::{self, SslContext, SslSettings};
use crate::webhooks::{self, NotifyContext, WebhookSettings};

/// How often an idle worker looks for jobs.
const POLL: Duration = Duration::from_millis(100);
/// Builds driven at once by one control plane.
const BUILD_CONCURRENCY: usize = 16;
/// When billing ticks: five seconds past every hour (sec min hour day month weekday).
const BILLING_SCHEDULE: &str = "5 0 * * * *";
/// When certificates due for renewal are renewed: daily at 03:30.
const RENEWAL_SCHEDULE: &str = "0 30 3 * * *";
/// When the registry's retention runs: daily at 04:15.
const REGISTRY_SCHEDULE: &str = "0 15 4 * * *";
/// Certificate attempts run at once by one control plane.
const SSL_CONCURRENCY: usize = 8;
/// Notices and webhook deliveries sent at once by one control plane.
const NOTIFY_CONCURRENCY: usize = 16;
/// Backups and restores followed at once by one control plane.
const BACKUP_CONCURRENCY: usize = 16;

pub struct WorkersOptions {
    pub queues: Queues,
    pub orchestrator: Orchestrator,
    pub store: Store,
    pub builds: BuildSettings,
    pub ssl: SslSettings,
    pub backups: BackupSettings,
    pub webhooks: WebhookSettings,
    /// How often unfinished builds and backups, undelivered notices and due
    /// certificate work are pushed again (30 s by default).
    pub sweep_every: Duration,
    /// The registry's retention, when the platform runs its registry.
    pub registry: Option<crate::RegistryRetention>,
}

/// The running workers; dropping it does not stop them, [`Workers::stop`] does.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn start(options: WorkersOptions) -> Self {
        let (stop, stopping) = watch::channel(false);
        let ctx = BuildContext {
            orchestrator: options.orchestrator,
            store: options.store.clone(),
            queues: options.queues.clone(),
            settings: options.builds,
        };
        let billing_ctx = BillingContext {
            orchestrator: ctx.orchestrator.clone(),
            store: options.store.clone(),
            queues: options.queues.clone(),
        };
        let ssl_ctx = SslContext {
            orchestrator: ctx.orchestrator.clone(),
            store: options.store.clone(),
            queues: options.queues.clone(),
            settings: std::sync::Arc::new(options.ssl),
            account: std::sync::Arc::default(),
        };
        let backup_ctx = BackupContext {
            orchestrator: ctx.orchestrator.clone(),
            store: options.store.clone(),
            queues: options.queues.clone(),
            settings: options.backups,
        };
        let notify_ctx = NotifyContext {
            orchestrator: ctx.orchestrator.clone(),
            store: options.store.clone(),
            queues: options.queues.clone(),
            settings: std::sync::Arc::new(options.webhooks),
        };
        let https = ssl_ctx.settings.enabled();
        let mut tasks = vec![
            tokio::spawn(run_builds(options.queues.clone(), ctx, stopping.clone())),
            tokio::spawn(run_billing(billing_ctx.clone(), stopping.clone())),
            tokio::spawn(run_notify(notify_ctx.clone(), stopping.clone())),
            tokio::spawn(run_billing_cron(billing_ctx, stopping.clone())),
            tokio::spawn(run_backups(backup_ctx.clone(), stopping.clone())),
            tokio::spawn(run_backup_cron(backup_ctx, stopping.clone())),
        ];
        if let Some(retention) = options.registry {
            tasks.push(tokio::spawn(run_registry_cron(
                options.store.clone(),
                retention,
                stopping.clone(),
            )));
        }
        if https {
            tasks.push(tokio::spawn(run_ssl(ssl_ctx.clone(), stopping.clone())));
            tasks.push(tokio::spawn(run_renewal_cron(
                ssl_ctx.clone(),
                stopping.clone(),
            )));
        }
        tasks.push(tokio::spawn(sweep(
            options.sweep_every,
            notify_ctx,
            https.then_some(ssl_ctx),
            stopping,
        )));
        Self { stop, tasks }
    }

    /// Stops taking jobs and waits (up to `grace`) for the running ones.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        let _ = tokio::time::timeout(grace, all).await;
    }
}

/// Resolves when `stopping` turns true.
async fn stopped(mut stopping: watch::Receiver<bool>) -> Result<(), std::io::Error> {
    while !*stopping.borrow() {
        if stopping.changed().await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Runs a worker, starting it again (under a new name) a second after it
/// stops or fails, until the control plane stops.
async fn supervise<F, Fut>(what: &str, stopping: watch::Receiver<bool>, mut run: F)
where
    F: FnMut(String, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut n = 0u64;
    while !*stopping.borrow() {
        n += 1;
        let name = format!("{what}-{}-{n}", std::process::id());
        match run(name.clone(), stopping.clone()).await {
            Ok(()) if *stopping.borrow() => return,
            Ok(()) => tracing::error!(worker = %name, "a worker stopped; starting it again"),
            Err(err) => {
                tracing::error!(worker = %name, error = %err, "a worker failed; starting it again")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run_builds(queues: Queues, ctx: BuildContext, stopping: watch::Receiver<bool>) {
    supervise("builds", stopping, |name, stopping| {
        let worker = WorkerBuilder::new(name.as_str())
            .backend(queues.builds().poll_with_interval(POLL))
            .data(ctx.clone())
            .concurrency(BUILD_CONCURRENCY)
            .build(handle);
        async move {
            worker
                .run_until(stopped(stopping))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

async fn run_billing(ctx: BillingContext, stopping: watch::Receiver<bool>) {
    supervise("billing", stopping, |name, stopping| {
        let worker = WorkerBuilder::new(name.as_str())
            .backend(ctx.queues.billing().poll_with_interval(POLL))
            .data(ctx.clone())
            .build(billing::handle);
        async move {
            worker
                .run_until(stopped(stopping))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

async fn run_notify(ctx: NotifyContext, stopping: watch::Receiver<bool>) {
    supervise("notify", stopping, |name, stopping| {
        let worker = WorkerBuilder::new(name.as_str())
            .backend(ctx.queues.notify().poll_with_interval(POLL))
            .data(ctx.clone())
            .concurrency(NOTIFY_CONCURRENCY)
            .build(webhooks::handle);
        async move {
            worker
                .run_until(stopped(stopping))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

/// The hourly tick (a few seconds past the hour, so the hour has ended on
/// every clock), after one tick at start for the hours missed while down.
async fn run_billing_cron(ctx: BillingContext, stopping: watch::Receiver<bool>) {
    if let Err(err) = billing::queue_due_hours(&ctx).await {
        tracing::warn!(error = %err, "cannot queue the billing hours due at start");
    }
    billing::push_notices(&ctx.store, &ctx.queues).await;
    supervise("billing-cron", stopping, |name, stopping| {
        let schedule = cron::Schedule::from_str(BILLING_SCHEDULE);
        let ctx = ctx.clone();
        async move {
            let schedule = schedule.map_err(|e| e.to_string())?;
            WorkerBuilder::new(name.as_str())
                .backend(CronScheduler::new(schedule))
                .data(ctx)
                .build(billing::tick)
                .run_until(stopped(stopping))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

async fn run_ssl(ctx: SslContext, stopping: watch::Receiver<bool>) {
    supervise("ssl", stopping, |name, stopping| {
        let worker = WorkerBuilder::new(name.as_str())
            .backend(ctx.queues.ssl().poll_with_interval(POLL))
            .data(ctx.clone())
            .concurrency(SSL_CONCURRENCY)
            .build(ssl::handle);
        async move {
            worker
                .run_until(stopped(stopping))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

async fn run_backups(ctx: BackupContext, stopping: watch::Receiver<bool>) {
    supervise("backups", stopping, |name, stopping| {
        let worker = WorkerBuilder::new(name.as_str())
            .backend(ctx.queues.backups().poll_with_interval(POLL))
            .data(ctx.clone())
            .concurrency(BACKUP_CONCURRENCY)
            .build(backups::handle);
        async move {
            worker
                .run_until(stopped(stopping))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

/// The daily backups tick (no tick at start: a restart must not back up
/// every database again; a missed day is made up by the next tick).
async fn run_backup_cron(ctx: BackupContext, stopping: watch::Receiver<bool>) {
    supervise("backups-cron", stopping, |name, stopping| {
        let schedule = cron::Schedule::from_str(&ctx.settings.schedule);
        let ctx = ctx.clone();
        async move {
            let schedule = schedule.map_err(|e| e.to_string())?;
            WorkerBuilder::new(name.as_str())
                .backend(CronScheduler::new(schedule))
                .data(ctx)
                .build(backups::tick)
                .run_until(stopped(stopping))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

/// The registry's daily retention round.
async fn run_registry_cron(
    store: Store,
    retention: crate::RegistryRetention,
    stopping: watch::Receiver<bool>,
) {
    supervise("registry-cron", stopping, |name, stopping| {
        let schedule = cron::Schedule::from_str(REGISTRY_SCHEDULE);
        let ctx = crate::retention::RetentionContext {
            store: store.clone(),
            retention: retention.clone(),
        };
        async move {
            let schedule = schedule.map_err(|e| e.to_string())?;
            WorkerBuilder::new(name.as_str())
                .backend(CronScheduler::new(schedule))
                .data(ctx)
                .build(crate::retention::tick)
                .run_until(stopped(stopping))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

/// The daily renewal tick, after one at start.
async fn run_renewal_cron(ctx: SslContext, stopping: watch::Receiver<bool>) {
    let now = ctx.orchestrator.context().now();
    if let Err(err) =
        ssl::request_renewals(&ctx.store, &ctx.queues, now, ctx.settings.renew_before).await
    {
        tracing::warn!(error = %err, "cannot start the renewals due at start");
    }
    supervise("ssl-cron", stopping, |name, stopping| {
        let schedule = cron::Schedule::from_str(RENEWAL_SCHEDULE);
        let ctx = ctx.clone();
        async move {
            let schedule = schedule.map_err(|e| e.to_string())?;
            WorkerBuilder::new(name.as_str())
                .backend(CronScheduler::new(schedule))
                .data(ctx)
                .build(ssl::tick)
                .run_until(stopped(stopping))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

async fn sweep(
    every: Duration,
    notify: NotifyContext,
    ssl: Option<SslContext>,
    stopping: watch::Receiver<bool>,
) {
    let (queues, store) = (notify.queues.clone(), notify.store.clone());
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(stopping.clone()) => return,
        }
        let unfinished = match store.conn().await {
            Ok(mut conn) => builds::unfinished(&mut conn).await,
            Err(err) => Err(err),
        };
        match unfinished {
            Ok(list) => {
                for build in list {
                    if let Err(err) = queues.push_build(build.id).await {
                        tracing::warn!(build_id = build.id, error = %err, "cannot queue a build's job");
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot look for unfinished builds"),
        }
        billing::push_notices(&store, &queues).await;
        backups::push_unfinished(&store, &queues).await;
        webhooks::push_due(&notify).await;
        if let Some(ssl) = &ssl
            && let Err(err) = ssl::sweep(ssl).await
        {
            tracing::warn!(error = %err, "cannot look for certificate work that is due");
        }
    }
}
