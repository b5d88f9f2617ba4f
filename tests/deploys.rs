//! Git-to-URL deploys end to end, on the real control plane, agents, Docker
//! Engine, nginx and local git repositories: builds from a Dockerfile and
//! from a runtime, releases without downtime, rollback, scaling behind the
//! ingress, failed builds that leave the old release serving, and deletion.
//! Every test is named `docker_…` (they need Docker).

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};
use stack::{PLATFORM_DOMAIN, Repo, Stack, Timing, WEB_IMAGE, through_ingress};

/// A Dockerfile app on the busybox web image: `index.html` is its page, and
/// `/cgi-bin/whoami` answers the container's hostname.
fn web_app_files(page: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Dockerfile",
            format!(
                "FROM {WEB_IMAGE}\nCOPY index.html /www/index.html\nCOPY cgi-bin /www/cgi-bin\n"
            ),
        ),
        ("index.html", page.to_string()),
        (
            "cgi-bin/whoami",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\ncat /etc/hostname\n".into(),
        ),
    ]
}

fn files<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(p, t)| (*p, t.as_str())).collect()
}

/// Deploys and waits until the build ends; answers the build.
async fn deploy(stack: &Stack, token: &str, app: i64) -> Value {
    let build = stack.start_deploy(token, app).await;
    stack.build_ends(token, app, build).await
}

