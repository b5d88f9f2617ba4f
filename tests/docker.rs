//! End to end on real processes and the real Docker Engine: the control
//! plane, agents, and application containers. Every test is named `docker_…`
//! so that the suite needing Docker can be selected (`-E 'test(/^docker_/)'`).

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use serde_json::{Value, json};
use stack::{CRASHER_IMAGE, SLOW_IMAGE, Stack, Timing, WEB_IMAGE, fetch};

async fn image_app(stack: &Stack, token: &str, name: &str, plan: i64, image: &str) -> i64 {
    let body = json!({"name": name, "plan_id": plan, "region": "local", "image": image});
    let (status, app) = stack.post("/api/paas/applications", token, body).await;
    assert_eq!(status, 201, "{app:#}");
    app["id"].as_i64().unwrap()
}

async fn command(stack: &Stack, token: &str, app: i64, verb: &str, body: Value) -> Value {
    let (status, answer) = stack
        .post(&format!("/api/paas/applications/{app}/{verb}"), token, body)
        .await;
    assert_eq!(status, 202, "{verb}: {answer:#}");
    answer
}

/// Waits until the application has exactly `n` running instances; answers their host ports.
async fn running_instances(stack: &Stack, token: &str, app: i64, n: usize) -> Vec<i64> {
    let path = format!("/api/paas/applications/{app}/instances");
    stack
        .until(
            40,
            &format!("{n} running instance(s) of app {app}"),
            || async {
                let list = stack.get(&path, token).await;
                let list = list.as_array().unwrap().clone();
                list.len() == n && list.iter().all(|i| i["state"] == "running")
            },
        )
        .await;
    let list = stack.get(&path, token).await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["host_port"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn docker_an_image_app_deploys_scales_stops_starts_and_is_deleted() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let app = image_app(&stack, &alice, "web", plan, WEB_IMAGE).await;

    let deployed = command(&stack, &alice, app, "deploy", json!({})).await;
    assert_eq!(deployed["release"], 1);
    stack.app_in(&alice, app, "running").await;
    let ports = running_instances(&stack, &alice, app, 1).await;
    assert_eq!(
        fetch(ports[0]).await.as_deref(),
        Some("hello from skypanel\n")
    );

    // Every limit and hardening flag, from Docker itself.
    let name = format!("{}sp-app-{app}-r1-0", stack.namespace);
    let info = stack.inspect(&name);
    let host = &info["HostConfig"];
    assert_eq!(host["Memory"], 64 * 1024 * 1024);
    assert_eq!(host["NanoCpus"], 250_000_000);
    assert_eq!(host["PidsLimit"], 256);
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges"]));
    assert_eq!(host["Privileged"], false);
    assert!(
        host["Devices"].as_array().is_none_or(Vec::is_empty),
        "no host devices"
    );
    assert!(
        host["Binds"].is_null() && info["Mounts"].as_array().unwrap().is_empty(),
        "no mounts, no Docker socket"
    );
    assert_eq!(
        host["NetworkMode"],
        format!("{}sp-user-2", stack.namespace),
        "a network per customer"
    );
    let bindings = host["PortBindings"]["8080/tcp"].as_array().unwrap();
    assert!(
        bindings.iter().all(|b| b["HostIp"] == "127.0.0.1"),
        "published on loopback only: {bindings:?}"
    );
    let labels = &info["Config"]["Labels"];
    assert_eq!(
        (
            labels["skypanel.app"].as_str(),
            labels["skypanel.release"].as_str(),
            labels["skypanel.instance"].as_str()
        ),
        (Some(app.to_string().as_str()), Some("1"), Some("0"))
    );
    let env: Vec<&str> = info["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"PORT=8080"), "{env:?}");

    // Scale 1 → 3 → 1.
    command(&stack, &alice, app, "scale", json!({"instance_count": 3})).await;
    let ports = running_instances(&stack, &alice, app, 3).await;
    for port in &ports {
        assert_eq!(
            fetch(*port).await.as_deref(),
            Some("hello from skypanel\n"),
            "instance on {port}"
        );
    }
    command(&stack, &alice, app, "scale", json!({"instance_count": 1})).await;
    running_instances(&stack, &alice, app, 1).await;
    stack
        .until(20, "surplus containers removed", || async {
            stack.containers(app).len() == 1
        })
        .await;

    // Stop keeps the container, stopped; start brings it back.
    command(&stack, &alice, app, "stop", json!({})).await;
    stack.app_in(&alice, app, "stopped").await;
    assert!(
        stack.containers(app).iter().all(|c| c.ends_with("exited")),
        "{:?}",
        stack.containers(app)
    );
    command(&stack, &alice, app, "start", json!({})).await;
    stack.app_in(&alice, app, "running").await;
    let ports = running_instances(&stack, &alice, app, 1).await;
    assert!(fetch(ports[0]).await.is_some());

    // Delete: 202, then the application, its containers and its network are gone.
    let (status, _) = stack
        .call(
            reqwest::Method::DELETE,
            &format!("/api/paas/applications/{app}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let path = format!("/api/paas/applications/{app}");
    stack
        .until(30, "the application is gone", || async {
            stack
                .call(reqwest::Method::GET, &path, &alice, None)
                .await
                .0
                == 404
        })
        .await;
    assert!(stack.containers(app).is_empty(), "no container is left");
    let networks = std::process::Command::new("docker")
        .args([
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name={}sp-user-", stack.namespace),
        ])
        .output()
        .unwrap();
    assert!(networks.stdout.is_empty(), "the customer network is gone");
}

#[tokio::test]
async fn docker_a_killed_agent_loses_its_lease_and_the_restarted_one_finishes_without_duplicates() {
    let stack = Stack::start(Timing {
        lease_ttl: 3,
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let (_node, mut agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let app = image_app(&stack, &alice, "slow", plan, SLOW_IMAGE).await;
    command(&stack, &alice, app, "deploy", json!({})).await;

    // The container exists and the agent waits for it to listen: kill it now.
    stack
        .until(20, "the container is created", || async {
            !stack.containers(app).is_empty()
        })
        .await;
    agent.kill();
    let state_dir = agent.state_dir.clone();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;

    // The restarted agent (same credential) finishes the same task, attempt 2.
    let _agent = stack.agent(None, state_dir);
    stack.app_in(&alice, app, "running").await;
    let ports = running_instances(&stack, &alice, app, 1).await;
    assert!(fetch(ports[0]).await.is_some());
    assert_eq!(
        stack.containers(app).len(),
        1,
        "no duplicate container: {:?}",
        stack.containers(app)
    );
    assert_eq!(
        first_apply_attempt(&stack).await,
        2,
        "the second lease finished the task"
    );
}

/// The attempt that finished the first `app.apply` task.
async fn first_apply_attempt(stack: &Stack) -> i32 {
    let mut conn: diesel_async::AsyncPgConnection =
        <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(
            &stack.db.url,
        )
        .await
        .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Attempts {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        attempt: i32,
    }
    let task: Attempts = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT attempt FROM paas_tasks WHERE kind = 'app.apply' ORDER BY id LIMIT 1",
        ),
        &mut conn,
    )
    .await
    .unwrap();
    task.attempt
}

/// A task that runs longer than its lease (a 2 s lease, an app that takes
/// 4 s to listen; the acknowledgement window is 10 s) keeps it: the agent
/// extends on the lease's rhythm, not the acknowledgement window's.
#[tokio::test]
async fn docker_a_task_longer_than_its_lease_keeps_it_by_extending() {
    let stack = Stack::start(Timing {
        lease_ttl: 2,
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let app = image_app(&stack, &alice, "slow", plan, SLOW_IMAGE).await;
    command(&stack, &alice, app, "deploy", json!({})).await;
    stack.app_in(&alice, app, "running").await;
    assert_eq!(
        first_apply_attempt(&stack).await,
        1,
        "the first lease finished the task"
    );
}

#[tokio::test]
async fn docker_a_silent_node_goes_offline_its_apps_say_why_and_come_back_with_it() {
    let stack = Stack::start(Timing {
        offline_after: 3,
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let (node, mut agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let app = image_app(&stack, &alice, "web", plan, WEB_IMAGE).await;
    command(&stack, &alice, app, "deploy", json!({})).await;
    stack.app_in(&alice, app, "running").await;
    let ports = running_instances(&stack, &alice, app, 1).await;

    agent.kill();
    stack.until_node(15, node, "offline").await;
    // The containers keep serving (the node is only silent), but the
    // platform cannot vouch for them and no other node can take the
    // application: it says so, and its owner hears of it. No placement goes there.
    assert!(fetch(ports[0]).await.is_some());
    let down = stack.app_in(&alice, app, "failed").await;
    let reason = down["last_error"].as_str().unwrap();
    assert!(
        reason.contains("node went offline") && reason.contains("no node is available"),
        "{reason}"
    );
    let notices = stack.get("/api/paas/notifications", &alice).await;
    assert!(
        notices
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "app_unplaced"),
        "{notices:#}"
    );
    // A deploy meanwhile waits for a node, and says so.
    let other = image_app(&stack, &alice, "other", plan, WEB_IMAGE).await;
    let (status, waiting) = stack
        .post(
            &format!("/api/paas/applications/{other}/deploy"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{waiting:#}");
    assert_eq!(
        waiting["waiting"]["behind"],
        "room on a node of region local"
    );

    // Back online: the application is placed there again, its containers kept.
    let _agent = stack.agent(None, agent.state_dir.clone());
    stack.until_node(15, node, "online").await;
    stack.app_in(&alice, app, "running").await;
    let ports = running_instances(&stack, &alice, app, 1).await;
    assert!(fetch(ports[0]).await.is_some());
    // And the deploy that waited runs there.
    stack.app_in(&alice, other, "running").await;
}

#[tokio::test]
async fn docker_a_crashing_app_is_restarted_three_times_then_marked_failed() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let app = image_app(&stack, &alice, "crasher", plan, CRASHER_IMAGE).await;
    command(&stack, &alice, app, "deploy", json!({})).await;
    let failed = stack.app_in(&alice, app, "failed").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("kept crashing") && error.contains("3 restarts"),
        "{error}"
    );
    let instances = stack
        .get(&format!("/api/paas/applications/{app}/instances"), &alice)
        .await;
    assert_eq!(instances[0]["crash_looping"], true);
    assert_eq!(instances[0]["restart_count"], 3);
    // It stays down: the agent does not restart it a fourth time.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert!(
        stack.containers(app).iter().all(|c| c.ends_with("exited")),
        "{:?}",
        stack.containers(app)
    );
}

#[tokio::test]
async fn docker_an_unpaid_balance_stops_the_containers_and_a_credit_starts_them_again() {
    let stack = Stack::start(Timing {
        billing_grace: 0,
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let web = image_app(&stack, &alice, "web", plan, WEB_IMAGE).await;
    command(&stack, &alice, web, "deploy", json!({})).await;
    stack.app_in(&alice, web, "running").await;
    let ports = running_instances(&stack, &alice, web, 1).await;
    assert!(fetch(ports[0]).await.is_some());

    // The app has run for the last two hours (backdated: the clock is real).
    let run = stack.bill_past_hour().await;
    // (The hourly tick may have billed the hour first, if the test straddles one.)
    assert!(run["records"].as_i64().unwrap() <= 1);

    // No grace: the wallet is below zero, the app is suspended, Docker stops it.
    stack.app_in(&alice, web, "suspended").await;
    stack
        .until(30, "the container stopped", || async {
            let list = stack.containers(web);
            !list.is_empty() && list.iter().all(|c| !c.ends_with(" running"))
        })
        .await;
    let wallet = stack.get("/api/wallet", &alice).await;
    assert!(
        wallet["balance"].as_str().unwrap().starts_with('-'),
        "{wallet:#}"
    );

    // A credit brings it back, on Docker.
    let me = stack.get("/api/auth/me", &alice).await;
    let (status, _) = stack
        .post(
            &format!("/api/admin/wallets/{}/credit", me["id"]),
            &stack.admin,
            json!({"amount": "5.00", "description": "top-up"}),
        )
        .await;
    assert_eq!(status, 200);
    stack.app_in(&alice, web, "running").await;
    let ports = running_instances(&stack, &alice, web, 1).await;
    assert_eq!(
        fetch(ports[0]).await.as_deref(),
        Some("hello from skypanel\n")
    );
}
