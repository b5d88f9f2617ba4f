//! The LeaseBroker: wakes agents that long-poll for tasks, and sweeps expired
//! leases. Wake-ups come from PostgreSQL (the task trigger NOTIFYs at
//! commit), so a task queued by any process of the control plane reaches a
//! waiting agent at once. Expired leases go back to the queue or, after their
//! last attempt, fail and are reported to the application actor.
//!
//! The hot path has no actor hop: the LISTEN callback notifies the shared
//! [`Waiters`] directly. The actor owns the listener and the sweeper (both
//! tasks), so that supervision restarts them together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use skypanel_store::tasks;
use skypanel_store::wakeups::{self, Wakeup};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::app::{AppMsg, TaskOutcome};
use crate::context::Context;
use crate::supervisor::actor_name;

/// How often expired leases are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// One wake-up handle per node, shared by the long-polls and the listener.
#[derive(Clone, Default)]
pub struct Waiters(Arc<Mutex<HashMap<i64, Arc<Notify>>>>);

impl Waiters {
    /// The handle a long-poll of `node` waits on.
    pub fn of(&self, node: i64) -> Arc<Notify> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(node).or_default().clone()
    }

    pub fn wake(&self, wakeup: Wakeup) {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match wakeup {
            Wakeup::Node(node) => {
                if let Some(notify) = map.get(&node) {
                    notify.notify_waiters();
                }
            }
            Wakeup::All => map.values().for_each(|n| n.notify_waiters()),
        }
    }
}

pub struct BrokerState {
    listener: JoinHandle<()>,
    sweeper: JoinHandle<()>,
}

#[derive(Default)]
pub struct LeaseBroker;

/// Runs a background loop for good: if it ever ends or panics, it is logged
/// and started again a second later. Aborting the handle stops it.
fn keep_running<F, Fut>(what: &'static str, make: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use futures::FutureExt;
    tokio::spawn(async move {
        loop {
            let ended = std::panic::AssertUnwindSafe(make()).catch_unwind().await;
            match ended {
                Ok(()) => tracing::error!(task = what, "background task ended; restarting it"),
                Err(_) => tracing::error!(task = what, "background task panicked; restarting it"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Expires leases every [`SWEEP_EVERY`]; an expiry that fails a task for good
/// is told to the task's application.
async fn sweep_forever(ctx: Context) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        if let Err(err) = sweep(&ctx).await {
            tracing::warn!(error = %err, "lease sweep failed");
        }
    }
}

async fn sweep(ctx: &Context) -> Result<(), crate::error::Error> {
    let mut conn = ctx.store().conn().await?;
    for expired in tasks::expire_leases(&mut conn).await? {
        let task = expired.task;
        tracing::warn!(
            task_id = task.id,
            node_id = task.node_id,
            requeued = expired.requeued,
            "lease expired"
        );
        if expired.requeued {
            continue;
        }
        let Some(app_id) = task.application_id else {
            continue;
        };
        let outcome = TaskOutcome::of(&task, None, None);
        if let Some(actor) = ractor::registry::where_is(actor_name(ctx, "app", app_id)) {
            let actor: ActorRef<AppMsg> = actor.into();
            let _ = actor.cast(AppMsg::TaskFinished(outcome));
        }
    }
    Ok(())
}

impl Actor for LeaseBroker {
    type Msg = ();
    type State = BrokerState;
    type Arguments = Context;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        ctx: Context,
    ) -> Result<BrokerState, ActorProcessingErr> {
        let listen_ctx = ctx.clone();
        let listener = keep_running("task listener", move || {
            let waiters = listen_ctx.waiters().clone();
            wakeups::listen(
                listen_ctx.store().clone(),
                Duration::from_secs(15),
                move |w| {
                    waiters.wake(w);
                },
            )
        });
        let sweeper = keep_running("lease sweeper", move || sweep_forever(ctx.clone()));
        Ok(BrokerState { listener, sweeper })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut BrokerState,
    ) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        state.sweeper.abort();
        Ok(())
    }
}
