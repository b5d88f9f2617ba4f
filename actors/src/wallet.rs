//! `WalletActor`: one per wallet in use. It serialises every balance change of
//! its wallet (credits now; hourly debits, low-balance notices and suspension
//! with billing). Wallet actors start on first use, not all at once.

use bigdecimal::BigDecimal;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use skypanel_store::wallets::{self, Change, Direction, Wallet, WalletTransaction};

use crate::context::Context;
use crate::error::Error;
use crate::supervisor::Entity;

/// A balance change to apply, owned so it can travel in a message.
#[derive(Debug, Clone)]
pub struct Movement {
    pub direction: Direction,
    pub amount: BigDecimal,
    pub description: String,
    pub reference: Option<String>,
    pub created_by: Option<i64>,
}

pub enum WalletMsg {
    Apply(
        Movement,
        RpcReplyPort<Result<(Wallet, WalletTransaction), Error>>,
    ),
}

pub struct WalletState {
    ctx: Context,
    user_id: i64,
}

#[derive(Default)]
pub struct WalletActor;

impl Actor for WalletActor {
    type Msg = WalletMsg;
    type State = WalletState;
    type Arguments = (Context, i64);

    async fn pre_start(
        &self,
        _myself: ActorRef<WalletMsg>,
        (ctx, user_id): (Context, i64),
    ) -> Result<WalletState, ActorProcessingErr> {
        let mut conn = ctx.store().conn().await?;
        wallets::wallet_for_user(&mut conn, user_id).await?;
        drop(conn);
        Ok(WalletState { ctx, user_id })
    }

    async fn handle(
        &self,
        _myself: ActorRef<WalletMsg>,
        message: WalletMsg,
        state: &mut WalletState,
    ) -> Result<(), ActorProcessingErr> {
        let WalletMsg::Apply(movement, reply) = message;
        let applied = async {
            let mut conn = state.ctx.store().conn().await?;
            let change = Change {
                direction: movement.direction,
                amount: &movement.amount,
                description: &movement.description,
                reference: movement.reference.as_deref(),
                created_by: movement.created_by,
            };
            Ok(wallets::apply_change(&mut conn, state.user_id, change).await?)
        }
        .await;
        let _ = reply.send(applied);
        Ok(())
    }
}

/// Wallets as a supervised entity kind (keyed by user id; started on first use).
pub struct Wallets;

impl Entity for Wallets {
    type Actor = WalletActor;
    const KIND: &'static str = "wallet";

    async fn initial_ids(_ctx: &Context) -> Result<Vec<i64>, Error> {
        Ok(Vec::new())
    }
}
