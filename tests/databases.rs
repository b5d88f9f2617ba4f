//! Managed databases on real Docker, through the real control plane and
//! agent: a PostgreSQL database is placed, provisioned from the engine's
//! image with a generated password, reachable with its connection details
//! from the owner's network only, never published on the host, and removed
//! with its data on a purging delete.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use reqwest::Method;
use serde_json::{Value, json};
use stack::browser::{Browser, text_of};
use stack::databases::{client, network_of};
use stack::engines::{
    PG_APP_IMAGE, POSTGRES_IMAGE, database_plan, ensure_engine_images, local_engine,
    running_database,
};
use stack::{PASSWORD, Stack, Timing, docker_text as docker, through_ingress};

#[tokio::test]
async fn docker_a_postgresql_database_is_provisioned_reachable_from_its_owners_network_only_and_purged()
 {
    ensure_engine_images();
    let stack = Stack::start(Timing::default()).await;
    local_engine(&stack, "postgresql", "16", POSTGRES_IMAGE).await;
    let plan = database_plan(&stack).await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;

    // Bad input names its field and keeps nothing.
    for (body, field) in [
        (
            json!({"name": "x", "db_type": "postgresql", "version": "16", "plan_id": plan, "region": "local"}),
            "name",
        ),
        (
            json!({"name": "shop-db", "db_type": "oracle", "version": "16", "plan_id": plan, "region": "local"}),
            "db_type",
        ),
        (
            json!({"name": "shop-db", "db_type": "postgresql", "version": "9", "plan_id": plan, "region": "local"}),
            "version",
        ),
        (
            json!({"name": "shop-db", "db_type": "postgresql", "version": "16", "plan_id": 99999, "region": "local"}),
            "plan_id",
        ),
    ] {
        let (status, refused) = stack.post("/api/paas/databases", &alice, body).await;
        assert_eq!(
            (status, refused["field"].as_str()),
            (422, Some(field)),
            "{refused:#}"
        );
    }
    // No node in the region: 409, nothing kept.
    let (status, refused) = stack
        .post(
            "/api/paas/databases",
            &alice,
            json!({"name": "far-db", "db_type": "postgresql", "version": "16", "plan_id": plan, "region": "mars"}),
        )
        .await;
    assert_eq!(status, 409, "{refused:#}");
    assert_eq!(stack.get("/api/paas/databases", &alice).await, json!([]));

    let (status, created) = stack
        .post(
            "/api/paas/databases",
            &alice,
            json!({"name": "shop-db", "db_type": "postgresql", "version": "16", "plan_id": plan, "region": "local"}),
        )
        .await;
    assert_eq!(status, 201, "{created:#}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["status"], "pending");
    let path = format!("/api/paas/databases/{id}");
    stack
        .until(120, "the database runs", || async {
            let db = stack.get(&path, &alice).await;
            assert_ne!(db["status"], "failed", "{db:#}");
            db["status"] == "running"
        })
        .await;
    let db = stack.get(&path, &alice).await;
    let connection = &db["connection"];
    let url = connection["url"].as_str().unwrap();
    assert_eq!(connection["host"], format!("sp-db-{id}"));
    assert_eq!(connection["port"], 5432);
    assert_eq!(connection["database"], "shop_db");
    assert!(
        url.starts_with("postgresql://") && url.ends_with(&format!("@sp-db-{id}:5432/shop_db"))
    );
    // The list never shows the password; another customer sees nothing.
    let listed = stack.get("/api/paas/databases", &alice).await;
    assert_eq!(listed[0]["status"], "running");
    assert!(listed[0]["connection"].is_null());
    assert!(
        !listed
            .to_string()
            .contains(connection["password"].as_str().unwrap())
    );
    let bob = stack.customer("bob@example.com").await;
    let (status, _) = stack.call(Method::GET, &path, &bob, None).await;
    assert_eq!(status, 404);
    let (status, _) = stack.call(Method::DELETE, &path, &bob, None).await;
    assert_eq!(status, 404);

    // The container: the plan's limits, hardened, no published port, on the
    // owner's network only.
    let container = format!("{}sp-db-{id}", stack.namespace);
    let info = stack.inspect(&container);
    let host = &info["HostConfig"];
    assert_eq!(host["Memory"], 512 * 1024 * 1024);
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges"]));
    assert_eq!(host["Privileged"], false);
    assert!(
        info["NetworkSettings"]["Ports"]
            .as_object()
            .is_none_or(|p| p.values().all(Value::is_null))
    );
    let networks = info["NetworkSettings"]["Networks"].as_object().unwrap();
    assert_eq!(networks.len(), 1);
    let (owner_network, endpoint) = networks.iter().next().unwrap();
    assert!(owner_network.starts_with(&format!("{}sp-user-", stack.namespace)));
    let address = endpoint["IPAddress"].as_str().unwrap().to_string();

    // From the owner's network, the URL works.
    let psql = |network: &str, url: &str| {
        docker(&[
            "run",
            "--rm",
            "--network",
            network,
            "--entrypoint",
            "psql",
            POSTGRES_IMAGE,
            url,
            "-tAc",
            "SELECT 40 + 2",
        ])
    };
    let (ok, out) = psql(owner_network, url);
    assert!(ok && out == "42", "{out}");
    // From another network (another customer's), not even by address.
    let other = format!("{}sp-test-other-{id}", stack.namespace);
    assert!(docker(&["network", "create", &other]).0);
    let by_address = format!(
        "{}?connect_timeout=3",
        url.replace(&format!("sp-db-{id}"), &address)
    );
    let (ok, out) = psql(&other, &by_address);
    docker(&["network", "rm", &other]);
    assert!(
        !ok && out.contains("connection to server"),
        "another network reached the database: {out}"
    );

    // Linked into an application, which writes and reads rows through DATABASE_URL.
    let body = json!({"name": "shop", "plan_id": plan, "region": "local", "image": PG_APP_IMAGE});
    let (status, app) = stack.post("/api/paas/applications", &alice, body).await;
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
    stack.app_in(&alice, app, "running").await;
    let links = format!("/api/paas/applications/{app}/databases");
    let (status, bad) = stack
        .post(
            &format!("{links}/{id}"),
            &alice,
            json!({"env_var_prefix": "bad-prefix"}),
        )
        .await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (422, Some("env_var_prefix"))
    );
    let (status, link) = stack
        .post(&format!("{links}/{id}"), &alice, json!({}))
        .await;
    assert_eq!(status, 201, "{link:#}");
    assert_eq!(link["env_var_prefix"], "DATABASE");
    assert_eq!(link["variables"][0], "DATABASE_URL");
    let (status, _) = stack
        .post(&format!("{links}/{id}"), &alice, json!({}))
        .await;
    assert_eq!(status, 409, "the same link twice");
    // Bob can link neither Alice's database into his app nor into hers.
    let (status, _) = stack.post(&format!("{links}/{id}"), &bob, json!({})).await;
    assert_eq!(status, 404);
    let host = "shop.apps.test";
    let visit = || through_ingress(agent.ingress_port, host, "/cgi-bin/visit");
    stack
        .until(
            60,
            "the restarted application counts its visits",
            || async {
                visit()
                    .await
                    .is_some_and(|(code, body)| code == 200 && body.trim() == "1")
            },
        )
        .await;
    // The instance before the link may still answer while the rollout
    // drains it (it has no DATABASE_URL and counts nothing).
    stack
        .until(30, "a second visit is counted", || async {
            visit()
                .await
                .is_some_and(|(code, body)| code == 200 && body.trim() == "2")
        })
        .await;
    let env = stack
        .get(&format!("/api/paas/applications/{app}/env"), &alice)
        .await;
    assert!(
        !env.to_string().contains("DATABASE_PASSWORD"),
        "link variables are not the customer's own: {env}"
    );
    // A linked database cannot be deleted; unlinked, the application loses
    // the variables (a new release once the current rollout is done).
    stack.app_in(&alice, app, "running").await;
    let releases = stack
        .get(&format!("/api/paas/applications/{app}/releases"), &alice)
        .await;
    assert!(
        releases.to_string().contains("Link shop-db (DATABASE_URL)"),
        "{releases:#}"
    );
    let (status, refused) = stack.call(Method::DELETE, &path, &alice, None).await;
    assert_eq!(status, 409, "{refused:#}");
    let (status, _) = stack
        .call(Method::DELETE, &format!("{links}/{id}"), &alice, None)
        .await;
    assert_eq!(status, 204);
    stack
        .until(
            60,
            "the restarted application has no DATABASE_URL",
            || async {
                visit().await.is_some_and(|(code, body)| {
                    code == 200
                        && body.trim() != "3"
                        && !body.trim().chars().all(|c| c.is_ascii_digit())
                })
            },
        )
        .await;
    assert_eq!(stack.get(&links, &alice).await, json!([]));

    // A purging delete removes the container and the data.
    let (status, _) = stack
        .call(Method::DELETE, &format!("{path}?purge=true"), &alice, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = stack.call(Method::GET, &path, &alice, None).await;
    assert_eq!(status, 404);
    let volume = format!("{}sp-db-{id}-data", stack.namespace);
    stack
        .until(60, "the container and its volume are gone", || async {
            !docker(&["container", "inspect", &container]).0
                && !docker(&["volume", "inspect", &volume]).0
        })
        .await;
}

#[tokio::test]
async fn docker_a_redis_database_wants_its_password_and_an_engine_that_exits_fails_with_the_reason()
{
    ensure_engine_images();
    let stack = Stack::start(Timing::default()).await;
    let plan = database_plan(&stack).await;
    // Redis 7 from the local stand-in image; an engine whose image exits at once.
    local_engine(&stack, "redis", "7", stack::engines::REDIS_IMAGE).await;
    let (status, _) = stack
        .post(
            "/api/admin/paas/database-engines",
            &stack.admin,
            json!({"db_type": "mongodb", "version": "broken", "image": stack::CRASHER_IMAGE}),
        )
        .await;
    assert_eq!(status, 201);
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;

    let create = |name: &str, db_type: &str, version: &str| json!({"name": name, "db_type": db_type, "version": version, "plan_id": plan, "region": "local"});
    let (status, cache) = stack
        .post("/api/paas/databases", &alice, create("cache", "redis", "7"))
        .await;
    assert_eq!(status, 201, "{cache:#}");
    let (status, broken) = stack
        .post(
            "/api/paas/databases",
            &alice,
            create("broken", "mongodb", "broken"),
        )
        .await;
    assert_eq!(status, 201, "{broken:#}");
    let (cache, broken) = (
        cache["id"].as_i64().unwrap(),
        broken["id"].as_i64().unwrap(),
    );
    for (id, status) in [(cache, "running"), (broken, "failed")] {
        stack
            .until(120, &format!("database {id} is {status}"), || async {
                stack
                    .get(&format!("/api/paas/databases/{id}"), &alice)
                    .await["status"]
                    == status
            })
            .await;
    }
    let failed = stack
        .get(&format!("/api/paas/databases/{broken}"), &alice)
        .await;
    let reason = failed["failure_reason"].as_str().unwrap();
    assert!(reason.contains("exited with code 3"), "{reason}");

    // Redis answers its URL from the owner's network, and nothing without the password.
    let db = stack
        .get(&format!("/api/paas/databases/{cache}"), &alice)
        .await;
    let url = db["connection"]["url"].as_str().unwrap();
    assert!(url.starts_with("redis://default:"), "{url}");
    let container = format!("{}sp-db-{cache}", stack.namespace);
    let info = stack.inspect(&container);
    let network = info["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let redis_cli = |args: &[&str]| {
        let mut all = vec![
            "run",
            "--rm",
            "--network",
            &network,
            "--entrypoint",
            "redis-cli",
            stack::engines::REDIS_IMAGE,
        ];
        all.extend_from_slice(args);
        docker(&all)
    };
    let (ok, out) = redis_cli(&["-u", url, "--no-auth-warning", "ping"]);
    assert!(
        ok && out == "PONG",
        "{out}; the engine runs {}",
        info["Args"]
    );
    let host = format!("sp-db-{cache}");
    let (_, out) = redis_cli(&["-h", &host, "ping"]);
    assert!(out.contains("NOAUTH"), "{out}");
    // The password never shows in the list or the processes' logs.
    let password = db["connection"]["password"].as_str().unwrap();
    assert!(
        !stack
            .get("/api/paas/databases", &alice)
            .await
            .to_string()
            .contains(password)
    );
    assert!(!stack.process_logs().contains(password));
    for id in [cache, broken] {
        let (status, _) = stack
            .call(
                Method::DELETE,
                &format!("/api/paas/databases/{id}?purge=true"),
                &alice,
                None,
            )
            .await;
        assert_eq!(status, 204);
    }
}

/// The owner's usage-report line of database `id`: (instances billed now, hourly rate).
async fn billed(stack: &Stack, token: &str, id: i64) -> (i64, String) {
    let usage = stack.get("/api/paas/billing/usage", token).await;
    let line = usage["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource_type"] == "database" && r["resource_id"] == id)
        .cloned()
        .unwrap_or_else(|| json!({"running_instances": 0, "hourly_rate": null}));
    (
        line["running_instances"].as_i64().unwrap(),
        line["hourly_rate"].as_str().unwrap_or_default().to_string(),
    )
}

