//! `WalletActor`: one per wallet in use. It serialises the balance changes
//! it is asked for (credits, single debits) and owns their side effects:
//! after every change, and whenever it is asked to check, a wallet below
//! zero gets one notice per spell, its owner's applications are suspended
//! once the grace period has passed, and a balance back at zero or above
//! resumes exactly the applications that were suspended; an admin's
//! suspension of the account holds them suspended whatever the balance.
//! Hourly billing
//! debits wallets in batches under the same row lock, then asks each
//! debited actor to check. Wallet actors start on first use, and at start
//! for every wallet below zero or owner of a suspended application.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use skypanel_domain::lifecycle::AppStatus;
use skypanel_domain::money::format_amount;
use skypanel_store::wallets::{self, Change, Direction, Wallet, WalletTransaction};
use skypanel_store::{accounts, apps, notifications};

use crate::app::AppRequest;
use crate::context::Context;
use crate::error::Error;
use crate::supervisor::Entity;

/// A balance change to apply, owned so it can travel in a message.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Movement {
    pub direction: Direction,
    pub amount: BigDecimal,
    pub description: String,
    pub reference: Option<String>,
    pub created_by: Option<i64>,
}

/// What a balance check did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checked {
    /// A notice of the negative balance was written.
    pub noticed: bool,
    /// Applications suspended now.
    pub suspended: Vec<i64>,
    /// Applications resumed now.
    pub resumed: Vec<i64>,
}

pub enum WalletMsg {
    Apply(
        Movement,
        RpcReplyPort<Result<(Wallet, WalletTransaction), Error>>,
    ),
    /// Look at the balance and act on it (notice, suspend, resume).
    Check(Option<RpcReplyPort<Result<Checked, Error>>>),
}

pub struct WalletState {
    ctx: Context,
    user_id: i64,
    /// When a timer will check again (the end of the grace period).
    check_at: Option<DateTime<Utc>>,
    /// The count of its waiting messages.
    mailbox: crate::mailboxes::Mailbox,
}

#[derive(Default)]
pub struct WalletActor;

impl Actor for WalletActor {
    type Msg = WalletMsg;
    type State = WalletState;
    type Arguments = (Context, i64);

