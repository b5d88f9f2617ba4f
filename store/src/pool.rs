//! The connection pool: a cheap, cloneable [`Store`] handle over deadpool.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

use crate::{Error, Result};

/// The connection type every query function takes.
pub type Conn = AsyncPgConnection;
/// A connection checked out of the pool; derefs to [`Conn`].
pub type PooledConn = Object<AsyncPgConnection>;

/// Handle to the database. Clone it freely: clones share one pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool<AsyncPgConnection>,
    url: String,
    ends: crate::wakeups::TaskEnds,
    forgets: crate::wakeups::Forgets,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Builds a pool of at most `max_size` connections to `url`; no connection
    /// is opened until one is needed.
    pub fn connect(url: &str, max_size: usize) -> Result<Self> {
        // A connection is checked on its way out of the pool without a
        // round trip: one whose server went away is closed, and that is
        // seen without asking. The default (`SELECT 1` at every checkout)
        // was half of all statements under a fleet's heartbeats and polls.
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(Self {
            pool,
            url: url.to_string(),
            ends: Default::default(),
            forgets: Default::default(),
        })
    }

    /// Who in this process waits for which task to end; the task listener
    /// (`wakeups::listen`, run by the actors' lease broker) wakes them.
    pub fn task_ends(&self) -> &crate::wakeups::TaskEnds {
        &self.ends
    }

    /// Revoked credentials every replica must forget, as the listener
    /// hears them (`wakeups::announce`).
    pub fn forgets(&self) -> &crate::wakeups::Forgets {
        &self.forgets
    }

    /// Checks out a connection.
    pub async fn conn(&self) -> Result<PooledConn> {
        Ok(self.pool.get().await?)
    }

    /// Runs pending migrations (see [`crate::run_migrations`]).
    pub async fn migrate(&self) -> Result<Vec<String>> {
        crate::run_migrations(&self.url).await
    }

    /// The database URL, for connections outside the pool (LISTEN).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Answers whether the database takes a trivial query.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }
}
