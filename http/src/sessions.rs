//! The relay of attached runs' sessions. The caller (`sky run`) opens a
//! WebSocket at `/api/paas/runs/:run/session?ticket=…` with the run's
//! one-time ticket; the run's node opens one at `/api/internal/paas/runs/:run/session`
//! with its credential (nodes are never reached by the control plane: the
//! node dials out, as for everything else). Whichever comes first waits for
//! the other; then every message goes through unchanged (the format is in
//! `skypanel_protocol::session`), the caller's limited to its input, its
//! terminal size and the end of its input. When either side goes, the other
//! is closed: the node then kills the command (the session ended).
//!
//! The two sockets meet in this process's memory: with several control
//! plane replicas, both must reach the same one (documented in the README).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use poem::web::websocket::{Message, WebSocket, WebSocketConfig, WebSocketStream};
use poem::web::{Data, Path, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use skypanel_domain::credentials::token_digest;
use skypanel_protocol::session::{Control, MAX_CHUNK, STDIN};
use skypanel_store::runs;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a caller waits for the node (pulling an image takes a while).
const CALLER_WAITS: Duration = Duration::from_secs(600);
/// How long a node waits for the caller (the node gives up sooner itself).
const NODE_WAITS: Duration = Duration::from_secs(120);
/// How often a waiting caller looks whether the run ended meanwhile.
const LOOK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Node,
}

struct Parked {
    side: Side,
    id: u64,
    handoff: oneshot::Sender<WebSocketStream>,
}

/// Sockets waiting for their other side, by run.
#[derive(Default)]
pub struct Sessions {
    parked: Mutex<HashMap<i64, Parked>>,
    next: AtomicU64,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings `socket` together with the run's other side, then relays
    /// until one of them goes.
    async fn meet(&self, state: &AppState, run_id: i64, side: Side, socket: WebSocketStream) {
        let (handoff, other) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let met = {
            let mut parked = self.lock();
            match parked.remove(&run_id) {
                Some(waiting) if waiting.side != side => Met::Waiting(waiting.handoff),
                Some(same) => {
                    parked.insert(run_id, same);
                    Met::Twice
                }
                None => {
                    parked.insert(run_id, Parked { side, id, handoff });
                    Met::Nobody
                }
            }
        };
        match met {
            // The waiting side relays; this task is done.
            Met::Waiting(handoff) => {
                if let Err(socket) = handoff.send(socket) {
                    close_with(socket, "the other side of the session went away").await;
                }
                return;
            }
            Met::Twice => {
                close_with(socket, "this run's session is open already").await;
                return;
            }
            Met::Nobody => {}
        }
        let waited = match side {
            Side::Caller => CALLER_WAITS,
            Side::Node => NODE_WAITS,
        };
        let outcome = tokio::select! {
            other = other => other.map_err(|_| None),
            () = tokio::time::sleep(waited) => Err(None),
            why = run_ended(state, run_id), if side == Side::Caller => Err(Some(why)),
        };
        {
            let mut parked = self.lock();
            if parked.get(&run_id).is_some_and(|p| p.id == id) {
                parked.remove(&run_id);
            }
        }
        match outcome {
            Ok(other) => match side {
                Side::Caller => relay(socket, other).await,
                Side::Node => relay(other, socket).await,
            },
            Err(why) => {
                let why = why.unwrap_or_else(|| match side {
                    Side::Caller => "the run's node did not open the session in time".into(),
                    Side::Node => "the caller did not open the session in time".into(),
                });
                close_with(socket, &why).await;
            }
        }
    }
}

/// What a socket found when it arrived.
enum Met {
    /// The other side waits: hand it this socket.
    Waiting(oneshot::Sender<WebSocketStream>),
    /// This side is there already.
    Twice,
    /// No one: wait.
    Nobody,
}

/// Sends a last error message and closes.
async fn close_with(mut socket: WebSocketStream, why: &str) {
    let error = Control::Error {
        message: why.to_string(),
    };
    let _ = socket.send(Message::Text(error.to_text())).await;
    let _ = socket.send(Message::Close(None)).await;
}

/// [`close_with`] on a socket's sending half.
async fn close_with_parts(
    to: &mut futures::stream::SplitSink<WebSocketStream, Message>,
    why: &str,
) {
    let error = Control::Error {
        message: why.to_string(),
    };
    let _ = to.send(Message::Text(error.to_text())).await;
    let _ = to.send(Message::Close(None)).await;
}