/// The memory (MB) the scheduler counts as taken on the stack's one node.
async fn memory_allocated(stack: &Stack) -> i64 {
    let capacity = stack.get("/api/admin/paas/capacity", &stack.admin).await;
    capacity["nodes"][0]["memory_allocated"].as_i64().unwrap()
}

#[tokio::test]
async fn docker_a_database_stops_starts_resizes_and_fails_after_crashing_keeping_its_data_and_a_suspension_keeps_it_stopped()
 {
    ensure_engine_images();
    let stack = Stack::start(Timing::default()).await;
    local_engine(&stack, "postgresql", "16", POSTGRES_IMAGE).await;
    let small = database_plan(&stack).await;
    let plan = |name: &str, cpu: i64, memory: i64, rate: &str| {
        json!({"name": name, "cpu_limit": cpu, "memory_limit": memory, "storage_limit": 1000,
               "monthly_price": "20.00", "hourly_rate": rate})
    };
    let (status, bigger) = stack
        .post(
            "/api/admin/paas/plans",
            &stack.admin,
            plan("db-large", 1000, 768, "0.0300"),
        )
        .await;
    assert_eq!(status, 201, "{bigger:#}");
    let (status, huge) = stack
        .post(
            "/api/admin/paas/plans",
            &stack.admin,
            plan("db-huge", 1000, 4_000_000, "9.0000"),
        )
        .await;
    assert_eq!(status, 201, "{huge:#}");
    let (bigger, huge) = (bigger["id"].as_i64().unwrap(), huge["id"].as_i64().unwrap());
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let (db, url) = running_database(&stack, &alice, small, "shop-db", "postgresql", "16").await;
    let path = format!("/api/paas/databases/{db}");
    let container = format!("{}sp-db-{db}", stack.namespace);
    let network = network_of(&stack, db);
    let sql = |query: &str| client(&network, POSTGRES_IMAGE, "psql", &[&url, "-tAc", query]);
    sql("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1), (2)");
    // Linked into an application (not deployed): stopping names it.
    let body = json!({"name": "shop", "plan_id": small, "region": "local", "image": PG_APP_IMAGE});
    let (status, app) = stack.post("/api/paas/applications", &alice, body).await;
    assert_eq!(status, 201, "{app:#}");
    let app = app["id"].as_i64().unwrap();
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/databases/{db}"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(billed(&stack, &alice, db).await, (1, "0.0100".into()));
    let held = memory_allocated(&stack).await;

    // Health: its node measures its size on disk and its connections (a
    // client holding one open is counted), shown to its owner and, for every
    // database, to the admin.
    let holder = format!("{}sp-test-holder-{db}", stack.namespace);
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &holder,
        "--network",
        &network,
        "--entrypoint",
        "psql",
        POSTGRES_IMAGE,
        &url,
        "-c",
        "SELECT pg_sleep(300)",
    ]);
    assert!(ok, "{out}");
    stack
        .until(
            60,
            "its node measured the size and the held connection",
            || async {
                let health = &stack.get(&path, &alice).await["health"];
                health["size_bytes"].as_i64().is_some_and(|s| s > 1_000_000)
                    && health["connections"].as_i64().is_some_and(|c| c >= 1)
            },
        )
        .await;
    docker(&["rm", "-f", &holder]);
    let listed = stack.get("/api/admin/paas/databases", &stack.admin).await;
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == db)
        .cloned()
        .unwrap();
    assert_eq!(
        (entry["status"].as_str(), entry["name"].as_str()),
        (Some("running"), Some("shop-db"))
    );
    assert!(
        entry["health"]["size_bytes"].as_i64().unwrap() > 1_000_000,
        "{entry:#}"
    );
    assert!(entry["health"]["last_backup"].is_null());
    assert!(
        !listed.to_string().contains(url.split('@').next().unwrap()),
        "no password"
    );
    let (status, _) = stack
        .call(Method::GET, "/api/admin/paas/databases", &alice, None)
        .await;
    assert_eq!(status, 403);

    assert!(held >= 512, "{held}");

    // Another customer can do none of it; bad input names its field.
    let bob = stack.customer("bob@example.com").await;
    for (method, verb, body) in [
        (Method::POST, "/stop", None),
        (Method::POST, "/start", None),
        (Method::PUT, "", Some(json!({"plan_id": bigger}))),
    ] {
        let (status, _) = stack
            .call(method, &format!("{path}{verb}"), &bob, body)
            .await;
        assert_eq!(status, 404, "{verb}");
    }
    for (body, field) in [
        (json!({"plan_id": 999_999}), "plan_id"),
        (json!({"plan_id": "big"}), "plan_id"),
    ] {
        let (status, refused) = stack.call(Method::PUT, &path, &alice, Some(body)).await;
        assert_eq!(
            (status, refused["field"].as_str()),
            (422, Some(field)),
            "{refused:#}"
        );
    }

    // Stopped: the container stops, the data stays, billing and capacity end,
    // and the owner is told which application cannot reach it.
    let (status, stopped) = stack.post(&format!("{path}/stop"), &alice, json!({})).await;
    assert_eq!(
        (status, stopped["status"].as_str()),
        (200, Some("stopped")),
        "{stopped:#}"
    );
    stack
        .until(60, "the container stops", || async {
            stack.inspect(&container)["State"]["Running"] == false
        })
        .await;
    assert_eq!(billed(&stack, &alice, db).await.0, 0);
    assert_eq!(memory_allocated(&stack).await, held - 512);
    let notices = stack.get("/api/paas/notifications", &alice).await;
    assert!(
        notices
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "database_stopped"
                && n["message"]
                    .as_str()
                    .unwrap()
                    .contains("shop cannot reach it")),
        "{notices:#}"
    );
    // Stopping again changes nothing.
    let (status, again) = stack.post(&format!("{path}/stop"), &alice, json!({})).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("stopped")));

    // Started: pending, then running on the same data, billed again.
    let (status, started) = stack
        .post(&format!("{path}/start"), &alice, json!({}))
        .await;
    assert_eq!(
        (status, started["status"].as_str()),
        (200, Some("pending")),
        "{started:#}"
    );
    stack
        .until(120, "the database runs again", || async {
            let db = stack.get(&path, &alice).await;
            assert_ne!(db["status"], "failed", "{db:#}");
            db["status"] == "running"
        })
        .await;
    assert_eq!(
        sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders"),
        "1,2"
    );
    assert_eq!(billed(&stack, &alice, db).await, (1, "0.0100".into()));
    assert_eq!(memory_allocated(&stack).await, held);

    // A plan the node has no room for is refused, and nothing changes.
    let (status, refused) = stack
        .call(Method::PUT, &path, &alice, Some(json!({"plan_id": huge})))
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("no_node_available")),
        "{refused:#}"
    );
    assert!(
        refused["message"].as_str().unwrap().contains("database"),
        "{refused:#}"
    );
    let now = stack.get(&path, &alice).await;
    assert_eq!(
        (now["plan_id"].as_i64(), now["status"].as_str()),
        (Some(small), Some("running"))
    );

    // Resized: the container is made again with the new limits on the same
    // volume; the data is there and the new rate is billed.
    sql("INSERT INTO orders VALUES (3)");
    let before = stack.inspect(&container)["Id"].clone();
    let (status, resized) = stack
        .call(Method::PUT, &path, &alice, Some(json!({"plan_id": bigger})))
        .await;
    assert_eq!(
        (status, resized["status"].as_str()),
        (200, Some("pending")),
        "{resized:#}"
    );
    assert_eq!(resized["plan_id"], bigger);
    stack
        .until(120, "the resized database runs", || async {
            let db = stack.get(&path, &alice).await;
            assert_ne!(db["status"], "failed", "{db:#}");
            db["status"] == "running"
        })
        .await;
    let info = stack.inspect(&container);
    assert_ne!(info["Id"], before, "a new container");
    assert_eq!(info["HostConfig"]["Memory"], 768 * 1024 * 1024);
    assert_eq!(info["HostConfig"]["NanoCpus"], 1_000_000_000_i64);
    assert_eq!(
        sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders"),
        "1,2,3"
    );
    assert_eq!(billed(&stack, &alice, db).await, (1, "0.0300".into()));
    assert_eq!(memory_allocated(&stack).await, held - 512 + 768);
    let notices = stack.get("/api/paas/notifications", &alice).await;
    assert!(
        notices
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "database_resized"
                && n["message"].as_str().unwrap().contains("db-large")),
        "{notices:#}"
    );

    // Stopped, then suspended and resumed: it comes back stopped, not running.
    let (status, _) = stack.post(&format!("{path}/stop"), &alice, json!({})).await;
    assert_eq!(status, 200);
    let me = stack.get("/api/auth/me", &alice).await["id"]
        .as_i64()
        .unwrap();
    let (status, body) = stack
        .post(
            &format!("/api/admin/users/{me}/suspend"),
            &stack.admin,
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(stack.get(&path, &alice).await["status"], "suspended");
    let (status, refused) = stack
        .post(&format!("{path}/start"), &alice, json!({}))
        .await;
    assert_eq!(
        status, 409,
        "a suspended database waits for its owner's balance: {refused:#}"
    );
    let (status, body) = stack
        .post(
            &format!("/api/admin/users/{me}/resume"),
            &stack.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(stack.get(&path, &alice).await["status"], "stopped");
    assert_eq!(billed(&stack, &alice, db).await.0, 0);
    assert_eq!(stack.inspect(&container)["State"]["Running"], false);
    // Resized while stopped, it takes the plan at its next start.
    let (status, resized) = stack
        .call(Method::PUT, &path, &alice, Some(json!({"plan_id": small})))
        .await;
    assert_eq!(
        (status, resized["status"].as_str()),
        (200, Some("stopped")),
        "{resized:#}"
    );
    let (status, _) = stack
        .post(&format!("{path}/start"), &alice, json!({}))
        .await;
    assert_eq!(status, 200);
    stack
        .until(120, "the database runs on the small plan", || async {
            stack.get(&path, &alice).await["status"] == "running"
        })
        .await;
    assert_eq!(
        stack.inspect(&container)["HostConfig"]["Memory"],
        512 * 1024 * 1024
    );
    assert_eq!(sql("SELECT count(*) FROM orders"), "3");
    assert_eq!(billed(&stack, &alice, db).await, (1, "0.0100".into()));

    // An engine that keeps exiting is started again three times, then left
    // stopped: the database fails with the reason and a notice, is no longer
    // billed, and starts again on its data when its owner asks.
    let mut started = String::new();
    for _ in 0..4 {
        stack
            .until(60, "the engine runs (again)", || async {
                let state = &stack.inspect(&container)["State"];
                state["Running"] == true && state["StartedAt"].as_str() != Some(started.as_str())
            })
            .await;
        started = stack.inspect(&container)["State"]["StartedAt"]
            .as_str()
            .unwrap()
            .to_string();
        let (ok, out) = docker(&["kill", &container]);
        assert!(ok, "{out}");
    }
    stack
        .until(60, "the database is failed", || async {
            stack.get(&path, &alice).await["status"] == "failed"
        })
        .await;
    let failed = stack.get(&path, &alice).await;
    let reason = failed["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("exited 4 times within 5 minutes"),
        "{reason}"
    );
    assert_eq!(
        stack.inspect(&container)["State"]["Running"],
        false,
        "left stopped"
    );
    assert_eq!(billed(&stack, &alice, db).await.0, 0);
    let notices = stack.get("/api/paas/notifications", &alice).await;
    assert!(
        notices
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "database_failed"),
        "{notices:#}"
    );
    let (status, _) = stack
        .post(&format!("{path}/start"), &alice, json!({}))
        .await;
    assert_eq!(status, 200);
    stack
        .until(120, "the failed database runs again", || async {
            stack.get(&path, &alice).await["status"] == "running"
        })
        .await;
    assert_eq!(sql("SELECT count(*) FROM orders"), "3");
}

