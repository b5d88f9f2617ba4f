//! Calls between control-plane replicas. The actor of an application, node
//! or wallet lives on the replica holding its shard (`crate::shards`); a
//! request for it that reaches another replica is carried to the owner as a
//! [`Call`] (`POST /api/internal/replicas/call`), and the owner answers with
//! an [`Answer`]. A call is signed with a key derived from the platform's
//! secret key (which every replica has) over its time and body, and is
//! refused more than a minute from the receiver's clock.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skypanel_domain::Invalid;
use skypanel_domain::secrets::SecretKey;
use skypanel_protocol::node::{ContainerReport, Heartbeat, HeartbeatAck};
use skypanel_store::wallets::{Wallet, WalletTransaction};

use crate::app::{Accepted, AppMsg, AppRequest, AppSnapshot, TaskOutcome};
use crate::app_builds::{BuildStep, StepOutcome};
use crate::context::Context;
use crate::error::Error;
use crate::node::{NodeMsg, UsageSample};
use crate::orchestrator::{ActorInfo, ask, entity_of, local_actors};
use crate::root::Child;
use crate::supervisor::actor_name;
use crate::wallet::{Checked, Movement, WalletMsg};

/// Where a replica takes the others' calls.
pub const CALL_PATH: &str = "/api/internal/replicas/call";
/// `<unix seconds>`: when the call was signed.
pub const TIME_HEADER: &str = "x-skypanel-replica-time";
/// `sha256=<hex>`: HMAC-SHA256 of `<time>.<body>` under [`signing_key`].
pub const SIGNATURE_HEADER: &str = "x-skypanel-replica-signature";
/// How far a call's time may be from the receiver's clock.
const MAX_SKEW_SECS: i64 = 60;
/// How long a carried call may take: an actor's own bound, and some.
const CALL_TIMEOUT: Duration = Duration::from_secs(35);

/// What one replica asks of the actor another one owns.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    AppRequest {
        app_id: i64,
        request: AppRequest,
    },
    BuildStep {
        app_id: i64,
        step: BuildStep,
    },
    AppSnapshot {
        app_id: i64,
    },
    AppCreated {
        app_id: i64,
    },
    AppTaskFinished {
        app_id: i64,
        outcome: Box<TaskOutcome>,
    },
    AppObserved {
        app_id: i64,
        node_id: i64,
        containers: Vec<ContainerReport>,
        observed_at: chrono::DateTime<chrono::Utc>,
    },
    AppNodeLost {
        app_id: i64,
        node_id: i64,
    },
    Heartbeat {
        node_id: i64,
        beat: Box<Heartbeat>,
    },
    Usage {
        node_id: i64,
        app_id: i64,
    },
    NodeChanged {
        node_id: i64,
    },
    NodeRemoved {
        node_id: i64,
    },
    WalletApply {
        user_id: i64,
        movement: Movement,
    },
    WalletCheck {
        user_id: i64,
    },
    /// The replica's own supervision tree (the inspector asks every
    /// replica; never routed by entity).
    Actors,
}

impl Call {
    /// The entity whose shard decides which replica serves the call.
    pub fn entity(&self) -> i64 {
        match self {
            Self::AppRequest { app_id, .. }
            | Self::BuildStep { app_id, .. }
            | Self::AppSnapshot { app_id }
            | Self::AppCreated { app_id }
            | Self::AppTaskFinished { app_id, .. }
            | Self::AppObserved { app_id, .. }
            | Self::AppNodeLost { app_id, .. } => *app_id,
            Self::Heartbeat { node_id, .. }
            | Self::Usage { node_id, .. }
            | Self::NodeChanged { node_id }
            | Self::NodeRemoved { node_id } => *node_id,
            Self::WalletApply { user_id, .. } | Self::WalletCheck { user_id } => *user_id,
            // Sent to each replica by address, not to an entity's owner.
            Self::Actors => 0,
        }
    }

    /// Whether the call goes to its entity's owner (every call but the
    /// inspector's, which each replica answers for itself).
    pub fn routed(&self) -> bool {
        !matches!(self, Self::Actors)
    }

