//! The admin API: plans, runtimes, nodes, statistics, capacity and wallet
//! credits, with their role checks, validation and in-use conflicts.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use common::TestApp;
use poem::http::Method;
use serde_json::json;

/// Every admin operation, for the role checks.
fn admin_operations() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/api/admin/paas/plans"),
        (Method::POST, "/api/admin/paas/plans"),
        (Method::PUT, "/api/admin/paas/plans/1"),
        (Method::DELETE, "/api/admin/paas/plans/1"),
        (Method::GET, "/api/admin/paas/runtimes"),
        (Method::POST, "/api/admin/paas/runtimes"),
        (Method::PUT, "/api/admin/paas/runtimes/1"),
        (Method::DELETE, "/api/admin/paas/runtimes/1"),
        (Method::GET, "/api/admin/paas/nodes"),
        (Method::POST, "/api/admin/paas/nodes/register"),
        (Method::PUT, "/api/admin/paas/nodes/1"),
        (Method::DELETE, "/api/admin/paas/nodes/1"),
        (Method::GET, "/api/admin/paas/nodes/1/metrics"),
        (Method::GET, "/api/admin/paas/stats"),
        (Method::GET, "/api/admin/paas/capacity"),
        (Method::POST, "/api/admin/wallets/1/credit"),
        (Method::POST, "/api/admin/paas/billing/run"),
        (Method::POST, "/api/admin/paas/ssl/renew"),
        (Method::GET, "/api/admin/paas/database-engines"),
        (Method::POST, "/api/admin/paas/database-engines"),
        (Method::PUT, "/api/admin/paas/database-engines/1"),
        (Method::DELETE, "/api/admin/paas/database-engines/1"),
        (Method::GET, "/api/admin/paas/audit"),
        (Method::GET, "/api/admin/paas/database-volumes"),
        (Method::POST, "/api/admin/paas/backups/run"),
        (Method::GET, "/api/admin/inspector/queues"),
        (Method::GET, "/api/admin/inspector/actors"),
        (Method::GET, "/api/admin/inspector/apps"),
    ]
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_role() {
    let app = TestApp::new().await;
    let (_, customer) = app.customer("eve@example.com").await;
    for (method, path) in admin_operations() {
        let body = matches!(method, Method::POST | Method::PUT).then(|| json!({}));
        let anonymous = app.call(method.clone(), path, None, body.clone()).await;
        anonymous.expect_error(401, "unauthorized");
        let as_customer = app.call(method.clone(), path, Some(&customer), body).await;
        assert_eq!(
            as_customer.status.as_u16(),
            403,
            "{method} {path}: {:#}",
            as_customer.body
        );
        assert_eq!(as_customer.body["code"], "forbidden");
    }
}

