//! Supervision on the real actors and PostgreSQL: an application actor that
//! panics is restarted from the database with its state, and a restart of the
//! whole control plane rebuilds every node and application actor as it was.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use std::time::Duration;

use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn a_panicking_app_actor_comes_back_with_its_state() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let plan = app.plan(&admin, "basic").await;
    let agent = app.agent(&admin, "w1", "local").await;
    app.beat(&agent, json!([])).await.expect(200);
    let (_, customer) = app.customer("alice@example.com").await;
    let id = app.app(&customer, "shop", plan).await;
    app.post(
        &format!("/api/paas/applications/{id}/deploy"),
        &customer,
        json!({}),
    )
    .await
    .expect(202);

    let before = app.orchestrator.app_snapshot(id).await.unwrap();
    assert_eq!(
        (before.app.status.as_str(), before.app.generation),
        ("building", 1)
    );
    app.orchestrator.crash_app(id).await.unwrap();

    // The supervisor respawns it from the database: a new actor, the same state.
    let started = before.started_at;
    let after = app
        .until_some(5, "the actor is back", || async {
            app.orchestrator
                .app_snapshot(id)
                .await
                .ok()
                .filter(|s| s.started_at > started)
        })
        .await;
    assert_eq!(after.app.status, before.app.status);
    assert_eq!(after.app.generation, before.app.generation);
    assert_eq!(after.app.node_id, before.app.node_id);

    // The inspector's tree shows one restart, and the actor works on.
    let tree = app.orchestrator.actors().await;
    let entry = tree
        .iter()
        .find(|a| a.kind == "app" && a.entity_id == Some(id))
        .unwrap();
    assert_eq!((entry.restarts, entry.status.as_str()), (1, "running"));
    app.post(
        &format!("/api/paas/applications/{id}/scale"),
        &customer,
        json!({"instance_count": 2}),
    )
    .await
    .expect(202);
}

#[tokio::test]
async fn a_restarted_control_plane_keeps_every_applications_state() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let plan = app.plan(&admin, "basic").await;
    let agent = app.agent(&admin, "w1", "local").await;
    app.beat(&agent, json!([])).await.expect(200);
    let (_, customer) = app.customer("alice@example.com").await;
    let pending = app.app(&customer, "idle", plan).await;
    let building = app.app(&customer, "building", plan).await;
    let scaled = app.app(&customer, "scaled", plan).await;
    app.post(
        &format!("/api/paas/applications/{building}/deploy"),
        &customer,
        json!({}),
    )
    .await
    .expect(202);
    app.post(
        &format!("/api/paas/applications/{scaled}/scale"),
        &customer,
        json!({"instance_count": 5}),
    )
    .await
    .expect(202);
    let mut before = Vec::new();
    for id in [pending, building, scaled] {
        before.push(app.orchestrator.app_snapshot(id).await.unwrap().app);
    }

    // Stop every actor, then start a new control plane on the same database.
    app.orchestrator.shutdown().await;
    assert!(
        app.orchestrator.app_snapshot(pending).await.is_err(),
        "the old actors are gone"
    );
    let context = skypanel_actors::Context::with_prefix(
        app.state.store().clone(),
        skypanel_domain::secrets::SecretKey::from_hex(common::SECRET_KEY_HEX).unwrap(),
        common::actor_settings(),
        "restarted/".into(),
    );
    let restarted = skypanel_actors::Orchestrator::start(context).await.unwrap();
    let tree = restarted.actors().await;
    for id in [pending, building, scaled] {
        assert!(
            tree.iter()
                .any(|a| a.kind == "app" && a.entity_id == Some(id)),
            "app {id} was rebuilt at start"
        );
    }
    assert!(
        tree.iter()
            .any(|a| a.kind == "node" && a.entity_id == Some(agent.node_id)),
        "the node was rebuilt"
    );
    for old in before {
        let now = restarted.app_snapshot(old.id).await.unwrap().app;
        assert_eq!(
            (now.status, now.generation, now.instance_count, now.node_id),
            (old.status, old.generation, old.instance_count, old.node_id)
        );
    }
    // The deploy's task is still queued for the node.
    let mut conn = app.state.store().conn().await.unwrap();
    let queued = skypanel_store::tasks::unfinished_for_app(&mut conn, building)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "the queued task survived the restart");
    assert_eq!(
        (queued[0].node_id, queued[0].status.as_str()),
        (agent.node_id, "queued")
    );

    restarted.shutdown().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_write_after_the_apps_shard_was_taken_over_is_refused_and_changes_nothing() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let path = format!("/api/paas/applications/{}/scale", w.app);
    app.post(&path, &w.customer, json!({"instance_count": 2}))
        .await
        .expect(202);
    let before = app.orchestrator.app_snapshot(w.app).await.unwrap().app;
    let tasks = |conn| async move {
        let mut conn: diesel_async::AsyncPgConnection = conn;
        skypanel_store::tasks::unfinished_for_app(&mut conn, w.app)
            .await
            .unwrap()
            .len()
    };
    let queued = tasks(app.sql().await).await;

    // Another replica takes the application's shard over (this one was cut
    // off past its lease, say): its lease row names the other at a new epoch.
    let other = uuid::Uuid::new_v4();
    app.exec_sql(&format!(
        "INSERT INTO paas_replicas (id, hostname) VALUES ('{other}', 'elsewhere')"
    ))
    .await;
    app.exec_sql(&format!(
        "UPDATE paas_shard_leases SET owner = '{other}', epoch = epoch + 1, \
         expires_at = now() + interval '1 hour' WHERE shard = {}",
        w.app.rem_euclid(64)
    ))
    .await;

    // The actor here still runs and still thinks it owns the application:
    // its write is refused by the epoch, and nothing of it is left.
    app.post(&path, &w.customer, json!({"instance_count": 4}))
        .await
        .expect_error(503, "unavailable");
    let mut conn = app.sql().await;
    let now = skypanel_store::apps::load(&mut conn, w.app).await.unwrap();
    assert_eq!(
        (now.instance_count, now.generation, now.version),
        (before.instance_count, before.generation, before.version),
        "the refused write changed the application"
    );
    assert_eq!(tasks(conn).await, queued, "the refused write queued a task");

    // At its next beat the replica learns it lost the shard: the actor stops.
    let id = w.app;
    app.eventually(10, "the actor of the lost shard stops", || async {
        !app.orchestrator
            .actors()
            .await
            .iter()
            .any(|a| a.kind == "app" && a.entity_id == Some(id))
    })
    .await;
}