    /// A name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AppRequest { .. } => "app_request",
            Self::BuildStep { .. } => "build_step",
            Self::AppSnapshot { .. } => "app_snapshot",
            Self::AppCreated { .. } => "app_created",
            Self::AppTaskFinished { .. } => "app_task_finished",
            Self::AppObserved { .. } => "app_observed",
            Self::AppNodeLost { .. } => "app_node_lost",
            Self::Heartbeat { .. } => "heartbeat",
            Self::Usage { .. } => "usage",
            Self::NodeChanged { .. } => "node_changed",
            Self::NodeRemoved { .. } => "node_removed",
            Self::WalletApply { .. } => "wallet_apply",
            Self::WalletCheck { .. } => "wallet_check",
            Self::Actors => "actors",
        }
    }
}

/// The owner's answer to a [`Call`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "answer", content = "value", rename_all = "snake_case")]
pub enum Answer {
    Accepted(Box<Accepted>),
    Step(StepOutcome),
    Snapshot(Box<AppSnapshot>),
    Done,
    Ack(Box<HeartbeatAck>),
    Usage(Vec<UsageSample>),
    Wallet(Box<(Wallet, WalletTransaction)>),
    Checked(Checked),
    Actors(Vec<ActorInfo>),
    Refused(Refusal),
}

/// An error carried back from the owner: a code, its words, the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

/// The code of a call that reached a replica no longer owning its entity
/// (the caller looks the owner up again).
pub const MOVED: &str = "moved";

impl Refusal {
    pub fn moved(id: i64) -> Self {
        Self {
            code: MOVED.into(),
            message: format!("entity {id} is owned by another control-plane replica"),
            field: None,
        }
    }
}

impl From<&Error> for Refusal {
    fn from(err: &Error) -> Self {
        let (code, field) = match err {
            Error::NotFound => ("not_found", None),
            Error::Illegal(_) => ("illegal_state", None),
            Error::Invalid(invalid) => ("invalid", invalid.field.clone()),
            Error::Conflict(_) => ("conflict", None),
            Error::NoCapacity(_) => ("no_capacity", None),
            Error::Unavailable(_) => ("unavailable", None),
            Error::Store(skypanel_store::Error::Conflict { field, .. }) => {
                ("conflict", field.map(str::to_string))
            }
            Error::Store(skypanel_store::Error::Stale) => ("stale", None),
            Error::Store(_) => ("store", None),
            Error::Refused { code, field, .. } => {
                return Self {
                    code: code.clone(),
                    message: err.to_string(),
                    field: field.clone(),
                };
            }
        };
        Self {
            code: code.into(),
            message: err.to_string(),
            field,
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        let Refusal {
            code,
            message,
            field,
        } = refusal;
        match (code.as_str(), field) {
            ("not_found", _) => Error::NotFound,
            ("invalid", field) => Error::Invalid(Invalid { field, message }),
            ("conflict", None) => Error::Conflict(message),
            ("no_capacity", _) => Error::NoCapacity(message),
            ("unavailable" | "store" | MOVED, _) => Error::Unavailable(message),
            (_, field) => Error::Refused {
                code,
                message,
                field,
            },
        }
    }
}

/// The key replica calls are signed with.
pub fn signing_key(secrets: &SecretKey) -> [u8; 32] {
    secrets.derive("skypanel replica calls v1")
}

fn signed(time: i64, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{time}.").into_bytes();
    message.extend_from_slice(body);
    message
}

/// The signature header of a call sent at `time` (unix seconds).
pub fn sign(key: &[u8], time: i64, body: &[u8]) -> String {
    skypanel_domain::signatures::sign(key, &signed(time, body))
}

/// Whether a call is signed with `key` and was sent within a minute of `now`.
pub fn verify(key: &[u8], time: &str, signature: &str, body: &[u8], now: i64) -> bool {
    let Ok(at) = time.trim().parse::<i64>() else {
        return false;
    };
    (at - now).abs() <= MAX_SKEW_SECS
        && skypanel_domain::signatures::verify(key, &signed(at, body), signature)
}

/// Sends `call` to the replica at `address`; answers its answer (a refusal
/// included: the caller decides what it means).
async fn send(
    client: &reqwest::Client,
    key: &[u8],
    address: &str,
    call: &Call,
) -> Result<Answer, Error> {
    let body = serde_json::to_vec(call)
        .map_err(|e| Error::Unavailable(format!("cannot encode a replica call: {e}")))?;
    let time = chrono::Utc::now().timestamp();
    let url = format!("{}{CALL_PATH}", address.trim_end_matches('/'));
    let unreachable = |e: reqwest::Error| {
        Error::Unavailable(format!(
            "the replica owning entity {} is unreachable: {e}",
            call.entity()
        ))
    };
    let response = client
        .post(&url)
        .timeout(CALL_TIMEOUT)
        .header(TIME_HEADER, time.to_string())
        .header(SIGNATURE_HEADER, sign(key, time, &body))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(Error::Unavailable(format!(
            "the replica owning entity {} answered {}",
            call.entity(),
            response.status()
        )));
    }
    response.json::<Answer>().await.map_err(unreachable)
}

