//! `NodeActor`: one per worker node. It owns the node's liveness (heartbeats,
//! and a timer that marks it offline when they stop), records its figures and
//! the containers it runs, and tells each application actor what its node
//! reported so that it can reconcile.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use skypanel_domain::lifecycle::node::under_pressure;
use skypanel_domain::lifecycle::{NodeEvent, NodeStatus, node_transition};
use skypanel_protocol::node::{ContainerReport, Heartbeat, HeartbeatAck};
use skypanel_protocol::task::{AppTarget, TaskSpec};
use skypanel_store::agents::{self, Beat, Figures};
use skypanel_store::tasks::{self, NewTask};
use skypanel_store::{apps, nodes};

use crate::app::AppMsg;
use crate::context::Context;
use crate::error::Error;
use crate::root::Child;
use crate::supervisor::{Entity, actor_name};

/// Every this many heartbeats every application is reconciled, changed or not.
const FULL_RECONCILE_EVERY: u64 = 10;
/// How long before the removal of a deleted application's containers is queued again.
const ORPHAN_RETRY: Duration = Duration::from_secs(300);

/// Resource use of one application on the node at one heartbeat.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UsageSample {
    pub at: chrono::DateTime<chrono::Utc>,
    /// Per instance: (instance, release, state, CPU %, memory MB).
    pub instances: Vec<(i32, i32, String, f64, i64)>,
}

/// Samples kept per application (about an hour at the default interval).
const USAGE_SAMPLES: usize = 120;

pub enum NodeMsg {
    Heartbeat(Box<Heartbeat>, RpcReplyPort<Result<HeartbeatAck, Error>>),
    /// The recent resource use of an application on this node, oldest first.
    Usage(i64, RpcReplyPort<Vec<UsageSample>>),
    /// Timer: has the node been silent for too long?
    CheckLiveness,
    /// An admin changed the node (disabled, enabled, renamed); reload it.
    Reload,
}

pub struct NodeState {
    ctx: Context,
    id: i64,
    status: NodeStatus,
    credential_issued_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When this actor last heard from the node (its start counts: a control
    /// plane that just restarted gives every node a full window).
    last_seen: Instant,
    beats: u64,
    /// A digest of the containers last reported, per application.
    last_report: HashMap<i64, u64>,
    /// Removal tasks queued for containers of deleted applications, and when.
    orphans: HashMap<i64, Instant>,
    /// Recent resource use per application, from the heartbeats.
    usage: HashMap<i64, std::collections::VecDeque<UsageSample>>,
    timer: Option<tokio::task::JoinHandle<()>>,
    /// The count of its waiting messages.
    mailbox: crate::mailboxes::Mailbox,
    /// The applications placed here were told the node is offline.
    apps_told: bool,
    /// Since when every heartbeat has shown the node under pressure.
    pressure_since: Option<Instant>,
}

#[derive(Default)]
pub struct NodeActor;

fn percent(used: i64, total: i64) -> f64 {
    if total <= 0 {
        0.0
    } else {
        used as f64 * 100.0 / total as f64
    }
}

fn digest(containers: &[&ContainerReport]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for c in containers {
        (
            &c.name,
            &c.container_id,
            c.state.as_str(),
            c.crash_looping,
            c.host_port,
        )
            .hash(&mut hasher);
    }
    hasher.finish()
}

impl NodeState {
    async fn reload(&mut self) -> Result<(), Error> {
        let mut conn = self.ctx.store().conn().await?;
        let node = nodes::get(&mut conn, self.id).await?;
        self.status = node.status()?;
        self.credential_issued_at = node.credential_issued_at;
        Ok(())
    }

