//! A moving database's dump on its way between two nodes: the node it
//! leaves hands it over (`PUT /api/internal/paas/database-moves/:id/dump`),
//! the node it goes to fetches it (`GET` at the same path), each with its
//! own credential and only while the move is at its step. The dump is
//! written under a temporary name and kept whole (renamed) only once it has
//! all arrived; it may not exceed twice its old plan's storage plus 256 MiB.
//! The actors remove it when the move ends.

use poem::web::{Data, Path};
use poem::{Body, IntoResponse, Request, Response, handler};
use skypanel_store::catalog;
use skypanel_store::database_moves::{self, Move};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ApiError;
use crate::state::AppState;

/// Whether `path` is a move's dump (its body has a limit of its own).
pub fn is_dump_path(path: &str) -> bool {
    path.strip_prefix("/api/internal/paas/database-moves/")
        .and_then(|rest| rest.strip_suffix("/dump"))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// The move, when `request` comes from its node for `step` ("exporting":
/// the node it leaves; "importing": the node it goes to).
async fn move_of(
    request: &Request,
    state: &AppState,
    move_id: i64,
    step: &str,
) -> Result<Move, ApiError> {
    let node = crate::auth::node_of(request)
        .await
        .map_err(|_| ApiError::unauthorized("unknown or expired node credential"))?
        .node;
    let mut conn = state.store().conn().await?;
    let moving = database_moves::by_id(&mut conn, move_id)
        .await
        .ok()
        .filter(|m| {
            let of = if step == "exporting" {
                m.from_node_id
            } else {
                m.to_node_id
            };
            of == node
        })
        .ok_or_else(|| ApiError::not_found("database move"))?;
    if moving.status != step {
        return Err(ApiError::conflict(
            "conflict",
            format!("the move is {}, not {step}", moving.status),
            None,
        ));
    }
    Ok(moving)
}

/// `PUT …/database-moves/:id/dump`: the node the database leaves hands its dump over.
#[handler]
pub async fn hand_over(
    request: &Request,
    Path(move_id): Path<i64>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Response {
    match receive(request, move_id, body, state).await {
        Ok(()) => poem::http::StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn receive(
    request: &Request,
    move_id: i64,
    body: Body,
    state: &AppState,
) -> Result<(), ApiError> {
    let moving = move_of(request, state, move_id, "exporting").await?;
    let mut conn = state.store().conn().await?;
    let plan = catalog::get_plan(&mut conn, moving.from_plan_id).await?;
    drop(conn);
    let limit = (u64::try_from(plan.storage_limit).unwrap_or(0) * 2 + 256) * 1024 * 1024;
    let too_large = || {
        ApiError::too_large(format!(
            "the dump is larger than the move takes ({} MiB)",
            limit / (1024 * 1024)
        ))
    };
    let announced = request
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let target = skypanel_actors::dump_file(state.orchestrator()?.context(), move_id);
    let folder = target.parent().map(std::path::Path::to_path_buf);
    if let Some(folder) = &folder {
        tokio::fs::create_dir_all(folder)
            .await
            .map_err(ApiError::internal)?;
    }
    let partial = target.with_extension("partial");
    let written = async {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .await
            .map_err(ApiError::internal)?;
        let mut reader = body.into_async_read();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut taken: u64 = 0;
        loop {
            let read = reader
                .read(&mut buffer)
                .await
                .map_err(|e| ApiError::invalid_request(format!("the dump broke off: {e}")))?;
            if read == 0 {
                break;
            }
            taken += read as u64;
            if taken > limit {
                return Err(too_large());
            }
            file.write_all(&buffer[..read])
                .await
                .map_err(ApiError::internal)?;
        }
        if announced.is_some_and(|n| n != taken) {
            return Err(ApiError::invalid_request(format!(
                "the dump broke off after {taken} bytes"
            )));
        }
        file.sync_all().await.map_err(ApiError::internal)?;
        tokio::fs::rename(&partial, &target)
            .await
            .map_err(ApiError::internal)
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}

/// `GET …/database-moves/:id/dump`: the node the database goes to fetches its dump.
#[handler]
pub async fn fetch(
    request: &Request,
    Path(move_id): Path<i64>,
    Data(state): Data<&AppState>,
) -> Response {
    let opened = async {
        move_of(request, state, move_id, "importing").await?;
        let path = skypanel_actors::dump_file(state.orchestrator()?.context(), move_id);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| ApiError::not_found("dump"))?;
        let size = file.metadata().await.map_err(ApiError::internal)?.len();
        Ok::<_, ApiError>((file, size))
    };
    match opened.await {
        Ok((file, size)) => Response::builder()
            .header(poem::http::header::CONTENT_TYPE, "application/octet-stream")
            .header(poem::http::header::CONTENT_LENGTH, size)
            .body(Body::from_async_read(file)),
        Err(err) => err.into_response(),
    }
}
