//! Customers' event webhooks on the wire.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use skypanel_store::webhooks::{Delivery, Webhook};

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where events are `POST`ed: an `https://` (or `http://`) URL on the
    /// public internet.
    #[oai(validator(
        max_length = 2000,
        pattern = r"^https?://([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(/[A-Za-z0-9._~/-]*)?$"
    ))]
    pub url: String,
    /// The events wanted (`build.succeeded`, `build.failed`, `app.crashed`,
    /// `balance.low`, `account.suspended`, `account.resumed`, `ssl.failed`,
    /// `backup.failed`, `restore.failed`); all of them when absent.
    #[oai(nullable)]
    pub events: Option<Vec<String>>,
}

/// A webhook (its secret is shown once, when it is created).
#[derive(Object, Debug)]
pub struct WebhookView {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// Only in the answer to the creation: the key of the HMAC-SHA256
    /// signature in `X-SkyPanel-Signature` (`sha256=<hex>` of
    /// `<X-SkyPanel-Timestamp>.<body>`). Keep it; it is not shown again.
    #[oai(nullable)]
    pub secret: Option<String>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events,
            created_at: w.created_at,
            secret: None,
        }
    }
}

/// One delivery of an event to a webhook.
#[derive(Object, Debug)]
pub struct DeliveryView {
    pub id: i64,
    pub event: String,
    pub notification_id: i64,
    /// `pending` (more attempts to come), `succeeded` or `failed` (every attempt failed).
    pub status: String,
    pub attempts: i32,
    /// What the endpoint answered last, if it answered.
    #[oai(nullable)]
    pub response_status: Option<i32>,
    #[oai(nullable)]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event: d.event,
            notification_id: d.notification_id,
            status: d.status,
            attempts: d.attempts,
            response_status: d.response_status,
            error: d.error,
            created_at: d.created_at,
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
        }
    }
}
