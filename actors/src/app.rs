//! `AppActor`: one per application. It serialises every change of its
//! application: customer requests, task outcomes, and what nodes report.
//! Its state is the application row, reloaded before each decision and
//! written back with a version check; a crashed actor is rebuilt from it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use skypanel_domain::lifecycle::{AppCommand, AppStatus, ReleaseKind};
use skypanel_protocol::node::ContainerReport;
use skypanel_protocol::task::TaskSpec;
use skypanel_store::apps::{self, Application, StateChange};
use skypanel_store::builds::Build;
use skypanel_store::env_vars;
use skypanel_store::tasks::Task;

use crate::app_builds::{BuildStep, StepOutcome};
use crate::context::Context;
use crate::error::Error;
use crate::supervisor::Entity;

/// What a customer asks of an application.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum AppRequest {
    /// Roll out the application's image as a new release, or build its git
    /// repository (at `commit`, else its branch's head) and roll that out.
    Deploy {
        by: i64,
        commit: Option<String>,
    },
    /// Roll release `version`'s image out again, with its environment.
    Rollback {
        version: i32,
        by: i64,
    },
    /// Change the configuration (variables set or removed, or a database
    /// linked or unlinked): a new release of the serving release's image, as
    /// Heroku makes when config vars change.
    Configure(Box<ConfigChange>),
    Restart,
    Stop,
    Start,
    /// Instances per process type (`web` is `instance_count`); types not
    /// named keep their count.
    Scale(std::collections::BTreeMap<String, i32>),
    Delete,
    /// Stop a build that has not finished.
    CancelBuild(i64),
    /// The application's hostnames changed: rewrite its node's ingress.
    Reconfigure,
    /// Its owner's wallet stayed below zero past the grace period: stop
    /// its containers (data kept) and remember what it was.
    Suspend,
    /// Its owner's wallet is back at zero or above: bring back what it was.
    Resume,
}

impl AppRequest {
    /// The command the transition table knows it as (`None` for requests
    /// that change no status).
    pub fn command(&self) -> Option<AppCommand> {
        Some(match self {
            Self::Deploy { .. } => AppCommand::Deploy,
            Self::Rollback { .. } => AppCommand::Rollback,
            Self::Configure(_) => AppCommand::Configure,
            Self::Restart => AppCommand::Restart,
            Self::Stop => AppCommand::Stop,
            Self::Start => AppCommand::Start,
            Self::Scale(_) => AppCommand::Scale,
            Self::Delete => AppCommand::Delete,
            Self::CancelBuild(_) | Self::Reconfigure | Self::Suspend | Self::Resume => {
                return None;
            }
        })
    }
}

/// A configuration change, and the release it makes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConfigChange {
    /// Variables to set and remove (values sealed), and how existing keys
    /// are treated; `None` when only links changed.
    pub env: Option<(env_vars::Change, env_vars::Mode)>,
    /// `Config`, or `Link` for a database linked or unlinked.
    pub kind: ReleaseKind,
    /// What the release says of itself ("Set GREETING").
    pub description: String,
    pub by: i64,
}

/// A request waiting for the rollout in flight.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Waiting {
    /// 1: it runs next.
    pub position: i64,
    /// What it waits for ("build #4", "the rollout of v7").
    pub behind: String,
}

/// A request the actor accepted: the application as it is now.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    pub app: Application,
    /// The release a deploy, rollback or configuration change made.
    pub release: Option<i32>,
    /// The build a deploy from git started (or a cancel ended).
    pub build: Option<Build>,
    /// The application is gone already (it never ran anywhere).
    pub deleted: bool,
    /// The request waits for the rollout in flight and runs after it.
    pub waiting: Option<Waiting>,
    /// The variables after a configuration change.
    pub vars: Option<Vec<env_vars::EnvVar>>,
}

/// What the actor holds, for the inspector and tests.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AppSnapshot {
    pub app: Application,
    /// When the actor started (on the replica that answered: a snapshot
    /// carried from another replica reads as started when it arrived).
    #[serde(skip, default = "Instant::now")]
    pub started_at: Instant,
}

/// The outcome of a task of this application, as its node reported it (or
/// as the lease sweeper decided when the node stopped answering).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskOutcome {
    pub task_id: i64,
    pub node_id: i64,
    pub kind: String,
    pub generation: Option<i64>,
    pub release: Option<i32>,
    pub succeeded: bool,
    pub error: Option<String>,
    /// The application's containers as the node reported them with the
    /// outcome; `None` when not known (a replayed or expired task).
    pub instances: Option<Vec<ContainerReport>>,
    /// When the node listed them (its clock).
    pub observed_at: Option<DateTime<Utc>>,
    /// The image a prebuilt reference resolved to on the node.
    pub resolved: Option<String>,
}

