//! The admin inspector's JSON: queues, actors and one application's insides.

use chrono::{DateTime, Utc};
use poem_openapi::Object;

/// One queue's counts and its latest failed and dead jobs.
#[derive(Object, Debug)]
pub struct QueueView {
    pub queue: String,
    /// Waiting to run (now, or later when delayed).
    pub pending: u64,
    pub running: u64,
    pub done: u64,
    /// Failed and waiting for another attempt.
    pub failed: u64,
    /// Failed for good, or killed.
    pub dead: u64,
    /// The latest failed and dead jobs, newest first.
    pub jobs: Vec<JobView>,
}

#[derive(Object, Debug)]
pub struct JobView {
    pub id: String,
    /// `failed` (another attempt will come) or `dead`.
    pub state: String,
    pub attempts: u32,
    /// The last run's outcome as the queue recorded it (the error of a failure).
    #[oai(nullable)]
    pub result: Option<String>,
    /// When it last ran (Unix seconds).
    #[oai(nullable)]
    pub last_run: Option<i64>,
    /// The job's arguments (ids only).
    #[oai(nullable)]
    pub job: Option<String>,
}

impl From<skypanel_jobs::QueueOverview> for QueueView {
    fn from(q: skypanel_jobs::QueueOverview) -> Self {
        Self {
            queue: q.queue,
            pending: q.pending,
            running: q.running,
            done: q.done,
            failed: q.failed,
            dead: q.dead,
            jobs: q
                .jobs
                .into_iter()
                .map(|j| JobView {
                    id: j.id,
                    state: j.state,
                    attempts: j.attempts,
                    result: j.result,
                    last_run: j.last_run,
                    job: j.job,
                })
                .collect(),
        }
    }
}

/// One actor of the live supervision tree.
#[derive(Object, Debug)]
pub struct ActorView {
    pub name: String,
    /// `root`, `supervisor`, `scheduler`, `lease-broker`, `node`, `app`,
    /// `wallet` (`replica`: a replica that did not answer).
    pub kind: String,
    /// The node, application or customer it stands for.
    #[oai(nullable)]
    pub entity_id: Option<i64>,
    /// `running`, `starting`, `stopping` …
    pub status: String,
    #[oai(nullable)]
    pub parent: Option<String>,
    /// Restarts within its supervisor's budget window.
    pub restarts: u64,
    /// Messages waiting in its mailbox (nodes, applications and wallets).
    pub queued: i64,
    /// The control-plane replica it runs on (its address, else its host);
    /// a replica that did not answer is one entry of kind `replica`.
    pub replica: String,
}

impl From<skypanel_actors::ActorInfo> for ActorView {
    fn from(a: skypanel_actors::ActorInfo) -> Self {
        Self {
            name: a.name,
            kind: a.kind,
            entity_id: a.entity_id,
            status: a.status,
            parent: a.parent,
            restarts: a.restarts as u64,
            queued: a.queued,
            replica: a.replica,
        }
    }
}

/// An application as the inspector lists it.
#[derive(Object, Debug)]
pub struct InspectedAppSummary {
    pub id: i64,
    pub name: String,
    pub user_id: i64,
    pub status: String,
    #[oai(nullable)]
    pub node_id: Option<i64>,
    pub instance_count: i32,
}

/// One application's insides.
#[derive(Object, Debug)]
pub struct InspectedApp {
    pub app: InspectedAppSummary,
    pub generation: i64,
    #[oai(nullable)]
    pub last_error: Option<String>,
    pub releases: Vec<InspectedRelease>,
    pub tasks: Vec<InspectedTask>,
    /// The latest runtime log lines (`[instance] line`).
    pub logs: Vec<String>,
}

#[derive(Object, Debug)]
pub struct InspectedRelease {
    pub version: i32,
    pub image_tag: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Object, Debug)]
pub struct InspectedTask {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub node_id: i64,
    pub attempt: i32,
    #[oai(nullable)]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
}
