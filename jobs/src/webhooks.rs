//! The `notify` queue: a notice is marked delivered and fanned out to the
//! owner's webhooks that want its event (one delivery per webhook, written
//! once), and each delivery is a job of its own on the same queue: a signed
//! `POST` of the event. A delivery that fails (no answer, or not 2xx) is
//! tried again with a doubling wait, up to [`WebhookSettings::attempts`]
//! times; one the platform refuses to send (an address that is not public)
//! fails at once. Every attempt is recorded, so the customer sees what
//! happened.
//!
//! Signing: `X-SkyPanel-Signature: sha256=<hex HMAC-SHA256(secret,
//! "<X-SkyPanel-Timestamp>.<body>")>`; the timestamp inside the signed text
//! lets a receiver refuse replays. Addresses that are not public (loopback,
//! private, link-local …) are refused unless the operator allows them, and
//! the connection goes to the address that was checked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use skypanel_actors::Orchestrator;
use skypanel_domain::events::{event_of, is_public};
use skypanel_store::webhooks::{self, Attempt, Webhook};
use skypanel_store::{Store, notifications};

use crate::Queues;

/// A notice to deliver, by id; with `delivery_id`, one webhook delivery of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyJob {
    pub notification_id: i64,
    #[serde(default)]
    pub delivery_id: Option<i64>,
    /// The attempts the delivery had when this job was pushed: a job whose
    /// attempt was made already (a re-run, a duplicate) does nothing.
    #[serde(default)]
    pub attempts: Option<i32>,
}

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Deliver to loopback and private addresses too (tests, single-machine setups).
    pub allow_private: bool,
    /// The wait before the second attempt; doubled before each later one.
    pub retry_base: Duration,
    /// Attempts of one delivery.
    pub attempts: i32,
    /// How long an endpoint may take to answer.
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_base: Duration::from_secs(30),
            attempts: 5,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the notify worker works with.
#[derive(Clone)]
pub(crate) struct NotifyContext {
    pub orchestrator: Orchestrator,
    pub store: Store,
    pub queues: Queues,
    pub settings: Arc<WebhookSettings>,
}

/// The `notify` queue's handler.
pub(crate) async fn handle(job: NotifyJob, ctx: Data<NotifyContext>) -> Result<(), BoxDynError> {
    match job.delivery_id {
        Some(id) => attempt(&ctx, id, job.attempts).await,
        None => fan_out(&ctx, job.notification_id).await,
    }
}

