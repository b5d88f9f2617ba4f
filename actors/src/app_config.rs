//! Configuration changes and requests that wait. A change of the variables,
//! a database linked or unlinked, or another plan or port makes a release of
//! the serving image with the configuration as it is now: rolled out at once where containers
//! should run, recorded for the next start where they should not (a stopped
//! or suspended application). A deploy, rollback or configuration change
//! asked for while a rollout runs waits for it and runs after it.

use diesel_async::AsyncConnection;
use skypanel_domain::lifecycle::{AppStatus, CommandPlan, ReleaseKind};
use skypanel_store::apps::{self, Application, StateChange};
use skypanel_store::env_vars;
use skypanel_store::{Conn, app_requests, builds, releases as release_rows};

use crate::app::{Accepted, AppRequest, AppState, ConfigChange, Waiting};
use crate::app_work::{Work, accepted, place, queue_in, serving_release};
use crate::error::Error;
use crate::releases::{self, EnvSource, ImageSource, ReleasePlan};

/// What a configuration change came to.
enum Outcome {
    /// The variables changed; there is no release to make yet (never deployed).
    VarsOnly,
    /// The containers would get what they have: no release.
    Unchanged,
    /// It waits for the rollout in flight, at this place in the line.
    Waiting(i64),
    /// A release was made (and rolled out, when the plan converges).
    Released(Box<Application>, i32),
}

/// Applies a configuration change as the transition table planned it.
pub(crate) async fn configure(
    state: &mut AppState,
    plan: CommandPlan,
    change: ConfigChange,
) -> Result<Accepted, Error> {
    let ctx = state.ctx.clone();
    // The release the change applies to: the serving one, or the first one
    // while it rolls out (the change then waits for it). Before any release
    // only the variables change: the first build's release takes them.
    let serving = match state.app.current_release_id {
        Some(_) => Some(serving_release(state).await?),
        None if plan.waits => {
            let mut conn = ctx.store().conn().await?;
            release_rows::latest(&mut conn, state.id).await?
        }
        None => None,
    };
    // Where the rollout goes (the Scheduler records it on the row first).
    let node = match &serving {
        Some(serving) if plan.converge && !plan.waits => {
            let may_move = crate::app_moves::portable(&ctx, serving);
            let count = state.app.total_instances();
            Some(place(state, count, may_move).await?)
        }
        _ => None,
    };
    let current = state.app.clone();
    let mut conn = ctx.store().conn().await?;
    let (outcome, vars) = conn
        .transaction(async |conn| {
            crate::shards::fence(conn, &ctx, current.id).await?;
            let locked = apps::lock(conn, current.user_id, current.id).await?;
            if locked.version != current.version {
                return Err(skypanel_store::Error::conflict(
                    None,
                    "the application changed meanwhile; try again",
                ));
            }
            let vars = match &change.env {
                Some((env, mode)) => {
                    Some(env_vars::apply_change(conn, current.id, env, *mode).await?)
                }
                None => None,
            };
            let Some(serving) = serving else {
                return Ok((Outcome::VarsOnly, vars));
            };
            if plan.waits {
                let position = wait_for_config(conn, &current, &change).await?;
                return Ok((Outcome::Waiting(position), vars));
            }
            if releases::unchanged(conn, &ctx, &current, &serving).await? {
                return Ok((Outcome::Unchanged, vars));
            }
            let release_plan = ReleasePlan {
                kind: change.kind,
                description: change.description.clone(),
                created_by: Some(change.by),
                image: ImageSource::Of(Box::new(serving)),
                env: EnvSource::Current,
                build: None,
            };
            let (app, version) = match node {
                Some(node) => {
                    let work = Work::Release(Box::new(release_plan));
                    let (app, version) = queue_in(
                        conn,
                        &ctx,
                        &current,
                        plan,
                        node,
                        StateChange::default(),
                        work,
                    )
                    .await?;
                    (app, version.unwrap_or_default())
                }
                None => {
                    // Stopped or suspended: the next start runs this release.
                    let release = releases::record(conn, &ctx, &current, release_plan).await?;
                    let change = StateChange {
                        current_release_id: Some(Some(release.id)),
                        ..StateChange::default()
                    };
                    let app =
                        apps::write_state(conn, current.id, current.version, &change, ctx.now())
                            .await?;
                    (app, release.version)
                }
            };
            Ok((Outcome::Released(Box::new(app), version), vars))
        })
        .await?;
    let mut answer = accepted(state);
    answer.vars = vars;
    match outcome {
        Outcome::VarsOnly | Outcome::Unchanged => {}
        Outcome::Waiting(position) => {
            state.maybe_waiting = Some(true);
            answer.waiting = Some(waiting(state, position).await?);
        }
        Outcome::Released(app, version) => {
            state.app = *app;
            answer = Accepted {
                app: state.app.clone(),
                release: Some(version),
                ..answer
            };
            tracing::info!(app_id = state.id, release = version, description = %change.description, "configuration release");
        }
    }
    Ok(answer)
}

