//! `/api/admin/paas/stats`, `/api/admin/paas/capacity`,
//! `/api/admin/wallets/:userId/credit`, `/api/admin/paas/billing/run` and
//! `/api/admin/paas/ssl/renew` and `/api/admin/paas/audit`: the platform as
//! a whole, admin only.

use std::collections::BTreeMap;

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_actors::Movement;
use skypanel_domain::billing::Period;
use skypanel_domain::lifecycle::NodeStatus;
use skypanel_domain::money::{self, CREDIT, format_amount};
use skypanel_domain::names::clean_text;
use skypanel_jobs::bill_hour;
use skypanel_store::reports::{self, NodeCapacity};
use skypanel_store::wallets::Direction;
use skypanel_store::{accounts, apps, billing, builds, certificates};

use super::{Audit, Tag};
use crate::auth::AdminAuth;
use crate::body::JsonBody;
use crate::dto::admin::*;
use crate::dto::billing::{BillingRunRequest, BillingRunResult, HourRevenue};
use crate::dto::wallet::{CreditRequest, CreditResult};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub struct AdminPlatformApi {
    pub state: AppState,
}

/// Sums nodes per region. Free capacity counts the nodes that take work
/// (online, and degraded ones, which the Scheduler uses when no online node
/// has room): it is what placement can use now. Disabled nodes are left out.
pub fn summarize_regions(nodes: &[NodeCapacity]) -> Vec<RegionCapacity> {
    let mut regions: BTreeMap<&str, RegionCapacity> = BTreeMap::new();
    for node in nodes
        .iter()
        .filter(|n| n.status != NodeStatus::Disabled.as_str())
    {
        let region = regions
            .entry(&node.region)
            .or_insert_with(|| RegionCapacity {
                region: node.region.clone(),
                ..RegionCapacity::default()
            });
        region.nodes += 1;
        region.cpu_total += i64::from(node.cpu_total);
        region.cpu_allocated += node.cpu_allocated;
        region.memory_total += i64::from(node.memory_total);
        region.memory_allocated += node.memory_allocated;
        let online = node.status == NodeStatus::Online.as_str();
        let degraded = node.status == NodeStatus::Degraded.as_str();
        region.online_nodes += i64::from(online);
        region.degraded_nodes += i64::from(degraded);
        if online || degraded {
            region.free_cpu += (i64::from(node.cpu_total) - node.cpu_allocated).max(0);
            region.free_memory += (i64::from(node.memory_total) - node.memory_allocated).max(0);
        }
    }
    regions.into_values().collect()
}

