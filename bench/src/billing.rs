//! `skypanel-bench-billing`: bills one hour for many running resources and
//! prints the seconds it took and records per second, then runs the same
//! hour again (it must charge nothing) and prints that too. It fills its own
//! database: customers with credited wallets (ledger and balance agree) and
//! one open usage interval per resource, 1 to 3 instances, some started
//! within the hour. The hour is charged by the same code the `billing` job
//! runs (`skypanel_jobs::bill_hour`), with the actors running.
//!
//! `bench/billing.sh` creates a fresh database and runs this with the defaults.

use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use diesel_async::RunQueryDsl;
use skypanel_domain::billing::Period;
use skypanel_domain::secrets::SecretKey;
use skypanel_store::Store;

#[derive(Parser, Debug)]
struct Args {
    /// A database of its own (migrated, then filled).
    #[arg(long)]
    database_url: String,
    #[arg(long, default_value_t = 100_000)]
    resources: i64,
    #[arg(long, default_value_t = 20_000)]
    customers: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    skypanel_store::run_migrations(&args.database_url)
        .await
        .context("migrating the bench database")?;
    let store = Store::connect(&args.database_url, 8).context("connecting")?;
    let hour = Period::last_complete(chrono::Utc::now()).previous();
    let mut conn = store.conn().await?;
    let fill = Instant::now();
    let start = hour.start().to_rfc3339();
    for sql in [
        "INSERT INTO paas_plans (name, cpu_limit, memory_limit, storage_limit, monthly_price, hourly_rate) \
         VALUES ('bench', 250, 256, 1024, 20.00, 0.0137)"
            .to_string(),
        format!(
            "INSERT INTO users (email, password_hash, role) \
             SELECT 'bench' || g || '@example.com', 'x', 'customer' FROM generate_series(1, {}) g",
            args.customers
        ),
        "INSERT INTO wallets (user_id, balance) SELECT id, 1000 FROM users".to_string(),
        "INSERT INTO wallet_transactions (wallet_id, kind, amount, balance_after, description) \
         SELECT id, 'credit', 1000, 1000, 'bench credit' FROM wallets"
            .to_string(),
        format!(
            "INSERT INTO paas_usage (user_id, resource_type, resource_id, plan_id, instances, started_at) \
             SELECT u.id, 'application', g, (SELECT id FROM paas_plans LIMIT 1), 1 + g % 3, \
                    '{start}'::timestamptz - CASE WHEN g % 4 = 0 THEN interval '-17 minutes' ELSE interval '1 day' END \
             FROM generate_series(1, {}) g \
             JOIN users u ON u.id = (SELECT min(id) FROM users) + g % {}",
            args.resources, args.customers
        ),
        "ANALYZE".to_string(),
    ] {
        diesel::sql_query(sql).execute(&mut conn).await?;
    }
    drop(conn);
    println!(
        "filled {} resources of {} customers in {:.1} s",
        args.resources,
        args.customers,
        fill.elapsed().as_secs_f64()
    );

    let key = SecretKey::from_hex(&"ab".repeat(32))?;
    let ctx =
        skypanel_actors::Context::new(store.clone(), key, skypanel_actors::Settings::default());
    let orchestrator = skypanel_actors::Orchestrator::start(ctx).await?;

    let began = Instant::now();
    let first = skypanel_jobs::bill_hour(&orchestrator, &store, hour).await?;
    let took = began.elapsed().as_secs_f64();
    println!(
        "billed {}: {} records, {} wallets debited, {} charged in {:.2} s = {:.0} records/s (goal: under 5 s)",
        hour.start().format("%Y-%m-%d %H:00"),
        first.records,
        first.debited,
        first.charged,
        took,
        first.records as f64 / took
    );
    let began = Instant::now();
    let second = skypanel_jobs::bill_hour(&orchestrator, &store, hour).await?;
    println!(
        "the same hour again: {} records, {} charged in {:.2} s",
        second.records,
        second.charged,
        began.elapsed().as_secs_f64()
    );
    orchestrator.shutdown().await;
    anyhow::ensure!(
        first.records as i64 == args.resources,
        "every resource has its record"
    );
    anyhow::ensure!(second.records == 0, "the second run charges nothing");
    Ok(())
}
