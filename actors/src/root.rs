//! The root supervisor: starts the Scheduler, the LeaseBroker and the node,
//! application and wallet supervisors, and restarts any of them that fails,
//! within a restart budget.

use std::time::Instant;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::app::Apps;
use crate::broker::LeaseBroker;
use crate::context::Context;
use crate::node::Nodes;
use crate::scheduler::Scheduler;
use crate::supervisor::{EntitySupervisor, RestartBudget};
use crate::wallet::Wallets;

/// The root's children, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    Scheduler,
    LeaseBroker,
    Nodes,
    Apps,
    Wallets,
}

impl Child {
    pub const ALL: [Child; 5] = [
        Child::Scheduler,
        Child::LeaseBroker,
        Child::Nodes,
        Child::Apps,
        Child::Wallets,
    ];

    /// Registered name (before the context's prefix).
    pub fn base_name(self) -> &'static str {
        match self {
            Child::Scheduler => "scheduler",
            Child::LeaseBroker => "lease-broker",
            Child::Nodes => "nodes",
            Child::Apps => "apps",
            Child::Wallets => "wallets",
        }
    }

    async fn spawn(
        self,
        ctx: &Context,
        supervisor: ActorCell,
    ) -> Result<ActorCell, ractor::SpawnErr> {
        let name = Some(ctx.name(self.base_name()));
        let ctx = ctx.clone();
        let cell = match self {
            Child::Scheduler => Actor::spawn_linked(name, Scheduler, ctx, supervisor)
                .await?
                .0
                .get_cell(),
            Child::LeaseBroker => Actor::spawn_linked(name, LeaseBroker, ctx, supervisor)
                .await?
                .0
                .get_cell(),
            Child::Nodes => {
                Actor::spawn_linked(name, EntitySupervisor::<Nodes>::default(), ctx, supervisor)
                    .await?
                    .0
                    .get_cell()
            }
            Child::Apps => {
                Actor::spawn_linked(name, EntitySupervisor::<Apps>::default(), ctx, supervisor)
                    .await?
                    .0
                    .get_cell()
            }
            Child::Wallets => Actor::spawn_linked(
                name,
                EntitySupervisor::<Wallets>::default(),
                ctx,
                supervisor,
            )
            .await?
            .0
            .get_cell(),
        };
        Ok(cell)
    }
}

pub struct RootState {
    ctx: Context,
    budget: RestartBudget,
}

#[derive(Default)]
pub struct Root;

impl Actor for Root {
    type Msg = ();
    type State = RootState;
    type Arguments = Context;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        ctx: Context,
    ) -> Result<RootState, ActorProcessingErr> {
        // The shards come first: the supervisors start the actors of the
        // shards this replica holds.
        let freed = crate::shards::succeed(&ctx).await?;
        if freed > 0 {
            tracing::info!(
                shards = freed,
                "took over the shards of this address's earlier replica"
            );
        }
        let moved = crate::shards::beat(&ctx).await?;
        tracing::info!(shards = moved.gained.len(), replica = %ctx.shards().replica(), "shards claimed");
        for child in Child::ALL {
            child.spawn(&ctx, myself.get_cell()).await?;
        }
        let settings = ctx.settings();
        let budget = RestartBudget::new(settings.restart_budget, settings.restart_window);
        Ok(RootState { ctx, budget })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, reason) = event else {
            return Ok(());
        };
        let name = cell.get_name().unwrap_or_default();
        let Some((index, child)) = Child::ALL
            .iter()
            .enumerate()
            .find(|(_, c)| state.ctx.name(c.base_name()) == name)
        else {
            return Ok(());
        };
        tracing::error!(child = child.base_name(), %reason, "supervisor child failed");
        if !state.budget.allow(index as i64, Instant::now()) {
            tracing::error!(
                child = child.base_name(),
                "restart budget exhausted; stopping the control plane's actors"
            );
            myself.stop(Some(format!("{} keeps failing", child.base_name())));
            return Ok(());
        }
        child.spawn(&state.ctx, myself.get_cell()).await?;
        tracing::warn!(child = child.base_name(), "restarted");
        Ok(())
    }
}
