//! The database engine images the managed-database tests run honour the
//! official images' contract: PostgreSQL set up from `POSTGRES_USER`,
//! `POSTGRES_PASSWORD` and `POSTGRES_DB`, reachable over the network with
//! that password only; Redis started as `redis-server --requirepass …`.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::time::{Duration, Instant};

use stack::docker_text as docker;
use stack::engines::{POSTGRES_IMAGE, REDIS_IMAGE, ensure_engine_images};

/// Containers and a network of this test, removed at the end.
struct Cleanup {
    containers: Vec<String>,
    network: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

#[test]
fn docker_engine_images_honour_the_official_images_contract() {
    ensure_engine_images();
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let (pg, redis) = (format!("sp-test-pg-{id}"), format!("sp-test-redis-{id}"));
    let cleanup = Cleanup {
        containers: vec![pg.clone(), redis.clone()],
        network: format!("sp-test-engines-{id}"),
    };
    let net = cleanup.network.as_str();
    assert!(docker(&["network", "create", net]).0);
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        &pg,
        "--network",
        net,
        "-e",
        "POSTGRES_USER=shop",
        "-e",
        "POSTGRES_PASSWORD=pg-s3cret",
        "-e",
        "POSTGRES_DB=shopdb",
        POSTGRES_IMAGE,
    ]);
    assert!(ok, "{out}");
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        &redis,
        "--network",
        net,
        REDIS_IMAGE,
        "redis-server",
        "--requirepass",
        "redis-s3cret",
        "--appendonly",
        "yes",
    ]);
    assert!(ok, "{out}");

    // PostgreSQL answers over the network with the password, in the database it was asked for.
    let url = format!("postgresql://shop:pg-s3cret@{pg}/shopdb");
    let psql = |url: &str| {
        docker(&[
            "exec",
            &pg,
            "psql",
            url,
            "-tAc",
            "SELECT current_user || '@' || current_database()",
        ])
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out) = psql(&url);
        if ok {
            assert_eq!(out, "shop@shopdb");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL never answered: {out}\n{}",
            docker(&["logs", &pg]).1
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (ok, out) = psql(&format!("postgresql://shop:wrong@{pg}/shopdb"));
    assert!(
        !ok && out.contains("password authentication failed"),
        "{out}"
    );

    // Redis wants its password.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = docker(&[
            "exec",
            &redis,
            "redis-cli",
            "-h",
            &redis,
            "-a",
            "redis-s3cret",
            "--no-auth-warning",
            "ping",
        ]);
        if ok && out == "PONG" {
            break;
        }
        assert!(Instant::now() < deadline, "Redis never answered: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, out) = docker(&["exec", &redis, "redis-cli", "-h", &redis, "ping"]);
    assert!(out.contains("NOAUTH"), "{out}");
    // Data persists in its append-only file.
    let (_, info) = docker(&[
        "exec",
        &redis,
        "redis-cli",
        "-a",
        "redis-s3cret",
        "--no-auth-warning",
        "config",
        "get",
        "appendonly",
    ]);
    assert!(info.ends_with("yes"), "{info}");
    drop(cleanup);
}