/// Records a configuration release that waits for the rollout in flight;
/// one already waiting takes this change's description too.
async fn wait_for_config(
    conn: &mut Conn,
    app: &Application,
    change: &ConfigChange,
) -> skypanel_store::Result<i64> {
    let earlier = app_requests::waiting(conn, app.id)
        .await?
        .into_iter()
        .find(|r| r.kind == "config");
    let (description, kind) = match earlier {
        Some(earlier) => {
            let before = earlier.payload["description"].as_str().unwrap_or_default();
            let kind = match earlier.payload["kind"].as_str() {
                Some("config") => ReleaseKind::Config,
                _ => change.kind,
            };
            (merged_description(before, &change.description), kind)
        }
        None => (change.description.clone(), change.kind),
    };
    let payload = serde_json::json!({"description": description, "kind": kind.as_str()});
    app_requests::wait(conn, app.id, "config", &payload, Some(change.by)).await
}

/// The description of one release made of several changes: each once, in
/// order ("Set A; Remove B"), at most 300 characters.
fn merged_description(before: &str, next: &str) -> String {
    let mut parts: Vec<&str> = before.split("; ").filter(|p| !p.is_empty()).collect();
    if !parts.contains(&next) {
        parts.push(next);
    }
    let text = parts.join("; ");
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// Records a deploy or rollback that waits for the rollout in flight.
pub(crate) async fn wait(
    state: &mut AppState,
    kind: &str,
    payload: serde_json::Value,
    by: i64,
) -> Result<Accepted, Error> {
    let mut conn = state.ctx.store().conn().await?;
    let position = app_requests::wait(&mut conn, state.id, kind, &payload, Some(by)).await?;
    drop(conn);
    state.maybe_waiting = Some(true);
    tracing::info!(
        app_id = state.id,
        kind,
        position,
        "request waits for the rollout in flight"
    );
    let mut answer = accepted(state);
    answer.waiting = Some(waiting(state, position).await?);
    Ok(answer)
}

/// A deploy no node has room for now: it waits (a `deploy` request with
/// the time it started waiting), the owner reads why in `last_error` and a
/// notice, and the actor tries again until a node has room or
/// `placement_wait` has passed; then it gives up with the reason.
pub(crate) async fn wait_for_room(
    state: &mut AppState,
    by: i64,
    commit: Option<String>,
    reason: &str,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Accepted, Error> {
    let now = state.ctx.now();
    let since = since.unwrap_or(now);
    let limit = state.ctx.settings().placement_wait;
    let deadline = since + chrono::Duration::from_std(limit).unwrap_or_default();
    let region = state.app.region.clone();
    if now >= deadline {
        let minutes = limit.as_secs().div_ceil(60);
        let message = format!(
            "the deploy gave up: no node of region {region} had room for it for {minutes} minutes \
             ({reason}); deploy again once there is room"
        );
        note_no_room(state, &message, &format!("gave-up:{}", since.timestamp())).await?;
        return Err(Error::NoCapacity(message));
    }
    let message = format!(
        "waiting for room: {reason}; the deploy starts as soon as a node of region {region} \
         has room (it gives up at {} UTC)",
        deadline.format("%H:%M")
    );
    note_no_room(state, &message, &format!("waiting:{}", since.timestamp())).await?;
    let payload = serde_json::json!({"commit": commit, "room_since": since});
    let mut conn = state.ctx.store().conn().await?;
    let position = app_requests::wait(&mut conn, state.id, "deploy", &payload, Some(by)).await?;
    drop(conn);
    state.maybe_waiting = Some(true);
    let mut answer = accepted(state);
    answer.waiting = Some(Waiting {
        position,
        behind: format!("room on a node of region {region}"),
    });
    Ok(answer)
}

/// Tells the owner why a deploy waits (or gave up): `last_error`, and a
/// notice once per `occasion`.
pub(crate) async fn note_no_room(
    state: &mut AppState,
    message: &str,
    occasion: &str,
) -> Result<(), Error> {
    if state.app.last_error.as_deref() != Some(message) {
        let change = StateChange {
            last_error: Some(Some(message.to_string())),
            ..StateChange::default()
        };
        state.write(&change).await?;
    }
    let data = serde_json::json!({"application_id": state.id, "application": state.app.name});
    let key = format!("no_room:{}:{occasion}", state.id);
    let mut conn = state.ctx.store().conn().await?;
    skypanel_store::notifications::create_once(
        &mut conn,
        state.app.user_id,
        "no_room",
        &format!("{}: {message}", state.app.name),
        &data,
        &key,
        state.ctx.now(),
    )
    .await?;
    Ok(())
}

/// Where a waiting request stands, and what it waits for.
async fn waiting(state: &AppState, position: i64) -> Result<Waiting, Error> {
    let mut conn = state.ctx.store().conn().await?;
    let build = match state.app.current_build_id {
        Some(id) => Some(builds::by_id(&mut conn, id).await?),
        None => None,
    };
    let behind = match build {
        Some(build) if crate::app_commands::unfinished(build.status()?) => {
            format!("build #{}", build.build_number)
        }
        _ => match release_rows::latest(&mut conn, state.id).await? {
            Some(release) => format!("the rollout of v{}", release.version),
            None => "the deploy in progress".to_string(),
        },
    };
    Ok(Waiting { position, behind })
}

/// Runs the oldest waiting request once no rollout is in flight. A request
/// that cannot run leaves its reason in `last_error`.
pub(crate) async fn run_waiting(state: &mut AppState) -> Result<(), Error> {
    if state.maybe_waiting == Some(false) {
        return Ok(());
    }
    state.refresh().await?;
    let status = state.status()?;
    if matches!(
        status,
        AppStatus::Building | AppStatus::Deleting | AppStatus::Suspended
    ) {
        return Ok(());
    }
    let mut conn = state.ctx.store().conn().await?;
    let line = app_requests::waiting(&mut conn, state.id).await?;
    state.maybe_waiting = Some(line.len() > 1);
    let Some(next) = line.into_iter().next() else {
        return Ok(());
    };
    if !app_requests::take(&mut conn, next.id).await? {
        return Ok(());
    }
    drop(conn);
    if next.kind == "move" {
        let from = next.payload["from"].as_i64().unwrap_or_default();
        return crate::app_moves::relocate(state, from).await;
    }
    let by = next.requested_by.unwrap_or(state.app.user_id);
    let text = |key: &str| next.payload[key].as_str().map(str::to_string);
    // A deploy that waited for room keeps its start time (and its deadline).
    state.room_since = serde_json::from_value(next.payload["room_since"].clone()).ok();
    let request = match next.kind.as_str() {
        "deploy" => AppRequest::Deploy {
            by,
            commit: text("commit"),
        },
        "rollback" => AppRequest::Rollback {
            version: next.payload["version"]
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0),
            by,
        },
        _ => AppRequest::Configure(Box::new(ConfigChange {
            env: None,
            kind: match text("kind").as_deref() {
                Some("link") => ReleaseKind::Link,
                _ => ReleaseKind::Config,
            },
            description: text("description").unwrap_or_else(|| "Configuration change".into()),
            by,
        })),
    };
    tracing::info!(app_id = state.id, kind = %next.kind, "running a request that waited");
    let outcome = crate::app_commands::handle(state, request).await;
    state.room_since = None;
    match outcome {
        Ok(answer) => {
            if let Some(build) = answer.build.filter(|b| b.status == "pending") {
                state.ctx.build_requested(build.id);
            }
            Ok(())
        }
        Err(Error::NotFound) => Err(Error::NotFound),
        // Still no room (or given up): `wait_for_room` said why.
        Err(Error::NoCapacity(_)) if next.kind == "deploy" => Ok(()),
        Err(err) => {
            let message = format!(
                "the {} that waited for the rollout could not run: {err}",
                next.kind
            );
            tracing::warn!(app_id = state.id, %message);
            state.refresh().await?;
            let change = StateChange {
                last_error: Some(Some(message)),
                ..StateChange::default()
            };
            state.write(&change).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merged_description;

    #[test]
    fn waiting_changes_describe_their_release_once_each() {
        assert_eq!(merged_description("Set A", "Set A"), "Set A");
        assert_eq!(merged_description("Set A", "Remove B"), "Set A; Remove B");
        assert_eq!(
            merged_description("Set A; Remove B", "Set A"),
            "Set A; Remove B"
        );
        let long = merged_description(&"x".repeat(400), "Set A");
        assert_eq!(long.chars().count(), 301);
        assert!(long.ends_with('…'));
    }
}
