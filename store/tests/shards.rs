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
    shards::beat(&mut conn, a, "replica-a", Some("http://10.0.0.1:8080"))
        .await
        .unwrap();
    shards::beat(&mut conn, b, "replica-b", Some("http://10.0.0.2:8080"))
        .await
        .unwrap();
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
    let owner = shards::owner_of(&mut conn, held_a[0].shard).await.unwrap();
    assert_eq!(
        owner.map(|o| (o.replica, o.address)),
        Some((a, Some("http://10.0.0.1:8080".into()))),
        "the owner and where it takes calls"
    );

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
    assert!(matches!(
        shards::fence(&mut conn, a, held_a[0]).await,
        Err(skypanel_store::Error::Fenced { shard }) if shard == held_a[0].shard
    ));
    assert_eq!(
        shards::owner_of(&mut conn, held_a[0].shard).await.unwrap(),
        None,
        "nobody owns an expired shard until it is claimed"
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
    shards::fence(&mut conn, b, taken[0]).await.unwrap();

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
    shards::beat(&mut first, a, "a", None).await.unwrap();
    shards::beat(&mut first, b, "b", None).await.unwrap();
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

#[tokio::test]
async fn a_replica_started_again_at_its_address_takes_its_predecessors_shards_at_once() {
    let db = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let (killed, other, again) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let here = "http://127.0.0.1:8080";
    shards::beat(&mut conn, killed, "host-a", Some(here))
        .await
        .unwrap();
    shards::beat(&mut conn, other, "host-a", Some("http://127.0.0.1:8081"))
        .await
        .unwrap();
    assert_eq!(
        shards::claim(&mut conn, killed, 40, TTL)
            .await
            .unwrap()
            .len(),
        40
    );
    assert_eq!(
        shards::claim(&mut conn, other, 24, TTL)
            .await
            .unwrap()
            .len(),
        24
    );

    // The same machine and port again (the process was killed): its
    // shards are freed at once; another machine's replica at an address
    // that reads the same, and the other port, keep theirs.
    shards::beat(&mut conn, again, "host-b", Some(here))
        .await
        .unwrap();
    assert_eq!(
        shards::succeed(&mut conn, again, "host-b", here)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        shards::succeed(&mut conn, again, "host-a", here)
            .await
            .unwrap(),
        40
    );
    let back = shards::claim(&mut conn, again, 64, TTL).await.unwrap();
    assert_eq!(back.len(), 40);
    assert!(
        back.iter().all(|l| l.epoch == 2),
        "new epochs fence the old one"
    );
    let owned = shards::ownership(&mut conn).await.unwrap();
    assert!(
        owned.iter().all(|o| o.replica != killed),
        "the predecessor is forgotten"
    );
    assert_eq!(
        owned.iter().find(|o| o.replica == other).unwrap().shards,
        24
    );
}
