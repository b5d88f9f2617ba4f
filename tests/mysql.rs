//! MySQL end to end on real Docker, through the real control plane, Redis
//! queues and agent, on the MariaDB stand-in of the official `mysql` image:
//! provisioned with a generated password, linked into an application that
//! writes and reads rows through its `mysql://` `DATABASE_URL`, backed up
//! with `mysqldump` inside the container (the password never on a command
//! line the node's process list shows), restored, and deleted with and
//! without its data.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use reqwest::Method;
use serde_json::json;
use stack::databases::{
    ProcessWatch, assert_tool_seen_password_never, backup, dumps, ended, network_of, restore,
};
use stack::engines::{
    MYSQL_APP_IMAGE, MYSQL_IMAGE, database_plan, ensure_mysql_images, local_engine,
    running_database,
};
use stack::{Stack, Timing, docker_text as docker, through_ingress};

#[tokio::test]
async fn docker_a_mysql_database_is_linked_backed_up_restored_and_deleted() {
    ensure_mysql_images();
    let stack = Stack::start(Timing::default()).await;
    local_engine(&stack, "mysql", "8", MYSQL_IMAGE).await;
    let plan = database_plan(&stack).await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let (db, url) = running_database(&stack, &alice, plan, "shop-db", "mysql", "8").await;
    let path = format!("/api/paas/databases/{db}");
    let connection = stack.get(&path, &alice).await["connection"].clone();
    assert_eq!(connection["port"], 3306);
    assert_eq!(connection["database"], "shop_db");
    let (user, password) = (
        connection["username"].as_str().unwrap().to_string(),
        connection["password"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        url,
        format!("mysql://{user}:{password}@sp-db-{db}:3306/shop_db")
    );
    let network = network_of(&stack, db);
    let sql = |query: &str| {
        let pwd = format!("MYSQL_PWD={password}");
        let host = format!("sp-db-{db}");
        let (ok, out) = docker(&[
            "run",
            "--rm",
            "--network",
            &network,
            "-e",
            &pwd,
            "--entrypoint",
            "mariadb",
            MYSQL_IMAGE,
            "-h",
            &host,
            "-u",
            &user,
            "-N",
            "-B",
            "shop_db",
            "-e",
            query,
        ]);
        assert!(ok, "{query}: {out}");
        out
    };

    // Linked into an application, which writes and reads rows through DATABASE_URL.
    let body =
        json!({"name": "shop", "plan_id": plan, "region": "local", "image": MYSQL_APP_IMAGE});
    let (status, app) = stack.post("/api/paas/applications", &alice, body).await;
    assert_eq!(status, 201, "{app:#}");
    let app = app["id"].as_i64().unwrap();
    let (status, link) = stack
        .post(
            &format!("/api/paas/applications/{app}/databases/{db}"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{link:#}");
    assert_eq!(
        link["variables"],
        json!([
            "DATABASE_URL",
            "DATABASE_HOST",
            "DATABASE_PORT",
            "DATABASE_USER",
            "DATABASE_PASSWORD",
            "DATABASE_NAME"
        ])
    );
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/deploy"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(&alice, app, "running").await;
    let visit = || through_ingress(agent.ingress_port, "shop.apps.test", "/cgi-bin/visit");
    stack
        .until(60, "the application counts its first visit", || async {
            visit()
                .await
                .is_some_and(|(code, body)| code == 200 && body.trim() == "1")
        })
        .await;
    assert_eq!(visit().await.unwrap().1.trim(), "2");
    assert_eq!(sql("SELECT count(*) FROM visits"), "2");
    // Its node measures its size and connections with MySQL's own client.
    stack
        .until(30, "the database is measured", || async {
            let health = &stack.get(&path, &alice).await["health"];
            health["size_bytes"].as_i64().is_some_and(|s| s > 1_000_000)
                && health["connections"].as_i64().is_some()
        })
        .await;

    // Enough rows that the dump runs long enough to be seen in the process list.
    sql("CREATE TABLE pages AS SELECT seq AS id, REPEAT('x', 100) AS body FROM seq_1_to_300000");

    // A backup with mysqldump inside the container: the dump on the node is
    // what the API says, and no process on the node showed the password.
    let backups = format!("{path}/backups");
    let watch = ProcessWatch::start();
    let first = backup(&stack, &alice, db).await;
    let done = ended(&stack, &alice, &backups, first).await;
    assert_tool_seen_password_never(&watch.finish(), "mysqldump", &password);
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let file = agent
        .state_dir
        .join("backups")
        .join(format!("db-{db}/{first}.dump"));
    assert_eq!(done["size_bytes"], std::fs::metadata(&file).unwrap().len());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("CREATE TABLE `visits`"), "{}", &text[..2000]);
    assert!(!text.contains(&password), "no password in the dump");

    // More visits, then the restore: the count is the backup's again.
    for _ in 0..3 {
        assert_eq!(visit().await.unwrap().0, 200);
    }
    assert_eq!(sql("SELECT count(*) FROM visits"), "5");
    sql("DROP TABLE pages");
    let restored = restore(&stack, &alice, db, first).await;
    let done = ended(&stack, &alice, &format!("{path}/restores"), restored).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(sql("SELECT count(*) FROM visits"), "2");
    assert_eq!(sql("SELECT count(*) FROM pages"), "300000");
    assert_eq!(
        visit().await.unwrap().1.trim(),
        "3",
        "the application goes on"
    );

    // Another customer reaches none of it.
    let bob = stack.customer("bob@example.com").await;
    let (status, _) = stack.call(Method::GET, &path, &bob, None).await;
    assert_eq!(status, 404);
    // Not even from another network, by address.
    let other = format!("{}sp-test-other-{db}", stack.namespace);
    assert!(docker(&["network", "create", &other]).0);
    let address =
        stack.inspect(&format!("{}sp-db-{db}", stack.namespace))["NetworkSettings"]["Networks"]
            [&network]["IPAddress"]
            .as_str()
            .unwrap()
            .to_string();
    let (ok, out) = docker(&[
        "run",
        "--rm",
        "--network",
        &other,
        "--entrypoint",
        "mariadb",
        MYSQL_IMAGE,
        "--connect-timeout=3",
        "-h",
        &address,
        "-u",
        &user,
        "-e",
        "SELECT 1",
    ]);
    docker(&["network", "rm", &other]);
    assert!(!ok && out.contains("Can't connect"), "{out}");

    // Unlinked and deleted without purging: the container goes, the data stays.
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/api/paas/applications/{app}/databases/{db}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = stack.call(Method::DELETE, &path, &alice, None).await;
    assert_eq!(status, 204, "{body:#}");
    let container = format!("{}sp-db-{db}", stack.namespace);
    let volume = format!("{container}-data");
    stack
        .until(60, "the container is gone", || async {
            !docker(&["container", "inspect", &container]).0
        })
        .await;
    assert!(
        docker(&["volume", "inspect", &volume]).0,
        "the data is kept"
    );
    // The kept volume is the database's data folder, its tables in it.
    let mount = format!("{volume}:/data:ro");
    let (ok, tables) = docker(&[
        "run",
        "--rm",
        "-v",
        &mount,
        "--entrypoint",
        "ls",
        MYSQL_IMAGE,
        "/data/shop_db",
    ]);
    assert!(ok && tables.contains("visits.ibd"), "{tables}");

    // A second database, deleted with purge: container, data and dumps go.
    let (second, _) = running_database(&stack, &alice, plan, "scratch", "mysql", "8").await;
    let scratch = backup(&stack, &alice, second).await;
    let second_backups = format!("/api/paas/databases/{second}/backups");
    assert_eq!(
        ended(&stack, &alice, &second_backups, scratch).await["status"],
        "succeeded"
    );
    assert_eq!(dumps(&agent.state_dir, second), [format!("{scratch}.dump")]);
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/api/paas/databases/{second}?purge=true"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (container, volume) = (
        format!("{}sp-db-{second}", stack.namespace),
        format!("{}sp-db-{second}-data", stack.namespace),
    );
    stack
        .until(
            60,
            "the container, its data and its dumps are gone",
            || async {
                !docker(&["container", "inspect", &container]).0
                    && !docker(&["volume", "inspect", &volume]).0
                    && dumps(&agent.state_dir, second).is_empty()
            },
        )
        .await;
    assert!(!stack.process_logs().contains(&password));
}
