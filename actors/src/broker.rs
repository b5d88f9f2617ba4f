//! The LeaseBroker: wakes agents that long-poll for tasks, and sweeps expired
//! leases. Wake-ups come from PostgreSQL (the task trigger NOTIFYs at
//! commit), so a task queued by any process of the control plane reaches a
//! waiting agent at once. Expired leases go back to the queue or, after their
//! last attempt, fail and are reported to the application actor.
//!
//! It also runs the writer of batched heartbeat figures ([`crate::beats`]).
//!
//! The hot path has no actor hop: the LISTEN callback notifies the shared
//! [`Waiters`] directly. The actor owns the listener and the sweeper (both
//! tasks), so that supervision restarts them together.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use skypanel_store::tasks;
use skypanel_store::wakeups::{self, Wakeup};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::app::{AppMsg, TaskOutcome};
use crate::context::Context;
use crate::supervisor::actor_name;

/// How often expired leases are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How long a look that found a node's queue empty is trusted without a
/// wake-up: a bound on what a missed notification can cost. Each look draws
/// its own time between this and twice it, so that a fleet whose polls
/// started together (a control plane's restart) does not look again in
/// one wave.
const EMPTY_TRUSTED_FOR: Duration = Duration::from_secs(30);

/// Lease requests remembered per node, for answering a repeat.
const REQUESTS_REMEMBERED: usize = 4;

/// What the long-polls of one node share: their wake-up, how many wake-ups
/// there were, and what the last look at the node's queue found. A poll that
/// knows the queue is empty (no wake-up since a look found nothing) waits
/// without a query; so a fleet of idle agents costs the database nothing.
#[derive(Default)]
pub struct NodeWaiter {
    notify: Notify,
    wakeups: AtomicU64,
    /// The wake-up count at which a look found the queue empty, and until
    /// when that is trusted.
    empty: Mutex<Option<(u64, Instant)>>,
    /// The last lease requests that leased tasks (a repeat answers them again).
    requests: Mutex<VecDeque<Uuid>>,
}

impl NodeWaiter {
    /// The wake-up to wait on (enable it before looking at the queue).
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// How many wake-ups there were: read before a look, handed to
    /// [`Self::found_empty`] after it.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::SeqCst)
    }

    /// Whether a look would find nothing: one found the queue empty with no
    /// wake-up since (`seen` is [`Self::wakeups`] now), lately.
    pub fn known_empty(&self, seen: u64) -> bool {
        let empty = self.empty.lock().unwrap_or_else(|p| p.into_inner());
        empty.is_some_and(|(at, until)| at == seen && Instant::now() < until)
    }

    /// A look that started at wake-up count `seen` found the queue empty.
    pub fn found_empty(&self, seen: u64) {
        let mut empty = self.empty.lock().unwrap_or_else(|p| p.into_inner());
        let trusted = EMPTY_TRUSTED_FOR.mul_f64(1.0 + rand::random::<f64>());
        *empty = Some((seen, Instant::now() + trusted));
    }

    /// Lease request `request` leased tasks.
    pub fn leased(&self, request: Uuid) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if requests.len() == REQUESTS_REMEMBERED {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    /// Whether `request` leased tasks lately (it comes again: its answer was lost).
    pub fn leased_lately(&self, request: Uuid) -> bool {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        requests.contains(&request)
    }

    fn wake(&self) {
        self.wakeups.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// One [`NodeWaiter`] per node, shared by the long-polls and the listener.
#[derive(Clone, Default)]
pub struct Waiters(Arc<Mutex<HashMap<i64, Arc<NodeWaiter>>>>);

impl Waiters {
    /// The waiter a long-poll of `node` uses.
    pub fn of(&self, node: i64) -> Arc<NodeWaiter> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(node).or_default().clone()
    }

    pub fn wake(&self, wakeup: Wakeup) {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match wakeup {
            Wakeup::Node(node) => {
                if let Some(waiter) = map.get(&node) {
                    waiter.wake();
                }
            }
            Wakeup::All => map.values().for_each(|w| w.wake()),
            Wakeup::TaskEnded(_) => {}
        }
    }
}

pub struct BrokerState {
    listener: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    heartbeats: JoinHandle<()>,
    shards: JoinHandle<()>,
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
/// is told to the task's application, run or database.
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
    crate::runs::end_overdue(ctx).await?;
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
        crate::metrics::task_ended(&task);
        // Told to its owner as a reported failure would be: a database's
        // provisioning fails with the reason, a move is undone, a push is
        // recorded failed, a run ends.
        let Some(app_id) = crate::outcomes::deliver(ctx, &task).await? else {
            continue;
        };
        let outcome = TaskOutcome::of(&task, None, None);
        if let Some(actor) = ractor::registry::where_is(actor_name(ctx, "app", app_id)) {
            let actor: ActorRef<AppMsg> = actor.into();
            let _ = crate::mailboxes::cast(&actor, AppMsg::TaskFinished(outcome));
        } else if !ctx.shards().owns(app_id) {
            let outcome = Box::new(outcome);
            crate::replicas::tell(
                ctx,
                crate::replicas::Call::AppTaskFinished { app_id, outcome },
            );
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
            let ends = listen_ctx.store().task_ends().clone();
            wakeups::listen(
                listen_ctx.store().clone(),
                Duration::from_secs(15),
                move |w| {
                    waiters.wake(w);
                    ends.wake(w);
                },
            )
        });
        let beats_ctx = ctx.clone();
        let heartbeats = keep_running("heartbeat writer", move || {
            crate::beats::write_forever(beats_ctx.clone())
        });
        let shards_ctx = ctx.clone();
        let shards = keep_running("shard leases", move || {
            crate::shards::keep_forever(shards_ctx.clone())
        });
        let sweeper = keep_running("lease sweeper", move || sweep_forever(ctx.clone()));
        Ok(BrokerState {
            listener,
            sweeper,
            heartbeats,
            shards,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut BrokerState,
    ) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        state.sweeper.abort();
        state.heartbeats.abort();
        state.shards.abort();
        Ok(())
    }
}
