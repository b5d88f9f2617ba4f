//! Managed databases on the wire: what a node is asked to run, and how each
//! engine is started the way its official image expects (environment,
//! command, port, data folder). Shared by the control plane (connection
//! details) and the agent (containers).

use serde::{Deserialize, Serialize};

/// Run (or keep running) one database on the node.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct DatabaseSpec {
    pub database_id: i64,
    pub user_id: i64,
    /// `postgresql`, `mysql`, `redis` or `mongodb`.
    pub db_type: String,
    pub image: String,
    pub username: String,
    pub database_name: String,
    /// Secret: travels sealed with the task, empty in stored payloads.
    #[serde(default)]
    pub password: String,
    pub cpu_millicores: i32,
    pub memory_mb: i32,
    pub pids_limit: i32,
    /// The data it starts with: a move's dump, fetched from the control
    /// plane and restored before the database counts as running.
    #[serde(default)]
    pub import: Option<ImportSpec>,
}

/// A moving database's dump that a provisioning restores: fetched from the
/// control plane at [`move_dump_path`] and checked against its SHA-256.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ImportSpec {
    pub move_id: i64,
    pub size_bytes: i64,
    /// Lowercase hex.
    pub sha256: String,
}

/// Dump a database that moves to another node and hand the dump to the
/// control plane (a PUT to [`move_dump_path`]): its customer's network is
/// cut off from it first (so nothing writes after the dump begins), and it
/// is stopped once the dump is handed over (its data stays until the move
/// succeeds). A failure puts it back as it was. The result is the dump's
/// size and SHA-256, as a backup's (`backup_id` is the move's id).
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ExportSpec {
    pub database_id: i64,
    pub user_id: i64,
    pub db_type: String,
    pub move_id: i64,
    pub username: String,
    pub database_name: String,
    /// Secret: travels sealed with the task, empty in stored payloads.
    #[serde(default)]
    pub password: String,
}

impl std::fmt::Debug for ExportSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportSpec")
            .field("database_id", &self.database_id)
            .field("move_id", &self.move_id)
            .finish_non_exhaustive()
    }
}

/// Where a move's dump is handed to (PUT, by the node the database leaves)
/// and fetched from (GET, by the node it goes to) on the control plane.
pub fn move_dump_path(move_id: i64) -> String {
    format!("/api/internal/paas/database-moves/{move_id}/dump")
}

impl std::fmt::Debug for DatabaseSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSpec")
            .field("database_id", &self.database_id)
            .field("db_type", &self.db_type)
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

/// A database by identity, to remove it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct DatabaseTarget {
    pub database_id: i64,
    pub user_id: i64,
    /// Remove its data volume too (otherwise it is kept).
    pub purge: bool,
}

/// Dump a database with its engine's own tool, inside its container, into
/// a file on the node; then remove the node's other dumps of it but `keep`.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct BackupSpec {
    pub database_id: i64,
    pub user_id: i64,
    pub db_type: String,
    pub backup_id: i64,
    pub username: String,
    pub database_name: String,
    /// Secret: travels sealed with the task, empty in stored payloads.
    #[serde(default)]
    pub password: String,
    /// The earlier backups whose dumps stay (the retention); the node removes
    /// the others once this one is written.
    #[serde(default)]
    pub keep: Vec<i64>,
}

impl std::fmt::Debug for BackupSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupSpec")
            .field("database_id", &self.database_id)
            .field("backup_id", &self.backup_id)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

/// Restore a database from one of its dumps on the node, after checking
/// the dump's SHA-256.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RestoreSpec {
    pub database_id: i64,
    pub user_id: i64,
    pub db_type: String,
    pub restore_id: i64,
    pub backup_id: i64,
    pub sha256: String,
    pub username: String,
    pub database_name: String,
    /// Secret: travels sealed with the task, empty in stored payloads.
    #[serde(default)]
    pub password: String,
}

impl std::fmt::Debug for RestoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreSpec")
            .field("database_id", &self.database_id)
            .field("restore_id", &self.restore_id)
            .field("backup_id", &self.backup_id)
            .finish_non_exhaustive()
    }
}

/// What a finished backup tells the control plane.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct BackupResult {
    pub backup_id: i64,
    pub size_bytes: i64,
    /// Lowercase hex.
    pub sha256: String,
}

