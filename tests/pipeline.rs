//! The deploy pipeline's edges, end to end on real processes, Docker, nginx
//! and git: canary secrets (a private repository's token, an environment
//! variable, a linked database's password) never show in any log, stored
//! text or answer, push
//! webhooks deploy (signed) or are refused, build logs follow live, builds
//! can be cancelled, and runtime logs and metrics come back from the node.
//! Every test is named `docker_…` (they need Docker).

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stack::{PLATFORM_DOMAIN, Repo, Stack, Timing, WEB_IMAGE};

fn dockerfile_app(page: &str, start: Option<&str>) -> Vec<(&'static str, String)> {
    let mut dockerfile =
        format!("FROM {WEB_IMAGE}\nCOPY index.html /www/index.html\nCOPY cgi-bin /www/cgi-bin\n");
    if let Some(start) = start {
        dockerfile.push_str(&format!("CMD [\"/bin/sh\", \"-c\", \"{start}\"]\n"));
    }
    vec![
        ("Dockerfile", dockerfile),
        ("index.html", page.to_string()),
        (
            "cgi-bin/shout",
            "#!/bin/sh\necho \"shout $QUERY_STRING\" >&2\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n"
                .into(),
        ),
    ]
}

fn files<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(p, t)| (*p, t.as_str())).collect()
}

async fn create_app(stack: &Stack, token: &str, body: Value) -> i64 {
    let (status, app) = stack.post("/api/paas/applications", token, body).await;
    assert_eq!(status, 201, "{app:#}");
    app["id"].as_i64().unwrap()
}

/// A private git server (smart HTTP behind basic authentication).
struct GitServer {
    child: Child,
    root: std::path::PathBuf,
    port: u16,
}

