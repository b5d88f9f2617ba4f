//! Every 4xx is `{"code","message","field"}` in JSON: malformed bodies, wrong
//! types, oversized bodies, unknown routes and methods, bad path parameters.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use common::TestApp;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use poem::http::Method;
use serde_json::json;

#[tokio::test]
async fn malformed_json_and_wrong_types() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let path = "/api/paas/applications";
    let json_type = Some("application/json");

    let broken = app
        .call_raw(
            Method::POST,
            path,
            Some(&w.customer),
            json_type,
            b"{\"name\": ".to_vec(),
        )
        .await;
    assert_eq!(
        broken.expect_error(400, "invalid_json")["field"],
        serde_json::Value::Null
    );
    let empty = app
        .call_raw(Method::POST, path, Some(&w.customer), json_type, Vec::new())
        .await;
    empty.expect_error(400, "invalid_json");
    let not_object = app
        .call_raw(
            Method::POST,
            path,
            Some(&w.customer),
            json_type,
            b"[1,2]".to_vec(),
        )
        .await;
    not_object.expect_error(422, "invalid");

    let wrong_type = app
        .post(
            path,
            &w.customer,
            json!({"name": "x-app", "plan_id": "one", "region": "local"}),
        )
        .await;
    assert_eq!(wrong_type.expect_error(422, "invalid")["field"], "plan_id");
    let missing = app
        .post(path, &w.customer, json!({"name": "x-app", "plan_id": 1}))
        .await;
    assert_eq!(missing.expect_error(422, "invalid")["field"], "region");

    let text = app
        .call_raw(
            Method::POST,
            path,
            Some(&w.customer),
            Some("text/plain"),
            b"{}".to_vec(),
        )
        .await;
    text.expect_error(400, "unsupported_media_type");
    let no_type = app
        .call_raw(Method::POST, path, Some(&w.customer), None, b"{}".to_vec())
        .await;
    no_type.expect_error(400, "unsupported_media_type");
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let env = format!("/api/paas/applications/{}/env", w.app);
    let huge = format!(
        "{{\"key\": \"BIG\", \"value\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let answer = app
        .call_raw(
            Method::POST,
            &env,
            Some(&w.customer),
            Some("application/json"),
            huge.into_bytes(),
        )
        .await;
    answer.expect_error(413, "payload_too_large");
    assert_eq!(
        app.get(&env, &w.customer).await.expect(200),
        &json!([]),
        "nothing was stored"
    );
}

#[tokio::test]
async fn chunked_bodies_over_one_mebibyte_are_refused_too() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let env = format!("/api/paas/applications/{}/env", w.app);
    // A streamed body has no Content-Length: the limit applies while reading.
    let huge = format!(
        "{{\"key\": \"BIG\", \"value\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    )
    .into_bytes();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        huge.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let body = poem::Body::from_bytes_stream(futures::stream::iter(chunks));
    let response = app
        .client
        .post(&env)
        .header("Authorization", format!("Bearer {}", w.customer))
        .content_type("application/json")
        .body(body)
        .send()
        .await;
    assert_eq!(response.0.status().as_u16(), 413);
    assert_eq!(
        app.get(&env, &w.customer).await.expect(200),
        &json!([]),
        "nothing was stored"
    );
}

