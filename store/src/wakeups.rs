//! Task wake-ups: a dedicated connection LISTENs on the channels the
//! `paas_tasks` trigger notifies at commit, and reports the node a queued
//! task names and the task that ended. Reconnects on its own; after a
//! reconnect it reports `Wakeup::All`, since notifications may have been
//! missed meanwhile. [`TaskEnds`] hands task ends to whoever waits for them.
//! The same connection hears [`Forget`]s: credentials revoked on one
//! control-plane replica that every replica must stop remembering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;

use crate::Store;

/// The channel `skypanel_notify_task()` notifies with a node whose queue
/// has a leasable task.
pub const CHANNEL: &str = "skypanel_tasks";
/// The channel `skypanel_notify_task()` notifies with a task that ended.
pub const ENDS_CHANNEL: &str = "skypanel_task_ends";
/// The channel a revoked credential is announced on ([`announce`]).
pub const FORGET_CHANNEL: &str = "skypanel_forget";

/// What every replica must stop remembering of the credentials it checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    /// A node's credentials (rotated, or the node removed).
    Node(i64),
    /// A user's sessions and tokens (logged out everywhere, deleted, role changed).
    User(i64),
    /// One session, by its digest (logged out).
    Session(String),
    /// Everything (the listener reconnected: a notice may have been missed).
    Everything,
}

impl Forget {
    fn payload(&self) -> String {
        match self {
            Self::Node(id) => format!("node:{id}"),
            Self::User(id) => format!("user:{id}"),
            Self::Session(digest) => format!("session:{digest}"),
            Self::Everything => "everything".into(),
        }
    }

    fn parse(payload: &str) -> Self {
        match payload.split_once(':') {
            Some(("node", id)) => id.parse().map_or(Self::Everything, Self::Node),
            Some(("user", id)) => id.parse().map_or(Self::Everything, Self::User),
            Some(("session", digest)) => Self::Session(digest.to_string()),
            _ => Self::Everything,
        }
    }
}

/// Announces `forget` to every replica's listener (this one's included), at
/// the commit of the caller's transaction if it is in one.
pub async fn announce(conn: &mut crate::Conn, forget: &Forget) -> crate::Result<()> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(FORGET_CHANNEL)
        .bind::<diesel::sql_types::Text, _>(forget.payload())
        .execute(conn)
        .await?;
    Ok(())
}

/// Hands the [`Forget`]s the listener hears to whoever remembers
/// credentials in this process (`subscribe`).
#[derive(Clone)]
pub struct Forgets(tokio::sync::broadcast::Sender<Forget>);

impl Default for Forgets {
    fn default() -> Self {
        Self(tokio::sync::broadcast::channel(1024).0)
    }
}

impl Forgets {
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Forget> {
        self.0.subscribe()
    }

    pub fn send(&self, forget: Forget) {
        let _ = self.0.send(forget);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// A task of this node was queued, requeued or finished.
    Node(i64),
    /// This task reached an end state (committed).
    TaskEnded(i64),
    /// Anything may have happened (the listener reconnected).
    All,
}

/// Who waits for which task to end. A waiter arms its wake-up before it
/// reads the task, so an end committed between the read and the wait is
/// not missed, and reads the task again when woken or after a bound
/// (the listener may be down, or reconnecting).
#[derive(Clone, Default)]
pub struct TaskEnds(Arc<Mutex<HashMap<i64, Arc<tokio::sync::Notify>>>>);

impl std::fmt::Debug for TaskEnds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskEnds").finish_non_exhaustive()
    }
}

impl TaskEnds {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<tokio::sync::Notify>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms a wake-up for task `id`'s end: read the task after this, then
    /// [`EndWait::wait`].
    pub fn arm(&self, id: i64) -> EndWait {
        let notify = self.map().entry(id).or_default().clone();
        let mut notified = Box::pin(notify.notified_owned());
        notified.as_mut().enable();
        EndWait {
            ends: self.clone(),
            id,
            notified,
        }
    }

