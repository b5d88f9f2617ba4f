//! Control-plane replicas and the shard leases that say which of them owns
//! which actors: an application, node or wallet with id `n` lives in shard
//! `n mod 64` ([`shard_of`]). A claim takes free or expired shards and bumps
//! each one's epoch; a renewal extends only the epoch it claimed, so a
//! replica cut off past its lease finds the shard taken and loses it; a
//! write fenced by a shard checks its lease in its own transaction
//! ([`holds`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Integer, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::{Conn, Result};

/// How many shards the actors are spread over.
pub const SHARDS: i32 = 64;

/// The shard of the entity with id `id`.
pub fn shard_of(id: i64) -> i32 {
    id.rem_euclid(i64::from(SHARDS)) as i32
}

/// A shard held: its number and the epoch of the claim that took it.
#[derive(diesel::QueryableByName, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lease {
    #[diesel(sql_type = Integer)]
    pub shard: i32,
    #[diesel(sql_type = BigInt)]
    pub epoch: i64,
}

fn interval(ttl: Duration) -> String {
    format!("{} milliseconds", ttl.as_millis())
}

/// How long a replica not seen stays listed.
const FORGOTTEN_AFTER: &str = "1 hour";

/// Records `replica` as alive now (registering it the first time, with
/// where it takes other replicas' calls), and forgets replicas not seen for
/// an hour (each start is a new replica).
pub async fn beat(
    conn: &mut Conn,
    replica: Uuid,
    hostname: &str,
    address: Option<&str>,
) -> Result<()> {
    diesel::sql_query(format!(
        "DELETE FROM paas_replicas WHERE seen_at < now() - interval '{FORGOTTEN_AFTER}'"
    ))
    .execute(conn)
    .await?;
    diesel::sql_query(
        "INSERT INTO paas_replicas (id, hostname, address) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET seen_at = now(), hostname = EXCLUDED.hostname, \
                                        address = EXCLUDED.address",
    )
    .bind::<SqlUuid, _>(replica)
    .bind::<Text, _>(hostname)
    .bind::<diesel::sql_types::Nullable<Text>, _>(address)
    .execute(conn)
    .await?;
    Ok(())
}

/// Frees the shards of earlier replicas at `address` on `hostname` (this
/// replica's predecessors there: killed, or stopped without releasing) and
/// forgets those replicas, so that a replica started again on the same
/// machine and port takes its shards back at once instead of after their
/// leases run out. Answers how many shards were freed.
pub async fn succeed(
    conn: &mut Conn,
    replica: Uuid,
    hostname: &str,
    address: &str,
) -> Result<usize> {
    let freed = diesel::sql_query(
        "UPDATE paas_shard_leases SET owner = NULL, expires_at = NULL \
         WHERE owner IN (SELECT id FROM paas_replicas \
                          WHERE hostname = $1 AND address = $2 AND id <> $3)",
    )
    .bind::<Text, _>(hostname)
    .bind::<Text, _>(address)
    .bind::<SqlUuid, _>(replica)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "DELETE FROM paas_replicas WHERE hostname = $1 AND address = $2 AND id <> $3",
    )
    .bind::<Text, _>(hostname)
    .bind::<Text, _>(address)
    .bind::<SqlUuid, _>(replica)
    .execute(conn)
    .await?;
    Ok(freed)
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Replicas seen within `alive` (at least 1: the caller is one).
pub async fn live_replicas(conn: &mut Conn, alive: Duration) -> Result<i64> {
    let count: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM paas_replicas WHERE seen_at > now() - interval '{}'",
        interval(alive)
    ))
    .get_result(conn)
    .await?;
    Ok(count.n.max(1))
}

/// The replicas seen within `alive`, with the address each takes calls at
/// (the inspector gathers every replica's actors).
pub async fn peers(conn: &mut Conn, alive: Duration) -> Result<Vec<Owner>> {
    Ok(diesel::sql_query(format!(
        "SELECT id AS replica, address FROM paas_replicas \
         WHERE seen_at > now() - interval '{}' ORDER BY started_at",
        interval(alive)
    ))
    .load(conn)
    .await?)
}

/// The shards one of `live` replicas should own: an even share, rounded up.
pub fn fair_share(live: i64) -> usize {
    let live = live.max(1);
    ((i64::from(SHARDS) + live - 1) / live) as usize
}

/// Takes up to `want` shards that nobody holds (free, or their lease
/// expired), each with a new epoch, for `ttl`.
pub async fn claim(
    conn: &mut Conn,
    replica: Uuid,
    want: usize,
    ttl: Duration,
) -> Result<Vec<Lease>> {
    if want == 0 {
        return Ok(Vec::new());
    }
    let mut claimed: Vec<Lease> = diesel::sql_query(format!(
        "UPDATE paas_shard_leases SET owner = $1, epoch = epoch + 1, \
                expires_at = now() + interval '{}' \
         WHERE shard IN (SELECT shard FROM paas_shard_leases \
                          WHERE owner IS NULL OR expires_at IS NULL OR expires_at < now() \
                          ORDER BY shard LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING shard, epoch",
        interval(ttl)
    ))
    .bind::<SqlUuid, _>(replica)
    .bind::<BigInt, _>(want as i64)
    .load(conn)
    .await?;
    claimed.sort();
    Ok(claimed)
}

