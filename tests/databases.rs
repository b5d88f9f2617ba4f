//! Managed databases on real Docker, through the real control plane and
//! agent: a PostgreSQL database is placed, provisioned from the engine's
//! image with a generated password, reachable with its connection details
//! from the owner's network only, never published on the host, and removed
//! with its data on a purging delete.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use reqwest::Method;
use serde_json::{Value, json};
use stack::engines::{
    PG_APP_IMAGE, POSTGRES_IMAGE, database_plan, ensure_engine_images, local_engine,
};
use stack::{Stack, Timing, docker_text as docker, through_ingress};

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
    assert_eq!(
        visit().await.map(|(_, b)| b.trim().to_string()).as_deref(),
        Some("2")
    );
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
