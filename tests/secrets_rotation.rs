//! `skypanel secrets rotate`, end to end on a real control plane process,
//! PostgreSQL, Docker and nginx: the control plane restarted with a new key
//! (the old one kept for opening) keeps answering every secret right while
//! the rotation seals them again; afterwards it runs on the new key alone —
//! environment variables, a git token, webhook secrets and a release's
//! environment snapshot (a scale starts containers from it) all open — and
//! a second rotation finds nothing left under the old key anywhere.
//! Named `docker_…` (it needs Docker).

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use stack::{Stack, Timing, WEB_IMAGE, binary};

const OLD_KEY: &str = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"; // the stack's
const NEW_KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
const CANARY: &str = "canary-rotated-7731";

/// Runs `skypanel secrets rotate` with these keys; answers (success, output).
fn rotate(stack: &Stack, current: &str, old: &str) -> (bool, String) {
    let out = Command::new(binary("skypanel"))
        .args(["secrets", "rotate"])
        .env_clear()
        .env("SKYPANEL_DATABASE_URL", &stack.db.url)
        .env("SKYPANEL_SECRET_KEY", current)
        .env("SKYPANEL_SECRET_KEYS_OLD", old)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The figure before `label` in the rotation's summary line ("3 sealed again").
fn figure(output: &str, label: &str) -> u64 {
    let line = output.lines().rfind(|l| l.starts_with("pass ")).unwrap();
    let before = &line[..line.find(label).unwrap_or_else(|| panic!("{output}"))];
    before
        .split([' ', ','])
        .rfind(|w| !w.is_empty())
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn docker_secrets_are_sealed_again_under_a_new_key_while_the_platform_serves() {
    assert_eq!(OLD_KEY, "cd".repeat(32));
    let mut stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let body = json!({"name": "shop", "plan_id": plan, "region": "local", "image": WEB_IMAGE});
    let (status, app) = stack.post("/api/paas/applications", &alice, body).await;
    assert_eq!(status, 201, "{app:#}");
    let app = app["id"].as_i64().unwrap();
    let env = format!("/api/paas/applications/{app}/env");
    let (status, _) = stack
        .post(&env, &alice, json!({"key": "CANARY", "value": CANARY}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/deploy"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(&alice, app, "running").await;
    let body = json!({"name": "site", "plan_id": plan, "region": "local",
                      "git_repo_url": "https://git.example.com/alice/site.git", "git_oauth_token": "ghp_rotated_token_1"});
    let (status, git_app) = stack.post("/api/paas/applications", &alice, body).await;
    assert_eq!(status, 201, "{git_app:#}");
    let hook = stack
        .get(&format!("/api/paas/applications/{app}/deploy-hook"), &alice)
        .await;
    let hook_secret = hook["secret"].as_str().unwrap().to_string();
    let (status, _) = stack
        .post(
            "/api/paas/webhooks",
            &alice,
            json!({"url": "https://hooks.example.com/skypanel"}),
        )
        .await;
    assert_eq!(status, 201);

    // The control plane restarts on the new key, still opening the old one's values.
    stack.kill_control_plane();
    stack.set_control_plane_env("SKYPANEL_SECRET_KEY", Some(NEW_KEY));
    stack.set_control_plane_env("SKYPANEL_SECRET_KEYS_OLD", Some(OLD_KEY));
    stack.start_control_plane().await;
    let alice = stack.login("alice@example.com").await;

    // Readers all through the rotation: every answer is the secret.
    let wrong = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (http, url, token) = (
            stack.http.clone(),
            format!("{}{env}?reveal=true", stack.base),
            alice.clone(),
        );
        let (wrong, reads) = (wrong.clone(), reads.clone());
        tokio::spawn(async move {
            loop {
                let answer = http.get(&url).bearer_auth(&token).send().await;
                let good = match answer {
                    Ok(r) if r.status() == 200 => {
                        r.text().await.unwrap_or_default().contains(CANARY)
                    }
                    _ => false,
                };
                if !good {
                    wrong.fetch_add(1, Ordering::SeqCst);
                }
                reads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (ok, output) = tokio::task::spawn_blocking({
        let db = stack.db.url.clone();
        move || {
            let out = Command::new(binary("skypanel"))
                .args(["secrets", "rotate"])
                .env_clear()
                .env("SKYPANEL_DATABASE_URL", db)
                .env("SKYPANEL_SECRET_KEY", NEW_KEY)
                .env("SKYPANEL_SECRET_KEYS_OLD", OLD_KEY)
                .output()
                .unwrap();
            (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    reader.abort();
    assert!(ok, "{output}");
    assert!(
        output.contains("paas_environment_vars.value: 1 sealed again")
            && output.contains("paas_applications.git_oauth_token: 1 sealed again")
            && output.contains("paas_applications.webhook_secret: 1 sealed again")
            && output.contains("paas_webhooks.secret: 1 sealed again")
            && output.contains("paas_releases.env_snapshot: 1 sealed again"),
        "{output}"
    );
    assert!(figure(&output, "sealed again") >= 5, "{output}");
    assert!(!output.contains(CANARY) && !output.contains("ghp_rotated"));
    assert!(reads.load(Ordering::SeqCst) >= 10);
    assert_eq!(
        wrong.load(Ordering::SeqCst),
        0,
        "a read went wrong during the rotation"
    );

    // The new key alone: everything opens.
    stack.kill_control_plane();
    stack.set_control_plane_env("SKYPANEL_SECRET_KEYS_OLD", None);
    stack.start_control_plane().await;
    let alice = stack.login("alice@example.com").await;
    let vars = stack.get(&format!("{env}?reveal=true"), &alice).await;
    assert_eq!(vars[0]["value"], CANARY);
    let hook = stack
        .get(&format!("/api/paas/applications/{app}/deploy-hook"), &alice)
        .await;
    assert_eq!(hook["secret"], hook_secret.as_str());
    // A scale starts a container from the release's environment snapshot.
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/scale"),
            &alice,
            json!({"instance_count": 2}),
        )
        .await;
    assert_eq!(status, 202);
    stack
        .until(60, "two instances run", || {
            std::future::ready(stack.running(app) == 2)
        })
        .await;
    for container in stack.containers(app) {
        let name = container.split(' ').next().unwrap();
        let (_, seen) = stack::docker_text(&["exec", name, "sh", "-c", "echo $CANARY"]);
        assert_eq!(seen, CANARY, "{name}");
    }
    stack
        .until(30, "the application serves", || async {
            stack::through_ingress(
                agent.ingress_port,
                &format!("shop.{}", stack::PLATFORM_DOMAIN),
                "/",
            )
            .await
            .is_some_and(|(code, _)| code == 200)
        })
        .await;

    // Nothing is left under the old key, in any sealed column.
    let (ok, again) = rotate(&stack, NEW_KEY, &"77".repeat(32));
    assert!(ok, "{again}");
    assert_eq!(figure(&again, "sealed again"), 0, "{again}");
    assert!(
        figure(&again, "already under the current key") >= 5,
        "{again}"
    );
    assert_eq!(figure(&again, "unreadable"), 0, "{again}");
    // Without an old key the command says what to do.
    let (ok, refused) = rotate(&stack, NEW_KEY, "");
    assert!(
        !ok && refused.contains("SKYPANEL_SECRET_KEYS_OLD"),
        "{refused}"
    );
}
