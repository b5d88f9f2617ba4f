//! The release model on the real HTTP application, PostgreSQL and actors,
//! with a fake agent that finishes tasks when the test says: what each task
//! carries (the release's own environment), changes that wait for a rollout
//! in flight, the newest waiting deploy winning, and a failed rollback giving
//! the serving release's variables back.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use common::{Agent, TestApp, container};
use serde_json::{Value, json};

struct Setup {
    app: TestApp,
    customer: String,
    customer_id: i64,
    application: i64,
    agent: Agent,
}

async fn setup() -> Setup {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let plan = app.plan(&admin, "basic").await;
    let agent = app.agent(&admin, "worker-1", "local").await;
    app.beat(&agent, json!([])).await.expect(200);
    let (customer_id, customer) = app.customer("alice@example.com").await;
    let application = app.app(&customer, "shop", plan).await;
    Setup {
        app,
        customer,
        customer_id,
        application,
        agent,
    }
}

impl Setup {
    fn path(&self) -> String {
        format!("/api/paas/applications/{}", self.application)
    }

    /// The next task the node leases.
    async fn next_task(&self) -> Value {
        self.app.next_task(&self.agent).await
    }

    /// Reports a task done (`ok`, with one instance of its release) or failed.
    async fn finish(&self, task: &Value, ok: bool) {
        let release = task["spec"]["release"].as_i64().unwrap() as i32;
        let generation = task["spec"]["generation"].as_i64().unwrap();
        let instances = if ok {
            json!([container(
                self.application,
                self.customer_id,
                release,
                0,
                generation,
                "running"
            )])
        } else {
            json!([])
        };
        self.app.finish(&self.agent, task, ok, instances).await;
    }

    async fn status_is(&self, status: &str) {
        self.app
            .eventually(5, status, || async {
                self.app.get(&self.path(), &self.customer).await.body["status"] == status
            })
            .await;
    }

    async fn releases(&self) -> Vec<Value> {
        self.app
            .get(&format!("{}/releases", self.path()), &self.customer)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .clone()
    }

    async fn revealed(&self, key: &str) -> Option<String> {
        let vars = self
            .app
            .get(&format!("{}/env?reveal=true", self.path()), &self.customer)
            .await;
        vars.body
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["key"] == key)
            .map(|v| v["value"].as_str().unwrap().to_string())
    }

    async fn set(&self, vars: Value) -> Value {
        self.app
            .post(
                &format!("{}/env", self.path()),
                &self.customer,
                json!({"vars": vars}),
            )
            .await
            .expect(200)
            .clone()
    }
}

#[tokio::test]
async fn a_change_during_the_first_rollout_waits_for_it_then_makes_its_own_release() {
    let s = setup().await;
    s.app
        .post(&format!("{}/deploy", s.path()), &s.customer, json!({}))
        .await
        .expect(202);
    let first = s.next_task().await;
    assert_eq!(first["spec"]["release"], 1);
    assert!(first["spec"]["env"].get("GREETING").is_none());

    // The first release is out on the node: the change waits for it.
    let answer = s.set(json!({"GREETING": "hi"})).await;
    assert!(answer["release"].is_null(), "{answer:#}");
    assert_eq!(answer["waiting"]["position"], 1, "{answer:#}");
    assert_eq!(answer["waiting"]["behind"], "the rollout of v1");
    s.finish(&first, true).await;

    // Then release 2 carries it, and only it: the node is told its whole environment.
    let second = s.next_task().await;
    assert_eq!(second["spec"]["kind"], "app.apply");
    assert_eq!(second["spec"]["release"], 2);
    assert_eq!(second["spec"]["env"]["GREETING"], "hi");
    assert_eq!(second["spec"]["env"]["PORT"], "8080");
    s.finish(&second, true).await;
    s.status_is("running").await;
    let list = s.releases().await;
    assert_eq!(list[0]["kind"], "config");
    assert_eq!(list[0]["description"], "Set GREETING");
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["kind"], "image");

    // A scale is no release: its task carries release 2 as it was frozen.
    s.app
        .post(
            &format!("{}/scale", s.path()),
            &s.customer,
            json!({"instance_count": 2}),
        )
        .await
        .expect(202);
    let scale = s.next_task().await;
    assert_eq!(scale["spec"]["release"], 2);
    assert_eq!(scale["spec"]["env"]["GREETING"], "hi");
    assert_eq!(scale["spec"]["instances"], 2);
}

#[tokio::test]
async fn deploys_during_a_rollout_wait_and_the_newest_wins() {
    let s = setup().await;
    let path = format!("{}/deploy", s.path());
    let deploy = || s.app.post(&path, &s.customer, json!({}));
    deploy().await.expect(202);
    let first = s.next_task().await;
    for _ in 0..3 {
        let waiting = deploy().await;
        assert_eq!(waiting.expect(202)["waiting"]["position"], 1);
        assert!(waiting.body["release"].is_null());
    }
    // Nothing runs before the rollout in flight ends.
    let none = s.app.lease(&s.agent, 1).await;
    assert!(
        none.body["tasks"].as_array().is_none_or(Vec::is_empty),
        "{:#}",
        none.body
    );
    s.finish(&first, true).await;
    let second = s.next_task().await;
    assert_eq!(second["spec"]["release"], 2);
    s.finish(&second, true).await;
    s.status_is("running").await;
    // One waiting deploy ran, not three.
    assert_eq!(s.releases().await.len(), 2);
    let none = s.app.lease(&s.agent, 1).await;
    assert!(none.body["tasks"].as_array().is_none_or(Vec::is_empty));
}

