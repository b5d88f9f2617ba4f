//! Hourly billing. An apalis-cron tick at the top of every hour (and one at
//! start) pushes a `billing` job for every complete hour not billed yet,
//! keyed by the hour (`billing:2026-11-22T10`), so several control planes
//! push it once and hours missed while the control plane was down are
//! billed on its next run. The job charges the hour in batches of customers
//! (see `store::billing`): one transaction per batch, with the unique
//! (resource, hour) record key making any second run a no-op, then asks each
//! wallet it left below zero to act (notice, suspension after the grace
//! period). The notices wallets write are pushed on the `notify` queue
//! (delivered by `webhooks`).

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use apalis_cron::Tick;
use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use skypanel_actors::Orchestrator;
use skypanel_domain::billing::Period;
use skypanel_store::{Store, billing, notifications};

use crate::Queues;

/// Customers charged per transaction.
pub const BATCH: i64 = 2000;
/// Batches charged at once.
const CONCURRENT_BATCHES: usize = 2;
/// Runs of a billing job before it gives up (the hour stays due: a later
/// tick pushes it again once its idempotency key has expired).
const JOB_ATTEMPTS: usize = 5;
/// The most hours one tick queues (a control plane down for over a month
/// catches up over several ticks).
const CATCH_UP_HOURS: usize = 24 * 31;

/// One billing hour to charge, by its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingJob {
    pub period_start: DateTime<Utc>,
}

/// What billing one hour did.
#[derive(Debug, Clone, Default)]
pub struct HourBilled {
    /// Billing records written now (0 when the hour was billed before).
    pub records: usize,
    /// Customers debited now.
    pub debited: usize,
    /// The sum of the debits now.
    pub charged: BigDecimal,
}

/// What the billing jobs work with.
#[derive(Clone)]
pub(crate) struct BillingContext {
    pub orchestrator: Orchestrator,
    pub store: Store,
    pub queues: Queues,
}

/// Why billing stopped short.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Store(#[from] skypanel_store::Error),
}

/// Charges one complete hour to every customer that used something in it.
/// Safe to run again or concurrently: what is billed stays billed once.
pub async fn bill_hour(
    orchestrator: &Orchestrator,
    store: &Store,
    period: Period,
) -> Result<HourBilled, BillingError> {
    // The customers, in batches by id; two batches are charged at a time
    // (disjoint customers: their transactions do not wait for each other).
    let mut batches = Vec::new();
    let mut after = 0;
    let mut conn = store.conn().await?;
    loop {
        let customers = billing::customers_with_usage(&mut conn, period, after, BATCH).await?;
        let Some(&last) = customers.last() else {
            break;
        };
        after = last;
        batches.push(customers);
    }
    drop(conn);
    let mut charging = futures::stream::iter(batches)
        .map(|customers| async move {
            let mut conn = store.conn().await?;
            let now = orchestrator.context().now();
            billing::charge(&mut conn, period, &customers, now).await
        })
        .buffer_unordered(CONCURRENT_BATCHES);
    let mut done = HourBilled::default();
    let mut negative = Vec::new();
    while let Some(charged) = charging.next().await {
        let charged = charged?;
        done.records += charged.records;
        done.debited += charged.balances.len();
        done.charged += charged.total;
        negative.extend(
            charged
                .balances
                .into_iter()
                .filter(|(_, b)| *b < 0)
                .map(|(u, _)| u),
        );
    }
    drop(charging);
    for user_id in negative {
        if let Err(err) = orchestrator.wallet_check(user_id).await {
            tracing::warn!(user_id, error = %err, "cannot check a wallet below zero; its actor checks again on start");
        }
    }
    let mut conn = store.conn().await?;
    let now = orchestrator.context().now();
    billing::finish_run(&mut conn, period, done.records, &done.charged, now).await?;
    tracing::info!(period = %period.start(), records = done.records, debited = done.debited, charged = %done.charged, "billing hour done");
    Ok(done)
}

/// The `billing` queue's handler.
pub(crate) async fn handle(
    job: BillingJob,
    attempt: Attempt,
    ctx: Data<BillingContext>,
) -> Result<(), BoxDynError> {
    let period = Period::starting(job.period_start)
        .map_err(|e| AbortError::new(format!("a billing job for a bad hour: {e}")))?;
    let started = std::time::Instant::now();
    let billed = bill_hour(&ctx.orchestrator, &ctx.store, period).await;
    let outcome = if billed.is_ok() {
        "succeeded"
    } else {
        "failed"
    };
    skypanel_protocol::metrics::global().observe(
        "skypanel_billing_run_duration_seconds",
        "How long charging one hour took, by outcome.",
        &[("outcome", outcome)],
        started.elapsed().as_secs_f64(),
    );
    match billed {
        Ok(_) => {
            push_notices(&ctx.store, &ctx.queues).await;
            Ok(())
        }
        Err(err) if attempt.current() < JOB_ATTEMPTS => {
            tracing::warn!(period = %period.start(), error = %err, "billing job failed; it will run again");
            Err(err.to_string().into())
        }
        Err(err) => {
            tracing::error!(period = %period.start(), error = %err, "billing job gave up; the next tick queues it again");
            Err(AbortError::new(err.to_string()).into())
        }
    }
}

/// The cron tick's handler: queues every hour that is due.
pub(crate) async fn tick(_tick: Tick, ctx: Data<BillingContext>) -> Result<(), BoxDynError> {
    queue_due_hours(&ctx).await.map(|_| ())
}

/// Queues a job for every complete hour without a finished run.
pub(crate) async fn queue_due_hours(ctx: &BillingContext) -> Result<usize, BoxDynError> {
    let now = ctx.orchestrator.context().now();
    let mut conn = ctx.store.conn().await?;
    let due = billing::hours_due(&mut conn, now, CATCH_UP_HOURS).await?;
    drop(conn);
    for period in &due {
        ctx.queues.push_billing(*period).await?;
    }
    if !due.is_empty() {
        tracing::info!(hours = due.len(), first = %due[0].start(), "billing hours queued");
    }
    Ok(due.len())
}

/// Pushes every undelivered notice on the `notify` queue (once each).
pub(crate) async fn push_notices(store: &Store, queues: &Queues) {
    let pending = match store.conn().await {
        Ok(mut conn) => notifications::undelivered(&mut conn, 1000).await,
        Err(err) => Err(err),
    };
    match pending {
        Ok(list) => {
            for notice in list {
                if let Err(err) = queues.push_notice(notice.id).await {
                    tracing::warn!(notification_id = notice.id, error = %err, "cannot queue a notice");
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot look for undelivered notices"),
    }
}