/// Sends `call` to the replica at `address` (not to an entity's owner: the
/// inspector asking each replica), timed like every call sent.
pub(crate) async fn send_to(ctx: &Context, address: &str, call: &Call) -> Result<Answer, Error> {
    let started = Instant::now();
    let answer = send(ctx.peers(), ctx.signing_key(), address, call).await;
    crate::metrics::replica_call(call.name(), "sent", Some(started.elapsed().as_secs_f64()));
    answer
}

/// How long a request waits for its entity's shard to have an owner: a
/// lease running out, the takeover's beat, and room to spare.
const OWNER_WAIT: Duration = Duration::from_secs(12);

/// How long a look at a shard's owner is used again (a beat: shards move
/// at beats).
const OWNER_REMEMBERED: Duration = crate::shards::BEAT;

/// Which replica owned which shard at the last look, so that every call
/// carried to another replica does not cost a query. A call reaching a
/// replica that lost the shard is answered `moved`, and one to a replica
/// that died fails: either way the look is made again.
#[derive(Default)]
pub(crate) struct Owners(std::sync::Mutex<std::collections::HashMap<i32, (String, Instant)>>);

impl Owners {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<i32, (String, Instant)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, shard: i32) -> Option<String> {
        self.lock()
            .get(&shard)
            .filter(|(_, at)| at.elapsed() < OWNER_REMEMBERED)
            .map(|(address, _)| address.clone())
    }

    fn remember(&self, shard: i32, address: &str) {
        self.lock()
            .insert(shard, (address.to_string(), Instant::now()));
    }

    fn forget(&self, shard: i32) {
        self.lock().remove(&shard);
    }
}

