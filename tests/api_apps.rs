//! Customer applications: creation rules, settings, environment variables
//! (encrypted at rest), builds, and the lifecycle requests' checks.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use common::{TestApp, settings};
use diesel::sql_types::{Bytea, Text};
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

#[tokio::test]
async fn create_and_read_an_application() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let shown = app
        .get(&format!("/api/paas/applications/{}", w.app), &w.customer)
        .await;
    let a = shown.expect(200);
    assert_eq!(a["slug"], "shop");
    assert_eq!(a["status"], "pending");
    assert_eq!(a["system_domain"], "shop.apps.test");
    assert_eq!(a["url"], "http://shop.apps.test");
    assert_eq!(
        (a["port"].as_i64(), a["instance_count"].as_i64()),
        (Some(8080), Some(1))
    );
    assert_eq!(a["git_branch"], "main");
    let list = app.get("/api/paas/applications", &w.customer).await;
    assert_eq!(list.expect(200).as_array().unwrap().len(), 1);

    let full = app
        .post(
            "/api/paas/applications",
            &w.customer,
            json!({"name": "My Blog 2", "plan_id": w.plan, "region": "local", "runtime_id": 1,
                   "git_repo_url": "git@github.com:alice/blog.git", "git_branch": "release/v2",
                   "git_oauth_token": "ghp_secret_canary_123", "port": 3000, "instance_count": 2,
                   "health_check_path": "/healthz", "auto_deploy": true}),
        )
        .await;
    let b = full.expect(201);
    assert_eq!(b["slug"], "my-blog-2");
    assert_eq!(b["has_git_token"], true);
    assert!(!full.body.to_string().contains("ghp_secret_canary_123"));

    // The git token is sealed at rest, bound to the row.
    let mut conn = app.sql().await;
    #[derive(diesel::QueryableByName)]
    struct Sealed {
        #[diesel(sql_type = Bytea)]
        git_oauth_token: Vec<u8>,
    }
    let sealed: Sealed =
        diesel::sql_query("SELECT git_oauth_token FROM paas_applications WHERE slug = 'my-blog-2'")
            .get_result(&mut conn)
            .await
            .unwrap();
    assert!(!sealed.git_oauth_token.windows(6).any(|w| w == b"canary"));
    let key = skypanel_domain::secrets::SecretKey::from_hex(common::SECRET_KEY_HEX).unwrap();
    let id = b["id"].as_i64().unwrap();
    let ad = skypanel_store::apps::Application::git_token_associated_data(id);
    assert_eq!(
        key.open_str(&sealed.git_oauth_token, &ad).unwrap(),
        "ghp_secret_canary_123"
    );
}

