//! The agent protocol on the real HTTP application, PostgreSQL and actors:
//! one-time registration, credentials kept apart from customer tokens,
//! heartbeats and node health, long-polled leases woken at commit, fenced
//! reports, replays, log batches, and leases that expire.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use std::time::{Duration, Instant};

use common::{Agent, TestApp, container};
use poem::http::Method;
use serde_json::{Value, json};

/// An admin, a plan, a customer with an image app, and an online agent in `local`.
async fn setup(app: &TestApp) -> (String, i64, String, i64, Agent) {
    let admin = app.admin().await;
    let plan = app.plan(&admin, "basic").await;
    let agent = app.agent(&admin, "worker-1", "local").await;
    app.beat(&agent, json!([])).await.expect(200);
    let (_, customer) = app.customer("alice@example.com").await;
    let application = app.app(&customer, "shop", plan).await;
    (admin, plan, customer, application, agent)
}

async fn deploy(app: &TestApp, customer: &str, application: i64) -> Value {
    app.post(
        &format!("/api/paas/applications/{application}/deploy"),
        customer,
        json!({}),
    )
    .await
    .expect(202)
    .clone()
}

#[tokio::test]
async fn registration_works_once_and_credentials_stay_apart() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let registered = app
        .post(
            "/api/admin/paas/nodes/register",
            &admin,
            json!({"name": "w1", "region": "local", "host_address": "127.0.0.1"}),
        )
        .await;
    let token = registered.expect(201)["registration_token"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = app.register_agent(&token).await;
    assert!(agent.credential.starts_with("spn_"));

    // The token works once.
    let body = json!({"registration_token": token, "agent_version": "x", "hostname": "h", "cpu_total": 1, "memory_total_mb": 1, "disk_total_mb": 1});
    let again = app
        .call(
            Method::POST,
            "/api/internal/paas/nodes/register",
            None,
            Some(body.clone()),
        )
        .await;
    again.expect_error(401, "unauthorized");
    let mut bogus = body;
    bogus["registration_token"] = json!("spr_nope");
    app.call(
        Method::POST,
        "/api/internal/paas/nodes/register",
        None,
        Some(bogus),
    )
    .await
    .expect_error(401, "unauthorized");

    // A customer token is no node credential, and a node credential is no customer token.
    let (_, customer) = app.customer("c@example.com").await;
    let beat_path = format!("/api/internal/paas/nodes/{}/heartbeat", agent.node_id);
    app.node_call(Method::POST, &beat_path, &customer, Some(json!({})))
        .await
        .expect_error(401, "unauthorized");
    // Without the node's header, the answer names the header agents send.
    let missing = app
        .call(Method::POST, &beat_path, Some(&customer), Some(json!({})))
        .await;
    let message = missing.expect_error(401, "unauthorized")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("X-SkyPanel-Node-Credential"), "{message}");
    // A customer endpoint without a token names the bearer token.
    let message = app
        .call(Method::GET, "/api/paas/applications", None, None)
        .await
        .expect_error(401, "unauthorized")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("Authorization: Bearer"), "{message}");
    app.get("/api/auth/me", &agent.credential)
        .await
        .expect_error(401, "unauthorized");
    app.get("/api/paas/applications", &agent.credential)
        .await
        .expect_error(401, "unauthorized");

    // A node speaks only for itself.
    let other = app.agent(&admin, "w2", "local").await;
    let foreign = format!("/api/internal/paas/nodes/{}/leases", other.node_id);
    app.node_call(Method::POST, &foreign, &agent.credential, None)
        .await
        .expect_error(403, "forbidden");

    // Registration and agent registration are audited.
    let nodes = app.get("/api/admin/paas/nodes", &admin).await;
    assert_eq!(
        nodes.expect(200)[0]["registration_expires_at"],
        Value::Null,
        "the token is spent"
    );
}