/// Marks a notice delivered (customers read it at `GET
/// /api/paas/notifications`) and queues its webhook deliveries.
async fn fan_out(ctx: &NotifyContext, notification_id: i64) -> Result<(), BoxDynError> {
    let now = ctx.orchestrator.context().now();
    let mut conn = ctx.store.conn().await?;
    let notice = match notifications::by_id(&mut conn, notification_id).await {
        Ok(n) => n,
        Err(skypanel_store::Error::NotFound) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let deliveries = match event_of(&notice.kind) {
        Some(event) => webhooks::fan_out(&mut conn, notice.user_id, notice.id, event).await?,
        None => Vec::new(),
    };
    if notifications::mark_delivered(&mut conn, notification_id, now).await? {
        tracing::info!(
            notification_id,
            webhooks = deliveries.len(),
            "notice delivered"
        );
    }
    drop(conn);
    for delivery in deliveries.iter().filter(|d| d.attempts == 0) {
        ctx.queues
            .push_delivery(notice.id, delivery.id, 0, None)
            .await?;
    }
    Ok(())
}

/// One attempt of one delivery: attempt `for_attempts + 1`, unless it was made.
async fn attempt(
    ctx: &NotifyContext,
    id: i64,
    for_attempts: Option<i32>,
) -> Result<(), BoxDynError> {
    let now = ctx.orchestrator.context().now();
    let mut conn = ctx.store.conn().await?;
    let delivery = match webhooks::delivery(&mut conn, id).await {
        Ok(d) => d,
        // Its webhook was deleted.
        Err(skypanel_store::Error::NotFound) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    // A delayed push may run a moment early (its schedule has whole
    // seconds); the attempt count, checked when the attempt is recorded,
    // is what keeps two runs from making two attempts count.
    if delivery.status != "pending" || for_attempts.is_some_and(|n| n != delivery.attempts) {
        return Ok(());
    }
    let (hook, sealed) = webhooks::with_secret(&mut conn, delivery.webhook_id).await?;
    let notice = notifications::by_id(&mut conn, delivery.notification_id).await?;
    drop(conn);
    // A secret that cannot be opened fails the attempt like an endpoint
    // that does not answer: recorded, never retried forever in silence.
    let secret = ctx
        .orchestrator
        .context()
        .secrets()
        .open_str(&sealed, &Webhook::secret_associated_data(hook.id))
        .map_err(|e| {
            tracing::error!(webhook_id = hook.id, error = %e, "a webhook's secret cannot be opened");
            "the platform cannot sign this delivery (its secret is unreadable)".to_string()
        });
    let body = serde_json::to_vec(&serde_json::json!({
        "id": delivery.id,
        "event": delivery.event,
        "created_at": notice.created_at,
        "message": notice.message,
        "data": notice.data,
    }))?;
    let sent = match &secret {
        Ok(secret) => post(ctx, &hook, secret, delivery.id, &delivery.event, body).await,
        Err(why) => Err(NotSent::Failed(why.clone())),
    };
    let (response_status, error, again) = match sent {
        Ok(status) if (200..300).contains(&status) => (Some(i32::from(status)), None, false),
        Ok(status) => (
            Some(i32::from(status)),
            Some(format!("the endpoint answered HTTP {status}")),
            true,
        ),
        Err(NotSent::Failed(why)) => (None, Some(why), true),
        Err(NotSent::Refused(why)) => (None, Some(why), false),
    };
    let tried = delivery.attempts + 1;
    let retry_in = (again && tried < ctx.settings.attempts)
        .then(|| ctx.settings.retry_base * 2u32.pow((tried - 1).clamp(0, 16) as u32));
    let record = Attempt {
        response_status,
        error: error.as_deref(),
        retry_at: retry_in.map(|d| now + chrono::Duration::from_std(d).unwrap_or_default()),
        at: now,
    };
    let mut conn = ctx.store.conn().await?;
    let Some(now_is) = webhooks::record_attempt(&mut conn, id, delivery.attempts, &record).await?
    else {
        return Ok(());
    };
    drop(conn);
    match (&error, retry_in) {
        (None, _) => tracing::info!(delivery_id = id, webhook_id = hook.id, "webhook delivered"),
        (Some(why), Some(wait)) => {
            tracing::warn!(delivery_id = id, webhook_id = hook.id, attempt = tried, error = %why, retry_in = ?wait, "webhook delivery failed; it will be tried again");
            ctx.queues
                .push_delivery(notice.id, id, now_is.attempts, Some(wait))
                .await?;
        }
        (Some(why), None) => {
            tracing::warn!(delivery_id = id, webhook_id = hook.id, attempts = tried, error = %why, "webhook delivery failed for good")
        }
    }
    Ok(())
}

/// Why a delivery was not answered.
enum NotSent {
    /// It may work later (no answer, a name that does not resolve yet).
    Failed(String),
    /// The platform will not send it (an address that is not public, a URL
    /// it cannot use): trying again would only be refused again.
    Refused(String),
}

/// Sends one signed delivery; answers the HTTP status, or why there was none.
async fn post(
    ctx: &NotifyContext,
    hook: &Webhook,
    secret: &str,
    delivery_id: i64,
    event: &str,
    body: Vec<u8>,
) -> Result<u16, NotSent> {
    let refused = |why: String| NotSent::Refused(format!("{why} (not tried again)"));
    let url = reqwest::Url::parse(&hook.url)
        .map_err(|e| refused(format!("the URL is not valid: {e}")))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| refused("the URL has no port".into()))?;
    let (host, addresses): (String, Vec<SocketAddr>) = match url.host() {
        None => return Err(refused("the URL has no host".into())),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
        Some(url::Host::Ipv6(ip)) => (format!("[{ip}]"), vec![SocketAddr::new(ip.into(), port)]),
        Some(url::Host::Domain(name)) => {
            let found = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| NotSent::Failed(format!("{name} does not resolve: {e}")))?
                .collect();
            (name.to_string(), found)
        }
    };
    let address = addresses
        .iter()
        .copied()
        .find(|a| ctx.settings.allow_private || is_public(a.ip()))
        .ok_or_else(|| {
            refused(format!(
                "{host} resolves to no public address; webhooks are not delivered into private networks"
            ))
        })?;
    let client = reqwest::Client::builder()
        .timeout(ctx.settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the name again: the checked address is the one used.
        .no_proxy()
        .resolve(&host, address)
        .build()
        .map_err(|e| NotSent::Failed(e.to_string()))?;
    let timestamp = ctx.orchestrator.context().now().timestamp();
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&body);
    let signature = skypanel_domain::signatures::sign(secret.as_bytes(), &signed);
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "SkyPanel-Webhooks/1")
        .header("x-skypanel-event", event)
        .header("x-skypanel-delivery", delivery_id.to_string())
        .header("x-skypanel-timestamp", timestamp.to_string())
        .header("x-skypanel-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            NotSent::Failed(if e.is_timeout() {
                format!(
                    "the endpoint did not answer within {} s",
                    ctx.settings.timeout.as_secs()
                )
            } else {
                format!(
                    "cannot reach the endpoint: {}",
                    std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string())
                )
            })
        })?;
    Ok(answer.status().as_u16())
}

/// Pushes every delivery whose next attempt is due (the sweeper: a delayed
/// push lost with Redis comes back).
pub(crate) async fn push_due(ctx: &NotifyContext) {
    let now = ctx.orchestrator.context().now();
    let due = match ctx.store.conn().await {
        Ok(mut conn) => webhooks::due(&mut conn, now, 1000).await,
        Err(err) => Err(err),
    };
    match due {
        Ok(list) => {
            for d in list {
                if let Err(err) = ctx
                    .queues
                    .sweep_delivery(d.notification_id, d.id, d.attempts, now.timestamp())
                    .await
                {
                    tracing::warn!(delivery_id = d.id, error = %err, "cannot queue a webhook delivery");
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot look for due webhook deliveries"),
    }
}
