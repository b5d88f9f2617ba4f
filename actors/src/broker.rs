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
use skypanel_protocol::task::TaskSpec;
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
        let release = serde_json::from_value::<TaskSpec>(task.payload.clone())
            .ok()
            .and_then(|spec| match spec {
                TaskSpec::AppApply(s) | TaskSpec::AppRestart(s) => Some(s.release),
                _ => None,
            });
        let outcome = TaskOutcome {
            task_id: task.id,
            node_id: task.node_id,
            kind: task.kind.clone(),
            generation: task.generation,
            release,
            succeeded: false,
            error: task.error.clone(),
            instances: Vec::new(),
        };
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
        let waiters = ctx.waiters().clone();
        let listener = tokio::spawn(wakeups::listen(
            ctx.store().clone(),
            Duration::from_secs(15),
            move |w| {
                waiters.wake(w);
            },
        ));
        let sweeper = tokio::spawn(sweep_forever(ctx));
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