    async fn pre_start(
        &self,
        myself: ActorRef<WalletMsg>,
        (ctx, user_id): (Context, i64),
    ) -> Result<WalletState, ActorProcessingErr> {
        let mailbox = crate::mailboxes::Mailbox::open(myself.get_id());
        let mut conn = ctx.store().conn().await?;
        wallets::wallet_for_user(&mut conn, user_id).await?;
        drop(conn);
        // A restarted actor picks up where the balance stands.
        crate::mailboxes::cast(&myself, WalletMsg::Check(None))?;
        Ok(WalletState {
            ctx,
            user_id,
            check_at: None,
            mailbox,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<WalletMsg>,
        message: WalletMsg,
        state: &mut WalletState,
    ) -> Result<(), ActorProcessingErr> {
        state.mailbox.took();
        // Boxed: an idle actor's task then holds no room for its largest
        // handler (thousands of actors sit idle at once).
        Box::pin(handle_message(myself, message, state)).await
    }
}

/// What [`Actor::handle`] does with one message.
async fn handle_message(
    myself: ActorRef<WalletMsg>,
    message: WalletMsg,
    state: &mut WalletState,
) -> Result<(), ActorProcessingErr> {
    match message {
        WalletMsg::Apply(movement, reply) => {
            let applied = apply(state, movement).await;
            let changed = applied.is_ok();
            let _ = reply.send(applied);
            if changed {
                let checked = check(&myself, state).await;
                report(state, checked);
            }
        }
        WalletMsg::Check(reply) => {
            if reply.is_none() {
                // From a timer (or the start): whatever timer was armed has fired.
                state.check_at = None;
            }
            let checked = check(&myself, state).await;
            match reply {
                Some(reply) => {
                    let _ = reply.send(checked);
                }
                None => report(state, checked),
            }
        }
    }
    Ok(())
}

async fn apply(
    state: &WalletState,
    movement: Movement,
) -> Result<(Wallet, WalletTransaction), Error> {
    let mut conn = state.ctx.store().conn().await?;
    let change = Change {
        direction: movement.direction,
        amount: &movement.amount,
        description: &movement.description,
        reference: movement.reference.as_deref(),
        created_by: movement.created_by,
        at: state.ctx.now(),
    };
    let (ctx, user_id) = (&state.ctx, state.user_id);
    Ok(conn
        .transaction(async |conn| {
            crate::shards::fence(conn, ctx, user_id).await?;
            wallets::apply_change(conn, user_id, change).await
        })
        .await?)
}

fn report(state: &WalletState, checked: Result<Checked, Error>) {
    if let Err(err) = checked {
        tracing::warn!(user_id = state.user_id, error = %err, "cannot act on the wallet's balance; the next check tries again");
    }
}

/// How soon a suspension or resume that failed for an application is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Applications a suspension stops: everything but what is suspended or going away.
const SUSPENDABLE: [AppStatus; 5] = [
    AppStatus::Pending,
    AppStatus::Building,
    AppStatus::Running,
    AppStatus::Stopped,
    AppStatus::Failed,
];

async fn check(myself: &ActorRef<WalletMsg>, state: &mut WalletState) -> Result<Checked, Error> {
    let ctx = state.ctx.clone();
    let now = ctx.now();
    let mut checked = Checked::default();
    let mut conn = ctx.store().conn().await?;
    let Some(wallet) = wallets::find(&mut conn, state.user_id).await? else {
        return Ok(checked);
    };
    // An admin's suspension holds whatever the balance says.
    let held = match accounts::get_user(&mut conn, state.user_id).await {
        Ok(user) => user
            .suspended_at
            .map(|_| user.suspension_reason.unwrap_or_default()),
        Err(skypanel_store::Error::NotFound) => None,
        Err(err) => return Err(err.into()),
    };
    let grace =
        chrono::Duration::from_std(ctx.settings().billing_grace).unwrap_or(chrono::Duration::MAX);
    let mut suspend_because = held.map(|reason| {
        format!(
            "Your account is suspended by the platform's operator: {reason}. \
             {{apps}} application(s) and {{databases}} database(s) are stopped; nothing was deleted."
        )
    });
    if suspend_because.is_none() && wallet.balance < 0 {
        let since = wallet.negative_since.unwrap_or(now);
        let deadline = since + grace;
        if wallets::mark_negative_noticed(&mut conn, state.user_id).await? {
            let message = format!(
                "Your balance is {} {}. Add credit by {} or your applications will be suspended \
                 (their data is kept).",
                format_amount(&wallet.balance, 2),
                wallet.currency,
                deadline.format("%Y-%m-%d %H:%M UTC"),
            );
            notifications::create(&mut conn, state.user_id, "balance_negative", &message, now)
                .await?;
            checked.noticed = true;
        }
        if now < deadline {
            // Check again when the grace period ends (one timer at a time).
            if state.check_at != Some(deadline) {
                state.check_at = Some(deadline);
                let wait = (deadline - now).to_std().unwrap_or_default();
                crate::mailboxes::after(myself.clone(), wait, || WalletMsg::Check(None));
            }
            // Within the grace period nothing is suspended for the balance
            // (an admin's resume brings the owner's resources back now).
        } else {
            suspend_because = Some(format!(
                "Your balance has been below zero since {}: {{apps}} application(s) and \
                 {{databases}} database(s) are suspended. Add credit to bring them back; \
                 nothing was deleted.",
                since.format("%Y-%m-%d %H:%M UTC"),
            ));
        }
    } else {
        state.check_at = None;
    }
    drop(conn);
    match suspend_because {
        Some(message) => checked.suspended = suspend(myself, state, &message).await?,
        None => checked.resumed = resume(myself, state, &wallet).await?,
    }
    Ok(checked)
}

/// Suspends the owner's applications and databases that still run; when
/// any did, writes `message` (its `{apps}` and `{databases}` filled in) as
/// a notice and records it. Answers the applications suspended now.
async fn suspend(
    myself: &ActorRef<WalletMsg>,
    state: &WalletState,
    message: &str,
) -> Result<Vec<i64>, Error> {
    let ctx = &state.ctx;
    let mut conn = ctx.store().conn().await?;
    let statuses: Vec<&str> = SUSPENDABLE.iter().map(|s| s.as_str()).collect();
    let ids = apps::ids_of_owner_with_status(&mut conn, state.user_id, &statuses).await?;
    drop(conn);
    let suspended = each(myself, ctx, ids, || AppRequest::Suspend).await;
    // One-off runs stop too (they are billed like instances).
    if let Err(err) = crate::runs::stop_all_of(ctx, state.user_id).await {
        tracing::warn!(user_id = state.user_id, error = %err, "cannot stop runs; trying again shortly");
        crate::mailboxes::after(myself.clone(), RETRY, || WalletMsg::Check(None));
    }
    let databases = crate::databases::suspend_owner(ctx, state.user_id)
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(user_id = state.user_id, error = %err, "cannot suspend databases; trying again shortly");
            crate::mailboxes::after(myself.clone(), RETRY, || WalletMsg::Check(None));
            Vec::new()
        });
    if !suspended.is_empty() || !databases.is_empty() {
        let message = message
            .replace("{apps}", &suspended.len().to_string())
            .replace("{databases}", &databases.len().to_string());
        let mut conn = ctx.store().conn().await?;
        notifications::create(&mut conn, state.user_id, "suspended", &message, ctx.now()).await?;
        audit(
            &mut conn,
            "wallet.suspend",
            state.user_id,
            &suspended,
            &databases,
        )
        .await;
        tracing::info!(user_id = state.user_id, apps = ?suspended, "owner suspended");
    }
    Ok(suspended)
}

