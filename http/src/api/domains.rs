//! `/api/paas/applications/:id/domains`: the hostnames an application
//! answers to. Its system domain (`<slug>.<platform domain>`) is always
//! there; custom domains are unique across all customers. A change is
//! written to the application's node's ingress at once.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use skypanel_actors::AppRequest;
use skypanel_domain::names::normalize_hostname;
use skypanel_store::{apps, domains};

use super::app_commands::through_actor;
use super::{Accepted, Audit, Created, NoContent, Tag};
use crate::auth::BearerAuth;
use crate::body::JsonBody;
use crate::dto::domains::{AddDomainRequest, DomainView};
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

/// The most custom domains one application may have.
const MAX_CUSTOM_DOMAINS: usize = 20;

pub struct DomainsApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/paas/applications", tag = "Tag::Domains")]
impl DomainsApi {
    /// List an application's domains, its system domain first
    #[oai(path = "/:id/domains", method = "get", operation_id = "listDomains")]
    async fn list(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<Vec<DomainView>>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let list = domains::list(&mut conn, auth.user_id(), app.id).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Add a custom domain
    ///
    /// Point the name's DNS at the application's node (an `A` record to the
    /// node's address, or a `CNAME` to the system domain); the node's ingress
    /// answers for it from now on. A name used by any application is 409.
    #[oai(path = "/:id/domains", method = "post", operation_id = "addDomain")]
    async fn add(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        body: JsonBody<AddDomainRequest>,
    ) -> ApiResult<Created<DomainView>> {
        let hostname = normalize_hostname("hostname", &body.0.hostname)?;
        if !hostname.contains('.') {
            return Err(ApiError::invalid(
                "hostname",
                "a custom domain is a full name such as shop.example.com",
            ));
        }
        let platform = &self.state.settings().platform_domain;
        if hostname == *platform || hostname.ends_with(&format!(".{platform}")) {
            return Err(ApiError::invalid(
                "hostname",
                format!("names under {platform} are the platform's own"),
            ));
        }
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let existing = domains::list(&mut conn, auth.user_id(), app.id).await?;
        if existing.iter().filter(|d| !d.is_system).count() >= MAX_CUSTOM_DOMAINS {
            return Err(ApiError::conflict(
                "conflict",
                format!("an application has at most {MAX_CUSTOM_DOMAINS} custom domains"),
                Some("hostname"),
            ));
        }
        let domain = domains::add(&mut conn, auth.user_id(), app.id, &hostname)
            .await
            .or_not_found("application")?;
        drop(conn);
        names_changed(
            &self.state,
            request,
            auth.user_id(),
            app.id,
            "domain.add",
            &hostname,
        )
        .await?;
        let domain = if self.state.settings().https {
            match request_certificate(&self.state, domain.id).await {
                Ok(requested) => requested,
                Err(err) => {
                    // The domain stays `none`: the sweeper asks for it within half a minute.
                    tracing::warn!(hostname = %hostname, error = ?err, "cannot request a certificate now");
                    domain
                }
            }
        } else {
            domain
        };
        Ok(Created::Created(Json(domain.into())))
    }

    /// Ask for a domain's HTTPS certificate again
    ///
    /// After a request failed (fix the domain's DNS first), or to renew now.
    /// The attempts start again; the domain is `pending` until a certificate
    /// is issued (`active`) or every attempt failed (`failed`). A domain
    /// whose certificate still serves stays `active` meanwhile.
    #[oai(
        path = "/:id/domains/:domain/ssl/retry",
        method = "post",
        operation_id = "retryDomainSsl"
    )]
    async fn retry_ssl(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        domain: Path<String>,
    ) -> ApiResult<Accepted<DomainView>> {
        let hostname =
            normalize_hostname("domain", &domain.0).map_err(|_| ApiError::not_found("domain"))?;
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let found = domains::list(&mut conn, auth.user_id(), app.id)
            .await?
            .into_iter()
            .find(|d| d.hostname == hostname)
            .ok_or_else(|| ApiError::not_found("domain"))?;
        drop(conn);
        if !self.state.settings().https {
            return Err(ApiError::conflict(
                "https_disabled",
                "this platform does not issue certificates (SKYPANEL_ACME_DIRECTORY is not set)",
                None,
            ));
        }
        // One request at a time per name (each one is an order at the
        // certificate authority, whose limits the whole platform shares).
        if found.ssl_due_at.is_some() {
            return Err(ApiError::conflict(
                "ssl_in_progress",
                format!(
                    "a certificate request for {hostname} is in progress (attempt {} of 3)",
                    found.ssl_attempts.max(1)
                ),
                Some("domain"),
            ));
        }
        let domain = request_certificate(&self.state, found.id).await?;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, auth.user_id(), "domain.ssl_retry")
            .on("application", app.id)
            .with(serde_json::json!({"hostname": hostname}))
            .write(&mut conn)
            .await;
        Ok(Accepted::Accepted(Json(domain.into())))
    }

    /// Remove a custom domain
    #[oai(
        path = "/:id/domains/:domain",
        method = "delete",
        operation_id = "removeDomain"
    )]
    async fn remove(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        domain: Path<String>,
    ) -> ApiResult<NoContent> {
        let hostname =
            normalize_hostname("domain", &domain.0).map_err(|_| ApiError::not_found("domain"))?;
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        if hostname == app.system_domain {
            return Err(ApiError::conflict(
                "conflict",
                "the system domain stays with the application",
                Some("domain"),
            ));
        }
        domains::remove(&mut conn, auth.user_id(), app.id, &hostname)
            .await
            .or_not_found("domain")?;
        drop(conn);
        names_changed(
            &self.state,
            request,
            auth.user_id(),
            app.id,
            "domain.remove",
            &hostname,
        )
        .await?;
        Ok(NoContent::NoContent)
    }
}

/// Starts a certificate request for the domain and queues its first attempt.
async fn request_certificate(state: &AppState, domain_id: i64) -> ApiResult<domains::Domain> {
    let queues = state.queues()?;
    skypanel_jobs::request_certificate(state.store(), queues, domain_id, state.now())
        .await
        .or_not_found("domain")
}

/// After a hostname was added or removed: the application's node rewrites
/// its ingress (through the actor), and the change is audited.
async fn names_changed(
    state: &AppState,
    request: &Request,
    user_id: i64,
    app_id: i64,
    action: &'static str,
    hostname: &str,
) -> ApiResult<()> {
    through_actor(state, request, user_id, app_id, AppRequest::Reconfigure).await?;
    let mut conn = state.store().conn().await?;
    Audit::by(request, user_id, action)
        .on("application", app_id)
        .with(serde_json::json!({"hostname": hostname}))
        .write(&mut conn)
        .await;
    Ok(())
}