/// Extends the leases `replica` holds at exactly these epochs; answers
/// those it still holds. A shard whose epoch moved was taken over.
pub async fn renew(
    conn: &mut Conn,
    replica: Uuid,
    held: &[Lease],
    ttl: Duration,
) -> Result<Vec<Lease>> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let shards: Vec<i32> = held.iter().map(|l| l.shard).collect();
    let epochs: Vec<i64> = held.iter().map(|l| l.epoch).collect();
    let mut renewed: Vec<Lease> = diesel::sql_query(format!(
        "UPDATE paas_shard_leases l SET expires_at = now() + interval '{}' \
         FROM unnest($2::int[], $3::bigint[]) AS h(shard, epoch) \
         WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1 \
         RETURNING l.shard, l.epoch",
        interval(ttl)
    ))
    .bind::<SqlUuid, _>(replica)
    .bind::<diesel::sql_types::Array<Integer>, _>(shards)
    .bind::<diesel::sql_types::Array<BigInt>, _>(epochs)
    .load(conn)
    .await?;
    renewed.sort();
    Ok(renewed)
}

/// Gives these leases up (rebalancing, or shutting down): another replica
/// can claim them at once.
pub async fn release(conn: &mut Conn, replica: Uuid, held: &[Lease]) -> Result<()> {
    if held.is_empty() {
        return Ok(());
    }
    let shards: Vec<i32> = held.iter().map(|l| l.shard).collect();
    let epochs: Vec<i64> = held.iter().map(|l| l.epoch).collect();
    diesel::sql_query(
        "UPDATE paas_shard_leases l SET owner = NULL, expires_at = NULL \
         FROM unnest($2::int[], $3::bigint[]) AS h(shard, epoch) \
         WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1",
    )
    .bind::<SqlUuid, _>(replica)
    .bind::<diesel::sql_types::Array<Integer>, _>(shards)
    .bind::<diesel::sql_types::Array<BigInt>, _>(epochs)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Held {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    held: bool,
}

/// Whether `lease` is still held by `replica` and unexpired, locking the
/// lease row against a takeover until the caller's transaction ends: a
/// write fenced by its shard calls this first in the same transaction.
pub async fn holds(conn: &mut Conn, replica: Uuid, lease: Lease) -> Result<bool> {
    let found: Vec<Held> = diesel::sql_query(
        "SELECT true AS held FROM paas_shard_leases \
         WHERE shard = $1 AND epoch = $2 AND owner = $3 AND expires_at > now() FOR SHARE",
    )
    .bind::<Integer, _>(lease.shard)
    .bind::<BigInt, _>(lease.epoch)
    .bind::<SqlUuid, _>(replica)
    .load(conn)
    .await?;
    Ok(found.iter().any(|h| h.held))
}

/// [`holds`] as a fenced write's first step: the write's transaction goes
/// on only while `replica` holds `lease` (and a takeover waits for it), and
/// fails with [`crate::Error::Fenced`] otherwise.
pub async fn fence(conn: &mut Conn, replica: Uuid, lease: Lease) -> Result<()> {
    if holds(conn, replica, lease).await? {
        Ok(())
    } else {
        Err(crate::Error::Fenced { shard: lease.shard })
    }
}

/// The replica holding `shard` unexpired, and where it takes calls.
#[derive(diesel::QueryableByName, Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    #[diesel(sql_type = SqlUuid)]
    pub replica: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub address: Option<String>,
}

/// Who owns `shard` now (`None` while nobody does: between a replica's
/// death and the takeover, or a shard given back and not yet claimed).
pub async fn owner_of(conn: &mut Conn, shard: i32) -> Result<Option<Owner>> {
    let found: Vec<Owner> = diesel::sql_query(
        "SELECT l.owner AS replica, r.address FROM paas_shard_leases l \
         JOIN paas_replicas r ON r.id = l.owner \
         WHERE l.shard = $1 AND l.expires_at > now()",
    )
    .bind::<Integer, _>(shard)
    .load(conn)
    .await?;
    Ok(found.into_iter().next())
}

/// Shards held and unexpired, by replica, with when each replica was last
/// seen (the inspector and `/metrics`).
#[derive(diesel::QueryableByName, Debug, Clone)]
pub struct Ownership {
    #[diesel(sql_type = SqlUuid)]
    pub replica: Uuid,
    #[diesel(sql_type = Text)]
    pub hostname: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub seen_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub shards: i64,
}

pub async fn ownership(conn: &mut Conn) -> Result<Vec<Ownership>> {
    Ok(diesel::sql_query(
        "SELECT r.id AS replica, r.hostname, r.seen_at, \
                count(l.shard) FILTER (WHERE l.expires_at > now()) AS shards \
         FROM paas_replicas r LEFT JOIN paas_shard_leases l ON l.owner = r.id \
         GROUP BY r.id, r.hostname, r.seen_at ORDER BY r.started_at",
    )
    .load(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_spread_over_every_shard_and_negative_ids_too() {
        assert_eq!(shard_of(0), 0);
        assert_eq!(shard_of(65), 1);
        assert_eq!(shard_of(-1), 63);
        let shards: std::collections::BTreeSet<i32> = (1..=640).map(shard_of).collect();
        assert_eq!(shards.len(), 64);
    }

    #[test]
    fn a_fair_share_covers_every_shard() {
        assert_eq!(fair_share(1), 64);
        assert_eq!(fair_share(3), 22);
        assert!(fair_share(3) * 3 >= 64);
        assert_eq!(fair_share(0), 64);
    }
}