/// How an engine's data is dumped and put back, with its own tools run
/// inside its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpTool {
    /// Writes the dump to standard output.
    pub dump: Vec<String>,
    /// How a dump goes back in.
    pub restore: RestoreBy,
    /// The environment both run with (the password, where the tool reads it there).
    pub env: Vec<(String, String)>,
}

/// How a dump goes back into its engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreBy {
    /// This command reads the dump on standard input.
    Stdin(Vec<String>),
    /// Redis: the engine is stopped, the dump becomes its data file (and
    /// the base of a fresh append-only file), and it is started again.
    RedisData,
}

/// The variable that carries the MongoDB tools' config (their password).
const MONGO_CONFIG_VAR: &str = "SKYPANEL_MONGO_TOOL_CONFIG";

/// Runs `$0 "$@"` with `--config` naming a here-document of the config in
/// [`MONGO_CONFIG_VAR`].
const MONGO_WITH_CONFIG: &str = "exec \"$0\" \"$@\" --config /dev/fd/3 3<<SKYPANEL_EOF\n${SKYPANEL_MONGO_TOOL_CONFIG}\nSKYPANEL_EOF\n";

/// `text` as a single-quoted YAML scalar.
fn yaml_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The dump tool of a database type; `None` for a type the platform does not run.
pub fn dump_tool(db_type: &str, user: &str, password: &str, database: &str) -> Option<DumpTool> {
    let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let env = |k: &str| vec![(k.to_string(), password.to_string())];
    Some(match db_type {
        // A plain SQL dump that drops what it recreates; restored in one
        // transaction, so a failing restore changes nothing.
        "postgresql" => DumpTool {
            dump: args(&[
                "pg_dump",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "-U",
                user,
                "-d",
                database,
            ]),
            restore: RestoreBy::Stdin(args(&[
                "psql",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-U",
                user,
                "-d",
                database,
            ])),
            env: env("PGPASSWORD"),
        },
        "mysql" => DumpTool {
            dump: args(&[
                "mysqldump",
                "-uroot",
                "--single-transaction",
                "--routines",
                "--triggers",
                "--add-drop-table",
                database,
            ]),
            restore: RestoreBy::Stdin(args(&["mysql", "-uroot", database])),
            env: env("MYSQL_PWD"),
        },
        "redis" => DumpTool {
            dump: args(&["redis-cli", "--no-auth-warning", "--rdb", "-"]),
            restore: RestoreBy::RedisData,
            env: env("REDISCLI_AUTH"),
        },
        // mongodump and mongorestore read a password only from their
        // command line (which any process list shows) or a config file:
        // the file is a here-document on descriptor 3, written by the
        // container's shell from the environment, so it never touches a
        // disk or an argument.
        "mongodb" => {
            let with_password = |tool: &str, rest: &[&str]| {
                let mut command = args(&["sh", "-c", MONGO_WITH_CONFIG, tool]);
                command.extend(args(&[
                    "--authenticationDatabase",
                    "admin",
                    "--username",
                    user,
                ]));
                command.extend(args(rest));
                command
            };
            DumpTool {
                dump: with_password("mongodump", &["--archive", "--quiet"]),
                restore: RestoreBy::Stdin(with_password(
                    "mongorestore",
                    &["--archive", "--drop", "--quiet"],
                )),
                env: vec![(
                    MONGO_CONFIG_VAR.to_string(),
                    format!("password: {}", yaml_quoted(password)),
                )],
            }
        }
        _ => return None,
    })
}

/// How an engine's official image is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub env: Vec<(String, String)>,
    /// The command, when the image's default is not enough. Never a
    /// secret: every process list on the node shows it.
    pub cmd: Option<Vec<String>>,
    pub port: u16,
    /// Where the image keeps its data (the named volume goes there).
    pub data_dir: &'static str,
    /// Files written into the container before it first starts (a config
    /// holding a password): path and content, readable by the engine only
    /// from inside its container.
    pub files: Vec<(&'static str, String)>,
}

/// Where Redis reads its config (the password) from, inside its container.
pub const REDIS_CONFIG: &str = "/usr/local/etc/redis/skypanel.conf";

/// The port a database type listens on.
pub fn port_of(db_type: &str) -> Option<u16> {
    match db_type {
        "postgresql" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mongodb" => Some(27017),
        _ => None,
    }
}

