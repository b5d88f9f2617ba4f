//! What `http` adds to a lease answer of `Orchestrator::lease_tasks`: the
//! clone tokens of builds, which only this layer can mint (GitHub's API, the
//! platform's git tickets). Shared by the HTTP long-poll
//! (`POST …/nodes/{id}/leases`) and the lease stream (`lease_stream`).

use std::future::Future;

use skypanel_actors::Polled;
use skypanel_protocol::task::{LeasedTask, TaskSpec};

use crate::error::ApiResult;
use crate::state::AppState;

/// `Orchestrator::lease_tasks`, with builds' clone tokens minted into the
/// tasks it answers.
pub(crate) async fn long_poll(
    state: &AppState,
    node: i64,
    wait: u64,
    max: i64,
    request: Option<uuid::Uuid>,
    gone: impl Future<Output = ()>,
) -> ApiResult<Polled> {
    let polled = state
        .orchestrator()?
        .lease_tasks(node, wait, max, request, gone)
        .await?;
    Ok(match polled {
        Polled::Tasks(tasks) => Polled::Tasks(with_clone_tokens(state, tasks).await),
        Polled::Gone => Polled::Gone,
    })
}

/// Builds of GitHub applications get a clone token minted for them as
/// their lease is handed out (never stored with the task).
async fn with_clone_tokens(state: &AppState, mut leased: Vec<LeasedTask>) -> Vec<LeasedTask> {
    for task in &mut leased {
        if let TaskSpec::AppBuild(spec) = &mut task.spec {
            crate::api::github::grant_clone_token(state, spec).await;
            crate::git::grant_build_read(state, spec).await;
        }
    }
    leased
}