#[tokio::test]
async fn heartbeats_drive_node_health() {
    let app = TestApp::with_all_settings(
        common::settings(),
        skypanel_actors::Settings {
            node_offline_after: Duration::from_secs(1),
            pressure_window: Duration::from_millis(300),
            ..common::actor_settings()
        },
    )
    .await;
    let admin = app.admin().await;
    let agent = app.agent(&admin, "w1", "local").await;
    let node = async |app: &TestApp| app.get("/api/admin/paas/nodes", &admin).await.body[0].clone();
    assert_eq!(node(&app).await["status"], "pending");

    let ack = app.beat(&agent, json!([])).await;
    assert_eq!(ack.expect(200)["node_status"], "online");
    let n = node(&app).await;
    assert_eq!(
        (
            n["cpu_total"].as_i64(),
            n["cpu_used"].as_i64(),
            n["memory_used"].as_i64()
        ),
        (Some(4000), Some(400), Some(1024))
    );
    assert!(n["last_heartbeat"].is_string());

    // A build keeps every core busy: still online (CPU alone is no pressure
    // below 95 %, and pressure must last the whole window).
    let path = format!("/api/internal/paas/nodes/{}/heartbeat", agent.node_id);
    let beat = |cpu: f64, memory: i64| {
        json!({"node_id": agent.node_id, "timestamp": chrono::Utc::now(), "agent_version": "t",
            "cpu_usage_percent": cpu, "cpu_total": 4000, "memory_used_mb": memory, "memory_total_mb": 8192,
            "disk_used_mb": 1, "disk_total_mb": 100, "container_count": 0, "containers": []})
    };
    let status_after = async |body: serde_json::Value| {
        app.node_call(Method::POST, &path, &agent.credential, Some(body))
            .await
            .expect(200)["node_status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status_after(beat(93.0, 1024)).await, "online");
    // An ordinary beat's figures are written with the next batch.
    app.eventually(5, "the beat's figures are recorded", || async {
        node(&app).await["cpu_used"] == 3720
    })
    .await;
    // 95 % memory in use: under pressure, degraded once it lasts the window.
    assert_eq!(status_after(beat(5.0, 7800)).await, "online");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status_after(beat(5.0, 7800)).await, "degraded");
    // A degraded node still takes work when it is the region's only one with room.
    let plan = app.plan(&admin, "basic").await;
    let (_, customer) = app.customer("alice@example.com").await;
    let shop = app.app(&customer, "shop", plan).await;
    app.post(
        &format!("/api/paas/applications/{shop}/deploy"),
        &customer,
        json!({}),
    )
    .await
    .expect(202);
    let task = app.next_task(&agent).await;
    assert_eq!(task["spec"]["app_id"], shop);
    // Back to normal: online at once.
    assert_eq!(
        app.beat(&agent, json!([])).await.expect(200)["node_status"],
        "online"
    );

    // Silence longer than the threshold: offline; the next heartbeat: online again.
    app.eventually(5, "the node goes offline", || async {
        node(&app).await["status"] == "offline"
    })
    .await;
    assert_eq!(
        app.beat(&agent, json!([])).await.expect(200)["node_status"],
        "online"
    );

    // A heartbeat naming another node is refused.
    let wrong = json!({"node_id": agent.node_id + 100, "timestamp": chrono::Utc::now(), "agent_version": "t", "cpu_usage_percent": 5.0,
        "cpu_total": 1, "memory_used_mb": 1, "memory_total_mb": 1, "disk_used_mb": 1, "disk_total_mb": 1, "container_count": 0, "containers": []});
    let refused = app
        .node_call(Method::POST, &path, &agent.credential, Some(wrong))
        .await;
    assert_eq!(refused.expect_error(422, "invalid")["field"], "node_id");
}

#[tokio::test]
async fn a_long_poll_gets_its_task_the_moment_it_is_committed() {
    let app = TestApp::new().await;
    let (_, _, customer, application, agent) = setup(&app).await;
    app.post(
        &format!("/api/paas/applications/{application}/env"),
        &customer,
        json!({"key": "GREETING", "value": "hello-canary"}),
    )
    .await
    .expect(201);

    let started = Instant::now();
    let poll = app.lease(&agent, 20);
    let deployer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        deploy(&app, &customer, application).await
    };
    let (leased, accepted) = tokio::join!(poll, deployer);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "the long-poll waited {waited:?}: it was not woken"
    );
    assert_eq!(accepted["application"]["status"], "building");
    assert_eq!(accepted["release"], 1);

    let task = &leased.expect(200)["tasks"][0];
    assert_eq!(task["attempt"], 1);
    let spec = &task["spec"];
    assert_eq!(spec["kind"], "app.apply");
    assert_eq!(
        (
            spec["app_id"].as_i64(),
            spec["release"].as_i64(),
            spec["instances"].as_i64()
        ),
        (Some(application), Some(1), Some(1))
    );
    assert_eq!(spec["image"], "skypanel-test/busybox:1");
    assert_eq!(
        spec["env"]["GREETING"], "hello-canary",
        "the environment reaches the node"
    );
    assert_eq!(spec["env"]["PORT"], "8080");
    assert_eq!(
        (spec["cpu_millicores"].as_i64(), spec["memory_mb"].as_i64()),
        (Some(500), Some(512))
    );

    // At rest the environment is sealed, not in the payload.
    #[derive(diesel::QueryableByName)]
    struct Stored {
        #[diesel(sql_type = diesel::sql_types::Text)]
        payload: String,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        sealed: Vec<u8>,
    }
    let mut conn = app.sql().await;
    let stored: Stored = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT payload::text AS payload, sealed_secrets AS sealed FROM paas_tasks",
        ),
        &mut conn,
    )
    .await
    .unwrap();
    assert!(!stored.payload.contains("hello-canary"));
    assert!(!stored.sealed.windows(6).any(|w| w == b"canary"));

    // Nothing more to lease: 204 after the wait.
    let idle = app.lease(&agent, 0).await;
    assert_eq!(idle.status.as_u16(), 204);
}

