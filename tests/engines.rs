//! The database engine images the managed-database tests run honour the
//! official images' contract: PostgreSQL set up from `POSTGRES_USER`,
//! `POSTGRES_PASSWORD` and `POSTGRES_DB`, reachable over the network with
//! that password only; Redis started as `redis-server --requirepass …`;
//! MySQL (MariaDB from Debian) set up from `MYSQL_ROOT_PASSWORD`,
//! `MYSQL_DATABASE`, `MYSQL_USER` and `MYSQL_PASSWORD` once, its data
//! kept in `/var/lib/mysql` across restarts.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::time::{Duration, Instant};

use stack::docker_text as docker;
use stack::engines::{
    MYSQL_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, ensure_engine_images, ensure_mysql_images,
};

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

/// Runs `sql` as `user` with `password` (in `MYSQL_PWD`) against `host`
/// from a client container on `network`.
fn mysql(
    network: &str,
    host: &str,
    user: &str,
    password: &str,
    database: &str,
    sql: &str,
) -> (bool, String) {
    docker(&[
        "run",
        "--rm",
        "--network",
        network,
        "-e",
        &format!("MYSQL_PWD={password}"),
        "--entrypoint",
        "mariadb",
        MYSQL_IMAGE,
        "-h",
        host,
        "-u",
        user,
        "-N",
        "-B",
        database,
        "-e",
        sql,
    ])
}

#[test]
fn docker_the_mysql_image_honours_the_official_images_contract() {
    ensure_mysql_images();
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let (db, bare) = (
        format!("sp-test-mysql-{id}"),
        format!("sp-test-mysql-bare-{id}"),
    );
    let volume = format!("sp-test-mysql-data-{id}");
    let cleanup = Cleanup {
        containers: vec![db.clone(), bare.clone()],
        network: format!("sp-test-mysql-{id}"),
    };
    let net = cleanup.network.as_str();
    assert!(docker(&["network", "create", net]).0);
    // As the platform runs it: every capability dropped but the few an
    // entry point needs to hand the data folder to its own user.
    let mount = format!("{volume}:/var/lib/mysql");
    let run = |name: &str, env: &[&str]| {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CHOWN",
            "--cap-add",
            "DAC_OVERRIDE",
            "--cap-add",
            "FOWNER",
            "--cap-add",
            "SETGID",
            "--cap-add",
            "SETUID",
            "--security-opt",
            "no-new-privileges",
            "--init",
            "-v",
            &mount,
        ];
        let env: Vec<String> = env.iter().map(|e| e.to_string()).collect();
        for e in &env {
            args.extend(["-e", e.as_str()]);
        }
        args.push(MYSQL_IMAGE);
        let (ok, out) = docker(&args);
        assert!(ok, "{out}");
    };
    // A quote and a backslash in the root password survive the set-up.
    let root_password = r"r00t'pa\ss";
    run(
        &db,
        &[
            &format!("MYSQL_ROOT_PASSWORD={root_password}"),
            "MYSQL_DATABASE=shopdb",
            "MYSQL_USER=shop",
            "MYSQL_PASSWORD=my-s3cret",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (ok, out) = mysql(
            net,
            &db,
            "shop",
            "my-s3cret",
            "shopdb",
            "SELECT CONCAT(CURRENT_USER(), ' ', DATABASE())",
        );
        if ok {
            assert_eq!(out, "shop@% shopdb");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "MySQL never answered: {out}\n{}",
            docker(&["logs", &db]).1
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The user owns its database and nothing else; a wrong password is refused.
    let (ok, out) = mysql(
        net,
        &db,
        "shop",
        "my-s3cret",
        "shopdb",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (7); SELECT id FROM t",
    );
    assert!(ok && out == "7", "{out}");
    let (ok, out) = mysql(net, &db, "shop", "my-s3cret", "mysql", "SELECT 1");
    assert!(!ok && out.contains("Access denied"), "{out}");
    let (ok, out) = mysql(net, &db, "shop", "wrong", "shopdb", "SELECT 1");
    assert!(!ok && out.contains("Access denied"), "{out}");
    // Root answers over the network with its password, and only with it.
    let (ok, out) = mysql(
        net,
        &db,
        "root",
        root_password,
        "shopdb",
        "SELECT count(*) FROM t",
    );
    assert!(ok && out == "1", "{out}");
    let (ok, out) = mysql(net, &db, "root", "", "shopdb", "SELECT 1");
    assert!(!ok && out.contains("Access denied"), "{out}");
    // No anonymous account, no test database.
    let (_, out) = mysql(
        net,
        &db,
        "root",
        root_password,
        "mysql",
        "SELECT CONCAT(User, '@', Host) FROM user ORDER BY 1; SHOW DATABASES LIKE 'test'",
    );
    assert!(
        !out.lines().any(|l| l.starts_with('@')) && !out.lines().any(|l| l == "test"),
        "{out}"
    );
    // mysqldump inside the container, as root with the password in the environment.
    let (ok, dump) = docker(&[
        "exec",
        "-e",
        &format!("MYSQL_PWD={root_password}"),
        &db,
        "mysqldump",
        "-uroot",
        "--single-transaction",
        "shopdb",
    ]);
    assert!(ok && dump.contains("INSERT INTO `t` VALUES"), "{dump}");

    // Restarted on the same volume, the data is there and nothing is set up
    // again (a new password in the environment changes nothing).
    let (ok, out) = docker(&["rm", "-f", &db]);
    assert!(ok, "{out}");
    run(
        &db,
        &[
            "MYSQL_ROOT_PASSWORD=another",
            "MYSQL_USER=other",
            "MYSQL_PASSWORD=other",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out) = mysql(net, &db, "shop", "my-s3cret", "shopdb", "SELECT id FROM t");
        if ok {
            assert_eq!(out, "7");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "MySQL never came back: {out}\n{}",
            docker(&["logs", &db]).1
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (ok, _) = mysql(net, &db, "other", "other", "", "SELECT 1");
    assert!(!ok, "a second start set up a new user");

    // Without a root password on an empty volume it refuses to start, and says why.
    let (ok, out) = docker(&["run", "--name", &bare, "--network", net, MYSQL_IMAGE]);
    assert!(
        !ok && out.contains("MYSQL_ROOT_PASSWORD must be set"),
        "{out}"
    );
    drop(cleanup);
    let _ = docker(&["volume", "rm", &volume]);
}
