//! Billing on the real actors, PostgreSQL and HTTP API, with time driven by
//! a manual clock (nothing sleeps an hour): usage follows every state change,
//! each hour is charged once however often and however concurrently it is
//! run, missed hours are caught up once each, the monthly cap holds, the
//! ledger always sums to the balance, and a wallet below zero past its grace
//! period suspends exactly what it must and a credit resumes exactly that.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use std::time::Duration;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use common::{Agent, TestApp, actor_settings, container, settings};
use poem::http::Method;
use serde_json::{Value, json};
use skypanel_actors::Movement;
use skypanel_domain::billing::Period;
use skypanel_domain::clock::Clock;
use skypanel_store::wallets::Direction;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A control plane whose clock stands at `start`, with a grace period of `grace`.
async fn billing_app(start: &str, grace: Duration) -> (TestApp, Clock) {
    let clock = Clock::manual(at(start));
    let actors = skypanel_actors::Settings {
        clock: clock.clone(),
        billing_grace: grace,
        ..actor_settings()
    };
    (TestApp::with_all_settings(settings(), actors).await, clock)
}

struct Setup {
    admin: String,
    customer_id: i64,
    customer: String,
    agent: Agent,
    plan: i64,
}

/// An admin, a plan at `rate` per instance-hour and `monthly` a month, an
/// online agent, and a customer.
async fn setup(app: &TestApp, rate: &str, monthly: &str) -> Setup {
    let admin = app.admin().await;
    let body = json!({
        "name": "metered", "cpu_limit": 250, "memory_limit": 128, "storage_limit": 256,
        "monthly_price": monthly, "hourly_rate": rate
    });
    let plan = app
        .post("/api/admin/paas/plans", &admin, body)
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    let agent = app.agent(&admin, "worker-1", "local").await;
    app.beat(&agent, json!([])).await.expect(200);
    let (customer_id, customer) = app.customer("alice@example.com").await;
    Setup {
        admin,
        customer_id,
        customer,
        agent,
        plan,
    }
}