#[tokio::test]
async fn two_agents_polling_for_one_task_one_gets_it() {
    let app = TestApp::new().await;
    let (_, _, customer, application, agent) = setup(&app).await;
    let first = app.lease(&agent, 3);
    let second = app.lease(&agent, 3);
    let deployer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        deploy(&app, &customer, application).await
    };
    let (a, b, _) = tokio::join!(first, second, deployer);
    let got: Vec<&common::Answer> = [&a, &b]
        .into_iter()
        .filter(|x| x.status.as_u16() == 200)
        .collect();
    assert_eq!(
        got.len(),
        1,
        "exactly one poll gets the task: {a:?} / {b:?}"
    );
    assert_eq!(got[0].body["tasks"].as_array().unwrap().len(), 1);
    let empty = if a.status.as_u16() == 200 { &b } else { &a };
    assert_eq!(empty.status.as_u16(), 204);
}

#[tokio::test]
async fn a_lease_request_delivered_twice_answers_the_same_tasks() {
    let app = TestApp::new().await;
    let (_, _, customer, application, agent) = setup(&app).await;
    deploy(&app, &customer, application).await;
    let request = uuid::Uuid::new_v4();
    let path = format!(
        "/api/internal/paas/nodes/{}/leases?wait=1&request={request}",
        agent.node_id
    );
    let first = app
        .node_call(Method::POST, &path, &agent.credential, None)
        .await;
    let first = first.expect(200)["tasks"].clone();
    assert_eq!(first.as_array().unwrap().len(), 1, "{first:#}");
    // The answer was lost; the agent sends the request again: the same task
    // under the same lease, not a 204 while the task sits held.
    let again = app
        .node_call(Method::POST, &path, &agent.credential, None)
        .await;
    let again = again.expect(200)["tasks"].clone();
    assert_eq!(again[0]["task_id"], first[0]["task_id"]);
    assert_eq!(again[0]["lease_id"], first[0]["lease_id"]);
    // Once the node takes the task up, the old request has nothing to answer;
    // another request id never gets another request's tasks.
    let task = first[0]["task_id"].as_i64().unwrap();
    let lease = first[0]["lease_id"].as_str().unwrap();
    app.report(&agent, task, lease, "running", None, json!([]))
        .await
        .expect(200);
    let after = app
        .node_call(Method::POST, &path, &agent.credential, None)
        .await;
    assert_eq!(after.status.as_u16(), 204, "{:?}", after.body);
    let other = format!(
        "/api/internal/paas/nodes/{}/leases?wait=0&request={}",
        agent.node_id,
        uuid::Uuid::new_v4()
    );
    let other = app
        .node_call(Method::POST, &other, &agent.credential, None)
        .await;
    assert_eq!(other.status.as_u16(), 204, "{:?}", other.body);
}

#[tokio::test]
async fn reports_are_fenced_by_the_lease_and_replays_change_nothing() {
    let app = TestApp::new().await;
    let (_, _, customer, application, agent) = setup(&app).await;
    deploy(&app, &customer, application).await;
    let leased = app.lease(&agent, 0).await;
    let task = leased.expect(200)["tasks"][0].clone();
    let task_id = task["task_id"].as_i64().unwrap();
    let lease = task["lease_id"].as_str().unwrap().to_string();

    // Extending works with the lease, not without it.
    let extend = format!("/api/internal/paas/tasks/{task_id}/extend");
    let extended = app
        .node_call(
            Method::POST,
            &extend,
            &agent.credential,
            Some(json!({"lease_id": lease})),
        )
        .await;
    assert!(extended.expect(200)["lease_deadline"].is_string());
    let stale = json!({"lease_id": "00000000-0000-0000-0000-000000000000"});
    app.node_call(
        Method::POST,
        &extend,
        &agent.credential,
        Some(stale.clone()),
    )
    .await
    .expect_error(409, "stale_lease");

    // Logs: a batch resent is stored once.
    let logs = format!("/api/internal/paas/tasks/{task_id}/logs");
    let batch = json!({"lease_id": lease, "seq": 0, "lines": ["pulling", "starting"]});
    assert_eq!(
        app.node_call(Method::POST, &logs, &agent.credential, Some(batch.clone()))
            .await
            .expect(200)["stored"],
        true
    );
    assert_eq!(
        app.node_call(Method::POST, &logs, &agent.credential, Some(batch))
            .await
            .expect(200)["stored"],
        false
    );

    // A stale lease changes nothing.
    let wrong = app
        .report(
            &agent,
            task_id,
            "00000000-0000-0000-0000-000000000000",
            "succeeded",
            None,
            json!([]),
        )
        .await;
    wrong.expect_error(409, "stale_lease");

    // Running, then succeeded five times: one transition.
    app.report(&agent, task_id, &lease, "running", None, json!([]))
        .await
        .expect(200);
    let instances = json!([container(application, 0, 1, 0, 1, "running")]);
    let mut changed = Vec::new();
    for _ in 0..5 {
        let ack = app
            .report(
                &agent,
                task_id,
                &lease,
                "succeeded",
                None,
                instances.clone(),
            )
            .await;
        changed.push(ack.expect(200)["changed"].as_bool().unwrap());
    }
    assert_eq!(changed, [true, false, false, false, false]);
    // A contradiction after the fact is refused.
    app.report(&agent, task_id, &lease, "failed", Some("late"), json!([]))
        .await
        .expect_error(409, "conflict");

    let path = format!("/api/paas/applications/{application}");
    app.eventually(5, "the application runs", || async {
        app.get(&path, &customer).await.body["status"] == "running"
    })
    .await;
    let running = app.get(&path, &customer).await;
    assert!(running.body["current_release_id"].is_i64());
    let listed = app.get(&format!("{path}/instances"), &customer).await;
    assert_eq!(listed.expect(200)[0]["host_port"], 40000);
}

