//! What each `sky` command does, through the public API. Applications and
//! databases are named by name or id; a plan or region may be left out when
//! the platform offers only one.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Api, CliError};
use crate::config::{self, Credentials};
use crate::output::{self, Spinner};
use crate::{Cli, Command};

/// How long `sky deploy` waits for the release to run after its build.
const ROLLOUT_WAIT: Duration = Duration::from_secs(300);
/// How long `sky db:backup` and `db:restore` wait.
const DATABASE_WAIT: Duration = Duration::from_secs(3600);

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let json = cli.json;
    if let Command::Login {
        api,
        email,
        password,
        token,
    } = cli.command
    {
        return login(&api, email, password, token, json).await;
    }
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        clap_complete::generate(shell, &mut Cli::command(), "sky", &mut std::io::stdout());
        return Ok(());
    }
    if let Command::Logout = cli.command {
        return logout(json).await;
    }
    let saved = config::load()?;
    if let Command::GitCredential { operation } = &cli.command {
        return git_credential(&saved, operation);
    }
    let api = Api::new(&saved.api, Some(saved.token.clone()));
    let ctx = Ctx { api, json };
    match cli.command {
        Command::Login { .. } | Command::Logout | Command::Completions { .. } => Ok(()),
        Command::Apps => ctx.apps().await,
        Command::AppsCreate {
            name,
            plan,
            region,
            git,
            branch,
            image,
            github,
            port,
        } => {
            let plan = ctx.plan(plan).await?;
            let region = ctx.region(region).await?;
            let body = json!({"name": name, "plan_id": plan, "region": region, "git_repo_url": git,
                              "git_branch": branch, "image": image, "port": port,
                              "github_repository": github});
            let app = ctx
                .api
                .post("/paas/applications", &without_nulls(body))
                .await?;
            ctx.show(&app, |a| {
                println!(
                    "Created {} (id {}): {}",
                    a["name"].as_str().unwrap_or(""),
                    a["id"],
                    output::text(&a["url"])
                );
            })
        }
        Command::GithubConnect => {
            let answer = ctx.api.get("/paas/github/authorize").await?;
            ctx.show(&answer, |a| {
                println!(
                    "Open this link to install the GitHub App and choose its repositories (it works once, for 10 minutes):"
                );
                println!("{}", output::text(&a["url"]));
            })
        }
        Command::GithubRepos { installation, page } => {
            let mut path = format!("/paas/github/repositories?page={page}&per_page=100");
            if let Some(installation) = installation {
                path.push_str(&format!("&installation_id={installation}"));
            }
            let answer = ctx.api.get(&path).await?;
            ctx.show(&answer, |a| {
                output::table(
                    &["repository", "private", "default branch"],
                    array(&a["repositories"]),
                    &["full_name", "private", "default_branch"],
                );
                if let Some(next) = a["next_page"].as_u64() {
                    println!("more: sky github:repos --page {next}");
                }
            })
        }
        Command::GitCredential { .. } => Ok(()),
        Command::GitRemote { app, remote } => ctx.git_remote(&saved, &app, &remote).await,
        Command::GithubBranches { repository } => {
            let parts: Vec<&str> = repository.split('/').collect();
            let plain = |p: &str| {
                !p.is_empty()
                    && p != "."
                    && p != ".."
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            };
            if parts.len() != 2 || !parts.iter().all(|p| plain(p)) {
                return Err(CliError::Usage(format!(
                    "{repository} is not a GitHub repository; name it owner/name"
                )));
            }
            let answer = ctx
                .api
                .get(&format!(
                    "/paas/github/repositories/{repository}/branches?per_page=100"
                ))
                .await?;
            ctx.show(&answer, |a| {
                output::table(
                    &["branch", "commit"],
                    array(&a["branches"]),
                    &["name", "commit_sha"],
                );
            })
        }
        Command::AppsInfo { app } => {
            let id = ctx.app_id(&app).await?;
            let app = ctx.api.get(&format!("/paas/applications/{id}")).await?;
            ctx.show(&app, |a| {
                output::fields(
                    a,
                    &[
                        "id",
                        "name",
                        "status",
                        "url",
                        "region",
                        "plan_id",
                        "instance_count",
                        "git_repo_url",
                        "git_branch",
                        "image",
                        "port",
                        "node_id",
                        "last_error",
                        "created_at",
                    ],
                );
            })
        }
        Command::AppsDestroy { app, confirm } => {
            let id = ctx.app_id(&app).await?;
            confirmed(&app, confirm, "the application")?;
            ctx.api
                .call(Method::DELETE, &format!("/paas/applications/{id}"), None)
                .await?;
            ctx.done(&format!("Deleting {app}."))
        }
        Command::Plans => {
            let plans = ctx.api.get("/paas/plans").await?;
            ctx.show(&plans, |p| {
                output::table(
                    &["id", "name", "cpu", "memory", "monthly", "hourly"],
                    array(p),
                    &[
                        "id",
                        "name",
                        "cpu_limit",
                        "memory_limit",
                        "monthly_price",
                        "hourly_rate",
                    ],
                );
            })
        }
        Command::Deploy { app } => ctx.deploy(&app).await,
        Command::Logs { app, tail, lines } => ctx.logs(&app, tail, lines).await,
        Command::EnvSet { app, pairs } => ctx.env_set(&app, &pairs).await,
        Command::EnvUnset { app, keys } => {
            let body = json!({"unset": keys});
            ctx.env_change(&app, &body, &format!("Removed {}", keys.join(", ")))
                .await
        }
        Command::EnvList { app } => {
            let id = ctx.app_id(&app).await?;
            let vars = ctx.api.get(&format!("/paas/applications/{id}/env")).await?;
            ctx.show(&vars, |v| {
                for var in array(v) {
                    println!(
                        "{}={}",
                        output::text(&var["key"]),
                        output::text(&var["value"])
                    );
                }
            })
        }
        Command::Scale { app, instances } => {
            ctx.command(
                &app,
                "scale",
                json!({"instance_count": instances}),
                &format!("Scaling {app} to {instances}."),
            )
            .await
        }
        Command::Ps { app } => ctx.ps(&app).await,
        Command::Whoami => {
            let me = ctx.api.get("/auth/me").await?;
            ctx.show(&me, |me| println!("{}", output::text(&me["email"])))
        }
        Command::Open { app } => {
            let id = ctx.app_id(&app).await?;
            let shown = ctx.api.get(&format!("/paas/applications/{id}")).await?;
            let url = output::text(&shown["url"]);
            if url.is_empty() {
                return Err(CliError::Failed(format!("{app} has no address yet")));
            }
            if !ctx.json && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                // The desktop's browser, when there is one; the address either way.
                let _ = std::process::Command::new("xdg-open")
                    .arg(&url)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
            }
            ctx.show(&json!({"url": url}), |u| {
                println!("{}", output::text(&u["url"]))
            })
        }
        Command::ConfigGet { app, key } => {
            let id = ctx.app_id(&app).await?;
            let var = ctx
                .api
                .get(&format!("/paas/applications/{id}/env/{key}?reveal=true"))
                .await?;
            ctx.show(&var, |v| println!("{}", output::text(&v["value"])))
        }
        Command::DomainsRemove { app, hostname } => {
            let id = ctx.app_id(&app).await?;
            ctx.api
                .call(
                    Method::DELETE,
                    &format!("/paas/applications/{id}/domains/{hostname}"),
                    None,
                )
                .await?;
            ctx.done(&format!("Removed {hostname} from {app}."))
        }
        Command::DbUnlink { db, app } => {
            let db_id = ctx.database_id(&db).await?;
            let id = ctx.app_id(&app).await?;
            ctx.api
                .call(
                    Method::DELETE,
                    &format!("/paas/applications/{id}/databases/{db_id}"),
                    None,
                )
                .await?;
            ctx.done(&format!(
                "Unlinked {db} from {app}; {app} is rolled out without its variables."
            ))
        }
        Command::DbDelete { db, confirm, purge } => {
            let id = ctx.database_id(&db).await?;
            confirmed(&db, confirm, "the database")?;
            ctx.api
                .call(
                    Method::DELETE,
                    &format!("/paas/databases/{id}?purge={purge}"),
                    None,
                )
                .await?;
            ctx.done(&if purge {
                format!("Deleting {db} and its data.")
            } else {
                format!("Deleting {db}; its data is kept for the retention period.")
            })
        }
        Command::Run {
            app,
            release,
            env,
            ttl,
            no_tty,
            command,
        } => {
            let app_id = ctx.app_id(&app).await?;
            let args = crate::run::RunArgs {
                app_id,
                app: &app,
                command: &command,
                release,
                env: &env,
                ttl,
                no_tty,
            };
            let code = crate::run::attached(&ctx.api, &args).await?;
            use std::io::Write;
            let _ = std::io::stdout().flush();
            // At once: the thread reading standard input would otherwise
            // hold the runtime's shutdown until a key is pressed.
            std::process::exit(code);
        }
        Command::RunDetached {
            app,
            release,
            env,
            ttl,
            command,
        } => {
            let app_id = ctx.app_id(&app).await?;
            let args = crate::run::RunArgs {
                app_id,
                app: &app,
                command: &command,
                release,
                env: &env,
                ttl,
                no_tty: true,
            };
            let run = crate::run::detached(&ctx.api, &args).await?;
            if ctx.json {
                output::json(&run);
            } else {
                println!(
                    "Running {} on {app}... up, {}\nIts output goes to `sky logs {app} --tail`; `sky runs {app}` shows how it ended.",
                    output::text(&run["command"]),
                    output::text(&run["name"])
                );
            }
            Ok(())
        }
        Command::Runs { app } => ctx.runs(&app).await,
        Command::RunStop { app, run } => {
            let id = ctx.app_id(&app).await?;
            let stopped = ctx
                .api
                .post(
                    &format!("/paas/applications/{id}/runs/{run}/stop"),
                    &json!({}),
                )
                .await?;
            if ctx.json {
                output::json(&stopped);
            } else {
                println!("Stopping run.{run} of {app}.");
            }
            Ok(())
        }
        Command::PsScale { app, counts } => ctx.ps_scale(&app, &counts).await,
        Command::Restart { app } => {
            ctx.command(&app, "restart", json!({}), &format!("Restarting {app}."))
                .await
        }
        Command::Stop { app } => {
            ctx.command(&app, "stop", json!({}), &format!("Stopping {app}."))
                .await
        }
        Command::Start { app } => {
            ctx.command(&app, "start", json!({}), &format!("Starting {app}."))
                .await
        }
        Command::Releases { app } => {
            let id = ctx.app_id(&app).await?;
            let releases = ctx
                .api
                .get(&format!("/paas/applications/{id}/releases"))
                .await?;
            ctx.show(&releases, |r| {
                output::table(
                    &["version", "current", "description", "created"],
                    array(r),
                    &["version", "current", "description", "created_at"],
                );
            })
        }
        Command::Rollback { app, version } => {
            let id = ctx.app_id(&app).await?;
            let version = match version {
                Some(v) => v,
                None => {
                    let releases = ctx
                        .api
                        .get(&format!("/paas/applications/{id}/releases"))
                        .await?;
                    let list = array(&releases);
                    let current = list.iter().position(|r| r["current"] == true).unwrap_or(0);
                    list.get(current + 1)
                        .and_then(|r| r["version"].as_i64())
                        .ok_or_else(|| {
                            CliError::Usage(format!("{app} has no release before the current one"))
                        })? as i32
                }
            };
            ctx.command(
                &app,
                "rollback",
                json!({"release": version}),
                &format!("Rolling {app} back to v{version}."),
            )
            .await
        }
        Command::DomainsAdd { app, hostname } => {
            let id = ctx.app_id(&app).await?;
            let domain = ctx
                .api
                .post(
                    &format!("/paas/applications/{id}/domains"),
                    &json!({"hostname": hostname}),
                )
                .await?;
            ctx.show(&domain, |d| {
                println!("Added {} to {app}.", output::text(&d["hostname"]))
            })
        }
        Command::DomainsList { app } => {
            let id = ctx.app_id(&app).await?;
            let domains = ctx
                .api
                .get(&format!("/paas/applications/{id}/domains"))
                .await?;
            ctx.show(&domains, |d| {
                output::table(
                    &["hostname", "system", "ssl"],
                    array(d),
                    &["hostname", "is_system", "ssl_status"],
                );
            })
        }
        Command::DbCreate {
            name,
            db_type,
            version,
            plan,
            region,
        } => {
            let plan = ctx.plan(plan).await?;
            let region = ctx.region(region).await?;
            let body = json!({"name": name, "db_type": db_type, "version": version, "plan_id": plan, "region": region});
            let db = ctx.api.post("/paas/databases", &body).await?;
            ctx.show(&db, |d| {
                println!(
                    "Creating {} (id {}); `sky db:list` shows when it runs.",
                    output::text(&d["name"]),
                    d["id"]
                )
            })
        }
        Command::DbList => {
            let dbs = ctx.api.get("/paas/databases").await?;
            ctx.show(&dbs, |d| {
                output::table(
                    &["id", "name", "type", "version", "status"],
                    array(d),
                    &["id", "name", "db_type", "version", "status"],
                );
            })
        }
        Command::DbLink { db, app, prefix } => {
            let db = ctx.database_id(&db).await?;
            let id = ctx.app_id(&app).await?;
            let body = without_nulls(json!({"env_var_prefix": prefix}));
            let link = ctx
                .api
                .post(&format!("/paas/applications/{id}/databases/{db}"), &body)
                .await?;
            ctx.show(&link, |l| {
                let vars: Vec<String> = array(&l["variables"]).iter().map(output::text).collect();
                println!("Linked into {app}: {}", vars.join(", "));
            })
        }
        Command::DbInfo { db } => {
            let id = ctx.database_id(&db).await?;
            let info = ctx.api.get(&format!("/paas/databases/{id}")).await?;
            ctx.show(&without_password(info), |d| {
                let c = &d["connection"];
                let backup = &d["health"]["last_backup"];
                let rows = [
                    ("name", output::text(&d["name"])),
                    (
                        "engine",
                        format!(
                            "{} {}",
                            output::text(&d["db_type"]),
                            output::text(&d["version"])
                        ),
                    ),
                    ("status", output::text(&d["status"])),
                    ("reason", output::text(&d["failure_reason"])),
                    ("plan", output::text(&d["plan_id"])),
                    (
                        "host",
                        format!("{}:{}", output::text(&c["host"]), output::text(&c["port"])),
                    ),
                    ("user", output::text(&c["username"])),
                    ("database", output::text(&c["database"])),
                    (
                        "size",
                        match d["health"]["size_bytes"].as_i64() {
                            Some(bytes) => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
                            None => "not measured yet".to_string(),
                        },
                    ),
                    ("connections", output::text(&d["health"]["connections"])),
                    (
                        "last backup",
                        match backup["status"].as_str() {
                            None => "none".to_string(),
                            Some(status) => format!(
                                "{} {status} {}",
                                output::text(&backup["created_at"]),
                                output::text(&backup["error"])
                            ),
                        },
                    ),
                ];
                for (label, value) in rows {
                    println!("{label:<12} {}", value.trim());
                }
            })
        }
        Command::DbStop { db } => {
            let id = ctx.database_id(&db).await?;
            let stopped = ctx
                .api
                .post(&format!("/paas/databases/{id}/stop"), &json!({}))
                .await?;
            ctx.show(&without_password(stopped), |_| {
                println!(
                    "Stopped {db}; its data stays and it is not billed until `sky db:start {db}`"
                )
            })
        }
        Command::DbStart { db } => {
            let id = ctx.database_id(&db).await?;
            ctx.api
                .post(&format!("/paas/databases/{id}/start"), &json!({}))
                .await?;
            let running = ctx
                .until_database_runs(id, &format!("starting {db}"))
                .await?;
            ctx.show(&without_password(running), |_| println!("{db} is running"))
        }
        Command::DbResize { db, plan } => {
            let id = ctx.database_id(&db).await?;
            let resized = ctx
                .api
                .call(
                    reqwest::Method::PUT,
                    &format!("/paas/databases/{id}"),
                    Some(&json!({ "plan_id": plan })),
                )
                .await?;
            let resized = if resized["status"] == "stopped" {
                resized
            } else {
                ctx.until_database_runs(id, &format!("restarting {db} on plan {plan}"))
                    .await?
            };
            ctx.show(&without_password(resized), |d| {
                println!("{db} is on plan {plan} ({})", output::text(&d["status"]))
            })
        }
        Command::DbBackup { db } => ctx.db_backup(&db).await,
        Command::DbBackups { db } => {
            let db = ctx.database_id(&db).await?;
            let list = ctx
                .api
                .get(&format!("/paas/databases/{db}/backups"))
                .await?;
            ctx.show(&list, |b| {
                output::table(
                    &[
                        "id", "origin", "status", "bytes", "sha256", "created", "error",
                    ],
                    array(b),
                    &[
                        "id",
                        "origin",
                        "status",
                        "size_bytes",
                        "sha256",
                        "created_at",
                        "error",
                    ],
                );
            })
        }
        Command::DbRestore { db, backup } => ctx.db_restore(&db, backup).await,
        Command::Wallet => {
            let wallet = ctx.api.get("/wallet").await?;
            ctx.show(&wallet, |w| {
                println!(
                    "Balance: {} {}",
                    output::text(&w["balance"]),
                    output::text(&w["currency"])
                );
                output::table(
                    &["when", "kind", "amount", "balance", "description"],
                    array(&w["transactions"]),
                    &[
                        "created_at",
                        "kind",
                        "amount",
                        "balance_after",
                        "description",
                    ],
                );
            })
        }
    }
}

