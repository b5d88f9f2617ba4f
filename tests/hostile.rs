//! Hostile tenants, round two, end to end on the real control plane, agents,
//! Docker and nginx: builds run in a sandbox (a process limit, a memory
//! limit, a network from which the node and the cloud metadata address are
//! out of reach) while another customer's application keeps answering; a
//! CPU-bound build does not stop deploys on its node; applications cannot
//! reach the metadata address either. Every test is named `docker_…`.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stack::{PLATFORM_DOMAIN, Repo, Stack, Timing, WEB_IMAGE, agent_dir};

/// A plan whose builds get `memory` MB and `pids` processes.
async fn build_plan(stack: &Stack, memory: i32, pids: i32) -> i64 {
    let body = json!({"name": format!("builds-{memory}-{pids}"), "cpu_limit": 250, "memory_limit": 64,
                      "storage_limit": 100, "monthly_price": "5.00", "hourly_rate": "0.0070",
                      "build_memory_limit": memory, "build_pids_limit": pids});
    let (status, plan) = stack
        .post("/api/admin/paas/plans", &stack.admin, body)
        .await;
    assert_eq!(status, 201, "{plan:#}");
    plan["id"].as_i64().unwrap()
}

/// A repository whose build runs `step` (with a nonce, so it is never cached).
fn hostile_repo(step: &str) -> Repo {
    let dockerfile = format!(
        "FROM {WEB_IMAGE}\nRUN echo hostile step {} && {step}\n",
        uuid::Uuid::new_v4().simple()
    );
    Repo::new(&[("Dockerfile", &dockerfile)])
}

/// Another customer's application, serving, to watch during a hostile build.
async fn neighbour(stack: &Stack) -> String {
    let bob = stack.customer("bob@example.com").await;
    let plan = stack.plan().await;
    let body = json!({"name": "neighbour", "plan_id": plan, "region": "local", "image": WEB_IMAGE});
    let (status, app) = stack.post("/api/paas/applications", &bob, body).await;
    assert_eq!(status, 201, "{app:#}");
    let id = app["id"].as_i64().unwrap();
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{id}/deploy"),
            &bob,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(&bob, id, "running").await;
    format!("neighbour.{PLATFORM_DOMAIN}")
}