#[tokio::test]
async fn an_expired_lease_returns_the_task_and_the_last_expiry_fails_it() {
    let app = TestApp::new().await;
    let (_, _, customer, application, agent) = setup(&app).await;
    deploy(&app, &customer, application).await;
    let expire = |task_id: i64| {
        format!(
            "UPDATE paas_tasks SET lease_deadline = now() - interval '1 second' WHERE id = {task_id}"
        )
    };
    let lease_again = async || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let answer = app.lease(&agent, 1).await;
            if answer.status.as_u16() == 200 {
                return answer.body["tasks"][0].clone();
            }
            assert!(Instant::now() < deadline, "the task was not leased again");
        }
    };

    // A lease never acknowledged (its answer went nowhere) costs no attempt.
    let unacknowledged = app.lease(&agent, 0).await.expect(200)["tasks"][0].clone();
    let task_id = unacknowledged["task_id"].as_i64().unwrap();
    assert_eq!(unacknowledged["attempt"], 1);
    app.exec_sql(&expire(task_id)).await;
    let first = lease_again().await;
    assert_eq!(
        (first["task_id"].as_i64(), first["attempt"].as_i64()),
        (Some(task_id), Some(1))
    );

    // The agent starts the work, then vanishes: the lease runs out, attempt 2 follows.
    let old_lease = first["lease_id"].as_str().unwrap().to_string();
    app.report(&agent, task_id, &old_lease, "running", None, json!([]))
        .await
        .expect(200);
    let logs = format!("/api/internal/paas/tasks/{task_id}/logs");
    let batch = |lease: &str, line: &str| json!({"lease_id": lease, "seq": 0, "lines": [line]});
    app.node_call(
        Method::POST,
        &logs,
        &agent.credential,
        Some(batch(&old_lease, "attempt one")),
    )
    .await
    .expect(200);
    app.exec_sql(&expire(task_id)).await;
    let second = lease_again().await;
    assert_eq!(
        (second["task_id"].as_i64(), second["attempt"].as_i64()),
        (Some(task_id), Some(2))
    );
    // The second attempt numbers its batches from 0 too: both logs are kept.
    let second_lease = second["lease_id"].as_str().unwrap();
    let stored = app
        .node_call(
            Method::POST,
            &logs,
            &agent.credential,
            Some(batch(second_lease, "attempt two")),
        )
        .await;
    assert_eq!(stored.expect(200)["stored"], true);
    let mut conn = app.sql().await;
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        lines: String,
    }
    let kept: Vec<Line> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT lines FROM paas_task_logs WHERE task_id = {task_id} ORDER BY attempt, seq"
        )),
        &mut conn,
    )
    .await
    .unwrap();
    let kept: Vec<&str> = kept.iter().map(|l| l.lines.as_str()).collect();
    assert_eq!(kept, ["attempt one", "attempt two"]);
    // The vanished agent's reports are refused.
    app.report(&agent, task_id, &old_lease, "succeeded", None, json!([]))
        .await
        .expect_error(409, "stale_lease");

    // Past its last attempt the task fails, and so does the rollout.
    let lease = second["lease_id"].as_str().unwrap().to_string();
    app.report(&agent, task_id, &lease, "running", None, json!([]))
        .await
        .expect(200);
    app.exec_sql(&format!("UPDATE paas_tasks SET attempt = max_attempts, lease_deadline = now() - interval '1 second' WHERE id = {task_id}")).await;
    let path = format!("/api/paas/applications/{application}");
    app.eventually(5, "the application fails", || async {
        app.get(&path, &customer).await.body["status"] == "failed"
    })
    .await;
    let failed = app.get(&path, &customer).await;
    assert!(
        failed.body["last_error"]
            .as_str()
            .unwrap()
            .contains("stopped answering"),
        "{:#}",
        failed.body
    );
}

