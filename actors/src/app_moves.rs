//! Applications whose node went offline. One that should run is placed on
//! another node of its region with room and rolled out there from the
//! registry, without a build; its names follow (the new node's ingress
//! serves them). One that no node can take (no room, or its image was never
//! pushed) fails with the reason and a notice, and waits: it moves as soon
//! as a node has room or its own node returns. The node that comes back
//! removes what it no longer owns (see `app_events::observed`).

use skypanel_domain::lifecycle::{AppEvent, AppStatus, CommandPlan, app_event};
use skypanel_store::apps::StateChange;
use skypanel_store::releases::Release;
use skypanel_store::{app_requests, notifications};

use crate::app::AppState;
use crate::app_work::{Work, place, queue, serving_release};
use crate::context::Context;
use crate::error::Error;

/// Whether a release's image can be had on any node of the region: it is
/// (or is being) pushed to the registry, or it is a prebuilt image any node
/// pulls by its reference.
pub(crate) fn portable(ctx: &Context, release: &Release) -> bool {
    let registry = ctx.settings().registry.is_some()
        && (release.image_digest.is_some() || release.registry_ref.is_some());
    registry || release.node_id.is_none()
}

/// Node `node_id` went offline: move the application if it ran there.
pub(crate) async fn node_lost(state: &mut AppState, node_id: i64) -> Result<(), Error> {
    state.refresh().await?;
    if state.app.node_id != Some(node_id) {
        return Ok(());
    }
    let status = state.status()?;
    // A build in flight moves by itself (its job starts it again elsewhere);
    // a stopped or suspended application is placed again when it starts.
    let moving = match status {
        AppStatus::Running | AppStatus::Failed => state.app.current_release_id.is_some(),
        AppStatus::Building => {
            state.app.current_release_id.is_some() && !build_under_way(state).await?
        }
        _ => false,
    };
    if moving {
        relocate(state, node_id).await?;
    }
    Ok(())
}

async fn build_under_way(state: &AppState) -> Result<bool, Error> {
    let Some(build_id) = state.app.current_build_id else {
        return Ok(false);
    };
    let mut conn = state.ctx.store().conn().await?;
    let build = skypanel_store::builds::by_id(&mut conn, build_id).await?;
    Ok(crate::app_commands::unfinished(build.status()?))
}

/// Places the application on another node and rolls its serving release out
/// there; when no node can take it, records why (status `failed`, a notice)
/// and leaves a `move` request that the actor tries again.
pub(crate) async fn relocate(state: &mut AppState, lost: i64) -> Result<(), Error> {
    let release = serving_release(state).await?;
    let may_move = portable(&state.ctx, &release);
    let count = state.app.total_instances();
    let placed = place(state, count, may_move).await;
    match placed {
        Ok(node) => {
            let plan = CommandPlan::new(AppStatus::Building, AppStatus::Running, true);
            queue(
                state,
                plan,
                node,
                StateChange::default(),
                Work::Apply(release),
            )
            .await?;
            let mut conn = state.ctx.store().conn().await?;
            app_requests::clear_kind(&mut conn, state.id, "move").await?;
            if node != lost {
                tracing::warn!(
                    app_id = state.id,
                    from = lost,
                    to = node,
                    "application moved off an offline node"
                );
                notify(
                    state,
                    "app_moved",
                    &format!(
                        "{}: its node went offline; it now runs on another node of region {} \
                         (custom domains must point at that node)",
                        state.app.name, state.app.region
                    ),
                    node,
                )
                .await?;
            }
            Ok(())
        }
        Err(Error::NoCapacity(reason)) => unplaced(state, lost, &reason).await,
        Err(other) => Err(other),
    }
}

/// No node can take the application now: it fails with the reason, its
/// owner hears of it once, and a `move` request waits for room.
async fn unplaced(state: &mut AppState, lost: i64, reason: &str) -> Result<(), Error> {
    let message = format!(
        "its node went offline and it cannot run elsewhere yet: {reason}; it starts again as soon \
         as a node of region {} has room or its node returns",
        state.app.region
    );
    let next = app_event(state.status()?, AppEvent::Unplaced);
    let said = state.app.last_error.as_deref() == Some(message.as_str());
    let changes_status = next.is_some_and(|n| Some(n) != state.status().ok());
    if !said || changes_status {
        let change = StateChange {
            last_error: Some(Some(message.clone())),
            target_status: Some(None),
            status: next.map(|n| n.as_str().to_string()),
            ..StateChange::default()
        };
        state.write(&change).await?;
    }
    let mut conn = state.ctx.store().conn().await?;
    let payload = serde_json::json!({"from": lost});
    app_requests::wait(&mut conn, state.id, "move", &payload, None).await?;
    drop(conn);
    state.maybe_waiting = Some(true);
    if said {
        return Ok(());
    }
    tracing::warn!(app_id = state.id, node_id = lost, %reason, "application cannot be placed");
    notify(
        state,
        "app_unplaced",
        &format!("{} is down: {message}", state.app.name),
        lost,
    )
    .await
}

/// A notice to the owner, once per application, generation and kind.
async fn notify(state: &AppState, kind: &str, message: &str, node: i64) -> Result<(), Error> {
    let data = serde_json::json!({
        "application_id": state.id,
        "application": state.app.name,
        "node_id": node,
    });
    let key = format!("{kind}:{}:{}", state.id, state.app.generation);
    let mut conn = state.ctx.store().conn().await?;
    notifications::create_once(
        &mut conn,
        state.app.user_id,
        kind,
        message,
        &data,
        &key,
        state.ctx.now(),
    )
    .await?;
    Ok(())
}
