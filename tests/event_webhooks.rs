//! Customers' event webhooks through the real control plane, agent, Docker
//! and Redis queues: a build that fails and one that succeeds are `POST`ed,
//! signed with the webhook's secret, to a receiver on loopback; a receiver
//! that answers 500 gets the event again after a doubling wait until it
//! answers 200; every attempt is in the webhook's deliveries; another
//! customer sees none of it.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use stack::{Repo, Stack, Timing, WEB_IMAGE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A tiny HTTP receiver: it records every request and answers the next
/// status of its script (200 once the script is used up).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(script: Vec<u16>) -> (Receiver, u16) {
        let receiver = Receiver {
            got: Arc::default(),
            script: Arc::new(Mutex::new(script)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = receiver.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let r = r.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head, body_start) = loop {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break (String::from_utf8_lossy(&buf[..at]).to_string(), at + 4);
                        }
                    };
                    let headers: BTreeMap<String, String> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = buf[body_start..].to_vec();
                    while body.len() < length {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    let status = {
                        let mut script = r.script.lock().unwrap();
                        if script.is_empty() {
                            200
                        } else {
                            script.remove(0)
                        }
                    };
                    r.got.lock().unwrap().push(Received { headers, body });
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        (receiver, port)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Whether `received` carries a valid signature of its body with `secret`.
fn signed_with(received: &Received, secret: &str) -> bool {
    let timestamp = &received.headers["x-skypanel-timestamp"];
    let mut text = format!("{timestamp}.").into_bytes();
    text.extend_from_slice(&received.body);
    skypanel_domain::signatures::verify(
        secret.as_bytes(),
        &text,
        &received.headers["x-skypanel-signature"],
    )
}

#[tokio::test]
async fn docker_build_events_reach_a_webhook_signed_and_a_failing_endpoint_gets_them_again() {
    let stack = Stack::start(Timing {
        env: vec![
            ("SKYPANEL_WEBHOOK_ALLOW_PRIVATE", "true".into()),
            ("SKYPANEL_WEBHOOK_RETRY_SECONDS", "1".into()),
        ],
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    // The first two deliveries are answered 500, then 200.
    let (receiver, port) = Receiver::start(vec![500, 500]).await;
    let url = format!("http://127.0.0.1:{port}/hooks/skypanel");

    // Bad input names its field.
    for (body, field) in [
        (json!({"url": "ftp://example.com/x"}), "url"),
        (json!({"url": url, "events": ["build.exploded"]}), "events"),
    ] {
        let (status, refused) = stack.post("/api/paas/webhooks", &alice, body).await;
        assert_eq!(
            (status, refused["field"].as_str()),
            (422, Some(field)),
            "{refused:#}"
        );
    }
    let (status, hook) = stack
        .post(
            "/api/paas/webhooks",
            &alice,
            json!({"url": url, "events": ["build.failed", "build.succeeded"]}),
        )
        .await;
    assert_eq!(status, 201, "{hook:#}");
    let hook_id = hook["id"].as_i64().unwrap();
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let listed = stack.get("/api/paas/webhooks", &alice).await;
    assert_eq!(
        listed[0]["events"],
        json!(["build.failed", "build.succeeded"])
    );
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once"
    );

    // A build that fails: its event arrives, after two 500s, on the third attempt.
    let broken = Repo::new(&[("Dockerfile", &*format!("FROM {WEB_IMAGE}\nRUN exit 3\n"))]);
    let (status, app) = stack
        .post(
            "/api/paas/applications",
            &alice,
            json!({"name": "hooked", "plan_id": plan, "region": "local", "git_repo_url": broken.url()}),
        )
        .await;
    assert_eq!(status, 201, "{app:#}");
    let app = app["id"].as_i64().unwrap();
    let build = stack.start_deploy(&alice, app).await;
    let deliveries = format!("/api/paas/webhooks/{hook_id}/deliveries");
    stack
        .until(120, "the failed build's event is delivered", || async {
            stack.get(&deliveries, &alice).await[0]["status"] == "succeeded"
        })
        .await;
    let list = stack.get(&deliveries, &alice).await;
    let delivery = &list[0];
    assert_eq!(delivery["event"], "build.failed");
    assert_eq!(delivery["attempts"], 3, "{delivery:#}");
    assert_eq!(delivery["response_status"], 200);
    let got = receiver.received();
    assert_eq!(got.len(), 3, "two failed attempts and one that worked");
    for r in &got {
        assert_eq!(r.headers["x-skypanel-event"], "build.failed");
        assert_eq!(r.headers["x-skypanel-delivery"], delivery["id"].to_string());
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(signed_with(r, &secret), "signed with the webhook's secret");
        assert!(!signed_with(r, "whsec_another"), "and not with another");
    }
    let payload: Value = serde_json::from_slice(&got[2].body).unwrap();
    assert_eq!(payload["event"], "build.failed");
    assert_eq!(payload["data"]["build_id"], build);
    assert_eq!(payload["data"]["application"], "hooked");
    assert!(
        payload["message"]
            .as_str()
            .unwrap()
            .starts_with("Build #1 of hooked failed"),
        "{payload:#}"
    );
    // The waits doubled: one second, then two.
    let times: Vec<i64> = got
        .iter()
        .map(|r| r.headers["x-skypanel-timestamp"].parse().unwrap())
        .collect();
    assert!(
        times[1] - times[0] >= 1 && times[2] - times[1] >= 2,
        "{times:?}"
    );

    // A build that succeeds: one delivery, answered at once.
    broken.commit(
        &[
            (
                "Dockerfile",
                &*format!("FROM {WEB_IMAGE}\nCOPY index.html /www/index.html\n"),
            ),
            ("index.html", "hooked"),
        ],
        "fix the build",
    );
    stack.start_deploy(&alice, app).await;
    stack
        .until(120, "the successful build's event is delivered", || async {
            let list = stack.get(&deliveries, &alice).await;
            list.as_array().unwrap().len() == 2 && list[0]["status"] == "succeeded"
        })
        .await;
    let list = stack.get(&deliveries, &alice).await;
    assert_eq!(
        (&list[0]["event"], &list[0]["attempts"]),
        (&json!("build.succeeded"), &json!(1))
    );
    assert_eq!(receiver.received().len(), 4);
    let notices = stack.get("/api/paas/notifications", &alice).await;
    let kinds: Vec<&str> = notices
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| k.starts_with("build_")).count(),
        2,
        "one notice per build: {kinds:?}"
    );

    // Another customer sees nothing of it; deleting stops the deliveries.
    let bob = stack.customer("bob@example.com").await;
    for path in [format!("/api/paas/webhooks/{hook_id}"), deliveries.clone()] {
        let (status, _) = stack.call(Method::GET, &path, &bob, None).await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(stack.get("/api/paas/webhooks", &bob).await, json!([]));
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/api/paas/webhooks/{hook_id}"),
            &bob,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/api/paas/webhooks/{hook_id}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 204);
    stack.app_in(&alice, app, "running").await;
    stack.start_deploy(&alice, app).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.app_in(&alice, app, "running").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.received().len(),
        4,
        "a deleted webhook gets nothing"
    );
    assert!(
        !stack.process_logs().contains(&secret),
        "the secret is never logged"
    );
}

