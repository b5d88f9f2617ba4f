//! The migrated database against the code: `schema.rs` names exactly the
//! columns the migrations create, every foreign key and status column is
//! indexed, and the down migrations undo the up migrations.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

use std::collections::BTreeSet;

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use skypanel_store::schema::*;
use skypanel_store::testing::TestDb;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
}

async fn pairs(conn: &mut AsyncPgConnection, sql: &str) -> Vec<(String, String)> {
    diesel::sql_query(sql)
        .load::<Row>(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.a, r.b))
        .collect()
}

/// Column names diesel selects for a table, read from the SQL it generates.
fn diesel_columns<Q: diesel::query_builder::QueryFragment<Pg>>(
    table: &str,
    query: Q,
) -> BTreeSet<(String, String)> {
    let sql = diesel::debug_query::<Pg, _>(&query).to_string();
    let select = sql.split(" FROM ").next().unwrap();
    select
        .trim_start_matches("SELECT ")
        .split(", ")
        .map(|col| {
            let name = col.rsplit('.').next().unwrap().trim_matches('"');
            (table.to_string(), name.to_string())
        })
        .collect()
}

#[tokio::test]
async fn schema_rs_matches_the_migrated_database() {
    let db = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let mut expected = BTreeSet::new();
    expected.extend(diesel_columns(
        "users",
        users::table.select(users::all_columns),
    ));
    expected.extend(diesel_columns(
        "api_tokens",
        api_tokens::table.select(api_tokens::all_columns),
    ));
    expected.extend(diesel_columns(
        "wallets",
        wallets::table.select(wallets::all_columns),
    ));
    expected.extend(diesel_columns(
        "wallet_transactions",
        wallet_transactions::table.select(wallet_transactions::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_runtimes",
        paas_runtimes::table.select(paas_runtimes::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_plans",
        paas_plans::table.select(paas_plans::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_nodes",
        paas_nodes::table.select(paas_nodes::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_applications",
        paas_applications::table.select(paas_applications::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_builds",
        paas_builds::table.select(paas_builds::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_releases",
        paas_releases::table.select(paas_releases::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_app_requests",
        paas_app_requests::table.select(paas_app_requests::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_environment_vars",
        paas_environment_vars::table.select(paas_environment_vars::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_domains",
        paas_domains::table.select(paas_domains::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_databases",
        paas_databases::table.select(paas_databases::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_database_backups",
        paas_database_backups::table.select(paas_database_backups::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_database_restores",
        paas_database_restores::table.select(paas_database_restores::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_kept_volumes",
        paas_kept_volumes::table.select(paas_kept_volumes::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_app_databases",
        paas_app_databases::table.select(paas_app_databases::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_tasks",
        paas_tasks::table.select(paas_tasks::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_billing_records",
        paas_billing_records::table.select(paas_billing_records::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_usage",
        paas_usage::table.select(paas_usage::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_billing_runs",
        paas_billing_runs::table.select(paas_billing_runs::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_notifications",
        paas_notifications::table.select(paas_notifications::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_webhooks",
        paas_webhooks::table.select(paas_webhooks::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_webhook_deliveries",
        paas_webhook_deliveries::table.select(paas_webhook_deliveries::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_acme_accounts",
        paas_acme_accounts::table.select(paas_acme_accounts::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_database_engines",
        paas_database_engines::table.select(paas_database_engines::all_columns),
    ));
    expected.extend(diesel_columns(
        "audit_log",
        audit_log::table.select(audit_log::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_task_logs",
        paas_task_logs::table.select(paas_task_logs::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_instances",
        paas_instances::table.select(paas_instances::all_columns),
    ));
    expected.extend(diesel_columns(
        "console_sessions",
        console_sessions::table.select(console_sessions::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_runs",
        paas_runs::table.select(paas_runs::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_github_app",
        paas_github_app::table.select(paas_github_app::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_github_states",
        paas_github_states::table.select(paas_github_states::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_github_installations",
        paas_github_installations::table.select(paas_github_installations::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_app_github",
        paas_app_github::table.select(paas_app_github::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_github_deliveries",
        paas_github_deliveries::table.select(paas_github_deliveries::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_database_health",
        paas_database_health::table.select(paas_database_health::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_database_moves",
        paas_database_moves::table.select(paas_database_moves::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_replicas",
        paas_replicas::table.select(paas_replicas::all_columns),
    ));
    expected.extend(diesel_columns(
        "paas_shard_leases",
        paas_shard_leases::table.select(paas_shard_leases::all_columns),
    ));

    let actual: BTreeSet<(String, String)> = pairs(
        &mut conn,
        "SELECT table_name::text AS a, column_name::text AS b FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
    )
    .await
    .into_iter()
    .collect();
    let missing: Vec<_> = actual.difference(&expected).collect();
    let extra: Vec<_> = expected.difference(&actual).collect();
    assert!(
        missing.is_empty(),
        "columns in the database but not in schema.rs: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "columns in schema.rs but not in the database: {extra:?}"
    );
}

#[tokio::test]
async fn every_foreign_key_and_status_column_is_indexed() {
    let db = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let unindexed_fks = pairs(
        &mut conn,
        "SELECT c.conrelid::regclass::text AS a, att.attname::text AS b
           FROM pg_constraint c
           JOIN pg_attribute att ON att.attrelid = c.conrelid AND att.attnum = c.conkey[1]
          WHERE c.contype = 'f'
            AND NOT EXISTS (SELECT 1 FROM pg_index i
                             WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])",
    )
    .await;
    assert!(
        unindexed_fks.is_empty(),
        "foreign keys without an index: {unindexed_fks:?}"
    );
    let unindexed_status = pairs(
        &mut conn,
        "SELECT col.table_name::text AS a, col.column_name::text AS b
           FROM information_schema.columns col
          WHERE col.table_schema = 'public' AND col.column_name IN ('status', 'ssl_status')
            AND NOT EXISTS (SELECT 1 FROM pg_index i
                              JOIN pg_attribute att ON att.attrelid = i.indrelid AND att.attnum = i.indkey[0]
                             WHERE i.indrelid = col.table_name::regclass AND att.attname = col.column_name)",
    )
    .await;
    assert!(
        unindexed_status.is_empty(),
        "status columns without an index: {unindexed_status:?}"
    );
}

#[tokio::test]
async fn down_migrations_undo_up_migrations() {
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
    const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

    let db = TestDb::new().await;
    let url = db.url.clone();
    let tables_after = std::thread::spawn(move || {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .unwrap();
        conn.revert_all_migrations(MIGRATIONS).unwrap();
        let left: i64 = diesel::RunQueryDsl::get_result(
            diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "SELECT count(*) FROM pg_tables
                  WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations'",
            ),
            &mut conn,
        )
        .unwrap();
        let applied = conn.run_pending_migrations(MIGRATIONS).unwrap().len();
        let total = diesel::migration::MigrationSource::<Pg>::migrations(&MIGRATIONS)
            .unwrap()
            .len();
        (left, applied, total)
    })
    .join()
    .unwrap();
    assert_eq!(
        tables_after.0, 0,
        "tables left after reverting every migration"
    );
    assert_eq!(
        tables_after.1, tables_after.2,
        "every migration applies again"
    );
}

#[tokio::test]
async fn every_bytea_column_is_a_sealed_column_that_a_key_rotation_covers() {
    let db = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let in_database: BTreeSet<String> = pairs(
        &mut conn,
        "SELECT table_name::text AS a, column_name::text AS b FROM information_schema.columns \
         WHERE table_schema = 'public' AND data_type = 'bytea'",
    )
    .await
    .into_iter()
    .map(|(table, column)| format!("{table}.{column}"))
    .collect();
    let rotated: BTreeSet<String> = skypanel_store::rekey::sealed_columns()
        .into_iter()
        .collect();
    assert_eq!(
        in_database, rotated,
        "store/src/rekey.rs must list every sealed (bytea) column with its associated data"
    );
}