impl GitServer {
    fn start(password: &str) -> GitServer {
        let root = std::env::temp_dir().join(format!(
            "skypanel-githttp-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&root).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/git_http_server.py"
        );
        let log = std::fs::File::create(root.join("server.log")).unwrap();
        let child = Command::new("python3")
            .args([script, &port.to_string()])
            .arg(&root)
            .args(["x-access-token", password])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the git server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        GitServer { child, root, port }
    }

    /// Publishes `repo` as `<name>.git`; answers its URL.
    fn publish(&self, repo: &Repo, name: &str) -> String {
        let bare = self.root.join(format!("{name}.git"));
        let _ = std::fs::remove_dir_all(&bare);
        let status = Command::new("git")
            .args(["clone", "--quiet", "--bare"])
            .arg(&repo.dir)
            .arg(&bare)
            .status()
            .unwrap();
        assert!(status.success());
        format!("http://127.0.0.1:{}/{name}.git", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Every text the platform stored about builds and tasks, from the database.
async fn stored_texts(stack: &Stack) -> String {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        text: String,
    }
    let mut conn = diesel_async::AsyncPgConnection::establish(&stack.db.url)
        .await
        .unwrap();
    let rows: Vec<Text> = diesel::sql_query(
        "SELECT t::text AS text FROM paas_tasks t
         UNION ALL SELECT l::text FROM paas_task_logs l
         UNION ALL SELECT b::text FROM paas_builds b
         UNION ALL SELECT a::text FROM audit_log a
         UNION ALL SELECT r::text FROM paas_releases r
         UNION ALL SELECT ap.last_error FROM paas_applications ap WHERE ap.last_error IS NOT NULL",
    )
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|r| r.text)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn docker_canary_secrets_never_appear_in_a_log_or_an_error() {
    stack::engines::ensure_engine_images();
    let stack = Stack::start(Timing {
        log_level: "debug",
        ..Timing::default()
    })
    .await;
    stack::engines::local_engine(&stack, "postgresql", "16", stack::engines::POSTGRES_IMAGE).await;
    let plan = stack.plan().await;
    let db_plan = stack::engines::database_plan(&stack).await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
    let server = GitServer::start(&canary);
    let repo = Repo::new(&files(&dockerfile_app("private page", None)));
    let url = server.publish(&repo, "private");
    let app = create_app(
        &stack,
        &alice,
        json!({"name": "private", "plan_id": plan, "region": "local",
               "git_repo_url": url, "git_oauth_token": canary}),
    )
    .await;
    // A canary in the environment, and a database (its password is one) linked in.
    let env_canary = format!("envcanary-{}", uuid::Uuid::new_v4().simple());
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/env"),
            &alice,
            json!({"key": "PAYMENT_API_KEY", "value": env_canary}),
        )
        .await;
    assert_eq!(status, 201);
    let body = json!({"name": "private-db", "db_type": "postgresql", "version": "16", "plan_id": db_plan, "region": "local"});
    let (status, created) = stack.post("/api/paas/databases", &alice, body).await;
    assert_eq!(status, 201, "{created:#}");
    let db = created["id"].as_i64().unwrap();
    stack
        .until(120, "the database runs", || async {
            stack
                .get(&format!("/api/paas/databases/{db}"), &alice)
                .await["status"]
                == "running"
        })
        .await;
    let password = stack
        .get(&format!("/api/paas/databases/{db}"), &alice)
        .await["connection"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(password.len() >= 16);
    let (status, linked) = stack
        .post(
            &format!("/api/paas/applications/{app}/databases/{db}"),
            &alice,
            json!({}),
        )
        .await;
    assert!(matches!(status, 200 | 201), "{linked:#}");

    let build = stack.start_deploy(&alice, app).await;
    let done = stack.build_ends(&alice, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    stack::serves(
        agent.ingress_port,
        &format!("private.{PLATFORM_DOMAIN}"),
        "/",
        "private page",
    )
    .await;

    // A wrong token fails the build with a reason, and shows neither token.
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let (status, _) = stack
        .call(
            reqwest::Method::PUT,
            &format!("/api/paas/applications/{app}"),
            &alice,
            Some(json!({"git_oauth_token": wrong})),
        )
        .await;
    assert_eq!(status, 200);
    let build = stack.start_deploy(&alice, app).await;
    let failed = stack.build_ends(&alice, app, build).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let reason = failed["failure_reason"].as_str().unwrap();
    assert!(reason.contains("cannot clone the repository"), "{reason}");
    assert!(
        server.log().contains("401"),
        "the server refused the wrong token"
    );

    // Every text, with where it came from.
    let mut everything: Vec<(String, String)> =
        vec![("the database".into(), stored_texts(&stack).await)];
    for build in stack
        .get(&format!("/api/paas/applications/{app}/builds"), &alice)
        .await
        .as_array()
        .unwrap()
    {
        let log = stack
            .get(
                &format!("/api/paas/applications/{app}/builds/{}/logs", build["id"]),
                &alice,
            )
            .await;
        everything.push((
            format!("build {}'s log", build["id"]),
            log["log"].as_str().unwrap().to_string(),
        ));
    }
    everything.push((
        "the application".into(),
        stack
            .get(&format!("/api/paas/applications/{app}"), &alice)
            .await
            .to_string(),
    ));
    everything.push(("the git server's log".into(), server.log()));
    // What the admin sees, and the answers to mistakes around the secrets.
    for path in [
        "/api/admin/inspector/queues".to_string(),
        "/api/admin/inspector/apps".to_string(),
        format!("/api/admin/inspector/apps/{app}"),
        "/api/admin/paas/audit".to_string(),
        "/api/admin/paas/nodes".to_string(),
    ] {
        let answer = stack.get(&path, &stack.admin).await.to_string();
        everything.push((path, answer));
    }
    for (path, body) in [
        (
            format!("/api/paas/applications/{app}/env"),
            json!({"key": "PAYMENT_API_KEY", "value": env_canary}),
        ),
        (
            format!("/api/paas/applications/{app}/env"),
            json!({"key": "bad key", "value": env_canary}),
        ),
        (
            format!("/api/paas/applications/{app}/databases/{db}"),
            json!({}),
        ),
        (
            "/api/paas/databases".to_string(),
            json!({"name": "private-db", "db_type": "postgresql", "version": "16", "plan_id": db_plan, "region": "local"}),
        ),
    ] {
        let (status, answer) = stack.post(&path, &alice, body).await;
        assert!((400..500).contains(&status), "{path}: {status} {answer:#}");
        everything.push((format!("POST {path}: {status}"), answer.to_string()));
    }
    for path in [
        format!("/api/paas/applications/{app}/env"),
        "/api/paas/databases".to_string(),
        format!("/api/paas/applications/{app}/databases"),
        format!("/api/paas/applications/{app}/releases"),
        "/api/paas/notifications".to_string(),
    ] {
        let answer = stack.get(&path, &alice).await.to_string();
        everything.push((path, answer));
    }
    // The application's own log lines, and Docker's record of the containers' logs.
    everything.push((
        "the application's logs".into(),
        stack
            .get(&format!("/api/paas/applications/{app}/logs"), &alice)
            .await
            .to_string(),
    ));
    for container in stack.containers(app) {
        let name = container.split(' ').next().unwrap();
        everything.push((
            format!("docker logs {name}"),
            stack::docker_text(&["logs", name]).1,
        ));
    }
    // Read last: what the requests above made the processes log is in it.
    everything.push(("the processes' logs".into(), stack.process_logs()));
    assert!(
        everything.iter().map(|(_, t)| t.len()).sum::<usize>() > 1000,
        "the logs were read"
    );
    // The secrets did reach where they belong: the container's environment.
    let running = stack.containers(app);
    let name = running[0].split(' ').next().unwrap();
    let (_, seen) = stack::docker_text(&[
        "exec",
        name,
        "sh",
        "-c",
        "echo $PAYMENT_API_KEY $DATABASE_URL",
    ]);
    assert!(
        seen.contains(&env_canary) && seen.contains(&password),
        "{seen}"
    );
    // Registry tickets (every task of a node carries one) start `srt1.`.
    let ticket = "srt1.".to_string();
    for (what, secret) in [
        ("a git token", &canary),
        ("a wrong git token", &wrong),
        ("an environment variable", &env_canary),
        ("a database password", &password),
        ("a registry ticket", &ticket),
    ] {
        for (source, text) in &everything {
            assert!(
                !text.contains(secret.as_str()),
                "{what} leaked into {source}"
            );
        }
    }
}

#[tokio::test]
async fn docker_a_signed_push_deploys_and_unsigned_or_foreign_pushes_do_not() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&files(&dockerfile_app("before the push", None)));
    let app = create_app(
        &stack,
        &alice,
        json!({"name": "pushed", "plan_id": plan, "region": "local",
               "git_repo_url": repo.url(), "auto_deploy": true}),
    )
    .await;
    let host = format!("pushed.{PLATFORM_DOMAIN}");
    let first = stack.start_deploy(&alice, app).await;
    assert_eq!(
        stack.build_ends(&alice, app, first).await["status"],
        "success"
    );
    stack::serves(agent.ingress_port, &host, "/", "before the push").await;

    let hook = stack
        .get(&format!("/api/paas/applications/{app}/deploy-hook"), &alice)
        .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(
        hook["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/paas/webhooks/git/{app}"))
    );
    let again = stack
        .get(&format!("/api/paas/applications/{app}/deploy-hook"), &alice)
        .await;
    assert_eq!(
        again["secret"], hook["secret"],
        "the secret is stable until rotated"
    );

    let sha = repo.commit(
        &files(&dockerfile_app("after the push", None)),
        "pushed change",
    );
    let push = |reference: &str, sha: &str| {
        serde_json::to_vec(
            &json!({"ref": reference, "after": sha, "repository": {"name": "pushed"}}),
        )
        .unwrap()
    };
    let post = async |body: Vec<u8>, signature: Option<String>| {
        let mut request = stack
            .http
            .post(format!("{}/api/paas/webhooks/git/{app}", stack.base))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        (status, answer.json::<Value>().await.unwrap_or(Value::Null))
    };
    let good = push("refs/heads/main", &sha);

    // Unsigned, or signed with another secret, or tampered: 401, nothing deploys.
    assert_eq!(post(good.clone(), None).await.0, 401);
    let forged = skypanel_domain::signatures::sign(b"not-the-secret", &good);
    assert_eq!(post(good.clone(), Some(forged)).await.0, 401);
    let signed = skypanel_domain::signatures::sign(secret.as_bytes(), &good);
    let mut tampered = good.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(post(tampered, Some(signed.clone())).await.0, 401);
    // Another branch is acknowledged and ignored.
    let other = push("refs/heads/feature", &sha);
    let (status, answer) = post(
        other.clone(),
        Some(skypanel_domain::signatures::sign(secret.as_bytes(), &other)),
    )
    .await;
    assert_eq!(
        (
            status,
            answer
                .as_str()
                .map(|s| s.contains("not to the application's branch"))
        ),
        (200, Some(true))
    );
    let builds = stack
        .get(&format!("/api/paas/applications/{app}/builds"), &alice)
        .await;
    assert_eq!(builds.as_array().unwrap().len(), 1, "nothing was built");

    // The signed push to main deploys the pushed commit.
    let (status, build) = post(good, Some(signed)).await;
    assert_eq!(status, 202, "{build:#}");
    let done = stack
        .build_ends(&alice, app, build["id"].as_i64().unwrap())
        .await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(done["git_commit_sha"], sha.as_str());
    stack::serves(agent.ingress_port, &host, "/", "after the push").await;
}

#[tokio::test]
async fn docker_build_logs_follow_live_and_a_cancelled_build_leaves_the_old_release_serving() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&files(&dockerfile_app("stable", None)));
    let app = create_app(
        &stack,
        &alice,
        json!({"name": "slowbuild", "plan_id": plan, "region": "local", "git_repo_url": repo.url()}),
    )
    .await;
    let host = format!("slowbuild.{PLATFORM_DOMAIN}");

    // Follow build #1's log live: lines arrive, then the final status.
    let build = stack.start_deploy(&alice, app).await;
    let answer = stack
        .http
        .get(format!(
            "{}/api/paas/applications/{app}/builds/{build}/logs?follow=true",
            stack.base
        ))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = tokio::time::timeout(Duration::from_secs(120), answer.text())
        .await
        .expect("the stream ends with the build")
        .unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        events.iter().any(|e| e["line"]
            .as_str()
            .is_some_and(|l| l.contains("cloning branch main"))),
        "{text}"
    );
    assert_eq!(events.last().unwrap()["status"], "success", "{text}");
    stack::serves(agent.ingress_port, &host, "/", "stable").await;

    // A slow build is cancelled while it runs.
    let mut slow = dockerfile_app("never served", None);
    slow[0].1 = format!("FROM {WEB_IMAGE}\nRUN echo starting the long step && sleep 60\n");
    repo.commit(&files(&slow), "slow build");
    let build = stack.start_deploy(&alice, app).await;
    stack
        .until_build_log(&alice, app, build, "starting the long step")
        .await;
    let cancel = format!("/api/paas/applications/{app}/builds/{build}/cancel");
    let (status, cancelled) = stack.post(&cancel, &alice, json!({})).await;
    assert_eq!(status, 200, "{cancelled:#}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, again) = stack.post(&cancel, &alice, json!({})).await;
    assert_eq!((status, again["code"].as_str()), (409, Some("conflict")));
    let application = stack.app_in(&alice, app, "running").await;
    assert!(
        application["last_error"]
            .as_str()
            .unwrap()
            .contains("was cancelled"),
        "{application:#}"
    );
    // The node stops the build and cleans up after it.
    let builds_dir = agent.state_dir.join("builds");
    stack
        .until(40, "the build's folder is removed", || async {
            std::fs::read_dir(&builds_dir)
                .map(|d| d.count() == 0)
                .unwrap_or(true)
        })
        .await;
    stack::serves(agent.ingress_port, &host, "/", "stable").await;
    let images = Command::new("docker")
        .args([
            "images",
            "-q",
            &format!("{}skypanel/app-{app}:2", stack.namespace),
        ])
        .output()
        .unwrap();
    assert!(
        images.stdout.is_empty(),
        "no image was made by the cancelled build"
    );
}

