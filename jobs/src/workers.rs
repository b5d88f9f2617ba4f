//! Runs the queues' workers for as long as the control plane runs. Each
//! worker is started under a name of its own run (a worker restarted under
//! its old name is refused until its old heartbeat expires), polls every
//! 100 ms, and is started again a second after it fails. The sweeper pushes
//! the job of every unfinished build, at start and every half minute, so a
//! job lost with Redis, or one whose push failed, comes back (pushes are
//! idempotent).

use std::time::Duration;

use apalis::prelude::{BackendExt, WorkerBuilder, WorkerBuilderExt};
use skypanel_actors::Orchestrator;
use skypanel_store::{Store, builds};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Queues;
use crate::builds::{BuildContext, BuildSettings, handle};

/// How often an idle worker looks for jobs.
const POLL: Duration = Duration::from_millis(100);
/// Builds driven at once by one control plane.
const BUILD_CONCURRENCY: usize = 16;
/// How often unfinished builds are checked for a job.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

pub struct WorkersOptions {
    pub queues: Queues,
    pub orchestrator: Orchestrator,
    pub store: Store,
    pub builds: BuildSettings,
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
            settings: options.builds,
        };
        let builds = tokio::spawn(run_builds(options.queues.clone(), ctx, stopping.clone()));
        let sweeper = tokio::spawn(sweep(options.queues, options.store, stopping));
        Self {
            stop,
            tasks: vec![builds, sweeper],
        }
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

async fn run_builds(queues: Queues, ctx: BuildContext, stopping: watch::Receiver<bool>) {
    let mut run = 0u64;
    while !*stopping.borrow() {
        run += 1;
        let name = format!("builds-{}-{run}", std::process::id());
        let worker = WorkerBuilder::new(name.as_str())
            .backend(queues.builds().poll_with_interval(POLL))
            .data(ctx.clone())
            .concurrency(BUILD_CONCURRENCY)
            .build(handle);
        match worker.run_until(stopped(stopping.clone())).await {
            Ok(()) if *stopping.borrow() => return,
            Ok(()) => {
                tracing::error!(worker = %name, "the build worker stopped; starting it again")
            }
            Err(err) => {
                tracing::error!(worker = %name, error = %err, "the build worker failed; starting it again")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn sweep(queues: Queues, store: Store, stopping: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
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
    }
}