#[tokio::test]
async fn plans_crud_and_validation() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let created = app
        .post(
            "/api/admin/paas/plans",
            &admin,
            json!({"name": "Hobby", "cpu_limit": 250, "memory_limit": 256, "storage_limit": 512,
                   "monthly_price": "5", "hourly_rate": "0.0069", "supported_runtimes": [1, 2, 2]}),
        )
        .await;
    let plan = created.expect(201).clone();
    assert_eq!(plan["monthly_price"], "5.00");
    assert_eq!(plan["hourly_rate"], "0.0069");
    assert_eq!(plan["supported_runtimes"], json!([1, 2]));
    assert_eq!(plan["is_active"], true);
    let id = plan["id"].as_i64().unwrap();

    let updated = app
        .put(
            &format!("/api/admin/paas/plans/{id}"),
            &admin,
            json!({"monthly_price": "6.50", "is_active": false}),
        )
        .await;
    assert_eq!(updated.expect(200)["monthly_price"], "6.50");
    assert_eq!(updated.body["name"], "Hobby", "fields not sent are kept");
    let (_, customer) = app.customer("c@example.com").await;
    assert_eq!(
        app.get("/api/paas/plans", &customer).await.expect(200),
        &json!([]),
        "inactive plans are not offered"
    );

    for (body, field) in [
        (json!({"monthly_price": "-1"}), "monthly_price"),
        (json!({"monthly_price": "1.234"}), "monthly_price"),
        (json!({"hourly_rate": "abc"}), "hourly_rate"),
        (json!({"cpu_limit": 0}), "cpu_limit"),
        (json!({"memory_limit": 1}), "memory_limit"),
        (json!({"name": "  "}), "name"),
        (json!({"supported_runtimes": [999]}), "supported_runtimes"),
    ] {
        let answer = app
            .put(&format!("/api/admin/paas/plans/{id}"), &admin, body)
            .await;
        assert_eq!(answer.expect_error(422, "invalid")["field"], field);
    }
    let duplicate = app
        .post(
            "/api/admin/paas/plans",
            &admin,
            json!({"name": "Hobby", "cpu_limit": 1, "memory_limit": 16, "storage_limit": 1, "monthly_price": "0", "hourly_rate": "0"}),
        )
        .await;
    assert_eq!(duplicate.expect_error(409, "conflict")["field"], "name");
    app.put(
        "/api/admin/paas/plans/999",
        &admin,
        json!({"is_active": true}),
    )
    .await
    .expect_error(404, "not_found");
    app.delete(&format!("/api/admin/paas/plans/{id}"), &admin)
        .await
        .expect(204);
    app.delete(&format!("/api/admin/paas/plans/{id}"), &admin)
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn a_plan_or_runtime_in_use_cannot_be_deleted() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let answer = app
        .delete(&format!("/api/admin/paas/plans/{}", w.plan), &w.admin)
        .await;
    let message = answer.expect_error(409, "conflict")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("1 application"), "{message}");

    // A runtime used by an app, then one listed by a plan.
    app.put(
        &format!("/api/paas/applications/{}", w.app),
        &w.customer,
        json!({"runtime_id": 1, "image": null, "git_repo_url": "https://github.com/acme/shop.git"}),
    )
    .await
    .expect(200);
    app.delete("/api/admin/paas/runtimes/1", &w.admin)
        .await
        .expect_error(409, "conflict");
    app.put(
        &format!("/api/admin/paas/plans/{}", w.plan),
        &w.admin,
        json!({"supported_runtimes": [2]}),
    )
    .await
    .expect(200);
    let listed = app.delete("/api/admin/paas/runtimes/2", &w.admin).await;
    assert!(
        listed.expect_error(409, "conflict")["message"]
            .as_str()
            .unwrap()
            .contains("basic")
    );

    // Once the app is gone, the plan can go too.
    app.delete(&format!("/api/paas/applications/{}", w.app), &w.customer)
        .await
        .expect(204);
    app.delete(&format!("/api/admin/paas/plans/{}", w.plan), &w.admin)
        .await
        .expect(204);
    app.delete("/api/admin/paas/runtimes/1", &w.admin)
        .await
        .expect(204);
}

