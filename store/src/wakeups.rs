//! Task wake-ups: a dedicated connection LISTENs on the channel the
//! `paas_tasks` trigger notifies at commit, and reports the node each
//! notification names. Reconnects on its own; after a reconnect it reports
//! `Wakeup::All`, since notifications may have been missed meanwhile.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;

use crate::Store;

/// The channel `skypanel_notify_task()` notifies.
pub const CHANNEL: &str = "skypanel_tasks";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// A task of this node was queued, requeued or finished.
    Node(i64),
    /// Anything may have happened (the listener reconnected).
    All,
}

/// Listens until the returned future is dropped, calling `on_wakeup` for each
/// notification. Checks the connection every `probe` of silence.
pub async fn listen(store: Store, probe: Duration, on_wakeup: impl Fn(Wakeup) + Send + Sync) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match AsyncPgConnection::establish(store.url()).await {
            Ok(mut conn) => {
                if diesel::sql_query(format!("LISTEN {CHANNEL}"))
                    .execute(&mut conn)
                    .await
                    .is_ok()
                {
                    backoff = Duration::from_millis(100);
                    on_wakeup(Wakeup::All);
                    serve(&mut conn, probe, &on_wakeup).await;
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
) {
    loop {
        let silent = {
            let mut stream = std::pin::pin!(conn.notifications_stream());
            loop {
                match tokio::time::timeout(probe, stream.next()).await {
                    Ok(Some(Ok(note))) => match note.payload.parse() {
                        Ok(node) => on_wakeup(Wakeup::Node(node)),
                        Err(_) => on_wakeup(Wakeup::All),
                    },
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