/// Brings back the owner's suspended applications and databases; when any
/// came back, tells the owner. Answers the applications resumed now.
async fn resume(
    myself: &ActorRef<WalletMsg>,
    state: &WalletState,
    wallet: &Wallet,
) -> Result<Vec<i64>, Error> {
    let ctx = &state.ctx;
    let mut conn = ctx.store().conn().await?;
    let ids =
        apps::ids_of_owner_with_status(&mut conn, state.user_id, &[AppStatus::Suspended.as_str()])
            .await?;
    drop(conn);
    let resumed = each(myself, ctx, ids, || AppRequest::Resume).await;
    let databases = crate::databases::resume_owner(ctx, state.user_id)
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(user_id = state.user_id, error = %err, "cannot resume databases; trying again shortly");
            crate::mailboxes::after(myself.clone(), RETRY, || WalletMsg::Check(None));
            Vec::new()
        });
    if !resumed.is_empty() || !databases.is_empty() {
        let message = format!(
            "{}your balance is {} {}; {} application(s) and {} database(s) are back.",
            if wallet.balance < 0 {
                "Your account is active again; "
            } else {
                "Thank you: "
            },
            format_amount(&wallet.balance, 2),
            wallet.currency,
            resumed.len(),
            databases.len()
        );
        let mut conn = ctx.store().conn().await?;
        notifications::create(&mut conn, state.user_id, "resumed", &message, ctx.now()).await?;
        audit(
            &mut conn,
            "wallet.resume",
            state.user_id,
            &resumed,
            &databases,
        )
        .await;
        tracing::info!(user_id = state.user_id, apps = ?resumed, "owner resumed");
    }
    Ok(resumed)
}

/// Records a suspension or resume in the audit log (the platform acted).
async fn audit(
    conn: &mut skypanel_store::Conn,
    action: &str,
    user_id: i64,
    apps: &[i64],
    databases: &[i64],
) {
    let entry = skypanel_store::audit::Entry {
        actor: skypanel_store::audit::Actor::System,
        action,
        target_type: Some("user"),
        target_id: Some(user_id),
        details: serde_json::json!({"applications": apps, "databases": databases}),
        ip_address: None,
    };
    if let Err(err) = skypanel_store::audit::record(conn, entry).await {
        tracing::warn!(user_id, error = %err, "cannot write the audit entry");
    }
}

/// Asks each application to suspend or resume; answers those that did. One
/// that cannot (no node has room to start it again, an actor is down) does
/// not hold up the others, and the wallet checks again a little later.
async fn each(
    myself: &ActorRef<WalletMsg>,
    ctx: &Context,
    ids: Vec<i64>,
    make: impl Fn() -> AppRequest,
) -> Vec<i64> {
    let mut done = Vec::new();
    let mut failed = false;
    for id in ids {
        match request(ctx, id, make()).await {
            Ok(true) => done.push(id),
            Ok(false) => {}
            Err(err) => {
                failed = true;
                tracing::warn!(app_id = id, error = %err, "cannot suspend or resume an application; trying again shortly");
            }
        }
    }
    if failed {
        crate::mailboxes::after(myself.clone(), RETRY, || WalletMsg::Check(None));
    }
    done
}

/// Asks an application's actor to suspend or resume; whether it did (the
/// wallet asks only applications that are not, or are, suspended).
async fn request(ctx: &Context, app_id: i64, request: AppRequest) -> Result<bool, Error> {
    let suspending = matches!(request, AppRequest::Suspend);
    // The application's actor may live on another replica.
    let accepted = match crate::replicas::app_request(ctx, app_id, request).await {
        Ok(accepted) => accepted,
        Err(Error::NotFound) => return Ok(false),
        Err(err) => return Err(err),
    };
    let suspended = accepted.app.status == AppStatus::Suspended.as_str();
    Ok(suspended == suspending && !accepted.deleted)
}

/// Wallets as a supervised entity kind (keyed by user id; started on first
/// use, and at start for every owner the actors must watch).
pub struct Wallets;

impl Entity for Wallets {
    type Actor = WalletActor;
    const KIND: &'static str = "wallet";

    async fn initial_ids(ctx: &Context) -> Result<Vec<i64>, Error> {
        let mut conn = ctx.store().conn().await?;
        let mut ids = wallets::negative_users(&mut conn).await?;
        ids.extend(accounts::suspended_users(&mut conn).await?);
        ids.extend(apps::owners_with_suspended(&mut conn).await?);
        ids.extend(skypanel_store::databases::owners_with_suspended(&mut conn).await?);
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}