/// Logs in: with an e-mail and password, makes an API token (long-lived,
/// unlike the login's access token) and saves it; or saves the token given.
/// Revokes the token `sky login` made (a token given with `--token` is
/// the user's to revoke), then forgets the credentials.
async fn logout(json: bool) -> Result<(), CliError> {
    let revoked = match config::load() {
        Ok(Credentials {
            api,
            token,
            token_id: Some(id),
            ..
        }) => {
            let api = Api::new(&api, Some(token));
            match api
                .call(Method::DELETE, &format!("/auth/tokens/{id}"), None)
                .await
            {
                Ok(_) => true,
                // Revoked already (or the account is gone): nothing to undo.
                Err(CliError::Api {
                    status: 401 | 404, ..
                }) => true,
                Err(err) => return Err(err),
            }
        }
        _ => false,
    };
    config::remove()?;
    if json {
        output::json(&json!({"ok": true, "revoked": revoked}));
    } else if revoked {
        println!("Logged out; the token sky used is revoked.");
    } else {
        println!("Logged out.");
    }
    Ok(())
}

/// Goes on only when `name` was typed again: with `--confirm`, or at the
/// prompt on a terminal.
fn confirmed(name: &str, given: Option<String>, what: &str) -> Result<(), CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let typed = match given {
        Some(given) => given,
        None if std::io::stdin().is_terminal() => {
            eprint!("This deletes {what} {name} for good. Type its name to go on: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            line.trim().to_string()
        }
        None => {
            return Err(CliError::Usage(format!(
                "this deletes {what} {name} for good: add --confirm {name}"
            )));
        }
    };
    if typed == name {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{typed:?} is not {name:?}; nothing was deleted"
        )))
    }
}