impl TaskOutcome {
    /// The outcome a finished task records.
    pub fn of(
        task: &Task,
        instances: Option<Vec<ContainerReport>>,
        observed_at: Option<DateTime<Utc>>,
    ) -> Self {
        let release = match serde_json::from_value::<TaskSpec>(task.payload.clone()) {
            Ok(TaskSpec::AppApply(spec) | TaskSpec::AppRestart(spec)) => Some(spec.release),
            _ => None,
        };
        Self {
            task_id: task.id,
            node_id: task.node_id,
            kind: task.kind.clone(),
            generation: task.generation,
            release,
            succeeded: task.status == "succeeded",
            error: task.error.clone(),
            instances,
            observed_at,
            resolved: skypanel_protocol::task::TaskResult::from_json(task.result.as_ref())
                .resolved
                .map(|r| r.image_id),
        }
    }
}

pub enum AppMsg {
    Request(AppRequest, RpcReplyPort<Result<Accepted, Error>>),
    /// A step of a build, from its job.
    Build(BuildStep, RpcReplyPort<Result<StepOutcome, Error>>),
    TaskFinished(TaskOutcome),
    /// The containers of this application a node reported in a heartbeat.
    Observed {
        node_id: i64,
        containers: Vec<ContainerReport>,
        /// When the node listed them (its clock).
        observed_at: DateTime<Utc>,
    },
    Snapshot(RpcReplyPort<AppSnapshot>),
    /// The application's node went offline: move it if it should run.
    NodeLost(i64),
    /// Looks for an outcome the actor missed (a report recorded while it was
    /// down or crashing): sent on start and then every [`CATCH_UP_EVERY`].
    CatchUp,
    /// Panics inside the handler, to prove supervision in tests.
    #[cfg(feature = "testing")]
    Crash,
}

pub struct AppState {
    pub(crate) ctx: Context,
    pub(crate) id: i64,
    pub(crate) app: Application,
    pub(crate) started_at: Instant,
    /// When the last task outcome changed the application; reports a node
    /// gathered before then may not show it yet.
    pub(crate) last_change: Option<Instant>,
    /// Per node, when the newest container list applied was read (the node's
    /// clock): an older one arriving late is stale and ignored.
    pub(crate) newest_report: HashMap<i64, DateTime<Utc>>,
    /// Whether requests may wait for a rollout (`None`: not looked yet).
    /// Only this actor adds them, so `Some(false)` spares the look.
    pub(crate) maybe_waiting: Option<bool>,
    /// While a deploy that waited for room runs again: since when it waits.
    pub(crate) room_since: Option<DateTime<Utc>>,
    /// The count of its waiting messages.
    pub(crate) mailbox: crate::mailboxes::Mailbox,
}

impl AppState {
    /// Whether a container list read at `at` on `node` is newer than every
    /// one applied so far; if so it becomes the newest.
    pub(crate) fn fresh_report(&mut self, node: i64, at: Option<DateTime<Utc>>) -> bool {
        let Some(at) = at else { return true };
        match self.newest_report.get(&node) {
            Some(newest) if *newest >= at => false,
            _ => {
                self.newest_report.insert(node, at);
                true
            }
        }
    }
}

impl AppState {
    /// Reloads the row; `NotFound` means the application is gone.
    pub(crate) async fn refresh(&mut self) -> Result<(), Error> {
        let mut conn = self.ctx.store().conn().await?;
        self.app = apps::load(&mut conn, self.id).await?;
        Ok(())
    }

    pub(crate) fn status(&self) -> Result<AppStatus, Error> {
        Ok(self.app.status()?)
    }

    /// Writes a state change of the row as it was read (version-checked),
    /// with its usage interval at the clock's time, and keeps the new row.
    /// Fenced: refused once another replica took the application's shard.
    pub(crate) async fn write(&mut self, change: &StateChange) -> Result<(), Error> {
        use diesel_async::AsyncConnection;
        let mut conn = self.ctx.store().conn().await?;
        let (ctx, id, version, now) = (&self.ctx, self.id, self.app.version, self.ctx.now());
        self.app = conn
            .transaction(async |conn| {
                crate::shards::fence(conn, ctx, id).await?;
                apps::write_state(conn, id, version, change, now).await
            })
            .await?;
        Ok(())
    }

    /// Whether node reports may be stale (gathered before the last change).
    pub(crate) fn settling(&self) -> bool {
        let grace = self
            .ctx
            .settings()
            .heartbeat_interval
            .min(Duration::from_secs(10));
        self.last_change.is_some_and(|at| at.elapsed() < grace)
    }
}

/// How often an actor whose application waits for an outcome looks for one
/// it may have missed.
pub const CATCH_UP_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct AppActor;

impl Actor for AppActor {
    type Msg = AppMsg;
    type State = AppState;
    type Arguments = (Context, i64);