#[tokio::test]
async fn a_failed_rollback_gives_back_the_variables_of_the_release_that_serves() {
    let s = setup().await;
    let answer = s.set(json!({"LEVEL": "one"})).await;
    assert!(
        answer["release"].is_null(),
        "before the first deploy: no release"
    );
    s.app
        .post(&format!("{}/deploy", s.path()), &s.customer, json!({}))
        .await
        .expect(202);
    s.finish(&s.next_task().await, true).await;
    s.status_is("running").await;
    let answer = s.set(json!({"LEVEL": "two"})).await;
    assert_eq!(answer["release"], 2);
    let second = s.next_task().await;
    assert_eq!(second["spec"]["env"]["LEVEL"], "two");
    s.finish(&second, true).await;
    s.status_is("running").await;

    // Rolling back to release 1 makes its variables the application's…
    let rollback = s
        .app
        .post(
            &format!("{}/rollback", s.path()),
            &s.customer,
            json!({"release": 1}),
        )
        .await;
    assert_eq!(rollback.expect(202)["release"], 3);
    assert_eq!(s.revealed("LEVEL").await.as_deref(), Some("one"));
    let third = s.next_task().await;
    assert_eq!(third["spec"]["env"]["LEVEL"], "one");
    // …until its rollout fails: release 2 still serves, with its variables.
    s.finish(&third, false).await;
    s.status_is("running").await;
    s.app
        .eventually(5, "release 2's variables are back", || async {
            s.revealed("LEVEL").await.as_deref() == Some("two")
        })
        .await;
    let app = s.app.get(&s.path(), &s.customer).await;
    assert!(app.body["last_error"].as_str().unwrap().contains("exited"));
    let list = s.releases().await;
    assert_eq!(list[0]["kind"], "rollback");
    assert_eq!(list[0]["current"], false);
    assert_eq!(list[1]["current"], true);

    // Bad input changes nothing and says what is wrong.
    let env = format!("{}/env", s.path());
    for (body, field) in [
        (json!({"vars": {"1BAD": "x"}}), "key"),
        (json!({"vars": {}, "unset": []}), "vars"),
        (json!({"vars": {"A": "1"}, "unset": ["A"]}), "unset"),
        (json!({"key": "A", "value": "1", "vars": {"B": "2"}}), "key"),
        (json!({"value": "1"}), "key"),
    ] {
        let refused = s.app.post(&env, &s.customer, body.clone()).await;
        assert_eq!(
            refused.expect_error(422, "invalid")["field"],
            field,
            "{body}"
        );
    }
    assert_eq!(s.releases().await.len(), 3, "no release from bad input");
}

#[tokio::test]
async fn another_plan_or_port_is_a_release_and_one_that_does_not_fit_changes_nothing() {
    let s = setup().await;
    let admin = s.app.admin().await;
    let plan = |name: &str, cpu: i32, memory: i32| {
        let body = json!({"name": name, "cpu_limit": cpu, "memory_limit": memory,
                          "storage_limit": 1024, "monthly_price": "9.00", "hourly_rate": "0.0200"});
        s.app.post("/api/admin/paas/plans", &admin, body)
    };
    let larger = plan("larger", 1000, 1024).await.expect(201)["id"]
        .as_i64()
        .unwrap();
    let huge = plan("huge", 1000, 1_000_000).await.expect(201)["id"]
        .as_i64()
        .unwrap();
    s.app
        .post(&format!("{}/deploy", s.path()), &s.customer, json!({}))
        .await
        .expect(202);
    let first = s.next_task().await;
    assert_eq!(first["spec"]["memory_mb"], 512);
    s.finish(&first, true).await;
    s.status_is("running").await;

    let changed = s
        .app
        .put(
            &s.path(),
            &s.customer,
            json!({"plan_id": larger, "port": 3000}),
        )
        .await;
    assert_eq!(changed.expect(200)["plan_id"], larger);
    let second = s.next_task().await;
    assert_eq!(second["spec"]["release"], 2);
    assert_eq!(second["spec"]["memory_mb"], 1024);
    assert_eq!(second["spec"]["cpu_millicores"], 1000);
    assert_eq!(second["spec"]["port"], 3000);
    assert_eq!(second["spec"]["env"]["PORT"], "3000");
    assert_eq!(
        s.releases().await[0]["description"],
        "Change plan to larger and port to 3000"
    );
    s.finish(&second, true).await;
    s.status_is("running").await;

    // No node has room for it: 409, and the plan and port stay as they were.
    let refused = s
        .app
        .put(
            &s.path(),
            &s.customer,
            json!({"plan_id": huge, "port": 4000}),
        )
        .await;
    refused.expect_error(409, "no_node_available");
    let now = s.app.get(&s.path(), &s.customer).await;
    assert_eq!(now.body["plan_id"], larger);
    assert_eq!(now.body["port"], 3000);
    assert_eq!(s.releases().await.len(), 2);
    // Settings that are no release (a health check path) make none.
    s.app
        .put(&s.path(), &s.customer, json!({"health_check_path": "/up"}))
        .await
        .expect(200);
    assert_eq!(s.releases().await.len(), 2);
}