/// How to start `spec`'s engine; `None` for a type the platform does not run.
pub fn launch(spec: &DatabaseSpec) -> Option<Launch> {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (user, password, name) = (
        spec.username.as_str(),
        spec.password.as_str(),
        spec.database_name.as_str(),
    );
    let port = port_of(&spec.db_type)?;
    Some(match spec.db_type.as_str() {
        "postgresql" => Launch {
            env: env(&[
                ("POSTGRES_USER", user),
                ("POSTGRES_PASSWORD", password),
                ("POSTGRES_DB", name),
            ]),
            cmd: None,
            port,
            data_dir: "/var/lib/postgresql/data",
            files: Vec::new(),
        },
        "mysql" => Launch {
            env: env(&[
                ("MYSQL_ROOT_PASSWORD", password),
                ("MYSQL_DATABASE", name),
                ("MYSQL_USER", user),
                ("MYSQL_PASSWORD", password),
            ]),
            cmd: None,
            port,
            data_dir: "/var/lib/mysql",
            files: Vec::new(),
        },
        // `--requirepass` on the command line would show the password in
        // every process list on the node for as long as Redis runs: it is
        // in a config file instead (Redis' config quoting: a double-quoted
        // string; the generated password is hex anyway).
        "redis" => Launch {
            env: Vec::new(),
            cmd: Some(["redis-server", REDIS_CONFIG].map(String::from).to_vec()),
            port,
            data_dir: "/data",
            files: vec![(
                REDIS_CONFIG,
                format!(
                    "requirepass \"{}\"\nappendonly yes\n",
                    password.replace('\\', "\\\\").replace('"', "\\\"")
                ),
            )],
        },
        "mongodb" => Launch {
            env: env(&[
                ("MONGO_INITDB_ROOT_USERNAME", user),
                ("MONGO_INITDB_ROOT_PASSWORD", password),
                ("MONGO_INITDB_DATABASE", name),
            ]),
            cmd: None,
            port,
            data_dir: "/data/db",
            files: Vec::new(),
        },
        _ => return None,
    })
}

/// How a node measures a database's health inside its container. No
/// secret is an argument: the scripts read the password from the
/// container's own environment or config, where its engine found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthProbe {
    /// Prints the data folder's size in KiB first (`du -sk`).
    pub size: Vec<String>,
    /// Prints one number: the engine's client connections, this probe's
    /// own included. `None` for an engine without a probe.
    pub connections: Option<Vec<String>>,
}

/// The health probe of a database type; `None` for a type the platform does not run.
pub fn health_probe(db_type: &str) -> Option<HealthProbe> {
    let sh = |script: &str| Some(vec!["sh".to_string(), "-c".into(), script.to_string()]);
    let connections = match db_type {
        "postgresql" => sh(
            r#"psql -U "$POSTGRES_USER" -d "${POSTGRES_DB:-$POSTGRES_USER}" -tA -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'""#,
        ),
        "mysql" => sh(
            r#"MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql -uroot -N -B -e "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND <> 'Daemon' AND USER NOT IN ('system user', 'event_scheduler')""#,
        ),
        "redis" => sh(&format!(
            r#"REDISCLI_AUTH="$(sed -n 's/^requirepass "\(.*\)"$/\1/p' {REDIS_CONFIG})" redis-cli --no-auth-warning info clients | sed -n 's/^connected_clients:\([0-9]*\).*/\1/p'"#
        )),
        "mongodb" => None,
        _ => return None,
    };
    let data_dir = match db_type {
        "postgresql" => "/var/lib/postgresql/data",
        "mysql" => "/var/lib/mysql",
        "redis" => "/data",
        _ => "/data/db",
    };
    Some(HealthProbe {
        size: ["du", "-sk", data_dir].map(String::from).to_vec(),
        connections,
    })
}

/// A probe's answer: the size in bytes from `du -sk`'s first number, or
/// the connections other than the probe's own from the one number printed.
pub fn parse_probe(output: &str, size: bool) -> Option<i64> {
    let first: i64 = output.split_whitespace().next()?.parse().ok()?;
    Some(if size {
        first.saturating_mul(1024)
    } else {
        (first - 1).max(0)
    })
}

/// One database's health as its node measured it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct DatabaseHealthReport {
    pub database_id: i64,
    /// Its data folder's size on disk.
    pub size_bytes: Option<i64>,
    /// Client connections to its engine (the probe's own not counted).
    pub connections: Option<i32>,
    pub measured_at: chrono::DateTime<chrono::Utc>,
}