#[tokio::test]
async fn docker_runtime_logs_and_metrics_come_from_the_node() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&files(&dockerfile_app(
        "chatty",
        Some("echo booting the app; exec httpd -f -p $PORT -h /www"),
    )));
    let app = create_app(
        &stack,
        &alice,
        json!({"name": "chatty", "plan_id": plan, "region": "local", "git_repo_url": repo.url()}),
    )
    .await;
    let host = format!("chatty.{PLATFORM_DOMAIN}");
    let build = stack.start_deploy(&alice, app).await;
    assert_eq!(
        stack.build_ends(&alice, app, build).await["status"],
        "success"
    );
    stack::serves(agent.ingress_port, &host, "/", "chatty").await;

    let logs = format!("/api/paas/applications/{app}/logs?tail=50");
    stack
        .until(20, "the boot line is shipped", || async {
            stack
                .get(&logs, &alice)
                .await
                .as_array()
                .unwrap()
                .iter()
                .any(|l| {
                    l["line"] == "booting the app" && l["stream"] == "stdout" && l["instance"] == 0
                })
        })
        .await;

    // Following: a line written now arrives on the open stream.
    let mut answer = stack
        .http
        .get(format!(
            "{}/api/paas/applications/{app}/logs?tail=0&follow=true",
            stack.base
        ))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let marker = uuid::Uuid::new_v4().simple().to_string();
    stack::serves(
        agent.ingress_port,
        &host,
        &format!("/cgi-bin/shout?{marker}"),
        "ok",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while !seen.contains(&format!("shout {marker}")) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the line never arrived: {seen}");
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, answer.chunk()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains("\"stream\":\"stderr\""), "{seen}");

    let (status, bad) = stack
        .call(
            reqwest::Method::GET,
            &format!("/api/paas/applications/{app}/logs?tail=99999"),
            &alice,
            None,
        )
        .await;
    assert_eq!((status, bad["field"].as_str()), (422, Some("tail")));

    // Metrics from the heartbeats: the instance, the plan's limits, a history.
    let metrics_path = format!("/api/paas/applications/{app}/metrics");
    stack
        .until(20, "heartbeats carry the app's figures", || async {
            let m = stack.get(&metrics_path, &alice).await;
            m["history"].as_array().unwrap().len() >= 2
                && m["instances"].as_array().unwrap().len() == 1
        })
        .await;
    let metrics = stack.get(&metrics_path, &alice).await;
    assert_eq!(metrics["memory_limit_mb"], 64);
    assert_eq!(metrics["cpu_limit_millicores"], 250);
    assert_eq!(metrics["instances"][0]["state"], "running");
    assert!(metrics["instances"][0]["memory_used_mb"].as_i64().unwrap() >= 0);
}

