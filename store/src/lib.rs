//! Persistence for SkyPanel: the diesel schema, row models and every SQL query,
//! the connection pool, and the embedded migrations. No other crate speaks SQL.
//!
//! Query functions take a `&mut Conn` so that callers can compose several of
//! them in one transaction; customer-facing queries take the owner's id and
//! filter by it in SQL, so another customer's row is simply not found.

pub mod accounts;
pub mod agents;
pub mod app_requests;
pub mod apps;
pub mod audit;
pub mod backups;
pub mod billing;
pub mod builds;
pub mod catalog;
pub mod certificates;
pub mod console_sessions;
pub mod database_engines;
pub mod database_moves;
pub mod databases;
pub mod domains;
pub mod env_vars;
pub mod github;
pub mod instances;
pub mod nodes;
pub mod notifications;
pub mod rekey;
pub mod releases;
pub mod reports;
pub mod runs;
pub mod schema;
pub mod shards;
pub mod tasks;
pub mod usage;
pub mod wakeups;
pub mod wallets;
pub mod webhooks;

mod error;
mod migrate;
mod pool;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
pub use migrate::run_migrations;
pub use pool::{Conn, PooledConn, Store};

/// `NotFound` when a write touched no row (the row is missing or not the caller's).
pub(crate) fn found(rows: usize) -> Result<()> {
    if rows == 0 {
        Err(Error::NotFound)
    } else {
        Ok(())
    }
}

/// Paging of a list: `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// The largest page a caller may ask for.
    pub const MAX_LIMIT: i64 = 200;

    /// A page with `limit` clamped to 1..=[`Page::MAX_LIMIT`] and a non-negative offset.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Self {
        Self {
            limit: limit.unwrap_or(50).clamp(1, Self::MAX_LIMIT),
            offset: offset.unwrap_or(0).max(0),
        }
    }
}
