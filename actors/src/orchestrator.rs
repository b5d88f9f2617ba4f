//! `Orchestrator`: the cheap handle through which the rest of the control
//! plane talks to the actors. It finds (or starts) the right actor, on this
//! replica or, through `replicas::call`, on the replica owning the entity's
//! shard, and turns ractor's messaging failures into `actors::Error`.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorRef, RpcReplyPort};
use skypanel_protocol::node::{ContainerReport, Heartbeat, HeartbeatAck};
use skypanel_store::tasks::Task;
use skypanel_store::wallets::{Wallet, WalletTransaction};

use crate::app::{Accepted, AppRequest, AppSnapshot, TaskOutcome};
use crate::app_builds::{BuildStep, StepOutcome};
use crate::broker::NodeWaiter;
use crate::context::Context;
use crate::error::Error;
use crate::node::UsageSample;
use crate::replicas::{self, Answer, Call, Refusal, unexpected};
use crate::root::{Child, Root};
use crate::supervisor::{SupervisorMsg, actor_name, entity_id};
use crate::wallet::{Checked, Movement};

/// How long a request to an actor may take before the caller gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One actor of the supervision tree, for the inspector.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ActorInfo {
    pub name: String,
    /// `root`, `supervisor`, `node`, `app`, `wallet`, `scheduler`, `lease-broker`.
    pub kind: String,
    pub entity_id: Option<i64>,
    pub status: String,
    pub parent: Option<String>,
    /// Restarts within the supervisor's budget window.
    pub restarts: usize,
    /// Messages waiting in its mailbox (counted for nodes, applications
    /// and wallets; 0 for the others).
    pub queued: i64,
    /// The control-plane replica it runs on (its address, else its host).
    pub replica: String,
}

#[derive(Clone)]
pub struct Orchestrator {
    ctx: Context,
    root: ActorRef<()>,
}

/// The actor of entity `id` under `supervisor`, started if it is not running.
pub(crate) async fn entity_of<M: Send + 'static>(
    ctx: &Context,
    supervisor: Child,
    kind: &str,
    id: i64,
) -> Result<ActorRef<M>, Error> {
    if let Some(cell) = ractor::registry::where_is(actor_name(ctx, kind, id)) {
        return Ok(cell.into());
    }
    let supervisor: ActorRef<SupervisorMsg> =
        ractor::registry::where_is(ctx.name(supervisor.base_name()))
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "the {} supervisor is not running",
                    supervisor.base_name()
                ))
            })?
            .into();
    let cell = ask(&supervisor, |reply| SupervisorMsg::Ensure(id, reply))
        .await?
        .map_err(|e| {
            if e.contains("not found") {
                Error::NotFound
            } else {
                Error::Unavailable(e)
            }
        })?;
    Ok(cell.into())
}

pub(crate) async fn ask<M: Send + 'static, R: Send + 'static>(
    actor: &ActorRef<M>,
    build: impl FnOnce(RpcReplyPort<R>) -> M,
) -> Result<R, Error> {
    match crate::mailboxes::call(actor, build, Some(CALL_TIMEOUT)).await? {
        CallResult::Success(reply) => Ok(reply),
        CallResult::Timeout => Err(Error::Unavailable(
            "the actor did not answer in time".into(),
        )),
        CallResult::SenderError => Err(Error::Unavailable(
            "the actor stopped before answering".into(),
        )),
    }
}

impl Orchestrator {
    /// Starts the supervision tree; every node and application actor is
    /// rebuilt from the database before this returns.
    pub async fn start(ctx: Context) -> Result<Self, Error> {
        let (root, _) = Actor::spawn(Some(ctx.name("root")), Root, ctx.clone())
            .await
            .map_err(|e| Error::Unavailable(format!("cannot start the actors: {e}")))?;
        Ok(Self { ctx, root })
    }

