//! Mailbox depths: how many messages wait for each entity actor (node,
//! application, wallet). ractor keeps no count of a mailbox, so every send
//! to these actors goes through [`cast`], [`call`], [`every`] or [`after`],
//! which count the message in, and the actor counts each one out as it
//! takes it ([`Mailbox::took`]). The count lives as long as the actor's
//! state: an actor that stops with messages queued takes its count with
//! it, so nothing drifts. A message sent before the actor opened its count
//! (in `pre_start`) is not counted in and taking it does not go below zero:
//! the depth may read low for a moment, never stay high.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorId, ActorRef, Message, MessagingErr, RpcReplyPort};

/// Every counted actor of this process and its messages waiting.
static QUEUED: LazyLock<Mutex<HashMap<ActorId, Arc<AtomicI64>>>> = LazyLock::new(Default::default);

fn counts() -> std::sync::MutexGuard<'static, HashMap<ActorId, Arc<AtomicI64>>> {
    QUEUED.lock().unwrap_or_else(|p| p.into_inner())
}

fn counter(id: ActorId) -> Option<Arc<AtomicI64>> {
    counts().get(&id).cloned()
}

fn take_one(queued: &AtomicI64) {
    let _ = queued.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        Some((n - 1).max(0))
    });
}

/// An actor's count of its waiting messages, held in its state (dropped
/// with it).
pub(crate) struct Mailbox {
    id: ActorId,
    queued: Arc<AtomicI64>,
}

impl Mailbox {
    /// Starts counting the messages of actor `id` (in its `pre_start`).
    pub(crate) fn open(id: ActorId) -> Self {
        let queued = counts().entry(id).or_default().clone();
        Self { id, queued }
    }

    /// The actor takes a message from its mailbox.
    pub(crate) fn took(&self) {
        take_one(&self.queued);
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        counts().remove(&self.id);
    }
}

/// The messages waiting for actor `id` (0 for an actor not counted).
pub fn queued(id: ActorId) -> i64 {
    counter(id).map_or(0, |q| q.load(Ordering::Relaxed))
}

/// Counts a message in for actor `id` before it is sent; answers the
/// count, for [`not_sent`] when the send fails.
fn count_in(id: ActorId) -> Option<Arc<AtomicI64>> {
    let queued = counter(id);
    if let Some(q) = &queued {
        q.fetch_add(1, Ordering::Relaxed);
    }
    queued
}

/// The message counted in by [`count_in`] never reached the mailbox.
fn not_sent(queued: Option<Arc<AtomicI64>>) {
    if let Some(q) = queued {
        take_one(&q);
    }
}

/// Sends `message` to `actor` without waiting, counted.
pub(crate) fn cast<M: Message>(actor: &ActorRef<M>, message: M) -> Result<(), MessagingErr<M>> {
    let queued = count_in(actor.get_id());
    let sent = actor.cast(message);
    if sent.is_err() {
        not_sent(queued);
    }
    sent
}

/// Asks `actor`, counted; a message that timed out still waits in the
/// mailbox and is counted out when the actor takes it.
pub(crate) async fn call<M: Message, R: Send + 'static>(
    actor: &ActorRef<M>,
    build: impl FnOnce(RpcReplyPort<R>) -> M,
    timeout: Option<Duration>,
) -> Result<CallResult<R>, MessagingErr<M>> {
    let queued = count_in(actor.get_id());
    let answer = actor.call(build, timeout).await;
    if answer.is_err() {
        not_sent(queued);
    }
    answer
}

/// Sends `make()` to `actor` every `period` until the actor stops.
pub(crate) fn every<M: Message>(
    actor: ActorRef<M>,
    period: Duration,
    make: impl Fn() -> M + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if cast(&actor, make()).is_err() {
                break;
            }
        }
    })
}

/// Sends `make()` to `actor` once, after `wait`.
pub(crate) fn after<M: Message>(
    actor: ActorRef<M>,
    wait: Duration,
    make: impl FnOnce() -> M + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let _ = cast(&actor, make());
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr};
    use tokio::sync::Semaphore;

    /// Takes a message only when the test lets it.
    struct Slow;

    struct SlowState {
        mailbox: Mailbox,
        gate: Arc<Semaphore>,
    }

    impl Actor for Slow {
        type Msg = u32;
        type State = SlowState;
        type Arguments = Arc<Semaphore>;

        async fn pre_start(
            &self,
            myself: ActorRef<u32>,
            gate: Arc<Semaphore>,
        ) -> Result<SlowState, ActorProcessingErr> {
            Ok(SlowState {
                mailbox: Mailbox::open(myself.get_id()),
                gate,
            })
        }

        async fn handle(
            &self,
            _myself: ActorRef<u32>,
            _message: u32,
            state: &mut SlowState,
        ) -> Result<(), ActorProcessingErr> {
            state.mailbox.took();
            state.gate.acquire().await?.forget();
            Ok(())
        }
    }

    async fn until(actor: ActorId, depth: i64) {
        until_with(actor, depth, |now| now == depth).await;
    }

    async fn until_with(actor: ActorId, depth: i64, done: impl Fn(i64) -> bool) {
        for _ in 0..200 {
            if done(queued(actor)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the depth stayed {} (not {depth})", queued(actor));
    }

    #[tokio::test]
    async fn a_mailbox_counts_what_waits_and_forgets_a_stopped_actor() {
        let gate = Arc::new(Semaphore::new(0));
        let (actor, handle) = Actor::spawn(None, Slow, gate.clone()).await.unwrap();
        let id = actor.get_id();
        for n in 0..5 {
            cast(&actor, n).unwrap();
        }
        // One is being handled (waiting at the gate), four wait.
        until(id, 4).await;
        gate.add_permits(2);
        until(id, 2).await;
        // A timer's messages are counted too.
        let timer = every(actor.clone(), Duration::from_millis(5), || 9);
        until_with(id, 3, |now| now >= 3).await;
        timer.abort();
        let _ = timer.await;
        let depth = queued(id);
        assert!(depth >= 3, "{depth}");
        after(actor.clone(), Duration::from_millis(5), || 7);
        until(id, depth + 1).await;
        // Stopped with messages waiting: the count goes with it, and a
        // message to the stopped actor counts nowhere.
        actor.kill();
        handle.await.unwrap();
        assert!(counter(id).is_none());
        assert!(cast(&actor, 1).is_err());
        assert!(counter(id).is_none());
        assert_eq!(queued(id), 0);
    }

    #[test]
    fn taking_from_an_uncounted_mailbox_stays_at_zero() {
        let q = AtomicI64::new(0);
        take_one(&q);
        assert_eq!(q.load(Ordering::Relaxed), 0);
        q.store(2, Ordering::Relaxed);
        take_one(&q);
        assert_eq!(q.load(Ordering::Relaxed), 1);
    }
}
