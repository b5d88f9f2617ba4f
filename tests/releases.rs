//! Releases as the unit of deployment, end to end on the real control plane,
//! agents, Docker, nginx and the platform's registry (Debian's distribution
//! registry with the control plane as its token server): a configuration
//! change is a release rolled out without a failed request; every container
//! runs its release's environment whoever makes it; images come from the
//! registry when a node lacks them; an application leaves a node that goes
//! offline without a build; the registry refuses whoever is not the node of
//! the task; deploys wait for a rollout in flight; nodes and the registry
//! keep only what their retention says. Every test is named `docker_…`.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stack::proxy::CutProxy;
use stack::{PLATFORM_DOMAIN, Repo, Stack, Timing, WEB_IMAGE, agent_dir, through_ingress};

/// A Dockerfile app whose `/cgi-bin/env` answers its `GREETING` and whose
/// page is `page`.
fn echo_app(page: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Dockerfile",
            format!(
                "FROM {WEB_IMAGE}\nCOPY index.html /www/index.html\nCOPY cgi-bin /www/cgi-bin\n"
            ),
        ),
        ("index.html", page.to_string()),
        (
            "cgi-bin/env",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nprintf '%s' \"$GREETING\"\n"
                .into(),
        ),
    ]
}

fn files<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(p, t)| (*p, t.as_str())).collect()
}

