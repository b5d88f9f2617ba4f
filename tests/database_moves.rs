//! A database whose node has no room for the plan its owner asks for moves
//! to another node of its region, on real Docker with two agents: dumped on
//! the node it leaves (cut off from its network first), copied through the
//! control plane, restored on the new node with the new plan; its data,
//! host name and password are the same after. A linked database does not
//! move; a dump that fails undoes the move and the database runs on its
//! node as before.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use reqwest::Method;
use serde_json::{Value, json};
use stack::browser::{Browser, text_of};
use stack::databases::{client, network_of_container};
use stack::engines::{
    PG_APP_IMAGE, POSTGRES_IMAGE, database_plan, ensure_engine_images, local_engine,
    running_database,
};
use stack::{PASSWORD, Stack, Timing, agent_dir, docker_text as docker};

/// The database's entry in the admin's list.
async fn admin_entry(stack: &Stack, db: i64) -> Value {
    let listed = stack.get("/api/admin/paas/databases", &stack.admin).await;
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == db)
        .cloned()
        .unwrap()
}

/// The memory (MB) the Scheduler counts as taken on `node`.
async fn memory_allocated(stack: &Stack, node: i64) -> i64 {
    let capacity = stack.get("/api/admin/paas/capacity", &stack.admin).await;
    capacity["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == node)
        .unwrap()["memory_allocated"]
        .as_i64()
        .unwrap()
}

/// The notices of `kind` the customer has.
async fn notices(stack: &Stack, token: &str, kind: &str) -> Vec<String> {
    let all = stack.get("/api/paas/notifications", token).await;
    all.as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == kind)
        .map(|n| n["message"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn docker_a_database_whose_node_has_no_room_moves_to_another_node_with_its_data() {
    ensure_engine_images();
    let stack = Stack::start(Timing::default()).await;
    local_engine(&stack, "postgresql", "16", POSTGRES_IMAGE).await;
    let small = database_plan(&stack).await;
    // Two nodes on this one Docker, each with its own names.
    let (first_ns, second_ns) = (
        format!("{}a-", stack.namespace),
        format!("{}b-", stack.namespace),
    );
    // The first node's agent serves its metrics.
    let metrics_port = stack::free_port();
    let (first, _first_agent) = stack
        .node_with(
            "worker-1",
            agent_dir(),
            &stack.base,
            &first_ns,
            &[(
                "SKYPANEL_AGENT_METRICS_LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            )],
        )
        .await;
    let capacity = stack.get("/api/admin/paas/capacity", &stack.admin).await;
    let total = capacity["nodes"][0]["memory_total"].as_i64().unwrap();
    let plan = |name: &str, cpu: i64, memory: i64, rate: &str| {
        json!({"name": name, "cpu_limit": cpu, "memory_limit": memory, "storage_limit": 1000,
               "monthly_price": "20.00", "hourly_rate": rate})
    };
    let mut made = Vec::new();
    for body in [
        plan("db-filler", 500, total / 2, "0.0100"),
        plan("db-big", 1000, total * 6 / 10, "0.0500"),
    ] {
        let (status, created) = stack
            .post("/api/admin/paas/plans", &stack.admin, body)
            .await;
        assert_eq!(status, 201, "{created:#}");
        made.push(created["id"].as_i64().unwrap());
    }
    let (filler, big) = (made[0], made[1]);
    let alice = stack.customer("alice@example.com").await;
    let (db, url) = running_database(&stack, &alice, small, "shop-db", "postgresql", "16").await;
    // Half the node is taken: the big plan does not fit next to it.
    running_database(&stack, &alice, filler, "filler-db", "postgresql", "16").await;
    let path = format!("/api/paas/databases/{db}");
    let on_first = format!("{first_ns}sp-db-{db}");
    let first_network = network_of_container(&stack, &on_first);
    let sql_on = |network: &str, query: &str| {
        client(network, POSTGRES_IMAGE, "psql", &[&url, "-tAc", query])
    };
    sql_on(
        &first_network,
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g",
    );
    let (second, _second_agent) = stack
        .node_at("worker-2", agent_dir(), &stack.base, &second_ns)
        .await;
    assert_eq!(admin_entry(&stack, db).await["node_id"], first);

    // Linked into an application, it cannot move (it is reachable only on
    // its own node): refused with the reason, and nothing changes.
    let body = json!({"name": "shop", "plan_id": small, "region": "local", "image": PG_APP_IMAGE});
    let (status, app) = stack.post("/api/paas/applications", &alice, body).await;
    assert_eq!(status, 201, "{app:#}");
    let link = format!("/api/paas/applications/{}/databases/{db}", app["id"]);
    let (status, _) = stack.post(&link, &alice, json!({})).await;
    assert_eq!(status, 201);
    let (status, refused) = stack
        .call(Method::PUT, &path, &alice, Some(json!({"plan_id": big})))
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("no_node_available")),
        "{refused:#}"
    );
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("linked") && message.contains("shop"),
        "{message}"
    );
    let now = stack.get(&path, &alice).await;
    assert_eq!(
        (now["plan_id"].as_i64(), now["status"].as_str()),
        (Some(small), Some("running"))
    );
    assert!(now["last_move"].is_null(), "{now:#}");
    let (status, _) = stack.call(Method::DELETE, &link, &alice, None).await;
    assert!((200..300).contains(&status), "{status}");

    // A dump that fails on the node it leaves undoes the move: the database
    // runs there again with its old plan and all its rows, and its owner is
    // told why.
    let dump_tool = "/usr/lib/postgresql/15/bin/pg_dump";
    let (ok, out) = docker(&["exec", "-u", "root", &on_first, "chmod", "000", dump_tool]);
    assert!(ok, "{out}");
    let (status, moving) = stack
        .call(Method::PUT, &path, &alice, Some(json!({"plan_id": big})))
        .await;
    assert_eq!(status, 200, "{moving:#}");
    assert_eq!(moving["status"], "pending", "{moving:#}");
    assert_eq!(moving["last_move"]["status"], "exporting", "{moving:#}");
    stack
        .until(120, "the failed move is undone", || async {
            let now = stack.get(&path, &alice).await;
            now["last_move"]["status"] == "failed" && now["status"] == "running"
        })
        .await;
    let now = stack.get(&path, &alice).await;
    assert_eq!(now["plan_id"].as_i64(), Some(small), "{now:#}");
    let error = now["last_move"]["error"].as_str().unwrap();
    assert!(error.contains("dump"), "{error}");
    assert_eq!(admin_entry(&stack, db).await["node_id"], first);
    assert_eq!(
        sql_on(&first_network, "SELECT count(*) FROM orders"),
        "20000"
    );
    let failed = notices(&stack, &alice, "database_move_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("nothing written to it was lost"),
        "{failed:?}"
    );
    let on_second = format!("{second_ns}sp-db-{db}");
    let (exists, _) = docker(&["inspect", &on_second]);
    assert!(!exists, "nothing was made on the other node");
    let (ok, out) = docker(&["exec", "-u", "root", &on_first, "chmod", "755", dump_tool]);
    assert!(ok, "{out}");

    // Moved: written before, read after, on the other node, with the new
    // plan's limits; the old copy goes; billed at the new rate; the owner
    // is told how long it would take and how long it took.
    sql_on(&first_network, "INSERT INTO orders VALUES (20001, 'last')");
    let started = std::time::Instant::now();
    let (status, moving) = stack
        .call(Method::PUT, &path, &alice, Some(json!({"plan_id": big})))
        .await;
    assert_eq!(status, 200, "{moving:#}");
    assert_eq!(
        (moving["status"].as_str(), moving["plan_id"].as_i64()),
        (Some("pending"), Some(big)),
        "{moving:#}"
    );
    // Its new node has to start an engine first: it is still moving.
    let (status, refused) = stack.call(Method::DELETE, &path, &alice, None).await;
    assert_eq!(status, 409, "a moving database is not deleted: {refused:#}");
    stack
        .until(180, "the database runs on its new node", || async {
            let now = stack.get(&path, &alice).await;
            assert_ne!(now["last_move"]["status"], "failed", "{now:#}");
            now["last_move"]["status"] == "succeeded" && now["status"] == "running"
        })
        .await;
    println!(
        "a database of 20,001 rows moved between nodes in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let now = stack.get(&path, &alice).await;
    assert_eq!(now["connection"]["url"].as_str(), Some(url.as_str()));
    assert!(
        now["last_move"]["size_bytes"].as_i64().unwrap() > 4_000_000,
        "{now:#}"
    );
    assert_eq!(admin_entry(&stack, db).await["node_id"], second);
    let inspected = stack.inspect(&on_second);
    assert_eq!(
        inspected["HostConfig"]["Memory"].as_i64(),
        Some(total * 6 / 10 * 1024 * 1024)
    );
    let second_network = network_of_container(&stack, &on_second);
    assert_eq!(
        sql_on(
            &second_network,
            "SELECT count(*) || ',' || max(id) FROM orders"
        ),
        "20001,20001"
    );
    stack
        .until(60, "the old copy is removed with its data", || async {
            let (container, _) = docker(&["inspect", &on_first]);
            let (volume, _) = docker(&["volume", "inspect", &format!("{on_first}-data")]);
            !container && !volume
        })
        .await;
    let usage = stack.get("/api/paas/billing/usage", &alice).await;
    let line = usage["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource_type"] == "database" && r["resource_id"] == db)
        .cloned()
        .unwrap();
    assert_eq!(
        (
            line["running_instances"].as_i64(),
            line["hourly_rate"].as_str()
        ),
        (Some(1), Some("0.0500"))
    );
    assert_eq!(memory_allocated(&stack, first).await, total / 2);
    assert_eq!(memory_allocated(&stack, second).await, total * 6 / 10);
    let told = notices(&stack, &alice, "database_resized").await;
    assert!(
        told.iter()
            .any(|m| m.contains("moves to another node") && m.contains("should take about")),
        "{told:?}"
    );
    let moved = notices(&stack, &alice, "database_moved").await;
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(moved[0].contains("moved in"), "{moved:?}");
    // The console's database page says so.
    let mut browser = Browser::start().await;
    browser
        .log_in(
            &format!("{}/#/databases/{db}", stack.base),
            "alice@example.com",
            PASSWORD,
        )
        .await;
    browser
        .until(
            30,
            "the database page with its move",
            &format!(
                "{}.includes('moved for plan db-big in')",
                text_of("#db-move")
            ),
        )
        .await;
    // The dump does not stay on the control plane.
    let left: Vec<_> = std::fs::read_dir(stack.logs.join("transfers"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // The node it left counted both dumps (the failed and the handed-over)
    // in its metrics; anything but /metrics is not served there.
    let agent_metrics = format!("http://127.0.0.1:{metrics_port}");
    let text = stack
        .http
        .get(format!("{agent_metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "skypanel_agent_tasks_total{kind=\"db.export\",status=\"failed\"} 1",
        "skypanel_agent_tasks_total{kind=\"db.export\",status=\"succeeded\"} 1",
        "skypanel_agent_task_duration_seconds_count{kind=\"db.export\"} 2",
        "# TYPE skypanel_agent_heartbeats_total counter",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
    let other = stack
        .http
        .get(format!("{agent_metrics}/debug"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    // The dump's path takes nobody without a node credential.
    let dump = format!("{}/api/internal/paas/database-moves/1/dump", stack.base);
    let answer = stack.http.get(&dump).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let answer = stack
        .http
        .put(&dump)
        .bearer_auth(&alice)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
}