#[tokio::test]
async fn database_engines_are_seeded_and_managed() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let path = "/api/admin/paas/database-engines";
    let seeded = app.get(path, &admin).await;
    let engines: Vec<(String, String, String)> = seeded
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_string();
            (text("db_type"), text("version"), text("image"))
        })
        .collect();
    let expected = [
        ("mongodb", "7", "mongo:7"),
        ("mysql", "8", "mysql:8"),
        ("postgresql", "16", "postgres:16"),
        ("redis", "7", "redis:7"),
    ];
    assert_eq!(
        engines,
        expected.map(|(t, v, i)| (t.to_string(), v.to_string(), i.to_string()))
    );

    let created = app
        .post(
            path,
            &admin,
            json!({"db_type": "postgresql", "version": "15", "image": "postgres:15"}),
        )
        .await;
    let id = created.expect(201)["id"].as_i64().unwrap();
    // The same type and version again, a type that does not exist, a bad
    // version and a bad image: each names its field, and nothing is added.
    let twice = app
        .post(
            path,
            &admin,
            json!({"db_type": "postgresql", "version": "15", "image": "x:1"}),
        )
        .await;
    twice.expect_error(409, "conflict");
    assert_eq!(twice.field(), Some("version"));
    for (body, field) in [
        (
            json!({"db_type": "oracle", "version": "1", "image": "x:1"}),
            "db_type",
        ),
        (
            json!({"db_type": "redis", "version": "../7", "image": "x:1"}),
            "version",
        ),
        (
            json!({"db_type": "redis", "version": "8", "image": "NOT AN IMAGE"}),
            "image",
        ),
    ] {
        let refused = app.post(path, &admin, body).await;
        refused.expect_error(422, "invalid");
        assert_eq!(refused.field(), Some(field));
    }
    assert_eq!(
        app.get(path, &admin)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        5
    );

    let updated = app
        .put(
            &format!("{path}/{id}"),
            &admin,
            json!({"image": "registry.local/postgres:15.8"}),
        )
        .await;
    assert_eq!(updated.expect(200)["image"], "registry.local/postgres:15.8");
    app.put(&format!("{path}/999999"), &admin, json!({"image": "a:1"}))
        .await
        .expect_error(404, "not_found");

    // An engine a database runs cannot go.
    let (alice, _) = app.customer("alice@example.com").await;
    let plan = app.plan(&admin, "small").await;
    app.exec_sql(&format!(
        "INSERT INTO paas_databases (user_id, name, db_type, version, plan_id, region) \
         VALUES ({alice}, 'main', 'postgresql', '15', {plan}, 'local')"
    ))
    .await;
    app.delete(&format!("{path}/{id}"), &admin)
        .await
        .expect_error(409, "conflict");
    app.exec_sql("DELETE FROM paas_databases").await;
    app.delete(&format!("{path}/{id}"), &admin)
        .await
        .expect(204);
    app.delete(&format!("{path}/{id}"), &admin)
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn runtimes_are_seeded_and_managed() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let seeded = app.get("/api/admin/paas/runtimes", &admin).await;
    let names: Vec<&str> = seeded
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Node.js 20",
            "Python 3.12",
            "PHP 8.3",
            "Static",
            "Dockerfile"
        ]
    );
    assert_eq!(seeded.body[0]["base_image"], "node:20-slim");

    let created = app
        .post(
            "/api/admin/paas/runtimes",
            &admin,
            json!({"name": "Local static", "runtime_type": "static", "version": "1", "base_image": "skypanel-test/busybox:1",
                   "default_start_cmd": "httpd -f -p ${PORT} -h /app"}),
        )
        .await;
    let id = created.expect(201)["id"].as_i64().unwrap();
    let cleared = app
        .put(
            &format!("/api/admin/paas/runtimes/{id}"),
            &admin,
            json!({"default_start_cmd": null, "version": "2"}),
        )
        .await;
    assert_eq!(
        cleared.expect(200)["default_start_cmd"],
        serde_json::Value::Null
    );
    assert_eq!(cleared.body["version"], "2");

    let bad_type = app
        .post(
            "/api/admin/paas/runtimes",
            &admin,
            json!({"name": "x", "runtime_type": "cobol", "version": "1", "base_image": "x"}),
        )
        .await;
    assert_eq!(
        bad_type.expect_error(422, "invalid")["field"],
        "runtime_type"
    );
    let bad_image = app
        .post("/api/admin/paas/runtimes", &admin, json!({"name": "x", "runtime_type": "node", "version": "1", "base_image": "Not An Image"}))
        .await;
    assert_eq!(
        bad_image.expect_error(422, "invalid")["field"],
        "base_image"
    );
    let bad_cmd = app
        .put(
            &format!("/api/admin/paas/runtimes/{id}"),
            &admin,
            json!({"default_build_cmd": "make\nrm -rf /"}),
        )
        .await;
    assert_eq!(
        bad_cmd.expect_error(422, "invalid")["field"],
        "default_build_cmd"
    );
    app.delete(&format!("/api/admin/paas/runtimes/{id}"), &admin)
        .await
        .expect(204);
}

#[tokio::test]
async fn nodes_register_update_and_delete() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let registered = app
        .post(
            "/api/admin/paas/nodes/register",
            &admin,
            json!({"name": "Worker-1", "region": "eu-west", "host_address": "203.0.113.7"}),
        )
        .await;
    let body = registered.expect(201).clone();
    let token = body["registration_token"].as_str().unwrap();
    assert!(token.starts_with("spr_"));
    assert_eq!(
        body["install_command"], "sudo ./ops/install-agent.sh http://127.0.0.1:8080",
        "the token is asked for, never on a command line"
    );
    let id = body["node_id"].as_i64().unwrap();

    let list = app.get("/api/admin/paas/nodes", &admin).await;
    let node = &list.expect(200)[0];
    assert_eq!(
        (node["name"].as_str(), node["status"].as_str()),
        (Some("worker-1"), Some("pending"))
    );
    assert!(
        !list.body.to_string().contains(&token[4..]),
        "the token is shown once only"
    );

    let duplicate = app
        .post(
            "/api/admin/paas/nodes/register",
            &admin,
            json!({"name": "worker-1", "region": "eu-west", "host_address": "x.example"}),
        )
        .await;
    assert_eq!(duplicate.expect_error(409, "conflict")["field"], "name");
    let bad_region = app
        .post(
            "/api/admin/paas/nodes/register",
            &admin,
            json!({"name": "w2", "region": "EU West", "host_address": "x.example"}),
        )
        .await;
    assert_eq!(bad_region.expect_error(422, "invalid")["field"], "region");
    let bad_host = app
        .post(
            "/api/admin/paas/nodes/register",
            &admin,
            json!({"name": "w2", "region": "eu", "host_address": "not a host"}),
        )
        .await;
    assert_eq!(
        bad_host.expect_error(422, "invalid")["field"],
        "host_address"
    );

    let disabled = app
        .put(
            &format!("/api/admin/paas/nodes/{id}"),
            &admin,
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.expect(200)["status"], "disabled");
    let enabled = app
        .put(
            &format!("/api/admin/paas/nodes/{id}"),
            &admin,
            json!({"disabled": false, "region": "eu-central"}),
        )
        .await;
    assert_eq!(
        enabled.expect(200)["status"],
        "pending",
        "never registered, so pending again"
    );
    assert_eq!(enabled.body["region"], "eu-central");

    let metrics = app
        .get(&format!("/api/admin/paas/nodes/{id}/metrics"), &admin)
        .await;
    assert_eq!(metrics.expect(200)["applications"], 0);
    app.get("/api/admin/paas/nodes/999/metrics", &admin)
        .await
        .expect_error(404, "not_found");
    app.delete(&format!("/api/admin/paas/nodes/{id}"), &admin)
        .await
        .expect(204);
    assert_eq!(
        app.get("/api/admin/paas/nodes", &admin).await.expect(200),
        &json!([])
    );
}