/// How a database is reached: what its owner sees and what a linked
/// application's environment says.
#[derive(Clone, Copy)]
pub struct Connection<'a> {
    pub db_type: &'a str,
    pub host: &'a str,
    pub port: i32,
    pub user: &'a str,
    pub password: &'a str,
    pub database: &'a str,
}

impl Connection<'_> {
    /// One URL in the scheme its engine's clients read.
    pub fn url(&self) -> String {
        let Self {
            host,
            port,
            user,
            password,
            database,
            ..
        } = *self;
        match self.db_type {
            "postgresql" => format!("postgresql://{user}:{password}@{host}:{port}/{database}"),
            "mysql" => format!("mysql://{user}:{password}@{host}:{port}/{database}"),
            // `default` is Redis' own user: clients and redis-cli read it alike.
            "redis" => format!("redis://default:{password}@{host}:{port}/0"),
            _ => format!("mongodb://{user}:{password}@{host}:{port}/{database}?authSource=admin"),
        }
    }

    /// The variables a linked application gets: `<PREFIX>_URL`, `_HOST`,
    /// `_PORT`, `_USER`, `_PASSWORD` and `_NAME`.
    pub fn variables(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            (format!("{prefix}_URL"), self.url()),
            (format!("{prefix}_HOST"), self.host.to_string()),
            (format!("{prefix}_PORT"), self.port.to_string()),
            (format!("{prefix}_USER"), self.user.to_string()),
            (format!("{prefix}_PASSWORD"), self.password.to_string()),
            (format!("{prefix}_NAME"), self.database.to_string()),
        ]
    }
}

