//! `/api/paas/webhooks`: a customer's event webhooks. Each event (a build
//! ended, an app crashed, the balance ran low, the account was suspended or
//! resumed, a certificate or a backup failed) is `POST`ed to every webhook
//! that wants it, signed with the webhook's secret, retried with a doubling
//! wait; the latest deliveries are listed per webhook.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use skypanel_domain::credentials::generate_token;
use skypanel_domain::events::{EVENTS, is_public};
use skypanel_store::webhooks::{self, Webhook};

use super::{Audit, Created, NoContent, Tag};
use crate::auth::BearerAuth;
use crate::body::JsonBody;
use crate::dto::hooks::*;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

/// Deliveries a list shows.
const DELIVERIES_SHOWN: i64 = 50;

pub struct HooksApi {
    pub state: AppState,
}

/// Checks a webhook's URL: http(s), a host, no credentials, and (unless
/// the operator allows private ones) not a loopback or private address.
fn check_url(url: &str, allow_private: bool) -> Result<(), ApiError> {
    let bad = |why: &str| ApiError::invalid("url", why.to_string());
    if url.len() > 2000 {
        return Err(bad("a URL is at most 2000 characters"));
    }
    let parsed = url::Url::parse(url).map_err(|e| bad(&format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(bad("a webhook URL starts with https:// or http://"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "put no credentials in the URL; check the signature instead",
        ));
    }
    let private = match parsed.host() {
        None => return Err(bad("the URL has no host")),
        Some(url::Host::Ipv4(ip)) => !is_public(ip.into()),
        Some(url::Host::Ipv6(ip)) => !is_public(ip.into()),
        Some(url::Host::Domain(name)) => !can_be_public(name),
    };
    if private && !allow_private {
        return Err(bad(
            "webhooks are delivered to public addresses only, not to loopback or private networks",
        ));
    }
    Ok(())
}

/// Top-level names no public address has (RFC 6761, 6762, 8375, and the
/// ones private networks use by convention, such as `.internal` for cloud
/// metadata and `.lan`).
const PRIVATE_TLDS: &[&str] = &[
    "localhost",
    "local",
    "localdomain",
    "internal",
    "intranet",
    "lan",
    "home",
    "corp",
    "private",
    "test",
    "invalid",
    "example",
    "onion",
];

/// Whether a host name can ever resolve to a public address: a single
/// label (`redis`, `metadata`: a name of the local network or a container's)
/// or a private top-level name cannot.
fn can_be_public(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let Some((_, tld)) = name.rsplit_once('.') else {
        return false;
    };
    !(PRIVATE_TLDS.contains(&tld) || name.ends_with(".home.arpa"))
}

#[OpenApi(prefix_path = "/paas", tag = "Tag::EventWebhooks")]
impl HooksApi {
    /// Create a webhook
    ///
    /// The answer holds the signing secret, once.
    #[oai(path = "/webhooks", method = "post", operation_id = "createWebhook")]
    async fn create(
        &self,
        request: &Request,
        auth: BearerAuth,
        body: JsonBody<CreateWebhookRequest>,
    ) -> ApiResult<Created<WebhookView>> {
        let b = body.0;
        check_url(&b.url, self.state.settings().webhook_allow_private)?;
        let mut events = match b.events {
            Some(events) => {
                if events.is_empty() {
                    return Err(ApiError::invalid(
                        "events",
                        "name at least one event, or leave events out for all",
                    ));
                }
                if let Some(unknown) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
                    return Err(ApiError::invalid(
                        "events",
                        format!(
                            "{unknown} is not an event; events are {}",
                            EVENTS.join(", ")
                        ),
                    ));
                }
                events
            }
            None => EVENTS.iter().map(|e| e.to_string()).collect(),
        };
        events.sort();
        events.dedup();
        let secret = generate_token("whsec_");
        let secrets = self.state.secrets();
        let seal = |id| secrets.seal_str(&secret, &Webhook::secret_associated_data(id));
        let mut conn = self.state.store().conn().await?;
        let hook = webhooks::create(&mut conn, auth.user_id(), &b.url, &events, &seal).await?;
        Audit::by(request, auth.user_id(), "webhook.create")
            .on("webhook", hook.id)
            .with(serde_json::json!({"events": events}))
            .write(&mut conn)
            .await;
        let mut view = WebhookView::from(hook);
        view.secret = Some(secret);
        Ok(Created::Created(Json(view)))
    }

    /// The customer's webhooks (no secrets)
    #[oai(path = "/webhooks", method = "get", operation_id = "listWebhooks")]
    async fn list(&self, auth: BearerAuth) -> ApiResult<Json<Vec<WebhookView>>> {
        let mut conn = self.state.store().conn().await?;
        let list = webhooks::list(&mut conn, auth.user_id()).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// A webhook
    #[oai(path = "/webhooks/:id", method = "get", operation_id = "getWebhook")]
    async fn get(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<WebhookView>> {
        let mut conn = self.state.store().conn().await?;
        let hook = webhooks::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("webhook")?;
        Ok(Json(hook.into()))
    }

    /// Delete a webhook (pending deliveries are dropped)
    #[oai(
        path = "/webhooks/:id",
        method = "delete",
        operation_id = "deleteWebhook"
    )]
    async fn delete(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<NoContent> {
        let mut conn = self.state.store().conn().await?;
        webhooks::delete(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("webhook")?;
        Audit::by(request, auth.user_id(), "webhook.delete")
            .on("webhook", id.0)
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }

    /// A webhook's latest deliveries, newest first
    #[oai(
        path = "/webhooks/:id/deliveries",
        method = "get",
        operation_id = "listWebhookDeliveries"
    )]
    async fn deliveries(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<Json<Vec<DeliveryView>>> {
        let mut conn = self.state.store().conn().await?;
        let list = webhooks::deliveries(&mut conn, auth.user_id(), id.0, DELIVERIES_SHOWN)
            .await
            .or_not_found("webhook")?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_public_http_urls_without_credentials() {
        assert!(check_url("https://hooks.example.com/skypanel", false).is_ok());
        for bad in [
            "ftp://example.com/x",
            "https://user:pw@example.com/x",
            "http://127.0.0.1:9000/x",
            "http://localhost/x",
            "http://10.0.0.5/x",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data",
            "not a url",
        ] {
            let err = check_url(bad, false).unwrap_err();
            assert_eq!(err.body().field.as_deref(), Some("url"), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9000/x", true).is_ok());
    }

    #[test]
    fn names_that_cannot_be_public_are_known_before_delivery() {
        for refused in [
            "http://localhost/x",
            "http://redis:6379/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "https://printer.local/",
            "https://router.home.arpa/",
            "http://api.localhost/",
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            let answer = check_url(refused, false);
            assert!(answer.is_err(), "{refused} was taken");
            assert!(
                check_url(refused, true).is_ok(),
                "{refused}, private allowed"
            );
        }
        for taken in [
            "https://hooks.example.com/skypanel",
            "https://hooks.slack.com/services/T/B/X",
            "http://8.8.8.8:8080/x",
        ] {
            assert!(check_url(taken, false).is_ok(), "{taken} was refused");
        }
    }
}