    async fn pre_start(
        &self,
        myself: ActorRef<AppMsg>,
        (ctx, id): (Context, i64),
    ) -> Result<AppState, ActorProcessingErr> {
        let mailbox = crate::mailboxes::Mailbox::open(myself.get_id());
        let mut conn = ctx.store().conn().await?;
        let app = apps::load(&mut conn, id).await?;
        drop(conn);
        Ok(AppState {
            ctx,
            id,
            app,
            started_at: Instant::now(),
            last_change: None,
            newest_report: HashMap::new(),
            maybe_waiting: None,
            room_since: None,
            mailbox,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<AppMsg>,
        _state: &mut AppState,
    ) -> Result<(), ActorProcessingErr> {
        crate::mailboxes::cast(&myself, AppMsg::CatchUp)?;
        crate::mailboxes::every(myself, CATCH_UP_EVERY, || AppMsg::CatchUp);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<AppMsg>,
        message: AppMsg,
        state: &mut AppState,
    ) -> Result<(), ActorProcessingErr> {
        state.mailbox.took();
        // Boxed: an idle actor's task then holds no room for its largest
        // handler (thousands of actors sit idle at once).
        let span = tracing::info_span!("app", app_id = state.id);
        Box::pin(tracing::Instrument::instrument(
            handle_message(myself, message, state),
            span,
        ))
        .await
    }
}

/// What [`Actor::handle`] does with one message.
async fn handle_message(
    myself: ActorRef<AppMsg>,
    message: AppMsg,
    state: &mut AppState,
) -> Result<(), ActorProcessingErr> {
    // A rollout may end with any of these: requests waiting for it run then.
    let may_end_rollout = matches!(
        message,
        AppMsg::TaskFinished(_) | AppMsg::Build(..) | AppMsg::CatchUp | AppMsg::NodeLost(_)
    );
    match message {
        AppMsg::Request(request, reply) => {
            let outcome = crate::app_commands::handle(state, request).await;
            if let Err(Error::NotFound) = outcome {
                myself.stop(Some("application deleted".into()));
            }
            let gone = matches!(&outcome, Ok(accepted) if accepted.deleted);
            let _ = reply.send(outcome);
            if gone {
                myself.stop(Some("application deleted".into()));
            }
        }
        AppMsg::TaskFinished(outcome) => {
            match crate::app_events::task_finished(state, outcome).await {
                Ok(true) => myself.stop(Some("application deleted".into())),
                Ok(false) => {}
                Err(Error::NotFound) => myself.stop(Some("application deleted".into())),
                Err(err) => {
                    tracing::error!(app_id = state.id, error = %err, "cannot record a task outcome")
                }
            }
        }
        AppMsg::Observed {
            node_id,
            containers,
            observed_at,
        } => {
            if let Err(err) =
                crate::app_events::observed(state, node_id, containers, observed_at).await
            {
                if matches!(err, Error::NotFound) {
                    myself.stop(Some("application deleted".into()));
                } else {
                    tracing::warn!(app_id = state.id, error = %err, "cannot reconcile");
                }
            }
        }
        AppMsg::Build(step, reply) => {
            let outcome = crate::app_builds::step(state, step).await;
            let gone = matches!(outcome, Err(Error::NotFound));
            let _ = reply.send(outcome);
            if gone {
                myself.stop(Some("application deleted".into()));
            }
        }
        AppMsg::CatchUp => match crate::app_events::catch_up(state).await {
            Ok(true) | Err(Error::NotFound) => myself.stop(Some("application deleted".into())),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(app_id = state.id, error = %err, "cannot catch up on task outcomes")
            }
        },
        AppMsg::NodeLost(node_id) => match crate::app_moves::node_lost(state, node_id).await {
            Err(Error::NotFound) => myself.stop(Some("application deleted".into())),
            Err(err) => {
                tracing::warn!(app_id = state.id, node_id, error = %err, "cannot move the application")
            }
            Ok(()) => {}
        },
        AppMsg::Snapshot(reply) => {
            let _ = reply.send(AppSnapshot {
                app: state.app.clone(),
                started_at: state.started_at,
            });
        }
        #[cfg(feature = "testing")]
        AppMsg::Crash => panic!("crash requested by a test"),
    }
    if may_end_rollout
        && matches!(myself.get_status(), ractor::ActorStatus::Running)
        && let Err(err) = crate::app_config::run_waiting(state).await
        && !matches!(err, Error::NotFound)
    {
        tracing::warn!(app_id = state.id, error = %err, "cannot run a waiting request");
    }
    Ok(())
}

/// Applications as a supervised entity kind.
pub struct Apps;

impl Entity for Apps {
    type Actor = AppActor;
    const KIND: &'static str = "app";

    async fn initial_ids(ctx: &Context) -> Result<Vec<i64>, Error> {
        let mut conn = ctx.store().conn().await?;
        Ok(apps::all_ids(&mut conn).await?)
    }
}
