//! The task lease statement on a real PostgreSQL: a node's tasks are handed
//! out oldest first, up to the number asked for, never another node's; and
//! the statement is prepared once per connection (it runs for every task an
//! agent picks up; a `sql_query` would be parsed and planned each time).

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use skypanel_store::testing::TestDb;
use skypanel_store::{nodes, tasks};

#[derive(QueryableByName)]
struct Prepared {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

async fn task_for(conn: &mut AsyncPgConnection, node_id: i64) -> i64 {
    let new = tasks::NewTask {
        node_id,
        application_id: None,
        build_id: None,
        database_id: None,
        kind: "app_stop",
        payload: serde_json::json!({}),
        generation: None,
        max_attempts: 3,
    };
    tasks::create(conn, &new, None).await.unwrap().id
}

#[tokio::test]
async fn a_nodes_tasks_are_leased_in_order_by_a_statement_prepared_once() {
    let db = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let node = nodes::create(&mut conn, "n1", "eu", "10.0.0.1", "d1", expires)
        .await
        .unwrap();
    let other = nodes::create(&mut conn, "n2", "eu", "10.0.0.2", "d2", expires)
        .await
        .unwrap();
    let mut queued = Vec::new();
    for _ in 0..3 {
        queued.push(task_for(&mut conn, node.id).await);
    }
    let others = task_for(&mut conn, other.id).await;

    let first = tasks::lease(&mut conn, node.id, 2, 30, None).await.unwrap();
    assert_eq!(first.iter().map(|t| t.id).collect::<Vec<_>>(), queued[..2]);
    for task in &first {
        assert_eq!((task.status.as_str(), task.attempt), ("leased", 1));
        assert!(task.lease_id.is_some() && task.lease_deadline.is_some());
    }
    let request = uuid::Uuid::new_v4();
    let second = tasks::lease(&mut conn, node.id, 32, 30, Some(request))
        .await
        .unwrap();
    assert_eq!(second.iter().map(|t| t.id).collect::<Vec<_>>(), [queued[2]]);
    let again = tasks::leased_for_request(&mut conn, node.id, request, 30)
        .await
        .unwrap();
    assert_eq!(again.iter().map(|t| t.id).collect::<Vec<_>>(), [queued[2]]);
    assert!(
        tasks::lease(&mut conn, node.id, 32, 30, None)
            .await
            .unwrap()
            .is_empty()
    );
    let theirs = tasks::lease(&mut conn, other.id, 32, 30, None)
        .await
        .unwrap();
    assert_eq!(theirs.iter().map(|t| t.id).collect::<Vec<_>>(), [others]);

    // Four leases on this connection, one statement prepared for them.
    let prepared: Prepared = diesel::sql_query(
        "SELECT count(*) AS count FROM pg_prepared_statements \
         WHERE statement LIKE 'UPDATE paas_tasks t SET status = %'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(prepared.count, 1);
}