    async fn heartbeat(&mut self, beat: Heartbeat) -> Result<HeartbeatAck, Error> {
        let cpu_used = (beat.cpu_usage_percent / 100.0 * f64::from(beat.cpu_total)).round() as i32;
        // Degraded only after a whole window under pressure: a build may
        // keep the CPU busy for minutes on a node that is fine.
        let pressed = under_pressure(
            beat.cpu_usage_percent,
            percent(beat.memory_used_mb, beat.memory_total_mb),
            percent(beat.disk_used_mb, beat.disk_total_mb),
        );
        let since = *self.pressure_since.get_or_insert_with(Instant::now);
        if !pressed {
            self.pressure_since = None;
        }
        let load_high = pressed && since.elapsed() >= self.ctx.settings().pressure_window;
        let previous = self.status;
        let next = node_transition(
            previous,
            NodeEvent::Heartbeat {
                overloaded: load_high,
            },
        );
        let figures = Figures {
            agent_version: beat.agent_version.clone(),
            cpu_total: beat.cpu_total,
            cpu_used,
            memory_total: clamp_mb(beat.memory_total_mb),
            memory_used: clamp_mb(beat.memory_used_mb),
            disk_total: clamp_mb(beat.disk_total_mb),
            disk_used: clamp_mb(beat.disk_used_mb),
            container_count: beat.container_count,
            images: beat.images.map(|i| (i.count, i.bytes)),
        };
        let next = match next {
            // A change of status is written at once, with the figures (only
            // while the node is still what this actor knows: an admin may
            // have changed it meanwhile, and the stored status wins) …
            Some(next) => {
                self.ctx.heartbeats().forget(self.id);
                let mut conn = self.ctx.store().conn().await?;
                let stored =
                    agents::record_heartbeat(&mut conn, self.id, &figures, Some((previous, next)))
                        .await?;
                self.status = stored.status()?;
                Some(next).filter(|n| *n == self.status)
            }
            // … the figures of an ordinary beat join the next batch.
            None => {
                self.ctx.heartbeats().push(Beat {
                    node_id: self.id,
                    figures,
                    at: chrono::Utc::now(),
                });
                None
            }
        };
        self.last_seen = Instant::now();
        self.beats += 1;
        self.apps_told = false;
        if let Some(next) = next {
            tracing::info!(node_id = self.id, from = %previous, to = %next, "node status");
        }
        self.record_usage(&beat.containers, beat.timestamp);
        let back = matches!(previous, NodeStatus::Offline | NodeStatus::Pending) && next.is_some();
        self.relay_containers(&beat.containers, beat.timestamp, back)
            .await?;
        for &database_id in &beat.crashed_databases {
            crate::databases::crashed(&self.ctx, self.id, database_id).await?;
        }
        if !beat.database_health.is_empty() {
            crate::databases::record_health(&self.ctx, self.id, &beat.database_health).await;
        }
        let max_age = chrono::Duration::from_std(self.ctx.settings().credential_max_age)
            .unwrap_or(chrono::Duration::days(1));
        Ok(HeartbeatAck {
            node_status: self.status.as_str().to_string(),
            rotate_credential: self
                .credential_issued_at
                .is_some_and(|at| chrono::Utc::now() - at > max_age),
            owner: self.ctx.shards().address().map(str::to_string),
        })
    }

