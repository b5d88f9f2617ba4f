//! Shared test harness: a fresh database per test (cloned from the migrated
//! template), the whole HTTP application behind poem's `TestClient`, and
//! helpers to make users, plans and nodes through the real API.

#![allow(dead_code)] // each test binary uses a different subset of the helpers

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use poem::EndpointExt;
use poem::endpoint::BoxEndpoint;
use poem::http::{Method, StatusCode};
use poem::test::TestClient;
use serde_json::{Value, json};
use skypanel_domain::credentials::hash_password;
use skypanel_domain::secrets::SecretKey;
use skypanel_http::{AppState, Settings};
use skypanel_store::Store;
use skypanel_store::testing::TestDb;

pub const SECRET_KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
pub const JWT_SECRET: &str = "test-jwt-secret-test-jwt-secret-0123";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub db: TestDb,
    pub state: AppState,
    pub orchestrator: skypanel_actors::Orchestrator,
    pub client: TestClient<BoxEndpoint<'static, poem::Response>>,
}

/// A response: status and JSON body (`Null` when there is none).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub content_type: Option<String>,
}

impl Answer {
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {:#}",
            self.body
        );
        &self.body
    }

    /// Asserts an error answer of our shape with this status and code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Value {
        self.expect(status);
        assert_eq!(
            self.body["code"], code,
            "unexpected error body: {:#}",
            self.body
        );
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no message: {:#}",
            self.body
        );
        assert!(
            self.body.get("field").is_some(),
            "no field key: {:#}",
            self.body
        );
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/json")),
            "error is not JSON: {:?}",
            self.content_type
        );
        &self.body
    }

    pub fn field(&self) -> Option<&str> {
        self.body["field"].as_str()
    }
}

/// Actor settings for tests: short timers, so that nothing waits long.
pub fn actor_settings() -> skypanel_actors::Settings {
    skypanel_actors::Settings {
        node_offline_after: Duration::from_secs(90),
        heartbeat_interval: Duration::from_secs(1),
        lease_ttl: Duration::from_secs(30),
        ..skypanel_actors::Settings::default()
    }
}

