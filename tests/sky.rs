//! `sky`, the customer CLI, against a real control plane, agent and Docker:
//! log in (the token saved 0600), create an application from a git
//! repository, deploy it while the build log streams, read and change its
//! configuration, scale, roll back, add a domain, see the wallet; a build
//! that fails exits non-zero with the reason on one line; `--json` prints
//! the API's answers; errors are one readable line.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::Value;
use stack::{PASSWORD, Repo, Stack, Timing, WEB_IMAGE, binary, through_ingress};

/// Runs `sky` with its own configuration folder.
struct Sky {
    config: PathBuf,
}

/// What a run printed and how it ended.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Sky {
    fn new() -> Sky {
        let config =
            std::env::temp_dir().join(format!("sky-config-{}", uuid::Uuid::new_v4().simple()));
        Sky { config }
    }

    async fn run(&self, args: &[&str]) -> Ran {
        let mut command = tokio::process::Command::new(binary("sky"));
        command
            .args(args)
            .env("XDG_CONFIG_HOME", &self.config)
            .env_remove("SKY_API");
        let out = command.output().await.expect("run sky");
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    /// Runs a command that must work; answers what it printed.
    async fn ok(&self, args: &[&str]) -> String {
        let ran = self.run(args).await;
        assert!(ran.ok, "sky {args:?} failed: {}{}", ran.stdout, ran.stderr);
        ran.stdout
    }

    /// Runs a command with `--json`; answers the JSON.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("sky {args:?} --json: {e}: {out}"))
    }
}

impl Drop for Sky {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config);
    }
}

fn site(page: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Dockerfile",
            format!(
                "FROM {WEB_IMAGE}\nRUN echo building the page\nCOPY index.html /www/index.html\n"
            ),
        ),
        ("index.html", page.to_string()),
    ]
}

fn files<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(p, t)| (*p, t.as_str())).collect()
}

/// Waits until the node's ingress serves `text` for `host`.
async fn serves(stack: &Stack, port: u16, host: &str, text: &str) {
    stack
        .until(60, &format!("{host} serves {text}"), || async {
            through_ingress(port, host, "/")
                .await
                .is_some_and(|(_, body)| body.contains(text))
        })
        .await;
}

