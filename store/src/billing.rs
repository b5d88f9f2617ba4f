//! Hourly billing in PostgreSQL: one billing hour charged for a batch of
//! customers in one transaction. Their wallets are locked first (the same
//! row lock every other balance change takes), then each resource that ran
//! in the hour gets its billing record and each wallet one ledger debit for
//! the sum, all or nothing. The unique (resource, hour) key on the records
//! makes a second run, a concurrent run or a retried job charge nothing again.

use std::collections::{BTreeMap, HashMap, HashSet};

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::dsl::{max, min, sum};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Numeric, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use skypanel_domain::billing::{Period, Stretch, capped_charge, hour_usage, next_month_start};

use crate::schema::{paas_billing_records, paas_billing_runs, paas_plans, paas_usage, wallets};
use crate::wallets::Wallet;
use crate::{Conn, Error, Page, Result};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_billing_records, check_for_backend(diesel::pg::Pg))]
pub struct BillingRecord {
    pub id: i64,
    pub user_id: i64,
    pub resource_type: String,
    pub resource_id: i64,
    pub plan_id: i64,
    pub instance_count: i32,
    pub hourly_rate: BigDecimal,
    pub hours_used: BigDecimal,
    pub total_cost: BigDecimal,
    pub billing_period_start: DateTime<Utc>,
    pub billing_period_end: DateTime<Utc>,
    pub wallet_transaction_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// What charging one batch of customers for one hour did.
#[derive(Debug, Default, Clone)]
pub struct Charged {
    /// Billing records written (resources that ran and were not billed yet).
    pub records: usize,
    /// The sum of the debits.
    pub total: BigDecimal,
    /// Customers debited, with their balance afterwards.
    pub balances: Vec<(i64, BigDecimal)>,
}

/// A billing record about to be written.
struct NewRecord {
    user_id: i64,
    resource_type: String,
    resource_id: i64,
    plan_id: i64,
    instance_count: i32,
    hourly_rate: BigDecimal,
    hours_used: BigDecimal,
    total_cost: BigDecimal,
}

type Resource = (String, i64);

/// A usage interval with its plan's prices: user, type, id, start, end,
/// instances, plan, hourly rate, monthly price.
type UsageRow = (
    i64,
    String,
    i64,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    i32,
    i64,
    BigDecimal,
    BigDecimal,
);

/// Customers with usage in the hour, after `after`, `limit` at most, by id.
pub async fn customers_with_usage(
    conn: &mut Conn,
    period: Period,
    after: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    Ok(paas_usage::table
        .filter(paas_usage::started_at.lt(period.end()))
        .filter(
            paas_usage::ended_at
                .is_null()
                .or(paas_usage::ended_at.gt(period.start())),
        )
        .filter(paas_usage::user_id.gt(after))
        .select(paas_usage::user_id)
        .distinct()
        .order(paas_usage::user_id)
        .limit(limit)
        .load(conn)
        .await?)
}

/// Charges `customers` for the hour: records and debits in one transaction.
/// `at` is now (a wallet that goes below zero is negative since then).
pub async fn charge(
    conn: &mut Conn,
    period: Period,
    customers: &[i64],
    at: DateTime<Utc>,
) -> Result<Charged> {
    if customers.is_empty() {
        return Ok(Charged::default());
    }
    conn.transaction(async |conn| charge_in(conn, period, customers, at).await)
        .await
}

async fn charge_in(
    conn: &mut Conn,
    period: Period,
    customers: &[i64],
    at: DateTime<Utc>,
) -> Result<Charged> {
    // 1. Every customer's wallet, locked in id order (no deadlock with another batch).
    let missing: Vec<_> = customers.iter().map(|&u| wallets::user_id.eq(u)).collect();
    diesel::insert_into(wallets::table)
        .values(missing)
        .on_conflict(wallets::user_id)
        .do_nothing()
        .execute(conn)
        .await?;
    let locked: Vec<Wallet> = wallets::table
        .filter(wallets::user_id.eq_any(customers))
        .order(wallets::id)
        .for_update()
        .select(Wallet::as_select())
        .load(conn)
        .await?;

    // 2. What ran in the hour, minus what is billed already.
    let rows: Vec<UsageRow> = paas_usage::table
        .inner_join(paas_plans::table)
        .filter(paas_usage::user_id.eq_any(customers))
        .filter(paas_usage::started_at.lt(period.end()))
        .filter(
            paas_usage::ended_at
                .is_null()
                .or(paas_usage::ended_at.gt(period.start())),
        )
        .select((
            paas_usage::user_id,
            paas_usage::resource_type,
            paas_usage::resource_id,
            paas_usage::started_at,
            paas_usage::ended_at,
            paas_usage::instances,
            paas_usage::plan_id,
            paas_plans::hourly_rate,
            paas_plans::monthly_price,
        ))
        .load(conn)
        .await?;
    let billed: HashSet<Resource> = paas_billing_records::table
        .filter(paas_billing_records::user_id.eq_any(customers))
        .filter(paas_billing_records::billing_period_start.eq(period.start()))
        .select((
            paas_billing_records::resource_type,
            paas_billing_records::resource_id,
        ))
        .load::<Resource>(conn)
        .await?
        .into_iter()
        .collect();
    let mut ran: BTreeMap<Resource, (i64, Vec<Stretch>)> = BTreeMap::new();
    for (user_id, kind, id, started_at, ended_at, instances, plan_id, rate, price) in rows {
        let key = (kind, id);
        if billed.contains(&key) {
            continue;
        }
        ran.entry(key)
            .or_insert_with(|| (user_id, Vec::new()))
            .1
            .push(Stretch {
                started_at,
                ended_at,
                instances,
                plan_id,
                hourly_rate: rate,
                monthly_price: price,
            });
    }
    if ran.is_empty() {
        return Ok(Charged::default());
    }

    // 3. The month's other charges of these resources (for the cap).
    let month = period.month_start();
    let month_rows: Vec<(String, i64, Option<BigDecimal>, Option<i32>)> =
        paas_billing_records::table
            .filter(paas_billing_records::user_id.eq_any(customers))
            .filter(paas_billing_records::billing_period_start.ge(month))
            .filter(paas_billing_records::billing_period_start.lt(next_month_start(month)))
            .filter(paas_billing_records::billing_period_start.ne(period.start()))
            .group_by((
                paas_billing_records::resource_type,
                paas_billing_records::resource_id,
            ))
            .select((
                paas_billing_records::resource_type,
                paas_billing_records::resource_id,
                sum(paas_billing_records::total_cost),
                max(paas_billing_records::instance_count),
            ))
            .load(conn)
            .await?;
    let month_so_far: HashMap<Resource, (BigDecimal, i32)> = month_rows
        .into_iter()
        .map(|(kind, id, total, peak)| ((kind, id), (total.unwrap_or_default(), peak.unwrap_or(0))))
        .collect();

    // 4. The records.
    let mut records = Vec::with_capacity(ran.len());
    for ((kind, id), (user_id, stretches)) in ran {
        let Some(usage) = hour_usage(period, &stretches) else {
            continue;
        };
        let (charged, month_peak) = month_so_far
            .get(&(kind.clone(), id))
            .cloned()
            .unwrap_or_default();
        let peak = usage.peak_instances.max(month_peak);
        let total = capped_charge(&usage.raw, &usage.monthly_price, peak, &charged);
        records.push(NewRecord {
            user_id,
            resource_type: kind,
            resource_id: id,
            plan_id: usage.plan_id,
            instance_count: usage.peak_instances,
            hourly_rate: usage.hourly_rate,
            hours_used: usage.hours_used,
            total_cost: total,
        });
    }

    // 5. One debit per wallet for the hour's sum, then the records pointing
    //    at it. Each statement takes whole columns as arrays (unnest): one
    //    round trip for thousands of rows.
    let mut per_customer: BTreeMap<i64, BigDecimal> = BTreeMap::new();
    for record in &records {
        *per_customer.entry(record.user_id).or_default() += &record.total_cost;
    }
    let by_user: HashMap<i64, &Wallet> = locked.iter().map(|w| (w.user_id, w)).collect();
    let description = format!(
        "Usage {} to {} UTC",
        period.start().format("%Y-%m-%d %H:%M"),
        period.end().format("%H:%M")
    );
    let mut debit = Debits::default();
    let mut balances = Vec::new();
    let mut total = BigDecimal::from(0);
    for (user_id, amount) in per_customer {
        if amount <= 0 {
            continue;
        }
        let wallet = by_user
            .get(&user_id)
            .ok_or_else(|| Error::Corrupt(format!("no wallet for user {user_id}")))?;
        let after = &wallet.balance - &amount;
        debit.wallet_ids.push(wallet.id);
        debit.amounts.push(amount.clone());
        debit.after.push(after.clone());
        debit.references.push(format!("{}:{user_id}", period.key()));
        balances.push((user_id, after));
        total += amount;
    }
    let entries: Vec<LedgerId> = diesel::sql_query(
        "INSERT INTO wallet_transactions (wallet_id, kind, amount, balance_after, description, reference) \
         SELECT w, 'debit', a, b, $5, r FROM unnest($1::bigint[], $2::numeric[], $3::numeric[], $4::text[]) AS v(w, a, b, r) \
         RETURNING id, wallet_id",
    )
    .bind::<Array<BigInt>, _>(&debit.wallet_ids)
    .bind::<Array<Numeric>, _>(&debit.amounts)
    .bind::<Array<Numeric>, _>(&debit.after)
    .bind::<Array<Text>, _>(&debit.references)
    .bind::<Text, _>(&description)
    .load(conn)
    .await?;
    diesel::sql_query(
        "UPDATE wallets AS w SET balance = v.balance, \
           negative_since = CASE WHEN v.balance < 0 THEN COALESCE(w.negative_since, $3) END, \
           negative_noticed = (v.balance < 0 AND w.negative_noticed) \
         FROM unnest($1::bigint[], $2::numeric[]) AS v(id, balance) WHERE w.id = v.id",
    )
    .bind::<Array<BigInt>, _>(&debit.wallet_ids)
    .bind::<Array<Numeric>, _>(&debit.after)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    let wallet_of_user: HashMap<i64, i64> = locked.iter().map(|w| (w.id, w.user_id)).collect();
    let entry_of_user: HashMap<i64, i64> = entries
        .iter()
        .filter_map(|e| wallet_of_user.get(&e.wallet_id).map(|&u| (u, e.id)))
        .collect();
    let mut columns = RecordColumns::default();
    for r in &records {
        columns.user_ids.push(r.user_id);
        columns.types.push(r.resource_type.clone());
        columns.ids.push(r.resource_id);
        columns.plans.push(r.plan_id);
        columns.instances.push(r.instance_count);
        columns.rates.push(r.hourly_rate.clone());
        columns.hours.push(r.hours_used.clone());
        columns.costs.push(r.total_cost.clone());
        columns.entries.push(entry_of_user.get(&r.user_id).copied());
    }
    let written = diesel::sql_query(
        "INSERT INTO paas_billing_records (user_id, resource_type, resource_id, plan_id, instance_count, \
           hourly_rate, hours_used, total_cost, billing_period_start, billing_period_end, wallet_transaction_id) \
         SELECT u, t, i, p, n, r, h, c, $10, $11, e \
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::int[], $6::numeric[], \
                     $7::numeric[], $8::numeric[], $9::bigint[]) AS v(u, t, i, p, n, r, h, c, e) \
         ON CONFLICT DO NOTHING",
    )
    .bind::<Array<BigInt>, _>(&columns.user_ids)
    .bind::<Array<Text>, _>(&columns.types)
    .bind::<Array<BigInt>, _>(&columns.ids)
    .bind::<Array<BigInt>, _>(&columns.plans)
    .bind::<Array<Integer>, _>(&columns.instances)
    .bind::<Array<Numeric>, _>(&columns.rates)
    .bind::<Array<Numeric>, _>(&columns.hours)
    .bind::<Array<Numeric>, _>(&columns.costs)
    .bind::<Array<Nullable<BigInt>>, _>(&columns.entries)
    .bind::<Timestamptz, _>(period.start())
    .bind::<Timestamptz, _>(period.end())
    .execute(conn)
    .await?;
    // Under the wallets' locks nobody else bills these customers, so every
    // record is new; a conflict means the debits above are wrong: undo all.
    if written != records.len() {
        return Err(Error::conflict(
            None,
            "another run billed these customers for the hour at the same time",
        ));
    }
    tracing::debug!(period = %period.start(), records = written, debits = entries.len(), "hour charged");
    Ok(Charged {
        records: written,
        total,
        balances,
    })
}

/// The debits of one batch, column by column.
#[derive(Default)]
struct Debits {
    wallet_ids: Vec<i64>,
    amounts: Vec<BigDecimal>,
    after: Vec<BigDecimal>,
    references: Vec<String>,
}

/// The billing records of one batch, column by column.
#[derive(Default)]
struct RecordColumns {
    user_ids: Vec<i64>,
    types: Vec<String>,
    ids: Vec<i64>,
    plans: Vec<i64>,
    instances: Vec<i32>,
    rates: Vec<BigDecimal>,
    hours: Vec<BigDecimal>,
    costs: Vec<BigDecimal>,
    entries: Vec<Option<i64>>,
}

#[derive(QueryableByName)]
struct LedgerId {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    wallet_id: i64,
}

/// Records that the hour's job finished (charging it again would do nothing).
pub async fn finish_run(
    conn: &mut Conn,
    period: Period,
    records: usize,
    charged: &BigDecimal,
    at: DateTime<Utc>,
) -> Result<()> {
    diesel::insert_into(paas_billing_runs::table)
        .values((
            paas_billing_runs::period_start.eq(period.start()),
            paas_billing_runs::records.eq(i32::try_from(records).unwrap_or(i32::MAX)),
            paas_billing_runs::charged.eq(charged),
            paas_billing_runs::finished_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// How far back the hours due are looked for.
pub const LOOKBACK_HOURS: i64 = 62 * 24;

/// The hours that have ended by `now` and have no finished run, from the
/// oldest usage (at most [`LOOKBACK_HOURS`] back) to the last complete hour,
/// oldest first, at most `limit`. An hour whose job gave up, or that was
/// skipped while a later one ran, stays due until it has run.
pub async fn hours_due(conn: &mut Conn, now: DateTime<Utc>, limit: usize) -> Result<Vec<Period>> {
    let oldest: Option<DateTime<Utc>> = paas_usage::table
        .select(min(paas_usage::started_at))
        .first(conn)
        .await?;
    let Some(oldest) = oldest else {
        return Ok(Vec::new());
    };
    let last = Period::last_complete(now);
    let horizon = last.start() - chrono::Duration::hours(LOOKBACK_HOURS);
    let first = Period::containing(oldest.max(horizon));
    let ran: HashSet<DateTime<Utc>> = paas_billing_runs::table
        .filter(paas_billing_runs::period_start.ge(first.start()))
        .filter(paas_billing_runs::period_start.le(last.start()))
        .select(paas_billing_runs::period_start)
        .load::<DateTime<Utc>>(conn)
        .await?
        .into_iter()
        .collect();
    let mut due = Vec::new();
    let mut hour = first;
    while hour <= last && due.len() < limit {
        if !ran.contains(&hour.start()) {
            due.push(hour);
        }
        hour = hour.next();
    }
    Ok(due)
}

/// A customer's billing records, newest hour first, optionally within `[from, to)`.
pub async fn list_records(
    conn: &mut Conn,
    user_id: i64,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    page: Page,
) -> Result<Vec<BillingRecord>> {
    let mut query = paas_billing_records::table
        .filter(paas_billing_records::user_id.eq(user_id))
        .into_boxed();
    if let Some(from) = from {
        query = query.filter(paas_billing_records::billing_period_start.ge(from));
    }
    if let Some(to) = to {
        query = query.filter(paas_billing_records::billing_period_start.lt(to));
    }
    Ok(query
        .order((
            paas_billing_records::billing_period_start.desc(),
            paas_billing_records::id.desc(),
        ))
        .limit(page.limit)
        .offset(page.offset)
        .select(BillingRecord::as_select())
        .load(conn)
        .await?)
}

/// A customer's charges per resource within `[from, to)`: (type, id, hours, cost).
pub async fn charges_per_resource(
    conn: &mut Conn,
    user_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, i64, BigDecimal, BigDecimal)>> {
    let rows: Vec<(String, i64, Option<BigDecimal>, Option<BigDecimal>)> =
        paas_billing_records::table
            .filter(paas_billing_records::user_id.eq(user_id))
            .filter(paas_billing_records::billing_period_start.ge(from))
            .filter(paas_billing_records::billing_period_start.lt(to))
            .group_by((
                paas_billing_records::resource_type,
                paas_billing_records::resource_id,
            ))
            .select((
                paas_billing_records::resource_type,
                paas_billing_records::resource_id,
                sum(paas_billing_records::hours_used),
                sum(paas_billing_records::total_cost),
            ))
            .order((
                paas_billing_records::resource_type,
                paas_billing_records::resource_id,
            ))
            .load(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(kind, id, hours, cost)| {
            (
                kind,
                id,
                hours.unwrap_or_default(),
                cost.unwrap_or_default(),
            )
        })
        .collect())
}

/// Revenue per billing hour within `[from, to)`, newest first: (hour, records, total).
pub async fn revenue_per_hour(
    conn: &mut Conn,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, i64, BigDecimal)>> {
    let rows: Vec<(DateTime<Utc>, i64, Option<BigDecimal>)> = paas_billing_records::table
        .filter(paas_billing_records::billing_period_start.ge(from))
        .filter(paas_billing_records::billing_period_start.lt(to))
        .group_by(paas_billing_records::billing_period_start)
        .select((
            paas_billing_records::billing_period_start,
            diesel::dsl::count_star(),
            sum(paas_billing_records::total_cost),
        ))
        .order(paas_billing_records::billing_period_start.desc())
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(at, n, total)| (at, n, total.unwrap_or_default()))
        .collect())
}
