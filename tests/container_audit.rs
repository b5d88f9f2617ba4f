//! An audit of a deployed application's container, from `docker inspect`
//! and from inside it: unprivileged, every capability dropped,
//! no-new-privileges, no Docker socket, a read-only root file system with a
//! writable /tmp; a flood of processes stops at the
//! pids limit and an allocation past the memory limit is killed inside the
//! container while another customer's application keeps serving; and
//! neither the control plane's PostgreSQL and Redis nor another customer's
//! container can be reached.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use serde_json::{Value, json};
use stack::{Stack, Timing, WEB_IMAGE, docker_text as docker, through_ingress};

async fn deployed(stack: &Stack, token: &str, name: &str, plan: i64) -> i64 {
    let body = json!({"name": name, "plan_id": plan, "region": "local", "image": WEB_IMAGE});
    let (status, app) = stack.post("/api/paas/applications", token, body).await;
    assert_eq!(status, 201, "{app:#}");
    let id = app["id"].as_i64().unwrap();
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{id}/deploy"),
            token,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(token, id, "running").await;
    id
}

/// Runs a shell script inside a container; answers (exit ok, output).
fn inside(container: &str, script: &str) -> (bool, String) {
    docker(&["exec", container, "sh", "-c", script])
}

#[tokio::test]
async fn docker_an_application_container_is_confined() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let bob = stack.customer("bob@example.com").await;
    let shop = deployed(&stack, &alice, "shop", plan).await;
    let blog = deployed(&stack, &bob, "blog", plan).await;
    // `containers` answers "<name> <state>".
    let name_of = |app: i64| {
        stack.containers(app)[0]
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let container = name_of(shop);
    let bobs = name_of(blog);
    let bob_serves = || async {
        through_ingress(agent.ingress_port, "blog.apps.test", "/")
            .await
            .is_some_and(|(code, _)| code == 200)
    };
    stack
        .until(60, "bob's application serves", || async {
            bob_serves().await
        })
        .await;

    // What Docker says.
    let info: Value = stack.inspect(&container);
    let host = &info["HostConfig"];
    assert_eq!(host["Privileged"], false);
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert!(
        host["CapAdd"].as_array().is_none_or(Vec::is_empty),
        "{}",
        host["CapAdd"]
    );
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges"]));
    assert_eq!(host["PidsLimit"], 256);
    assert_eq!(host["Memory"], 64 * 1024 * 1024);
    let mounts = info["Mounts"].to_string();
    assert!(!mounts.contains("docker.sock"), "{mounts}");
    assert_eq!(host["ReadonlyRootfs"], true);
    assert!(
        host["Tmpfs"]["/tmp"]
            .as_str()
            .is_some_and(|o| o.contains("size=32m") && o.contains("nosuid")),
        "{}",
        host["Tmpfs"]
    );

    // What the container sees: no capabilities, no new privileges, no socket.
    let (_, status) = inside(
        &container,
        "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status",
    );
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    assert!(status.contains("CapBnd:\t0000000000000000"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    let (_, socket) = inside(
        &container,
        "ls /var/run/docker.sock /run/docker.sock 2>&1; true",
    );
    assert!(
        !socket.contains("docker.sock\n") && socket.contains("No such file"),
        "{socket}"
    );
    let (ok, _) = inside(
        &container,
        "touch /etc/owned-by-the-app 2>/dev/null && echo yes; chown root /bin/sh",
    );
    assert!(!ok, "chown needs a capability it does not have");
    // The root file system is read-only; /tmp is the writable place.
    let (_, written) = inside(
        &container,
        "echo x > /www/index.html 2>&1; echo x > /owned 2>&1; echo kept > /tmp/scratch && cat /tmp/scratch",
    );
    assert_eq!(
        written.matches("Read-only file system").count(),
        2,
        "{written}"
    );
    assert!(written.lines().any(|l| l == "kept"), "{written}");

    // A flood of processes stops at the pids limit: the flooding subshell
    // dies on a failed fork; its parent counts with shell built-ins.
    let (_, flood) = inside(
        &container,
        "( n=0; while [ $n -lt 400 ]; do sleep 8 & n=$((n+1)); done ) 2>/dev/null; set -- /proc/[0-9]*; echo procs=$#",
    );
    let procs: usize = flood
        .lines()
        .find_map(|l| l.strip_prefix("procs="))
        .unwrap_or_else(|| panic!("{flood}"))
        .parse()
        .unwrap();
    assert!(
        (200..=256).contains(&procs),
        "the pids limit holds: {procs} processes"
    );
    assert!(
        bob_serves().await,
        "another customer's application serves meanwhile"
    );

    // An allocation past the memory limit is killed inside the container.
    tokio::time::sleep(std::time::Duration::from_secs(9)).await;
    let (_, oom) = inside(
        &container,
        "head -c 200000000 /dev/zero | tail > /dev/null; echo status=$?",
    );
    assert!(
        oom.contains("status=137"),
        "the allocation was killed: {oom}"
    );
    assert!(
        bob_serves().await,
        "another customer's application serves after"
    );
    assert_eq!(stack.inspect(&bobs)["State"]["Running"], true);

    // Nothing of the platform's or another customer's is reachable.
    let network = info["NetworkSettings"]["Networks"].as_object().unwrap();
    let gateway = network.values().next().unwrap()["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_ip = stack.inspect(&bobs)["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    for (what, address, port) in [
        ("the control plane's PostgreSQL", gateway.as_str(), "5432"),
        ("the test Redis", gateway.as_str(), "6391"),
        ("another customer's container", bob_ip.as_str(), "8080"),
    ] {
        let (_, answer) = inside(
            &container,
            &format!(
                "nc -w 2 {address} {port} </dev/null >/dev/null 2>&1 && echo open || echo closed"
            ),
        );
        assert_eq!(answer, "closed", "{what} at {address}:{port} is reachable");
    }
}
