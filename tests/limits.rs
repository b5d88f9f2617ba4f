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