pub fn settings() -> Settings {
    Settings {
        jwt_secret: JWT_SECRET.into(),
        jwt_ttl: Duration::from_secs(3600),
        platform_domain: "apps.test".into(),
        allow_file_git: false,
        allow_plain_http_git: false,
        public_url: "http://127.0.0.1:8080".into(),
        registration_ttl: Duration::from_secs(3600),
        https: false,
        renew_before: Duration::from_secs(30 * 24 * 3600),
        volume_retention: Duration::from_secs(7 * 24 * 3600),
        webhook_allow_private: false,
        rate_limits: skypanel_http::rate_limit::RateLimits::default(),
        trusted_proxies: Vec::new(),
        quotas: skypanel_http::quotas::Quotas::default(),
        registry: None,
        registry_retention: None,
        github: Default::default(),
        git: skypanel_http::git::GitSettings {
            root: std::env::temp_dir().join("skypanel-test-git"),
            ..Default::default()
        },
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_settings(settings()).await
    }

    pub async fn with_settings(settings: Settings) -> Self {
        Self::with_all_settings(settings, actor_settings()).await
    }

    /// A test application with its own actors (named under a unique prefix,
    /// so tests sharing a process do not collide in ractor's registry).
    pub async fn with_all_settings(settings: Settings, actors: skypanel_actors::Settings) -> Self {
        let db = TestDb::new().await;
        let store = Store::connect(&db.url, 8).expect("pool");
        let redis = std::env::var("SKYPANEL_TEST_REDIS_URL")
            .ok()
            .and_then(|url| redis::Client::open(url).ok());
        let key = SecretKey::from_hex(SECRET_KEY_HEX).unwrap();
        let prefix = format!("t{}/", uuid::Uuid::new_v4().simple());
        let context =
            skypanel_actors::Context::with_prefix(store.clone(), key.clone(), actors, prefix);
        let orchestrator = skypanel_actors::Orchestrator::start(context)
            .await
            .expect("actors start");
        let state = AppState::new(store, settings, key, redis, Some(orchestrator.clone()));
        let endpoint = skypanel_http::app(state.clone()).map_to_response().boxed();
        Self {
            db,
            state,
            client: TestClient::new(endpoint),
            orchestrator,
        }
    }

    /// Calls the API with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, path);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.body_json(&body);
        }
        Self::answer(request.send().await).await
    }

    /// GET `path` as `token`: the status and the body up to the end of its
    /// first Server-Sent Event (a stream is read no further), or the whole
    /// body when it is not a stream.
    #[allow(dead_code)] // not every test binary reads a stream
    pub async fn first_event(&self, path: &str, token: &str) -> (StatusCode, String) {
        use futures::StreamExt;
        let response = self
            .client
            .get(path)
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await;
        let status = response.0.status();
        let mut body = response.0.into_body().into_bytes_stream();
        let mut text = String::new();
        let read = async {
            while let Some(Ok(chunk)) = body.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
                if text.contains("\n\n") {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
        (status, text)
    }

    /// Sends a raw body with a content type of our choosing.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self.client.request(method, path);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.content_type(content_type);
        }
        Self::answer(request.body(body).send().await).await
    }

    /// POSTs a raw body with these headers (and no bearer token).
    pub async fn post_with_headers(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self.client.post(path);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        Self::answer(request.body(body).send().await).await
    }

    async fn answer(response: poem::test::TestResponse) -> Answer {
        let status = response.0.status();
        let content_type = response
            .0
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.0.into_body().into_string().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            body,
            content_type,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// A direct SQL connection to this test's database.
    pub async fn sql(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.db.url).await.unwrap()
    }

    pub async fn exec_sql(&self, sql: &str) {
        let mut conn = self.sql().await;
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }

    /// Registers a customer through the API and logs in; answers (user id, token).
    pub async fn customer(&self, email: &str) -> (i64, String) {
        let created = self
            .call(
                Method::POST,
                "/api/auth/register",
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        let id = created.expect(201)["id"].as_i64().unwrap();
        (id, self.login(email).await)
    }

    pub async fn login(&self, email: &str) -> String {
        let answer = self
            .call(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        answer.expect(200)["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Creates an admin directly in the store (as `skypanel admin create` does) and logs in.
    pub async fn admin(&self) -> String {
        let mut conn = self.state.store().conn().await.unwrap();
        let hash = hash_password(PASSWORD);
        skypanel_store::accounts::upsert_admin(&mut conn, "admin@skypanel.test", &hash)
            .await
            .unwrap();
        self.login("admin@skypanel.test").await
    }

    /// A plan through the admin API; answers its id.
    pub async fn plan(&self, admin: &str, name: &str) -> i64 {
        let body = json!({
            "name": name, "cpu_limit": 500, "memory_limit": 512, "storage_limit": 1024,
            "monthly_price": "7.00", "hourly_rate": "0.0100"
        });
        self.post("/api/admin/paas/plans", admin, body)
            .await
            .expect(201)["id"]
            .as_i64()
            .unwrap()
    }

    /// A node in `region` through the admin API; answers its id.
    pub async fn node(&self, admin: &str, name: &str, region: &str) -> i64 {
        let body = json!({"name": name, "region": region, "host_address": "10.0.0.1"});
        self.post("/api/admin/paas/nodes/register", admin, body)
            .await
            .expect(201)["node_id"]
            .as_i64()
            .unwrap()
    }

    /// An application of the customer on `plan` in region `local`; answers its id.
    pub async fn app(&self, token: &str, name: &str, plan: i64) -> i64 {
        let body = json!({"name": name, "plan_id": plan, "region": "local", "image": "skypanel-test/busybox:1"});
        self.post("/api/paas/applications", token, body)
            .await
            .expect(201)["id"]
            .as_i64()
            .unwrap()
    }

    /// Admin, plan, node in `local` and one customer with one app: the usual start.
    pub async fn world(&self) -> World {
        let admin = self.admin().await;
        let plan = self.plan(&admin, "basic").await;
        let node = self.node(&admin, "worker-1", "local").await;
        let (customer_id, customer) = self.customer("alice@example.com").await;
        let app = self.app(&customer, "shop", plan).await;
        World {
            admin,
            plan,
            node,
            customer_id,
            customer,
            app,
        }
    }
}

/// An agent registered through the real protocol.
#[derive(Debug, Clone)]
pub struct Agent {
    pub node_id: i64,
    pub credential: String,
}

impl TestApp {
    /// Calls an agent endpoint with a node credential.
    pub async fn node_call(
        &self,
        method: Method,
        path: &str,
        credential: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, path)
            .header(skypanel_protocol::CREDENTIAL_HEADER, credential);
        if let Some(body) = body {
            request = request.body_json(&body);
        }
        Self::answer(request.send().await).await
    }

    /// Registers a node as an admin, then its agent with the one-time token.
    pub async fn agent(&self, admin: &str, name: &str, region: &str) -> Agent {
        let registered = self
            .post(
                "/api/admin/paas/nodes/register",
                admin,
                json!({"name": name, "region": region, "host_address": "127.0.0.1"}),
            )
            .await;
        let token = registered.expect(201)["registration_token"]
            .as_str()
            .unwrap()
            .to_string();
        self.register_agent(&token).await
    }

    pub async fn register_agent(&self, token: &str) -> Agent {
        let body = json!({
            "registration_token": token, "agent_version": "test", "hostname": "test-host",
            "cpu_total": 4000, "memory_total_mb": 8192, "disk_total_mb": 100000
        });
        let answer = self
            .call(
                Method::POST,
                "/api/internal/paas/nodes/register",
                None,
                Some(body),
            )
            .await;
        let b = answer.expect(201);
        Agent {
            node_id: b["node_id"].as_i64().unwrap(),
            credential: b["credential"].as_str().unwrap().to_string(),
        }
    }

    /// A heartbeat with light load and the given containers.
    pub async fn beat(&self, agent: &Agent, containers: Value) -> Answer {
        let count = containers.as_array().map_or(0, Vec::len);
        let body = json!({
            "node_id": agent.node_id, "timestamp": chrono::Utc::now(), "agent_version": "test",
            "cpu_usage_percent": 10.0, "cpu_total": 4000,
            "memory_used_mb": 1024, "memory_total_mb": 8192,
            "disk_used_mb": 10000, "disk_total_mb": 100000,
            "container_count": count, "containers": containers
        });
        let path = format!("/api/internal/paas/nodes/{}/heartbeat", agent.node_id);
        self.node_call(Method::POST, &path, &agent.credential, Some(body))
            .await
    }

    /// Leases for the agent, waiting up to `wait` seconds.
    pub async fn lease(&self, agent: &Agent, wait: u64) -> Answer {
        let path = format!(
            "/api/internal/paas/nodes/{}/leases?wait={wait}",
            agent.node_id
        );
        self.node_call(Method::POST, &path, &agent.credential, None)
            .await
    }

    /// Reports a task's status under a lease.
    pub async fn report(
        &self,
        agent: &Agent,
        task_id: i64,
        lease_id: &str,
        status: &str,
        error: Option<&str>,
        instances: Value,
    ) -> Answer {
        let body =
            json!({"lease_id": lease_id, "status": status, "error": error, "instances": instances});
        let path = format!("/api/internal/paas/tasks/{task_id}/status");
        self.node_call(Method::POST, &path, &agent.credential, Some(body))
            .await
    }

    /// The next task the node leases (waiting up to 5 s).
    pub async fn next_task(&self, agent: &Agent) -> Value {
        self.until_some(5, "a task for the node", || async {
            let leased = self.lease(agent, 1).await;
            leased.body["tasks"]
                .as_array()
                .and_then(|t| t.iter().next().cloned())
        })
        .await
    }

    /// Reports a leased task running, then done (`ok`) or failed, with the
    /// containers the node would list afterwards.
    pub async fn finish(&self, agent: &Agent, task: &Value, ok: bool, instances: Value) {
        let id = task["task_id"].as_i64().unwrap();
        let lease = task["lease_id"].as_str().unwrap();
        self.report(agent, id, lease, "running", None, json!([]))
            .await
            .expect(200);
        let (status, error) = if ok {
            ("succeeded", None)
        } else {
            (
                "failed",
                Some("instance 0 exited with code 1 while starting"),
            )
        };
        self.report(agent, id, lease, status, error, instances)
            .await
            .expect(200);
    }

    /// Polls `check` every 50 ms until it answers `Some`, for up to `seconds`.
    pub async fn until_some<T, F, Fut>(&self, seconds: u64, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
        while std::time::Instant::now() < deadline {
            if let Some(found) = check().await {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out after {seconds} s waiting for: {what}");
    }

    /// Polls `check` every 50 ms for up to `seconds`; panics with `what` when it never holds.
    pub async fn eventually<F, Fut>(&self, seconds: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
        while std::time::Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out after {seconds} s waiting for: {what}");
    }
}

/// A container report as an agent sends it.
pub fn container(
    app_id: i64,
    user_id: i64,
    release: i32,
    instance: i32,
    generation: i64,
    state: &str,
) -> Value {
    json!({
        "container_id": format!("c{app_id}{release}{instance}"),
        "name": skypanel_protocol::names::app_container(app_id, release, instance),
        "application_id": app_id, "user_id": user_id, "release": release, "instance": instance,
        "generation": generation, "state": state, "host_port": 40000 + instance,
        "cpu_usage_percent": 1.0, "memory_used_mb": 10, "restart_count": 0, "crash_looping": false
    })
}

pub struct World {
    pub admin: String,
    pub plan: i64,
    pub node: i64,
    pub customer_id: i64,
    pub customer: String,
    pub app: i64,
}