#[tokio::test]
async fn an_outcome_the_actor_missed_is_caught_up() {
    let app = TestApp::new().await;
    let (_, _, customer, application, agent) = setup(&app).await;
    deploy(&app, &customer, application).await;
    let task = app.lease(&agent, 0).await.expect(200)["tasks"][0].clone();
    let task_id = task["task_id"].as_i64().unwrap();
    // The outcome is stored, but no actor hears of it (as when the control
    // plane stops between storing a report and telling the actor).
    app.exec_sql(&format!(
        "UPDATE paas_tasks SET status = 'succeeded', finished_at = now() WHERE id = {task_id}"
    ))
    .await;
    let path = format!("/api/paas/applications/{application}");
    app.eventually(
        3 * skypanel_actors::CATCH_UP_EVERY.as_secs(),
        "the actor catches up",
        || async { app.get(&path, &customer).await.body["status"] == "running" },
    )
    .await;
    assert!(app.get(&path, &customer).await.body["current_release_id"].is_i64());
}

#[tokio::test]
async fn an_unreadable_task_fails_and_does_not_block_its_node() {
    let app = TestApp::new().await;
    let (_, _, customer, application, agent) = setup(&app).await;
    app.exec_sql(&format!(
        "INSERT INTO paas_tasks (node_id, kind, payload) VALUES ({}, 'app.apply', '{{\"kind\": \"nonsense\"}}')",
        agent.node_id
    ))
    .await;
    // Nothing to hand out but the unreadable task: it fails, the poll answers empty.
    let first = app.lease(&agent, 0).await;
    assert_eq!(first.status.as_u16(), 204, "{:#}", first.body);
    let mut conn = app.sql().await;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let row: Row = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT status FROM paas_tasks WHERE kind = 'app.apply' ORDER BY id LIMIT 1",
        ),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(row.status, "failed");
    // The node's next task goes out as usual.
    deploy(&app, &customer, application).await;
    let leased = app.lease(&agent, 0).await;
    assert_eq!(leased.expect(200)["tasks"][0]["spec"]["kind"], "app.apply");
}