#[tokio::test]
async fn a_node_hosting_apps_cannot_be_deleted_and_reports_its_reservations() {
    let app = TestApp::new().await;
    let w = app.world().await;
    app.post(
        &format!("/api/paas/applications/{}/scale", w.app),
        &w.customer,
        json!({"instance_count": 3}),
    )
    .await
    .expect(202);
    // Placement arrives with the orchestrator; put the app on the node
    // directly, running (only what runs, or is about to, holds room).
    app.exec_sql(&format!(
        "UPDATE paas_applications SET node_id = {}, status = 'running' WHERE id = {}",
        w.node, w.app
    ))
    .await;
    app.exec_sql(&format!("UPDATE paas_nodes SET cpu_total = 4000, memory_total = 8192, cpu_used = 1000 WHERE id = {}", w.node)).await;
    let metrics = app
        .get(
            &format!("/api/admin/paas/nodes/{}/metrics", w.node),
            &w.admin,
        )
        .await;
    let m = metrics.expect(200);
    assert_eq!(
        (
            m["applications"].as_i64(),
            m["cpu_allocated"].as_i64(),
            m["memory_allocated"].as_i64()
        ),
        (Some(1), Some(1500), Some(1536))
    );
    assert_eq!(m["cpu_used_percent"], 25.0);
    let refused = app
        .delete(&format!("/api/admin/paas/nodes/{}", w.node), &w.admin)
        .await;
    assert!(
        refused.expect_error(409, "conflict")["message"]
            .as_str()
            .unwrap()
            .contains("1 application")
    );

    let capacity = app.get("/api/admin/paas/capacity", &w.admin).await;
    let region = &capacity.expect(200)["regions"][0];
    assert_eq!(
        (
            region["region"].as_str(),
            region["cpu_total"].as_i64(),
            region["cpu_allocated"].as_i64()
        ),
        (Some("local"), Some(4000), Some(1500))
    );
    assert_eq!(
        region["free_cpu"], 0,
        "no node is online, so nothing is free"
    );
    assert_eq!(capacity.body["nodes"][0]["applications"], 1);
}

#[tokio::test]
async fn stats_count_what_exists() {
    let app = TestApp::new().await;
    let w = app.world().await;
    app.customer("bob@example.com").await;
    app.post(
        &format!("/api/admin/wallets/{}/credit", w.customer_id),
        &w.admin,
        json!({"amount": "12.50", "description": "welcome"}),
    )
    .await
    .expect(200);
    let stats = app.get("/api/admin/paas/stats", &w.admin).await;
    let s = stats.expect(200);
    assert_eq!(s["users"], json!({"admin": 1, "customer": 2}));
    assert_eq!(s["applications"], json!({"pending": 1}));
    assert_eq!(s["nodes"], json!({"pending": 1}));
    assert_eq!(s["databases"], json!({}));
    assert_eq!(s["revenue"]["credited_this_month"], "12.50");
    assert_eq!(s["revenue"]["wallet_balances"], "12.50");
    assert_eq!(s["revenue"]["billed_this_month"], "0.00");
}

