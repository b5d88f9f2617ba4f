//! The GitHub App end to end, against the GitHub stand-in of
//! `tests/stack/github.rs` (GitHub itself is not reachable here), real git,
//! Docker and nginx: an admin configures the App; a customer installs it
//! (authorize → GitHub → callback, a single-use state), lists repositories
//! and branches, creates an application from a private repository that
//! builds with a token minted for the build; a signed push deploys the
//! pushed commit once however often it is delivered, a forged one nothing;
//! another customer cannot reach the repository; removing the installation
//! stops deploys and says so. No token GitHub handed out shows in a log, an
//! answer or the task table. The console's create form picks a repository and
//! a branch from GitHub's lists, in headless Chromium.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use serde_json::{Value, json};
use stack::browser::{Browser, text_of};
use stack::github::GithubStandIn;
use stack::{PASSWORD, PLATFORM_DOMAIN, Repo, Stack, Timing, WEB_IMAGE};

fn app_files(page: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Dockerfile",
            format!("FROM {WEB_IMAGE}\nCOPY index.html /www/index.html\n"),
        ),
        ("index.html", page.to_string()),
    ]
}

fn files<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(p, t)| (*p, t.as_str())).collect()
}

/// The `state` in the URL `authorize` sends the customer to.
async fn authorize(stack: &Stack, gh: &GithubStandIn, token: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = client
        .get(format!("{}/api/paas/github/authorize", stack.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    let prefix = format!("{}/apps/{}/installations/new?state=", gh.base, gh.slug);
    assert!(location.starts_with(&prefix), "{location}");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["url"], location.as_str());
    location[prefix.len()..].to_string()
}

/// GitHub's redirect back, as the customer's browser follows it.
async fn callback(stack: &Stack, query: &[(&str, String)]) -> (u16, Value) {
    let answer = stack
        .http
        .get(format!("{}/api/paas/github/callback", stack.base))
        .query(query)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn builds(stack: &Stack, token: &str, app: i64) -> usize {
    stack
        .get(&format!("/api/paas/applications/{app}/builds"), token)
        .await
        .as_array()
        .unwrap()
        .len()
}

/// Runs `sky` with a configuration folder of its own: (succeeded, stdout, stderr).
async fn sky(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(stack::binary("sky"))
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env_remove("SKY_API")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Every task's payload, as text.
async fn task_payloads(stack: &Stack) -> String {
    use diesel::QueryableByName;
    use diesel_async::{AsyncConnection, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    let mut conn = diesel_async::AsyncPgConnection::establish(&stack.db.url)
        .await
        .unwrap();
    let rows: Vec<Text> = diesel::sql_query(
        "SELECT coalesce(string_agg(payload::text || coalesce(error, ''), ' '), '') AS t FROM paas_tasks",
    )
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.t).collect()
}

#[tokio::test]
async fn docker_a_github_app_connects_builds_private_repositories_and_deploys_pushes() {
    let gh = GithubStandIn::start().await;
    let stack = Stack::start(Timing {
        env: gh.env(),
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let bob = stack.customer("bob@example.com").await;

    // Before an admin configures the App, nothing pretends to work.
    let (status, answer) = stack
        .call(
            reqwest::Method::GET,
            "/api/paas/github/repositories",
            &alice,
            None,
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("github_not_connected")),
        "{answer:#}"
    );

    // The admin configures it; a key that is not one is refused by name.
    let mut bad = gh.app_config();
    bad["private_key"] =
        json!("-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----\n");
    let (status, answer) = stack
        .call(
            reqwest::Method::PUT,
            "/api/admin/github",
            &stack.admin,
            Some(bad),
        )
        .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("private_key")),
        "{answer:#}"
    );
    let (status, view) = stack
        .call(
            reqwest::Method::PUT,
            "/api/admin/github",
            &stack.admin,
            Some(gh.app_config()),
        )
        .await;
    assert_eq!(status, 200, "{view:#}");
    let shown = stack.get("/api/admin/github", &stack.admin).await;
    assert_eq!(shown["configured"], true);
    assert_eq!(shown["app_id"], gh.app_id);
    for secret in [&gh.client_secret, &gh.webhook_secret, &gh.private_key] {
        assert!(!shown.to_string().contains(secret.as_str()));
        assert!(!view.to_string().contains(secret.as_str()));
    }
    let (status, _) = stack
        .call(reqwest::Method::GET, "/api/admin/github", &alice, None)
        .await;
    assert_eq!(status, 403, "customers do not see the App's configuration");

    // Acme's private repository, with a second branch, and another one.
    let repo = Repo::new(&files(&app_files("private v1")));
    let feature = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo.dir)
        .args(["branch", "feature"])
        .status()
        .unwrap();
    assert!(feature.success());
    gh.serve_repository("acme/private-app", &repo.dir.join(".git"));
    let other = Repo::new(&files(&app_files("other")));
    gh.serve_repository("acme/other", &other.dir.join(".git"));
    gh.install(101, "acme", &["acme/private-app", "acme/other"], "alice-gh");
    gh.install(202, "bob-org", &["bob-org/thing"], "bob-gh");

    // Alice installs: authorize → GitHub → callback.
    let state = authorize(&stack, &gh, &alice).await;
    let code = gh.authorize("alice-gh");
    let (status, connected) = callback(
        &stack,
        &[
            ("state", state.clone()),
            ("code", code),
            ("installation_id", "101".into()),
            ("setup_action", "install".into()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{connected:#}");
    assert_eq!(connected["installations"][0]["installation_id"], 101);
    assert_eq!(connected["installations"][0]["account"], "acme");
    // The state works once; a made-up one never.
    for used in [state, "ghs_madeup".to_string()] {
        let (status, answer) = callback(
            &stack,
            &[("state", used), ("code", gh.authorize("alice-gh"))],
        )
        .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("invalid_state")),
            "{answer:#}"
        );
    }
    // An installation Alice's GitHub account cannot reach is not connected.
    let state = authorize(&stack, &gh, &alice).await;
    let (status, answer) = callback(
        &stack,
        &[
            ("state", state),
            ("code", gh.authorize("alice-gh")),
            ("installation_id", "202".into()),
        ],
    )
    .await;
    assert_eq!(status, 403, "{answer:#}");
    // Bob connects his own.
    let state = authorize(&stack, &gh, &bob).await;
    let (status, _) = callback(
        &stack,
        &[("state", state), ("code", gh.authorize("bob-gh"))],
    )
    .await;
    assert_eq!(status, 200);

    // Repositories, paged as GitHub pages them, and branches.
    let first = stack
        .get("/api/paas/github/repositories?per_page=1", &alice)
        .await;
    assert_eq!(first["total_count"], 2, "{first:#}");
    assert_eq!(first["next_page"], 2);
    assert_eq!(first["repositories"][0]["full_name"], "acme/private-app");
    assert_eq!(first["repositories"][0]["private"], true);
    let second = stack
        .get("/api/paas/github/repositories?per_page=1&page=2", &alice)
        .await;
    assert_eq!(second["repositories"][0]["full_name"], "acme/other");
    assert_eq!(second["next_page"], Value::Null);
    let branches = stack
        .get(
            "/api/paas/github/repositories/acme/private-app/branches",
            &alice,
        )
        .await;
    let names: Vec<&str> = branches["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["feature", "main"], "{branches:#}");
    assert_eq!(
        branches["branches"][0]["commit_sha"]
            .as_str()
            .unwrap()
            .len(),
        40
    );
    let (status, _) = stack
        .call(
            reqwest::Method::GET,
            "/api/paas/github/repositories/acme/private-app/branches",
            &bob,
            None,
        )
        .await;
    assert_eq!(
        status, 404,
        "Bob's installation does not grant Acme's repository"
    );

    // The same with `sky`.
    let config = std::env::temp_dir().join(format!("sky-gh-{}", uuid::Uuid::new_v4().simple()));
    let (ok, _, err) = sky(&config, &["login", "--api", &stack.base, "--token", &alice]).await;
    assert!(ok, "{err}");
    let (ok, out, err) = sky(&config, &["github:connect"]).await;
    assert!(
        ok && out.contains("/apps/skypanel-test/installations/new?state=ghs_"),
        "{out}{err}"
    );
    let (ok, out, err) = sky(&config, &["github:repos"]).await;
    assert!(
        ok && out.contains("acme/private-app") && out.contains("acme/other"),
        "{out}{err}"
    );
    let (ok, out, err) = sky(&config, &["github:branches", "acme/private-app"]).await;
    assert!(
        ok && out.contains("feature") && out.contains("main"),
        "{out}{err}"
    );
    let (ok, _, err) = sky(&config, &["github:branches", "acme/../admin"]).await;
    assert!(
        !ok && err.contains("owner/name") && err.lines().count() == 1,
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&config);

    // An application from the private repository; Bob cannot make one.
    let body = json!({"name": "from-github", "plan_id": plan, "region": "local",
                      "github_repository": "acme/private-app", "git_branch": "main",
                      "auto_deploy": true});
    let (status, answer) = stack
        .post("/api/paas/applications", &bob, body.clone())
        .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("github_repository")),
        "{answer:#}"
    );
    let (status, created) = stack.post("/api/paas/applications", &alice, body).await;
    assert_eq!(status, 201, "{created:#}");
    let app = created["id"].as_i64().unwrap();
    assert_eq!(created["github"]["repository"], "acme/private-app");
    assert_eq!(created["github"]["connected"], true);
    let (status, answer) = stack
        .post(
            "/api/paas/applications",
            &alice,
            json!({"name": "both", "plan_id": plan, "region": "local",
                   "github_repository": "acme/other", "git_repo_url": repo.url()}),
        )
        .await;
    assert_eq!(status, 422, "{answer:#}");

    // It builds with a token minted for the build, and serves.
    let host = format!("from-github.{PLATFORM_DOMAIN}");
    let build = stack.start_deploy(&alice, app).await;
    let done = stack.build_ends(&alice, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    stack::serves(agent.ingress_port, &host, "/", "private v1").await;
    // The rollout ends (a push during it would wait for it; see below).
    stack.app_in(&alice, app, "running").await;
    assert!(
        gh.clones()
            .iter()
            .any(|(r, ok)| r == "acme/private-app" && *ok),
        "{:?}",
        gh.clones()
    );
    assert_eq!(gh.refused_jwts(), 0, "the App's JWTs were accepted");

    // A push: the App's webhook deploys the pushed commit, once.
    let sha = repo.commit(&files(&app_files("private v2")), "v2");
    let hook = format!("{}/api/paas/github/webhook", stack.base);
    let push = GithubStandIn::push_event(101, "acme/private-app", "main", &sha);
    let before = builds(&stack, &alice, app).await;
    let (status, forged) = gh
        .deliver(&hook, "push", "delivery-0", &push, Some("not-the-secret"))
        .await;
    assert_eq!(status, 401, "{forged:#}");
    let (status, delivered) = gh.deliver(&hook, "push", "delivery-1", &push, None).await;
    assert_eq!(status, 200, "{delivered:#}");
    assert_eq!(
        delivered["deploying"][0]["application_id"], app,
        "{delivered:#}"
    );
    let pushed = delivered["deploying"][0]["build_id"].as_i64().unwrap();
    let (status, again) = gh.deliver(&hook, "push", "delivery-1", &push, None).await;
    assert_eq!(status, 200);
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("acted on already"),
        "{again:#}"
    );
    assert_eq!(again["deploying"], json!([]));
    let done = stack.build_ends(&alice, app, pushed).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(done["git_commit_sha"], sha.as_str(), "{done:#}");
    stack::serves(agent.ingress_port, &host, "/", "private v2").await;
    assert_eq!(
        builds(&stack, &alice, app).await,
        before + 1,
        "one deploy for two deliveries"
    );
    // Another branch deploys nothing.
    let (_, elsewhere) = gh
        .deliver(
            &hook,
            "push",
            "delivery-2",
            &GithubStandIn::push_event(101, "acme/private-app", "feature", &sha),
            None,
        )
        .await;
    assert_eq!(elsewhere["deploying"], json!([]), "{elsewhere:#}");

    // A token of another installation cannot clone Acme's repository.
    let foreign = gh.mint(202);
    let cloned = std::process::Command::new("git")
        .args(["-c", "credential.helper=", "ls-remote"])
        .arg(format!(
            "http://x-access-token:{foreign}@{}/acme/private-app.git",
            gh.base.trim_start_matches("http://")
        ))
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        !cloned.status.success(),
        "another installation's token cloned"
    );

    // The installation is removed on GitHub: the application says so, its
    // owner is told, pushes deploy nothing and a build fails saying why.
    gh.uninstall(101);
    let (status, removed) = gh
        .deliver(
            &hook,
            "installation",
            "delivery-3",
            &json!({"action": "deleted", "installation": {"id": 101}}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{removed:#}");
    assert!(
        removed["message"]
            .as_str()
            .unwrap()
            .starts_with("1 application"),
        "{removed:#}"
    );
    let shown = stack
        .get(&format!("/api/paas/applications/{app}"), &alice)
        .await;
    assert_eq!(shown["github"]["connected"], false, "{shown:#}");
    let notices = stack.get("/api/paas/notifications", &alice).await;
    assert!(
        notices.to_string().contains("github_disconnected"),
        "{notices:#}"
    );
    let (_, ignored) = gh.deliver(&hook, "push", "delivery-4", &push, None).await;
    assert_eq!(ignored["deploying"], json!([]), "{ignored:#}");
    assert_eq!(ignored["waiting"], json!([]), "{ignored:#}");
    stack.app_in(&alice, app, "running").await;
    let build = stack.start_deploy(&alice, app).await;
    let failed = stack.build_ends(&alice, app, build).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert!(
        failed["failure_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("removed or suspended"),
        "{failed:#}"
    );
    stack::serves(agent.ingress_port, &host, "/", "private v2").await;

    // No token GitHub handed out shows anywhere.
    let mut everything = vec![
        ("the processes' logs".to_string(), stack.process_logs()),
        ("the task table".to_string(), task_payloads(&stack).await),
    ];
    for id in [build, pushed] {
        everything.push((
            format!("build {id}'s log"),
            stack
                .get(
                    &format!("/api/paas/applications/{app}/builds/{id}/logs"),
                    &alice,
                )
                .await
                .to_string(),
        ));
    }
    let issued = gh.issued();
    assert!(issued.len() >= 4, "{issued:?}");
    for token in &issued {
        for (source, text) in &everything {
            assert!(
                !text.contains(token.as_str()),
                "a GitHub token leaked into {source}"
            );
        }
    }
}

#[tokio::test]
async fn the_console_picks_a_github_repository_and_branch() {
    let gh = GithubStandIn::start().await;
    let stack = Stack::start(Timing {
        env: gh.env(),
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    // A region to create in (no agent needed: nothing is deployed).
    stack.pending_node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    stack.customer("bob@example.com").await;
    let (status, _) = stack
        .call(
            reqwest::Method::PUT,
            "/api/admin/github",
            &stack.admin,
            Some(gh.app_config()),
        )
        .await;
    assert_eq!(status, 200);
    let repo = Repo::new(&files(&app_files("picked")));
    let branch = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo.dir)
        .args(["branch", "feature"])
        .status()
        .unwrap();
    assert!(branch.success());
    gh.serve_repository("acme/private-app", &repo.dir.join(".git"));
    gh.serve_repository("acme/other", &repo.dir.join(".git"));
    gh.install(101, "acme", &["acme/private-app", "acme/other"], "alice-gh");
    let state = authorize(&stack, &gh, &alice).await;
    let (status, connected) = callback(
        &stack,
        &[
            ("state", state),
            ("code", gh.authorize("alice-gh")),
            ("installation_id", "101".into()),
            ("setup_action", "install".into()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{connected:#}");

    // Alice picks a repository, then one of its branches, from GitHub's lists.
    let mut browser = Browser::start().await;
    browser
        .log_in(
            &format!("{}/#/apps/new", stack.base),
            "alice@example.com",
            PASSWORD,
        )
        .await;
    browser.open(&format!("{}/#/apps/new", stack.base)).await;
    browser
        .until(
            30,
            "the create form",
            "!!document.querySelector('#create-app-source')",
        )
        .await;
    browser
        .fill(&[
            ("#create-app-name", "picked"),
            ("#create-app-source", "github"),
        ])
        .await;
    browser
        .until(
            30,
            "the granted repositories",
            "document.querySelector('#create-app-github_repository').options.length === 2",
        )
        .await;
    browser
        .fill(&[("#create-app-github_repository", "acme/other")])
        .await;
    browser
        .until(
            30,
            "the repository's branches",
            "(s => [...s.options].map(o => o.value).sort().join(',') === 'feature,main' && s.value === 'main')(document.querySelector('#create-app-github_branch'))",
        )
        .await;
    browser
        .fill(&[("#create-app-github_branch", "feature")])
        .await;
    browser.click("#create-app-submit").await;
    browser
        .until(
            30,
            "the application's page",
            &format!("{}.includes('picked')", text_of("h1")),
        )
        .await;
    let apps = stack.get("/api/paas/applications", &alice).await;
    assert_eq!(apps[0]["name"], "picked", "{apps:#}");
    assert_eq!(apps[0]["plan_id"], plan);
    assert_eq!(apps[0]["git_branch"], "feature", "{apps:#}");
    assert_eq!(apps[0]["github"]["repository"], "acme/other", "{apps:#}");

    // Bob has no installation: the form offers to connect GitHub instead.
    let mut bobs = Browser::start().await;
    bobs.log_in(&format!("{}/", stack.base), "bob@example.com", PASSWORD)
        .await;
    bobs.open(&format!("{}/#/apps/new", stack.base)).await;
    bobs.until(
        30,
        "the create form",
        "!!document.querySelector('#create-app-source')",
    )
    .await;
    bobs.fill(&[("#create-app-source", "github")]).await;
    bobs.until(
        30,
        "the link that connects GitHub",
        "(a => !!a && a.getAttribute('href') === '/api/paas/github/authorize')(document.querySelector('#connect-github'))",
    )
    .await;
}
