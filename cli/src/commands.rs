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
    if let Command::Logout = cli.command {
        config::remove()?;
        if json {
            output::json(&json!({"ok": true}));
        } else {
            println!("Logged out.");
        }
        return Ok(());
    }
    let saved = config::load()?;
    let api = Api::new(&saved.api, Some(saved.token.clone()));
    let ctx = Ctx { api, json };
    match cli.command {
        Command::Login { .. } | Command::Logout => Ok(()),
        Command::Apps => ctx.apps().await,
        Command::AppsCreate {
            name,
            plan,
            region,
            git,
            branch,
            image,
            port,
        } => {
            let plan = ctx.plan(plan).await?;
            let region = ctx.region(region).await?;
            let body = json!({"name": name, "plan_id": plan, "region": region, "git_repo_url": git,
                              "git_branch": branch, "image": image, "port": port});
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
        Command::AppsDelete { app } => {
            let id = ctx.app_id(&app).await?;
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
async fn login(
    api: &str,
    email: Option<String>,
    password: Option<String>,
    token: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let (token, email) = match (token, email) {
        (Some(token), _) => (token, None),
        (None, Some(email)) => {
            let password = match password {
                Some(p) => p,
                None => {
                    return Err(CliError::Usage(
                        "give --password (or SKY_PASSWORD), or --token".into(),
                    ));
                }
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
            (token.to_string(), Some(email))
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
        let deadline = Instant::now() + ROLLOUT_WAIT;
        let spinner = (!self.json).then(|| Spinner::start(format!("releasing {app}")));
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
                println!(
                    "{} [{}] {}",
                    output::text(&line["timestamp"]),
                    output::text(&line["instance"]),
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

/// The id of the item named `name` (or whose id it is).
fn find(items: &[Value], name: &str) -> Option<i64> {
    items
        .iter()
        .find(|i| i["name"] == name || i["id"].as_i64().is_some_and(|id| name.parse() == Ok(id)))
        .and_then(|i| i["id"].as_i64())
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
