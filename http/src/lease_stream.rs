//! `GET /api/internal/paas/nodes/:id/lease-stream`: an agent's long-polls
//! over its connection upgraded to `skypanel-lease/1` (the frames are in
//! `skypanel_protocol::lease_stream`).
//!
//! The upgrade passes the middleware chain once (credential, logging); each
//! ask after it is served here, outside poem's per-request machinery, so a
//! waiting ask holds a few hundred bytes instead of an HTTP request's
//! buffers and futures. Every ask checks the credential again (answered from
//! memory), so a rotated-away or removed credential stops leasing at once.

use poem::http::StatusCode;
use poem::http::header::{CONNECTION, UPGRADE};
use poem::web::Path;
use poem::{Request, Response, Upgraded, handler};
use skypanel_actors::Polled;
use skypanel_protocol::CREDENTIAL_HEADER;
use skypanel_protocol::lease_stream::{
    Hello, LeaseAsk, LeaseReply, Lines, MAX_ASK_BYTES, PROTOCOL, Refusal, frame,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::auth::node::{authenticate, node_of};
use crate::error::ApiError;
use crate::leasing::long_poll;
use crate::state::AppState;

/// Upgrades the connection of node `id`'s agent to a lease stream.
#[handler]
pub async fn upgrade(request: &Request, Path(id): Path<i64>) -> poem::Result<Response> {
    node_of(request).await?.require(id)?;
    let asked = request
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case(PROTOCOL));
    if !asked {
        return Err(ApiError::bad_request(
            "upgrade_required",
            format!("the lease stream needs `Connection: upgrade` and `Upgrade: {PROTOCOL}`"),
            Some("Upgrade"),
        )
        .into());
    }
    let Some(state) = request.data::<AppState>().cloned() else {
        return Err(ApiError::internal("AppState missing from request data").into());
    };
    let credential = request
        .header(CREDENTIAL_HEADER)
        .unwrap_or_default()
        .to_string();
    let on_upgrade = request.take_upgrade().map_err(|_| {
        ApiError::bad_request(
            "upgrade_required",
            "this connection cannot be upgraded (HTTP/1.1 is needed)",
            Some("Upgrade"),
        )
    })?;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(io) => serve(state, id, credential, io).await,
            Err(err) => tracing::debug!(node_id = id, error = %err, "lease stream upgrade failed"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(CONNECTION, "upgrade")
        .header(UPGRADE, PROTOCOL)
        .finish())
}

/// Answers the asks of one stream until the agent closes it or an ask is
/// refused.
async fn serve(state: AppState, node: i64, credential: String, io: Upgraded) {
    let (mut reader, mut writer) = tokio::io::split(io);
    if write(&mut writer, &frame(&Hello::new())).await.is_err() {
        return;
    }
    let mut lines = Lines::new(MAX_ASK_BYTES);
    loop {
        let ask = match next_ask(&mut reader, &mut lines).await {
            Ok(Some(ask)) => ask,
            Ok(None) => return,
            Err(refusal) => {
                refuse(&mut writer, refusal).await;
                return;
            }
        };
        // Boxed: between asks the stream holds only its reader and writer.
        let answered = Box::pin(answer(&state, node, &credential, ask, &mut reader)).await;
        let reply = match answered {
            Ok(Polled::Tasks(tasks)) => LeaseReply {
                tasks,
                refused: None,
            },
            Ok(Polled::Gone) => return,
            Err(err) => {
                refuse(&mut writer, refusal_of(&err)).await;
                return;
            }
        };
        if write(&mut writer, &frame(&reply)).await.is_err() {
            // The agent sends the same request id again on its next
            // connection and is answered the same tasks.
            return;
        }
    }
}

/// One ask: the credential still good, then the long-poll, which ends early
/// when the agent hangs up (or speaks out of turn) while it waits.
async fn answer(
    state: &AppState,
    node: i64,
    credential: &str,
    ask: LeaseAsk,
    reader: &mut ReadHalf<Upgraded>,
) -> Result<Polled, ApiError> {
    authenticate(state, credential).await?.require(node)?;
    let gone = async move {
        let mut byte = [0u8; 1];
        let _ = reader.read(&mut byte).await;
    };
    long_poll(state, node, ask.wait, ask.max, ask.request, gone).await
}

/// The next ask, or None when the agent closed the stream between asks.
async fn next_ask(
    reader: &mut ReadHalf<Upgraded>,
    lines: &mut Lines,
) -> Result<Option<LeaseAsk>, Refusal> {
    loop {
        if let Some(line) = lines.next_line() {
            return serde_json::from_slice(&line)
                .map(Some)
                .map_err(|e| Refusal {
                    code: "invalid".into(),
                    message: format!("an ask is one JSON object per line: {e}"),
                    field: None,
                    status: 422,
                });
        }
        let mut chunk = [0u8; 256];
        let read = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(read) => read,
        };
        lines.push(&chunk[..read]).map_err(|_| Refusal {
            code: "invalid".into(),
            message: format!("an ask is at most {MAX_ASK_BYTES} bytes"),
            field: None,
            status: 413,
        })?;
    }
}

fn refusal_of(err: &ApiError) -> Refusal {
    let body = err.body();
    Refusal {
        code: body.code.clone(),
        message: body.message.clone(),
        field: body.field.clone(),
        status: err.status().as_u16(),
    }
}

async fn refuse(writer: &mut WriteHalf<Upgraded>, refusal: Refusal) {
    let reply = LeaseReply {
        tasks: Vec::new(),
        refused: Some(refusal),
    };
    let _ = write(writer, &frame(&reply)).await;
    let _ = writer.shutdown().await;
}

async fn write(writer: &mut WriteHalf<Upgraded>, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}