#[tokio::test]
async fn docker_a_dockerfile_app_deploys_without_downtime_rolls_back_scales_and_is_deleted() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let port = agent.ingress_port;
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&files(&web_app_files("version one")));
    let app = stack.git_app(&alice, "shop", plan, &repo.url()).await;
    let host = format!("shop.{PLATFORM_DOMAIN}");

    // Before any deploy, the host is unknown to the ingress.
    assert_eq!(
        through_ingress(port, &host, "/").await.map(|a| a.0),
        Some(404)
    );

    // Build #1 from the repository's Dockerfile.
    let first = deploy(&stack, &alice, app).await;
    assert_eq!(first["status"], "success", "{first:#}");
    assert_eq!(first["builder"], "dockerfile");
    assert_eq!(first["build_number"], 1);
    assert_eq!(first["git_commit_message"], "first");
    stack.app_in(&alice, app, "running").await;
    stack::serves(port, &host, "/", "version one").await;
    let log = stack
        .get(
            &format!("/api/paas/applications/{app}/builds/{}/logs", first["id"]),
            &alice,
        )
        .await;
    assert!(
        log["log"]
            .as_str()
            .unwrap()
            .contains("building with the repository's Dockerfile"),
        "{log:#}"
    );

    // A second commit deploys while a client asks every 50 ms: no request fails.
    repo.commit(&files(&web_app_files("version two")), "second");
    let failures = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (failures, requests, stop, host) = (
            failures.clone(),
            requests.clone(),
            stop.clone(),
            host.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match through_ingress(port, &host, "/").await {
                    Some((200, body))
                        if body.trim() == "version one" || body.trim() == "version two" => {}
                    other => {
                        eprintln!("failed request: {other:?}");
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                requests.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    let second = deploy(&stack, &alice, app).await;
    assert_eq!(second["status"], "success", "{second:#}");
    stack::serves(port, &host, "/", "version two").await;
    // Past the drain: the old release's containers are gone.
    stack
        .until(20, "one container left", || async {
            stack.containers(app).len() == 1
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    client.await.unwrap();
    assert!(requests.load(Ordering::SeqCst) > 20);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed during the rollout"
    );

    // Releases: 2 then 1; rollback to 1 serves version one again, no build.
    let releases = stack
        .get(&format!("/api/paas/applications/{app}/releases"), &alice)
        .await;
    let versions: Vec<i64> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    assert_eq!(releases[0]["current"], true);
    let (status, rolled) = stack
        .post(
            &format!("/api/paas/applications/{app}/rollback"),
            &alice,
            json!({"release": 1}),
        )
        .await;
    assert_eq!(status, 202, "{rolled:#}");
    assert_eq!(rolled["release"], 3);
    stack.app_in(&alice, app, "running").await;
    stack::serves(port, &host, "/", "version one").await;
    let builds = stack
        .get(&format!("/api/paas/applications/{app}/builds"), &alice)
        .await;
    assert_eq!(
        builds.as_array().unwrap().len(),
        2,
        "a rollback builds nothing"
    );
    let (status, missing) = stack
        .post(
            &format!("/api/paas/applications/{app}/rollback"),
            &alice,
            json!({"release": 42}),
        )
        .await;
    assert_eq!(status, 404, "{missing:#}");

    // Scaled to 3, the ingress balances over 3 containers.
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/scale"),
            &alice,
            json!({"instance_count": 3}),
        )
        .await;
    assert_eq!(status, 202);
    stack
        .until(40, "three running containers", || async {
            stack
                .containers(app)
                .iter()
                .filter(|c| c.ends_with("running"))
                .count()
                == 3
        })
        .await;
    stack.app_in(&alice, app, "running").await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..60 {
        if let Some((200, who)) = through_ingress(port, &host, "/cgi-bin/whoami").await {
            seen.insert(who.trim().to_string());
        }
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(seen.len(), 3, "answers came from {seen:?}");

    // A custom domain answers too; a stopped application answers 503.
    let (status, domain) = stack
        .post(
            &format!("/api/paas/applications/{app}/domains"),
            &alice,
            json!({"hostname": "Shop.Example.org"}),
        )
        .await;
    assert_eq!(status, 201, "{domain:#}");
    assert_eq!(domain["hostname"], "shop.example.org");
    stack::serves(port, "shop.example.org", "/", "version one").await;
    let domains = stack
        .get(&format!("/api/paas/applications/{app}/domains"), &alice)
        .await;
    assert_eq!(domains[0]["hostname"], host.as_str());
    assert_eq!(domains[0]["is_system"], true);
    let (status, taken) = stack
        .post(
            &format!("/api/paas/applications/{app}/domains"),
            &alice,
            json!({"hostname": "shop.example.org"}),
        )
        .await;
    assert_eq!((status, taken["field"].as_str()), (409, Some("hostname")));
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/stop"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(&alice, app, "stopped").await;
    let stopped = through_ingress(port, "shop.example.org", "/")
        .await
        .unwrap();
    assert_eq!(stopped.0, 503, "{stopped:?}");
    assert!(stopped.1.contains("stopped"), "{stopped:?}");
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/start"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(&alice, app, "running").await;
    stack::serves(port, &host, "/", "version one").await;

    // Deleting the app removes its server block and its containers.
    let (status, _) = stack
        .call(
            reqwest::Method::DELETE,
            &format!("/api/paas/applications/{app}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 202);
    stack
        .until(30, "the app is gone", || async {
            stack
                .call(
                    reqwest::Method::GET,
                    &format!("/api/paas/applications/{app}"),
                    &alice,
                    None,
                )
                .await
                .0
                == 404
        })
        .await;
    assert!(stack.containers(app).is_empty());
    assert_eq!(
        through_ingress(port, &host, "/").await.map(|a| a.0),
        Some(404)
    );
    assert!(
        !agent
            .state_dir
            .join(format!("ingress/sites/app-{app}.conf"))
            .exists()
    );
}

#[tokio::test]
async fn docker_a_broken_commit_fails_its_build_and_the_old_release_keeps_serving() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let port = agent.ingress_port;
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&files(&web_app_files("good")));
    let app = stack.git_app(&alice, "steady", plan, &repo.url()).await;
    let host = format!("steady.{PLATFORM_DOMAIN}");
    assert_eq!(deploy(&stack, &alice, app).await["status"], "success");
    stack::serves(port, &host, "/", "good").await;

    repo.commit(
        &[(
            "Dockerfile",
            &format!("FROM {WEB_IMAGE}\nRUN echo compiling && exit 3\n"),
        )],
        "broken",
    );
    let broken = deploy(&stack, &alice, app).await;
    assert_eq!(broken["status"], "failed", "{broken:#}");
    let reason = broken["failure_reason"].as_str().unwrap();
    assert!(reason.contains("build step exited with code 3"), "{reason}");
    assert_eq!(broken["attempt"], 1, "a failure of the code is not retried");
    let application = stack.app_in(&alice, app, "running").await;
    assert!(
        application["last_error"]
            .as_str()
            .unwrap()
            .contains("build #2 failed"),
        "{application:#}"
    );
    stack::serves(port, &host, "/", "good").await;
    let log = stack
        .get(
            &format!("/api/paas/applications/{app}/builds/{}/logs", broken["id"]),
            &alice,
        )
        .await;
    assert!(
        log["log"].as_str().unwrap().contains("compiling"),
        "{log:#}"
    );

    // An image that builds but never listens fails its health check: the
    // rollout fails and the old release keeps serving.
    repo.commit(
        &[(
            "Dockerfile",
            &format!(
                "FROM {WEB_IMAGE}\nCMD [\"/bin/sh\", \"-c\", \"echo not listening; sleep 600\"]\n"
            ),
        )],
        "never listens",
    );
    let deaf = deploy(&stack, &alice, app).await;
    assert_eq!(deaf["status"], "success", "the image itself builds");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let application = loop {
        let a = stack
            .get(&format!("/api/paas/applications/{app}"), &alice)
            .await;
        if a["status"] == "running"
            && a["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("did not accept connections"))
        {
            break a;
        }
        assert!(std::time::Instant::now() < deadline, "{a:#}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(application["status"], "running");
    stack::serves(port, &host, "/", "good").await;

    // A repository without a Dockerfile or any known file says so.
    repo.commit(&[("README.md", "nothing to run")], "docs only");
    std::fs::remove_file(repo.dir.join("Dockerfile")).unwrap();
    std::fs::remove_file(repo.dir.join("index.html")).unwrap();
    repo.commit(&[], "remove the app");
    let empty = deploy(&stack, &alice, app).await;
    assert_eq!(empty["status"], "failed");
    assert!(
        empty["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("no Dockerfile and no known runtime files found"),
        "{empty:#}"
    );
    stack::serves(port, &host, "/", "good").await;
}

#[tokio::test]
async fn docker_an_app_without_a_dockerfile_is_built_for_its_runtime() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    // A static runtime whose base image is here (no registry to pull from).
    let (status, runtime) = stack
        .post(
            "/api/admin/paas/runtimes",
            &stack.admin,
            json!({"name": "Static (local)", "runtime_type": "static", "version": "1",
                   "base_image": WEB_IMAGE, "default_start_cmd": "exec httpd -f -p $PORT -h /app"}),
        )
        .await;
    assert_eq!(status, 201, "{runtime:#}");
    let alice = stack.customer("alice@example.com").await;
    let repo = Repo::new(&[("index.html", "static site\n")]);
    let app = stack.git_app(&alice, "site", plan, &repo.url()).await;
    let build = deploy(&stack, &alice, app).await;
    assert_eq!(build["status"], "success", "{build:#}");
    assert_eq!(build["builder"], "static");
    stack::serves(
        agent.ingress_port,
        &format!("site.{PLATFORM_DOMAIN}"),
        "/",
        "static site",
    )
    .await;
}
