//! Backups and restores of managed databases on real Docker, through the
//! real control plane, Redis queues and agent: a PostgreSQL backup, more
//! rows, a restore, and the extra rows are gone; the same for Redis (and it
//! survives a restart); a dump that fails is reported failed with a notice;
//! retention, the daily round, and the data a deleted database leaves.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use reqwest::Method;
use serde_json::json;
use stack::databases::{
    ProcessWatch, assert_tool_seen_password_never, backup, client, dumps, ended, network_of,
    restore, sha256_of,
};
use stack::engines::{
    POSTGRES_IMAGE, REDIS_IMAGE, database_plan, ensure_engine_images, local_engine,
    running_database,
};
use stack::{Stack, Timing, docker_text as docker};

#[tokio::test]
async fn docker_a_postgresql_restore_brings_back_the_rows_of_its_backup_and_a_failing_dump_is_reported()
 {
    ensure_engine_images();
    let timing = Timing {
        env: vec![("SKYPANEL_BACKUP_RETENTION", "2".into())],
        ..Timing::default()
    };
    let stack = Stack::start(timing).await;
    local_engine(&stack, "postgresql", "16", POSTGRES_IMAGE).await;
    let plan = database_plan(&stack).await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let (db, url) = running_database(&stack, &alice, plan, "shop-db", "postgresql", "16").await;
    let network = network_of(&stack, db);
    let sql = |query: &str| client(&network, POSTGRES_IMAGE, "psql", &[&url, "-tAc", query]);
    sql("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1), (2)");
    // Enough rows that the dump runs long enough to be seen in the process list.
    sql(
        "CREATE TABLE pages AS SELECT g AS id, repeat('x', 100) AS body FROM generate_series(1, 300000) g",
    );
    let password = stack
        .get(&format!("/api/paas/databases/{db}"), &alice)
        .await["connection"]["password"]
        .as_str()
        .unwrap()
        .to_string();

    // A backup: its size and SHA-256 are those of the dump on the node;
    // the node's process list never shows the password meanwhile.
    let backups = format!("/api/paas/databases/{db}/backups");
    let watch = ProcessWatch::start();
    let first = backup(&stack, &alice, db).await;
    // One backup or restore at a time.
    let (status, refused) = stack
        .post(
            &format!("/api/paas/databases/{db}/backup"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("operation_in_progress")),
        "{refused:#}"
    );
    let done = ended(&stack, &alice, &backups, first).await;
    assert_tool_seen_password_never(&watch.finish(), "pg_dump", &password);
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["origin"], "manual");
    let file = agent
        .state_dir
        .join("backups")
        .join(format!("db-{db}/{first}.dump"));
    assert_eq!(done["sha256"], sha256_of(&file));
    assert_eq!(done["size_bytes"], std::fs::metadata(&file).unwrap().len());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("CREATE TABLE public.orders"), "{text}");
    assert!(
        !text.contains(url.split(':').nth(2).unwrap().split('@').next().unwrap()),
        "no password in the dump"
    );

    // More rows, then the restore: the extra rows are gone.
    sql("INSERT INTO orders VALUES (3), (4), (5)");
    assert_eq!(sql("SELECT count(*) FROM orders"), "5");
    let restores = format!("/api/paas/databases/{db}/restores");
    let restored = restore(&stack, &alice, db, first).await;
    let done = ended(&stack, &alice, &restores, restored).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(
        sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders"),
        "1,2"
    );

    // Bad input names its field; another customer finds nothing.
    let (status, refused) = stack
        .post(
            &format!("/api/paas/databases/{db}/restore"),
            &alice,
            json!({"backup_id": 999999}),
        )
        .await;
    assert_eq!(
        (status, refused["field"].as_str()),
        (422, Some("backup_id")),
        "{refused:#}"
    );
    let bob = stack.customer("bob@example.com").await;
    for (method, path) in [
        (Method::POST, format!("/api/paas/databases/{db}/backup")),
        (Method::GET, backups.clone()),
        (Method::GET, restores.clone()),
    ] {
        let (status, _) = stack.call(method, &path, &bob, Some(json!({}))).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/api/paas/databases/{db}/restore"),
            &bob,
            Some(json!({"backup_id": first})),
        )
        .await;
    assert_eq!(status, 404);

    // A damaged dump is refused before anything is touched.
    let original = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"-- not the dump\n").unwrap();
    let refused = restore(&stack, &alice, db, first).await;
    let done = ended(&stack, &alice, &restores, refused).await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["error"].as_str().unwrap().contains("damaged"),
        "{done:#}"
    );
    std::fs::write(&file, original).unwrap();
    assert_eq!(sql("SELECT count(*) FROM orders"), "2");

    // A dump that fails is reported failed, with the tool's words and a notice.
    let container = format!("{}sp-db-{db}", stack.namespace);
    let pg_dump = |from: &str, to: &str| {
        // The test image's PostgreSQL 15: the wrapper and the program.
        let script = ["/usr/bin/pg_dump", "/usr/lib/postgresql/15/bin/pg_dump"]
            .map(|f| format!("mv {f}{from} {f}{to}"))
            .join(" && ");
        let (ok, out) = docker(&["exec", &container, "sh", "-c", &script]);
        assert!(ok, "{out}");
    };
    pg_dump("", ".off");
    let broken = backup(&stack, &alice, db).await;
    let done = ended(&stack, &alice, &backups, broken).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("pg_dump"), "{error}");
    assert!(done["sha256"].is_null() && done["size_bytes"].is_null());
    let notices = stack.get("/api/paas/notifications", &alice).await;
    assert!(
        notices
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "backup_failed"
                && n["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("Backup {broken}"))),
        "{notices:#}"
    );
    assert_eq!(
        dumps(&agent.state_dir, db),
        [format!("{first}.dump")],
        "a failed dump leaves no file"
    );
    // The owner's view says the last backup failed, and why.
    let health = &stack
        .get(&format!("/api/paas/databases/{db}"), &alice)
        .await["health"];
    assert_eq!(health["last_backup"]["id"], broken, "{health:#}");
    assert_eq!(health["last_backup"]["status"], "failed");
    pg_dump(".off", "");

    // The daily round backs up every running database once a day; the
    // retention (2 here) keeps the newest dumps and forgets older ones.
    let (status, run) = stack
        .post("/api/admin/paas/backups/run", &stack.admin, json!({}))
        .await;
    assert_eq!(status, 200, "{run:#}");
    assert_eq!(run["backups_queued"], 1, "{run:#}");
    let list = stack.get(&backups, &alice).await;
    let scheduled = list[0]["id"].as_i64().unwrap();
    assert_eq!(list[0]["origin"], "scheduled");
    let (status, run) = stack
        .post("/api/admin/paas/backups/run", &stack.admin, json!({}))
        .await;
    assert_eq!(
        (status, &run["backups_queued"]),
        (200, &json!(0)),
        "once a day"
    );
    let (status, _) = stack
        .post("/api/admin/paas/backups/run", &bob, json!({}))
        .await;
    assert_eq!(status, 403);
    let done = ended(&stack, &alice, &backups, scheduled).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let third = backup(&stack, &alice, db).await;
    assert_eq!(
        ended(&stack, &alice, &backups, third).await["status"],
        "succeeded"
    );
    let list = stack.get(&backups, &alice).await;
    let kept: Vec<(i64, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_i64().unwrap(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            (third, "succeeded".into()),
            (scheduled, "succeeded".into()),
            (broken, "failed".into())
        ],
        "the first backup expired; the failure stays visible"
    );
    // The node keeps one dump past the retention until the next backup (in
    // case the newest is recorded failed after all).
    let mut expected = [first, scheduled, third].map(|id| format!("{id}.dump"));
    expected.sort();
    assert_eq!(dumps(&agent.state_dir, db), expected);

    // Deleted without purging, the data stays, listed to the admin, until purged.
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/api/paas/databases/{db}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let volume = format!("{}sp-db-{db}-data", stack.namespace);
    stack
        .until(60, "the container is gone", || async {
            !docker(&["container", "inspect", &container]).0
        })
        .await;
    assert!(
        docker(&["volume", "inspect", &volume]).0,
        "the data is kept"
    );
    let kept = stack
        .get("/api/admin/paas/database-volumes", &stack.admin)
        .await;
    let entry = kept
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["database_id"] == db)
        .unwrap()
        .clone();
    assert_eq!(entry["name"], "shop-db");
    let deleted =
        chrono::DateTime::parse_from_rfc3339(entry["deleted_at"].as_str().unwrap()).unwrap();
    let purge_after =
        chrono::DateTime::parse_from_rfc3339(entry["purge_after"].as_str().unwrap()).unwrap();
    assert_eq!(purge_after - deleted, chrono::Duration::days(7));
    let (status, _) = stack
        .call(
            Method::GET,
            "/api/admin/paas/database-volumes",
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/api/admin/paas/database-volumes/{}", entry["id"]),
            &stack.admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    stack
        .until(60, "the volume and the dumps are gone", || async {
            !docker(&["volume", "inspect", &volume]).0 && dumps(&agent.state_dir, db).is_empty()
        })
        .await;
    assert!(
        !stack
            .get("/api/admin/paas/database-volumes", &stack.admin)
            .await
            .to_string()
            .contains(&format!("\"database_id\":{db}"))
    );
}