/// Leases the node's next task and reports it done, as an agent would: an
/// apply runs its instances, a stop leaves none.
async fn settle(app: &TestApp, agent: &Agent, user_id: i64) -> Value {
    let leased = app.lease(agent, 5).await;
    let task = leased.expect(200)["tasks"][0].clone();
    let task_id = task["task_id"].as_i64().unwrap();
    let lease = task["lease_id"].as_str().unwrap().to_string();
    let spec = &task["spec"];
    let containers: Vec<Value> = match spec["kind"].as_str().unwrap() {
        "app.apply" | "app.restart" => (0..spec["instances"].as_i64().unwrap())
            .map(|i| {
                container(
                    spec["app_id"].as_i64().unwrap(),
                    user_id,
                    spec["release"].as_i64().unwrap() as i32,
                    i as i32,
                    spec["generation"].as_i64().unwrap(),
                    "running",
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    app.report(agent, task_id, &lease, "running", None, json!([]))
        .await
        .expect(200);
    app.report(agent, task_id, &lease, "succeeded", None, json!(containers))
        .await
        .expect(200);
    spec.clone()
}

async fn status_of(app: &TestApp, token: &str, id: i64) -> String {
    app.get(&format!("/api/paas/applications/{id}"), token)
        .await
        .expect(200)["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_status(app: &TestApp, token: &str, id: i64, status: &str) {
    app.eventually(10, &format!("application {id} is {status}"), || async {
        status_of(app, token, id).await == status
    })
    .await;
}

async fn command(app: &TestApp, token: &str, id: i64, verb: &str, body: Value) {
    app.post(&format!("/api/paas/applications/{id}/{verb}"), token, body)
        .await
        .expect(202);
}

/// Creates and deploys an image app, and settles it running.
async fn running_app(app: &TestApp, s: &Setup, name: &str) -> i64 {
    let id = app.app(&s.customer, name, s.plan).await;
    command(app, &s.customer, id, "deploy", json!({})).await;
    settle(app, &s.agent, s.customer_id).await;
    wait_status(app, &s.customer, id, "running").await;
    id
}

async fn run_billing(app: &TestApp, admin: &str, hour: &str) -> Value {
    app.post(
        "/api/admin/paas/billing/run",
        admin,
        json!({"period_start": hour}),
    )
    .await
    .expect(200)
    .clone()
}

async fn wallet(app: &TestApp, token: &str) -> Value {
    app.get("/api/wallet?limit=200", token)
        .await
        .expect(200)
        .clone()
}

/// The ledger sums to the balance, checked in SQL.
async fn assert_ledger_matches(app: &TestApp, user_id: i64) {
    #[derive(diesel::QueryableByName)]
    struct Sums {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        matches: bool,
    }
    let mut conn = app.sql().await;
    let sums: Sums = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(format!(
            "SELECT w.balance = COALESCE((SELECT sum(CASE kind WHEN 'credit' THEN amount ELSE -amount END) \
               FROM wallet_transactions t WHERE t.wallet_id = w.id), 0) AS matches \
             FROM wallets w WHERE w.user_id = {user_id}"
        )),
        &mut conn,
    )
    .await
    .unwrap();
    assert!(sums.matches, "the balance equals the sum of the ledger");
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.sql().await;
    let row: Count = diesel_async::RunQueryDsl::get_result(diesel::sql_query(sql), &mut conn)
        .await
        .unwrap();
    row.n
}

#[tokio::test]
async fn scale_changes_mid_hour_bill_exactly_the_instance_seconds() {
    let (app, clock) = billing_app("2026-11-02T10:00:00Z", Duration::from_secs(86400)).await;
    let s = setup(&app, "0.0400", "20.00").await;
    let id = running_app(&app, &s, "shop").await;

    // 10:15 scale to 3; 10:45 stop; 11:00 the hour is over.
    clock.set(at("2026-11-02T10:15:00Z"));
    command(&app, &s.customer, id, "scale", json!({"instance_count": 3})).await;
    settle(&app, &s.agent, s.customer_id).await;
    clock.set(at("2026-11-02T10:45:00Z"));
    command(&app, &s.customer, id, "stop", json!({})).await;
    settle(&app, &s.agent, s.customer_id).await;
    wait_status(&app, &s.customer, id, "stopped").await;

    // The hour has not ended: refused, nothing written.
    let early = app
        .post(
            "/api/admin/paas/billing/run",
            &s.admin,
            json!({"period_start": "2026-11-02T10:00:00Z"}),
        )
        .await;
    early.expect_error(422, "invalid");
    assert_eq!(early.field(), Some("period_start"));
    app.post(
        "/api/admin/paas/billing/run",
        &s.admin,
        json!({"period_start": "2026-11-02T10:30:00Z"}),
    )
    .await
    .expect_error(422, "invalid");
    app.post(
        "/api/admin/paas/billing/run",
        &s.customer,
        json!({"period_start": "2026-11-02T09:00:00Z"}),
    )
    .await
    .expect_error(403, "forbidden");

    clock.set(at("2026-11-02T11:00:00Z"));
    let run = run_billing(&app, &s.admin, "2026-11-02T10:00:00Z").await;
    // 0.25 h × 1 + 0.5 h × 3 = 1.75 instance-hours at 0.04 = 0.07.
    assert_eq!(
        (run["records"].as_i64(), run["charged"].as_str()),
        (Some(1), Some("0.0700"))
    );
    let records = app
        .get("/api/paas/billing/records", &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(records.as_array().unwrap().len(), 1);
    let record = &records[0];
    assert_eq!(record["resource_id"], id);
    assert_eq!(record["hours_used"], "1.750000");
    assert_eq!(record["instance_count"], 3);
    assert_eq!(record["total_cost"], "0.0700");
    let w = wallet(&app, &s.customer).await;
    assert_eq!(w["balance"], "-0.0700");
    assert_eq!(w["transactions"][0]["kind"], "debit");
    assert_eq!(record["wallet_transaction_id"], w["transactions"][0]["id"]);
    assert_ledger_matches(&app, s.customer_id).await;

    // A negative balance gives one notice (and no suspension within the grace period).
    let notices = app
        .get("/api/paas/notifications", &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(notices.as_array().unwrap().len(), 1);
    assert_eq!(notices[0]["kind"], "balance_negative");
    assert_eq!(status_of(&app, &s.customer, id).await, "stopped");

    // The next hour: nothing ran, nothing charged.
    clock.set(at("2026-11-02T12:00:00Z"));
    let next = run_billing(&app, &s.admin, "2026-11-02T11:00:00Z").await;
    assert_eq!(next["records"], 0);

    // This month's usage report shows what was charged.
    let usage = app
        .get("/api/paas/billing/usage", &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(usage["charged_this_month"], "0.0700");
    assert_eq!(usage["resources"][0]["name"], "shop");
    assert_eq!(usage["resources"][0]["running_instances"], 0);
}

#[tokio::test]
async fn every_process_instance_is_billed_like_a_web_one_and_the_release_phase_runs_once() {
    let (app, clock) = billing_app("2026-11-02T10:00:00Z", Duration::from_secs(86400)).await;
    let s = setup(&app, "0.0400", "200.00").await;
    let body = json!({
        "name": "jobs", "plan_id": s.plan, "region": "local", "image": "skypanel-test/busybox:1",
        "processes": {"web": "httpd -f -p $PORT", "worker": "./work", "release": "./migrate"}
    });
    let id = app
        .post("/api/paas/applications", &s.customer, body)
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    command(&app, &s.customer, id, "deploy", json!({})).await;
    // The first rollout carries the release phase and the web command; no worker yet.
    let spec = settle(&app, &s.agent, s.customer_id).await;
    assert_eq!(spec["release_phase"]["command"], "./migrate");
    assert_eq!(spec["release_phase"]["timeout_secs"], 3600);
    assert_eq!(spec["web_command"], "httpd -f -p $PORT");
    assert_eq!(spec["processes"], json!([]));
    wait_status(&app, &s.customer, id, "running").await;

    // web=2 worker=1 from 10:00: the scale's rollout runs no release phase again.
    let formation = format!("/api/paas/applications/{id}/formation");
    let scaled = app
        .patch(
            &formation,
            &s.customer,
            json!({"formation": {"web": 2, "worker": 1}}),
        )
        .await
        .expect(202)
        .clone();
    assert_eq!(scaled["release_command"], "./migrate");
    let counts: Vec<(String, i64)> = scaled["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["process"].as_str().unwrap().to_string(),
                p["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [("web".to_string(), 2), ("worker".to_string(), 1)]);
    let spec = settle(&app, &s.agent, s.customer_id).await;
    assert!(spec["release_phase"].is_null(), "{spec:#}");
    assert_eq!(spec["instances"], 2);
    assert_eq!(
        spec["processes"],
        json!([{"process": "worker", "command": "./work", "instances": 1}])
    );
    let shown = app
        .get(&format!("/api/paas/applications/{id}"), &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(shown["formation"], json!({"web": 2, "worker": 1}));
    assert_eq!(shown["instance_count"], 2);

    // Types the release lacks, and counts out of range, are refused by name.
    for (body, field) in [
        (json!({"formation": {"clock": 1}}), "formation.clock"),
        (json!({"formation": {"worker": 11}}), "formation.worker"),
        (json!({"formation": {"web": 0}}), "formation.web"),
        (json!({"formation": {"Bad Type": 1}}), "formation.Bad Type"),
        (json!({"formation": {}}), "formation"),
    ] {
        let refused = app.patch(&formation, &s.customer, body).await;
        refused.expect_error(422, "invalid");
        assert_eq!(refused.field(), Some(field));
    }
    // Another customer's formation is not there.
    let (_, bob) = app.customer("bob@example.com").await;
    app.get(&formation, &bob)
        .await
        .expect_error(404, "not_found");

    clock.set(at("2026-11-02T11:00:00Z"));
    let run = run_billing(&app, &s.admin, "2026-11-02T10:00:00Z").await;
    // 3 process instances for the hour: 3 instance-hours at 0.04.
    assert_eq!(
        (run["records"].as_i64(), run["charged"].as_str()),
        (Some(1), Some("0.1200"))
    );
    let records = app
        .get("/api/paas/billing/records", &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(records[0]["instance_count"], 3);
    assert_eq!(records[0]["hours_used"], "3.000000");

    // The release phase's release succeeded once; the release says so.
    let releases = app
        .get(
            &format!("/api/paas/applications/{id}/releases"),
            &s.customer,
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(releases[0]["status"], "succeeded");
    assert_eq!(releases[0]["release_command"], "./migrate");
    assert_eq!(
        releases[0]["processes"],
        json!({"web": "httpd -f -p $PORT", "worker": "./work"})
    );
}

#[tokio::test]
async fn an_hour_run_twice_concurrently_and_after_a_lost_ack_charges_once() {
    let (app, clock) = billing_app("2026-11-02T10:00:00Z", Duration::from_secs(86400)).await;
    let s = setup(&app, "0.0400", "20.00").await;
    running_app(&app, &s, "one").await;
    running_app(&app, &s, "two").await;
    clock.set(at("2026-11-02T11:30:00Z"));
    let hour = Period::starting(at("2026-11-02T10:00:00Z")).unwrap();

    // Four runs at once.
    let runs = futures::future::join_all(
        (0..4).map(|_| skypanel_jobs::bill_hour(&app.orchestrator, app.state.store(), hour)),
    )
    .await;
    let records: usize = runs.iter().map(|r| r.as_ref().unwrap().records).sum();
    assert_eq!(records, 2, "two resources, one record each, whoever ran it");
    // The job's acknowledgement was lost (the run is not marked done): it runs again.
    app.exec_sql("DELETE FROM paas_billing_runs").await;
    let again = skypanel_jobs::bill_hour(&app.orchestrator, app.state.store(), hour)
        .await
        .unwrap();
    assert_eq!((again.records, again.debited), (0, 0));
    let api_again = run_billing(&app, &s.admin, "2026-11-02T10:00:00Z").await;
    assert_eq!(api_again["records"], 0);

    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM paas_billing_records").await,
        2
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM wallet_transactions WHERE kind = 'debit'"
        )
        .await,
        1,
        "one debit per wallet and hour"
    );
    assert_eq!(wallet(&app, &s.customer).await["balance"], "-0.0800");
    assert_ledger_matches(&app, s.customer_id).await;
}

#[tokio::test]
async fn missed_hours_are_charged_once_each_on_the_next_run() {
    let (app, clock) = billing_app("2026-11-02T10:00:00Z", Duration::from_secs(86400)).await;
    let s = setup(&app, "0.0100", "20.00").await;
    running_app(&app, &s, "shop").await;
    // The control plane was down from 10:00 to 15:20.
    clock.set(at("2026-11-02T15:20:00Z"));
    let mut conn = app.state.store().conn().await.unwrap();
    let due = skypanel_store::billing::hours_due(&mut conn, clock.now(), 100)
        .await
        .unwrap();
    let hours = |due: &[Period]| -> Vec<String> {
        due.iter()
            .map(|p| p.start().format("%H").to_string())
            .collect()
    };
    assert_eq!(hours(&due), ["10", "11", "12", "13", "14"]);
    // A later hour billed first (an admin's run) leaves the earlier ones due.
    run_billing(&app, &s.admin, "2026-11-02T14:00:00Z").await;
    let due = skypanel_store::billing::hours_due(&mut conn, clock.now(), 100)
        .await
        .unwrap();
    assert_eq!(hours(&due), ["10", "11", "12", "13"]);
    for period in &due {
        skypanel_jobs::bill_hour(&app.orchestrator, app.state.store(), *period)
            .await
            .unwrap();
    }
    assert!(
        skypanel_store::billing::hours_due(&mut conn, clock.now(), 100)
            .await
            .unwrap()
            .is_empty(),
        "nothing is due once they ran"
    );
    // A second catch-up (another replica) charges nothing.
    let all: Vec<Period> = due.iter().copied().chain([due[3].next()]).collect();
    for period in &all {
        let again = skypanel_jobs::bill_hour(&app.orchestrator, app.state.store(), *period)
            .await
            .unwrap();
        assert_eq!(again.records, 0);
    }
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM paas_billing_records").await,
        5
    );
    assert_eq!(wallet(&app, &s.customer).await["balance"], "-0.0500");
    assert_ledger_matches(&app, s.customer_id).await;
}

#[tokio::test]
async fn a_month_never_costs_more_than_the_plan() {
    let (app, clock) = billing_app("2026-11-01T00:00:00Z", Duration::from_secs(86400)).await;
    // 0.04 an hour, capped at 0.50 a month: the 13th hour reaches the cap.
    let s = setup(&app, "0.0400", "0.50").await;
    running_app(&app, &s, "shop").await;
    clock.set(at("2026-11-01T20:00:00Z"));
    let mut hour = Period::starting(at("2026-11-01T00:00:00Z")).unwrap();
    for _ in 0..20 {
        skypanel_jobs::bill_hour(&app.orchestrator, app.state.store(), hour)
            .await
            .unwrap();
        hour = hour.next();
    }
    let usage = app
        .get("/api/paas/billing/usage", &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(usage["charged_this_month"], "0.5000");
    assert_eq!(wallet(&app, &s.customer).await["balance"], "-0.5000");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM paas_billing_records WHERE total_cost < 0"
        )
        .await,
        0
    );
    assert_ledger_matches(&app, s.customer_id).await;
}

#[tokio::test]
async fn a_thousand_concurrent_debits_leave_the_exact_balance() {
    let (app, _clock) = billing_app("2026-11-02T10:00:00Z", Duration::from_secs(86400)).await;
    let admin = app.admin().await;
    let (user, token) = app.customer("bob@example.com").await;
    app.post(
        &format!("/api/admin/wallets/{user}/credit"),
        &admin,
        json!({"amount": "5000.00", "description": "opening credit"}),
    )
    .await
    .expect(200);
    let debits = futures::future::join_all((1..=1000).map(|i| {
        let orchestrator = app.orchestrator.clone();
        async move {
            let movement = Movement {
                direction: Direction::Debit,
                amount: BigDecimal::from(i) / BigDecimal::from(1000),
                description: format!("debit {i}"),
                reference: Some(format!("test-debit-{i}")),
                created_by: None,
            };
            orchestrator.wallet_apply(user, movement).await
        }
    }))
    .await;
    assert!(debits.iter().all(Result::is_ok));
    // Σ i/1000 for i = 1..=1000 = 500.5
    let w = wallet(&app, &token).await;
    assert_eq!(w["balance"], "4499.5000");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM wallet_transactions WHERE kind = 'debit'"
        )
        .await,
        1000
    );
    assert_ledger_matches(&app, user).await;
    // A top-up with a payment reference applies once.
    let topup = json!({"amount": "10.00", "description": "card payment", "reference": "pay_123"});
    let path = format!("/api/admin/wallets/{user}/credit");
    app.post(&path, &admin, topup.clone()).await.expect(200);
    app.post(&path, &admin, topup)
        .await
        .expect_error(409, "conflict");
    assert_eq!(wallet(&app, &token).await["balance"], "4509.5000");
}

#[tokio::test]
async fn past_the_grace_period_the_owner_is_suspended_and_a_credit_resumes_exactly_that() {
    let (app, clock) = billing_app("2026-11-02T10:00:00Z", Duration::from_secs(3600)).await;
    let s = setup(&app, "0.0400", "20.00").await;
    let running = running_app(&app, &s, "running").await;
    let stopped = running_app(&app, &s, "stopped").await;
    command(&app, &s.customer, stopped, "stop", json!({})).await;
    settle(&app, &s.agent, s.customer_id).await;
    wait_status(&app, &s.customer, stopped, "stopped").await;
    let never = app.app(&s.customer, "never-deployed", s.plan).await;

    clock.set(at("2026-11-02T11:00:05Z"));
    run_billing(&app, &s.admin, "2026-11-02T10:00:00Z").await;
    assert_eq!(wallet(&app, &s.customer).await["balance"], "-0.0400");
    // Within the grace period nothing is suspended.
    let checked = app.orchestrator.wallet_check(s.customer_id).await.unwrap();
    assert!(checked.suspended.is_empty());
    assert_eq!(status_of(&app, &s.customer, running).await, "running");

    // Past it: everything is suspended, the running app's containers stop.
    clock.set(at("2026-11-02T12:00:10Z"));
    let checked = app.orchestrator.wallet_check(s.customer_id).await.unwrap();
    let mut suspended = checked.suspended.clone();
    suspended.sort_unstable();
    assert_eq!(suspended, [running, stopped, never]);
    let stop = settle(&app, &s.agent, s.customer_id).await;
    assert_eq!(
        (stop["kind"].as_str(), stop["app_id"].as_i64()),
        (Some("app.stop"), Some(running))
    );
    for id in [running, stopped, never] {
        assert_eq!(status_of(&app, &s.customer, id).await, "suspended");
    }
    // A suspended app cannot be started by its owner, and is not billed.
    app.post(
        &format!("/api/paas/applications/{running}/start"),
        &s.customer,
        json!({}),
    )
    .await
    .expect_error(409, "illegal_state");
    clock.set(at("2026-11-02T14:00:10Z"));
    let idle = run_billing(&app, &s.admin, "2026-11-02T13:00:00Z").await;
    assert_eq!(idle["records"], 0, "a suspended app is not billed");

    // A credit back above zero resumes exactly what was suspended.
    app.post(
        &format!("/api/admin/wallets/{}/credit", s.customer_id),
        &s.admin,
        json!({"amount": "10.00", "description": "top-up"}),
    )
    .await
    .expect(200);
    let start = settle(&app, &s.agent, s.customer_id).await;
    assert_eq!(
        (start["kind"].as_str(), start["app_id"].as_i64()),
        (Some("app.apply"), Some(running))
    );
    wait_status(&app, &s.customer, running, "running").await;
    assert_eq!(status_of(&app, &s.customer, stopped).await, "stopped");
    assert_eq!(status_of(&app, &s.customer, never).await, "pending");
    let kinds: Vec<String> = app
        .get("/api/paas/notifications", &s.customer)
        .await
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["resumed", "suspended", "balance_negative"]);
    assert_ledger_matches(&app, s.customer_id).await;
}

async fn database_status(app: &TestApp, token: &str, id: i64) -> String {
    app.get(&format!("/api/paas/databases/{id}"), token)
        .await
        .expect(200)["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_database_is_billed_while_it_runs_suspended_with_its_owner_and_resumed_by_a_credit() {
    let (app, clock) = billing_app("2026-11-02T10:00:00Z", Duration::from_secs(3600)).await;
    let s = setup(&app, "0.0400", "20.00").await;
    let body = json!({"name": "main-db", "db_type": "postgresql", "version": "16",
                      "plan_id": s.plan, "region": "local"});
    let created = app.post("/api/paas/databases", &s.customer, body).await;
    let id = created.expect(201)["id"].as_i64().unwrap();
    let password = created.body["connection"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    let provision = settle(&app, &s.agent, s.customer_id).await;
    assert_eq!(provision["kind"], "db.provision");
    // The node gets the password in its lease; the stored payload never has it.
    assert_eq!(provision["password"], password.as_str());
    let mut conn = app.sql().await;
    use diesel_async::RunQueryDsl;
    let stored: Vec<String> = diesel::sql_query("SELECT payload::text AS text FROM paas_tasks")
        .load::<Text>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect();
    assert!(stored.iter().all(|p| !p.contains(&password)), "{stored:?}");
    app.eventually(10, "the database runs", || async {
        database_status(&app, &s.customer, id).await == "running"
    })
    .await;

    // An hour running is billed like an application's instance-hour.
    clock.set(at("2026-11-02T11:00:05Z"));
    let billed = run_billing(&app, &s.admin, "2026-11-02T10:00:00Z").await;
    assert_eq!(billed["records"], 1);
    assert_eq!(wallet(&app, &s.customer).await["balance"], "-0.0400");

    // Past the grace period the database is suspended and stopped on its node.
    clock.set(at("2026-11-02T12:00:10Z"));
    app.orchestrator.wallet_check(s.customer_id).await.unwrap();
    assert_eq!(database_status(&app, &s.customer, id).await, "suspended");
    let stop = settle(&app, &s.agent, s.customer_id).await;
    assert_eq!(
        (stop["kind"].as_str(), stop["database_id"].as_i64()),
        (Some("db.stop"), Some(id))
    );
    clock.set(at("2026-11-02T14:00:10Z"));
    let idle = run_billing(&app, &s.admin, "2026-11-02T13:00:00Z").await;
    assert_eq!(idle["records"], 0, "a suspended database is not billed");

    // A credit starts it again.
    app.post(
        &format!("/api/admin/wallets/{}/credit", s.customer_id),
        &s.admin,
        json!({"amount": "10.00", "description": "top-up"}),
    )
    .await
    .expect(200);
    let start = settle(&app, &s.agent, s.customer_id).await;
    assert_eq!(
        (start["kind"].as_str(), start["database_id"].as_i64()),
        (Some("db.provision"), Some(id))
    );
    assert_eq!(database_status(&app, &s.customer, id).await, "running");
    let notices = app.get("/api/paas/notifications", &s.customer).await;
    let texts = notices.expect(200).to_string();
    assert!(texts.contains("1 database(s)"), "{texts}");
    assert_ledger_matches(&app, s.customer_id).await;
}

#[derive(diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    text: String,
}

#[tokio::test]
async fn an_admin_suspends_a_customer_whatever_their_balance_and_resumes_exactly_that() {
    let (app, _clock) = billing_app("2026-11-02T10:00:00Z", Duration::from_secs(3600)).await;
    let s = setup(&app, "0.0400", "20.00").await;
    let running = running_app(&app, &s, "running").await;
    let path = |verb: &str| format!("/api/admin/users/{}/{verb}", s.customer_id);

    // Refused: no reason, a customer asking, an admin account, nobody.
    app.post(&path("suspend"), &s.admin, json!({"reason": "  \n "}))
        .await
        .expect_error(422, "invalid");
    app.post(&path("suspend"), &s.customer, json!({"reason": "me"}))
        .await
        .expect(403);
    let admin_id = app.get("/api/auth/me", &s.admin).await.expect(200)["id"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/api/admin/users/{admin_id}/suspend"),
        &s.admin,
        json!({"reason": "not an admin"}),
    )
    .await
    .expect_error(409, "conflict");
    app.post(
        "/api/admin/users/987654/suspend",
        &s.admin,
        json!({"reason": "nobody"}),
    )
    .await
    .expect_error(404, "not_found");
    assert_eq!(status_of(&app, &s.customer, running).await, "running");

    // Suspended with a balance above zero: the application stops.
    let suspended = app
        .post(
            &path("suspend"),
            &s.admin,
            json!({"reason": "abuse report #42"}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(suspended["suspension_reason"], "abuse report #42");
    assert!(suspended["suspended_at"].is_string(), "{suspended}");
    let stop = settle(&app, &s.agent, s.customer_id).await;
    assert_eq!(
        (stop["kind"].as_str(), stop["app_id"].as_i64()),
        (Some("app.stop"), Some(running))
    );
    assert_eq!(status_of(&app, &s.customer, running).await, "suspended");

    // The customer reads why, and can neither create, deploy nor start.
    let me = app
        .get("/api/auth/me", &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(me["suspension_reason"], "abuse report #42");
    let notices = app
        .get("/api/paas/notifications", &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(notices[0]["kind"], "suspended");
    assert!(
        notices[0]["message"]
            .as_str()
            .unwrap()
            .contains("abuse report #42"),
        "{notices}"
    );
    let refused = app
        .post(
            "/api/paas/applications",
            &s.customer,
            json!({"name": "another", "plan_id": s.plan, "region": "local", "image": "skypanel-test/busybox:1"}),
        )
        .await;
    refused.expect_error(403, "account_suspended");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("abuse report #42")
    );
    for verb in ["deploy", "start", "restart"] {
        app.post(
            &format!("/api/paas/applications/{running}/{verb}"),
            &s.customer,
            json!({}),
        )
        .await
        .expect_error(403, "account_suspended");
    }
    let apps = app
        .get("/api/paas/applications", &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(apps.as_array().unwrap().len(), 1, "nothing was created");

    // A credit does not lift an admin's suspension.
    app.post(
        &format!("/api/admin/wallets/{}/credit", s.customer_id),
        &s.admin,
        json!({"amount": "10.00", "description": "top-up"}),
    )
    .await
    .expect(200);
    let checked = app.orchestrator.wallet_check(s.customer_id).await.unwrap();
    assert!(checked.resumed.is_empty());
    assert_eq!(status_of(&app, &s.customer, running).await, "suspended");
    let listed = app
        .get("/api/admin/users?q=alice", &s.admin)
        .await
        .expect(200)
        .clone();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["user"]["id"] == s.customer_id && u["user"]["suspended_at"].is_string()),
        "{listed}"
    );

    // Resumed: exactly what was suspended comes back.
    let resumed = app
        .post(&path("resume"), &s.admin, json!({}))
        .await
        .expect(200)
        .clone();
    assert!(resumed["suspended_at"].is_null(), "{resumed}");
    let start = settle(&app, &s.agent, s.customer_id).await;
    assert_eq!(
        (start["kind"].as_str(), start["app_id"].as_i64()),
        (Some("app.apply"), Some(running))
    );
    wait_status(&app, &s.customer, running, "running").await;
    let notices = app
        .get("/api/paas/notifications", &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(notices[0]["kind"], "resumed");
    let audit = app
        .get(
            &format!(
                "/api/admin/paas/audit?target_type=user&target_id={}",
                s.customer_id
            ),
            &s.admin,
        )
        .await
        .expect(200)
        .clone();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"user.suspend") && actions.contains(&"user.resume"),
        "{actions:?}"
    );
    assert_ledger_matches(&app, s.customer_id).await;
}

/// The node's side of a run: it leases the `app.run` task, says the
/// container started, and reports how it ended.
async fn lease_run(app: &TestApp, agent: &Agent) -> (i64, String, Value) {
    let leased = app.lease(agent, 5).await;
    let task = leased.expect(200)["tasks"][0].clone();
    assert_eq!(task["spec"]["kind"], "app.run", "{task:#}");
    let task_id = task["task_id"].as_i64().unwrap();
    let lease = task["lease_id"].as_str().unwrap().to_string();
    app.report(agent, task_id, &lease, "running", None, json!([]))
        .await
        .expect(200);
    (task_id, lease, task["spec"].clone())
}

#[tokio::test]
async fn a_one_off_run_is_billed_per_second_like_an_instance_and_belongs_to_its_owner() {
    let (app, clock) = billing_app("2026-11-02T10:00:00Z", Duration::from_secs(86400)).await;
    let s = setup(&app, "0.0400", "200.00").await;
    let id = app.app(&s.customer, "shop", s.plan).await;
    let runs = format!("/api/paas/applications/{id}/runs");
    // Nothing to run before the first release.
    app.post(&runs, &s.customer, json!({"command": "env"}))
        .await
        .expect_error(409, "conflict");
    app.post(
        &format!("/api/paas/applications/{id}/env"),
        &s.customer,
        json!({"key": "GREETING", "value": "hello"}),
    )
    .await
    .expect(201);
    command(&app, &s.customer, id, "deploy", json!({})).await;
    settle(&app, &s.agent, s.customer_id).await;
    wait_status(&app, &s.customer, id, "running").await;

    // Bad requests name their field and leave nothing behind.
    for (body, field) in [
        (json!({"command": "  "}), "command"),
        (json!({"command": "x".repeat(8193)}), "command"),
        (json!({"command": "env", "tty": true}), "tty"),
        (json!({"command": "env", "ttl_secs": 0}), "ttl_secs"),
        (json!({"command": "env", "ttl_secs": 86401}), "ttl_secs"),
        (json!({"command": "env", "env": {"1BAD": "x"}}), "env.1BAD"),
        (json!({"command": "env", "release": 9}), "release"),
        (json!({"command": "env", "shell": true}), "shell"),
    ] {
        let refused = app.post(&runs, &s.customer, body.clone()).await;
        assert_eq!(refused.status.as_u16(), 422, "{body}: {:#}", refused.body);
        assert_eq!(refused.field(), Some(field), "{body}: {:#}", refused.body);
    }
    assert_eq!(
        app.get(&runs, &s.customer).await.expect(200),
        &json!([]),
        "a refused run leaves nothing"
    );

    // A detached run at 10:15 with a variable of its own.
    clock.set(at("2026-11-02T10:15:00Z"));
    let started = app
        .post(
            &runs,
            &s.customer,
            json!({"command": "./report --all", "env": {"MODE": "once"}}),
        )
        .await
        .expect(201)
        .clone();
    let run = started["run"].clone();
    let run_id = run["id"].as_i64().unwrap();
    assert_eq!(run["status"], "pending");
    assert_eq!(run["name"], format!("run.{run_id}"));
    assert_eq!(run["started_by"], s.customer_id);
    assert!(
        started["session"].is_null(),
        "a detached run has no session"
    );
    let (task_id, lease, spec) = lease_run(&app, &s.agent).await;
    assert_eq!(spec["run_id"], run_id);
    assert_eq!(spec["command"], "./report --all");
    assert_eq!(spec["attach"], false);
    assert_eq!(spec["ttl_secs"], 3600);
    assert_eq!(spec["app"]["env"]["GREETING"], "hello");
    assert_eq!(spec["app"]["env"]["MODE"], "once");
    assert_eq!(spec["app"]["instances"], 0);
    // The app's own rollouts are not held up by it: a restart is leased
    // while the run goes on.
    command(&app, &s.customer, id, "restart", json!({})).await;
    let restart = settle(&app, &s.agent, s.customer_id).await;
    assert_eq!(restart["kind"], "app.restart");

    // Only the run's node says it started; billing runs from then.
    let started_path = format!("/api/internal/paas/runs/{run_id}/started");
    let stranger = app.agent(&s.admin, "worker-2", "local").await;
    app.node_call(
        Method::POST,
        &started_path,
        &stranger.credential,
        Some(json!({})),
    )
    .await
    .expect_error(404, "not_found");
    let said = app
        .node_call(
            Method::POST,
            &started_path,
            &s.agent.credential,
            Some(json!({})),
        )
        .await;
    assert_eq!(said.expect(200)["status"], "running");
    let shown = app
        .get(&format!("{runs}/{run_id}"), &s.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(shown["status"], "running");
    assert_eq!(shown["started_at"], "2026-11-02T10:15:00+00:00");

    // It exits with code 3 at 10:45: failed, with its exit code, 30 minutes.
    clock.set(at("2026-11-02T10:45:00Z"));
    let body = json!({"lease_id": lease, "status": "succeeded", "instances": [],
                      "run": {"exit_code": 3}});
    app.node_call(
        Method::POST,
        &format!("/api/internal/paas/tasks/{task_id}/status"),
        &s.agent.credential,
        Some(body),
    )
    .await
    .expect(200);
    let ended = app
        .until_some(5, "the run ends", || async {
            let run = app
                .get(&format!("{runs}/{run_id}"), &s.customer)
                .await
                .body
                .clone();
            (run["status"] == "failed").then_some(run)
        })
        .await;
    assert_eq!(ended["exit_code"], 3);
    assert_eq!(ended["duration_secs"], 1800);
    assert!(ended["failure"].is_null(), "{ended:#}");

    // Another customer sees none of it.
    let (_, bob) = app.customer("bob@example.com").await;
    app.get(&runs, &bob).await.expect_error(404, "not_found");
    app.get(&format!("{runs}/{run_id}"), &bob)
        .await
        .expect_error(404, "not_found");
    app.post(&runs, &bob, json!({"command": "env"}))
        .await
        .expect_error(404, "not_found");
    app.post(&format!("{runs}/{run_id}/stop"), &bob, json!({}))
        .await
        .expect_error(404, "not_found");

    // A run stopped before its node took it ends at once, unbilled.
    let queued = app
        .post(&runs, &s.customer, json!({"command": "sleep 600"}))
        .await
        .expect(201)["run"]["id"]
        .as_i64()
        .unwrap();
    let stopped = app
        .post(&format!("{runs}/{queued}/stop"), &s.customer, json!({}))
        .await
        .expect(202)
        .clone();
    assert_eq!(stopped["status"], "failed");
    assert_eq!(stopped["failure"], "the run was stopped");
    assert!(stopped["started_at"].is_null());
    // At most five at once.
    for n in 0..5 {
        app.post(&runs, &s.customer, json!({"command": format!("sleep {n}")}))
            .await
            .expect(201);
    }
    app.post(&runs, &s.customer, json!({"command": "sleep 9"}))
        .await
        .expect_error(409, "conflict");
    let listed = app.get(&runs, &s.customer).await.expect(200).clone();
    assert_eq!(listed.as_array().unwrap().len(), 7);
    assert_eq!(listed[6]["id"], run_id, "newest first");
    assert_eq!(listed[6]["exit_code"], 3);
    // The audit log records each run.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_log WHERE action = 'app.run'"
        )
        .await,
        7
    );

    // The hour: the web instance's hour at 0.04 and the run's half hour at 0.02.
    clock.set(at("2026-11-02T11:00:00Z"));
    let billed = run_billing(&app, &s.admin, "2026-11-02T10:00:00Z").await;
    assert_eq!(
        (billed["records"].as_i64(), billed["charged"].as_str()),
        (Some(2), Some("0.0600")),
        "{billed:#}"
    );
    let records = app
        .get("/api/paas/billing/records", &s.customer)
        .await
        .expect(200)
        .clone();
    let run_record = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource_type"] == "run")
        .unwrap()
        .clone();
    assert_eq!(run_record["resource_id"], run_id);
    assert_eq!(run_record["hours_used"], "0.500000");
    assert_eq!(run_record["total_cost"], "0.0200");
}
