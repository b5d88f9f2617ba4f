//! Billing records, this month's usage, customer notices and billing runs.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use skypanel_domain::money::format_amount;
use skypanel_store::billing::BillingRecord;
use skypanel_store::notifications::Notification;

#[derive(Object, Debug)]
pub struct BillingRecordView {
    pub id: i64,
    /// `application` or `database`.
    pub resource_type: String,
    pub resource_id: i64,
    pub plan_id: i64,
    /// The most instances that ran at once in the hour.
    pub instance_count: i32,
    /// The plan's price per instance-hour.
    pub hourly_rate: String,
    /// Instance-hours used in the hour (instance-seconds / 3600).
    pub hours_used: String,
    /// What the hour cost (after the monthly cap).
    pub total_cost: String,
    pub billing_period_start: DateTime<Utc>,
    pub billing_period_end: DateTime<Utc>,
    /// The ledger debit that charged it (one per wallet and hour).
    #[oai(nullable)]
    pub wallet_transaction_id: Option<i64>,
}

impl From<BillingRecord> for BillingRecordView {
    fn from(r: BillingRecord) -> Self {
        Self {
            id: r.id,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            plan_id: r.plan_id,
            instance_count: r.instance_count,
            hourly_rate: format_amount(&r.hourly_rate, 4),
            hours_used: format_amount(&r.hours_used, 6),
            total_cost: format_amount(&r.total_cost, 4),
            billing_period_start: r.billing_period_start,
            billing_period_end: r.billing_period_end,
            wallet_transaction_id: r.wallet_transaction_id,
        }
    }
}

#[derive(Object, Debug)]
pub struct ResourceUsage {
    pub resource_type: String,
    pub resource_id: i64,
    /// The application's name, when it still exists.
    #[oai(nullable)]
    pub name: Option<String>,
    /// Instance-hours billed this month.
    pub hours_billed: String,
    /// Charged this month so far.
    pub charged: String,
    /// Instances running now (billed from now on).
    pub running_instances: i32,
    /// Price per instance-hour now.
    #[oai(nullable)]
    pub hourly_rate: Option<String>,
    /// What it costs by the end of the month if it keeps running like now
    /// (charged so far plus the rest of the month, within the monthly cap).
    pub estimated_month_total: String,
}

#[derive(Object, Debug)]
pub struct UsageReport {
    pub month_start: DateTime<Utc>,
    pub month_end: DateTime<Utc>,
    pub resources: Vec<ResourceUsage>,
    pub charged_this_month: String,
    pub estimated_month_total: String,
}

#[derive(Object, Debug)]
pub struct NotificationView {
    pub id: i64,
    /// `balance_negative`, `suspended`, `resumed`, `ssl_failed`,
    /// `ssl_renewal_failed`, `backup_failed`, `restore_failed`,
    /// `build_succeeded`, `build_failed`, `app_crashed`, `app_moved` (its
    /// node went offline; it runs on another), `app_unplaced` (its node
    /// went offline and no other can take it yet), `no_room` (a deploy waits
    /// for a node with room, or gave up) or `release_failed` (a release's
    /// release phase or rollout failed; the previous release serves).
    pub kind: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    /// When the `notify` queue handed it to the customer's webhooks.
    #[oai(nullable)]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        Self {
            id: n.id,
            kind: n.kind,
            message: n.message,
            created_at: n.created_at,
            delivered_at: n.delivered_at,
        }
    }
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct BillingRunRequest {
    /// The start of a complete hour (UTC, on the hour): `"2026-11-22T10:00:00Z"`.
    pub period_start: DateTime<Utc>,
}

#[derive(Object, Debug)]
pub struct BillingRunResult {
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// Billing records written by this run (0 when the hour was billed before).
    pub records: i64,
    /// Wallets debited by this run.
    pub debited: i64,
    /// The sum of this run's debits.
    pub charged: String,
}

#[derive(Object, Debug)]
pub struct HourRevenue {
    pub period_start: DateTime<Utc>,
    pub records: i64,
    pub total: String,
}
