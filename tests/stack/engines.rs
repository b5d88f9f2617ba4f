//! Database engine images for tests, made from Debian's packages (no
//! registry here): one root file system with PostgreSQL 15 and Redis 7 from
//! `debootstrap`, imported once and tagged as the stand-ins of the official
//! `postgres` and `redis` images. Its entry point honours the official
//! images' contract: `POSTGRES_PASSWORD`, `POSTGRES_USER` and `POSTGRES_DB`
//! on first start with an empty data folder, then `postgres` listening on
//! every address with password authentication; a command starting with
//! `redis-server` runs as given (`redis-server --requirepass … --appendonly yes`).
//! A second root file system holds MariaDB 10.11 (what Debian ships as
//! `default-mysql-server`; it speaks MySQL's protocol) as the stand-in of
//! the official `mysql` image: `MYSQL_ROOT_PASSWORD`, `MYSQL_DATABASE`,
//! `MYSQL_USER` and `MYSQL_PASSWORD` on first start, data in
//! `/var/lib/mysql`, port 3306 on every address.

use std::path::Path;
use std::process::Command;

/// Stands in for `postgres:16`.
pub const POSTGRES_IMAGE: &str = "skypanel-test/postgres:2";
/// Stands in for `redis:7`.
pub const REDIS_IMAGE: &str = "skypanel-test/redis:2";
/// An application with PostgreSQL's client: `GET /cgi-bin/visit` inserts a
/// row through `DATABASE_URL` and answers how many rows there are.
pub const PG_APP_IMAGE: &str = "skypanel-test/pg-app:1";
/// The imported root file system all three are made of.
const BASE_IMAGE: &str = "skypanel-test/engines:2";
/// Stands in for `mysql:8` (MariaDB from Debian's packages).
pub const MYSQL_IMAGE: &str = "skypanel-test/mysql:1";
/// An application with MySQL's client: `GET /cgi-bin/visit` inserts a row
/// through `DATABASE_URL` (a `mysql://` URL taken apart in shell) and
/// answers how many rows there are.
pub const MYSQL_APP_IMAGE: &str = "skypanel-test/mysql-app:1";

