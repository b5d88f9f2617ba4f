//! The process model on real Docker, through the real control plane and
//! agent: a git application whose Procfile has `web`, `worker` and
//! `release`. The release phase writes to a linked PostgreSQL before the
//! web process starts; workers consume jobs from a linked Redis, publish no
//! port and are restarted by the crash policy; configuration releases run
//! the release phase again and rollbacks do not; a failing release command
//! fails its release with its output while the previous release serves.
//! Every test is named `docker_…` (they need Docker).

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::{Value, json};
use stack::engines::{
    PG_APP_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, database_plan, ensure_engine_images, local_engine,
    running_database,
};
use stack::{Repo, Stack, Timing, docker_text, through_ingress};

/// The web process: busybox's httpd with pages that read the marks the
/// release phase wrote and queue and list jobs.
const MARKS_CGI: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
psql "$DATABASE_URL" -tA -v ON_ERROR_STOP=1 \
    -c "SELECT count(*) || ':' || coalesce(string_agg(mark, ',' ORDER BY at), '') FROM marks" 2>&1 | tail -n 1
"#;

const ENQUEUE_CGI: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
redis-cli -u "$REDIS_URL" --no-auth-warning LPUSH jobs "$QUERY_STRING"
"#;

const DONE_CGI: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
redis-cli -u "$REDIS_URL" --no-auth-warning LRANGE done 0 -1 | sort
"#;

/// Heroku's format: the release phase creates the table and marks it with
/// `$MARK`; workers move each job from `jobs` to `done`, tagged with their
/// container's name.
const PROCFILE: &str = r#"# processes of the test application
web: exec busybox httpd -f -p $PORT -h /www
worker: while true; do job=$(redis-cli -u "$REDIS_URL" --no-auth-warning RPOP jobs); if [ -n "$job" ]; then redis-cli -u "$REDIS_URL" --no-auth-warning LPUSH done "$job@$(cat /etc/hostname)" >/dev/null; else sleep 1; fi; done
release: psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c "CREATE TABLE IF NOT EXISTS marks (at timestamptz DEFAULT clock_timestamp(), mark text)" -c "INSERT INTO marks (mark) VALUES ('m' || '$MARK')" && echo "migrated with mark m$MARK"
"#;

fn app_files(procfile: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Dockerfile",
            format!("FROM {PG_APP_IMAGE}\nCOPY www /www\n"),
        ),
        ("Procfile", procfile.to_string()),
        ("www/index.html", "procfile app\n".to_string()),
        ("www/cgi-bin/marks", MARKS_CGI.to_string()),
        ("www/cgi-bin/enqueue", ENQUEUE_CGI.to_string()),
        ("www/cgi-bin/done", DONE_CGI.to_string()),
    ]
}

fn files<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(p, t)| (*p, t.as_str())).collect()
}

/// The newest release of the application.
async fn newest_release(stack: &Stack, token: &str, app: i64) -> Value {
    stack
        .get(&format!("/api/paas/applications/{app}/releases"), token)
        .await[0]
        .clone()
}

/// Waits until release `version` is no longer pending; answers it.
async fn release_ends(stack: &Stack, token: &str, app: i64, version: i64) -> Value {
    let path = format!("/api/paas/applications/{app}/releases/{version}/log");
    stack
        .until(180, &format!("release v{version} ends"), || async {
            stack.get(&path, token).await["status"] != "pending"
        })
        .await;
    stack.get(&path, token).await
}

/// The application's containers of process type `process`, by name.
fn containers_of(stack: &Stack, app: i64, process: &str) -> Vec<String> {
    stack
        .containers(app)
        .into_iter()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .filter(|name| {
            let info = stack.inspect(name);
            info["Config"]["Labels"]["skypanel.process"] == process
                && info["State"]["Running"] == true
        })
        .collect()
}