/// Reads a password from the terminal without showing it.
fn prompt_password() -> Result<String, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Usage(
            "give --password (or SKY_PASSWORD), or --token".into(),
        ));
    }
    eprint!("Password: ");
    let _ = std::io::stderr().flush();
    let saved = rustix::termios::tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = &saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, saved);
    }
    eprintln!();
    read.map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn login(
    api: &str,
    email: Option<String>,
    password: Option<String>,
    token: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let (token, email, token_id) = match (token, email) {
        (Some(token), _) => (token, None, None),
        (None, Some(email)) => {
            let password = match password {
                Some(p) => p,
                None => prompt_password()?,
            };
            let anonymous = Api::new(api, None);
            let access = anonymous
                .post(
                    "/auth/login",
                    &json!({"email": email, "password": password}),
                )
                .await?;
            let session = Api::new(api, access["access_token"].as_str().map(str::to_string));
            let created = session
                .post("/auth/tokens", &json!({"name": "sky"}))
                .await?;
            let token = created["token"]
                .as_str()
                .ok_or_else(|| CliError::Failed("the API made no token".into()))?;
            (token.to_string(), Some(email), created["id"].as_i64())
        }
        (None, None) => {
            return Err(CliError::Usage(
                "give --email and --password, or --token".into(),
            ));
        }
    };
    let me = Api::new(api, Some(token.clone())).get("/auth/me").await?;
    let path = config::save(&Credentials {
        api: api.trim_end_matches('/').to_string(),
        token,
        email: email.or_else(|| me["email"].as_str().map(str::to_string)),
        token_id,
    })?;
    if json {
        output::json(&me);
    } else {
        println!(
            "Logged in as {} (credentials in {}).",
            output::text(&me["email"]),
            path.display()
        );
    }
    Ok(())
}