#[OpenApi(tag = "Tag::AdminPlatform")]
impl AdminPlatformApi {
    /// Platform statistics
    ///
    /// Users, applications, databases and nodes by state, recent builds, and revenue.
    #[oai(
        path = "/admin/paas/stats",
        method = "get",
        operation_id = "adminStats"
    )]
    async fn stats(&self, _auth: AdminAuth) -> ApiResult<Json<Stats>> {
        let mut conn = self.state.store().conn().await?;
        let revenue = reports::revenue(&mut conn).await?;
        let now = self.state.now();
        let certs = certificates::summary(&mut conn, 50).await?;
        let (registry_images, registry_bytes) =
            skypanel_store::releases::registry_usage(&mut conn).await?;
        let images = ImageStats {
            registry_images,
            registry_bytes,
            nodes: skypanel_store::nodes::image_usage(&mut conn)
                .await?
                .into_iter()
                .map(|(node_id, name, images, bytes)| NodeImages {
                    node_id,
                    name,
                    images,
                    bytes,
                })
                .collect(),
        };
        Ok(Json(Stats {
            images,
            users: accounts::count_users_by_role(&mut conn)
                .await?
                .into_iter()
                .collect(),
            applications: apps::count_by_status(&mut conn)
                .await?
                .into_iter()
                .collect(),
            databases: reports::count_databases_by_status(&mut conn)
                .await?
                .into_iter()
                .collect(),
            nodes: reports::count_nodes_by_status(&mut conn)
                .await?
                .into_iter()
                .collect(),
            builds_last_24h: builds::count_recent_by_status(&mut conn, 24)
                .await?
                .into_iter()
                .collect(),
            revenue: Revenue {
                billed_this_month: format_amount(&revenue.billed_this_month, 2),
                credited_this_month: format_amount(&revenue.credited_this_month, 2),
                wallet_balances: format_amount(&revenue.wallet_balances, 2),
                per_hour: billing::revenue_per_hour(
                    &mut conn,
                    now - chrono::Duration::hours(48),
                    now,
                )
                .await?
                .into_iter()
                .map(|(period_start, records, total)| HourRevenue {
                    period_start,
                    records,
                    total: format_amount(&total, 4),
                })
                .collect(),
            },
            certificates: Certificates {
                by_status: certs.by_status.into_iter().collect(),
                expiring_first: certs
                    .expiring_first
                    .into_iter()
                    .map(|(hostname, expires_at, ssl_status)| CertificateExpiry {
                        hostname,
                        expires_at,
                        ssl_status,
                    })
                    .collect(),
            },
        }))
    }

    /// Apply the registry's retention now
    ///
    /// Each application keeps the images of its newest releases
    /// (`SKYPANEL_REGISTRY_KEEP`, 10), of every release younger than
    /// `SKYPANEL_REGISTRY_KEEP_DAYS` (30) and of the release it serves;
    /// the manifests of other images, and every image of a deleted
    /// application, are deleted from the registry (their blobs go at its
    /// next garbage collection: `ops/registry gc`). Runs daily at 04:15 UTC
    /// by itself. 409 when the platform does not run its registry's tokens.
    #[oai(
        path = "/admin/paas/registry/prune",
        method = "post",
        operation_id = "adminPruneRegistry"
    )]
    async fn prune_registry(
        &self,
        request: &Request,
        auth: AdminAuth,
    ) -> ApiResult<Json<RegistryPruned>> {
        let Some(retention) = &self.state.settings().registry_retention else {
            return Err(ApiError::conflict(
                "no_registry",
                "this platform does not run its registry's tokens (SKYPANEL_REGISTRY_TOKEN_KEY); \
                 a registry run elsewhere keeps its own retention",
                None,
            ));
        };
        let pruned = skypanel_jobs::prune_registry(self.state.store(), retention)
            .await
            .map_err(ApiError::internal)?;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, auth.0.user_id, "registry.prune")
            .with(serde_json::json!({"manifests": pruned.manifests}))
            .write(&mut conn)
            .await;
        Ok(Json(RegistryPruned {
            manifests_deleted: pruned.manifests as i64,
            applications: pruned.applications as i64,
            errors: pruned.errors,
        }))
    }

    /// Capacity planning data
    ///
    /// Per node and per region: what there is, what agents report in use, and
    /// what the plans of placed applications and databases reserve.
    #[oai(
        path = "/admin/paas/capacity",
        method = "get",
        operation_id = "adminCapacity"
    )]
    async fn capacity(&self, _auth: AdminAuth) -> ApiResult<Json<Capacity>> {
        let mut conn = self.state.store().conn().await?;
        let nodes = reports::node_capacity(&mut conn).await?;
        Ok(Json(Capacity {
            regions: summarize_regions(&nodes),
            nodes: nodes.into_iter().map(Into::into).collect(),
        }))
    }

    /// Credit a customer's wallet
    ///
    /// Positive amounts only, at most two decimals. Writes a ledger entry and
    /// the new balance in one transaction. With a `reference` (a payment
    /// provider's payment id) it is a top-up applied at most once: the same
    /// reference again answers 409. A balance back at zero or above resumes
    /// what its owner's unpaid balance had suspended.
    #[oai(
        path = "/admin/wallets/:userId/credit",
        method = "post",
        operation_id = "adminCreditWallet"
    )]
    async fn credit(
        &self,
        request: &Request,
        auth: AdminAuth,
        #[oai(name = "userId")] user_id: Path<i64>,
        body: JsonBody<CreditRequest>,
    ) -> ApiResult<Json<CreditResult>> {
        let admin = &auth.0;
        let amount = money::parse_amount("amount", &body.0.amount, CREDIT)?;
        let description = clean_text("description", &body.0.description, 255)?;
        let reference = body
            .0
            .reference
            .as_deref()
            .map(|r| clean_text("reference", r, 128))
            .transpose()?;
        let mut conn = self.state.store().conn().await?;
        if !accounts::user_exists(&mut conn, user_id.0).await? {
            return Err(ApiError::not_found("user"));
        }
        drop(conn);
        let movement = Movement {
            direction: Direction::Credit,
            amount: amount.clone(),
            description,
            reference: reference.map(|r| format!("credit:{r}")),
            created_by: Some(admin.user_id),
        };
        let (wallet, entry) = self
            .state
            .orchestrator()?
            .wallet_apply(user_id.0, movement)
            .await?;
        let mut conn = self.state.store().conn().await?;
        let details =
            serde_json::json!({"amount": format_amount(&amount, 2), "transaction_id": entry.id});
        Audit::by(request, admin.user_id, "wallet.credit")
            .on("user", user_id.0)
            .with(details)
            .write(&mut conn)
            .await;
        Ok(Json(CreditResult {
            balance: format_amount(&wallet.balance, 4),
            transaction: entry.into(),
        }))
    }

    /// Bill one complete hour now
    ///
    /// Charges every resource that ran in the hour starting at `period_start`
    /// (UTC, on the hour) and is not billed for it yet. An hour that has not
    /// ended answers 422. Running it again, or concurrently, charges nothing
    /// twice: the second run writes no record.
    #[oai(
        path = "/admin/paas/billing/run",
        method = "post",
        operation_id = "adminRunBilling"
    )]
    async fn run(
        &self,
        request: &Request,
        auth: AdminAuth,
        body: JsonBody<BillingRunRequest>,
    ) -> ApiResult<Json<BillingRunResult>> {
        let period = Period::starting(body.0.period_start)?;
        let now = self.state.now();
        if !period.has_ended(now) {
            return Err(ApiError::invalid(
                "period_start",
                format!(
                    "the hour from {} has not ended yet; only complete hours are billed",
                    period.start().to_rfc3339()
                ),
            ));
        }
        let orchestrator = self.state.orchestrator()?;
        let done = bill_hour(orchestrator, self.state.store(), period).await?;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, auth.0.user_id, "billing.run")
            .with(serde_json::json!({
                "period_start": period.start().to_rfc3339(),
                "records": done.records,
            }))
            .write(&mut conn)
            .await;
        Ok(Json(BillingRunResult {
            period_start: period.start(),
            period_end: period.end(),
            records: i64::try_from(done.records).unwrap_or(i64::MAX),
            debited: i64::try_from(done.debited).unwrap_or(i64::MAX),
            charged: format_amount(&done.charged, 4),
        }))
    }

    /// Renew certificates now
    ///
    /// The audit log, newest first
    ///
    /// Sensitive actions: logins (and failed ones), token creation, changes
    /// of environment variables, deploys and other application commands,
    /// credits, node registration, suspensions and resumes. Filter by actor,
    /// action (exact, or a family such as `env.*`), target and time.
    #[oai(
        path = "/admin/paas/audit",
        method = "get",
        operation_id = "adminListAudit"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        _auth: AdminAuth,
        actor_user_id: Query<Option<i64>>,
        actor_node_id: Query<Option<i64>>,
        action: Query<Option<String>>,
        target_type: Query<Option<String>>,
        target_id: Query<Option<i64>>,
        since: Query<Option<chrono::DateTime<chrono::Utc>>>,
        until: Query<Option<chrono::DateTime<chrono::Utc>>>,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<AuditEntryView>>> {
        if let Some(action) = action.0.as_deref()
            && (action.is_empty()
                || action.len() > 64
                || !action
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.' || c == '*'))
        {
            return Err(ApiError::invalid(
                "action",
                "an action such as user.login, or a family such as env.*",
            ));
        }
        if let (Some(since), Some(until)) = (since.0, until.0)
            && until <= since
        {
            return Err(ApiError::invalid("until", "`until` must be after `since`"));
        }
        let filter = skypanel_store::audit::Filter {
            actor_user_id: actor_user_id.0,
            actor_node_id: actor_node_id.0,
            action: action.0.as_deref(),
            target_type: target_type.0.as_deref(),
            target_id: target_id.0,
            since: since.0,
            until: until.0,
        };
        let mut conn = self.state.store().conn().await?;
        let list =
            skypanel_store::audit::list(&mut conn, &filter, super::page(limit.0, offset.0)).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Starts the renewal of every certificate expiring within `within_days`
    /// (the daily run uses `SKYPANEL_SSL_RENEW_BEFORE_DAYS`). Each renewal
    /// gets 3 attempts; the current certificate serves until a new one is
    /// installed. 409 when the platform issues no certificates.
    #[oai(
        path = "/admin/paas/ssl/renew",
        method = "post",
        operation_id = "adminRenewCertificates"
    )]
    async fn renew(
        &self,
        request: &Request,
        auth: AdminAuth,
        body: JsonBody<RenewalRequest>,
    ) -> ApiResult<Json<RenewalResult>> {
        if !self.state.settings().https {
            return Err(ApiError::conflict(
                "https_disabled",
                "this platform does not issue certificates (SKYPANEL_ACME_DIRECTORY is not set)",
                None,
            ));
        }
        let within = match body.0.within_days {
            Some(days) if (1..=36500).contains(&days) => {
                std::time::Duration::from_secs(u64::from(days) * 24 * 3600)
            }
            Some(_) => {
                return Err(ApiError::invalid("within_days", "between 1 and 36500 days"));
            }
            None => self.state.settings().renew_before,
        };
        let started = skypanel_jobs::request_renewals(
            self.state.store(),
            self.state.queues()?,
            self.state.now(),
            within,
        )
        .await?;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, auth.0.user_id, "ssl.renew")
            .with(serde_json::json!({"started": started}))
            .write(&mut conn)
            .await;
        Ok(Json(RenewalResult {
            started: i64::try_from(started).unwrap_or(i64::MAX),
        }))
    }
}