/// Resolves with why, once the run has ended (for a caller still waiting).
async fn run_ended(state: &AppState, run_id: i64) -> String {
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let Ok(mut conn) = state.store().conn().await else {
            continue;
        };
        if let Ok(run) = runs::get(&mut conn, run_id).await
            && runs::is_finished(&run.status)
        {
            return match (run.failure, run.exit_code) {
                (Some(failure), _) => format!("the run ended: {failure}"),
                (None, Some(code)) => format!("the run ended with exit code {code}"),
                (None, None) => "the run ended".to_string(),
            };
        }
    }
}

/// Copies messages both ways until one side goes; then closes the other.
async fn relay(caller: WebSocketStream, node: WebSocketStream) {
    let (mut to_caller, mut from_caller) = caller.split();
    let (mut to_node, mut from_node) = node.split();
    if to_node
        .send(Message::Text(Control::Attached.to_text()))
        .await
        .is_err()
    {
        close_with_parts(&mut to_caller, "the run's node went away").await;
        return;
    }
    let up = async {
        while let Some(Ok(message)) = from_caller.next().await {
            let forward = match &message {
                Message::Binary(bytes) => {
                    bytes.first() == Some(&STDIN) && bytes.len() <= MAX_CHUNK + 1
                }
                Message::Text(text) => matches!(
                    Control::parse(text),
                    Some(Control::Resize { .. } | Control::Eof)
                ),
                Message::Close(_) => break,
                _ => false,
            };
            if forward && to_node.send(message).await.is_err() {
                break;
            }
        }
        let _ = to_node.send(Message::Close(None)).await;
    };
    let down = async {
        while let Some(Ok(message)) = from_node.next().await {
            let passes = matches!(message, Message::Binary(_) | Message::Text(_));
            if matches!(message, Message::Close(_))
                || (passes && to_caller.send(message).await.is_err())
            {
                break;
            }
        }
        let _ = to_caller.send(Message::Close(None)).await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

fn config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_CHUNK * 2);
    config.max_frame_size = Some(MAX_CHUNK * 2);
    config
}

/// Takes the socket to the relay as `side` of run `run_id`.
fn upgrade(websocket: WebSocket, state: &AppState, run_id: i64, side: Side) -> Response {
    let state = state.clone();
    websocket
        .config(config())
        .on_upgrade(move |socket| async move {
            state.sessions().meet(&state, run_id, side, socket).await;
        })
        .into_response()
}

#[derive(Deserialize)]
struct Ticket {
    ticket: String,
}

/// `GET /api/paas/runs/:run/session?ticket=…`: the caller's side.
#[handler]
pub async fn caller_side(
    Path(run_id): Path<i64>,
    Query(query): Query<Ticket>,
    websocket: WebSocket,
    Data(state): Data<&AppState>,
) -> Response {
    let taken = async {
        let mut conn = state.store().conn().await?;
        let run = runs::take_ticket(&mut conn, run_id, &token_digest(&query.ticket))
            .await?
            .ok_or_else(|| ApiError::not_found("run session"))?;
        if runs::is_finished(&run.status) {
            return Err(ApiError::conflict("conflict", "the run has ended", None));
        }
        Ok::<_, ApiError>(run)
    };
    if let Err(err) = taken.await {
        return err.into_response();
    }
    upgrade(websocket, state, run_id, Side::Caller)
}

/// `GET /api/internal/paas/runs/:run/session`: the node's side (its credential in
/// `X-SkyPanel-Node-Credential`).
#[handler]
pub async fn node_side(
    request: &Request,
    Path(run_id): Path<i64>,
    websocket: WebSocket,
    Data(state): Data<&AppState>,
) -> Response {
    let checked = async {
        let node = crate::auth::node_of(request)
            .await
            .map_err(|_| ApiError::unauthorized("unknown or expired node credential"))?
            .node;
        let mut conn = state.store().conn().await?;
        let run = runs::get(&mut conn, run_id)
            .await
            .ok()
            .filter(|run| run.node_id == Some(node) && run.attach)
            .ok_or_else(|| ApiError::not_found("run"))?;
        if runs::is_finished(&run.status) {
            return Err(ApiError::conflict("conflict", "the run has ended", None));
        }
        Ok::<_, ApiError>(())
    };
    if let Err(err) = checked.await {
        return err.into_response();
    }
    upgrade(websocket, state, run_id, Side::Node)
}