/// While `until` has not happened: the neighbour's answers through the
/// ingress (failures counted) and the API's latency (an authenticated read
/// of `token`'s applications: the health check answers from a cache),
/// every 100 ms.
async fn watch_during<F, Fut>(
    stack: &Stack,
    token: &str,
    port: u16,
    host: &str,
    mut until: F,
) -> (usize, usize, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let (mut served, mut failed, mut slowest) = (0, 0, Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !until().await {
        assert!(Instant::now() < deadline, "the hostile build never ended");
        match stack::through_ingress(port, host, "/").await {
            Some((200, _)) => served += 1,
            other => {
                eprintln!("the neighbour failed to answer: {other:?}");
                failed += 1
            }
        }
        let asked = Instant::now();
        let read = stack
            .http
            .get(format!("{}/api/paas/applications", stack.base))
            .bearer_auth(token)
            .send()
            .await;
        assert!(read.is_ok_and(|r| r.status().is_success()));
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (served, failed, slowest)
}

async fn build_status(stack: &Stack, token: &str, app: i64, build: i64) -> Value {
    stack
        .get(
            &format!("/api/paas/applications/{app}/builds/{build}"),
            token,
        )
        .await
}

#[tokio::test]
async fn docker_a_fork_bomb_in_a_build_stops_at_its_process_limit_while_a_neighbour_serves() {
    let stack = Stack::start(Timing::default()).await;
    let (_node, agent) = stack.node("worker-1").await;
    let host = neighbour(&stack).await;
    let alice = stack.customer("alice@example.com").await;
    let plan = build_plan(&stack, 256, 64).await;
    // Forks until it cannot, and never ends by itself.
    let bomb = format!("while true; do sleep 6{} & done", std::process::id() % 10);
    let repo = hostile_repo(&bomb);
    let app = stack.git_app(&alice, "bomb", plan, &repo.url()).await;
    let build = stack.start_deploy(&alice, app).await;
    let (served, failed, slowest) =
        watch_during(&stack, &alice, agent.ingress_port, &host, || async {
            !matches!(
                build_status(&stack, &alice, app, build).await["status"].as_str(),
                Some("pending" | "building")
            )
        })
        .await;
    eprintln!(
        "during the fork bomb: neighbour {served} answers, {failed} failed; slowest API answer {slowest:?}"
    );
    assert_eq!(failed, 0, "the neighbour kept answering");
    assert!(
        slowest < Duration::from_secs(2),
        "the API kept answering: {slowest:?}"
    );
    let done = build_status(&stack, &alice, app, build).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_eq!(
        done["failure_reason"],
        "the build reached its limit of 64 processes and was stopped"
    );
    // Nothing of it keeps running on the node.
    stack
        .until(30, "the build's container is gone", || async {
            let (_, commands) =
                stack::docker_text(&["ps", "-a", "--no-trunc", "--format", "{{.Command}}"]);
            !commands.contains(&bomb)
        })
        .await;
}

#[tokio::test]
async fn docker_a_memory_bomb_in_a_build_is_killed_with_its_limit_named() {
    let stack = Stack::start(Timing::default()).await;
    let (_node, agent) = stack.node("worker-1").await;
    let host = neighbour(&stack).await;
    let alice = stack.customer("alice@example.com").await;
    let plan = build_plan(&stack, 64, 1024).await;
    let repo = hostile_repo("x=$(cat /dev/urandom)");
    let app = stack.git_app(&alice, "hog", plan, &repo.url()).await;
    let build = stack.start_deploy(&alice, app).await;
    let (_, failed, slowest) = watch_during(&stack, &alice, agent.ingress_port, &host, || async {
        !matches!(
            build_status(&stack, &alice, app, build).await["status"].as_str(),
            Some("pending" | "building")
        )
    })
    .await;
    assert_eq!(failed, 0, "the neighbour kept answering");
    eprintln!("during the memory bomb: slowest API answer {slowest:?}");
    let done = build_status(&stack, &alice, app, build).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_eq!(
        done["failure_reason"],
        "the build used more than 64 MB of memory, its limit, and a step was killed"
    );
}

#[tokio::test]
async fn docker_builds_and_apps_reach_neither_the_node_nor_the_metadata_address() {
    let stack = Stack::start(Timing::default()).await;
    let (_node, agent) = stack.node("worker-1").await;
    // A listener on the node (all its addresses) and one at the metadata
    // address (an alias of the node's loopback, as a cloud's would be).
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listeners = Listeners::start(port);
    for address in ["172.17.0.1", "169.254.169.254"] {
        stack
            .until(20, "the node's listeners answer", || async {
                let answer = reqwest::get(format!("http://{address}:{port}/")).await;
                answer.is_ok_and(|a| a.status().is_success())
            })
            .await;
    }
    let probe = |address: &str| {
        format!(
            "if printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {address} {port} | grep -q 200; \
             then echo reached-{address}; else echo blocked-{address}; fi"
        )
    };
    // From a plain container the node's listener answers (the probe works,
    // and only builds are kept off the node).
    let (_, plain) =
        stack::docker_text(&["run", "--rm", WEB_IMAGE, "sh", "-c", &probe("172.17.0.1")]);
    assert!(plain.contains("reached"), "the probe works: {plain}");

    let alice = stack.customer("alice@example.com").await;
    let plan = stack.plan().await;
    let steps = format!("{} && {}", probe("172.17.0.1"), probe("169.254.169.254"));
    let repo = Repo::new(&[(
        "Dockerfile",
        &format!(
            "FROM {WEB_IMAGE}\nRUN echo probe {} && {steps}\n",
            uuid::Uuid::new_v4().simple()
        ),
    )]);
    let app = stack.git_app(&alice, "prober", plan, &repo.url()).await;
    let build = stack.start_deploy(&alice, app).await;
    let done = stack.build_ends(&alice, app, build).await;
    let log = stack
        .get(
            &format!("/api/paas/applications/{app}/builds/{build}/logs"),
            &alice,
        )
        .await["log"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(done["status"], "success", "{log}");
    assert!(
        log.contains("blocked-172.17.0.1"),
        "a build reached the node: {log}"
    );
    assert!(
        log.contains("blocked-169.254.169.254"),
        "a build reached the metadata address: {log}"
    );

    // An application's container cannot reach the metadata address either.
    stack.app_in(&alice, app, "running").await;
    let container = stack.containers(app)[0]
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let (_, from_app) =
        stack::docker_text(&["exec", &container, "sh", "-c", &probe("169.254.169.254")]);
    assert!(
        from_app.contains("blocked"),
        "an app reached the metadata address: {from_app}"
    );
    drop(listeners);
    drop(agent);
}

/// An HTTP listener on every address of the node, the metadata address
/// among them (an alias of the loopback); both go on drop.
struct Listeners {
    node: std::process::Child,
}

impl Listeners {
    fn start(port: u16) -> Listeners {
        let serve = |address: &str| {
            std::process::Command::new("python3")
                .args(["-m", "http.server", &port.to_string(), "--bind", address])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        // The metadata address is the node's own: the listener on every
        // address answers there too.
        let _ = std::process::Command::new("ip")
            .args(["addr", "add", "169.254.169.254/32", "dev", "lo"])
            .status();
        Listeners {
            node: serve("0.0.0.0"),
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        let _ = self.node.kill();
        let _ = std::process::Command::new("ip")
            .args(["addr", "del", "169.254.169.254/32", "dev", "lo"])
            .status();
    }
}

#[tokio::test]
async fn docker_a_cpu_bound_build_does_not_stop_a_deploy_on_its_node() {
    let stack = Stack::start(Timing::default()).await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let plan = stack.plan().await;
    // Three busy loops for a while (the build's CPU quota holds them to one core).
    let burn = "i=0; while [ $i -lt 1500000 ]; do i=$((i+1)); done";
    let repo = hostile_repo(&format!("({burn}) & ({burn}) & ({burn}) & wait"));
    let busy = stack.git_app(&alice, "busy", plan, &repo.url()).await;
    let build = stack.start_deploy(&alice, busy).await;
    stack
        .until_build_log(&alice, busy, build, "hostile step")
        .await;
    // Meanwhile another application deploys on the same node at once.
    let body = json!({"name": "quick", "plan_id": plan, "region": "local", "image": WEB_IMAGE});
    let (status, quick) = stack.post("/api/paas/applications", &alice, body).await;
    assert_eq!(status, 201);
    let quick = quick["id"].as_i64().unwrap();
    let (status, answer) = stack
        .post(
            &format!("/api/paas/applications/{quick}/deploy"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{answer:#}");
    assert!(answer["waiting"].is_null(), "placed at once: {answer:#}");
    stack.app_in(&alice, quick, "running").await;
    stack::serves(
        agent.ingress_port,
        &format!("quick.{PLATFORM_DOMAIN}"),
        "/",
        "hello from skypanel",
    )
    .await;
    let nodes = stack.get("/api/admin/paas/nodes", &stack.admin).await;
    assert_eq!(nodes[0]["status"], "online", "{nodes:#}");
    assert_eq!(
        stack.build_ends(&alice, busy, build).await["status"],
        "success"
    );
}

#[tokio::test]
async fn docker_a_flood_of_build_log_keeps_its_head_and_tail_and_says_what_was_cut() {
    let stack = Stack::start(Timing::default()).await;
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let plan = stack.plan().await;
    // About 50 MB of output, lines numbered.
    let flood = "i=0; while [ $i -lt 500000 ]; do \
                 echo \"flood line $i ................................................................................\"; \
                 i=$((i+1)); done";
    let repo = hostile_repo(flood);
    let app = stack.git_app(&alice, "loud", plan, &repo.url()).await;
    let build = stack.start_deploy(&alice, app).await;
    // Followed live, the log ends with the cut and the tail, then the status.
    let live = stack
        .http
        .get(format!(
            "{}/api/paas/applications/{app}/builds/{build}/logs?follow=true",
            stack.base
        ))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let done = stack.build_ends(&alice, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    let log = stack
        .get(
            &format!("/api/paas/applications/{app}/builds/{build}/logs"),
            &alice,
        )
        .await["log"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        log.len() <= 4 * 1024 * 1024 + 64 * 1024,
        "{} bytes kept",
        log.len()
    );
    assert!(log.contains("flood line 0 "), "the head is kept");
    assert!(log.contains("flood line 499999 "), "the tail is kept");
    let cut = log
        .lines()
        .find(|l| l.contains("bytes of the log were left out"))
        .expect("a line says what was cut");
    let left_out: u64 = cut.split_whitespace().find_map(|w| w.parse().ok()).unwrap();
    assert!(left_out > 40 * 1024 * 1024, "{cut}");
    assert!(
        live.contains("bytes of the log were left out"),
        "the live stream says it too"
    );
    assert!(
        live.contains("flood line 499999 "),
        "the live stream ends with the tail"
    );
}

#[tokio::test]
async fn docker_an_application_log_line_longer_than_the_cap_is_cut_not_dropped() {
    let stack = Stack::start(Timing::default()).await;
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let plan = stack.plan().await;
    // A 128 KiB line at start, then it serves.
    let start = "i=0; s=x; while [ $i -lt 17 ]; do s=$s$s; i=$((i+1)); done; \
                 echo start-$s-end; echo after the long line; exec httpd -f -p $PORT -h /www";
    let repo = Repo::new(&[(
        "Dockerfile",
        &format!("FROM {WEB_IMAGE}\nCMD [\"/bin/sh\",\"-c\",\"{start}\"]\n"),
    )]);
    let app = stack.git_app(&alice, "chatty", plan, &repo.url()).await;
    let build = stack.start_deploy(&alice, app).await;
    assert_eq!(
        stack.build_ends(&alice, app, build).await["status"],
        "success"
    );
    stack.app_in(&alice, app, "running").await;
    let path = format!("/api/paas/applications/{app}/logs?tail=500");
    stack
        .until(30, "the line after the long one is logged", || async {
            stack
                .get(&path, &alice)
                .await
                .to_string()
                .contains("after the long line")
        })
        .await;
    let logs = stack.get(&path, &alice).await;
    let lines: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    let first = lines
        .iter()
        .find(|l| l.starts_with("start-x"))
        .expect("the long line is there");
    assert!(first.len() <= 8 * 1024, "{}", first.len());
    assert!(first.ends_with("bytes cut]"), "it says it was cut");
}

#[tokio::test]
async fn docker_the_registration_token_is_never_on_the_agents_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let stack = Stack::start(Timing::default()).await;
    let body = json!({"name": "tokened", "region": "local", "host_address": "127.0.0.1"});
    let (status, registered) = stack
        .post("/api/admin/paas/nodes/register", &stack.admin, body)
        .await;
    assert_eq!(status, 201, "{registered:#}");
    let token = registered["registration_token"].as_str().unwrap();
    let node = registered["node_id"].as_i64().unwrap();
    // The install command the answer carries reads the token from stdin.
    let install = registered["install_command"].as_str().unwrap();
    assert!(!install.contains(token), "{install}");
    let state_dir = agent_dir();
    let command = || stack.agent_command(&stack.base, &stack.namespace, &state_dir);

    // On the command line: refused, saying why, before anything else.
    let mut flagged = command();
    flagged.args(["--token", token]);
    let mut agent = stack.spawn_agent(flagged, state_dir.clone());
    assert!(agent.exits_within(20).is_some_and(|s| !s.success()));
    let log = stack.agent_log(&agent);
    assert!(log.contains("every user of the node sees it"), "{log}");
    assert!(
        !log.contains(token),
        "the refusal does not repeat the token: {log}"
    );

    // In a file others can read: refused, naming the mode.
    let file = state_dir.with_extension("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut from_file = command();
    from_file.arg("--token-file").arg(&file);
    let mut agent = stack.spawn_agent(from_file, state_dir.clone());
    assert!(agent.exits_within(20).is_some_and(|s| !s.success()));
    let log = stack.agent_log(&agent);
    assert!(
        log.contains("mode 644") && log.contains("chmod 600"),
        "{log}"
    );

    // A 0600 file: the node registers, the spent file is deleted, and what
    // `ps` shows of the agent holds no token.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut from_file = command();
    from_file.env("SKYPANEL_AGENT_TOKEN_FILE", &file);
    let agent = stack.spawn_agent(from_file, state_dir.clone());
    stack.until_node(20, node, "online").await;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", agent.pid())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(!cmdline.contains("spr_"), "{cmdline}");
    stack
        .until(10, "the spent token file is deleted", || async {
            !file.exists()
        })
        .await;
}