#[tokio::test]
async fn credentials_rotate_with_a_grace_period_and_long_waits_are_bounded() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let agent = app.agent(&admin, "w1", "local").await;
    assert_eq!(
        app.beat(&agent, json!([])).await.expect(200)["rotate_credential"],
        false
    );
    // A day later the heartbeat answer asks for a rotation.
    app.exec_sql("UPDATE paas_nodes SET credential_issued_at = now() - interval '25 hours'")
        .await;
    let node_path = format!("/api/admin/paas/nodes/{}", agent.node_id);
    app.put(&node_path, &admin, json!({"disabled": false}))
        .await
        .expect(200);
    assert_eq!(
        app.beat(&agent, json!([])).await.expect(200)["rotate_credential"],
        true
    );
    let rotate = format!(
        "/api/internal/paas/nodes/{}/credentials/rotate",
        agent.node_id
    );
    let rotated = app
        .node_call(Method::POST, &rotate, &agent.credential, None)
        .await;
    let fresh = rotated.expect(200)["credential"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, agent.credential);
    // The same rotation delivered again (a lost answer, a proxy's retry)
    // answers the same credential: whichever answer reaches the agent works.
    let again = app
        .node_call(Method::POST, &rotate, &agent.credential, None)
        .await;
    assert_eq!(again.expect(200)["credential"], fresh.as_str());
    let renewed = Agent {
        credential: fresh,
        ..agent.clone()
    };
    // Rotated: the heartbeats stop asking.
    assert_eq!(
        app.beat(&renewed, json!([])).await.expect(200)["rotate_credential"],
        false
    );
    // A node still on the replaced credential (its rotation's answer lost)
    // is asked to rotate again, which answers the same credential.
    assert_eq!(
        app.beat(&agent, json!([])).await.expect(200)["rotate_credential"],
        true
    );
    // After the grace period only the new credential works.
    app.exec_sql(
        "UPDATE paas_nodes SET previous_credential_expires_at = now() - interval '1 second'",
    )
    .await;
    app.beat(&agent, json!([]))
        .await
        .expect_error(401, "unauthorized");
    app.beat(&renewed, json!([])).await.expect(200);
    // A later rotation gives a credential of its own; the one it replaced
    // keeps its grace period, the one before that is gone.
    let next = app
        .node_call(Method::POST, &rotate, &renewed.credential, None)
        .await
        .expect(200)["credential"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next != renewed.credential && next != agent.credential);
    app.node_call(Method::POST, &rotate, &agent.credential, None)
        .await
        .expect_error(401, "unauthorized");
    app.beat(&renewed, json!([])).await.expect(200);
    let newest = Agent {
        credential: next,
        ..agent.clone()
    };
    app.beat(&newest, json!([])).await.expect(200);

    let too_long = format!("/api/internal/paas/nodes/{}/leases?wait=61", agent.node_id);
    let refused = app
        .node_call(Method::POST, &too_long, &renewed.credential, None)
        .await;
    assert_eq!(refused.expect_error(422, "invalid")["field"], "wait");

    // Credentials that authenticated are remembered (no query per call), yet
    // a removed node's credential stops working at once.
    app.delete(&format!("/api/admin/paas/nodes/{}", agent.node_id), &admin)
        .await
        .expect(204);
    app.beat(&newest, json!([]))
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn a_scales_outcome_arriving_while_a_git_build_runs_keeps_the_build() {
    let app = TestApp::new().await;
    let (_, _, customer, application, agent) = setup(&app).await;
    let customer_id = app.get("/api/auth/me", &customer).await.expect(200)["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/paas/applications/{application}");
    // Running (an image deploy the fake agent reports done).
    deploy(&app, &customer, application).await;
    let finish = |task: Value, instances: Value| {
        let app = &app;
        let agent = &agent;
        async move {
            let id = task["task_id"].as_i64().unwrap();
            let lease = task["lease_id"].as_str().unwrap().to_string();
            app.report(agent, id, &lease, "running", None, json!([]))
                .await
                .expect(200);
            app.report(agent, id, &lease, "succeeded", None, instances)
                .await
                .expect(200);
        }
    };
    let first = app.lease(&agent, 1).await.expect(200)["tasks"][0].clone();
    finish(
        first,
        json!([container(application, customer_id, 1, 0, 1, "running")]),
    )
    .await;
    app.eventually(5, "the application runs", || async {
        app.get(&path, &customer).await.body["status"] == "running"
    })
    .await;

    // A scale whose task is out on the node, then a deploy from git at once.
    app.post(
        &format!("{path}/scale"),
        &customer,
        json!({"instance_count": 2}),
    )
    .await
    .expect(202);
    let scale = app.lease(&agent, 1).await.expect(200)["tasks"][0].clone();
    assert_eq!(scale["spec"]["kind"], "app.apply", "{scale:#}");
    app.put(
        &path,
        &customer,
        json!({"image": null, "git_repo_url": "https://git.example.com/alice/shop.git"}),
    )
    .await
    .expect(200);
    let build = deploy(&app, &customer, application).await["build"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(app.get(&path, &customer).await.body["status"], "building");

    // The scale's outcome arrives: recorded, and the build goes on.
    finish(
        scale,
        json!([
            container(application, customer_id, 1, 0, 2, "running"),
            container(application, customer_id, 1, 1, 2, "running")
        ]),
    )
    .await;
    app.eventually(5, "the scale's outcome is recorded", || async {
        app.get(&format!("{path}/instances"), &customer)
            .await
            .body
            .as_array()
            .is_some_and(|i| i.len() == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = app.get(&path, &customer).await;
    assert_eq!(now.body["status"], "building", "{:#}", now.body);
    assert_eq!(now.body["instance_count"], 2);
    let build = app.get(&format!("{path}/builds/{build}"), &customer).await;
    assert_eq!(build.body["status"], "pending", "{:#}", build.body);
}

#[tokio::test]
async fn a_database_whose_provisioning_outlives_its_last_lease_fails_with_the_reason() {
    let app = TestApp::new().await;
    let (_, plan, customer, _, agent) = setup(&app).await;
    let body = json!({"name": "main-db", "db_type": "postgresql", "version": "16",
                      "plan_id": plan, "region": "local"});
    let created = app.post("/api/paas/databases", &customer, body).await;
    let id = created.expect(201)["id"].as_i64().unwrap();
    let leased = app.lease(&agent, 5).await.expect(200)["tasks"][0].clone();
    assert_eq!(leased["spec"]["kind"], "db.provision", "{leased:#}");
    let task_id = leased["task_id"].as_i64().unwrap();
    let lease = leased["lease_id"].as_str().unwrap();
    app.report(&agent, task_id, lease, "running", None, json!([]))
        .await
        .expect(200);
    // The node goes silent on its last attempt: the database does not stay
    // pending, it fails and says why.
    app.exec_sql(&format!("UPDATE paas_tasks SET attempt = max_attempts, lease_deadline = now() - interval '1 second' WHERE id = {task_id}")).await;
    let path = format!("/api/paas/databases/{id}");
    app.eventually(5, "the database fails", || async {
        app.get(&path, &customer).await.body["status"] == "failed"
    })
    .await;
    let failed = app.get(&path, &customer).await;
    assert!(
        failed.body["failure_reason"]
            .as_str()
            .unwrap()
            .contains("stopped answering"),
        "{:#}",
        failed.body
    );
}

#[tokio::test]
async fn an_image_push_that_outlives_its_last_lease_is_recorded_failed_on_its_release() {
    let app = TestApp::new().await;
    let (_, _, customer, application, agent) = setup(&app).await;
    deploy(&app, &customer, application).await;
    // The deploy's own task runs first (an application's tasks go one at a time).
    let apply = app.next_task(&agent).await;
    let (apply_id, apply_lease) = (
        apply["task_id"].as_i64().unwrap(),
        apply["lease_id"].as_str().unwrap().to_string(),
    );
    for status in ["running", "succeeded"] {
        app.report(&agent, apply_id, &apply_lease, status, None, json!([]))
            .await
            .expect(200);
    }
    app.exec_sql(&format!(
        "INSERT INTO paas_tasks (node_id, application_id, kind, payload) VALUES ({}, {application}, 'image.push', \
         '{{\"kind\": \"image.push\", \"app_id\": {application}, \"release\": 1, \"image_id\": \"sha256:0123\", \"target\": \"127.0.0.1:5050/app-{application}:v1\"}}')",
        agent.node_id
    ))
    .await;
    let mut push = Value::Null;
    for _ in 0..5 {
        let answer = app.lease(&agent, 1).await;
        if let Some(found) = answer.body["tasks"]
            .as_array()
            .and_then(|tasks| tasks.iter().find(|t| t["spec"]["kind"] == "image.push"))
        {
            push = found.clone();
            break;
        }
    }
    assert!(push.is_object(), "the push was not leased");
    let task_id = push["task_id"].as_i64().unwrap();
    let lease = push["lease_id"].as_str().unwrap();
    app.report(&agent, task_id, lease, "running", None, json!([]))
        .await
        .expect(200);
    app.exec_sql(&format!("UPDATE paas_tasks SET attempt = max_attempts, lease_deadline = now() - interval '1 second' WHERE id = {task_id}")).await;
    let path = format!("/api/paas/applications/{application}/releases");
    app.eventually(5, "the release records the failed push", || async {
        let releases = app.get(&path, &customer).await.body;
        releases.as_array().unwrap().iter().any(|r| {
            r["version"] == 1
                && r["push_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("stopped answering"))
        })
    })
    .await;
}

/// A lease stream opened by hand on a real TCP connection to the
/// application: the upgrade request, then one JSON line per ask and reply.
struct Stream {
    io: tokio::net::TcpStream,
    pending: Vec<u8>,
}

impl Stream {
    /// The status line's code and the stream (upgraded when 101).
    async fn open(port: u16, node: i64, credential: &str) -> (u16, Stream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut io = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let request = format!(
            "GET /api/internal/paas/nodes/{node}/lease-stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Connection: upgrade\r\nUpgrade: skypanel-lease/1\r\n\
             X-SkyPanel-Node-Credential: {credential}\r\n\r\n"
        );
        io.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(io.read(&mut byte).await.unwrap(), 1, "closed in the head");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let status = head[9..12].parse().unwrap();
        (
            status,
            Stream {
                io,
                pending: Vec::new(),
            },
        )
    }

    async fn send(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        self.io
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next reply, or None when the control plane closed the stream.
    async fn reply(&mut self) -> Option<Value> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout(Duration::from_secs(30), self.io.read(&mut chunk))
                .await
                .expect("a reply within 30 s")
                .unwrap_or(0);
            if read == 0 {
                return None;
            }
            self.pending.extend_from_slice(&chunk[..read]);
        }
    }
}

/// Serves the test application on a real port (an upgrade needs a real
/// connection) and answers the port.
async fn served(app: &TestApp) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let endpoint = skypanel_http::app(app.state.clone());
    tokio::spawn(async move {
        let _ = poem::Server::new(poem::listener::TcpListener::bind(format!(
            "127.0.0.1:{port}"
        )))
        .run(endpoint)
        .await;
    });
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    port
}

#[tokio::test]
async fn a_lease_stream_answers_long_polls_on_one_connection_and_refuses_clearly() {
    let app = TestApp::new().await;
    let (admin, _, customer, application, agent) = setup(&app).await;
    let other = app.agent(&admin, "worker-2", "local").await;
    let port = served(&app).await;
    let path = format!("/api/internal/paas/nodes/{}/lease-stream", agent.node_id);

    // Refused before any upgrade: no `Upgrade` header, another node's
    // credential, no credential at all.
    let plain = app
        .node_call(Method::GET, &path, &agent.credential, None)
        .await;
    assert_eq!(
        plain.expect_error(400, "upgrade_required")["field"],
        "Upgrade"
    );
    let (status, _) = Stream::open(port, agent.node_id, &other.credential).await;
    assert_eq!(status, 403);
    let (status, _) = Stream::open(port, agent.node_id, "spn_not-a-credential").await;
    assert_eq!(status, 401);

    let (status, mut stream) = Stream::open(port, agent.node_id, &agent.credential).await;
    assert_eq!(status, 101);
    // The control plane speaks first.
    assert_eq!(
        stream.reply().await.unwrap(),
        json!({"hello": "skypanel-lease/1"})
    );
    // Nothing queued: an ask that does not wait answers no tasks.
    stream.send(r#"{"wait":0,"max":8}"#).await;
    assert_eq!(stream.reply().await.unwrap()["tasks"], json!([]));

    // A waiting ask is answered the moment its task commits.
    let started = Instant::now();
    let request = uuid::Uuid::new_v4();
    stream
        .send(&format!(r#"{{"wait":20,"max":8,"request":"{request}"}}"#))
        .await;
    let deployer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        deploy(&app, &customer, application).await
    };
    let (reply, _) = tokio::join!(stream.reply(), deployer);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "the ask waited {waited:?}: it was not woken"
    );
    let reply = reply.unwrap();
    let task = &reply["tasks"][0];
    assert_eq!(task["spec"]["kind"], "app.apply");
    assert_eq!(task["spec"]["app_id"], application);
    assert!(reply.get("refused").is_none());

    // The same request id again (its reply was lost): the same task.
    stream
        .send(&format!(r#"{{"wait":0,"max":8,"request":"{request}"}}"#))
        .await;
    let again = stream.reply().await.unwrap();
    assert_eq!(again["tasks"][0]["task_id"], task["task_id"]);
    assert_eq!(again["tasks"][0]["lease_id"], task["lease_id"]);

    // A wait past the bound is refused as over HTTP, and the stream closes.
    stream.send(r#"{"wait":61,"max":8}"#).await;
    let refused = stream.reply().await.unwrap();
    assert_eq!(refused["refused"]["code"], "invalid");
    assert_eq!(refused["refused"]["field"], "wait");
    assert_eq!(refused["refused"]["status"], 422);
    assert!(stream.reply().await.is_none(), "the stream closes");

    // A line that is not an ask: refused, closed.
    let (_, mut stream) = Stream::open(port, agent.node_id, &agent.credential).await;
    stream.reply().await.unwrap();
    stream.send("lease please").await;
    assert_eq!(stream.reply().await.unwrap()["refused"]["status"], 422);
    assert!(stream.reply().await.is_none());
    // An endless line: refused past 1 KiB, not held.
    let (_, mut stream) = Stream::open(port, agent.node_id, &agent.credential).await;
    stream.reply().await.unwrap();
    {
        use tokio::io::AsyncWriteExt;
        stream.io.write_all(&[b'x'; 4096]).await.unwrap();
    }
    assert_eq!(stream.reply().await.unwrap()["refused"]["status"], 413);

    // Each ask checks the credential: once the node is removed, the next
    // ask on a stream opened before is refused.
    let (_, mut stream) = Stream::open(port, other.node_id, &other.credential).await;
    stream.reply().await.unwrap();
    stream.send(r#"{"wait":0,"max":8}"#).await;
    assert_eq!(stream.reply().await.unwrap()["tasks"], json!([]));
    app.delete(&format!("/api/admin/paas/nodes/{}", other.node_id), &admin)
        .await
        .expect(204);
    stream.send(r#"{"wait":0,"max":8}"#).await;
    let refused = stream.reply().await.unwrap();
    assert_eq!(refused["refused"]["code"], "unauthorized");
    assert_eq!(refused["refused"]["status"], 401);
    assert!(stream.reply().await.is_none());
}

#[tokio::test]
async fn a_tasks_end_is_an_event_sent_at_its_commit() {
    let app = TestApp::new().await;
    let (_, _, customer, application, agent) = setup(&app).await;
    deploy(&app, &customer, application).await;
    let task = app.next_task(&agent).await;
    let id = task["task_id"].as_i64().unwrap();
    let lease = task["lease_id"].as_str().unwrap().to_string();
    let ends = app.state.store().task_ends().clone();

    // A transition into an end state that rolls back sends nothing.
    let armed = ends.arm(id);
    {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = app.sql().await;
        conn.batch_execute(&format!(
            "BEGIN; UPDATE paas_tasks SET status = 'failed' WHERE id = {id}; ROLLBACK;"
        ))
        .await
        .unwrap();
    }
    assert!(
        !armed.wait(Duration::from_millis(1500)).await,
        "woken by a transition that never committed"
    );
    // Running is not an end.
    let armed = ends.arm(id);
    app.report(&agent, id, &lease, "running", None, json!([]))
        .await
        .expect(200);
    assert!(!armed.wait(Duration::from_millis(1500)).await);

    // The end wakes the waiter at once (not at its bound), and the waiter
    // leaves nothing behind.
    let armed = ends.arm(id);
    assert_eq!(ends.waited(), 1);
    let started = Instant::now();
    let waiting = tokio::spawn(armed.wait(Duration::from_secs(30)));
    app.report(&agent, id, &lease, "succeeded", None, json!([]))
        .await
        .expect(200);
    assert!(waiting.await.unwrap(), "the end did not wake the waiter");
    let woken = started.elapsed();
    assert!(woken < Duration::from_secs(10), "woken after {woken:?}");
    assert_eq!(ends.waited(), 0);
}
