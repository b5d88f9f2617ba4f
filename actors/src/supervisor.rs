//! One supervisor kind for every entity kind (nodes, applications, wallets):
//! it spawns one actor per entity of the shards this replica holds, rebuilds
//! them from the database when it starts or gains a shard, stops them when a
//! shard is lost, and respawns a crashed child from the database within a
//! restart budget. ractor has no restart strategy of its own; this is ours.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::context::Context;
use crate::error::Error;
use crate::root::Child;

/// A kind of entity that has one actor per row.
pub trait Entity: Send + Sync + 'static {
    type Actor: Actor<Arguments = (Context, i64)> + Default;
    /// `node`, `app`, `wallet`: the prefix of the actors' registered names.
    const KIND: &'static str;
    /// The ids whose actors exist from the start (rebuilt from the database).
    fn initial_ids(ctx: &Context) -> impl Future<Output = Result<Vec<i64>, Error>> + Send;
}

/// The registered name of the actor of entity `id`.
pub fn actor_name(ctx: &Context, kind: &str, id: i64) -> String {
    ctx.name(&format!("{kind}:{id}"))
}

/// The entity id in a name made by [`actor_name`].
pub fn entity_id(name: &str) -> Option<i64> {
    name.rsplit_once(':')?.1.parse().ok()
}

/// How many restarts a child may have within a window.
#[derive(Debug)]
pub struct RestartBudget {
    max: u32,
    window: Duration,
    history: HashMap<i64, VecDeque<Instant>>,
}

impl RestartBudget {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            history: HashMap::new(),
        }
    }

    /// Records a restart of `id` at `now` if the budget allows it.
    pub fn allow(&mut self, id: i64, now: Instant) -> bool {
        let restarts = self.history.entry(id).or_default();
        while restarts
            .front()
            .is_some_and(|at| now.duration_since(*at) > self.window)
        {
            restarts.pop_front();
        }
        if restarts.len() as u32 >= self.max {
            return false;
        }
        restarts.push_back(now);
        true
    }

    /// Every actor restarted within the window, and how often.
    pub fn all_recent(&self) -> HashMap<i64, usize> {
        self.history
            .iter()
            .filter(|(_, at)| !at.is_empty())
            .map(|(id, at)| (*id, at.len()))
            .collect()
    }
}

pub enum SupervisorMsg {
    /// Spawn the actor of `id` unless it runs; answer its cell. Refused
    /// when this replica does not hold the entity's shard.
    Ensure(i64, RpcReplyPort<Result<ActorCell, String>>),
    /// This replica gained or lost shards: start the actors of the gained
    /// ones that exist from the start, stop those of the lost ones.
    ShardsMoved { gained: Vec<i32>, lost: Vec<i32> },
    /// Restarts of its actors within the budget window, by entity (for the
    /// inspector and `/metrics`: one ask, however many actors).
    Restarts(RpcReplyPort<HashMap<i64, usize>>),
}

pub struct SupervisorState {
    ctx: Context,
    budget: RestartBudget,
}

/// The supervisor of every actor of entity kind `E`.
pub struct EntitySupervisor<E: Entity>(PhantomData<E>);

impl<E: Entity> Default for EntitySupervisor<E> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// Tells every entity supervisor of this replica that shards moved.
pub(crate) fn shards_moved(ctx: &Context, moved: &crate::shards::Moved) {
    for child in [Child::Nodes, Child::Apps, Child::Wallets] {
        if let Some(cell) = ractor::registry::where_is(ctx.name(child.base_name())) {
            let supervisor: ActorRef<SupervisorMsg> = cell.into();
            let _ = supervisor.cast(SupervisorMsg::ShardsMoved {
                gained: moved.gained.clone(),
                lost: moved.lost.clone(),
            });
        }
    }
}

/// Spawns the actors of these ids whose shards this replica holds. At a
/// supervisor's start (`replace`), a child left behind by an earlier
/// supervisor of this kind is replaced, so that every child is linked to
/// the supervisor that restarts it.
async fn spawn_owned<E: Entity>(
    ctx: &Context,
    ids: &[i64],
    supervisor: &ActorCell,
    replace: bool,
) -> usize {
    let mut started = 0;
    for id in ids.iter().filter(|id| ctx.shards().owns(**id)) {
        if replace && let Some(stale) = ractor::registry::where_is(actor_name(ctx, E::KIND, *id)) {
            stale
                .stop_and_wait(None, Some(Duration::from_secs(5)))
                .await
                .ok();
        }
        match spawn_child::<E>(ctx, *id, supervisor).await {
            Ok(_) => started += 1,
            Err(err) => tracing::error!(kind = E::KIND, id, error = %err, "cannot start actor"),
        }
    }
    started
}