/// Deploys from git and waits until the build succeeded and the
/// application runs its release.
async fn deployed(stack: &Stack, token: &str, app: i64) {
    let build = stack.start_deploy(token, app).await;
    let done = stack.build_ends(token, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    stack.app_in(token, app, "running").await;
}

/// A request loop through an ingress: counts answers other than 200 and
/// keeps every body with the instant its request was sent, until stopped.
struct Loop {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<(Instant, String)>>,
}

impl Loop {
    fn start(port: u16, host: String, path: &'static str) -> Loop {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let task = {
            let (stop, failed, served) = (stop.clone(), failed.clone(), served.clone());
            tokio::spawn(async move {
                let mut bodies: Vec<(Instant, String)> = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let sent = Instant::now();
                    match through_ingress(port, &host, path).await {
                        Some((200, body)) => {
                            served.fetch_add(1, Ordering::SeqCst);
                            bodies.push((sent, body));
                        }
                        other => {
                            eprintln!("failed request: {other:?}");
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                bodies
            })
        };
        Loop {
            stop,
            failed,
            served,
            task,
        }
    }

    /// Stops; answers (failed, served, every body with the instant its
    /// request was sent).
    async fn stop(self) -> (usize, usize, Vec<(Instant, String)>) {
        self.stop.store(true, Ordering::SeqCst);
        let bodies = self.task.await.unwrap();
        (
            self.failed.load(Ordering::SeqCst),
            self.served.load(Ordering::SeqCst),
            bodies,
        )
    }
}

/// `GREETING` of every running container of the application, as Docker has it.
fn greetings(stack: &Stack, app: i64) -> Vec<Option<String>> {
    stack
        .containers(app)
        .iter()
        .filter(|c| c.ends_with(" running"))
        .map(|c| {
            let name = c.split_whitespace().next().unwrap();
            let inspected = stack.inspect(name);
            inspected["Config"]["Env"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e.as_str()?.strip_prefix("GREETING=").map(str::to_string))
                .next()
        })
        .collect()
}

/// Waits until every running container of the application has `GREETING`
/// (`None`: unset) and there are `count` of them.
async fn all_greet(stack: &Stack, app: i64, count: usize, greeting: Option<&str>) {
    stack
        .until(
            60,
            "every container has the release's environment",
            || async {
                let now = greetings(stack, app);
                now.len() == count && now.iter().all(|g| g.as_deref() == greeting)
            },
        )
        .await;
}

async fn releases(stack: &Stack, token: &str, app: i64) -> Vec<Value> {
    stack
        .get(&format!("/api/paas/applications/{app}/releases"), token)
        .await
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn docker_an_environment_change_is_a_release_served_at_once_without_a_failed_request() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&files(&echo_app("echo")));
    let app = stack.git_app(&alice, "echo", plan, &repo.url()).await;
    let env = format!("/api/paas/applications/{app}/env");
    let (status, _) = stack
        .post(&env, &alice, json!({"key": "GREETING", "value": "hello"}))
        .await;
    assert_eq!(status, 201, "a variable before the first deploy");
    deployed(&stack, &alice, app).await;
    let host = format!("echo.{PLATFORM_DOMAIN}");
    stack::serves(agent.ingress_port, &host, "/cgi-bin/env", "hello").await;
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/scale"),
            &alice,
            json!({"instance_count": 2}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(&alice, app, "running").await;
    all_greet(&stack, app, 2, Some("hello")).await;

    // Two variables in one change: one release, served at once, no request failed.
    let requests = Loop::start(agent.ingress_port, host.clone(), "/cgi-bin/env");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let (status, changed) = stack
        .post(
            &env,
            &alice,
            json!({"vars": {"GREETING": "bonjour", "MODE": "test"}}),
        )
        .await;
    assert_eq!(status, 200, "{changed:#}");
    let release = changed["release"].as_i64().expect("a release");
    assert!(
        changed["vars"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["value"] == "********"),
        "{changed:#}"
    );
    stack::serves(agent.ingress_port, &host, "/cgi-bin/env", "bonjour").await;
    let served_in = asked.elapsed();
    // The release is current once the node reported its rollout done, which
    // is after every nginx worker of the old routes stopped taking
    // connections: from then on no request may see the old value. (During
    // the reload itself old and new workers both accept for a moment, so a
    // request may still meet the old value there, as with Heroku's preboot.)
    stack
        .until(60, "the configuration release is current", || async {
            releases(&stack, &alice, app).await[0]["current"] == true
        })
        .await;
    let current_at = Instant::now();
    stack.app_in(&alice, app, "running").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (failed, served, bodies) = requests.stop().await;
    assert_eq!(
        failed, 0,
        "no request failed during the change ({served} served)"
    );
    let mut values: Vec<&str> = bodies.iter().map(|(_, b)| b.as_str()).collect();
    values.dedup();
    assert_eq!(values.first(), Some(&"hello"), "{values:?}");
    assert_eq!(values.last(), Some(&"bonjour"), "{values:?}");
    assert!(
        bodies
            .iter()
            .filter(|(sent, _)| *sent >= current_at)
            .all(|(_, body)| body == "bonjour"),
        "once the release is current only the new value is served: {values:?}"
    );
    eprintln!("environment change served in {served_in:?}");
    all_greet(&stack, app, 2, Some("bonjour")).await;
    let list = releases(&stack, &alice, app).await;
    assert_eq!(list[0]["version"], release, "{list:#?}");
    assert_eq!(list[0]["kind"], "config");
    assert_eq!(list[0]["description"], "Set GREETING, MODE");
    assert_eq!(list[0]["current"], true);
    assert_eq!(
        list[0]["image_id"], list[1]["image_id"],
        "a configuration release runs the image of the one before"
    );
    assert_eq!(
        list.len(),
        2,
        "build, then config (a scale is no release): {list:#?}"
    );

    // Removing a variable is a release too; PUT of a missing one changes nothing.
    let (status, _) = stack
        .call(
            reqwest::Method::DELETE,
            &format!("{env}/GREETING"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 204);
    stack::serves(agent.ingress_port, &host, "/cgi-bin/env", "").await;
    stack.app_in(&alice, app, "running").await;
    assert_eq!(
        releases(&stack, &alice, app).await[0]["description"],
        "Remove GREETING"
    );
    let (status, _) = stack
        .call(
            reqwest::Method::PUT,
            &format!("{env}/MISSING"),
            &alice,
            Some(json!({"value": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(releases(&stack, &alice, app).await.len(), 3);

    // A restart makes the instances anew from the release (no dropped request).
    let before: Vec<String> = stack.containers(app);
    let requests = Loop::start(agent.ingress_port, host.clone(), "/");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/restart"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack
        .until(60, "new containers replaced the old ones", || async {
            let now = stack.containers(app);
            now.len() == 2 && now.iter().all(|c| !before.contains(c))
        })
        .await;
    stack.app_in(&alice, app, "running").await;
    let (failed, served, _) = requests.stop().await;
    assert_eq!(
        failed, 0,
        "no request failed during the restart ({served} served)"
    );
    all_greet(&stack, app, 2, None).await;

    // A stopped application gets the release without starting; its start runs it.
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/stop"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(&alice, app, "stopped").await;
    let (status, answer) = stack
        .post(&env, &alice, json!({"key": "GREETING", "value": "later"}))
        .await;
    assert_eq!(status, 201, "{answer:#}");
    assert!(answer["release"].as_i64().is_some(), "{answer:#}");
    assert_eq!(
        stack
            .get(&format!("/api/paas/applications/{app}"), &alice)
            .await["status"],
        "stopped"
    );
    assert_eq!(stack.running(app), 0, "nothing started");
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/start"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(&alice, app, "running").await;
    stack::serves(agent.ingress_port, &host, "/cgi-bin/env", "later").await;
    all_greet(&stack, app, 2, Some("later")).await;
}

#[tokio::test]
async fn docker_scale_crash_restart_and_resume_run_the_current_releases_environment() {
    let stack = Stack::start(Timing {
        billing_grace: 0,
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&files(&echo_app("echo")));
    let app = stack.git_app(&alice, "echo", plan, &repo.url()).await;
    let env = format!("/api/paas/applications/{app}/env");
    stack
        .post(&env, &alice, json!({"key": "GREETING", "value": "one"}))
        .await;
    deployed(&stack, &alice, app).await;
    let host = format!("echo.{PLATFORM_DOMAIN}");
    stack
        .post(&env, &alice, json!({"vars": {"GREETING": "two"}}))
        .await;
    stack::serves(agent.ingress_port, &host, "/cgi-bin/env", "two").await;
    stack.app_in(&alice, app, "running").await;

    // Scale after the change: the new instance has the release's value, as the old one.
    stack
        .post(
            &format!("/api/paas/applications/{app}/scale"),
            &alice,
            json!({"instance_count": 2}),
        )
        .await;
    stack.app_in(&alice, app, "running").await;
    all_greet(&stack, app, 2, Some("two")).await;

    // A crash restart (the container's processes killed) comes back with it.
    let victim = stack.containers(app)[0]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let (ok, out) = stack::docker_text(&["kill", &victim]);
    assert!(ok, "{out}");
    stack
        .until(30, "the crashed instance runs again", || async {
            stack.inspect(&victim)["State"]["Running"] == true
        })
        .await;
    all_greet(&stack, app, 2, Some("two")).await;

    // Suspended for an unpaid hour, then resumed: the same environment.
    stack.bill_past_hour().await;
    stack.app_in(&alice, app, "suspended").await;
    // Changed while suspended: a release for the resume.
    let (status, answer) = stack
        .post(&env, &alice, json!({"vars": {"GREETING": "three"}}))
        .await;
    assert_eq!(status, 200, "{answer:#}");
    let me = stack.get("/api/auth/me", &alice).await;
    stack
        .post(
            &format!("/api/admin/wallets/{}/credit", me["id"]),
            &stack.admin,
            json!({"amount": "5.00", "description": "top-up"}),
        )
        .await;
    stack.app_in(&alice, app, "running").await;
    stack::serves(agent.ingress_port, &host, "/cgi-bin/env", "three").await;
    all_greet(&stack, app, 2, Some("three")).await;
}

/// Removes an application's containers and every image its releases ran
/// from the node's Docker.
fn forget_everything(stack: &Stack, app: i64, image_ids: &[String]) {
    for c in stack.containers(app) {
        stack::docker_text(&["rm", "-f", c.split_whitespace().next().unwrap()]);
    }
    for id in image_ids {
        stack::docker_text(&["rmi", "-f", id]);
    }
}

#[tokio::test]
async fn docker_a_node_without_the_images_restarts_scales_and_rolls_back_from_the_registry() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&files(&echo_app("version one")));
    let app = stack.git_app(&alice, "shop", plan, &repo.url()).await;
    deployed(&stack, &alice, app).await;
    repo.commit(&files(&echo_app("version two")), "second");
    deployed(&stack, &alice, app).await;
    let host = format!("shop.{PLATFORM_DOMAIN}");
    stack::serves(agent.ingress_port, &host, "/", "version two").await;
    let list = releases(&stack, &alice, app).await;
    let images: Vec<String> = list
        .iter()
        .map(|r| r["image_id"].as_str().unwrap().to_string())
        .collect();
    stack
        .until(30, "both images are in the registry", || async {
            releases(&stack, &alice, app)
                .await
                .iter()
                .all(|r| r["registry_image"].is_string())
        })
        .await;

    // Restart with neither containers nor images on the node.
    forget_everything(&stack, app, &images);
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/restart"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack::serves(agent.ingress_port, &host, "/", "version two").await;
    stack.app_in(&alice, app, "running").await;

    // Scale likewise.
    forget_everything(&stack, app, &images);
    stack
        .post(
            &format!("/api/paas/applications/{app}/scale"),
            &alice,
            json!({"instance_count": 2}),
        )
        .await;
    stack.app_in(&alice, app, "running").await;
    stack
        .until(60, "two instances from the registry's image", || async {
            stack.running(app) == 2
        })
        .await;
    stack::serves(agent.ingress_port, &host, "/", "version two").await;

    // Roll back to release 1, whose image the node no longer has.
    stack::docker_text(&["rmi", "-f", &images[1]]);
    let (status, answer) = stack
        .post(
            &format!("/api/paas/applications/{app}/rollback"),
            &alice,
            json!({"release": 1}),
        )
        .await;
    assert_eq!(status, 202, "{answer:#}");
    stack::serves(agent.ingress_port, &host, "/", "version one").await;
    stack.app_in(&alice, app, "running").await;
    // Every container runs exactly the release's image.
    for c in stack.containers(app) {
        let inspected = stack.inspect(c.split_whitespace().next().unwrap());
        assert_eq!(inspected["Image"].as_str(), Some(images[1].as_str()));
    }
    let log = stack.agent_log(&agent);
    assert!(log.contains("task done"), "the agent worked");
}

#[tokio::test]
async fn docker_an_application_leaves_a_node_that_goes_offline_without_a_build() {
    let stack = Stack::start(Timing {
        offline_after: 3,
        lease_ttl: 3,
        ..Timing::default()
    })
    .await;
    let (_, port) = stack.base.rsplit_once(':').unwrap();
    let link = CutProxy::start(format!("127.0.0.1:{port}")).await;
    let first_ns = format!("{}a-", stack.namespace);
    let second_ns = format!("{}b-", stack.namespace);
    let (first_node, first) = stack
        .node_at("worker-1", agent_dir(), &link.url, &first_ns)
        .await;
    let plan = stack.plan().await;
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&files(&echo_app("moving")));
    let app = stack.git_app(&alice, "mover", plan, &repo.url()).await;
    let env = format!("/api/paas/applications/{app}/env");
    stack
        .post(
            &env,
            &alice,
            json!({"key": "GREETING", "value": "portable"}),
        )
        .await;
    deployed(&stack, &alice, app).await;
    let running = stack
        .get(&format!("/api/paas/applications/{app}"), &alice)
        .await;
    assert_eq!(running["node_id"].as_i64(), Some(first_node));
    // A custom domain, to follow the application.
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/domains"),
            &alice,
            json!({"hostname": "shop.example.com"}),
        )
        .await;
    assert_eq!(status, 201);
    stack::serves(first.ingress_port, "shop.example.com", "/", "moving").await;
    stack
        .until(30, "the release's image is in the registry", || async {
            releases(&stack, &alice, app).await[0]["registry_image"].is_string()
        })
        .await;
    let (second_node, second) = stack
        .node_at("worker-2", agent_dir(), &stack.base, &second_ns)
        .await;

    // The first node goes silent: within the threshold + 30 s the
    // application serves from the second one, names included, without a build.
    link.cut();
    let cut_at = Instant::now();
    stack
        .until(
            3 + 30,
            "the application serves from the second node",
            || async {
                matches!(
                    through_ingress(second.ingress_port, "shop.example.com", "/").await,
                    Some((200, body)) if body.trim() == "moving"
                )
            },
        )
        .await;
    eprintln!("moved and serving after {:?}", cut_at.elapsed());
    let moved = stack.app_in(&alice, app, "running").await;
    assert_eq!(moved["node_id"].as_i64(), Some(second_node));
    stack::serves(
        second.ingress_port,
        &format!("mover.{PLATFORM_DOMAIN}"),
        "/cgi-bin/env",
        "portable",
    )
    .await;
    let builds = stack
        .get(&format!("/api/paas/applications/{app}/builds"), &alice)
        .await;
    assert_eq!(builds.as_array().unwrap().len(), 1, "no new build");
    let notices = stack.get("/api/paas/notifications", &alice).await;
    assert!(
        notices
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "app_moved"),
        "{notices:#}"
    );

    // The first node returns and removes what it no longer owns.
    link.restore();
    stack
        .until(
            60,
            "the former node removes the application's containers",
            || async { stack.containers_in(&first_ns, app).is_empty() },
        )
        .await;
    assert_eq!(stack.containers_in(&second_ns, app).len(), 1);
    drop(first);
}

#[tokio::test]
async fn docker_the_registry_serves_a_node_its_tasks_images_and_no_one_else() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&files(&echo_app("private")));
    let mine = stack.git_app(&alice, "mine", plan, &repo.url()).await;
    let theirs = stack.git_app(&alice, "theirs", plan, &repo.url()).await;
    deployed(&stack, &alice, mine).await;
    deployed(&stack, &alice, theirs).await;
    stack
        .until(30, "both images are in the registry", || async {
            releases(&stack, &alice, mine).await[0]["registry_image"].is_string()
                && releases(&stack, &alice, theirs).await[0]["registry_image"].is_string()
        })
        .await;
    let registry = stack.registry.as_ref().unwrap();
    let http = reqwest::Client::new();
    let token_url = format!("{}/api/registry/token", stack.base);
    let manifest = |app: i64, token: Option<String>| {
        let mut request = http
            .get(format!(
                "http://{}/v2/app-{app}/manifests/v1",
                registry.address()
            ))
            .header(
                "accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            );
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let token = |user: String, password: String, app: i64| {
        let request = http
            .get(&token_url)
            .query(&[
                ("service", "skypanel-registry"),
                ("scope", &format!("repository:app-{app}:pull")),
            ])
            .basic_auth(user, Some(password));
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            (status, body["token"].as_str().map(str::to_string))
        }
    };
    // Nobody, a customer's token or an admin's: refused by the token server.
    assert_eq!(manifest(mine, None).await.unwrap().status().as_u16(), 401);
    for (user, password) in [
        ("alice@example.com", alice.clone()),
        ("node-1", alice.clone()),
        ("admin@example.com", stack.admin.clone()),
    ] {
        let (status, _) = token(user.to_string(), password, mine).await;
        assert_eq!(status, 401, "{user}");
    }
    // A node's ticket for one application (as its task carries it): that
    // application's image, and no other's.
    let key = skypanel_domain::registry::ticket_key("a-jwt-secret-of-at-least-32-chars!");
    let ticket = skypanel_domain::registry::Ticket {
        node_id: node,
        repositories: vec![format!("app-{mine}")],
        push: false,
        expires_at: chrono::Utc::now().timestamp() + 600,
    };
    let password = ticket.issue(&key);
    let (status, granted) = token(format!("node-{node}"), password.clone(), mine).await;
    assert_eq!(status, 200);
    assert_eq!(
        manifest(mine, granted).await.unwrap().status().as_u16(),
        200
    );
    let (status, other) = token(format!("node-{node}"), password.clone(), theirs).await;
    assert_eq!(status, 200, "a token, granting nothing");
    let refused = manifest(theirs, other).await.unwrap();
    assert_eq!(
        refused.status().as_u16(),
        401,
        "another application's image"
    );
    // Under another node's name, or expired: refused.
    let (status, _) = token(format!("node-{}", node + 1), password, mine).await;
    assert_eq!(status, 401);
    let expired = skypanel_domain::registry::Ticket {
        expires_at: chrono::Utc::now().timestamp() - 1,
        ..ticket
    };
    let (status, _) = token(format!("node-{node}"), expired.issue(&key), mine).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn docker_a_deploy_or_a_change_during_a_rollout_waits_for_it_and_runs_after() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let slow = |page: &str| {
        vec![
            (
                "Dockerfile",
                format!(
                    "FROM {WEB_IMAGE}\nRUN echo a slow step {} && sleep 4\nCOPY index.html /www/index.html\nCOPY cgi-bin /www/cgi-bin\n",
                    uuid::Uuid::new_v4().simple()
                ),
            ),
            ("index.html", page.to_string()),
            (
                "cgi-bin/env",
                "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nprintf '%s' \"$GREETING\"\n"
                    .into(),
            ),
        ]
    };
    let repo = Repo::new(&files(&echo_app("first")));
    let app = stack.git_app(&alice, "queue", plan, &repo.url()).await;
    deployed(&stack, &alice, app).await;
    repo.commit(&files(&slow("second")), "second");
    let second = stack.start_deploy(&alice, app).await;
    // Build #2 has its checkout (its slow step runs) before the next commit:
    // else it may clone that one, and the waiting deploy finds it built.
    stack
        .until_build_log(&alice, app, second, "a slow step")
        .await;
    // While build #2 runs: another deploy, and a change of the environment, wait.
    repo.commit(&files(&slow("third")), "third");
    let (status, waiting) = stack
        .post(
            &format!("/api/paas/applications/{app}/deploy"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{waiting:#}");
    assert!(waiting["build"].is_null());
    assert_eq!(waiting["waiting"]["position"], 1);
    assert_eq!(waiting["waiting"]["behind"], "build #2");
    // Asked again: still one deploy waiting (the newest wins).
    let (_, again) = stack
        .post(
            &format!("/api/paas/applications/{app}/deploy"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(again["waiting"]["position"], 1);
    let (status, change) = stack
        .post(
            &format!("/api/paas/applications/{app}/env"),
            &alice,
            json!({"vars": {"GREETING": "queued"}}),
        )
        .await;
    assert_eq!(status, 200, "{change:#}");
    assert_eq!(change["waiting"]["position"], 2, "{change:#}");
    let (status, waiting_rollback) = stack
        .post(
            &format!("/api/paas/applications/{app}/rollback"),
            &alice,
            json!({"release": 9}),
        )
        .await;
    assert_eq!(
        status, 404,
        "only a release that exists may wait: {waiting_rollback:#}"
    );

    assert_eq!(
        stack.build_ends(&alice, app, second).await["status"],
        "success"
    );
    // Then build #3 runs by itself; the change was in build #2's release.
    let host = format!("queue.{PLATFORM_DOMAIN}");
    stack
        .until(120, "the waiting deploy's release serves", || async {
            matches!(through_ingress(agent.ingress_port, &host, "/").await,
                Some((200, body)) if body.trim() == "third")
        })
        .await;
    stack::serves(agent.ingress_port, &host, "/cgi-bin/env", "queued").await;
    stack
        .until(60, "nothing waits any more", || async {
            let app = stack
                .get(&format!("/api/paas/applications/{app}"), &alice)
                .await;
            app["status"] == "running"
        })
        .await;
    let builds = stack
        .get(&format!("/api/paas/applications/{app}/builds"), &alice)
        .await;
    assert_eq!(builds.as_array().unwrap().len(), 3, "{builds:#}");
    let list = releases(&stack, &alice, app).await;
    let kinds: Vec<&str> = list.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec!["build", "build", "build"],
        "the waiting change was in the release of the build after it: {list:#?}"
    );
}

#[tokio::test]
async fn docker_nodes_and_the_registry_keep_what_their_retention_says() {
    let stack = Stack::start(Timing {
        env: vec![
            ("SKYPANEL_REGISTRY_KEEP", "2".into()),
            ("SKYPANEL_REGISTRY_KEEP_DAYS", "0".into()),
        ],
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    // An image without the platform's labels that must survive.
    let unlabelled = format!("{}unlabelled:1", stack.namespace);
    let (ok, out) = stack::docker_text(&["tag", WEB_IMAGE, &unlabelled]);
    assert!(ok, "{out}");
    let repo = Repo::new(&files(&echo_app("deploy 1")));
    let app = stack.git_app(&alice, "keeper", plan, &repo.url()).await;
    deployed(&stack, &alice, app).await;
    for n in 2..=6 {
        repo.commit(
            &files(&echo_app(&format!("deploy {n}"))),
            &format!("deploy {n}"),
        );
        deployed(&stack, &alice, app).await;
    }
    stack::serves(
        agent.ingress_port,
        &format!("keeper.{PLATFORM_DOMAIN}"),
        "/",
        "deploy 6",
    )
    .await;
    let managed = format!("label=skypanel.managed={}", stack.namespace);
    let repository = format!("app-{app}");
    let count_images = || {
        let (_, out) = stack::docker_text(&[
            "images",
            "--filter",
            &managed,
            "--format",
            "{{.ID}} {{.Repository}}",
        ]);
        // The platform's label, and the application's repository; one row
        // per tag (an image built and pushed has two).
        let ids: std::collections::HashSet<&str> = out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, r)| r.rsplit('/').next() == Some(repository.as_str()))
            .map(|(id, _)| id)
            .collect();
        ids.len()
    };
    assert_eq!(count_images(), 4, "the current release and the 3 before");
    assert!(
        stack::docker_text(&["image", "inspect", &unlabelled]).0,
        "untouched"
    );
    stack::docker_text(&["rmi", &unlabelled]);

    // The registry: 6 images, 2 kept once the retention runs.
    stack
        .until(30, "every image is in the registry", || async {
            releases(&stack, &alice, app)
                .await
                .iter()
                .all(|r| r["registry_image"].is_string())
        })
        .await;
    let stats = stack.get("/api/admin/paas/stats", &stack.admin).await;
    assert_eq!(stats["images"]["registry_images"], 6, "{stats:#}");
    let (status, pruned) = stack
        .post("/api/admin/paas/registry/prune", &stack.admin, json!({}))
        .await;
    assert_eq!(status, 200, "{pruned:#}");
    assert_eq!(pruned["manifests_deleted"], 4, "{pruned:#}");
    let list = releases(&stack, &alice, app).await;
    let pushed: Vec<bool> = list
        .iter()
        .map(|r| r["registry_image"].is_string())
        .collect();
    assert_eq!(
        pushed,
        vec![true, true, false, false, false, false],
        "{list:#?}"
    );
    let stats = stack.get("/api/admin/paas/stats", &stack.admin).await;
    assert_eq!(stats["images"]["registry_images"], 2);
    let node_images = &stats["images"]["nodes"][0];
    assert!(node_images["images"].as_i64().unwrap() >= 4, "{stats:#}");

    // The registry's garbage collection (registry stopped) frees the
    // deleted images' blobs.
    let registry = stack.registry.as_ref().unwrap();
    let before = registry.stored_bytes();
    registry.stop();
    let collected = std::process::Command::new("docker-registry")
        .args(["garbage-collect", "--delete-untagged"])
        .arg(registry.dir.join("config.yml"))
        .output()
        .unwrap();
    registry.start();
    assert!(
        collected.status.success(),
        "{}",
        String::from_utf8_lossy(&collected.stderr)
    );
    let after = registry.stored_bytes();
    assert!(after < before, "blobs freed: {before} → {after}");

    // A deleted application's images go from the node and the registry.
    let (status, _) = stack
        .call(
            reqwest::Method::DELETE,
            &format!("/api/paas/applications/{app}"),
            &alice,
            None,
        )
        .await;
    assert!(status == 202 || status == 204);
    stack
        .until(60, "the application and its images are gone", || async {
            let (status, _) = stack
                .call(
                    reqwest::Method::GET,
                    &format!("/api/paas/applications/{app}"),
                    &alice,
                    None,
                )
                .await;
            status == 404 && count_images() == 0
        })
        .await;
    let (status, pruned) = stack
        .post("/api/admin/paas/registry/prune", &stack.admin, json!({}))
        .await;
    assert_eq!(status, 200, "{pruned:#}");
    assert_eq!(pruned["manifests_deleted"], 2, "{pruned:#}");
}