#[tokio::test]
async fn docker_the_console_shows_a_databases_health_and_stops_resizes_and_starts_it() {
    ensure_engine_images();
    let stack = Stack::start(Timing::default()).await;
    local_engine(&stack, "postgresql", "16", POSTGRES_IMAGE).await;
    let small = database_plan(&stack).await;
    let body = json!({"name": "db-large", "cpu_limit": 1000, "memory_limit": 768, "storage_limit": 1000,
                      "monthly_price": "20.00", "hourly_rate": "0.0300"});
    let (status, large) = stack
        .post("/api/admin/paas/plans", &stack.admin, body)
        .await;
    assert_eq!(status, 201, "{large:#}");
    let large = large["id"].as_i64().unwrap();
    let (_node, _agent) = stack.node("worker-1").await;
    let carol = stack.customer("carol@example.com").await;
    let (db, _) = running_database(&stack, &carol, small, "carol-db", "postgresql", "16").await;
    let path = format!("/api/paas/databases/{db}");

    let mut browser = Browser::start().await;
    browser
        .log_in(
            &format!("{}/#/databases/{db}", stack.base),
            "carol@example.com",
            PASSWORD,
        )
        .await;
    browser
        .until(
            30,
            "the database page with its measured size",
            &format!(
                "{}.includes('MB') && !!document.querySelector('#db-stop')",
                text_of("#db-size")
            ),
        )
        .await;
    browser.eval("window.confirm = () => true").await;
    browser.click("#db-stop").await;
    browser
        .until(
            30,
            "the stopped badge and a Start button",
            "!!document.querySelector('#db-start') && !!document.querySelector('h1 + [data-status=\"stopped\"]')",
        )
        .await;
    assert_eq!(stack.get(&path, &carol).await["status"], "stopped");
    // Another plan while stopped: taken at the next start.
    browser
        .eval(&format!(
            "(s => {{ s.value = '{large}'; s.dispatchEvent(new Event('change')); return true; }})(document.querySelector('#db-plan'))"
        ))
        .await;
    browser.click("#db-resize").await;
    stack
        .until(30, "the plan changed", || async {
            stack.get(&path, &carol).await["plan_id"] == large
        })
        .await;
    browser.click("#db-start").await;
    stack
        .until(120, "the database runs again", || async {
            stack.get(&path, &carol).await["status"] == "running"
        })
        .await;
    browser
        .until(
            30,
            "the running badge and a Stop button",
            "!!document.querySelector('#db-stop') && !!document.querySelector('h1 + [data-status=\"running\"]')",
        )
        .await;
    let container = format!("{}sp-db-{db}", stack.namespace);
    assert_eq!(
        stack.inspect(&container)["HostConfig"]["Memory"],
        768 * 1024 * 1024
    );
}
