//! Automatic HTTPS against a real ACME server (pebble), through the real
//! nginx of a real agent: a custom domain gets a certificate and is served
//! over HTTPS (HTTP redirects there); a renewal swaps the certificate while
//! requests keep succeeding; a domain whose DNS points elsewhere fails after
//! three attempts with a reason its owner can act on, keeps being served over
//! HTTP, and succeeds when retried after DNS is fixed; a renewal that fails
//! leaves the current certificate serving.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use stack::pebble::Pebble;
use stack::{Stack, Timing, WEB_IMAGE, agent_dir, through_ingress, write_ingress_port};

/// A stack whose control plane gets certificates from `pebble`.
async fn https_stack(pebble: &Pebble) -> Stack {
    Stack::start(Timing {
        env: vec![
            ("SKYPANEL_ACME_DIRECTORY", pebble.directory.clone()),
            (
                "SKYPANEL_ACME_CA_BUNDLE",
                pebble.tls_ca.display().to_string(),
            ),
            ("SKYPANEL_ACME_CONTACT", "ops@example.com".into()),
            ("SKYPANEL_SSL_RETRY_SECONDS", "1".into()),
        ],
        ..Timing::default()
    })
    .await
}

/// A running image application; answers its id.
async fn running_app(stack: &Stack, token: &str) -> i64 {
    let plan = stack.plan().await;
    let body = json!({"name": "web", "plan_id": plan, "region": "local", "image": WEB_IMAGE});
    let (status, app) = stack.post("/api/paas/applications", token, body).await;
    assert_eq!(status, 201, "{app:#}");
    let id = app["id"].as_i64().unwrap();
    let (status, answer) = stack
        .post(
            &format!("/api/paas/applications/{id}/deploy"),
            token,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{answer:#}");
    stack.app_in(token, id, "running").await;
    id
}

async fn domain(stack: &Stack, token: &str, app: i64, hostname: &str) -> Value {
    let list = stack
        .get(&format!("/api/paas/applications/{app}/domains"), token)
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["hostname"] == hostname)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until the domain's certificate status is `status`; answers the domain.
async fn domain_in(stack: &Stack, token: &str, app: i64, hostname: &str, status: &str) -> Value {
    stack
        .until(90, &format!("{hostname} is {status}"), || async {
            domain(stack, token, app, hostname).await["ssl_status"] == status
        })
        .await;
    domain(stack, token, app, hostname).await
}

/// GET over HTTPS through the ingress, trusting `root`: the body, or `None`.
fn https_get(pebble: &Pebble, root: &str, host: &str, port: u16) -> Option<String> {
    pebble.curl(&[
        "--cacert",
        root,
        "--resolve",
        &format!("{host}:{port}:127.0.0.1"),
        &format!("https://{host}:{port}/"),
    ])
}

/// The serial number of the certificate the ingress presents for `host`.
fn served_serial(host: &str, port: u16) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {host} </dev/null 2>/dev/null \
             | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn docker_https_a_custom_domain_gets_a_certificate_and_a_renewal_replaces_it_without_a_failed_request()
 {
    let dir = agent_dir();
    let http_port = write_ingress_port(&dir);
    let pebble = Pebble::start(http_port).await;
    let stack = https_stack(&pebble).await;
    let (_node, agent) = stack.node_in("worker-1", dir).await;
    let alice = stack.customer("alice@example.com").await;
    let app = running_app(&stack, &alice).await;

    let (status, added) = stack
        .post(
            &format!("/api/paas/applications/{app}/domains"),
            &alice,
            json!({"hostname": "shop.example.com"}),
        )
        .await;
    assert_eq!(status, 201, "{added:#}");
    assert_eq!(added["ssl_status"], "pending");
    let issued = domain_in(&stack, &alice, app, "shop.example.com", "active").await;
    assert!(issued["ssl_error"].is_null(), "{issued:#}");
    assert!(issued["certificate_expires_at"].is_string(), "{issued:#}");

    // curl trusting pebble's root gets the application's answer over HTTPS.
    let root = pebble.issuing_root().display().to_string();
    let mut body = None;
    stack
        .until(20, "the ingress serves shop.example.com over HTTPS", || {
            body = https_get(&pebble, &root, "shop.example.com", agent.https_port);
            std::future::ready(body.is_some())
        })
        .await;
    assert_eq!(body.as_deref(), Some("hello from skypanel\n"));
    // TLS 1.2 is accepted (and nothing older is configured). Asked until
    // it answers, like the request above: the node may be reloading nginx
    // for the certificate's other work at that moment (a connection then
    // may be refused once; CI saw it once).
    stack
        .until(
            20,
            "the ingress serves shop.example.com over TLS 1.2",
            || {
                std::future::ready(
                    pebble
                        .curl(&[
                            "--tlsv1.2",
                            "--tls-max",
                            "1.2",
                            "--cacert",
                            &root,
                            "--resolve",
                            &format!("shop.example.com:{}:127.0.0.1", agent.https_port),
                            &format!("https://shop.example.com:{}/", agent.https_port),
                        ])
                        .is_some(),
                )
            },
        )
        .await;
    // Plain HTTP redirects to HTTPS; challenges are still answered over HTTP.
    let redirect = pebble
        .curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "-H",
            "Host: shop.example.com",
            &format!("http://127.0.0.1:{http_port}/path?q=1"),
        ])
        .unwrap();
    assert_eq!(
        redirect,
        format!("308 https://shop.example.com:{}/path?q=1", agent.https_port)
    );
    // The expiry shows in the admin's statistics.
    let stats = stack.get("/api/admin/paas/stats", &stack.admin).await;
    let expiring = stats["certificates"]["expiring_first"].as_array().unwrap();
    assert!(
        expiring.iter().any(|c| c["hostname"] == "shop.example.com"
            && c["expires_at"] == issued["certificate_expires_at"]),
        "{stats:#}"
    );

    // A renewal (every certificate counts as near expiry with a long
    // enough window) while requests keep coming: none of them fails.
    let before = served_serial("shop.example.com", agent.https_port);
    assert!(!before.is_empty());
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let failures = failures.clone();
        let (root, port) = (root.clone(), agent.https_port);
        let pebble_curl = move || {
            std::process::Command::new("curl")
                .args([
                    "-sS",
                    "--fail",
                    "--max-time",
                    "5",
                    "--cacert",
                    &root,
                    "--resolve",
                ])
                .arg(format!("shop.example.com:{port}:127.0.0.1"))
                .arg(format!("https://shop.example.com:{port}/"))
                .output()
                .map_err(|e| (None, e.to_string()))
                .and_then(|o| {
                    if o.status.success() && o.stdout == b"hello from skypanel\n" {
                        Ok(())
                    } else {
                        Err((
                            o.status.code(),
                            format!(
                                "{}: {}{}",
                                o.status,
                                String::from_utf8_lossy(&o.stdout),
                                String::from_utf8_lossy(&o.stderr)
                            ),
                        ))
                    }
                })
        };
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let started = std::time::Instant::now();
                // A new HTTP/2 connection caught by the reload (an old
                // nginx worker shutting down) can be closed under its first
                // request; curl reports an HTTP/2 framing error (exit 16),
                // where HTTP/2 clients such as browsers send a request the
                // server closed on again. This GET, sent again once, must
                // then succeed like every other request. (Seen once in ~150
                // requests in one run of the whole suite.)
                let answer = match pebble_curl() {
                    Err((Some(16), _)) => pebble_curl(),
                    other => other,
                };
                match answer.map_err(|(_, why)| why) {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(why) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("after {:?}: {why}", started.elapsed()));
                    }
                }
            }
        })
    };
    let (status, renewed) = stack
        .post(
            "/api/admin/paas/ssl/renew",
            &stack.admin,
            json!({"within_days": 36500}),
        )
        .await;
    assert_eq!(status, 200, "{renewed:#}");
    assert!(renewed["started"].as_i64().unwrap() >= 1, "{renewed:#}");
    stack
        .until(90, "a renewed certificate is served", || async {
            served_serial("shop.example.com", agent.https_port) != before
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    let after = domain(&stack, &alice, app, "shop.example.com").await;
    assert_eq!(after["ssl_status"], "active");
    assert_ne!(
        after["certificate_issued_at"],
        issued["certificate_issued_at"]
    );
    assert!(ok.load(Ordering::SeqCst) >= 5, "too few requests to tell");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the renewal ({} succeeded): {:?}",
        ok.load(Ordering::SeqCst),
        failures.lock().unwrap()
    );
    // The customer's list and errors never show a key.
    let listed = stack
        .get(&format!("/api/paas/applications/{app}/domains"), &alice)
        .await;
    assert!(!listed.to_string().contains("PRIVATE KEY"));
    assert!(!stack.process_logs().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn docker_https_a_domain_that_cannot_validate_fails_after_three_attempts_and_http_still_serves()
 {
    let dir = agent_dir();
    let http_port = write_ingress_port(&dir);
    let pebble = Pebble::start(http_port).await;
    // The name points away from the node's ingress (which listens on 127.0.0.1).
    pebble.resolve("shop.example.net", "127.0.0.2");
    let stack = https_stack(&pebble).await;
    let (_node, agent) = stack.node_in("worker-1", dir).await;
    let alice = stack.customer("alice@example.com").await;
    let app = running_app(&stack, &alice).await;

    let (status, added) = stack
        .post(
            &format!("/api/paas/applications/{app}/domains"),
            &alice,
            json!({"hostname": "shop.example.net"}),
        )
        .await;
    assert_eq!(status, 201, "{added:#}");
    // While a request runs, another one is refused (each is an order at the
    // certificate authority).
    let path = format!("/api/paas/applications/{app}/domains/shop.example.net/ssl/retry");
    let (status, busy) = stack.post(&path, &alice, json!({})).await;
    assert_eq!(status, 409, "{busy:#}");
    assert_eq!(busy["code"], "ssl_in_progress");
    let failed = domain_in(&stack, &alice, app, "shop.example.net", "failed").await;
    assert_eq!(failed["ssl_attempts"], 3, "{failed:#}");
    let error = failed["ssl_error"].as_str().unwrap();
    assert!(
        error.starts_with("DNS for shop.example.net does not point at this platform"),
        "{error}"
    );
    // The owner is told.
    let notices = stack.get("/api/paas/notifications", &alice).await;
    assert!(
        notices
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "ssl_failed"
                && n["message"].as_str().unwrap().contains("shop.example.net")),
        "{notices:#}"
    );
    // HTTP keeps serving the application.
    assert_eq!(
        through_ingress(http_port, "shop.example.net", "/").await,
        Some((200, "hello from skypanel\n".to_string()))
    );
    // No HTTPS for it.
    let root = pebble.issuing_root().display().to_string();
    assert!(https_get(&pebble, &root, "shop.example.net", agent.https_port).is_none());

    // DNS fixed, the owner retries: the attempts start again and succeed.
    pebble.resolve("shop.example.net", "127.0.0.1");
    let (status, retried) = stack.post(&path, &alice, json!({})).await;
    assert_eq!(status, 202, "{retried:#}");
    assert_eq!(retried["ssl_status"], "pending");
    assert_eq!(retried["ssl_attempts"], 0);
    domain_in(&stack, &alice, app, "shop.example.net", "active").await;
    stack
        .until(20, "the ingress serves shop.example.net over HTTPS", || {
            std::future::ready(
                https_get(&pebble, &root, "shop.example.net", agent.https_port).as_deref()
                    == Some("hello from skypanel\n"),
            )
        })
        .await;
    // A renewal that cannot validate keeps the current certificate serving,
    // says why, and tells the owner.
    let served = domain(&stack, &alice, app, "shop.example.net").await;
    pebble.resolve("shop.example.net", "127.0.0.2");
    let (status, renewal) = stack
        .post(
            "/api/admin/paas/ssl/renew",
            &stack.admin,
            json!({"within_days": 36500}),
        )
        .await;
    assert_eq!(status, 200, "{renewal:#}");
    stack
        .until(60, "the owner is told the renewal failed", || async {
            let notices = stack.get("/api/paas/notifications", &alice).await;
            notices
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["kind"] == "ssl_renewal_failed")
        })
        .await;
    let after = domain(&stack, &alice, app, "shop.example.net").await;
    assert_eq!(after["ssl_status"], "active", "{after:#}");
    assert_eq!(after["ssl_attempts"], 3, "{after:#}");
    assert!(
        after["ssl_error"]
            .as_str()
            .unwrap()
            .starts_with("DNS for shop.example.net does not point at this platform"),
        "{after:#}"
    );
    assert_eq!(
        after["certificate_expires_at"],
        served["certificate_expires_at"]
    );
    assert_eq!(
        https_get(&pebble, &root, "shop.example.net", agent.https_port).as_deref(),
        Some("hello from skypanel\n")
    );

    // Another customer cannot retry it.
    let bob = stack.customer("bob@example.com").await;
    let (status, _) = stack.post(&path, &bob, json!({})).await;
    assert_eq!(status, 404);
}
