//! Limits on what one client or customer can do: a burst of failed logins
//! is throttled (429 with `Retry-After`, counted in Redis by the real
//! control plane), and quotas stop a customer creating more applications or
//! databases than allowed, or anything with too low a balance, keeping nothing.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;
mod stack;

use common::TestApp;
use serde_json::json;
use stack::{PASSWORD, Stack, Timing};

#[tokio::test]
async fn a_burst_of_failed_logins_is_throttled_with_retry_after() {
    let stack = Stack::start(Timing {
        env: vec![("SKYPANEL_RATE_LIMIT_LOGIN", "8".into())],
        ..Timing::default()
    })
    .await;
    stack.customer("alice@example.com").await;
    // Counted per minute: start well inside one.
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
    let login = |password: &'static str| {
        stack
            .http
            .post(format!("{}/api/auth/login", stack.base))
            .json(&json!({"email": "alice@example.com", "password": password}))
            .send()
    };
    let mut refused = None;
    for attempt in 1..=10 {
        let answer = login("guessing").await.unwrap();
        match answer.status().as_u16() {
            401 => assert!(attempt <= 8, "attempt {attempt} was not throttled"),
            429 => {
                refused = Some(answer);
                break;
            }
            other => panic!("attempt {attempt}: HTTP {other}"),
        }
    }
    let refused = refused.expect("a burst of failed logins is throttled");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert!(body["field"].is_null() && body["message"].as_str().unwrap().contains("try again"));
    // Even the right password waits for the window; the rest of the API does not.
    assert_eq!(login(PASSWORD).await.unwrap().status(), 429);
    let health = stack
        .http
        .get(format!("{}/api/health", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let plans = stack.get("/api/paas/plans", &stack.admin).await;
    assert!(plans.is_array(), "{plans}");
}

#[tokio::test]
async fn a_users_limits_count_all_their_tokens_and_spare_other_users() {
    let stack = Stack::start(Timing {
        env: vec![
            ("SKYPANEL_RATE_LIMIT_USER", "12".into()),
            ("SKYPANEL_RATE_LIMIT_DEPLOY", "2".into()),
        ],
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    // A node registered in the region (its agent never starts).
    let body = json!({"name": "worker-1", "region": "local", "host_address": "127.0.0.1"});
    let (status, _) = stack
        .post("/api/admin/paas/nodes/register", &stack.admin, body)
        .await;
    assert_eq!(status, 201);
    let alice = stack.customer("alice@example.com").await;
    let bob = stack.customer("bob@example.com").await;
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
    // Alice's second token: an API token.
    let (status, token) = stack
        .post("/api/auth/tokens", &alice, json!({"name": "ci"}))
        .await;
    assert_eq!(status, 201, "{token:#}");
    let api_token = token["token"].as_str().unwrap().to_string();
    let body =
        json!({"name": "shop", "plan_id": plan, "region": "local", "image": stack::WEB_IMAGE});
    let (status, app) = stack.post("/api/paas/applications", &api_token, body).await;
    assert_eq!(status, 201, "{app:#}");
    let deploy = format!("/api/paas/applications/{}/deploy", app["id"]);
    // Deploys: two a minute for Alice, whichever token asks (no node here,
    // so the two that pass are refused for that).
    let (first, _) = stack.post(&deploy, &alice, json!({})).await;
    let (second, _) = stack.post(&deploy, &api_token, json!({})).await;
    let (third, refused) = stack.post(&deploy, &alice, json!({})).await;
    assert_ne!(first, 429);
    assert_ne!(second, 429);
    assert_eq!(
        (third, refused["code"].as_str()),
        (429, Some("rate_limited")),
        "{refused:#}"
    );
    // All requests: twelve a minute for Alice across her tokens (five so far).
    let mut statuses = Vec::new();
    for n in 0..10 {
        let token = if n % 2 == 0 { &alice } else { &api_token };
        let (status, _) = stack
            .call(reqwest::Method::GET, "/api/paas/applications", token, None)
            .await;
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        7,
        "{statuses:?}"
    );
    assert!(statuses[7..].iter().all(|s| *s == 429), "{statuses:?}");
    // Bob, from the same address, is not held back by Alice.
    let (status, _) = stack
        .call(reqwest::Method::GET, "/api/paas/applications", &bob, None)
        .await;
    assert_eq!(status, 200);
}

/// A generous limit (1,000 a minute) is counted in the control plane and
/// added to Redis in batches: the limit still holds to the request, because
/// the count asks Redis itself once it nears the limit, carrying what was
/// counted locally with it.
#[tokio::test]
async fn a_generous_limit_counted_in_batches_still_holds_to_the_request() {
    let stack = Stack::start(Timing {
        env: vec![("SKYPANEL_RATE_LIMIT_USER", "1000".into())],
        ..Timing::default()
    })
    .await;
    let alice = stack.customer("alice@example.com").await;
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 40 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..1010 {
        let (status, _) = stack
            .call(reqwest::Method::GET, "/api/paas/applications", &alice, None)
            .await;
        *statuses.entry(status).or_default() += 1;
    }
    assert_eq!(
        statuses,
        [(200, 1000), (429, 10)].into_iter().collect(),
        "exactly the limit passed"
    );
}

#[tokio::test]
async fn quotas_stop_one_application_or_database_too_many_and_creating_on_too_low_a_balance() {
    let mut settings = common::settings();
    settings.quotas = skypanel_http::quotas::Quotas {
        max_apps: 2,
        max_databases: 0,
        min_balance: skypanel_http::quotas::Quotas::parse_amount("1.00").unwrap(),
    };
    let app = TestApp::with_settings(settings).await;
    let admin = app.admin().await;
    let plan = app.plan(&admin, "basic").await;
    app.node(&admin, "worker-1", "local").await;
    let (alice_id, alice) = app.customer("alice@example.com").await;
    // No credit yet: nothing new.
    let body = |name: &str| json!({"name": name, "plan_id": plan, "region": "local"});
    let refused = app
        .post("/api/paas/applications", &alice, body("first"))
        .await;
    assert!(
        refused.expect_error(409, "balance_too_low")["message"]
            .as_str()
            .unwrap()
            .contains("1.00")
    );
    app.post(
        &format!("/api/admin/wallets/{alice_id}/credit"),
        &admin,
        json!({"amount": "5.00", "description": "credit"}),
    )
    .await
    .expect(200);
    app.post("/api/paas/applications", &alice, body("first"))
        .await
        .expect(201);
    app.post("/api/paas/applications", &alice, body("second"))
        .await
        .expect(201);
    app.post("/api/paas/applications", &alice, body("third"))
        .await
        .expect_error(409, "quota_exceeded");
    let list = app.get("/api/paas/applications", &alice).await;
    assert_eq!(
        list.expect(200).as_array().unwrap().len(),
        2,
        "nothing kept"
    );
    let db = json!({"name": "shop-db", "db_type": "postgresql", "version": "16", "plan_id": plan, "region": "local"});
    app.post("/api/paas/databases", &alice, db)
        .await
        .expect_error(409, "quota_exceeded");
    assert_eq!(
        app.get("/api/paas/databases", &alice).await.expect(200),
        &json!([])
    );
}
