//! The real binary: `skypanel serve` listening on a port, `migrate`,
//! `admin create`, configuration errors, and a graceful stop on SIGTERM.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skypanel_store::testing::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_skypanel");

fn redis_url() -> String {
    std::env::var("SKYPANEL_TEST_REDIS_URL")
        .expect("SKYPANEL_TEST_REDIS_URL is not set: run the tests through ./ops/test")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `skypanel` command with a clean environment holding only `vars`.
fn skypanel(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in vars {
        command.env(k, v);
    }
    command
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(vars: &[(&str, &str)], port: u16) -> Server {
    let child = skypanel(vars)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    loop {
        if let Ok(answer) = client.get(format!("{base}/api/health")).send().await
            && answer.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "skypanel serve did not answer within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server { child, base }
}

#[test]
fn missing_configuration_names_every_variable() {
    let output = skypanel(&[
        ("SKYPANEL_SECRET_KEY", "nothex"),
        ("SKYPANEL_LISTEN", "bogus"),
    ])
    .arg("serve")
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in [
        "SKYPANEL_DATABASE_URL",
        "SKYPANEL_REDIS_URL",
        "SKYPANEL_SECRET_KEY",
        "SKYPANEL_JWT_SECRET",
        "SKYPANEL_LISTEN",
    ] {
        assert!(stderr.contains(name), "{name} not named in:\n{stderr}");
    }
    assert!(
        !stderr.contains("nothex"),
        "values are not echoed:\n{stderr}"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("  SKYPANEL_"))
            .count(),
        5,
        "one line per variable:\n{stderr}"
    );
}

#[tokio::test]
async fn serve_migrate_admin_and_graceful_stop() {
    let db = TestDb::empty().await;
    let migrate = || {
        skypanel(&[("SKYPANEL_DATABASE_URL", &db.url)])
            .arg("migrate")
            .output()
            .unwrap()
    };
    let first = migrate();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    let expected = format!("applied {migrations} migration(s)");
    assert!(
        String::from_utf8_lossy(&first.stdout).starts_with(&expected),
        "{expected}"
    );
    assert!(String::from_utf8_lossy(&migrate().stdout).contains("up to date"));

    let created = skypanel(&[("SKYPANEL_DATABASE_URL", &db.url)])
        .args([
            "admin",
            "create",
            "--email",
            "Root@Example.com",
            "--password",
            "admin-password-1",
        ])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).starts_with("created admin root@example.com"));
    let again = skypanel(&[("SKYPANEL_DATABASE_URL", &db.url)])
        .args([
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--password",
            "admin-password-2",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("promoted admin root@example.com"));
    let weak = skypanel(&[("SKYPANEL_DATABASE_URL", &db.url)])
        .args([
            "admin",
            "create",
            "--email",
            "x@example.com",
            "--password",
            "short",
        ])
        .output()
        .unwrap();
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("--password"));

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let redis = redis_url();
    let secret = "ab".repeat(32);
    let vars = [
        ("SKYPANEL_DATABASE_URL", db.url.as_str()),
        ("SKYPANEL_REDIS_URL", redis.as_str()),
        ("SKYPANEL_SECRET_KEY", secret.as_str()),
        ("SKYPANEL_JWT_SECRET", "a-jwt-secret-of-at-least-32-chars!"),
        ("SKYPANEL_LISTEN", listen.as_str()),
        ("SKYPANEL_PLATFORM_DOMAIN", "apps.example.test"),
    ];
    let mut server = start(&vars, port).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();

    let health: Value = client
        .get(format!("{base}/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (health["database"].as_str(), health["redis"].as_str()),
        (Some("ok"), Some("ok"))
    );
    let login: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "root@example.com", "password": "admin-password-2"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().expect("admin login");
    let runtimes = client
        .get(format!("{base}/api/admin/paas/runtimes"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(runtimes.status().as_u16(), 200);

    let docs = client.get(format!("{base}/api/docs")).send().await.unwrap();
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
    let spec: Value = client
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/paas/applications"].is_object());
    let not_json = client
        .post(format!("{base}/api/auth/login"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert_eq!(body["code"], "invalid_json");

    // SIGTERM: the server stops on its own, successfully.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "skypanel did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
}

/// Also shows that `serve` migrates an empty database before anything else.
#[tokio::test]
async fn unreachable_redis_stops_start_up_with_a_clear_message() {
    let port = free_port();
    let secret = "ab".repeat(32);
    let db = TestDb::empty().await;
    let output = skypanel(&[
        ("SKYPANEL_DATABASE_URL", db.url.as_str()),
        ("SKYPANEL_REDIS_URL", &format!("redis://127.0.0.1:{port}")),
        ("SKYPANEL_SECRET_KEY", secret.as_str()),
        ("SKYPANEL_JWT_SECRET", "a-jwt-secret-of-at-least-32-chars!"),
        ("SKYPANEL_LISTEN", &format!("127.0.0.1:{}", free_port())),
    ])
    .arg("serve")
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach Redis"), "{stderr}");
    let migrated = skypanel(&[("SKYPANEL_DATABASE_URL", &db.url)])
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&migrated.stdout).contains("up to date"),
        "serve migrated first"
    );
}
