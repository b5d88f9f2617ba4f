//! Tenant isolation: every customer operation in the OpenAPI document is
//! called with a second customer's token on the first customer's ids; then
//! every operation that takes more than one id is called on the second
//! customer's own resource with the first customer's ids everywhere else
//! (path, query, body). Each must answer 404 (or 403), show none of the first
//! customer's data, and change nothing. The list of operations comes from the spec, so a new
//! endpoint is covered (or the test names it as missing a sample body).

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use std::collections::BTreeMap;

use common::TestApp;
use poem::http::Method;
use serde_json::{Value, json};

/// A valid body for each operation that takes one, so that validation passes
/// and only ownership can refuse the call.
fn sample_bodies() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        (
            "updateApplication",
            json!({"port": 9999, "git_branch": "stolen"}),
        ),
        ("scaleApplication", json!({"instance_count": 7})),
        ("scaleFormation", json!({"formation": {"web": 7}})),
        ("createRun", json!({"command": "env", "attach": true})),
        ("addEnvVar", json!({"key": "INJECTED", "value": "x"})),
        ("updateEnvVar", json!({"value": "overwritten"})),
        (
            "createApplication",
            json!({"name": "mallory-app", "plan_id": 1, "region": "local"}),
        ),
        ("createApiToken", json!({"name": "mallory"})),
        ("rollbackApplication", json!({"release": 1})),
        ("addDomain", json!({"hostname": "mallory.example.com"})),
        ("linkDatabase", json!({"env_var_prefix": "MALLORY"})),
        (
            "createDatabase",
            json!({"name": "mallory-db", "db_type": "postgresql", "version": "16", "plan_id": 1, "region": "local"}),
        ),
        ("restoreDatabase", json!({"backup_id": 777_002})),
        ("updateDatabase", json!({"plan_id": 1})),
        (
            "createWebhook",
            json!({"url": "https://mallory.example.com/hook"}),
        ),
        // A wrong password: Mallory's own account stays for the calls after.
        (
            "deleteAccount",
            json!({"password": "not-mallorys-password"}),
        ),
    ])
}

/// Operations that act on the caller's own account rather than on an id.
const SELF_SCOPED: &[&str] = &[
    "me",
    "listApiTokens",
    "createApiToken",
    "getWallet",
    "listApplications",
    "watchApplications",
    "createApplication",
    "listBillingRecords",
    "getBillingUsage",
    "listNotifications",
    "listDatabases",
    "createDatabase",
    "listWebhooks",
    "createWebhook",
    "exportAccount",
    "deleteAccount",
    "authorizeGithub",
    "listGithubInstallations",
    "listGithubRepositories",
    "listGithubBranches",
];
/// Public catalogue reads: the same for every customer, by design.
const SHARED: &[&str] = &[
    "listPlans",
    "listRuntimes",
    "listRegions",
    "listDatabaseEngines",
];

/// Calls `method /api<path>` with `token`; asserts that none of `markers`
/// comes back (`context` says more about the call in the message).
async fn call_leaking_nothing(
    app: &TestApp,
    token: &str,
    method: &Method,
    path: &str,
    body: Option<Value>,
    markers: &[&str],
    context: &str,
) -> common::Answer {
    let answer = app
        .call(method.clone(), &format!("/api{path}"), Some(token), body)
        .await;
    let text = answer.body.to_string();
    for marker in markers {
        assert!(
            !text.contains(marker),
            "{method} {path}{context} leaked {marker}: {text}"
        );
    }
    answer
}