#[tokio::test]
async fn creation_rules_name_the_field() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let inactive = app
        .post("/api/admin/paas/plans", &w.admin, json!({"name": "old", "cpu_limit": 1, "memory_limit": 16, "storage_limit": 1, "monthly_price": "1", "hourly_rate": "0", "is_active": false}))
        .await
        .expect(201)["id"]
        .clone();
    let only_node = app
        .post("/api/admin/paas/plans", &w.admin, json!({"name": "node-only", "cpu_limit": 1, "memory_limit": 16, "storage_limit": 1, "monthly_price": "1", "hourly_rate": "0", "supported_runtimes": [1]}))
        .await
        .expect(201)["id"]
        .clone();
    let base = json!({"name": "valid-name", "plan_id": w.plan, "region": "local"});
    let with = |patch: Value| {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (with(json!({"name": "ab"})), 422, "name"),
        (with(json!({"name": "!!!"})), 422, "name"),
        (with(json!({"name": "x".repeat(70)})), 422, "name"),
        (with(json!({"name": "www"})), 422, "name"),
        (with(json!({"name": "Shop"})), 409, "name"),
        (with(json!({"plan_id": 999})), 422, "plan_id"),
        (with(json!({"plan_id": inactive})), 422, "plan_id"),
        (with(json!({"runtime_id": 999})), 422, "runtime_id"),
        (
            with(json!({"plan_id": only_node, "runtime_id": 2})),
            422,
            "runtime_id",
        ),
        (with(json!({"region": "mars"})), 422, "region"),
        (with(json!({"region": "Not A Region"})), 422, "region"),
        (
            with(json!({"git_repo_url": "http://github.com/a/b"})),
            422,
            "git_repo_url",
        ),
        (
            with(json!({"git_repo_url": "file:///srv/repo"})),
            422,
            "git_repo_url",
        ),
        (
            with(json!({"git_repo_url": "--upload-pack=touch /tmp/x"})),
            422,
            "git_repo_url",
        ),
        (
            with(json!({"git_repo_url": "https://user:pw@github.com/a/b"})),
            422,
            "git_repo_url",
        ),
        (with(json!({"git_branch": "a..b"})), 422, "git_branch"),
        (with(json!({"git_branch": "-x"})), 422, "git_branch"),
        (with(json!({"image": "Bad Image"})), 422, "image"),
        (
            with(json!({"image": "nginx", "git_repo_url": "https://github.com/a/b"})),
            422,
            "image",
        ),
        (with(json!({"port": 0})), 422, "port"),
        (with(json!({"port": 70000})), 422, "port"),
        (with(json!({"instance_count": 0})), 422, "instance_count"),
        (with(json!({"instance_count": 11})), 422, "instance_count"),
        (
            with(json!({"health_check_path": "healthz"})),
            422,
            "health_check_path",
        ),
        (
            with(json!({"git_oauth_token": "has space"})),
            422,
            "git_oauth_token",
        ),
        (with(json!({"port": "eighty"})), 422, "port"),
        (json!({"plan_id": w.plan, "region": "local"}), 422, "name"),
    ];
    for (body, status, field) in cases {
        let answer = app
            .post("/api/paas/applications", &w.customer, body.clone())
            .await;
        assert_eq!(answer.status.as_u16(), status, "{body}: {:#}", answer.body);
        assert_eq!(answer.field(), Some(field), "{body}: {:#}", answer.body);
    }
    // Nothing of the refused requests was stored.
    assert_eq!(
        app.get("/api/paas/applications", &w.customer)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn file_urls_only_when_allowed() {
    let mut local = settings();
    local.allow_file_git = true;
    let app = TestApp::with_settings(local).await;
    let w = app.world().await;
    let created = app
        .post("/api/paas/applications", &w.customer, json!({"name": "local-repo", "plan_id": w.plan, "region": "local", "git_repo_url": "file:///srv/git/app"}))
        .await;
    assert_eq!(created.expect(201)["git_repo_url"], "file:///srv/git/app");
}

#[tokio::test]
async fn update_settings() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let path = format!("/api/paas/applications/{}", w.app);
    let switched = app
        .put(&path, &w.customer, json!({"image": null, "git_repo_url": "https://github.com/alice/shop.git", "git_branch": "dev", "port": 5000, "auto_deploy": true}))
        .await;
    let a = switched.expect(200);
    assert_eq!(
        (a["image"].clone(), a["git_repo_url"].as_str()),
        (Value::Null, Some("https://github.com/alice/shop.git"))
    );
    assert_eq!(
        (
            a["git_branch"].as_str(),
            a["port"].as_i64(),
            a["auto_deploy"].as_bool()
        ),
        (Some("dev"), Some(5000), Some(true))
    );
    let both = app.put(&path, &w.customer, json!({"image": "nginx"})).await;
    assert_eq!(both.expect_error(422, "invalid")["field"], "image");
    let token = app
        .put(&path, &w.customer, json!({"git_oauth_token": "tok_123"}))
        .await;
    assert_eq!(token.expect(200)["has_git_token"], true);
    let cleared = app
        .put(&path, &w.customer, json!({"git_oauth_token": null}))
        .await;
    assert_eq!(cleared.expect(200)["has_git_token"], false);
    let unchanged = app.put(&path, &w.customer, json!({})).await;
    assert_eq!(unchanged.expect(200)["port"], 5000);
    app.put(&path, &w.customer, json!({"plan_id": 999}))
        .await
        .expect_error(422, "invalid");
    app.put("/api/paas/applications/999", &w.customer, json!({}))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn delete_removes_the_app_and_its_domain() {
    let app = TestApp::new().await;
    let w = app.world().await;
    app.post(
        &format!("/api/paas/applications/{}/env", w.app),
        &w.customer,
        json!({"key": "A", "value": "1"}),
    )
    .await
    .expect(201);
    app.delete(&format!("/api/paas/applications/{}", w.app), &w.customer)
        .await
        .expect(204);
    app.get(&format!("/api/paas/applications/{}", w.app), &w.customer)
        .await
        .expect_error(404, "not_found");
    let mut conn = app.sql().await;
    #[derive(diesel::QueryableByName)]
    struct Left {
        #[diesel(sql_type = Text)]
        left: String,
    }
    let left: Left = diesel::sql_query(
        "SELECT ((SELECT count(*) FROM paas_domains) + (SELECT count(*) FROM paas_environment_vars))::text AS left",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(left.left, "0");
    // The name is free again.
    app.app(&w.customer, "shop", w.plan).await;
}

#[tokio::test]
async fn environment_variables_are_sealed_and_masked() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let env = format!("/api/paas/applications/{}/env", w.app);
    let added = app
        .post(
            &env,
            &w.customer,
            json!({"key": "DATABASE_PASSWORD", "value": "s3cret-canary"}),
        )
        .await;
    assert_eq!(added.expect(201)["value"], "********");
    app.post(&env, &w.customer, json!({"key": "EMPTY", "value": ""}))
        .await
        .expect(201);

    let listed = app.get(&env, &w.customer).await;
    assert!(!listed.expect(200).to_string().contains("s3cret"));
    assert_eq!(listed.body[0]["key"], "DATABASE_PASSWORD");
    let revealed = app.get(&format!("{env}?reveal=true"), &w.customer).await;
    assert_eq!(revealed.expect(200)[0]["value"], "s3cret-canary");
    assert_eq!(revealed.body[1]["value"], "");
    // One variable: masked unless revealed; a missing one is a 404.
    let one = app
        .get(&format!("{env}/DATABASE_PASSWORD"), &w.customer)
        .await;
    assert_eq!(one.expect(200)["value"], "********");
    let one = app
        .get(&format!("{env}/DATABASE_PASSWORD?reveal=true"), &w.customer)
        .await;
    assert_eq!(one.expect(200)["key"], "DATABASE_PASSWORD");
    assert_eq!(one.body["value"], "s3cret-canary");
    app.get(&format!("{env}/MISSING?reveal=true"), &w.customer)
        .await
        .expect_error(404, "not_found");

    // At rest: ciphertext, bound to (application, key).
    let mut conn = app.sql().await;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Bytea)]
        value: Vec<u8>,
    }
    let row: Row = diesel::sql_query(
        "SELECT value FROM paas_environment_vars WHERE key = 'DATABASE_PASSWORD'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!(!row.value.windows(6).any(|w| w == b"s3cret"));
    // A ciphertext moved to another key no longer opens: reveal fails closed.
    diesel::sql_query("UPDATE paas_environment_vars SET value = (SELECT value FROM paas_environment_vars WHERE key = 'DATABASE_PASSWORD') WHERE key = 'EMPTY'")
        .execute(&mut conn)
        .await
        .unwrap();
    app.get(&format!("{env}?reveal=true"), &w.customer)
        .await
        .expect_error(500, "internal_error");
    app.delete(&format!("{env}/EMPTY"), &w.customer)
        .await
        .expect(204);

    let duplicate = app
        .post(
            &env,
            &w.customer,
            json!({"key": "DATABASE_PASSWORD", "value": "x"}),
        )
        .await;
    assert_eq!(duplicate.expect_error(409, "conflict")["field"], "key");
    let updated = app
        .put(
            &format!("{env}/DATABASE_PASSWORD"),
            &w.customer,
            json!({"value": "new"}),
        )
        .await;
    assert_eq!(updated.expect(200)["value"], "********");
    assert_eq!(
        app.get(&format!("{env}?reveal=true"), &w.customer)
            .await
            .expect(200)[0]["value"],
        "new"
    );
    app.put(
        &format!("{env}/MISSING"),
        &w.customer,
        json!({"value": "x"}),
    )
    .await
    .expect_error(404, "not_found");
    app.delete(&format!("{env}/DATABASE_PASSWORD"), &w.customer)
        .await
        .expect(204);
    app.delete(&format!("{env}/DATABASE_PASSWORD"), &w.customer)
        .await
        .expect_error(404, "not_found");

    for (body, field) in [
        (json!({"key": "1BAD", "value": "x"}), "key"),
        (json!({"key": "A-B", "value": "x"}), "key"),
        (json!({"key": "K".repeat(256), "value": "x"}), "key"),
        (
            json!({"key": "BIG", "value": "x".repeat(32 * 1024 + 1)}),
            "value",
        ),
        (json!({"key": "NUL", "value": "a\u{0}b"}), "value"),
    ] {
        assert_eq!(
            app.post(&env, &w.customer, body)
                .await
                .expect_error(422, "invalid")["field"],
            field
        );
    }
    app.post(
        &env,
        &w.customer,
        json!({"key": "MAX", "value": "x".repeat(32 * 1024)}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn at_most_200_variables_even_when_added_concurrently() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let env = format!("/api/paas/applications/{}/env", w.app);
    for i in 0..195 {
        app.post(
            &env,
            &w.customer,
            json!({"key": format!("K{i}"), "value": "v"}),
        )
        .await
        .expect(201);
    }
    // 20 adds race for the last 5 places.
    let adds: Vec<_> = (0..20)
        .map(|i| {
            app.post(
                &env,
                &w.customer,
                json!({"key": format!("RACE{i}"), "value": "v"}),
            )
        })
        .collect();
    let answers = futures::future::join_all(adds).await;
    let created = answers.iter().filter(|a| a.status.as_u16() == 201).count();
    assert_eq!(created, 5, "exactly the free places are taken");
    for refused in answers.iter().filter(|a| a.status.as_u16() != 201) {
        assert!(
            refused.expect_error(409, "conflict")["message"]
                .as_str()
                .unwrap()
                .contains("200")
        );
    }
    assert_eq!(
        app.get(&env, &w.customer)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        200
    );
}

#[tokio::test]
async fn builds_are_listed_with_their_logs() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let builds = format!("/api/paas/applications/{}/builds", w.app);
    assert_eq!(app.get(&builds, &w.customer).await.expect(200), &json!([]));
    // Builds are written by the build pipeline; insert two as it would.
    app.exec_sql(&format!(
        "INSERT INTO paas_builds (application_id, build_number, status, build_log, failure_reason)
         VALUES ({0}, 1, 'failed', 'step 1/3\nerror: exit code 1', 'build step exited with code 1'),
                ({0}, 2, 'success', 'all good', NULL)",
        w.app
    ))
    .await;
    let list = app.get(&builds, &w.customer).await;
    let numbers: Vec<i64> = list
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["build_number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    let first = list.body[1]["id"].as_i64().unwrap();
    let one = app.get(&format!("{builds}/{first}"), &w.customer).await;
    assert_eq!(
        one.expect(200)["failure_reason"],
        "build step exited with code 1"
    );
    let log = app
        .get(&format!("{builds}/{first}/logs"), &w.customer)
        .await;
    assert_eq!(log.expect(200)["log"], "step 1/3\nerror: exit code 1");
    app.get(&format!("{builds}/999999"), &w.customer)
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        app.get(&format!("{builds}?limit=1"), &w.customer)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn lifecycle_requests_are_checked() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let base = format!("/api/paas/applications/{}", w.app);
    // Never deployed: restart, stop and start are illegal, naming the state.
    for command in ["restart", "stop", "start"] {
        let answer = app
            .post(&format!("{base}/{command}"), &w.customer, json!({}))
            .await;
        let message = answer.expect_error(409, "illegal_state")["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains("pending"), "{message}");
    }
    // Deploy is legal; no node in the region is online, so it waits for
    // room and says so.
    let deploy = app
        .post(&format!("{base}/deploy"), &w.customer, json!({}))
        .await;
    assert_eq!(
        deploy.expect(202)["waiting"]["behind"],
        "room on a node of region local"
    );
    let waiting = app.get(&base, &w.customer).await;
    assert!(
        waiting.expect(200)["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("waiting for room")),
        "{}",
        waiting.body
    );
    // A stopped app can be started, but not stopped again.
    app.exec_sql(&format!(
        "UPDATE paas_applications SET status = 'stopped' WHERE id = {}",
        w.app
    ))
    .await;
    let stop = app
        .post(&format!("{base}/stop"), &w.customer, json!({}))
        .await;
    assert!(
        stop.expect_error(409, "illegal_state")["message"]
            .as_str()
            .unwrap()
            .contains("already stopped")
    );
    app.post(&format!("{base}/start"), &w.customer, json!({}))
        .await
        .expect_error(409, "no_node_available");

    // Scale records the count within 1..=10.
    let scaled = app
        .post(
            &format!("{base}/scale"),
            &w.customer,
            json!({"instance_count": 4}),
        )
        .await;
    assert_eq!(scaled.expect(202)["instance_count"], 4);
    for bad in [0, 11] {
        let answer = app
            .post(
                &format!("{base}/scale"),
                &w.customer,
                json!({"instance_count": bad}),
            )
            .await;
        assert_eq!(
            answer.expect_error(422, "invalid")["field"],
            "instance_count"
        );
    }
    // An app without a source cannot deploy.
    app.put(&base, &w.customer, json!({"image": null}))
        .await
        .expect(200);
    app.exec_sql(&format!(
        "UPDATE paas_applications SET status = 'running' WHERE id = {}",
        w.app
    ))
    .await;
    let no_source = app
        .post(&format!("{base}/deploy"), &w.customer, json!({}))
        .await;
    assert_eq!(
        no_source.expect_error(422, "invalid")["field"],
        "git_repo_url"
    );
}

#[tokio::test]
async fn regions_plans_and_runtimes_for_customers() {
    let app = TestApp::new().await;
    let w = app.world().await;
    app.node(&w.admin, "worker-2", "eu-west").await;
    let disabled = app.node(&w.admin, "worker-3", "ap-south").await;
    app.put(
        &format!("/api/admin/paas/nodes/{disabled}"),
        &w.admin,
        json!({"disabled": true}),
    )
    .await
    .expect(200);
    app.exec_sql(&format!("UPDATE paas_nodes SET status = 'online', cpu_total = 2000, memory_total = 4096 WHERE id = {}", w.node)).await;

    let regions = app.get("/api/paas/regions", &w.customer).await;
    let r = regions.expect(200);
    assert_eq!(
        r.as_array().unwrap().len(),
        2,
        "a region served only by a disabled node is not listed: {r:#}"
    );
    assert_eq!(
        (r[0]["region"].as_str(), r[0]["available"].as_bool()),
        (Some("eu-west"), Some(false))
    );
    assert_eq!(
        (r[1]["region"].as_str(), r[1]["available"].as_bool()),
        (Some("local"), Some(true))
    );
    assert_eq!(
        (r[1]["free_cpu"].as_i64(), r[1]["free_memory"].as_i64()),
        (Some(2000), Some(4096))
    );
    let refused = app
        .post(
            "/api/paas/applications",
            &w.customer,
            json!({"name": "asia", "plan_id": w.plan, "region": "ap-south"}),
        )
        .await;
    assert_eq!(refused.expect_error(422, "invalid")["field"], "region");

    assert_eq!(
        app.get("/api/paas/plans", &w.customer).await.expect(200)[0]["name"],
        "basic"
    );
    assert_eq!(
        app.get("/api/paas/runtimes", &w.customer)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        5
    );
}