#[tokio::test]
async fn docker_a_redis_restore_brings_back_its_keys_and_they_survive_a_restart() {
    ensure_engine_images();
    let stack = Stack::start(Timing::default()).await;
    local_engine(&stack, "redis", "7", REDIS_IMAGE).await;
    let plan = database_plan(&stack).await;
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let (db, url) = running_database(&stack, &alice, plan, "cache", "redis", "7").await;
    let network = network_of(&stack, db);
    let redis = |args: &[&str]| {
        let mut all = vec!["-u", url.as_str(), "--no-auth-warning"];
        all.extend_from_slice(args);
        client(&network, REDIS_IMAGE, "redis-cli", &all)
    };
    assert_eq!(redis(&["SET", "plan", "gold"]), "OK");
    assert_eq!(redis(&["RPUSH", "queue", "a", "b"]), "2");
    // Enough keys that the dump runs long enough to be seen in the process list.
    let fill = "for i = 1, 300000 do redis.call('SET', 'page:' .. i, string.rep('x', 100)) end";
    redis(&["EVAL", fill, "0"]);
    let password = url
        .trim_start_matches("redis://default:")
        .split('@')
        .next()
        .unwrap()
        .to_string();

    // Its node measures it: the keys' size, and the connections.
    stack
        .until(30, "redis is measured", || async {
            let health = &stack
                .get(&format!("/api/paas/databases/{db}"), &alice)
                .await["health"];
            health["size_bytes"]
                .as_i64()
                .is_some_and(|s| s > 10_000_000)
                && health["connections"].as_i64().is_some()
        })
        .await;

    let backups = format!("/api/paas/databases/{db}/backups");
    let watch = ProcessWatch::start();
    let first = backup(&stack, &alice, db).await;
    let done = ended(&stack, &alice, &backups, first).await;
    assert_tool_seen_password_never(
        &watch.finish(),
        "redis-cli --no-auth-warning --rdb",
        &password,
    );
    assert_eq!(done["status"], "succeeded", "{done:#}");

    assert_eq!(redis(&["SET", "plan", "silver"]), "OK");
    assert_eq!(redis(&["SET", "later", "1"]), "OK");
    let restores = format!("/api/paas/databases/{db}/restores");
    let restored = restore(&stack, &alice, db, first).await;
    let done = ended(&stack, &alice, &restores, restored).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let check = || {
        assert_eq!(redis(&["GET", "plan"]), "gold");
        assert_eq!(redis(&["EXISTS", "later"]), "0");
        assert_eq!(redis(&["LRANGE", "queue", "0", "-1"]), "a\nb");
    };
    check();
    assert_eq!(
        stack
            .get(&format!("/api/paas/databases/{db}"), &alice)
            .await["status"],
        "running"
    );

    // The append-only file Redis starts from is the restored data.
    let container = format!("{}sp-db-{db}", stack.namespace);
    let restart = || async {
        assert!(docker(&["restart", &container]).0);
        stack
            .until(30, "redis answers after a restart", || async {
                let mut ping = vec![
                    "run",
                    "--rm",
                    "--network",
                    &network,
                    "--entrypoint",
                    "redis-cli",
                ];
                ping.extend([REDIS_IMAGE, "-u", &url, "--no-auth-warning", "ping"]);
                docker(&ping).1 == "PONG"
            })
            .await;
    };
    restart().await;
    check();
    assert_eq!(redis(&["SET", "after", "restore"]), "OK");
    restart().await;
    assert_eq!(
        redis(&["GET", "after"]),
        "restore",
        "writes after the restore are kept"
    );
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/api/paas/databases/{db}?purge=true"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 204);
}