#[tokio::test]
async fn a_delivery_the_platform_refuses_fails_at_once_and_names_why() {
    // Private addresses are not allowed here (the default).
    let stack = Stack::start(Timing {
        env: vec![("SKYPANEL_WEBHOOK_RETRY_SECONDS", "1".into())],
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let alice = stack.customer("alice@example.com").await;

    // What is knowable at creation is refused then: a name of the local
    // network, a private top-level name, a private address.
    for url in [
        "http://redis:6379/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://nas.lan/hook",
        "http://10.1.2.3/hook",
    ] {
        let (status, refused) = stack
            .post("/api/paas/webhooks", &alice, json!({"url": url}))
            .await;
        assert_eq!(
            (status, refused["field"].as_str()),
            (422, Some("url")),
            "{url}: {refused:#}"
        );
    }
    let (status, hook) = stack
        .post(
            "/api/paas/webhooks",
            &alice,
            json!({"url": "https://hooks.example.com/skypanel", "events": ["app.no_room"]}),
        )
        .await;
    assert_eq!(status, 201, "{hook:#}");
    let hook_id = hook["id"].as_i64().unwrap();
    // The name resolves to a loopback address by the time of the delivery
    // (as a rebinding DNS answer would): the URL stands for that here.
    stack
        .sql(&format!(
            "UPDATE paas_webhooks SET url = 'http://127.0.0.1:9/skypanel' WHERE id = {hook_id}"
        ))
        .await;

    // An event: a deploy with no node online to run on waits for room (the
    // region's only node is registered, its agent never started).
    stack.pending_node("never-started").await;
    let (status, app) = stack
        .post(
            "/api/paas/applications",
            &alice,
            json!({"name": "roomless", "plan_id": plan, "region": "local", "image": WEB_IMAGE}),
        )
        .await;
    assert_eq!(status, 201, "{app:#}");
    let app = app["id"].as_i64().unwrap();
    let (status, waiting) = stack
        .post(
            &format!("/api/paas/applications/{app}/deploy"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{waiting:#}");

    let deliveries = format!("/api/paas/webhooks/{hook_id}/deliveries");
    stack
        .until(60, "the refused delivery is recorded", || async {
            stack.get(&deliveries, &alice).await[0]["status"] == "failed"
        })
        .await;
    let delivery = &stack.get(&deliveries, &alice).await[0];
    assert_eq!(delivery["event"], "app.no_room");
    assert_eq!(
        delivery["attempts"], 1,
        "refused once, not retried: {delivery:#}"
    );
    assert_eq!(delivery["response_status"], Value::Null);
    let error = delivery["error"].as_str().unwrap();
    assert!(
        error.contains("no public address") && error.contains("not tried again"),
        "{error}"
    );
    // And it stays that way (a retry would come after a second here).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.get(&deliveries, &alice).await[0]["attempts"], 1);
}