#[tokio::test]
async fn docker_a_build_whose_node_is_lost_is_retried_on_another_node() {
    let stack = Stack::start(Timing {
        offline_after: 3,
        lease_ttl: 3,
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let (first_node, mut first) = stack.node("worker-1").await;
    let (second_node, second) = stack.node("worker-2").await;
    let alice = stack.customer("alice@example.com").await;
    let mut files_ = dockerfile_app("built twice", None);
    files_[0].1 = format!(
        "FROM {WEB_IMAGE}\nRUN echo a slow step {} && sleep 4\nCOPY index.html /www/index.html\n",
        uuid::Uuid::new_v4().simple()
    );
    let repo = Repo::new(&files(&files_));
    let app = create_app(
        &stack,
        &alice,
        json!({"name": "resilient", "plan_id": plan, "region": "local", "git_repo_url": repo.url()}),
    )
    .await;
    let build = stack.start_deploy(&alice, app).await;
    let path = format!("/api/paas/applications/{app}/builds/{build}");
    stack
        .until(30, "the build runs on a node", || async {
            stack.get(&path, &alice).await["status"] == "building"
        })
        .await;
    let on = stack.get(&path, &alice).await["node_id"].as_i64();
    // The build went to the first node (the most free memory, then the lowest id).
    assert_eq!(on, Some(first_node));
    stack
        .until(30, "the slow step runs", || async {
            stack.get(&format!("{path}/logs"), &alice).await["log"]
                .as_str()
                .is_some_and(|l| l.contains("a slow step"))
        })
        .await;
    first.kill();

    let done = stack.build_ends(&alice, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(done["attempt"], 2, "{done:#}");
    assert_eq!(done["node_id"].as_i64(), Some(second_node));
    let log = stack.get(&format!("{path}/logs"), &alice).await;
    assert!(
        log["log"]
            .as_str()
            .unwrap()
            .contains("attempt 2 of the build"),
        "{log:#}"
    );
    let application = stack.app_in(&alice, app, "running").await;
    assert_eq!(application["node_id"].as_i64(), Some(second_node));
    stack::serves(
        second.ingress_port,
        &format!("resilient.{PLATFORM_DOMAIN}"),
        "/",
        "built twice",
    )
    .await;
}
