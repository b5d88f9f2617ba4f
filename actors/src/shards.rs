//! This replica's part of the shard leases (`store::shards`): every
//! [`BEAT`] it records itself alive, renews the leases it holds, claims free
//! or expired shards up to its fair share of the live replicas, and gives
//! back what is above that share, so that replicas coming and going
//! rebalance. Actors do not consult the leases yet (each replica still runs
//! every actor): what a replica holds is reported (`/metrics`,
//! `skypanel_shards_owned`) and is what the ownership of actors will build on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use skypanel_store::shards::{self, Lease};
use uuid::Uuid;

use crate::context::Context;
use crate::error::Error;

/// How often a replica beats and renews its leases.
pub const BEAT: Duration = Duration::from_secs(2);
/// How long a lease lasts unless renewed: a replica gone silent loses its
/// shards this long after its last renewal.
pub const LEASE: Duration = Duration::from_secs(8);

/// This replica's identity and the leases it holds.
#[derive(Clone)]
pub struct Shards {
    replica: Uuid,
    hostname: Arc<str>,
    held: Arc<Mutex<Vec<Lease>>>,
}

impl Default for Shards {
    fn default() -> Self {
        let hostname = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            replica: Uuid::new_v4(),
            hostname: hostname.into(),
            held: Arc::default(),
        }
    }
}

impl Shards {
    pub fn replica(&self) -> Uuid {
        self.replica
    }

    /// The machine this replica runs on, as it is listed.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The leases held as of the last beat.
    pub fn held(&self) -> Vec<Lease> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, leases: Vec<Lease>) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = leases;
    }
}

/// One beat: alive, renew, claim up to the fair share, give back the rest.
pub(crate) async fn beat(ctx: &Context) -> Result<Vec<Lease>, Error> {
    let keeper = ctx.shards();
    let mut conn = ctx.store().conn().await?;
    shards::beat(&mut conn, keeper.replica, &keeper.hostname).await?;
    let mut held = shards::renew(&mut conn, keeper.replica, &keeper.held(), LEASE).await?;
    let share = shards::fair_share(shards::live_replicas(&mut conn, LEASE).await?);
    if held.len() < share {
        let claimed = shards::claim(&mut conn, keeper.replica, share - held.len(), LEASE).await?;
        held.extend(claimed);
    } else if held.len() > share {
        let above = held.split_off(share);
        shards::release(&mut conn, keeper.replica, &above).await?;
    }
    held.sort();
    keeper.set(held.clone());
    Ok(held)
}

/// Beats until dropped; a failed beat is retried at the next one (the
/// leases held then are whatever the renewal still finds).
pub(crate) async fn keep_forever(ctx: Context) {
    let mut tick = tokio::time::interval(BEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match beat(&ctx).await {
            Ok(held) => tracing::debug!(shards = held.len(), "shard leases renewed"),
            Err(err) => tracing::warn!(error = %err, "cannot renew the shard leases"),
        }
    }
}