#[tokio::test]
async fn docker_a_customer_deploys_configures_and_rolls_back_with_sky() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let sky = Sky::new();

    // Not logged in yet: one line saying what to do.
    let ran = sky.run(&["apps"]).await;
    assert!(!ran.ok);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.starts_with("sky: not logged in"),
        "{}",
        ran.stderr
    );
    // A wrong password: refused, nothing saved.
    let ran = sky
        .run(&[
            "login",
            "--api",
            &stack.base,
            "--email",
            "alice@example.com",
            "--password",
            "wrong",
        ])
        .await;
    assert!(!ran.ok && ran.stderr.starts_with("sky: "), "{}", ran.stderr);
    assert!(!sky.config.join("sky/credentials.json").exists());

    let out = sky
        .ok(&[
            "login",
            "--api",
            &stack.base,
            "--email",
            "alice@example.com",
            "--password",
            PASSWORD,
        ])
        .await;
    assert!(out.contains("Logged in as alice@example.com"), "{out}");
    let saved = sky.config.join("sky/credentials.json");
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert!(credentials["token"].as_str().unwrap().starts_with("spt_"));
    assert!(!credentials.to_string().contains(PASSWORD));

    // Create from git (the one region is chosen by itself) and deploy: the
    // build log streams, the command ends when the release runs.
    let repo = Repo::new(&files(&site("first release")));
    let plan_arg = plan.to_string();
    let out = sky
        .ok(&[
            "apps:create",
            "site",
            "--plan",
            &plan_arg,
            "--git",
            &repo.url(),
        ])
        .await;
    assert!(out.contains("Created site"), "{out}");
    let out = sky.ok(&["deploy", "site"]).await;
    assert!(
        out.contains("building the page"),
        "the build log streams: {out}"
    );
    assert!(out.contains("Deployed site: "), "{out}");
    let host = "site.apps.test";
    serves(&stack, agent.ingress_port, host, "first release").await;

    let apps = sky.json(&["apps"]).await;
    assert_eq!(apps[0]["name"], "site");
    assert_eq!(apps[0]["status"], "running");
    let info = sky.ok(&["apps:info", "site"]).await;
    assert!(
        info.contains("status") && info.contains("running"),
        "{info}"
    );

    // Configuration: set, list, unset.
    sky.ok(&["env:set", "site", "GREETING=hello", "MODE=test"])
        .await;
    sky.ok(&["env:set", "site", "GREETING=hi"]).await;
    let vars = sky.json(&["env:list", "site"]).await;
    let keys: Vec<&str> = vars
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"GREETING") && keys.contains(&"MODE"),
        "{vars:#}"
    );
    sky.ok(&["env:unset", "site", "MODE"]).await;
    let out = sky.ok(&["env:list", "site"]).await;
    assert!(out.contains("GREETING=") && !out.contains("MODE="), "{out}");
    // One value, unmasked, for scripts.
    assert_eq!(sky.ok(&["config:get", "site", "GREETING"]).await, "hi\n");
    let ran = sky.run(&["config:get", "site", "NOPE"]).await;
    assert!(!ran.ok && ran.stderr.lines().count() == 1, "{}", ran.stderr);
    let ran = sky.run(&["env:set", "site", "NOEQUALS"]).await;
    assert!(
        !ran.ok && ran.stderr.contains("KEY=VALUE"),
        "{}",
        ran.stderr
    );

    // A second release, then a rollback to the first.
    repo.commit(&files(&site("second release")), "second");
    sky.ok(&["deploy", "site"]).await;
    serves(&stack, agent.ingress_port, host, "second release").await;
    let releases = sky.json(&["releases", "site"]).await;
    let kinds: Vec<&str> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "build").count(),
        2,
        "two builds, and the configuration changes between them: {releases:#}"
    );
    assert!(kinds.contains(&"config"), "{releases:#}");
    sky.ok(&["rollback", "site"]).await;
    serves(&stack, agent.ingress_port, host, "first release").await;

    // A build that fails: the reason on one line, a non-zero exit.
    repo.commit(
        &[("Dockerfile", &*format!("FROM {WEB_IMAGE}\nRUN exit 3\n"))],
        "broken",
    );
    stack
        .app_in(&alice, apps[0]["id"].as_i64().unwrap(), "running")
        .await;
    let ran = sky.run(&["deploy", "site"]).await;
    assert!(!ran.ok, "a failed build exits non-zero: {}", ran.stdout);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("build #3 of site failed"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("exited with code 3"), "{}", ran.stderr);

    // Scale, domains, wallet.
    stack
        .app_in(&alice, apps[0]["id"].as_i64().unwrap(), "running")
        .await;
    sky.ok(&["scale", "site", "2"]).await;
    stack
        .until(60, "sky ps shows two web processes", || async {
            let out = sky.ok(&["ps", "site"]).await;
            out.contains("=== web (2): (the image's command)")
                && out.contains("web.0")
                && out.contains("web.1")
                && out.matches(" running ").count() == 2
        })
        .await;
    let out = sky.ok(&["ps:scale", "site", "web=1"]).await;
    assert!(out.contains("Scaling site: web=1"), "{out}");
    // A type the release lacks, and a malformed pair, are one line each.
    let ran = sky.run(&["ps:scale", "site", "worker=1"]).await;
    assert!(
        !ran.ok && ran.stderr.lines().count() == 1 && ran.stderr.contains("formation.worker"),
        "{}",
        ran.stderr
    );
    let ran = sky.run(&["ps:scale", "site", "web"]).await;
    assert!(
        !ran.ok && ran.stderr.contains("TYPE=COUNT"),
        "{}",
        ran.stderr
    );
    let ps = sky.json(&["ps", "site"]).await;
    assert_eq!(ps["formation"]["processes"][0]["process"], "web", "{ps:#}");
    let out = sky
        .ok(&["domains:add", "site", "www.site-example.com"])
        .await;
    assert!(out.contains("Added www.site-example.com"), "{out}");
    let out = sky.ok(&["domains:list", "site"]).await;
    assert!(
        out.contains("www.site-example.com") && out.contains("site.apps.test"),
        "{out}"
    );
    let out = sky
        .ok(&["domains:remove", "site", "www.site-example.com"])
        .await;
    assert!(out.contains("Removed www.site-example.com"), "{out}");
    let out = sky.ok(&["domains:list", "site"]).await;
    assert!(!out.contains("www.site-example.com"), "{out}");
    assert_eq!(sky.ok(&["whoami"]).await, "alice@example.com\n");
    assert_eq!(sky.ok(&["open", "site"]).await, "http://site.apps.test\n");
    let completion = sky.ok(&["completions", "bash"]).await;
    assert!(completion.contains("_sky()"), "{completion}");
    let wallet = sky.json(&["wallet"]).await;
    assert!(wallet["balance"].is_string(), "{wallet:#}");
    let logs = sky.json(&["logs", "site", "-n", "5"]).await;
    assert!(logs.is_array(), "{logs}");
    stack
        .app_in(&alice, apps[0]["id"].as_i64().unwrap(), "running")
        .await;
    let out = sky.ok(&["restart", "site"]).await;
    assert!(out.contains("Restarting site."), "{out}");

    // Unknown things and API refusals are one line too.
    let ran = sky.run(&["apps:info", "nope"]).await;
    assert!(
        !ran.ok && ran.stderr.trim() == "sky: no application nope; `sky apps` lists yours",
        "{}",
        ran.stderr
    );
    let ran = sky.run(&["apps:create", "x", "--plan", &plan_arg]).await;
    assert!(!ran.ok && ran.stderr.contains("(name)"), "{}", ran.stderr);
    // Another customer's token cannot see Alice's application.
    let bob = Sky::new();
    stack.customer("bob@example.com").await;
    bob.ok(&[
        "login",
        "--api",
        &stack.base,
        "--email",
        "bob@example.com",
        "--password",
        PASSWORD,
    ])
    .await;
    let ran = bob.run(&["apps:info", "site"]).await;
    assert!(!ran.ok, "{}", ran.stdout);
    // Destroying asks for the name again; nothing goes without it.
    let ran = sky.run(&["apps:destroy", "site"]).await;
    assert!(
        !ran.ok && ran.stderr.contains("--confirm site"),
        "{}",
        ran.stderr
    );
    let ran = sky
        .run(&["apps:destroy", "site", "--confirm", "sight"])
        .await;
    assert!(
        !ran.ok && ran.stderr.contains("nothing was deleted"),
        "{}",
        ran.stderr
    );
    assert_eq!(sky.json(&["apps"]).await[0]["name"], "site");
    // Logging out revokes the token sky made.
    let token = credentials["token"].as_str().unwrap().to_string();
    let me = stack
        .http
        .get(format!("{}/api/auth/me", stack.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let out = sky.ok(&["logout"]).await;
    assert!(out.contains("revoked"), "{out}");
    assert!(!saved.exists());
    let me = stack
        .http
        .get(format!("{}/api/auth/me", stack.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "the token still works after logout");
}

#[tokio::test]
async fn docker_a_customer_creates_links_backs_up_and_restores_a_database_with_sky() {
    stack::engines::ensure_engine_images();
    let stack = Stack::start(Timing::default()).await;
    stack::engines::local_engine(&stack, "postgresql", "16", stack::engines::POSTGRES_IMAGE).await;
    let plan = stack::engines::database_plan(&stack).await.to_string();
    let (_node, _agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let sky = Sky::new();
    sky.ok(&[
        "login",
        "--api",
        &stack.base,
        "--token",
        &alice_token(&stack, &alice).await,
    ])
    .await;

    let out = sky
        .ok(&[
            "db:create",
            "shop-db",
            "--type",
            "postgresql",
            "--version",
            "16",
            "--plan",
            &plan,
        ])
        .await;
    assert!(out.contains("Creating shop-db"), "{out}");
    stack
        .until(120, "the database runs", || async {
            sky.json(&["db:list"]).await[0]["status"] == "running"
        })
        .await;
    let web = stack.plan().await.to_string();
    sky.ok(&[
        "apps:create",
        "shop",
        "--plan",
        &web,
        "--image",
        WEB_IMAGE,
        "--port",
        "8080",
    ])
    .await;
    let out = sky.ok(&["db:link", "shop-db", "shop"]).await;
    assert!(out.contains("DATABASE_URL"), "{out}");

    let out = sky.ok(&["db:backup", "shop-db"]).await;
    assert!(out.starts_with("Backup "), "{out}");
    let backups = sky.json(&["db:backups", "shop-db"]).await;
    let id = backups[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(backups[0]["status"], "succeeded");
    let out = sky.ok(&["db:restore", "shop-db", &id]).await;
    assert!(
        out.contains(&format!("Restored shop-db from backup {id}")),
        "{out}"
    );
    let ran = sky.run(&["db:restore", "shop-db", "999999"]).await;
    assert!(
        !ran.ok && ran.stderr.contains("(backup_id)"),
        "{}",
        ran.stderr
    );
    // Its health and details, never its password; stopped, started, resized.
    let info = sky.json(&["db:info", "shop-db"]).await;
    assert!(info["connection"]["password"].is_null() && info["connection"]["url"].is_null());
    assert_eq!(info["health"]["last_backup"]["status"], "succeeded");
    let out = sky.ok(&["db:info", "shop-db"]).await;
    assert!(
        out.contains("last backup") && out.contains("succeeded"),
        "{out}"
    );
    let out = sky.ok(&["db:stop", "shop-db"]).await;
    assert!(out.contains("Stopped shop-db"), "{out}");
    assert_eq!(sky.json(&["db:list"]).await[0]["status"], "stopped");
    let out = sky.ok(&["db:start", "shop-db"]).await;
    assert!(out.contains("shop-db is running"), "{out}");
    let ran = sky.run(&["db:resize", "shop-db", "--plan", "999999"]).await;
    assert!(
        !ran.ok && ran.stderr.contains("(plan_id)") && ran.stderr.lines().count() == 1,
        "{}",
        ran.stderr
    );
    let out = sky.ok(&["db:resize", "shop-db", "--plan", &plan]).await;
    assert!(
        out.contains(&format!("shop-db is on plan {plan} (running)")),
        "{out}"
    );
    // A linked database is not deleted; unlinked, it is, once named again.
    let ran = sky
        .run(&["db:delete", "shop-db", "--confirm", "shop-db"])
        .await;
    assert!(!ran.ok && ran.stderr.lines().count() == 1, "{}", ran.stderr);
    let out = sky.ok(&["db:unlink", "shop-db", "shop"]).await;
    assert!(out.contains("Unlinked shop-db from shop"), "{out}");
    let ran = sky.run(&["db:delete", "shop-db"]).await;
    assert!(
        !ran.ok && ran.stderr.contains("--confirm shop-db"),
        "{}",
        ran.stderr
    );
    let out = sky
        .ok(&["db:delete", "shop-db", "--confirm", "shop-db"])
        .await;
    assert!(out.contains("Deleting shop-db"), "{out}");
    // Logging out with a token given on the command line keeps the token
    // (it is the user's to revoke).
    let out = sky.ok(&["logout"]).await;
    assert!(!out.contains("revoked"), "{out}");
}

/// An API token of the customer (as `sky login --token` takes it).
async fn alice_token(stack: &Stack, access: &str) -> String {
    let (status, created) = stack
        .post(
            "/api/auth/tokens",
            access,
            serde_json::json!({"name": "ci"}),
        )
        .await;
    assert_eq!(status, 201, "{created:#}");
    created["token"].as_str().unwrap().to_string()
}