/// Where the actor of entity `id` lives: `None` here, else the address of
/// the replica holding its shard. While nobody holds it (a replica died and
/// its leases have not run out, or a shard given back is not claimed yet)
/// this waits, up to [`OWNER_WAIT`].
async fn owner(ctx: &Context, id: i64) -> Result<Option<String>, Error> {
    let shards = ctx.shards();
    let shard = skypanel_store::shards::shard_of(id);
    let deadline = tokio::time::Instant::now() + OWNER_WAIT;
    loop {
        if shards.owns(id) {
            return Ok(None);
        }
        if let Some(address) = ctx.owners().get(shard) {
            return Ok(Some(address));
        }
        if ractor::registry::where_is(ctx.name("root")).is_none() {
            return Err(Error::Unavailable(
                "this replica's actors are stopped".into(),
            ));
        }
        let owner = {
            let mut conn = ctx.store().conn().await?;
            skypanel_store::shards::owner_of(&mut conn, shard).await?
        };
        match owner {
            // Another replica registered at this replica's own address is
            // one that is gone: wait for its lease to run out.
            Some(owner)
                if owner.replica != shards.replica()
                    && (owner.address.is_none()
                        || owner.address.as_deref() != shards.address()) =>
            {
                let address = owner.address.ok_or_else(|| {
                    Error::Unavailable(format!(
                        "shard {shard} is held by replica {}, which takes no calls",
                        owner.replica
                    ))
                })?;
                ctx.owners().remember(shard, &address);
                return Ok(Some(address));
            }
            // Nobody holds it (a takeover under way), or this replica does
            // and its next beat will say so.
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Unavailable(format!(
                "no control-plane replica holds shard {shard} now"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `call` on the replica owning its entity: here, or carried to the
/// owner, and again after a fresh look when the owner changed meanwhile or
/// does not answer (it died and its lease has not run out: the call waits
/// for the takeover, up to [`OWNER_WAIT`]).
pub(crate) async fn call(ctx: &Context, call: Call) -> Result<Answer, Error> {
    let deadline = tokio::time::Instant::now() + OWNER_WAIT;
    let answer = loop {
        let Some(address) = owner(ctx, call.entity()).await? else {
            break local(ctx, call).await;
        };
        let started = std::time::Instant::now();
        let answer = send(ctx.peers(), ctx.signing_key(), &address, &call).await;
        let seconds = started.elapsed().as_secs_f64();
        crate::metrics::replica_call(call.name(), "sent", Some(seconds));
        let again = match &answer {
            Err(Error::Unavailable(_)) => true,
            Ok(Answer::Refused(refusal)) => refusal.code == MOVED,
            _ => false,
        };
        if again {
            ctx.owners()
                .forget(skypanel_store::shards::shard_of(call.entity()));
        }
        if !again || tokio::time::Instant::now() >= deadline {
            break answer?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    match answer {
        Answer::Refused(refusal) => Err(refusal.into()),
        other => Ok(other),
    }
}

/// An answer of the wrong kind (a replica of another version).
pub(crate) fn unexpected(answer: Answer) -> Error {
    Error::Unavailable(format!("a replica answered out of turn: {answer:?}"))
}

/// A request to application `app_id`'s actor, wherever it lives (the
/// Orchestrator's customers, and a wallet suspending or resuming its
/// owner's applications).
pub(crate) async fn app_request(
    ctx: &Context,
    app_id: i64,
    request: AppRequest,
) -> Result<Accepted, Error> {
    match call(ctx, Call::AppRequest { app_id, request }).await? {
        Answer::Accepted(accepted) => Ok(*accepted),
        other => Err(unexpected(other)),
    }
}

/// [`call`] for what an actor tells another without waiting for it (a
/// node's report of an application's containers, its going offline): run
/// in the background, a failure logged.
pub(crate) fn tell(ctx: &Context, message: Call) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let (name, entity) = (message.name(), message.entity());
        if let Err(err) = call(&ctx, message).await {
            tracing::warn!(call = name, entity, error = %err, "a message to another replica's actor was not delivered");
        }
    });
}

/// Asks entity `id`'s actor here (started if it is not running).
async fn ask_here<M: Send + 'static, R: Send + 'static>(
    ctx: &Context,
    (child, kind): (Child, &str),
    id: i64,
    build: impl FnOnce(ractor::RpcReplyPort<R>) -> M,
) -> Result<R, Error> {
    let actor = entity_of::<M>(ctx, child, kind, id).await?;
    ask(&actor, build).await
}

/// Tells entity `id`'s actor here (started if it is not running).
async fn tell_here<M: Send + 'static>(
    ctx: &Context,
    (child, kind): (Child, &str),
    id: i64,
    message: M,
) -> Result<Answer, Error> {
    let actor = entity_of::<M>(ctx, child, kind, id).await?;
    crate::mailboxes::cast(&actor, message)?;
    Ok(Answer::Done)
}

const APP: (Child, &str) = (Child::Apps, "app");
const NODE: (Child, &str) = (Child::Nodes, "node");
const WALLET: (Child, &str) = (Child::Wallets, "wallet");

/// Runs `call` on this replica's actor of its entity.
pub(crate) async fn local(ctx: &Context, call: Call) -> Answer {
    let answer = match call {
        Call::AppRequest { app_id, request } => {
            ask_here(ctx, APP, app_id, |r| AppMsg::Request(request, r))
                .await
                .and_then(|r| r)
                .map(|a| Answer::Accepted(Box::new(a)))
        }
        Call::BuildStep { app_id, step } => ask_here(ctx, APP, app_id, |r| AppMsg::Build(step, r))
            .await
            .and_then(|r| r)
            .map(Answer::Step),
        Call::AppSnapshot { app_id } => ask_here(ctx, APP, app_id, AppMsg::Snapshot)
            .await
            .map(|s| Answer::Snapshot(Box::new(s))),
        Call::AppCreated { app_id } => entity_of::<AppMsg>(ctx, Child::Apps, "app", app_id)
            .await
            .map(|_| Answer::Done),
        Call::AppTaskFinished { app_id, outcome } => {
            tell_here(ctx, APP, app_id, AppMsg::TaskFinished(*outcome)).await
        }
        Call::AppObserved {
            app_id,
            node_id,
            containers,
            observed_at,
        } => {
            let observed = AppMsg::Observed {
                node_id,
                containers,
                observed_at,
            };
            tell_here(ctx, APP, app_id, observed).await
        }
        Call::AppNodeLost { app_id, node_id } => {
            tell_here(ctx, APP, app_id, AppMsg::NodeLost(node_id)).await
        }
        Call::Heartbeat { node_id, beat } => {
            ask_here(ctx, NODE, node_id, |r| NodeMsg::Heartbeat(beat, r))
                .await
                .and_then(|r| r)
                .map(|ack| Answer::Ack(Box::new(ack)))
        }
        Call::Usage { node_id, app_id } => {
            ask_here(ctx, NODE, node_id, |r| NodeMsg::Usage(app_id, r))
                .await
                .map(Answer::Usage)
        }
        Call::NodeChanged { node_id } => tell_here(ctx, NODE, node_id, NodeMsg::Reload).await,
        Call::NodeRemoved { node_id } => {
            if let Some(cell) = ractor::registry::where_is(actor_name(ctx, "node", node_id)) {
                cell.stop(Some("node removed".into()));
            }
            Ok(Answer::Done)
        }
        Call::WalletApply { user_id, movement } => {
            ask_here(ctx, WALLET, user_id, |r| WalletMsg::Apply(movement, r))
                .await
                .and_then(|r| r)
                .map(|w| Answer::Wallet(Box::new(w)))
        }
        Call::WalletCheck { user_id } => {
            ask_here(ctx, WALLET, user_id, |r| WalletMsg::Check(Some(r)))
                .await
                .and_then(|r| r)
                .map(Answer::Checked)
        }
        Call::Actors => match ractor::registry::where_is(ctx.name("root")) {
            Some(root) => Ok(Answer::Actors(local_actors(ctx, &root.into()).await)),
            None => Err(Error::Unavailable(
                "this replica's actors are stopped".into(),
            )),
        },
    };
    answer.unwrap_or_else(|err| Answer::Refused(Refusal::from(&err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_time_body_and_key() {
        let key = [7u8; 32];
        let body = br#"{"call":"app_snapshot","app_id":3}"#;
        let signature = sign(&key, 1000, body);
        assert!(verify(&key, "1000", &signature, body, 1030));
        assert!(!verify(&key, "1000", &signature, body, 1061), "too old");
        assert!(
            !verify(&key, "1001", &signature, body, 1000),
            "another time"
        );
        assert!(
            !verify(&[8u8; 32], "1000", &signature, body, 1000),
            "another key"
        );
        assert!(
            !verify(&key, "1000", &signature, b"{}", 1000),
            "another body"
        );
        assert!(!verify(&key, "soon", &signature, body, 1000));
    }

    #[test]
    fn refusals_keep_what_callers_match_on() {
        let round = |err: Error| Error::from(Refusal::from(&err));
        assert!(matches!(round(Error::NotFound), Error::NotFound));
        assert!(matches!(
            round(Error::NoCapacity("full".into())),
            Error::NoCapacity(m) if m == "full"
        ));
        assert!(matches!(
            round(Error::Invalid(Invalid::new("image", "bad"))),
            Error::Invalid(Invalid { field: Some(f), .. }) if f == "image"
        ));
        assert!(matches!(
            round(Error::Store(skypanel_store::Error::conflict(Some("name"), "taken"))),
            Error::Refused { code, field: Some(f), .. } if code == "conflict" && f == "name"
        ));
        assert!(matches!(
            Error::from(Refusal::moved(9)),
            Error::Unavailable(_)
        ));
    }

    #[test]
    fn calls_travel_as_json() {
        let call = Call::AppRequest {
            app_id: 5,
            request: AppRequest::Scale([("web".to_string(), 3)].into()),
        };
        let text = serde_json::to_string(&call).unwrap();
        let back: Call = serde_json::from_str(&text).unwrap();
        assert_eq!(back.entity(), 5);
        assert!(
            matches!(back, Call::AppRequest { request: AppRequest::Scale(s), .. } if s["web"] == 3)
        );
    }
}