    /// Keeps the heartbeat's usage figures per application (the last
    /// [`USAGE_SAMPLES`]); applications that left the node are forgotten.
    fn record_usage(&mut self, containers: &[ContainerReport], at: chrono::DateTime<chrono::Utc>) {
        let mut now: HashMap<i64, UsageSample> = HashMap::new();
        for c in containers {
            now.entry(c.application_id)
                .or_insert_with(|| UsageSample {
                    at,
                    instances: Vec::new(),
                })
                .instances
                .push((
                    c.instance,
                    c.release,
                    c.state.as_str().to_string(),
                    c.cpu_usage_percent,
                    c.memory_used_mb,
                ));
        }
        self.usage.retain(|app, _| now.contains_key(app));
        for (app, sample) in now {
            let samples = self.usage.entry(app).or_default();
            if samples.len() == USAGE_SAMPLES {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
    }

    /// Tells each application actor about its containers on this node when
    /// they changed, and all of them on a full reconcile (every few beats, or
    /// after the node came back). An application that was reported before
    /// and is not now is told it has none here; one placed here that never
    /// reported is found by the full reconcile's query, the only one a beat
    /// makes (a beat with nothing new costs no query at all).
    async fn relay_containers(
        &mut self,
        containers: &[ContainerReport],
        observed_at: chrono::DateTime<chrono::Utc>,
        force: bool,
    ) -> Result<(), Error> {
        let mut by_app: BTreeMap<i64, Vec<&ContainerReport>> = BTreeMap::new();
        for c in containers {
            by_app.entry(c.application_id).or_default().push(c);
        }
        for app in self.last_report.keys() {
            by_app.entry(*app).or_default();
        }
        let full = force || self.beats % FULL_RECONCILE_EVERY == 1;
        if full {
            let mut conn = self.ctx.store().conn().await?;
            for app in apps::ids_on_node(&mut conn, self.id).await? {
                by_app.entry(app).or_default();
            }
        }
        let digests: HashMap<i64, u64> =
            by_app.iter().map(|(app, cs)| (*app, digest(cs))).collect();
        let changed: HashSet<i64> = digests
            .iter()
            .filter(|(app, d)| self.last_report.get(app) != Some(d))
            .map(|(app, _)| *app)
            .collect();
        for (app, reported) in by_app {
            if !full && !changed.contains(&app) {
                continue;
            }
            let name = actor_name(&self.ctx, "app", app);
            if let Some(actor) = ractor::registry::where_is(name) {
                let actor: ActorRef<AppMsg> = actor.into();
                let containers = reported.into_iter().cloned().collect();
                let _ = crate::mailboxes::cast(
                    &actor,
                    AppMsg::Observed {
                        node_id: self.id,
                        containers,
                        observed_at,
                    },
                );
            } else if !self.ctx.shards().owns(app) {
                // Another replica runs the application's actor.
                let containers = reported.into_iter().cloned().collect();
                crate::replicas::tell(
                    &self.ctx,
                    crate::replicas::Call::AppObserved {
                        app_id: app,
                        node_id: self.id,
                        containers,
                        observed_at,
                    },
                );
            } else if !reported.is_empty() {
                let mut conn = self.ctx.store().conn().await?;
                if !apps::exists(&mut conn, app).await? {
                    let user_id = reported.first().map_or(0, |c| c.user_id);
                    self.remove_orphans(&mut conn, app, user_id).await?;
                }
            }
        }
        // Applications with nothing here are not kept: once told, they are
        // only looked at again on a full reconcile.
        self.last_report = digests
            .into_iter()
            .filter(|(app, _)| containers.iter().any(|c| c.application_id == *app))
            .collect();
        Ok(())
    }

    /// Queues the removal of containers whose application no longer exists,
    /// at most once every few minutes per application.
    async fn remove_orphans(
        &mut self,
        conn: &mut skypanel_store::Conn,
        app_id: i64,
        user_id: i64,
    ) -> Result<(), Error> {
        if self
            .orphans
            .get(&app_id)
            .is_some_and(|at| at.elapsed() < ORPHAN_RETRY)
        {
            return Ok(());
        }
        tracing::warn!(
            node_id = self.id,
            app_id,
            "removing containers of a deleted application"
        );
        let spec = TaskSpec::AppDelete(AppTarget {
            app_id,
            user_id,
            generation: 0,
            hostnames: Vec::new(),
            certificates: Vec::new(),
        });
        let new = NewTask {
            node_id: self.id,
            application_id: None,
            build_id: None,
            database_id: None,
            kind: spec.kind(),
            payload: serde_json::to_value(&spec)
                .map_err(|e| skypanel_store::Error::Corrupt(e.to_string()))?,
            generation: None,
            max_attempts: self.ctx.settings().task_max_attempts,
        };
        tasks::create(conn, &new, None).await?;
        self.orphans.insert(app_id, Instant::now());
        Ok(())
    }

    async fn check_liveness(&mut self) -> Result<(), Error> {
        if self.last_seen.elapsed() <= self.ctx.settings().node_offline_after {
            return Ok(());
        }
        if let Some(next) = node_transition(self.status, NodeEvent::HeartbeatsMissed) {
            let mut conn = self.ctx.store().conn().await?;
            match agents::change_status(&mut conn, self.id, self.status, next).await? {
                Some(_) => {
                    tracing::warn!(node_id = self.id, silent_for = ?self.last_seen.elapsed(), "node offline");
                    self.status = next;
                    self.last_report.clear();
                }
                // Changed meanwhile (an admin): take the stored status.
                None => self.reload().await?,
            }
        }
        if self.status == NodeStatus::Offline && !self.apps_told {
            self.tell_apps_lost().await?;
        }
        Ok(())
    }

    /// Tells every application placed here that the node is gone, so that
    /// each moves to another node of its region (once per outage).
    async fn tell_apps_lost(&mut self) -> Result<(), Error> {
        let mut conn = self.ctx.store().conn().await?;
        let placed = apps::ids_on_node(&mut conn, self.id).await?;
        drop(conn);
        for app in placed {
            if !self.ctx.shards().owns(app) {
                let lost = crate::replicas::Call::AppNodeLost {
                    app_id: app,
                    node_id: self.id,
                };
                crate::replicas::tell(&self.ctx, lost);
                continue;
            }
            match crate::orchestrator::entity_of::<AppMsg>(&self.ctx, Child::Apps, "app", app).await
            {
                Ok(actor) => {
                    let _ = crate::mailboxes::cast(&actor, AppMsg::NodeLost(self.id));
                }
                Err(Error::NotFound) => {}
                Err(err) => {
                    tracing::warn!(node_id = self.id, app_id = app, error = %err, "cannot tell an application its node is offline");
                    return Ok(());
                }
            }
        }
        self.apps_told = true;
        Ok(())
    }
}

/// MB figures fit the INTEGER columns (a node with more than 2 PB is clamped).
fn clamp_mb(mb: i64) -> i32 {
    i32::try_from(mb.max(0)).unwrap_or(i32::MAX)
}

impl Actor for NodeActor {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = (Context, i64);

    async fn pre_start(
        &self,
        myself: ActorRef<NodeMsg>,
        (ctx, id): (Context, i64),
    ) -> Result<NodeState, ActorProcessingErr> {
        let period = (ctx.settings().node_offline_after / 3)
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        let mut state = NodeState {
            mailbox: crate::mailboxes::Mailbox::open(myself.get_id()),
            ctx,
            id,
            status: NodeStatus::Pending,
            credential_issued_at: None,
            last_seen: Instant::now(),
            beats: 0,
            last_report: HashMap::new(),
            orphans: HashMap::new(),
            usage: HashMap::new(),
            timer: None,
            apps_told: false,
            pressure_since: None,
        };
        Box::pin(state.reload()).await?;
        state.timer = Some(crate::mailboxes::every(myself, period, || {
            NodeMsg::CheckLiveness
        }));
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<NodeMsg>,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMsg>,
        message: NodeMsg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        state.mailbox.took();
        match message {
            NodeMsg::Heartbeat(beat, reply) => {
                // Each call boxed: the actor's idle task then holds no room
                // for the largest of them (10,000 node actors idle at once).
                let answer = Box::pin(state.heartbeat(*beat)).await;
                if let Err(Error::NotFound) = answer {
                    myself.stop(Some("node removed".into()));
                }
                let _ = reply.send(answer);
            }
            NodeMsg::Usage(app_id, reply) => {
                let samples = state
                    .usage
                    .get(&app_id)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                let _ = reply.send(samples);
            }
            NodeMsg::CheckLiveness => match Box::pin(state.check_liveness()).await {
                Err(Error::NotFound) => myself.stop(Some("node removed".into())),
                Err(err) => {
                    tracing::warn!(node_id = state.id, error = %err, "liveness check failed")
                }
                Ok(()) => {}
            },
            NodeMsg::Reload => match Box::pin(state.reload()).await {
                Err(Error::NotFound) => myself.stop(Some("node removed".into())),
                Err(err) => tracing::warn!(node_id = state.id, error = %err, "cannot reload node"),
                Ok(()) => {}
            },
        }
        Ok(())
    }
}

/// Nodes as a supervised entity kind.
pub struct Nodes;

impl Entity for Nodes {
    type Actor = NodeActor;
    const KIND: &'static str = "node";

    async fn initial_ids(ctx: &Context) -> Result<Vec<i64>, Error> {
        let mut conn = ctx.store().conn().await?;
        Ok(agents::all_ids(&mut conn).await?)
    }
}
