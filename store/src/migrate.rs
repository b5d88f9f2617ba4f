//! Embedded migrations from `../migrations`, run under an advisory lock so that
//! several control-plane processes starting at once migrate exactly once.

use diesel::Connection;
use diesel::RunQueryDsl;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{Error, Result};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");
/// Key of the PostgreSQL advisory lock held while migrating.
const MIGRATION_LOCK_KEY: i64 = 0x5359_5041_4e45_4c00; // "SYPANEL\0"

/// Applies every pending migration to the database at `url` and returns the
/// versions applied. The work runs on a thread of its own: diesel's migration
/// harness is synchronous, and this keeps it off any async runtime's threads.
pub async fn run_migrations(url: &str) -> Result<Vec<String>> {
    let url = url.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("skypanel-migrate".into())
        .spawn(move || {
            let _ = tx.send(migrate_blocking(&url));
        })
        .map_err(|e| Error::Migration(e.to_string()))?;
    rx.await
        .map_err(|_| Error::Migration("migration thread died".into()))?
}

fn migrate_blocking(url: &str) -> Result<Vec<String>> {
    let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(url)
        .map_err(|e| Error::Migration(format!("cannot connect: {e}")))?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| Error::Migration(e.to_string()));
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)?;
    applied
}
