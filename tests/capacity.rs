//! Capacity is accounted, never leaked: on the real HTTP application,
//! PostgreSQL and actors, with a fake agent, a node filled by applications
//! and a database gets its room back when they stop, fail or are suspended,
//! and what admins and customers are shown agrees with what placement does.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use common::{TestApp, container};
use serde_json::json;

#[tokio::test]
async fn stopped_failed_and_crashed_resources_give_their_room_back() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    // A quarter of the fake node's 8192 MB each.
    let body = json!({"name": "quarter", "cpu_limit": 500, "memory_limit": 2048,
                      "storage_limit": 1024, "monthly_price": "9.00", "hourly_rate": "0.0100"});
    let plan = app
        .post("/api/admin/paas/plans", &admin, body)
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    let agent = app.agent(&admin, "worker-1", "local").await;
    app.beat(&agent, json!([])).await.expect(200);
    let (customer_id, customer) = app.customer("alice@example.com").await;

    // Three applications run and a database is being provisioned: the node is full.
    let mut apps = Vec::new();
    for name in ["one", "two", "three"] {
        let id = app.app(&customer, name, plan).await;
        app.post(
            &format!("/api/paas/applications/{id}/deploy"),
            &customer,
            json!({}),
        )
        .await
        .expect(202);
        let task = app.next_task(&agent).await;
        let instance = container(
            id,
            customer_id,
            1,
            0,
            task["spec"]["generation"].as_i64().unwrap(),
            "running",
        );
        app.finish(&agent, &task, true, json!([instance])).await;
        apps.push(id);
    }
    let db = app
        .post(
            "/api/paas/databases",
            &customer,
            json!({"name": "shop-db", "db_type": "postgresql", "version": "16", "plan_id": plan, "region": "local"}),
        )
        .await;
    let db = db.expect(201)["id"].as_i64().unwrap();
    let provision = app.next_task(&agent).await;
    assert_eq!(provision["spec"]["kind"], "db.provision");
    // A fourth deploy waits for room, and says why.
    let fourth = app.app(&customer, "four", plan).await;
    let deploy = format!("/api/paas/applications/{fourth}/deploy");
    let waiting = app.post(&deploy, &customer, json!({})).await;
    assert_eq!(
        waiting.expect(202)["waiting"]["behind"],
        "room on a node of region local"
    );
    let pending = app
        .get(&format!("/api/paas/applications/{fourth}"), &customer)
        .await;
    let reason = pending.body["last_error"].as_str().unwrap();
    assert!(
        reason.starts_with("waiting for room: no node in region"),
        "{reason}"
    );
    let notices = app.get("/api/paas/notifications", &customer).await;
    assert!(
        notices
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "no_room"),
        "{:#}",
        notices.body
    );
    let free = || async {
        let regions = app.get("/api/paas/regions", &customer).await;
        let capacity = app.get("/api/admin/paas/capacity", &admin).await;
        let node = &capacity.body["nodes"][0];
        (
            regions.body[0]["free_memory"].as_i64().unwrap(),
            capacity.body["regions"][0]["free_memory"].as_i64().unwrap(),
            node["memory_allocated"].as_i64().unwrap(),
        )
    };
    assert_eq!(free().await, (0, 0, 8192));

    // The database fails to start, one application is stopped, another crashes for good.
    app.finish(&agent, &provision, false, json!([])).await;
    app.eventually(5, "the database failed", || async {
        app.get(&format!("/api/paas/databases/{db}"), &customer)
            .await
            .body["status"]
            == "failed"
    })
    .await;
    app.post(
        &format!("/api/paas/applications/{}/stop", apps[0]),
        &customer,
        json!({}),
    )
    .await
    .expect(202);
    let stop = app.next_task(&agent).await;
    app.finish(&agent, &stop, true, json!([])).await;
    let mut crashed = container(apps[1], customer_id, 1, 0, 1, "exited");
    crashed["crash_looping"] = json!(true);
    crashed["restart_count"] = json!(3);
    let still = container(apps[2], customer_id, 1, 0, 1, "running");
    app.eventually(10, "the crashed application failed", || async {
        app.beat(&agent, json!([crashed.clone(), still.clone()]))
            .await;
        app.get(&format!("/api/paas/applications/{}", apps[1]), &customer)
            .await
            .body["status"]
            == "failed"
    })
    .await;
    app.eventually(5, "the stopped application is stopped", || async {
        app.get(&format!("/api/paas/applications/{}", apps[0]), &customer)
            .await
            .body["status"]
            == "stopped"
    })
    .await;

    // Their room is back, everyone agrees, and the waiting deploy takes it
    // by itself.
    assert_eq!(free().await.2, 2048);
    let placed = app.next_task(&agent).await;
    assert_eq!(placed["spec"]["app_id"], fourth);
    assert_eq!(free().await, (4096, 4096, 4096));
    // Starting the stopped one again reserves its room first.
    app.post(
        &format!("/api/paas/applications/{}/start", apps[0]),
        &customer,
        json!({}),
    )
    .await
    .expect(202);
    assert_eq!(free().await.2, 6144, "three applications hold room now");
}

#[tokio::test]
async fn a_deploy_that_waited_too_long_for_room_gives_up_with_the_reason() {
    let actors = skypanel_actors::Settings {
        placement_wait: std::time::Duration::from_secs(2),
        ..common::actor_settings()
    };
    let app = TestApp::with_all_settings(common::settings(), actors).await;
    let admin = app.admin().await;
    let body = json!({"name": "enormous", "cpu_limit": 500, "memory_limit": 100000,
                      "storage_limit": 1024, "monthly_price": "9.00", "hourly_rate": "0.0100"});
    let plan = app
        .post("/api/admin/paas/plans", &admin, body)
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    let agent = app.agent(&admin, "worker-1", "local").await;
    app.beat(&agent, json!([])).await.expect(200);
    let (_, customer) = app.customer("alice@example.com").await;
    let id = app.app(&customer, "big", plan).await;
    let path = format!("/api/paas/applications/{id}");
    app.post(&format!("{path}/deploy"), &customer, json!({}))
        .await
        .expect(202);
    app.eventually(15, "the deploy gives up", || async {
        app.get(&path, &customer).await.body["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("the deploy gave up: no node of region local had room"))
    })
    .await;
    let now = app.get(&path, &customer).await;
    assert_eq!(
        now.body["status"], "pending",
        "never deployed, and says why"
    );
    let notices = app.get("/api/paas/notifications", &customer).await;
    let kinds: Vec<&str> = notices
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "no_room")
        .map(|n| n["message"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "waiting, then gave up: {kinds:?}");
    // Nothing waits any more, and nothing was placed.
    let leased = app.lease(&agent, 1).await;
    assert!(leased.body["tasks"].as_array().is_none_or(Vec::is_empty));
}