    /// Stops every actor, children first.
    pub async fn shutdown(&self) {
        let grace = Some(Duration::from_secs(10));
        for supervisor in self.root.get_children() {
            supervisor.stop_children_and_wait(None, grace).await;
        }
        self.root.stop_children_and_wait(None, grace).await;
        let _ = self.root.stop_and_wait(None, grace).await;
        if let Err(err) = crate::shards::release_all(&self.ctx).await {
            tracing::warn!(error = %err, "cannot give the shard leases back; they run out instead");
        }
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Whether the supervision tree is up (its root has not stopped).
    pub fn is_running(&self) -> bool {
        matches!(
            self.root.get_status(),
            ractor::ActorStatus::Running | ractor::ActorStatus::Upgrading
        )
    }

    /// Resolves when the supervision tree stops (its root gave up). The
    /// process should then stop too, so that its service manager restarts it.
    pub async fn stopped(&self) {
        while self.is_running() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Runs `call` on the replica owning its entity (see `replicas::call`).
    async fn call(&self, call: Call) -> Result<Answer, Error> {
        replicas::call(&self.ctx, call).await
    }

    /// Serves a call another replica carried here: refused as moved unless
    /// this replica owns the entity.
    pub async fn serve(&self, call: Call) -> Answer {
        if call.routed() && !self.ctx.shards().owns(call.entity()) {
            return Answer::Refused(Refusal::moved(call.entity()));
        }
        tracing::debug!(call = call.name(), entity = call.entity(), "a replica call");
        crate::metrics::replica_call(call.name(), "served", None);
        replicas::local(&self.ctx, call).await
    }

    /// Whether `signature` over `time` and `body` is another replica's.
    pub fn verify_call(&self, time: &str, signature: &str, body: &[u8]) -> bool {
        replicas::verify(
            self.ctx.signing_key(),
            time,
            signature,
            body,
            chrono::Utc::now().timestamp(),
        )
    }

    /// A customer's request to an application (ownership is checked before).
    pub async fn app_request(&self, app_id: i64, request: AppRequest) -> Result<Accepted, Error> {
        replicas::app_request(&self.ctx, app_id, request).await
    }

    /// A step of a build, from its job.
    pub async fn build_step(&self, app_id: i64, step: BuildStep) -> Result<StepOutcome, Error> {
        match self.call(Call::BuildStep { app_id, step }).await? {
            Answer::Step(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    pub async fn app_snapshot(&self, app_id: i64) -> Result<AppSnapshot, Error> {
        match self.call(Call::AppSnapshot { app_id }).await? {
            Answer::Snapshot(snapshot) => Ok(*snapshot),
            other => Err(unexpected(other)),
        }
    }

    /// Starts the actor of a new application (on the replica owning it).
    pub async fn app_created(&self, app_id: i64) -> Result<(), Error> {
        self.call(Call::AppCreated { app_id }).await.map(|_| ())
    }

    /// A node's heartbeat, handled by its actor.
    pub async fn heartbeat(&self, node_id: i64, beat: Heartbeat) -> Result<HeartbeatAck, Error> {
        let beat = Box::new(beat);
        match self.call(Call::Heartbeat { node_id, beat }).await? {
            Answer::Ack(ack) => Ok(*ack),
            other => Err(unexpected(other)),
        }
    }

    /// The recent resource use of an application on a node, oldest first.
    pub async fn usage(&self, node_id: i64, app_id: i64) -> Result<Vec<UsageSample>, Error> {
        match self.call(Call::Usage { node_id, app_id }).await? {
            Answer::Usage(samples) => Ok(samples),
            other => Err(unexpected(other)),
        }
    }

    /// A node was registered or changed by an admin.
    pub async fn node_changed(&self, node_id: i64) -> Result<(), Error> {
        self.call(Call::NodeChanged { node_id }).await.map(|_| ())
    }

    /// A node was removed: its actor stops, wherever it runs.
    pub async fn node_removed(&self, node_id: i64) {
        if let Err(err) = self.call(Call::NodeRemoved { node_id }).await {
            tracing::warn!(node_id, error = %err, "cannot stop a removed node's actor; it stops at its next look at the node");
        }
    }

    /// A task reached a final state: its owner learns the outcome (an
    /// application's actor on the replica owning it).
    pub async fn task_finished(
        &self,
        task: &Task,
        instances: Vec<ContainerReport>,
        observed_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), Error> {
        let Some(app_id) = crate::outcomes::deliver(&self.ctx, task).await? else {
            return Ok(());
        };
        let outcome = Box::new(TaskOutcome::of(task, Some(instances), observed_at));
        match self.call(Call::AppTaskFinished { app_id, outcome }).await {
            Ok(_) | Err(Error::NotFound) => Ok(()),
            Err(Error::Unavailable(reason)) => {
                // Recorded; the owner's actor (on the replica taking the
                // shard over, if its owner died) catches up on it.
                tracing::warn!(task_id = task.id, app_id, %reason, "a task's outcome waits for its application's actor to catch up");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Places a new managed database and queues its provisioning; answers the node.
    pub async fn provision_database(
        &self,
        db: &skypanel_store::databases::Database,
    ) -> Result<i64, Error> {
        crate::databases::provision(&self.ctx, db).await
    }

    /// Stops a database at its owner's request (see `databases::stop`).
    pub async fn stop_database(
        &self,
        db: &skypanel_store::databases::Database,
    ) -> Result<skypanel_store::databases::Database, Error> {
        crate::databases::stop(&self.ctx, db).await
    }

    /// Starts a stopped or failed database again (see `databases::start`).
    pub async fn start_database(
        &self,
        db: &skypanel_store::databases::Database,
    ) -> Result<skypanel_store::databases::Database, Error> {
        crate::databases::start(&self.ctx, db).await
    }

    /// Moves a database to another plan (see `databases::resize`).
    pub async fn resize_database(
        &self,
        db: &skypanel_store::databases::Database,
        plan: &skypanel_store::catalog::Plan,
    ) -> Result<skypanel_store::databases::Database, Error> {
        crate::databases::resize(&self.ctx, db, plan).await
    }

    /// Queues the removal of a deleted database from its node.
    pub async fn remove_database(
        &self,
        db: &skypanel_store::databases::Database,
        purge: bool,
    ) -> Result<(), Error> {
        crate::databases::remove(&self.ctx, db, purge).await
    }

    /// Queues a backup's dump on its database's node (once, however many
    /// runs of its job ask). `keep`: the earlier backups whose dumps stay.
    pub async fn start_backup(
        &self,
        backup: &skypanel_store::backups::Backup,
        keep: Vec<i64>,
    ) -> Result<crate::databases::Handed, Error> {
        crate::databases::start_backup(&self.ctx, backup, keep).await
    }

    /// Queues a restore on its database's node (once).
    pub async fn start_restore(
        &self,
        restore: &skypanel_store::backups::Restore,
    ) -> Result<crate::databases::Handed, Error> {
        crate::databases::start_restore(&self.ctx, restore).await
    }

    /// Queues the purge of a deleted database's kept data on its node.
    pub async fn purge_kept_volume(
        &self,
        volume: &skypanel_store::backups::KeptVolume,
    ) -> Result<(), Error> {
        crate::databases::purge_kept(&self.ctx, volume).await
    }

    /// The handle that wakes a node's long-polls when a task may be ready.
    pub fn lease_waiter(&self, node_id: i64) -> Arc<NodeWaiter> {
        self.ctx.waiters().of(node_id)
    }

    /// A balance change, serialised by the wallet's actor.
    pub async fn wallet_apply(
        &self,
        user_id: i64,
        movement: Movement,
    ) -> Result<(Wallet, WalletTransaction), Error> {
        match self.call(Call::WalletApply { user_id, movement }).await? {
            Answer::Wallet(applied) => Ok(*applied),
            other => Err(unexpected(other)),
        }
    }

    /// Asks the wallet's actor to act on its balance (notice, suspend, resume).
    pub async fn wallet_check(&self, user_id: i64) -> Result<Checked, Error> {
        match self.call(Call::WalletCheck { user_id }).await? {
            Answer::Checked(checked) => Ok(checked),
            other => Err(unexpected(other)),
        }
    }

    /// This replica's live supervision tree, root first.
    pub async fn actors(&self) -> Vec<ActorInfo> {
        local_actors(&self.ctx, &self.root).await
    }

    /// The supervision trees of every live replica, this one's first; a
    /// replica that does not answer is listed as one `replica` entry whose
    /// status says why.
    pub async fn cluster_actors(&self) -> Vec<ActorInfo> {
        let mut list = self.actors().await;
        let peers = match self.ctx.store().conn().await {
            Ok(mut conn) => skypanel_store::shards::peers(&mut conn, crate::shards::LEASE)
                .await
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let me = self.ctx.shards().replica();
        let asked = peers.into_iter().filter(|p| p.replica != me).map(|peer| {
            let ctx = self.ctx.clone();
            async move {
                let address = peer.address.unwrap_or_else(|| peer.replica.to_string());
                match crate::replicas::send_to(&ctx, &address, &Call::Actors).await {
                    Ok(Answer::Actors(actors)) => actors,
                    Ok(other) => vec![unreachable_replica(&address, &format!("{other:?}"))],
                    Err(err) => vec![unreachable_replica(&address, &err.to_string())],
                }
            }
        });
        for actors in futures::future::join_all(asked).await {
            list.extend(actors);
        }
        list
    }

    /// Makes an application actor panic (tests of supervision only).
    #[cfg(feature = "testing")]
    pub async fn crash_app(&self, app_id: i64) -> Result<(), Error> {
        use crate::app::AppMsg;
        let actor: ActorRef<AppMsg> = entity_of(&self.ctx, Child::Apps, "app", app_id).await?;
        Ok(crate::mailboxes::cast(&actor, AppMsg::Crash)?)
    }
}

/// The live supervision tree of this replica under `root`, root first.
pub(crate) async fn local_actors(ctx: &Context, root: &ActorRef<()>) -> Vec<ActorInfo> {
    let mut list = vec![info(ctx, &root.get_cell(), "root", None, 0)];
    for child in root.get_children() {
        let name = child.get_name().unwrap_or_default();
        let kind = Child::ALL
            .iter()
            .find(|c| ctx.name(c.base_name()) == name)
            .map(|c| match c {
                Child::Nodes | Child::Apps | Child::Wallets => "supervisor",
                other => other.base_name(),
            })
            .unwrap_or("actor");
        list.push(info(ctx, &child, kind, Some(&root.get_cell()), 0));
        if kind != "supervisor" {
            continue;
        }
        let supervisor: ActorRef<SupervisorMsg> = child.clone().into();
        let restarted = ask(&supervisor, SupervisorMsg::Restarts)
            .await
            .unwrap_or_default();
        for grandchild in child.get_children() {
            let id = grandchild.get_name().as_deref().and_then(entity_id);
            let restarts = id.and_then(|id| restarted.get(&id).copied()).unwrap_or(0);
            let kind = grandchild
                .get_name()
                .and_then(|n| {
                    n.rsplit_once(':')
                        .map(|(k, _)| k.rsplit('/').next().unwrap_or(k).to_string())
                })
                .unwrap_or_else(|| "actor".into());
            let mut entry = info(ctx, &grandchild, &kind, Some(&child), restarts);
            entry.entity_id = id;
            list.push(entry);
        }
    }
    list
}

/// The entry of a replica whose actors could not be listed.
fn unreachable_replica(address: &str, why: &str) -> ActorInfo {
    ActorInfo {
        name: format!("replica {address}"),
        kind: "replica".into(),
        entity_id: None,
        status: format!("unreachable: {why}"),
        parent: None,
        restarts: 0,
        queued: 0,
        replica: address.to_string(),
    }
}

fn info(
    ctx: &Context,
    cell: &ActorCell,
    kind: &str,
    parent: Option<&ActorCell>,
    restarts: usize,
) -> ActorInfo {
    ActorInfo {
        name: cell.get_name().unwrap_or_else(|| cell.get_id().to_string()),
        kind: kind.to_string(),
        entity_id: None,
        status: format!("{:?}", cell.get_status()).to_lowercase(),
        parent: parent.and_then(ActorCell::get_name),
        restarts,
        queued: crate::mailboxes::queued(cell.get_id()),
        replica: ctx
            .shards()
            .address()
            .unwrap_or(ctx.shards().hostname())
            .to_string(),
    }
}