#[tokio::test]
async fn a_customer_cannot_reach_another_customers_resources() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let env = format!("/api/paas/applications/{}/env", w.app);
    app.post(
        &env,
        &w.customer,
        json!({"key": "ALICE_SECRET", "value": "alice-canary-value"}),
    )
    .await
    .expect(201);
    app.exec_sql(&format!(
        "INSERT INTO paas_builds (application_id, build_number, status, build_log) VALUES ({}, 1, 'success', 'alice-build-log')",
        w.app
    ))
    .await;
    let build_id = app
        .get(
            &format!("/api/paas/applications/{}/builds", w.app),
            &w.customer,
        )
        .await
        .expect(200)[0]["id"]
        .as_i64()
        .unwrap();
    let token = app
        .post("/api/auth/tokens", &w.customer, json!({"name": "alice-ci"}))
        .await;
    let token_id = token.expect(201)["id"].as_i64().unwrap();
    let alice_token_secret = token.body["token"].as_str().unwrap().to_string();
    app.post(
        &format!("/api/admin/wallets/{}/credit", w.customer_id),
        &w.admin,
        json!({"amount": "42.00", "description": "alice-credit"}),
    )
    .await
    .expect(200);
    app.exec_sql(&format!(
        "INSERT INTO paas_releases (application_id, version, image_tag, description) VALUES ({}, 1, 'img:1', 'alice-release')",
        w.app
    ))
    .await;
    // A run of it.
    app.exec_sql(&format!(
        "INSERT INTO paas_runs (id, application_id, user_id, started_by, release_version, plan_id, \
         command, attach, status, exit_code, ttl_secs) \
         VALUES (777003, {}, {}, {}, 1, {}, 'echo alice-run', false, 'succeeded', 0, 3600)",
        w.app, w.customer_id, w.customer_id, w.plan
    ))
    .await;
    app.post(
        &format!("/api/paas/applications/{}/domains", w.app),
        &w.customer,
        json!({"hostname": "alice-shop.example.com"}),
    )
    .await
    .expect(201);
    // A database of Alice's, linked into her application.
    let alice_db = 777_001;
    app.exec_sql(&format!(
        "INSERT INTO paas_databases (id, user_id, name, db_type, version, plan_id, region, status) \
         VALUES ({alice_db}, {}, 'alice-db', 'postgresql', '16', {}, 'local', 'running')",
        w.customer_id, w.plan
    ))
    .await;
    app.exec_sql(&format!(
        "INSERT INTO paas_app_databases (application_id, database_id) VALUES ({}, {alice_db})",
        w.app
    ))
    .await;
    // A backup of it, and a restore.
    app.exec_sql(&format!(
        "INSERT INTO paas_database_backups (id, database_id, user_id, origin, status, size_bytes, sha256) \
         VALUES (777002, {alice_db}, {}, 'manual', 'succeeded', 4242, '{}')",
        w.customer_id,
        "a1".repeat(32)
    ))
    .await;
    app.exec_sql(&format!(
        "INSERT INTO paas_database_restores (database_id, user_id, backup_id, status, error) \
         VALUES ({alice_db}, {}, 777002, 'failed', 'alice-restore-error')",
        w.customer_id
    ))
    .await;
    let hook = app
        .post(
            "/api/paas/webhooks",
            &w.customer,
            json!({"url": "https://alice-hook.example.com/events"}),
        )
        .await;
    let hook_id = hook.expect(201)["id"].as_i64().unwrap();
    let (mallory_id, mallory) = app.customer("mallory@example.com").await;

    // Strings that must never reach Mallory.
    let alice_markers = [
        "alice-canary-value",
        "alice-build-log",
        "alice-ci",
        "alice-credit",
        "shop.apps.test",
        "ALICE_SECRET",
        "42.00",
        "alice-release",
        "alice-shop.example.com",
        "alice-db",
        "a1a1a1a1",
        "alice-restore-error",
        "alice-run",
        "alice-hook.example.com",
    ];

    let spec: Value =
        serde_json::from_str(&skypanel_http::openapi_service(&app.state).spec()).unwrap();
    let bodies = sample_bodies();
    let mut checked = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            let tag = operation["tags"][0].as_str().unwrap();
            let secured = operation.get("security").is_some();
            if !secured || tag.starts_with("Admin") || tag == "Agents" || SHARED.contains(&id) {
                continue;
            }
            let concrete = path
                .replace(
                    "{id}",
                    &if path.starts_with("/auth/tokens") {
                        token_id
                    } else if path.starts_with("/paas/databases/") {
                        alice_db
                    } else if path.starts_with("/paas/webhooks/") {
                        hook_id
                    } else {
                        w.app
                    }
                    .to_string(),
                )
                .replace("{dbId}", &alice_db.to_string())
                .replace("{key}", "ALICE_SECRET")
                .replace("{domain}", "alice-shop.example.com")
                .replace("{buildId}", &build_id.to_string())
                .replace("{version}", "1")
                .replace("{run}", "777003")
                .replace("{owner}", "alice-org")
                .replace("{repo}", "alice-repo");
            assert!(
                !concrete.contains('{'),
                "{id}: no value for a parameter of {path}"
            );
            let has_body = operation.get("requestBody").is_some();
            let body = if has_body {
                Some(
                    bodies
                        .get(id)
                        .unwrap_or_else(|| panic!("{id}: add a sample body to sample_bodies()"))
                        .clone(),
                )
            } else {
                None
            };
            let method: Method = method.to_uppercase().parse().unwrap();
            let streams = operation["responses"]["200"]["content"]
                .as_object()
                .is_some_and(|c| c.keys().all(|k| k == "text/event-stream"));
            if streams {
                // A stream stays open: its first event is what it shows.
                let (status, text) = app.first_event(&format!("/api{concrete}"), &mallory).await;
                for marker in alice_markers {
                    assert!(!text.contains(marker), "{id} leaked {marker}: {text}");
                }
                if !SELF_SCOPED.contains(&id) {
                    assert!(
                        matches!(status.as_u16(), 403 | 404),
                        "{method} {concrete} answered {status} to another customer: {text}"
                    );
                }
                checked += 1;
                continue;
            }
            let answer =
                call_leaking_nothing(&app, &mallory, &method, &concrete, body, &alice_markers, "")
                    .await;
            let text = answer.body.to_string();
            if !SELF_SCOPED.contains(&id) {
                assert!(
                    matches!(answer.status.as_u16(), 403 | 404),
                    "{method} {concrete} answered {} to another customer: {text}",
                    answer.status
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations were walked");

    // Second walk: Mallory's own resource in the path, Alice's ids in every
    // other place an id goes (the other path parameters, id fields of the
    // body, id query parameters): a link, restore or read across owners.
    let mallory_app = app.app(&mallory, "mallory-own", w.plan).await;
    let mallory_db = 777_101;
    app.exec_sql(&format!(
        "INSERT INTO paas_databases (id, user_id, name, db_type, version, plan_id, region, status) \
         VALUES ({mallory_db}, {mallory_id}, 'mallory-db', 'postgresql', '16', {}, 'local', 'running')",
        w.plan
    ))
    .await;
    let foreign = |name: &str| -> Option<i64> {
        match name {
            "dbId" | "database_id" => Some(alice_db),
            "buildId" | "build_id" => Some(build_id),
            "backup_id" => Some(777_002),
            "application_id" | "app_id" => Some(w.app),
            "webhook_id" => Some(hook_id),
            "token_id" => Some(token_id),
            _ => None,
        }
    };
    let schemas = &spec["components"]["schemas"];
    let mut crossed = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            let tag = operation["tags"][0].as_str().unwrap();
            if operation.get("security").is_none() || tag.starts_with("Admin") || tag == "Agents" {
                continue;
            }
            let mut concrete = path.replace(
                "{id}",
                &if path.starts_with("/paas/databases/") {
                    mallory_db
                } else {
                    mallory_app
                }
                .to_string(),
            );
            let mut placed = Vec::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                if let Some(alice) = foreign(name) {
                    match parameter["in"].as_str() {
                        Some("path") => {
                            concrete = concrete.replace(&format!("{{{name}}}"), &alice.to_string())
                        }
                        Some("query") => {
                            let joiner = if concrete.contains('?') { '&' } else { '?' };
                            concrete = format!("{concrete}{joiner}{name}={alice}");
                        }
                        _ => continue,
                    }
                    placed.push(name.to_string());
                }
            }
            let mut body = bodies.get(id).cloned();
            let reference =
                operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .and_then(|r| r.rsplit('/').next());
            if let (Some(body), Some(schema)) = (body.as_mut(), reference) {
                for field in schemas[schema]["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    if let Some(alice) = foreign(field) {
                        body[field] = json!(alice);
                        placed.push(field.clone());
                    }
                }
            }
            if placed.is_empty() || concrete.contains('{') {
                continue;
            }
            let method: Method = method.to_uppercase().parse().unwrap();
            let context = format!(" with Alice's {placed:?}");
            let answer = call_leaking_nothing(
                &app,
                &mallory,
                &method,
                &concrete,
                body,
                &alice_markers,
                &context,
            )
            .await;
            let text = answer.body.to_string();
            // A foreign id in a body is a field that names nothing of the
            // caller's: 422 on that field (the same answer as for an id that
            // does not exist), or 404.
            let refused = match answer.status.as_u16() {
                403 | 404 => true,
                422 => answer
                    .field()
                    .is_some_and(|f| placed.iter().any(|p| p == f)),
                _ => false,
            };
            assert!(
                refused,
                "{method} {concrete} with Alice's {placed:?} answered {}: {text}",
                answer.status
            );
            crossed += 1;
        }
    }
    assert!(
        crossed >= 3,
        "only {crossed} operations took a foreign id beside an own one"
    );
    // Alice's database is linked to no application of Mallory's, and restored by no one else.
    assert_eq!(
        app.get(
            &format!("/api/paas/applications/{mallory_app}/databases"),
            &mallory
        )
        .await
        .expect(200),
        &json!([])
    );

    // Nothing of Alice's changed.
    let alice_app = app
        .get(&format!("/api/paas/applications/{}", w.app), &w.customer)
        .await;
    let a = alice_app.expect(200);
    assert_eq!(
        (
            a["port"].as_i64(),
            a["git_branch"].as_str(),
            a["instance_count"].as_i64()
        ),
        (Some(8080), Some("main"), Some(1))
    );
    let vars = app.get(&format!("{env}?reveal=true"), &w.customer).await;
    assert_eq!(
        vars.expect(200),
        &json!([{"key": "ALICE_SECRET", "value": "alice-canary-value", "updated_at": vars.body[0]["updated_at"]}])
    );
    app.get("/api/auth/me", &alice_token_secret)
        .await
        .expect(200);
    assert_eq!(
        app.get("/api/wallet", &w.customer).await.expect(200)["balance"],
        "42.0000"
    );
    // Mallory's own views are empty of Alice.
    assert_eq!(
        app.get("/api/paas/applications", &mallory)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        2,
        "only the two Mallory created"
    );
}