#[tokio::test]
async fn a_replica_call_is_served_only_when_signed_by_a_replica_and_recent() {
    use skypanel_actors::replicas::{CALL_PATH, SIGNATURE_HEADER, TIME_HEADER, sign, signing_key};
    let app = TestApp::new().await;
    let w = app.world().await;
    let key = signing_key(
        &skypanel_domain::secrets::SecretKey::from_hex(common::SECRET_KEY_HEX).unwrap(),
    );
    let body = serde_json::to_vec(&json!({"call": "app_snapshot", "app_id": w.app})).unwrap();
    let now = chrono::Utc::now().timestamp();
    let signed = |key: &[u8], time: i64, body: &[u8]| {
        vec![
            (TIME_HEADER, time.to_string()),
            (SIGNATURE_HEADER, sign(key, time, body)),
        ]
    };

    // Unsigned, signed with another key, or two minutes old: refused.
    for headers in [
        Vec::new(),
        signed(&[9u8; 32], now, &body),
        signed(&key, now - 120, &body),
    ] {
        app.post_with_headers(CALL_PATH, &headers, body.clone())
            .await
            .expect_error(401, "unauthorized");
    }
    // Signed but not a call: a clear 400.
    let junk = b"{\"call\":\"format_disk\"}".to_vec();
    app.post_with_headers(CALL_PATH, &signed(&key, now, &junk), junk)
        .await
        .expect_error(400, "invalid_json");
    // A replica's call: answered by the actor here (this replica owns every shard).
    let answer = app
        .post_with_headers(CALL_PATH, &signed(&key, now, &body), body.clone())
        .await;
    let value = answer.expect(200);
    assert_eq!(value["answer"], "snapshot", "{value:#}");
    assert_eq!(value["value"]["app"]["id"], w.app);
    // An entity that does not exist: refused as not found, in the answer.
    let missing = serde_json::to_vec(&json!({"call": "app_snapshot", "app_id": 999_999})).unwrap();
    let value = app
        .post_with_headers(CALL_PATH, &signed(&key, now, &missing), missing)
        .await
        .expect(200)
        .clone();
    assert_eq!(value["answer"], "refused");
    assert_eq!(value["value"]["code"], "not_found");
}
