//! Shard leases on a real PostgreSQL: two replicas split the shards, a
//! replica cut off past its lease loses its shards to a claim that bumps
//! their epoch (its renewal and its fenced checks then fail), and released
//! shards are claimed at once.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use skypanel_store::shards::{self, Lease};
use skypanel_store::testing::TestDb;
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(10);

#[tokio::test]
async fn replicas_split_the_shards_and_a_takeover_fences_the_old_owner() {
    let db = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    shards::beat(&mut conn, a, "replica-a").await.unwrap();
    shards::beat(&mut conn, b, "replica-b").await.unwrap();
    let live = shards::live_replicas(&mut conn, TTL).await.unwrap();
    assert_eq!(live, 2);
    let share = shards::fair_share(live);

    // Each takes its share; nothing is held twice, nothing is left over.
    let held_a = shards::claim(&mut conn, a, share, TTL).await.unwrap();
    let held_b = shards::claim(&mut conn, b, 64, TTL).await.unwrap();
    assert_eq!((held_a.len(), held_b.len()), (32, 32));
    assert!(
        held_a
            .iter()
            .all(|l| !held_b.iter().any(|m| m.shard == l.shard))
    );
    assert!(held_a.iter().chain(&held_b).all(|l| l.epoch == 1));
    assert!(
        shards::claim(&mut conn, a, 64, TTL)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        shards::renew(&mut conn, a, &held_a, TTL).await.unwrap(),
        held_a
    );
    assert!(shards::holds(&mut conn, a, held_a[0]).await.unwrap());
    assert!(!shards::holds(&mut conn, b, held_a[0]).await.unwrap());

    // A is cut off past its lease: B takes A's shards over with new epochs.
    diesel::sql_query(format!(
        "UPDATE paas_shard_leases SET expires_at = now() - interval '1 second' WHERE owner = '{a}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    assert!(
        !shards::holds(&mut conn, a, held_a[0]).await.unwrap(),
        "an expired lease fences its owner"
    );
    let taken = shards::claim(&mut conn, b, 64, TTL).await.unwrap();
    assert_eq!(taken.len(), 32);
    assert!(taken.iter().all(|l| l.epoch == 2));
    // A comes back: its renewal finds nothing of its own, and its old
    // epoch cannot pass a fenced check.
    assert!(
        shards::renew(&mut conn, a, &held_a, TTL)
            .await
            .unwrap()
            .is_empty()
    );
    let stale = Lease {
        shard: taken[0].shard,
        epoch: 1,
    };
    assert!(!shards::holds(&mut conn, a, stale).await.unwrap());
    assert!(shards::holds(&mut conn, b, taken[0]).await.unwrap());

    // B gives ten back (a rebalance): A claims exactly those at once.
    let given: Vec<Lease> = taken[..10].to_vec();
    shards::release(&mut conn, b, &given).await.unwrap();
    let back = shards::claim(&mut conn, a, 32, TTL).await.unwrap();
    assert_eq!(
        back.iter().map(|l| l.shard).collect::<Vec<_>>(),
        given.iter().map(|l| l.shard).collect::<Vec<_>>()
    );
    assert!(back.iter().all(|l| l.epoch == 3));

    let owned = shards::ownership(&mut conn).await.unwrap();
    let count = |r: Uuid| owned.iter().find(|o| o.replica == r).unwrap().shards;
    assert_eq!((count(a), count(b)), (10, 54));
}

#[tokio::test]
async fn a_lease_checked_in_a_transaction_cannot_be_taken_until_it_ends() {
    let db = TestDb::new().await;
    let mut first = AsyncPgConnection::establish(&db.url).await.unwrap();
    let mut second = AsyncPgConnection::establish(&db.url).await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    shards::beat(&mut first, a, "a").await.unwrap();
    shards::beat(&mut first, b, "b").await.unwrap();
    let held = shards::claim(&mut first, a, 1, Duration::from_secs(1))
        .await
        .unwrap();
    // A fenced write: the check holds the lease row until the write commits.
    diesel::sql_query("BEGIN")
        .execute(&mut first)
        .await
        .unwrap();
    assert!(shards::holds(&mut first, a, held[0]).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The lease expired meanwhile, yet a claim skips the locked row.
    let claimed = shards::claim(&mut second, b, 64, TTL).await.unwrap();
    assert!(claimed.iter().all(|l| l.shard != held[0].shard));
    diesel::sql_query("COMMIT")
        .execute(&mut first)
        .await
        .unwrap();
    let claimed = shards::claim(&mut second, b, 64, TTL).await.unwrap();
    assert_eq!(
        claimed,
        vec![Lease {
            shard: held[0].shard,
            epoch: 2
        }]
    );
}
