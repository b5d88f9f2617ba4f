//! Faults, end to end on real processes, PostgreSQL, Redis, Docker and nginx:
//! PostgreSQL restarted and Redis killed in the middle of deploys, the control
//! plane killed with SIGKILL mid-deploy, an agent cut off past the offline
//! threshold while its build moves to another node, and every agent message
//! delivered twice. Each ends with the application serving, every task
//! finished, exactly its containers running and usage that bills each moment
//! once. Every test is named `docker_…` (they need Docker).

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use stack::proxy::{CutProxy, TwiceProxy};
use stack::services::{OwnPostgres, OwnRedis};
use stack::settle::{
    count, customer_with_app, files, mid_deploy, settled_exactly, slow_app, slow_step_runs,
};
use stack::{PLATFORM_DOMAIN, Repo, Stack, Timing, WEB_IMAGE, agent_dir};

/// The build ended well at `attempt`, the application runs and serves
/// `page`, and the platform has settled exactly.
async fn ends_serving(
    stack: &Stack,
    token: &str,
    app: i64,
    build: i64,
    attempt: i64,
    port: u16,
    page: &str,
) {
    let done = stack.build_ends(token, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(done["attempt"], attempt, "{done:#}");
    let running = stack.app_in(token, app, "running").await;
    let host = format!("{}.{PLATFORM_DOMAIN}", running["name"].as_str().unwrap());
    stack::serves(port, &host, "/", page).await;
    settled_exactly(stack, app, 1).await;
}

#[tokio::test]
async fn docker_postgresql_restarted_mid_deploy() {
    let postgres = OwnPostgres::start();
    let stack = Stack::start(Timing {
        database_server: Some(postgres.url()),
        ..Timing::default()
    })
    .await;
    let (_node, agent) = stack.node("worker-1").await;
    let plan = stack.plan().await;
    let (alice, app, _repo, build) = mid_deploy(&stack, plan, "alice", "through a restart").await;

    // Every connection of the control plane ends; the agent's reports meet
    // a control plane without its database for three seconds.
    postgres.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    postgres.start_again();

    // Attempt 1: the node's work was kept.
    ends_serving(
        &stack,
        &alice,
        app,
        build,
        1,
        agent.ingress_port,
        "through a restart",
    )
    .await;
}

#[tokio::test]
async fn docker_redis_killed_with_jobs_queued_loses_no_build() {
    let mut redis = OwnRedis::start();
    let stack = Stack::start(Timing {
        redis_url: Some(redis.url()),
        env: vec![("SKYPANEL_SWEEP_INTERVAL", "2".into())],
        ..Timing::default()
    })
    .await;
    let (_node, agent) = stack.node("worker-1").await;
    let plan = stack.plan().await;
    let (alice, first, _repo, build) = mid_deploy(&stack, plan, "alice", "first").await;

    // Redis dies with everything it held (no persistence): the running
    // build's job and its idempotency key are gone.
    redis.kill();
    // Deploys go on meanwhile: recorded, their jobs not queued.
    let (bob, second, _repo2) = customer_with_app(&stack, plan, "bob", "second").await;
    let later = stack.start_deploy(&bob, second).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.start_again();

    for (token, app, build, name, page) in [
        (&alice, first, build, "alice", "first"),
        (&bob, second, later, "bob", "second"),
    ] {
        let done = stack.build_ends(token, app, build).await;
        assert_eq!(done["status"], "success", "{done:#}");
        stack.app_in(token, app, "running").await;
        stack::serves(
            agent.ingress_port,
            &format!("{name}.{PLATFORM_DOMAIN}"),
            "/",
            page,
        )
        .await;
        settled_exactly(&stack, app, 1).await;
    }
}

#[tokio::test]
async fn a_hung_redis_makes_logs_and_the_inspector_answer_unavailable_not_hang() {
    let redis = OwnRedis::start();
    let stack = Stack::start(Timing {
        redis_url: Some(redis.url()),
        ..Timing::default()
    })
    .await;
    stack.pending_node("worker-1").await;
    let plan = stack.plan().await;
    let alice = stack.customer("alice@example.com").await;
    let (status, app) = stack
        .post(
            "/api/paas/applications",
            &alice,
            json!({"name": "quiet", "plan_id": plan, "region": "local", "image": WEB_IMAGE}),
        )
        .await;
    assert_eq!(status, 201, "{app:#}");
    let logs = format!("/api/paas/applications/{}/logs", app["id"]);
    let queues = "/api/admin/inspector/queues";
    let (status, _) = stack.call(reqwest::Method::GET, &logs, &alice, None).await;
    assert_eq!(status, 200);

    // Redis stops answering, its connections open: the requests that read
    // it answer 503 after a bounded wait; the others are not held up.
    redis.pause();
    for (path, token) in [(logs.as_str(), &alice), (queues, &stack.admin)] {
        let started = std::time::Instant::now();
        let (status, body) = stack.call(reqwest::Method::GET, path, token, None).await;
        let waited = started.elapsed();
        assert_eq!(status, 503, "{path}: {body:#}");
        assert!(
            waited < Duration::from_secs(10),
            "{path} waited {waited:?} on a hung Redis"
        );
    }
    let (status, _) = stack
        .call(reqwest::Method::GET, "/api/paas/applications", &alice, None)
        .await;
    assert_eq!(status, 200);

    redis.resume();
    stack
        .until(20, "logs answer again", || async {
            stack
                .call(reqwest::Method::GET, &logs, &alice, None)
                .await
                .0
                == 200
        })
        .await;
}

#[tokio::test]
async fn docker_the_control_plane_killed_mid_deploy_finishes_it_after_a_restart() {
    let mut stack = Stack::start(Timing::default()).await;
    let (_node, agent) = stack.node("worker-1").await;
    let plan = stack.plan().await;
    let (alice, app, _repo, build) = mid_deploy(&stack, plan, "alice", "after a kill").await;

    stack.kill_control_plane();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.start_control_plane().await;

    // Attempt 1: the node's work was kept.
    ends_serving(
        &stack,
        &alice,
        app,
        build,
        1,
        agent.ingress_port,
        "after a kill",
    )
    .await;
}

#[tokio::test]
async fn docker_an_agent_cut_off_past_the_offline_threshold_loses_its_build_and_stops_what_it_no_longer_owns()
 {
    let stack = Stack::start(Timing {
        offline_after: 3,
        lease_ttl: 3,
        ..Timing::default()
    })
    .await;
    // The first node reaches the control plane through a link we can cut;
    // each node has a namespace of its own (its own containers, as on a machine of its own).
    let (_, port) = stack.base.rsplit_once(':').unwrap();
    let link = CutProxy::start(format!("127.0.0.1:{port}")).await;
    let first_ns = format!("{}a-", stack.namespace);
    let second_ns = format!("{}b-", stack.namespace);
    let (first_node, first) = stack
        .node_at("worker-1", agent_dir(), &link.url, &first_ns)
        .await;
    let (second_node, second) = stack
        .node_at("worker-2", agent_dir(), &stack.base, &second_ns)
        .await;
    let plan = stack.plan().await;
    let alice = stack.customer("alice@example.com").await;
    // Release 1 runs on the first node (a quick build).
    let repo = Repo::new(&[
        (
            "Dockerfile",
            &format!("FROM {WEB_IMAGE}\nCOPY index.html /www/index.html\n"),
        ),
        ("index.html", "version one"),
    ]);
    let app = stack.git_app(&alice, "alice", plan, &repo.url()).await;
    let build = stack.start_deploy(&alice, app).await;
    assert_eq!(
        stack.build_ends(&alice, app, build).await["status"],
        "success"
    );
    let running = stack.app_in(&alice, app, "running").await;
    assert_eq!(running["node_id"].as_i64(), Some(first_node));
    stack::serves(
        first.ingress_port,
        &format!("alice.{PLATFORM_DOMAIN}"),
        "/",
        "version one",
    )
    .await;

    // Release 2's build starts there too; then the first node is cut off.
    let slow = slow_app("version two");
    repo.commit(&files(&slow), "version two");
    let build = stack.start_deploy(&alice, app).await;
    slow_step_runs(&stack, &alice, app, build).await;
    link.cut();

    // Its lease runs out, the node goes offline, the build moves.
    let done = stack.build_ends(&alice, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(done["attempt"], 2, "{done:#}");
    assert_eq!(done["node_id"].as_i64(), Some(second_node));
    let moved = stack.app_in(&alice, app, "running").await;
    assert_eq!(moved["node_id"].as_i64(), Some(second_node));
    stack::serves(
        second.ingress_port,
        &format!("alice.{PLATFORM_DOMAIN}"),
        "/",
        "version two",
    )
    .await;
    // The cut-off node still runs release 1 (it cannot know yet).
    assert!(
        stack
            .containers_in(&first_ns, app)
            .iter()
            .any(|c| c.ends_with(" running")),
        "{:?}",
        stack.containers_in(&first_ns, app)
    );

    // Reconnected: its reports about the lost build are refused, and it
    // removes the containers of the application that moved away.
    link.restore();
    stack
        .until(60, "the cut-off agent hears its lease is gone", || {
            let log = stack.agent_log(&first);
            std::future::ready(
                log.contains("status report refused")
                    || log.contains("lease lost; abandoning the task"),
            )
        })
        .await;
    stack
        .until(
            60,
            "the former node removes the application's containers",
            || async { stack.containers_in(&first_ns, app).is_empty() },
        )
        .await;
    settled_exactly(&stack, app, 1).await;
    assert_eq!(stack.containers_in(&second_ns, app).len(), 1);
    stack::serves(
        second.ingress_port,
        &format!("alice.{PLATFORM_DOMAIN}"),
        "/",
        "version two",
    )
    .await;
    let mut conn = AsyncPgConnection::establish(&stack.db.url).await.unwrap();
    let succeeded_attempts = count(
        &mut conn,
        "SELECT count(*) AS n FROM paas_tasks WHERE build_id = $1 AND status = 'succeeded'",
        build,
    )
    .await;
    assert_eq!(
        succeeded_attempts, 1,
        "exactly one attempt of the build counted"
    );
    drop(first);
}

#[tokio::test]
async fn docker_every_agent_message_delivered_twice_changes_nothing() {
    let stack = Stack::start(Timing {
        env: vec![("SKYPANEL_LEASE_ACK", "2".into())],
        ..Timing::default()
    })
    .await;
    let proxy = TwiceProxy::start(stack.base.clone()).await;
    let (_node, agent) = stack
        .node_at("worker-1", agent_dir(), &proxy.url, &stack.namespace)
        .await;
    let plan = stack.plan().await;
    let (alice, app, repo) = customer_with_app(&stack, plan, "alice", "said twice").await;
    let build = stack.start_deploy(&alice, app).await;
    let done = stack.build_ends(&alice, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    stack.app_in(&alice, app, "running").await;
    stack::serves(
        agent.ingress_port,
        &format!("alice.{PLATFORM_DOMAIN}"),
        "/",
        "said twice",
    )
    .await;

    // A scale, and a deploy right behind it, every message twice.
    let (status, body) = stack
        .post(
            &format!("/api/paas/applications/{app}/scale"),
            &alice,
            json!({"instance_count": 2}),
        )
        .await;
    assert_eq!(status, 202, "{body:#}");
    stack
        .until(60, "two instances run", || {
            std::future::ready(stack.running(app) == 2)
        })
        .await;
    stack.app_in(&alice, app, "running").await;
    let page = slow_app("said twice again");
    repo.commit(&files(&page), "again");
    let build = stack.start_deploy(&alice, app).await;
    let done = stack.build_ends(&alice, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    stack.app_in(&alice, app, "running").await;
    stack::serves(
        agent.ingress_port,
        &format!("alice.{PLATFORM_DOMAIN}"),
        "/",
        "said twice again",
    )
    .await;
    settled_exactly(&stack, app, 2).await;

    // The build's log holds each line once, though each batch came twice.
    let log = stack
        .get(
            &format!("/api/paas/applications/{app}/builds/{build}/logs"),
            &alice,
        )
        .await;
    let log = log["log"].as_str().unwrap();
    let mentions: Vec<&str> = log.lines().filter(|l| l.contains("a slow step")).collect();
    assert!(!mentions.is_empty(), "{log}");
    for line in &mentions {
        assert_eq!(
            mentions.iter().filter(|l| *l == line).count(),
            1,
            "a line stored twice: {log}"
        );
    }
    assert!(proxy.doubled() > 20);
    assert_eq!(proxy.broken(), 0, "a duplicate broke the control plane");
}