async fn spawn_child<E: Entity>(
    ctx: &Context,
    id: i64,
    supervisor: &ActorCell,
) -> Result<ActorCell, String> {
    if !ctx.shards().owns(id) {
        return Err(format!(
            "{} {id} is owned by another control-plane replica",
            E::KIND
        ));
    }
    let name = actor_name(ctx, E::KIND, id);
    if let Some(existing) = ractor::registry::where_is(name.clone()) {
        return Ok(existing);
    }
    Actor::spawn_linked(
        Some(name),
        E::Actor::default(),
        (ctx.clone(), id),
        supervisor.clone(),
    )
    .await
    .map(|(actor, _)| actor.get_cell())
    .map_err(|e| e.to_string())
}

impl<E: Entity> Actor for EntitySupervisor<E> {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Context;

    /// Rebuilds every child from the database before the supervisor counts as
    /// started, so that a started control plane has all its actors.
    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        ctx: Context,
    ) -> Result<Self::State, ActorProcessingErr> {
        let ids = E::initial_ids(&ctx).await?;
        let count = spawn_owned::<E>(&ctx, &ids, &myself.get_cell(), true).await;
        tracing::info!(kind = E::KIND, count, "actors rebuilt from the database");
        let settings = ctx.settings();
        let budget = RestartBudget::new(settings.restart_budget, settings.restart_window);
        Ok(SupervisorState { ctx, budget })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Ensure(id, reply) => {
                let _ = reply.send(spawn_child::<E>(&state.ctx, id, &myself.get_cell()).await);
            }
            SupervisorMsg::Restarts(reply) => {
                let _ = reply.send(state.budget.all_recent());
            }
            SupervisorMsg::ShardsMoved { gained, lost } => {
                let in_shards = |id: i64, shards: &[i32]| {
                    shards.contains(&skypanel_store::shards::shard_of(id))
                };
                for child in myself.get_children() {
                    if child
                        .get_name()
                        .as_deref()
                        .and_then(entity_id)
                        .is_some_and(|id| in_shards(id, &lost))
                    {
                        child.stop(Some("its shard moved to another replica".into()));
                    }
                }
                if !gained.is_empty() {
                    let ids: Vec<i64> = E::initial_ids(&state.ctx)
                        .await?
                        .into_iter()
                        .filter(|id| in_shards(*id, &gained))
                        .collect();
                    let count = spawn_owned::<E>(&state.ctx, &ids, &myself.get_cell(), false).await;
                    tracing::info!(kind = E::KIND, count, "actors of gained shards started");
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, reason) = event else {
            return Ok(());
        };
        let Some(id) = cell.get_name().as_deref().and_then(entity_id) else {
            return Ok(());
        };
        tracing::error!(kind = E::KIND, id, %reason, "actor failed");
        if !state.budget.allow(id, Instant::now()) {
            tracing::error!(
                kind = E::KIND,
                id,
                "restart budget exhausted; the actor stays down"
            );
            return Ok(());
        }
        match spawn_child::<E>(&state.ctx, id, &myself.get_cell()).await {
            Ok(_) => tracing::warn!(kind = E::KIND, id, "actor restarted from the database"),
            Err(err) => tracing::error!(kind = E::KIND, id, error = %err, "cannot restart actor"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_past_the_limit_and_forgets_old_restarts() {
        let mut budget = RestartBudget::new(2, Duration::from_secs(10));
        let start = Instant::now();
        assert!(budget.allow(1, start));
        assert!(budget.allow(1, start + Duration::from_secs(1)));
        assert!(!budget.allow(1, start + Duration::from_secs(2)));
        assert!(budget.allow(2, start), "budgets are per child");
        assert!(
            budget.allow(1, start + Duration::from_secs(12)),
            "old restarts leave the window"
        );
        assert_eq!(
            budget.all_recent().get(&1).copied(),
            Some(1),
            "only the restart at 12 s is in the window"
        );
    }

    #[test]
    fn names() {
        assert_eq!(entity_id("app:7"), Some(7));
        assert_eq!(entity_id("t1/app:7"), Some(7));
        assert_eq!(entity_id("scheduler"), None);
    }
}