#[tokio::test]
async fn docker_a_procfile_app_runs_its_release_phase_then_web_and_workers() {
    ensure_engine_images();
    let stack = Stack::start(Timing::default()).await;
    local_engine(&stack, "postgresql", "16", POSTGRES_IMAGE).await;
    local_engine(&stack, "redis", "7", REDIS_IMAGE).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let db_plan = database_plan(&stack).await;
    let (pg, _) = running_database(&stack, &alice, db_plan, "shop-db", "postgresql", "16").await;
    let (cache, _) = running_database(&stack, &alice, db_plan, "shop-cache", "redis", "7").await;

    let list = app_files(PROCFILE);
    let repo = Repo::new(&files(&list));
    let app = stack.git_app(&alice, "shop", plan, &repo.url()).await;
    for db in [pg, cache] {
        let (status, link) = stack
            .post(
                &format!("/api/paas/applications/{app}/databases/{db}"),
                &alice,
                json!({}),
            )
            .await;
        assert_eq!(status, 201, "{link:#}");
    }
    let build = stack.start_deploy(&alice, app).await;
    let built = stack.build_ends(&alice, app, build).await;
    assert_eq!(built["status"], "success", "{built:#}");
    let log = stack
        .get(
            &format!("/api/paas/applications/{app}/builds/{build}/logs"),
            &alice,
        )
        .await;
    assert!(
        log["log"]
            .as_str()
            .unwrap()
            .contains("Procfile declares: release, web, worker"),
        "{log:#}"
    );
    stack.app_in(&alice, app, "running").await;
    let first = newest_release(&stack, &alice, app).await;
    let v1 = first["version"].as_i64().unwrap();
    assert_eq!(first["status"], "succeeded", "{first:#}");
    assert_eq!(
        first["processes"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["web", "worker"]
    );
    assert!(
        first["release_command"]
            .as_str()
            .unwrap()
            .starts_with("psql")
    );

    // The release phase ran before any process: the web process reads its
    // row on its first request, and the rollout's log has its output
    // before the first instance came up.
    let host = "shop.apps.test";
    let marks = || async {
        through_ingress(agent.ingress_port, host, "/cgi-bin/marks")
            .await
            .map(|(code, body)| (code, body.trim().to_string()))
    };
    assert_eq!(marks().await, Some((200, "1:m".to_string())));
    let rollout = stack
        .get(
            &format!("/api/paas/applications/{app}/releases/{v1}/log"),
            &alice,
        )
        .await;
    let text = rollout["log"].as_str().unwrap();
    let migrated = text.find("[release] migrated with mark m").expect(text);
    let up = text.find("instance 0 is up").expect(text);
    assert!(migrated < up, "{text}");
    // Only web runs until workers are scaled (Heroku's default).
    assert!(containers_of(&stack, app, "worker").is_empty());
    assert_eq!(containers_of(&stack, app, "web").len(), 1);

    // worker=2: two worker containers, same image and limits, no port.
    let formation = format!("/api/paas/applications/{app}/formation");
    let (status, scaled) = stack
        .call(
            Method::PATCH,
            &formation,
            &alice,
            Some(json!({"formation": {"worker": 2}})),
        )
        .await;
    assert_eq!(status, 202, "{scaled:#}");
    stack
        .until(60, "two workers run", || async {
            containers_of(&stack, app, "worker").len() == 2
        })
        .await;
    let workers = containers_of(&stack, app, "worker");
    let web = containers_of(&stack, app, "web");
    let web_info = stack.inspect(&web[0]);
    for name in &workers {
        let info = stack.inspect(name);
        assert!(
            info["HostConfig"]["PortBindings"]
                .as_object()
                .is_none_or(|p| p.is_empty()),
            "a worker publishes no port: {:#}",
            info["HostConfig"]["PortBindings"]
        );
        assert_eq!(info["HostConfig"]["ReadonlyRootfs"], true);
        assert_eq!(info["HostConfig"]["CapDrop"], json!(["ALL"]));
        assert_eq!(
            info["HostConfig"]["Memory"],
            web_info["HostConfig"]["Memory"]
        );
        assert_eq!(info["Image"], web_info["Image"]);
    }
    // The workers consume jobs queued through the web process.
    for job in ["a", "b", "c", "d", "e", "f"] {
        let (code, _) =
            through_ingress(agent.ingress_port, host, &format!("/cgi-bin/enqueue?{job}"))
                .await
                .unwrap();
        assert_eq!(code, 200);
    }
    stack
        .until(60, "the workers did every job", || async {
            through_ingress(agent.ingress_port, host, "/cgi-bin/done")
                .await
                .is_some_and(|(_, body)| body.lines().filter(|l| l.contains('@')).count() == 6)
        })
        .await;
    // The instances list names each process's type; `web` alone is routed.
    let instances = stack
        .get(&format!("/api/paas/applications/{app}/instances"), &alice)
        .await;
    let mut types: Vec<&str> = instances
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["process"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["web", "worker", "worker"], "{instances:#}");

    // The crash policy restarts a worker that dies.
    let victim = workers[0].clone();
    assert!(docker_text(&["kill", &victim]).0);
    stack
        .until(30, "the crash policy restarts the worker", || async {
            let info = stack.inspect(&victim);
            info["State"]["Running"] == true && info["RestartCount"].as_i64().is_some()
        })
        .await;
    stack
        .until(60, "the worker's restart is reported", || async {
            let list = stack
                .get(&format!("/api/paas/applications/{app}/instances"), &alice)
                .await;
            list.as_array().unwrap().iter().any(|i| {
                i["container_name"] == victim.as_str()
                    && i["restart_count"].as_i64() >= Some(1)
                    && i["state"] == "running"
            })
        })
        .await;

    // A configuration change is a release, and its release phase runs.
    let (status, changed) = stack
        .post(
            &format!("/api/paas/applications/{app}/env"),
            &alice,
            json!({"key": "MARK", "value": "two"}),
        )
        .await;
    assert!(status == 201 || status == 200, "{changed:#}");
    let v2 = changed["release"]
        .as_i64()
        .expect("a configuration release");
    let ended = release_ends(&stack, &alice, app, v2).await;
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    stack
        .until(60, "the configuration release serves", || async {
            marks().await == Some((200, "2:m,mtwo".to_string()))
        })
        .await;
    stack
        .until(60, "two workers of the new release run", || async {
            containers_of(&stack, app, "worker")
                .iter()
                .all(|n| n.contains(&format!("-r{v2}-worker-")))
                && containers_of(&stack, app, "worker").len() == 2
        })
        .await;

    // A rollback runs no release phase.
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/rollback"),
            &alice,
            json!({"release": v1}),
        )
        .await;
    assert_eq!(status, 202);
    let v3 = newest_release(&stack, &alice, app).await["version"]
        .as_i64()
        .unwrap();
    assert!(v3 > v2);
    let ended = release_ends(&stack, &alice, app, v3).await;
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    assert!(
        !ended["log"].as_str().unwrap().contains("[release]"),
        "{ended:#}"
    );
    assert_eq!(marks().await.map(|(_, b)| b), Some("2:m,mtwo".to_string()));

    // A release command that fails: the release fails with its output, the
    // serving release answers every request throughout, the owner is told.
    let failing = PROCFILE.replace(
        "release: psql",
        "release: echo failing-migration >&2; exit 7; psql",
    );
    repo.commit(&[("Procfile", failing.as_str())], "a broken migration");
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, failures, requests) = (stop.clone(), failures.clone(), requests.clone());
        let port = agent.ingress_port;
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match through_ingress(port, host, "/").await {
                    Some((200, body)) if body.contains("procfile app") => {}
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                requests.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    let build = stack.start_deploy(&alice, app).await;
    let built = stack.build_ends(&alice, app, build).await;
    assert_eq!(built["status"], "success", "{built:#}");
    let v4 = newest_release(&stack, &alice, app).await["version"]
        .as_i64()
        .unwrap();
    let ended = release_ends(&stack, &alice, app, v4).await;
    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    assert_eq!(ended["status"], "failed", "{ended:#}");
    let failure = ended["failure"].as_str().unwrap();
    assert!(
        failure.contains("exited with code 7") && failure.contains("failing-migration"),
        "{failure}"
    );
    assert!(
        ended["log"]
            .as_str()
            .unwrap()
            .contains("[release] failing-migration")
    );
    assert!(requests.load(Ordering::Relaxed) > 10);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "the serving release answered every request"
    );
    let shown = stack.app_in(&alice, app, "running").await;
    let current = newest_release(&stack, &alice, app).await;
    assert_eq!(current["version"], v4);
    assert_eq!(current["current"], false);
    assert!(
        shown["last_error"]
            .as_str()
            .unwrap()
            .contains("exited with code 7")
    );
    stack
        .until(30, "the owner is told", || async {
            let notices = stack.get("/api/paas/notifications", &alice).await;
            notices.as_array().unwrap().iter().any(|n| {
                n["kind"] == "release_failed"
                    && n["message"].as_str().unwrap().contains(&format!("v{v4}"))
            })
        })
        .await;
    // Nothing of the failed release was left running; the workers serve on.
    assert_eq!(containers_of(&stack, app, "worker").len(), 2);
    assert!(
        stack
            .containers(app)
            .iter()
            .all(|n| !n.contains(&format!("-r{v4}-")) || !n.ends_with(" running")),
        "{:?}",
        stack.containers(app)
    );
}