    /// Wakes what waits for `wakeup`'s task (every waiter for `All`).
    pub fn wake(&self, wakeup: Wakeup) {
        let map = self.map();
        match wakeup {
            Wakeup::TaskEnded(id) => {
                if let Some(notify) = map.get(&id) {
                    notify.notify_waiters();
                }
            }
            Wakeup::All => map.values().for_each(|n| n.notify_waiters()),
            Wakeup::Node(_) => {}
        }
    }

    /// Tasks waited for right now (tests check that waiters leave nothing).
    pub fn waited(&self) -> usize {
        self.map().len()
    }
}

/// An armed wake-up for one task's end.
pub struct EndWait {
    ends: TaskEnds,
    id: i64,
    notified: std::pin::Pin<Box<tokio::sync::futures::OwnedNotified>>,
}

impl EndWait {
    /// Until the task's end is notified, or `at_most` passed. True when
    /// woken by a notification.
    pub async fn wait(mut self, at_most: Duration) -> bool {
        tokio::time::timeout(at_most, self.notified.as_mut())
            .await
            .is_ok()
    }
}

impl Drop for EndWait {
    fn drop(&mut self) {
        let mut map = self.ends.map();
        // The map's own reference and this one's: the last waiter leaves.
        if map.get(&self.id).is_some_and(|n| Arc::strong_count(n) <= 2) {
            map.remove(&self.id);
        }
    }
}

/// Listens until the returned future is dropped, calling `on_wakeup` for each
/// notification. Checks the connection every `probe` of silence.
pub async fn listen(store: Store, probe: Duration, on_wakeup: impl Fn(Wakeup) + Send + Sync) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match AsyncPgConnection::establish(store.url()).await {
            Ok(mut conn) => {
                let listening = async {
                    diesel::sql_query(format!("LISTEN {CHANNEL}"))
                        .execute(&mut conn)
                        .await?;
                    diesel::sql_query(format!("LISTEN {ENDS_CHANNEL}"))
                        .execute(&mut conn)
                        .await?;
                    diesel::sql_query(format!("LISTEN {FORGET_CHANNEL}"))
                        .execute(&mut conn)
                        .await
                };
                if listening.await.is_ok() {
                    backoff = Duration::from_millis(100);
                    on_wakeup(Wakeup::All);
                    store.forgets().send(Forget::Everything);
                    serve(&mut conn, probe, &on_wakeup, store.forgets()).await;
                }
                tracing::warn!("task wake-up listener lost its connection; reconnecting");
            }
            Err(err) => tracing::warn!(error = %err, "task wake-up listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Relays notifications until the connection fails.
async fn serve(
    conn: &mut AsyncPgConnection,
    probe: Duration,
    on_wakeup: &(impl Fn(Wakeup) + Send + Sync),
    forgets: &Forgets,
) {
    loop {
        let silent = {
            let mut stream = std::pin::pin!(conn.notifications_stream());
            loop {
                match tokio::time::timeout(probe, stream.next()).await {
                    Ok(Some(Ok(note))) if note.channel == FORGET_CHANNEL => {
                        forgets.send(Forget::parse(&note.payload));
                    }
                    Ok(Some(Ok(note))) => {
                        let id = note.payload.parse();
                        on_wakeup(match (note.channel.as_str(), id) {
                            (ENDS_CHANNEL, Ok(task)) => Wakeup::TaskEnded(task),
                            (_, Ok(node)) => Wakeup::Node(node),
                            (_, Err(_)) => Wakeup::All,
                        })
                    }
                    Ok(Some(Err(_)) | None) => return,
                    Err(_) => break true,
                }
            }
        };
        // Silence: make sure the connection still answers before listening on.
        if silent && diesel::sql_query("SELECT 1").execute(conn).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_travel_as_text_and_anything_unknown_forgets_everything() {
        for forget in [
            Forget::Node(7),
            Forget::User(3),
            Forget::Session("ab12".into()),
            Forget::Everything,
        ] {
            assert_eq!(Forget::parse(&forget.payload()), forget);
        }
        assert_eq!(Forget::parse("node:x"), Forget::Everything);
        assert_eq!(Forget::parse("what"), Forget::Everything);
    }
}