/// The prefix of a link's variables when the customer names none.
pub fn default_prefix(db_type: &str) -> &'static str {
    if db_type == "redis" {
        "REDIS"
    } else {
        "DATABASE"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(db_type: &str) -> DatabaseSpec {
        DatabaseSpec {
            database_id: 1,
            user_id: 2,
            db_type: db_type.into(),
            image: "img".into(),
            username: "shop".into(),
            database_name: "shopdb".into(),
            password: "canary-password".into(),
            cpu_millicores: 250,
            memory_mb: 256,
            pids_limit: 256,
            import: None,
        }
    }

    #[test]
    fn each_engine_starts_the_way_its_official_image_expects() {
        let pg = launch(&spec("postgresql")).unwrap();
        assert!(
            pg.env
                .contains(&("POSTGRES_PASSWORD".into(), "canary-password".into()))
        );
        assert_eq!((pg.port, pg.data_dir), (5432, "/var/lib/postgresql/data"));
        let redis = launch(&spec("redis")).unwrap();
        // The password is in a config file, never on the command line.
        assert_eq!(redis.cmd.unwrap(), ["redis-server", REDIS_CONFIG]);
        assert_eq!(
            redis.files,
            [(
                REDIS_CONFIG,
                "requirepass \"canary-password\"\nappendonly yes\n".to_string()
            )]
        );
        let mysql = launch(&spec("mysql")).unwrap();
        assert!(mysql.env.iter().any(|(k, _)| k == "MYSQL_ROOT_PASSWORD"));
        let mongo = launch(&spec("mongodb")).unwrap();
        assert!(
            mongo
                .env
                .iter()
                .any(|(k, _)| k == "MONGO_INITDB_ROOT_PASSWORD")
        );
        assert!(launch(&spec("oracle")).is_none());
        assert!(!format!("{:?}", spec("redis")).contains("canary"));
    }

    #[test]
    fn a_link_gives_url_host_port_user_password_and_name() {
        let c = Connection {
            db_type: "postgresql",
            host: "sp-db-7",
            port: 5432,
            user: "u1",
            password: "pw",
            database: "shop",
        };
        let vars = c.variables("DATABASE");
        assert_eq!(
            vars[0],
            (
                "DATABASE_URL".into(),
                "postgresql://u1:pw@sp-db-7:5432/shop".into()
            )
        );
        let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "DATABASE_URL",
                "DATABASE_HOST",
                "DATABASE_PORT",
                "DATABASE_USER",
                "DATABASE_PASSWORD",
                "DATABASE_NAME"
            ]
        );
        let redis = Connection {
            db_type: "redis",
            port: 6379,
            ..c
        };
        assert_eq!(redis.url(), "redis://default:pw@sp-db-7:6379/0");
        assert_eq!(default_prefix("redis"), "REDIS");
        assert_eq!(default_prefix("mysql"), "DATABASE");
    }

    #[test]
    fn every_engine_dumps_to_stdout_with_its_own_tool() {
        let pg = dump_tool("postgresql", "u1", "canary-password", "shop").unwrap();
        assert_eq!(pg.dump[0], "pg_dump");
        assert!(!pg.dump.iter().any(|a| a.contains("canary")));
        assert_eq!(pg.env, [("PGPASSWORD".into(), "canary-password".into())]);
        assert!(
            matches!(pg.restore, RestoreBy::Stdin(ref c) if c[0] == "psql" && c.contains(&"--single-transaction".to_string()))
        );
        let redis = dump_tool("redis", "default", "pw", "0").unwrap();
        assert_eq!(redis.dump, ["redis-cli", "--no-auth-warning", "--rdb", "-"]);
        assert_eq!(redis.restore, RestoreBy::RedisData);
        assert_eq!(
            dump_tool("mysql", "u", "pw", "shop").unwrap().dump[0],
            "mysqldump"
        );
        assert!(dump_tool("oracle", "u", "pw", "shop").is_none());
    }

    #[test]
    fn health_probes_read_no_secret_from_their_arguments_and_parse_what_engines_print() {
        for db_type in ["postgresql", "mysql", "redis", "mongodb"] {
            let probe = health_probe(db_type).unwrap();
            let launch = launch(&spec(db_type)).unwrap();
            assert_eq!(probe.size[2], launch.data_dir, "{db_type}");
            for command in std::iter::once(&probe.size).chain(probe.connections.as_ref()) {
                assert!(!command.iter().any(|a| a.contains("canary")), "{command:?}");
            }
        }
        assert!(health_probe("mongodb").unwrap().connections.is_none());
        assert!(health_probe("oracle").is_none());
        assert_eq!(
            parse_probe("2048	/var/lib/mysql\n", true),
            Some(2048 * 1024)
        );
        assert_eq!(parse_probe("3\n", false), Some(2));
        assert_eq!(parse_probe("1", false), Some(0));
        assert_eq!(parse_probe("", false), None);
        assert_eq!(parse_probe("ERROR 1045", false), None);
        // The Redis probe finds the password where the launch put it.
        let redis = health_probe("redis").unwrap().connections.unwrap();
        let config = &launch(&spec("redis")).unwrap().files[0];
        assert!(redis[2].contains(config.0));
        let dir = std::env::temp_dir().join(format!("skypanel-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("skypanel.conf");
        std::fs::write(&file, &config.1).unwrap();
        let extract = redis[2]
            .split(" redis-cli")
            .next()
            .unwrap()
            .replace(REDIS_CONFIG, &file.to_string_lossy())
            + r#" sh -c 'printf %s "$REDISCLI_AUTH"'"#;
        let out = std::process::Command::new("sh")
            .args(["-c", &extract])
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "canary-password");
    }

    #[test]
    fn mongodb_tools_get_their_password_in_a_config_on_a_descriptor_never_an_argument() {
        let mongo = dump_tool("mongodb", "u1", "canary-pass'word", "shop").unwrap();
        let RestoreBy::Stdin(restore) = &mongo.restore else {
            panic!("mongorestore reads the archive on stdin");
        };
        for command in [&mongo.dump, restore] {
            assert!(!command.iter().any(|a| a.contains("canary")), "{command:?}");
            assert!(!command.iter().any(|a| a == "--password"), "{command:?}");
        }
        assert_eq!(mongo.dump[3], "mongodump");
        assert_eq!(restore[3], "mongorestore");
        // The container's shell hands the tool a config it reads from a
        // descriptor: here the "tool" is a shell that prints what it got.
        let mut command = mongo.dump.clone();
        command.splice(
            3..4,
            [
                "sh".to_string(),
                "-c".into(),
                r#"for a; do last=$a; done; printf '%s|' "$@"; cat "$last""#.into(),
                "tool".into(),
            ],
        );
        let out = std::process::Command::new(&command[0])
            .args(&command[1..])
            .envs(mongo.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "--authenticationDatabase|admin|--username|u1|--archive|--quiet|--config|/dev/fd/3|\
             password: 'canary-pass''word'\n"
        );
    }
}