struct Ctx {
    api: Api,
    json: bool,
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Drops the fields left out (the API tells "absent" from `null` on some).
fn without_nulls(mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    body
}

impl Ctx {
    fn show(&self, value: &Value, human: impl FnOnce(&Value)) -> Result<(), CliError> {
        if self.json {
            output::json(value);
        } else {
            human(value);
        }
        Ok(())
    }

    fn done(&self, message: &str) -> Result<(), CliError> {
        if self.json {
            output::json(&json!({"ok": true}));
        } else {
            println!("{message}");
        }
        Ok(())
    }

    /// Adds (or points) the git remote at the application's repository on
    /// the platform and has git ask `sky git:credential` for its password.
    async fn git_remote(
        &self,
        saved: &Credentials,
        app: &str,
        remote: &str,
    ) -> Result<(), CliError> {
        let id = self.app_id(app).await?;
        let shown = self.api.get(&format!("/paas/applications/{id}")).await?;
        let slug = output::text(&shown["slug"]);
        let base = saved.api.trim_end_matches('/');
        let url = format!("{base}/git/{slug}.git");
        let git = |args: &[&str]| -> Result<(bool, String), CliError> {
            let out = std::process::Command::new("git")
                .args(args)
                .output()
                .map_err(|e| CliError::Failed(format!("cannot run git: {e}")))?;
            Ok((
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        };
        let (inside, _) = git(&["rev-parse", "--git-dir"])?;
        if !inside {
            return Err(CliError::Usage(
                "this folder is not a git repository; run it in your application's (git init first)"
                    .into(),
            ));
        }
        let (exists, _) = git(&["remote", "get-url", remote])?;
        let verb = if exists { "set-url" } else { "add" };
        let (ok, said) = git(&["remote", verb, remote, &url])?;
        if !ok {
            return Err(CliError::Failed(format!("git remote {verb}: {said}")));
        }
        let program = std::env::current_exe()
            .map_err(|e| CliError::Failed(format!("cannot find sky itself: {e}")))?;
        let helper = format!(
            "!'{}' git:credential",
            program.display().to_string().replace('\'', "'\\''")
        );
        // For the control plane's address (git matches credentials by host).
        let key = format!("credential.{base}.helper");
        // An empty helper first: other helpers of the machine are not asked
        // for this address.
        let _ = git(&["config", "--local", "--unset-all", &key]);
        for value in ["", helper.as_str()] {
            let (ok, said) = git(&["config", "--local", "--add", &key, value])?;
            if !ok {
                return Err(CliError::Failed(format!("git config: {said}")));
            }
        }
        self.show(&json!({"remote": remote, "url": url}), |_| {
            println!("Git remote {remote}: {url}");
            println!("Deploy with: git push {remote} main");
        })
    }

    /// An application by name or id.
    async fn app_id(&self, app: &str) -> Result<i64, CliError> {
        let list = self.api.get("/paas/applications?limit=200").await?;
        find(array(&list), app)
            .ok_or_else(|| CliError::Usage(format!("no application {app}; `sky apps` lists yours")))
    }

    /// A database by name or id.
    async fn database_id(&self, db: &str) -> Result<i64, CliError> {
        let list = self.api.get("/paas/databases").await?;
        find(array(&list), db)
            .ok_or_else(|| CliError::Usage(format!("no database {db}; `sky db:list` lists yours")))
    }

    async fn plan(&self, plan: Option<i64>) -> Result<i64, CliError> {
        if let Some(plan) = plan {
            return Ok(plan);
        }
        let plans = self.api.get("/paas/plans").await?;
        match array(&plans) {
            [only] => only["id"]
                .as_i64()
                .ok_or_else(|| CliError::Failed("a plan without an id".into())),
            _ => Err(CliError::Usage(
                "choose a plan with --plan (`sky plans` lists them)".into(),
            )),
        }
    }

    async fn region(&self, region: Option<String>) -> Result<String, CliError> {
        if let Some(region) = region {
            return Ok(region);
        }
        let regions = self.api.get("/paas/regions").await?;
        match array(&regions) {
            [only] => Ok(output::text(&only["region"])),
            list => Err(CliError::Usage(format!(
                "choose a region with --region: {}",
                list.iter()
                    .map(|r| output::text(&r["region"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    async fn apps(&self) -> Result<(), CliError> {
        let list = self.api.get("/paas/applications?limit=200").await?;
        self.show(&list, |l| {
            output::table(
                &["id", "name", "status", "instances", "url"],
                array(l),
                &["id", "name", "status", "instance_count", "url"],
            );
        })
    }

    /// An application command that answers the application (scale, restart …).
    async fn command(
        &self,
        app: &str,
        what: &str,
        body: Value,
        message: &str,
    ) -> Result<(), CliError> {
        let id = self.app_id(app).await?;
        let answer = self
            .api
            .post(&format!("/paas/applications/{id}/{what}"), &body)
            .await?;
        self.show(&answer, |_| println!("{message}"))
    }

    /// Processes by type (as Heroku's `ps`): the formation, then every
    /// instance with its state, node, uptime and restarts.
    async fn runs(&self, app: &str) -> Result<(), CliError> {
        let id = self.app_id(app).await?;
        let list = self
            .api
            .get(&format!("/paas/applications/{id}/runs"))
            .await?;
        if self.json {
            output::json(&list);
            return Ok(());
        }
        let mut rows: Vec<Value> = array(&list).to_vec();
        for row in &mut rows {
            let ended = match (&row["exit_code"], &row["failure"]) {
                (_, Value::String(why)) => why.clone(),
                (Value::Number(code), _) => format!("exit {code}"),
                _ => String::new(),
            };
            row["ended"] = json!(ended);
            row["took"] = json!(match row["duration_secs"].as_i64() {
                Some(secs) => format!("{secs}s"),
                None => String::new(),
            });
            row["release"] = json!(format!("v{}", output::text(&row["release"])));
        }
        output::table(
            &[
                "run", "status", "release", "command", "ended", "took", "by", "created",
            ],
            &rows,
            &[
                "name",
                "status",
                "release",
                "command",
                "ended",
                "took",
                "started_by",
                "created_at",
            ],
        );
        Ok(())
    }

    async fn ps(&self, app: &str) -> Result<(), CliError> {
        let id = self.app_id(app).await?;
        let formation = self
            .api
            .get(&format!("/paas/applications/{id}/formation"))
            .await?;
        let instances = self
            .api
            .get(&format!("/paas/applications/{id}/instances"))
            .await?;
        if self.json {
            output::json(&json!({"formation": formation, "instances": instances}));
            return Ok(());
        }
        let now = chrono::Utc::now();
        for process in array(&formation["processes"]) {
            let name = output::text(&process["process"]);
            let command = match output::text(&process["command"]) {
                c if c.is_empty() => "(the image's command)".to_string(),
                c => c,
            };
            println!(
                "=== {name} ({}): {command}",
                output::text(&process["quantity"])
            );
            let mut rows: Vec<Value> = array(&instances)
                .iter()
                .filter(|i| i["process"] == process["process"])
                .cloned()
                .collect();
            for row in &mut rows {
                row["id"] = json!(format!("{name}.{}", output::text(&row["instance"])));
                row["uptime"] = json!(uptime(&row["started_at"], now));
            }
            if rows.is_empty() {
                println!("(none running)");
            } else {
                output::table(
                    &["process", "state", "release", "node", "up", "restarts"],
                    &rows,
                    &[
                        "id",
                        "state",
                        "release",
                        "node_id",
                        "uptime",
                        "restart_count",
                    ],
                );
            }
            println!();
        }
        if let Some(command) = formation["release_command"].as_str() {
            println!("release phase: {command}");
        }
        // One-off runs under way, as Heroku lists `run.N`.
        let runs = self
            .api
            .get(&format!("/paas/applications/{id}/runs?limit=20"))
            .await?;
        let mut live: Vec<Value> = array(&runs)
            .iter()
            .filter(|r| r["status"] == "pending" || r["status"] == "running")
            .cloned()
            .collect();
        if !live.is_empty() {
            println!("=== run ({}): one-off", live.len());
            for run in &mut live {
                run["uptime"] = json!(uptime(&run["started_at"], now));
            }
            output::table(
                &["process", "state", "release", "up", "command"],
                &live,
                &["name", "status", "release", "uptime", "command"],
            );
        }
        Ok(())
    }

    /// `web=2 worker=1` → `PATCH …/formation`.
    async fn ps_scale(&self, app: &str, counts: &[String]) -> Result<(), CliError> {
        let mut formation = serde_json::Map::new();
        for pair in counts {
            let count = pair
                .split_once('=')
                .and_then(|(name, n)| Some((name, n.trim().parse::<i64>().ok()?)));
            let Some((name, n)) = count else {
                return Err(CliError::Usage(format!(
                    "{pair}: write TYPE=COUNT, such as web=2 worker=1"
                )));
            };
            formation.insert(name.trim().to_string(), json!(n));
        }
        let id = self.app_id(app).await?;
        let answer = self
            .api
            .call(
                reqwest::Method::PATCH,
                &format!("/paas/applications/{id}/formation"),
                Some(&json!({"formation": formation})),
            )
            .await?;
        self.show(&answer, |f| {
            let now: Vec<String> = array(&f["processes"])
                .iter()
                .map(|p| {
                    format!(
                        "{}={}",
                        output::text(&p["process"]),
                        output::text(&p["quantity"])
                    )
                })
                .collect();
            println!("Scaling {app}: {}", now.join(" "));
        })
    }

    async fn env_set(&self, app: &str, pairs: &[String]) -> Result<(), CliError> {
        let mut vars = serde_json::Map::new();
        for pair in pairs {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(CliError::Usage(format!("{pair}: write KEY=VALUE")));
            };
            vars.insert(key.to_string(), Value::String(value.to_string()));
        }
        let keys: Vec<&str> = vars.keys().map(String::as_str).collect();
        let message = format!("Set {}", keys.join(", "));
        self.env_change(app, &json!({ "vars": vars }), &message)
            .await
    }

    /// Changes variables in one request (one release) and says what became of it.
    async fn env_change(&self, app: &str, body: &Value, what: &str) -> Result<(), CliError> {
        let id = self.app_id(app).await?;
        let answer = self
            .api
            .post(&format!("/paas/applications/{id}/env"), body)
            .await?;
        let outcome = match (answer["release"].as_i64(), answer["waiting"].is_null()) {
            (Some(release), _) => format!("{what} on {app}: release v{release}."),
            (None, false) => format!(
                "{what} on {app}: the release waits for {}.",
                output::text(&answer["waiting"]["behind"])
            ),
            (None, true) => format!("{what} on {app}; it applies at the first deploy."),
        };
        self.show(&answer, |_| println!("{outcome}"))
    }

    /// The newest build and release of an application, to tell a deploy's
    /// own from earlier ones.
    async fn newest(&self, id: i64) -> Result<(i64, i64), CliError> {
        let builds = self
            .api
            .get(&format!("/paas/applications/{id}/builds?limit=1"))
            .await?;
        let releases = self
            .api
            .get(&format!("/paas/applications/{id}/releases?limit=1"))
            .await?;
        let first = |list: &Value, key: &str| {
            array(list)
                .first()
                .and_then(|b| b[key].as_i64())
                .unwrap_or(0)
        };
        Ok((first(&builds, "id"), first(&releases, "version")))
    }

    /// A deploy that waits for the rollout in flight: once its turn comes,
    /// the build (or release) it started, as the deploy's answer would say.
    async fn wait_turn(
        &self,
        id: i64,
        app: &str,
        started: &Value,
        before: (i64, i64),
    ) -> Result<Value, CliError> {
        let spinner = (!self.json).then(|| {
            Spinner::start(format!(
                "{app}'s deploy waits for {}",
                output::text(&started["waiting"]["behind"])
            ))
        });
        let deadline = Instant::now() + ROLLOUT_WAIT;
        loop {
            let (build, release) = self.newest(id).await?;
            if build > before.0 {
                let build = self
                    .api
                    .get(&format!("/paas/applications/{id}/builds/{build}"))
                    .await?;
                drop(spinner);
                return Ok(json!({"build": build, "release": null}));
            }
            let application = self.api.get(&format!("/paas/applications/{id}")).await?;
            if application["git_repo_url"].is_null() && release > before.1 {
                drop(spinner);
                return Ok(json!({"build": null, "release": release}));
            }
            if Instant::now() > deadline {
                return Err(CliError::Failed(format!(
                    "{app}'s deploy is still waiting after {} s",
                    ROLLOUT_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Starts a deploy; follows the build's log to its end, then waits for
    /// the release to run. A failed build or rollout is a failure.
    async fn deploy(&self, app: &str) -> Result<(), CliError> {
        let id = self.app_id(app).await?;
        let before = self.api.get(&format!("/paas/applications/{id}")).await?;
        let newest = self.newest(id).await?;
        let mut started = self
            .api
            .post(&format!("/paas/applications/{id}/deploy"), &json!({}))
            .await?;
        if !started["waiting"].is_null() {
            started = self.wait_turn(id, app, &started, newest).await?;
        }
        let mut build_status = None;
        if let Some(build) = started["build"]["id"].as_i64() {
            let number = output::text(&started["build"]["build_number"]);
            let spinner = (!self.json).then(|| Spinner::start(format!("building {app} #{number}")));
            let path = format!("/paas/applications/{id}/builds/{build}/logs?follow=true");
            self.api
                .follow(&path, |event| {
                    if let (Some(line), Some(spinner)) = (event["line"].as_str(), &spinner) {
                        spinner.line(line);
                    }
                    if let Some(status) = event["status"].as_str() {
                        build_status = Some(status.to_string());
                        return false;
                    }
                    true
                })
                .await?;
            // The stream may end without its last event (the server went
            // away): the build's own record says how it ended.
            let path = format!("/paas/applications/{id}/builds/{build}");
            let build = loop {
                let build = self.api.get(&path).await?;
                if !matches!(build["status"].as_str(), Some("pending" | "building")) {
                    break build;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            drop(spinner);
            build_status = build["status"].as_str().map(str::to_string);
            if build_status.as_deref() != Some("success") {
                if self.json {
                    output::json(&json!({"build": build}));
                }
                return Err(CliError::Failed(format!(
                    "build #{number} of {app} {}: {}",
                    build_status.as_deref().unwrap_or("ended"),
                    output::text(&build["failure_reason"])
                )));
            }
        }
        // The release rolls out: done when it is the current one and the
        // application runs; a rollout that fails (the previous release keeps
        // serving, with a new `last_error`) is a failure.
        let mut deadline = Instant::now() + ROLLOUT_WAIT;
        let spinner = (!self.json).then(|| Spinner::start(format!("releasing {app}")));
        let mut shown = 0;
        let application = loop {
            let application = self.api.get(&format!("/paas/applications/{id}")).await?;
            let releases = self
                .api
                .get(&format!("/paas/applications/{id}/releases"))
                .await?;
            let ours = array(&releases)
                .iter()
                .find(|r| match started["build"]["id"].as_i64() {
                    Some(build) => r["build_id"] == build,
                    None => r["version"] == started["release"],
                });
            // The rollout's log (the release phase's output among it), as it grows.
            if let Some(version) = ours.and_then(|r| r["version"].as_i64()) {
                let log = self
                    .api
                    .get(&format!("/paas/applications/{id}/releases/{version}/log"))
                    .await?;
                let text = output::text(&log["log"]);
                let lines: Vec<&str> = text.lines().collect();
                if lines.len() > shown {
                    deadline = Instant::now() + ROLLOUT_WAIT;
                    if let Some(spinner) = &spinner {
                        for line in &lines[shown..] {
                            spinner.line(line);
                        }
                    }
                    shown = lines.len();
                }
                if log["status"] == "failed" {
                    drop(spinner);
                    return Err(CliError::Failed(format!(
                        "release v{version} of {app} failed: {}",
                        output::text(&log["failure"])
                    )));
                }
            }
            let status = application["status"].as_str().unwrap_or_default();
            let new_error = !application["last_error"].is_null()
                && application["last_error"] != before["last_error"];
            if status == "running" && ours.is_some_and(|r| r["current"] == true) {
                break application;
            }
            if status == "failed" || (status == "running" && new_error) {
                drop(spinner);
                return Err(CliError::Failed(format!(
                    "the release of {app} failed: {}",
                    output::text(&application["last_error"])
                )));
            }
            if Instant::now() > deadline {
                return Err(CliError::Failed(format!(
                    "{app} is not running the new release after {} s",
                    ROLLOUT_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        drop(spinner);
        if self.json {
            output::json(&json!({"application": application, "build": started["build"]}));
        } else {
            println!("Deployed {app}: {}", output::text(&application["url"]));
        }
        Ok(())
    }

    async fn logs(&self, app: &str, follow: bool, lines: u32) -> Result<(), CliError> {
        let id = self.app_id(app).await?;
        // With --json: the list, or one JSON line per line followed.
        let print = |line: &Value| {
            if self.json {
                println!("{line}");
            } else {
                // The container by its Heroku-style name (`web.0`, `run.12`).
                let who = match output::text(&line["process"]) {
                    p if p.is_empty() => output::text(&line["instance"]),
                    p => p,
                };
                println!(
                    "{} [{who}] {}",
                    output::text(&line["timestamp"]),
                    output::text(&line["line"])
                );
            }
        };
        let path = format!("/paas/applications/{id}/logs?tail={lines}");
        if follow {
            return self
                .api
                .follow(&format!("{path}&follow=true"), |line| {
                    print(&line);
                    true
                })
                .await;
        }
        let list = self.api.get(&path).await?;
        if self.json {
            output::json(&list);
            return Ok(());
        }
        for line in array(&list) {
            print(line);
        }
        Ok(())
    }

    /// Backs a database up and waits for the backup's end.
    async fn db_backup(&self, db: &str) -> Result<(), CliError> {
        let id = self.database_id(db).await?;
        let backup = self
            .api
            .post(&format!("/paas/databases/{id}/backup"), &json!({}))
            .await?;
        let ended = self
            .wait_for(
                &format!("/paas/databases/{id}/backups"),
                &backup["id"],
                &format!("backing up {db}"),
            )
            .await?;
        if ended["status"] != "succeeded" {
            return Err(CliError::Failed(format!(
                "backup {} of {db} failed: {}",
                ended["id"],
                output::text(&ended["error"])
            )));
        }
        self.show(&ended, |b| {
            println!(
                "Backup {} of {db}: {} bytes, SHA-256 {}",
                b["id"],
                output::text(&b["size_bytes"]),
                output::text(&b["sha256"])
            )
        })
    }

    /// Restores a database and waits for the restore's end.
    async fn db_restore(&self, db: &str, backup: i64) -> Result<(), CliError> {
        let id = self.database_id(db).await?;
        let restore = self
            .api
            .post(
                &format!("/paas/databases/{id}/restore"),
                &json!({"backup_id": backup}),
            )
            .await?;
        let ended = self
            .wait_for(
                &format!("/paas/databases/{id}/restores"),
                &restore["id"],
                &format!("restoring {db}"),
            )
            .await?;
        if ended["status"] != "succeeded" {
            return Err(CliError::Failed(format!(
                "restore of {db} from backup {backup} failed: {}",
                output::text(&ended["error"])
            )));
        }
        self.show(&ended, |_| println!("Restored {db} from backup {backup}."))
    }

    /// Polls a list until the item with `id` has ended.
    /// Waits until database `id` runs (answers it) or fails (an error with its reason).
    async fn until_database_runs(&self, id: i64, label: &str) -> Result<Value, CliError> {
        let spinner = (!self.json).then(|| Spinner::start(label.to_string()));
        let deadline = Instant::now() + DATABASE_WAIT;
        loop {
            let db = self.api.get(&format!("/paas/databases/{id}")).await?;
            match db["status"].as_str() {
                Some("running") => {
                    drop(spinner);
                    return Ok(db);
                }
                Some("pending") if Instant::now() < deadline => {}
                _ => {
                    drop(spinner);
                    let reason = output::text(&db["failure_reason"]);
                    let status = output::text(&db["status"]);
                    return Err(CliError::Failed(if reason.is_empty() {
                        format!("{label}: the database is {status}")
                    } else {
                        format!("{label}: the database is {status}: {reason}")
                    }));
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wait_for(&self, list: &str, id: &Value, label: &str) -> Result<Value, CliError> {
        let spinner = (!self.json).then(|| Spinner::start(label.to_string()));
        let deadline = Instant::now() + DATABASE_WAIT;
        loop {
            let all = self.api.get(list).await?;
            if let Some(item) = array(&all).iter().find(|i| i["id"] == *id)
                && matches!(item["status"].as_str(), Some("succeeded" | "failed"))
            {
                drop(spinner);
                return Ok(item.clone());
            }
            if Instant::now() > deadline {
                return Err(CliError::Failed(format!(
                    "{label}: still going after an hour"
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A database's view without its password (what `sky` prints, even with `--json`).
fn without_password(mut db: Value) -> Value {
    if let Some(connection) = db["connection"].as_object_mut() {
        connection.remove("password");
        connection.remove("url");
    }
    db
}

/// How long since `started` (an RFC 3339 time), as `3m 4s`; empty without one.
fn uptime(started: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    let Some(started) = started
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    else {
        return String::new();
    };
    let secs = (now - started.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// The id of the item named `name` (or whose id it is).
fn find(items: &[Value], name: &str) -> Option<i64> {
    items
        .iter()
        .find(|i| i["name"] == name || i["id"].as_i64().is_some_and(|id| name.parse() == Ok(id)))
        .and_then(|i| i["id"].as_i64())
}

/// `sky git:credential get`: git's credential helper protocol. For the
/// saved control plane's address it answers the saved token as the
/// password; for any other address, nothing (git asks elsewhere). `store`
/// and `erase` are git telling what happened: nothing to do.
fn git_credential(saved: &Credentials, operation: &str) -> Result<(), CliError> {
    if operation != "get" {
        return Ok(());
    }
    let mut asked = std::collections::HashMap::new();
    let mut line = String::new();
    while std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::Failed(format!("cannot read git's question: {e}")))?
        > 0
    {
        let text = line.trim_end();
        if text.is_empty() {
            break;
        }
        if let Some((key, value)) = text.split_once('=') {
            asked.insert(key.to_string(), value.to_string());
        }
        line.clear();
    }
    let Ok(url) = reqwest::Url::parse(&saved.api) else {
        return Ok(());
    };
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    if asked.get("protocol").map(String::as_str) == Some(url.scheme())
        && asked.get("host") == Some(&host)
    {
        println!("username=sky");
        println!("password={}", saved.token);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn things_are_found_by_name_or_id_and_left_out_fields_are_dropped() {
        let items = vec![
            json!({"id": 7, "name": "shop"}),
            json!({"id": 9, "name": "blog"}),
        ];
        assert_eq!(find(&items, "blog"), Some(9));
        assert_eq!(find(&items, "7"), Some(7));
        assert_eq!(find(&items, "nope"), None);
        assert_eq!(
            without_nulls(json!({"name": "a", "image": null})),
            json!({"name": "a"})
        );
    }
}
