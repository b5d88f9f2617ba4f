//! Test databases: each test gets a fresh database cloned from a migrated
//! template, so tests run in parallel against a real PostgreSQL.
//!
//! The server comes from `SKYPANEL_TEST_DATABASE_URL` (a role allowed to create
//! databases; `./ops/test` sets it). The template is named by a digest of the
//! migrations, so a changed migration gets a new template, and it is built once
//! under an advisory lock however many test processes start at the same time.

use std::path::Path;

use diesel::sql_types::Text;
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};

const TEMPLATE_LOCK_KEY: i64 = 0x5359_5041_4e45_4c01;

/// A database that exists for one test and is dropped with this value.
pub struct TestDb {
    pub url: String,
    name: String,
    server_url: String,
}

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    present: bool,
}

impl TestDb {
    /// Clones a fresh database from the migrated template.
    pub async fn new() -> Self {
        let server_url = server_url();
        let template = ensure_template(&server_url).await;
        Self::create(server_url, &format!("TEMPLATE {template}")).await
    }

    /// Clones a fresh database from the migrated template on another server
    /// (one a fault test stops and starts), given a URL of a role there that
    /// may create databases.
    pub async fn on_server(server_url: &str) -> Self {
        let template = ensure_template(server_url).await;
        Self::create(server_url.to_string(), &format!("TEMPLATE {template}")).await
    }

    /// A fresh database without any table, for tests of migrating itself.
    pub async fn empty() -> Self {
        Self::create(server_url(), "").await
    }

    async fn create(server_url: String, options: &str) -> Self {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = connect(&server_url).await;
        sql_query(format!("CREATE DATABASE {name} {options}"))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        Self {
            url: replace_database(&server_url, &name),
            name,
            server_url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // Drop may run inside an async runtime: do the work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(mut conn) = AsyncPgConnection::establish(&server_url).await {
                        let _ = sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

fn server_url() -> String {
    std::env::var("SKYPANEL_TEST_DATABASE_URL").expect(
        "SKYPANEL_TEST_DATABASE_URL is not set: run the tests through ./ops/test, \
         or point it at a PostgreSQL role that may create databases",
    )
}

async fn connect(url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"))
}

/// Creates the template for the current migrations if it does not exist yet.
async fn ensure_template(server_url: &str) -> String {
    let template = format!("skypanel_tpl_{}", migrations_digest());
    let mut conn = connect(server_url).await;
    sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"))
        .execute(&mut conn)
        .await
        .expect("take the template lock");
    let existing: Present =
        sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS present")
            .bind::<Text, _>(&template)
            .get_result(&mut conn)
            .await
            .expect("look for the template");
    if !existing.present {
        let building = format!("{template}_building");
        sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .expect("drop a half-built template");
        sql_query(format!("CREATE DATABASE {building}"))
            .execute(&mut conn)
            .await
            .expect("create the template database");
        crate::run_migrations(&replace_database(server_url, &building))
            .await
            .expect("migrate the template database");
        sql_query(format!("ALTER DATABASE {building} RENAME TO {template}"))
            .execute(&mut conn)
            .await
            .expect("publish the template database");
    }
    sql_query(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"))
        .execute(&mut conn)
        .await
        .expect("release the template lock");
    template
}

/// A short digest of every migration file, in order.
fn migrations_digest() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut entries: Vec<_> = walk(&dir);
    entries.sort();
    let mut hasher = Sha256::new();
    for path in entries {
        hasher.update(
            path.strip_prefix(&dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .as_bytes(),
        );
        hasher.update(std::fs::read(&path).expect("read a migration file"));
    }
    hex::encode(&hasher.finalize()[..8])
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("read the migrations folder")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// `postgres://u:p@h:5432/db?x` with the database replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let prefix = &base[..path_start];
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn database_in_url_is_replaced() {
        assert_eq!(
            replace_database("postgres://u:p@h:5432/postgres", "t_1"),
            "postgres://u:p@h:5432/t_1"
        );
        assert_eq!(
            replace_database("postgres://u:p@h:5432", "t_1"),
            "postgres://u:p@h:5432/t_1"
        );
        assert_eq!(
            replace_database("postgres://h/db?sslmode=disable", "t"),
            "postgres://h/t?sslmode=disable"
        );
    }
}
