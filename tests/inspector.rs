//! The admin inspector in headless Chromium, against the real control plane
//! and Redis queues: an admin logs in and sees a job that fails (the
//! `notify` queue cannot write webhook deliveries while their table is
//! away), kills it, the cause is fixed, and pressing Retry runs it to the
//! end. The JSON behind the page is admin only.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use reqwest::Method;
use serde_json::{Value, json};
use stack::browser::Browser;
use stack::{PASSWORD, Repo, Stack, Timing, WEB_IMAGE};

async fn sql(stack: &Stack, statement: &str) {
    let mut conn = AsyncPgConnection::establish(&stack.db.url).await.unwrap();
    diesel::sql_query(statement)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// The notify queue's row as the page shows it, as JSON.
const NOTIFY_ROW: &str = r#"(() => {
  const row = document.querySelector('tr[data-queue="notify"]');
  if (!row) return null;
  const count = k => Number(row.querySelector(`[data-count="${k}"]`).textContent);
  return {done: count("done"), failed: count("failed"), dead: count("dead")};
})()"#;

#[tokio::test]
async fn docker_an_admin_sees_a_failing_job_in_the_inspector_and_retries_it_to_the_end() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;

    // The JSON is the admin's only.
    for path in ["/api/admin/inspector/queues", "/api/admin/inspector/actors"] {
        let (status, _) = stack.call(Method::GET, path, &alice, None).await;
        assert_eq!(status, 403, "{path}");
    }
    let actors = stack.get("/api/admin/inspector/actors", &stack.admin).await;
    let kinds: Vec<&str> = actors
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    for kind in ["root", "supervisor", "scheduler", "node"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    // A failed build writes a notice; its notify job fails while the
    // deliveries' table is away.
    sql(
        &stack,
        "ALTER TABLE paas_webhook_deliveries RENAME TO paas_webhook_deliveries_away",
    )
    .await;
    let repo = Repo::new(&[("Dockerfile", &*format!("FROM {WEB_IMAGE}\nRUN exit 3\n"))]);
    let (status, app) = stack
        .post(
            "/api/paas/applications",
            &alice,
            json!({"name": "inspected", "plan_id": plan, "region": "local", "git_repo_url": repo.url()}),
        )
        .await;
    assert_eq!(status, 201, "{app:#}");
    let app = app["id"].as_i64().unwrap();
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/deploy"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);

    let mut browser = Browser::start().await;
    browser
        .open(&format!("{}/admin/inspector", stack.base))
        .await;
    browser
        .until(
            20,
            "the login form",
            "!!document.querySelector('#login:not([hidden]) #email')",
        )
        .await;
    browser
        .eval(&format!(
            "document.querySelector('#email').value = 'admin@example.com';
             document.querySelector('#password').value = {};
             document.querySelector('#login-button').click(); true",
            Value::from(PASSWORD)
        ))
        .await;
    browser
        .until(20, "the queues, nodes and actors", "!!document.querySelector('#queues') && document.querySelector('#nodes').innerText.includes('worker-1') && document.querySelector('#actors').innerText.includes('scheduler')")
        .await;
    let failing = r#"[...document.querySelectorAll('tr.job[data-queue="notify"]')].find(r => r.querySelector('.result').textContent.includes('paas_webhook_deliveries'))"#;
    browser
        .until(
            90,
            "the failing notify job with its error",
            &format!("!!{failing}"),
        )
        .await;
    let shown = browser
        .eval("document.querySelector('#queues').innerText")
        .await;
    assert!(
        shown.as_str().unwrap().contains("does not exist"),
        "{shown}"
    );

    // Kill it (it may be running again at that moment: press until it is dead).
    let started = std::time::Instant::now();
    loop {
        let state = browser
            .eval(&format!("(() => {{ const r = {failing}; if (!r) return null; if (r.dataset.state === 'failed') r.querySelector('button.kill').click(); return r.dataset.state; }})()"))
            .await;
        if state == "dead" {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "the job never died: {state}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let before = browser.eval(NOTIFY_ROW).await;
    assert_eq!(before["dead"], 1, "{before}");

    // Fixed, and retried from the page: it runs to the end.
    sql(
        &stack,
        "ALTER TABLE paas_webhook_deliveries_away RENAME TO paas_webhook_deliveries",
    )
    .await;
    browser
        .eval(&format!(
            "{failing}.querySelector('button.retry').click(); true"
        ))
        .await;
    browser
        .until(
            30,
            "the retried job is done",
            &format!("(() => {{ const q = {NOTIFY_ROW}; return q !== null && q.dead === 0 && q.failed === 0 && q.done > {}; }})()", before["done"]),
        )
        .await;
    let notices = stack.get("/api/paas/notifications", &alice).await;
    let failed_build = notices
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "build_failed")
        .unwrap();
    assert!(!failed_build["delivered_at"].is_null(), "{failed_build:#}");

    // The application's own page: its state, tasks and the build's failure.
    browser
        .open(&format!("{}/admin/inspector#app/{app}", stack.base))
        .await;
    browser
        .until(
            20,
            "the application's page",
            "!!document.querySelector('#app') && document.body.innerText.includes('app.build')",
        )
        .await;

    // Nothing left to retry: 404, named.
    let (status, refused) = stack
        .call(
            Method::POST,
            "/api/admin/inspector/queues/notify/jobs/no-such-job/retry",
            &stack.admin,
            None,
        )
        .await;
    assert_eq!((status, refused["code"].as_str()), (404, Some("not_found")));
    let (status, _) = stack
        .call(
            Method::POST,
            "/api/admin/inspector/queues/nope/jobs/x/kill",
            &stack.admin,
            None,
        )
        .await;
    assert_eq!(status, 404);
}