#[tokio::test]
async fn wallet_credits_keep_balance_equal_to_the_ledger() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let (user, token) = app.customer("frank@example.com").await;
    let path = format!("/api/admin/wallets/{user}/credit");
    let credit = |amount: &str| {
        app.post(
            &path,
            &admin,
            json!({"amount": amount, "description": "top-up"}),
        )
    };
    assert_eq!(credit("10.00").await.expect(200)["balance"], "10.0000");
    let second = credit("0.05").await;
    assert_eq!(second.expect(200)["balance"], "10.0500");
    assert_eq!(second.body["transaction"]["kind"], "credit");
    for bad in ["0", "-5", "1.001", "ten", "1000000"] {
        assert_eq!(
            credit(bad).await.expect_error(422, "invalid")["field"],
            "amount",
            "{bad}"
        );
    }
    app.post(
        "/api/admin/wallets/999/credit",
        &admin,
        json!({"amount": "1", "description": "x"}),
    )
    .await
    .expect_error(404, "not_found");

    let wallet = app.get("/api/wallet", &token).await;
    let w = wallet.expect(200);
    assert_eq!(w["balance"], "10.0500");
    let amounts: Vec<&str> = w["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["0.0500", "10.0000"], "newest first");
    let paged = app.get("/api/wallet?limit=1&offset=1", &token).await;
    assert_eq!(paged.expect(200)["transactions"][0]["amount"], "10.0000");

    // Concurrent credits serialise on the wallet row: nothing is lost.
    let credits: Vec<_> = (0..20).map(|_| credit("1.00")).collect();
    for answer in futures::future::join_all(credits).await {
        answer.expect(200);
    }
    let mut conn = app.sql().await;
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        consistent: bool,
    }
    let check: Check = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT w.balance = (SELECT COALESCE(SUM(CASE kind WHEN 'credit' THEN amount ELSE -amount END), 0)
                                   FROM wallet_transactions t WHERE t.wallet_id = w.id)
                    AND w.balance = 30.05 AS consistent
               FROM wallets w WHERE w.user_id = $1",
        )
        .bind::<diesel::sql_types::BigInt, _>(user),
        &mut conn,
    )
    .await
    .unwrap();
    assert!(check.consistent, "balance must equal the sum of the ledger");
}

#[tokio::test]
async fn the_audit_log_records_sensitive_actions_without_secrets_and_filters_them() {
    let app = TestApp::new().await;
    let w = app.world().await;
    // A failed login, a token, an environment change and a credit.
    app.call(
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"email": "alice@example.com", "password": "not the password"})),
    )
    .await
    .expect(401);
    app.post("/api/auth/tokens", &w.customer, json!({"name": "ci"}))
        .await
        .expect(201);
    app.post(
        &format!("/api/paas/applications/{}/env", w.app),
        &w.customer,
        json!({"key": "STRIPE_KEY", "value": "sk_live_canary"}),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/admin/wallets/{}/credit", w.customer_id),
        &w.admin,
        json!({"amount": "10.00", "description": "welcome"}),
    )
    .await
    .expect(200);

    let all = app.get("/api/admin/paas/audit", &w.admin).await;
    let text = all.expect(200).to_string();
    assert!(
        !text.contains("sk_live_canary"),
        "no secret in the audit log"
    );
    let actions: Vec<&str> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "user.login",
        "user.login_failed",
        "api_token.create",
        "env.add",
        "wallet.credit",
        "node.register",
        "app.create",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    // Filters: an action family, an actor, a target; newest first.
    let env = app
        .get("/api/admin/paas/audit?action=env.*", &w.admin)
        .await;
    let env = env.expect(200).as_array().unwrap().clone();
    assert_eq!(env.len(), 1);
    assert_eq!(env[0]["details"]["key"], "STRIPE_KEY");
    assert_eq!(env[0]["target_id"], w.app);
    let mine = app
        .get(
            &format!(
                "/api/admin/paas/audit?actor_user_id={}&limit=2",
                w.customer_id
            ),
            &w.admin,
        )
        .await;
    let mine = mine.expect(200).as_array().unwrap().clone();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|e| e["actor_user_id"] == w.customer_id));
    assert!(mine[0]["id"].as_i64() > mine[1]["id"].as_i64());
    let future = app
        .get("/api/admin/paas/audit?since=2999-01-01T00:00:00Z", &w.admin)
        .await;
    assert_eq!(future.expect(200), &json!([]));
    // Bad filters name their field; customers may not read it.
    app.get("/api/admin/paas/audit?action=DROP%20TABLE", &w.admin)
        .await
        .expect_error(422, "invalid");
    app.get("/api/admin/paas/audit", &w.customer)
        .await
        .expect(403);
}