#[tokio::test]
async fn routing_errors_are_json() {
    let app = TestApp::new().await;
    let (_, token) = app.customer("r@example.com").await;
    app.get("/api/no/such/route", &token)
        .await
        .expect_error(404, "not_found");
    let wrong_method = app
        .call(Method::PATCH, "/api/auth/me", Some(&token), None)
        .await;
    wrong_method.expect_error(405, "method_not_allowed");
    let bad_id = app.get("/api/paas/applications/abc", &token).await;
    let message = bad_id.expect_error(400, "bad_request")["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("path parameter"), "{message}");
    let bad_query = app.get("/api/paas/applications?limit=many", &token).await;
    assert_eq!(bad_query.expect_error(400, "bad_request")["field"], "limit");
    let missing_auth = app
        .call(Method::GET, "/api/paas/applications", None, None)
        .await;
    missing_auth.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn health_docs_and_spec_are_served() {
    let app = TestApp::new().await;
    let health = app.call(Method::GET, "/api/health", None, None).await;
    let h = health.expect(200);
    assert_eq!(h["database"], "ok");
    assert_eq!(h["status"], "ok");
    let docs = app.call(Method::GET, "/api/docs", None, None).await;
    assert_eq!(docs.status.as_u16(), 200);
    assert!(
        docs.body.as_str().unwrap().contains("swagger"),
        "the docs UI is served"
    );
    let spec = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(spec.expect(200)["info"]["title"], "SkyPanel PaaS API");
    let yaml = app.call(Method::GET, "/api/openapi.yaml", None, None).await;
    assert!(yaml.body.as_str().unwrap().starts_with("openapi: 3"));
}

#[tokio::test]
async fn database_down_is_503_json() {
    let app = TestApp::new().await;
    let (_, token) = app.customer("d@example.com").await;
    // Cut the database away under the running application: refuse new
    // connections and end the pooled ones.
    let server = std::env::var("SKYPANEL_TEST_DATABASE_URL").unwrap();
    let mut conn = AsyncPgConnection::establish(&server).await.unwrap();
    let name = db_name(&app.db.url);
    for sql in [
        format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"),
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
    let answer = app.get("/api/auth/me", &token).await;
    assert!(
        matches!(answer.status.as_u16(), 500 | 503),
        "{:#}",
        answer.body
    );
    assert!(answer.body["code"].is_string());
    assert!(
        !answer.body.to_string().contains("postgres"),
        "no connection details leak: {:#}",
        answer.body
    );
    // The health check runs every second in the background: within a few
    // seconds it says the database is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let health = app.call(Method::GET, "/api/health", None, None).await;
        if health.status.as_u16() == 503 {
            assert_eq!(health.body["database"], "unavailable", "{:#}", health.body);
            assert_eq!(health.body["status"], "degraded");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "health still says {:#}",
            health.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn db_name(url: &str) -> String {
    url.rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn input_that_means_something_else_is_refused_naming_the_field() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let base = format!("/api/paas/applications/{}", w.app);

    // A misspelt or invented field is not silently ignored.
    let typo = app
        .post(
            &format!("{base}/scale"),
            &w.customer,
            json!({"instances": 3}),
        )
        .await;
    let body = typo.expect_error(422, "invalid");
    assert_eq!(body["field"], "instances");
    assert!(
        body["message"].as_str().unwrap().contains("unknown field"),
        "{body}"
    );
    let nested = app
        .post(
            "/api/paas/applications",
            &w.customer,
            json!({"name": "typo-app", "plan_id": 1, "region": "local", "imagee": "nginx"}),
        )
        .await;
    assert_eq!(nested.expect_error(422, "invalid")["field"], "imagee");

    // A NUL character cannot be stored: refused where it is, body or address.
    let nul = app
        .post(
            &format!("{base}/env"),
            &w.customer,
            json!({"key": "GREETING", "value": "hi\u{0}there"}),
        )
        .await;
    assert_eq!(nul.expect_error(422, "invalid")["field"], "value");
    let nul_setting = app
        .put(&base, &w.customer, json!({"git_branch": "main\u{0}"}))
        .await;
    assert_eq!(
        nul_setting.expect_error(422, "invalid")["field"],
        "git_branch"
    );
    app.get(&format!("{base}/builds?limit=1%00"), &w.customer)
        .await
        .expect_error(422, "invalid");
    app.get(&format!("{base}%00/builds"), &w.customer)
        .await
        .expect_error(422, "invalid");

    // A domain that is an IP address would capture a node's own address.
    let ip = app
        .post(
            &format!("{base}/domains"),
            &w.customer,
            json!({"hostname": "10.0.0.1"}),
        )
        .await;
    let body = ip.expect_error(422, "invalid");
    assert_eq!(body["field"], "hostname");
    assert!(
        body["message"].as_str().unwrap().contains("IP address"),
        "{body}"
    );

    // PORT is the platform's: the application's port setting decides it.
    let port = app
        .post(
            &format!("{base}/env"),
            &w.customer,
            json!({"key": "PORT", "value": "1"}),
        )
        .await;
    assert_eq!(port.expect_error(422, "invalid")["field"], "key");
    let bulk = app
        .post(
            &format!("{base}/env"),
            &w.customer,
            json!({"vars": {"A": "1", "PORT": "2"}}),
        )
        .await;
    bulk.expect_error(422, "invalid");

    // Nothing of any refused request was kept.
    assert_eq!(
        app.get(&format!("{base}/env"), &w.customer)
            .await
            .expect(200),
        &json!([])
    );
    let domains = app.get(&format!("{base}/domains"), &w.customer).await;
    let domains = domains.expect(200).as_array().unwrap();
    assert!(
        domains.iter().all(|d| d["is_system"] == true),
        "only the system domain: {domains:?}"
    );
    let apps = app.get("/api/paas/applications", &w.customer).await;
    assert_eq!(apps.expect(200).as_array().unwrap().len(), 1);
}
