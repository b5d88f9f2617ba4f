//! This replica's part of the shard leases (`store::shards`): every
//! [`BEAT`] it records itself alive, renews the leases it holds, claims free
//! or expired shards up to its fair share of the live replicas, and gives
//! back what is above that share, so that replicas coming and going
//! rebalance. The supervisors run the actors of the shards held (told of
//! every shard gained or lost), the actors' writes are fenced by the lease
//! of their shard ([`fence`]), and a request for an entity of a shard held
//! elsewhere is carried to its owner (`crate::replicas`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use skypanel_store::shards::{self, Lease};
use uuid::Uuid;

use crate::context::Context;
use crate::error::Error;

/// How often a replica beats and renews its leases.
pub const BEAT: Duration = Duration::from_secs(1);
/// How long a lease lasts unless renewed: a replica gone silent loses its
/// shards this long after its last renewal, and the others take them at
/// their next beat: a takeover within `LEASE + BEAT` (8 s) of the death.
/// Six renewals in a row must fail before a live replica loses its shards.
pub const LEASE: Duration = Duration::from_secs(7);

/// This replica's identity and the leases it holds.
#[derive(Clone)]
pub struct Shards {
    replica: Uuid,
    hostname: Arc<str>,
    /// Where the other replicas reach this one (`None`: it takes no calls).
    address: Arc<std::sync::OnceLock<String>>,
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
            address: Arc::default(),
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

    /// Where the other replicas reach this one.
    pub fn address(&self) -> Option<&str> {
        self.address.get().map(String::as_str)
    }

    /// Sets where the other replicas reach this one (once, before the
    /// actors start; a second address is ignored).
    pub fn set_address(&self, url: String) {
        let _ = self.address.set(url);
    }

    /// The leases held as of the last beat.
    pub fn held(&self) -> Vec<Lease> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// This replica's lease of `shard`, if it holds it.
    pub fn lease_of(&self, shard: i32) -> Option<Lease> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|l| l.shard == shard)
            .copied()
    }

    /// Whether the actor of entity `id` lives on this replica.
    pub fn owns(&self, id: i64) -> bool {
        self.lease_of(shards::shard_of(id)).is_some()
    }

    fn set(&self, leases: Vec<Lease>) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = leases;
    }
}

/// The first step of a write by the actor of entity `id`, in the write's
/// transaction: it goes on only while this replica holds the entity's
/// shard at the epoch it claimed, and a takeover waits until it commits.
/// A stale owner (cut off past its lease) fails with `Fenced`.
pub(crate) async fn fence(
    conn: &mut skypanel_store::Conn,
    ctx: &Context,
    id: i64,
) -> skypanel_store::Result<()> {
    let shard = shards::shard_of(id);
    match ctx.shards().lease_of(shard) {
        Some(lease) => shards::fence(conn, ctx.shards().replica, lease).await,
        None => Err(skypanel_store::Error::Fenced { shard }),
    }
}

/// Before the first beat: frees what an earlier replica on this machine at
/// this address held (it was killed, or this is the same process slot
/// started again), so that a restarted control plane does not wait for its
/// own former leases to run out.
pub(crate) async fn succeed(ctx: &Context) -> Result<usize, Error> {
    let keeper = ctx.shards();
    let Some(address) = keeper.address() else {
        return Ok(0);
    };
    let mut conn = ctx.store().conn().await?;
    Ok(shards::succeed(&mut conn, keeper.replica, &keeper.hostname, address).await?)
}

/// What one beat changed: shards gained and lost.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub gained: Vec<i32>,
    pub lost: Vec<i32>,
}

/// One beat: alive, renew, claim up to the fair share, give back the rest.
pub(crate) async fn beat(ctx: &Context) -> Result<Moved, Error> {
    let keeper = ctx.shards();
    let before = keeper.held();
    let mut conn = ctx.store().conn().await?;
    shards::beat(
        &mut conn,
        keeper.replica,
        &keeper.hostname,
        keeper.address(),
    )
    .await?;
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
    let moved = Moved {
        gained: held
            .iter()
            .filter(|l| !before.contains(l))
            .map(|l| l.shard)
            .collect(),
        lost: before
            .iter()
            .filter(|l| !held.contains(l))
            .map(|l| l.shard)
            .collect(),
    };
    keeper.set(held);
    Ok(moved)
}

/// Gives every lease back (a replica stopping): the others take its shards
/// at their next beat instead of after the leases expire.
pub(crate) async fn release_all(ctx: &Context) -> Result<(), Error> {
    let keeper = ctx.shards();
    let held = keeper.held();
    keeper.set(Vec::new());
    let mut conn = ctx.store().conn().await?;
    shards::release(&mut conn, keeper.replica, &held).await?;
    Ok(())
}

/// Beats until dropped; a failed beat is retried at the next one (the
/// leases held then are whatever the renewal still finds). A replica that
/// could not renew for a whole lease gives up its shards here too: their
/// actors stop (their writes were fenced since the leases ran out anyway).
pub(crate) async fn keep_forever(ctx: Context) {
    let mut tick = tokio::time::interval(BEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renewed = std::time::Instant::now();
    loop {
        tick.tick().await;
        let result = beat(&ctx).await;
        if result.is_ok() {
            renewed = std::time::Instant::now();
        } else if renewed.elapsed() > LEASE && !ctx.shards().held().is_empty() {
            let lost = ctx.shards().held().iter().map(|l| l.shard).collect();
            ctx.shards().set(Vec::new());
            tracing::error!("the shard leases ran out unrenewed: this replica's actors stop");
            crate::supervisor::shards_moved(
                &ctx,
                &Moved {
                    gained: Vec::new(),
                    lost,
                },
            );
        }
        match result {
            Ok(moved) if moved == Moved::default() => {
                tracing::debug!("shard leases renewed");
            }
            Ok(moved) => {
                tracing::info!(gained = ?moved.gained, lost = ?moved.lost, "shards moved");
                crate::supervisor::shards_moved(&ctx, &moved);
            }
            Err(err) => tracing::warn!(error = %err, "cannot renew the shard leases"),
        }
    }
}