/// The MySQL application's one page: the URL's parts by shell expansion,
/// the password in `MYSQL_PWD` (never an argument).
const MYSQL_VISIT_CGI: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
rest=${DATABASE_URL#mysql://}
credentials=${rest%%@*}
address=${rest#*@}
database=${address#*/}
address=${address%%/*}
MYSQL_PWD=${credentials#*:} mariadb -h "${address%%:*}" -P "${address##*:}" \
    -u "${credentials%%:*}" -N -B "$database" -e \
    "CREATE TABLE IF NOT EXISTS visits (id int AUTO_INCREMENT PRIMARY KEY, at timestamp DEFAULT CURRENT_TIMESTAMP);
     INSERT INTO visits () VALUES ();
     SELECT count(*) FROM visits" 2>&1 | tail -n 1
"#;

/// The application's one page.
const VISIT_CGI: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
psql "$DATABASE_URL" -tA -v ON_ERROR_STOP=1 \
    -c "CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, at timestamptz DEFAULT now())" \
    -c "INSERT INTO visits DEFAULT VALUES" \
    -c "SELECT count(*) FROM visits" 2>&1 | tail -n 1
"#;

/// The entry point: what the official images do, in a few lines of shell.
const ENTRYPOINT: &str = r#"#!/bin/sh
set -eu
case "${1:-postgres}" in
redis-server)
    mkdir -p /data && cd /data
    exec "$@"
    ;;
postgres)
    PGDATA=${PGDATA:-/var/lib/postgresql/data}
    BIN=/usr/lib/postgresql/15/bin
    as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
    mkdir -p "$PGDATA" /run/postgresql
    chown -R postgres:postgres "$PGDATA" /run/postgresql
    chmod 700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
        user=${POSTGRES_USER:-postgres}
        db=${POSTGRES_DB:-$user}
        printf '%s\n' "$POSTGRES_PASSWORD" > /run/postgresql/pw
        chown postgres /run/postgresql/pw
        as_postgres "$BIN/initdb" -D "$PGDATA" -U "$user" --pwfile=/run/postgresql/pw \
            --auth-local=trust --auth-host=scram-sha-256 >/dev/null
        rm -f /run/postgresql/pw
        echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
        if [ "$db" != postgres ]; then
            as_postgres "$BIN/postgres" --single -D "$PGDATA" postgres \
                <<EOF >/dev/null
CREATE DATABASE "$db" OWNER "$user";
EOF
        fi
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups \
        "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*'
    ;;
*)
    exec "$@"
    ;;
esac
"#;

/// The MySQL stand-in's entry point: what the official image does on a
/// first start (a temporary server on a socket only, the accounts made
/// through it, the password never an argument), then `mariadbd` as its
/// own user on every address.
const MYSQL_ENTRYPOINT: &str = r#"#!/bin/sh
set -eu
case "${1:-mysqld}" in
mysqld|mariadbd)
    DATADIR=/var/lib/mysql
    as_mysql() { setpriv --reuid=mysql --regid=mysql --init-groups "$@"; }
    mkdir -p "$DATADIR" /run/mysqld
    chown -R mysql:mysql "$DATADIR" /run/mysqld
    if [ ! -d "$DATADIR/mysql" ]; then
        : "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD must be set}"
        as_mysql mariadb-install-db --datadir="$DATADIR" --skip-test-db \
            --auth-root-authentication-method=normal >/dev/null
        as_mysql mariadbd --datadir="$DATADIR" --skip-networking \
            --socket=/run/mysqld/init.sock &
        i=0
        until mariadb-admin --socket=/run/mysqld/init.sock -uroot ping >/dev/null 2>&1; do
            i=$((i + 1))
            [ "$i" -lt 300 ] || { echo "mariadbd did not start" >&2; exit 1; }
            sleep 0.1
        done
        quote() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
        say() { printf '%s\n' "$1"; }
        root=$(quote "$MYSQL_ROOT_PASSWORD")
        {
            say "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');"
            say "FLUSH PRIVILEGES;"
            say "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root';"
            say "CREATE USER 'root'@'%' IDENTIFIED BY '$root';"
            say "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
            if [ -n "${MYSQL_DATABASE:-}" ]; then
                say "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"
            fi
            if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
                say "CREATE USER '$MYSQL_USER'@'%' IDENTIFIED BY '$(quote "$MYSQL_PASSWORD")';"
                if [ -n "${MYSQL_DATABASE:-}" ]; then
                    say "GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'%';"
                fi
            fi
        } | mariadb --socket=/run/mysqld/init.sock -uroot
        MYSQL_PWD=$MYSQL_ROOT_PASSWORD mariadb-admin --socket=/run/mysqld/init.sock -uroot shutdown
        wait
    fi
    if [ "$#" -gt 0 ]; then shift; fi
    exec setpriv --reuid=mysql --regid=mysql --init-groups \
        mariadbd --datadir="$DATADIR" --bind-address=0.0.0.0 "$@"
    ;;
*)
    exec "$@"
    ;;
esac
"#;

/// Points the platform's engine of `db_type` and `version` at a local image.
pub async fn local_engine(stack: &super::Stack, db_type: &str, version: &str, image: &str) {
    let engines = stack
        .get("/api/admin/paas/database-engines", &stack.admin)
        .await;
    let id = engines
        .as_array()
        .expect("a list of engines")
        .iter()
        .find(|e| e["db_type"] == db_type && e["version"] == version)
        .and_then(|e| e["id"].as_i64())
        .expect("the engine is seeded");
    let (status, body) = stack
        .call(
            reqwest::Method::PUT,
            &format!("/api/admin/paas/database-engines/{id}"),
            &stack.admin,
            Some(serde_json::json!({ "image": image })),
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
}

/// A plan with room for a database engine.
pub async fn database_plan(stack: &super::Stack) -> i64 {
    let body = serde_json::json!({"name": "db-small", "cpu_limit": 500, "memory_limit": 512, "storage_limit": 1000,
                      "monthly_price": "7.00", "hourly_rate": "0.0100"});
    let (status, plan) = stack
        .post("/api/admin/paas/plans", &stack.admin, body)
        .await;
    assert_eq!(status, 201, "{plan:#}");
    plan["id"].as_i64().expect("the plan's id")
}

/// Creates a database and waits until it runs; answers its id and connection URL.
pub async fn running_database(
    stack: &super::Stack,
    token: &str,
    plan: i64,
    name: &str,
    db_type: &str,
    version: &str,
) -> (i64, String) {
    let body = serde_json::json!({"name": name, "db_type": db_type, "version": version, "plan_id": plan, "region": "local"});
    let (status, created) = stack.post("/api/paas/databases", token, body).await;
    assert_eq!(status, 201, "{created:#}");
    let id = created["id"].as_i64().unwrap();
    let path = format!("/api/paas/databases/{id}");
    stack
        .until(120, "the database runs", || async {
            let db = stack.get(&path, token).await;
            assert_ne!(db["status"], "failed", "{db:#}");
            db["status"] == "running"
        })
        .await;
    let db = stack.get(&path, token).await;
    (id, db["connection"]["url"].as_str().unwrap().to_string())
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI")
}

fn exists(tag: &str) -> bool {
    docker(&["image", "inspect", tag]).status.success()
}

/// The Debian mirror apt uses here.
fn mirror() -> String {
    std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("URIs:").map(|u| u.trim().to_string()))
        })
        .and_then(|uris| uris.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

/// Builds the PostgreSQL and Redis images unless they exist (about a
/// minute, once per machine; test processes running at once build them once).
pub fn ensure_engine_images() {
    let ready = || exists(POSTGRES_IMAGE) && exists(REDIS_IMAGE) && exists(PG_APP_IMAGE);
    once("skypanel-test-engines.lock", ready, || {
        if !exists(BASE_IMAGE) {
            import_root(
                BASE_IMAGE,
                "postgresql-15,postgresql-client-15,redis-server,redis-tools,busybox",
                ENTRYPOINT,
                "postgres",
                "/usr/lib/postgresql/15/bin:",
                |_| {},
            );
        }
        for tag in [POSTGRES_IMAGE, REDIS_IMAGE] {
            assert!(docker(&["tag", BASE_IMAGE, tag]).status.success());
        }
        build_app(PG_APP_IMAGE, BASE_IMAGE, VISIT_CGI);
    });
}

/// Builds the MySQL stand-in and its application image unless they exist
/// (about a minute and a half, once per machine).
pub fn ensure_mysql_images() {
    let ready = || exists(MYSQL_IMAGE) && exists(MYSQL_APP_IMAGE);
    once("skypanel-test-mysql.lock", ready, || {
        if !exists(MYSQL_IMAGE) {
            import_root(
                MYSQL_IMAGE,
                "mariadb-server,mariadb-client,busybox",
                MYSQL_ENTRYPOINT,
                "mysqld",
                "",
                |root| {
                    // The package's own first start left a data folder
                    // (root by socket only): a new volume would be seeded
                    // with it, and the entry point would never set one up.
                    let data = root.join("var/lib/mysql");
                    let _ = std::fs::remove_dir_all(&data);
                    std::fs::create_dir_all(&data).expect("an empty data folder");
                    for docs in ["usr/share/doc", "usr/share/man", "usr/share/locale"] {
                        let _ = std::fs::remove_dir_all(root.join(docs));
                    }
                },
            );
        }
        build_app(MYSQL_APP_IMAGE, MYSQL_IMAGE, MYSQL_VISIT_CGI);
    });
}

/// Runs `build` unless `ready`, once among test processes running at once:
/// a folder in the temporary directory is the lock, and a stale one (a
/// process killed while building) is taken over after 10 minutes.
fn once(lock: &str, ready: impl Fn() -> bool, build: impl FnOnce()) {
    if ready() {
        return;
    }
    let lock = std::env::temp_dir().join(lock);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::fs::create_dir(&lock).is_err() {
        if ready() {
            return;
        }
        if std::time::Instant::now() > deadline {
            let _ = std::fs::remove_dir(&lock);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    struct Unlock(std::path::PathBuf);
    impl Drop for Unlock {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unlock = Unlock(lock);
    if !ready() {
        build();
    }
}

/// `debootstrap`s Debian 12 with `packages`, writes the entry point, lets
/// `prepare` change the tree, and imports it as `tag` with `cmd` as its
/// command (`path` goes before the usual `PATH`).
fn import_root(
    tag: &str,
    packages: &str,
    entrypoint: &str,
    cmd: &str,
    path: &str,
    prepare: impl FnOnce(&Path),
) {
    let root = std::env::temp_dir().join(format!(
        "skypanel-engines-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={packages}"),
            "bookworm",
        ])
        .arg(&root)
        .arg(mirror())
        .output()
        .expect("debootstrap (apt-get install debootstrap)");
    assert!(
        out.status.success(),
        "debootstrap failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    write_entrypoint(&root, entrypoint);
    prepare(&root);
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | docker import \
             --change 'ENTRYPOINT [\"/usr/local/bin/docker-entrypoint.sh\"]' \
             --change 'CMD [\"{cmd}\"]' \
             --change 'ENV PATH={path}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
             - {tag}",
            root.display()
        ))
        .status()
        .expect("run docker import");
    let _ = std::fs::remove_dir_all(&root);
    assert!(status.success(), "cannot import {tag}");
}

/// An application image on `base`: busybox's httpd serving `cgi` as
/// `/cgi-bin/visit` on $PORT.
fn build_app(tag: &str, base: &str, cgi: &str) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("skypanel-app-{}", uuid::Uuid::new_v4().simple()));
    let page = dir.join("www/cgi-bin/visit");
    std::fs::create_dir_all(page.parent().expect("a folder")).expect("create the folder");
    std::fs::write(&page, cgi).expect("write the page");
    std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.join("www/index.html"), "app\n").expect("write the index");
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {base}\nCOPY www /www\nENTRYPOINT []\n\
             CMD [\"/bin/sh\", \"-c\", \"exec busybox httpd -f -p ${{PORT:-8080}} -h /www\"]\n"
        ),
    )
    .expect("write the Dockerfile");
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(&dir)
        .output()
        .expect("run docker build");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "cannot build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_entrypoint(root: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join("usr/local/bin/docker-entrypoint.sh");
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("create the folder");
    std::fs::write(&path, script).expect("write the entry point");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("make the entry point executable");
}
