//! `/api/paas/billing/*` and `/api/paas/notifications`: what a customer was
//! charged, what this month costs, and the notices about their balance.
//! (Billing an hour on demand is an admin operation, in `admin_platform`.)

use std::collections::HashMap;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use poem_openapi::OpenApi;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use skypanel_domain::billing::{Period, month_start, next_month_start};
use skypanel_domain::money::format_amount;
use skypanel_jobs::BillingError;
use skypanel_store::{apps, billing, catalog, notifications, usage};

use super::{Tag, page};
use crate::auth::BearerAuth;
use crate::dto::billing::*;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub struct BillingApi {
    pub state: AppState,
}

impl From<BillingError> for ApiError {
    fn from(err: BillingError) -> Self {
        match err {
            BillingError::Store(err) => err.into(),
        }
    }
}

#[OpenApi(tag = "Tag::Billing")]
impl BillingApi {
    /// The caller's billing records
    ///
    /// One record per resource and billing hour, newest first; `from` and
    /// `to` keep the hours that start within `[from, to)`.
    #[oai(
        path = "/paas/billing/records",
        method = "get",
        operation_id = "listBillingRecords"
    )]
    async fn records(
        &self,
        auth: BearerAuth,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<BillingRecordView>>> {
        if let (Some(from), Some(to)) = (from.0, to.0)
            && to <= from
        {
            return Err(ApiError::invalid("to", "`to` must be after `from`"));
        }
        let mut conn = self.state.store().conn().await?;
        let records = billing::list_records(
            &mut conn,
            auth.user_id(),
            from.0,
            to.0,
            page(limit.0, offset.0),
        )
        .await?;
        Ok(Json(records.into_iter().map(Into::into).collect()))
    }

    /// This month's usage and an estimate to its end
    ///
    /// Per resource: the instance-hours billed and charged this calendar
    /// month (UTC), what runs now, and what the month comes to if it keeps
    /// running like now (within each resource's monthly cap).
    #[oai(
        path = "/paas/billing/usage",
        method = "get",
        operation_id = "getBillingUsage"
    )]
    async fn usage(&self, auth: BearerAuth) -> ApiResult<Json<UsageReport>> {
        let now = self.state.now();
        let (start, end) = (month_start(now), next_month_start(now));
        let mut conn = self.state.store().conn().await?;
        let charged = billing::charges_per_resource(&mut conn, auth.user_id(), start, end).await?;
        let running = usage::open_for_owner(&mut conn, auth.user_id()).await?;
        let names: HashMap<i64, String> = apps::names_of_owner(&mut conn, auth.user_id())
            .await?
            .into_iter()
            .collect();
        let plans: HashMap<i64, catalog::Plan> = catalog::list_plans(&mut conn, false)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        // Whole hours from now to the end of the month (the current hour counts in full).
        let hours_left = BigDecimal::from((end - Period::containing(now).start()).num_hours());
        let mut rows: Vec<(String, i64, BigDecimal, BigDecimal)> = charged;
        for open in &running {
            if !rows
                .iter()
                .any(|r| r.0 == open.resource_type && r.1 == open.resource_id)
            {
                rows.push((
                    open.resource_type.clone(),
                    open.resource_id,
                    BigDecimal::from(0),
                    BigDecimal::from(0),
                ));
            }
        }
        let mut total_charged = BigDecimal::from(0);
        let mut total_estimate = BigDecimal::from(0);
        let mut resources = Vec::with_capacity(rows.len());
        for (kind, id, hours, cost) in rows {
            let open = running
                .iter()
                .find(|o| o.resource_type == kind && o.resource_id == id);
            let plan = open.and_then(|o| plans.get(&o.plan_id));
            let estimate = match (open, plan) {
                (Some(open), Some(plan)) => {
                    let instances = BigDecimal::from(open.instances);
                    let more = &plan.hourly_rate * &instances * &hours_left;
                    let cap = &plan.monthly_price * &instances;
                    (&cost + more).min(cap.max(cost.clone()))
                }
                _ => cost.clone(),
            };
            total_charged += &cost;
            total_estimate += &estimate;
            resources.push(ResourceUsage {
                name: (kind == usage::APPLICATION)
                    .then(|| names.get(&id).cloned())
                    .flatten(),
                resource_type: kind,
                resource_id: id,
                hours_billed: format_amount(&hours, 6),
                charged: format_amount(&cost, 4),
                running_instances: open.map_or(0, |o| o.instances),
                hourly_rate: plan.map(|p| format_amount(&p.hourly_rate, 4)),
                estimated_month_total: format_amount(&estimate, 2),
            });
        }
        Ok(Json(UsageReport {
            month_start: start,
            month_end: end,
            resources,
            charged_this_month: format_amount(&total_charged, 4),
            estimated_month_total: format_amount(&total_estimate, 2),
        }))
    }

    /// The caller's notices
    ///
    /// Balance below zero, suspension and resume notices, newest first.
    #[oai(
        path = "/paas/notifications",
        method = "get",
        operation_id = "listNotifications"
    )]
    async fn notifications(
        &self,
        auth: BearerAuth,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<NotificationView>>> {
        let mut conn = self.state.store().conn().await?;
        let list = notifications::list(&mut conn, auth.user_id(), page(limit.0, offset.0)).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }
}
