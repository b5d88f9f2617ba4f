//! The web console: its browser session (cookie flags, CSRF, logout that
//! ends it on the server, admin operations refused to a customer's session),
//! its page's security headers, and a customer's way through it in headless
//! Chromium against the real control plane, agent, Docker and nginx.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use reqwest::Method;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use stack::browser::{Browser, text_of};
use stack::{PASSWORD, Repo, Stack, Timing, WEB_IMAGE};

/// Logs `email` in to the console over HTTP: the cookie pair and the CSRF token.
async fn console_login(
    stack: &Stack,
    email: &str,
    headers: &[(&str, &str)],
) -> (String, String, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/auth/session", stack.base))
        .json(&json!({"email": email, "password": PASSWORD}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 201);
    let set_cookie = answer
        .headers()
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = answer.json().await.unwrap();
    let pair = set_cookie.split(';').next().unwrap().to_string();
    assert!(
        !body.to_string().contains(pair.split('=').nth(1).unwrap()),
        "the session's secret is in the cookie only: {body}"
    );
    (
        pair,
        body["csrf_token"].as_str().unwrap().to_string(),
        set_cookie,
    )
}

/// A request with the session cookie and, when given, the CSRF header.
async fn with_cookie(
    stack: &Stack,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", stack.base))
        .header(COOKIE, cookie);
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_console_session_is_an_http_only_strict_cookie_whose_changes_need_the_csrf_token() {
    let stack = Stack::start(Timing::default()).await;
    stack.customer("alice@example.com").await;

    // A wrong password starts nothing.
    let answer = reqwest::Client::new()
        .post(format!("{}/api/auth/session", stack.base))
        .json(&json!({"email": "alice@example.com", "password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().get(SET_COOKIE).is_none());

    let (cookie, csrf, set_cookie) = console_login(&stack, "alice@example.com", &[]).await;
    assert!(cookie.starts_with("skypanel_session=sps_"), "{set_cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{flag} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let (_, _, over_https) = console_login(
        &stack,
        "alice@example.com",
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert!(over_https.contains("; Secure"), "{over_https}");

    // Reads need only the cookie; the session tells the page its token.
    let (status, session) = with_cookie(
        &stack,
        Method::GET,
        "/api/auth/session",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(session["user"]["email"], "alice@example.com");
    assert_eq!(session["csrf_token"], csrf.as_str());
    let (status, _) = with_cookie(
        &stack,
        Method::GET,
        "/api/paas/applications",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);

    // A change without the token (what a cross-site form sends) is refused
    // and does nothing; a wrong token too; the right one goes through.
    let token = || Some(json!({"name": "from the console"}));
    let (status, body) = with_cookie(
        &stack,
        Method::POST,
        "/api/auth/tokens",
        &cookie,
        None,
        token(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "csrf_refused");
    let (status, _) = with_cookie(
        &stack,
        Method::POST,
        "/api/auth/tokens",
        &cookie,
        Some("0000"),
        token(),
    )
    .await;
    assert_eq!(status, 403);
    let (_, tokens) =
        with_cookie(&stack, Method::GET, "/api/auth/tokens", &cookie, None, None).await;
    assert_eq!(tokens.as_array().unwrap().len(), 0, "{tokens}");
    let (status, _) = with_cookie(
        &stack,
        Method::POST,
        "/api/auth/tokens",
        &cookie,
        Some(&csrf),
        token(),
    )
    .await;
    assert_eq!(status, 201);

    // A customer's session opens no admin operation.
    let (status, _) = with_cookie(
        &stack,
        Method::GET,
        "/api/admin/paas/plans",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);

    // Logging out needs the token too, and ends the session on the server:
    // the same cookie, replayed, is worthless.
    let (status, _) = with_cookie(
        &stack,
        Method::DELETE,
        "/api/auth/session",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let answer = reqwest::Client::new()
        .delete(format!("{}/api/auth/session", stack.base))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let cleared = answer.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    for path in ["/api/auth/session", "/api/paas/applications"] {
        let (status, _) = with_cookie(&stack, Method::GET, path, &cookie, None, None).await;
        assert_eq!(status, 401, "{path} after logout");
    }

    // The page and its assets forbid inline script and framing; assets are
    // versioned and cached for good.
    let page = reqwest::get(format!("{}/", stack.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    let start = html.find("/console/").unwrap();
    let script = &html[start..html[start..].find('"').unwrap() + start];
    let script = script.replace("console.css", "main.js");
    let asset = reqwest::get(format!("{}{script}", stack.base))
        .await
        .unwrap();
    assert_eq!(asset.status(), 200, "{script}");
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(
        asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
}

/// A page on another origin of the same site (another port of 127.0.0.1:
/// SameSite does not keep the cookie from it) that posts a form to the
/// control plane as soon as it loads.
async fn attacker_page(target: &str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let html = format!(
        r#"<!doctype html><form id="f" method="post" enctype="text/plain" action="{target}/api/auth/tokens"><input name='{{"name":"evil","x":"' value='"}}'></form><script>document.getElementById('f').submit()</script>"#
    );
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    port
}

#[tokio::test]
async fn docker_a_customer_signs_up_deploys_watches_and_deletes_in_the_console() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let mut browser = Browser::start().await;

    // Sign up from the login page.
    browser.open(&format!("{}/", stack.base)).await;
    browser.until_login_form(20).await;
    browser.click("a[href='#/signup']").await;
    browser
        .until(
            10,
            "the sign-up form",
            "!!document.querySelector('#signup-email')",
        )
        .await;
    browser
        .fill(&[
            ("#signup-email", "carol@example.com"),
            ("#signup-password", PASSWORD),
        ])
        .await;
    browser.click("#signup-submit").await;
    browser
        .until(20, "the empty application list", "!!document.querySelector('#new-app') && document.querySelector('#user-email').innerText === 'carol@example.com'")
        .await;
    // Only the cookie holds the session, and no script can read it.
    assert_eq!(browser.eval("document.cookie").await, "");
    let carol = stack.login("carol@example.com").await;

    // The create form shows the API's error next to the field it names.
    browser.click("#new-app").await;
    browser
        .until(20, "the create form", "!!document.querySelector('#create-app-name') && document.querySelector('#create-app-plan_id').options.length > 0")
        .await;
    browser
        .fill(&[
            ("#create-app-name", "!!!"),
            ("#create-app-source", "image"),
            ("#create-app-image", WEB_IMAGE),
        ])
        .await;
    browser.click("#create-app-submit").await;
    browser.until_field_error("create-app-name").await;
    browser.fill(&[("#create-app-name", "web-console")]).await;
    browser.click("#create-app-submit").await;
    browser
        .until(
            20,
            "the application's page",
            &format!("{}.includes('web-console')", text_of("h1")),
        )
        .await;
    let apps = stack.get("/api/paas/applications", &carol).await;
    let app = apps[0]["id"].as_i64().unwrap();
    assert_eq!(apps[0]["plan_id"], plan);

    // Deploy from the list's card and watch its badge turn running with no reload.
    browser.open(&format!("{}/#/apps", stack.base)).await;
    browser
        .until(
            20,
            "the card",
            &format!("!!document.querySelector('[data-app=\"{app}\"] [data-command=\"deploy\"]')"),
        )
        .await;
    browser.eval("window.notReloaded = true").await;
    browser
        .click(&format!("[data-app=\"{app}\"] [data-command=\"deploy\"]"))
        .await;
    browser
        .until(90, "the card's badge to read running", &format!("window.notReloaded === true && document.querySelector('[data-app=\"{app}\"] .badge').dataset.status === 'running'"))
        .await;
    // Its link opens the application through the ingress.
    let url = browser
        .eval(&format!(
            "document.querySelector('[data-app=\"{app}\"] .url a').href"
        ))
        .await;
    assert!(url.as_str().unwrap().contains("web-console"), "{url}");
    let host = url.as_str().unwrap().trim_start_matches("http://");
    let host = host.split(['/', ':']).next().unwrap();
    let (status, _) = stack::through_ingress(agent.ingress_port, host, "/")
        .await
        .expect("the application answers at its link");
    assert_eq!(status, 200);

    // A variable whose value is markup shows as text and makes a release.
    let payload = "<img src=x onerror=\"window.owned=1\"><script>window.owned=2</script>";
    browser
        .open(&format!("{}/#/apps/{app}/environment", stack.base))
        .await;
    browser
        .until(
            20,
            "the environment tab",
            "!!document.querySelector('#add-env-key')",
        )
        .await;
    browser
        .fill(&[("#add-env-key", "GREETING"), ("#add-env-value", payload)])
        .await;
    browser.click("#add-env-submit").await;
    browser
        .until(
            20,
            "the variable in the list",
            "!!document.querySelector('#env tr[data-key=\"GREETING\"]')",
        )
        .await;
    browser
        .until(
            10,
            "the release it made",
            "[...document.querySelectorAll('.toast')].some(t => /release v\\d+/.test(t.innerText))",
        )
        .await;
    browser.click("#env tr[data-key=\"GREETING\"] button").await;
    browser
        .until(
            10,
            "the revealed value, as text",
            &format!(
                "document.querySelector('#env tr[data-key=\"GREETING\"] td').innerText === {}",
                Value::from(payload)
            ),
        )
        .await;
    assert_eq!(
        browser.eval("[document.querySelectorAll('#env img, #env script').length, window.owned === undefined]").await,
        json!([0, true])
    );

    // A domain of markup is refused beside its field and shows as text; a
    // real one is listed with its certificate's state.
    browser
        .open(&format!("{}/#/apps/{app}/domains", stack.base))
        .await;
    browser
        .until(
            20,
            "the domains tab",
            "!!document.querySelector('#add-domain-hostname')",
        )
        .await;
    browser
        .eval("window.dialogs = 0; window.alert = window.prompt = () => { window.dialogs += 1; }; window.confirm = () => { window.dialogs += 1; return true; }")
        .await;
    browser
        .fill(&[(
            "#add-domain-hostname",
            "<img src=x onerror=alert(1)>.example.com",
        )])
        .await;
    browser.click("#add-domain-submit").await;
    browser.until_field_error("add-domain-hostname").await;
    browser
        .fill(&[("#add-domain-hostname", "shop-console.example.com")])
        .await;
    browser.click("#add-domain-submit").await;
    browser
        .until(
            20,
            "the domain in the list",
            "!!document.querySelector('#domains tr[data-domain=\"shop-console.example.com\"] .badge')",
        )
        .await;
    assert_eq!(
        browser
            .eval("[document.querySelectorAll('main img, main script').length, window.owned === undefined, window.dialogs]")
            .await,
        json!([0, true, 0]),
        "no markup became an element and no dialog opened"
    );

    // Roll back to the first release after the confirmation: the platform
    // makes a release of it and serves it.
    browser
        .open(&format!("{}/#/apps/{app}/deploys", stack.base))
        .await;
    browser
        .until(
            20,
            "the first release's rollback button",
            "!!document.querySelector('#tab tr[data-release=\"1\"] button')",
        )
        .await;
    browser.click("#tab tr[data-release=\"1\"] button").await;
    assert_eq!(browser.eval("window.dialogs").await, 1, "it asked first");
    stack
        .until(60, "the rollback to be the current release", || async {
            let releases = stack
                .get(&format!("/api/paas/applications/{app}/releases"), &carol)
                .await;
            releases
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["current"] == true && r["description"] == "Rollback to v1")
        })
        .await;
    browser
        .until(
            30,
            "the rollback's release marked current in the page",
            "[...document.querySelectorAll('#tab tr[data-release]')].some(r => r.innerText.includes('Rollback to v1') && r.innerText.includes('current'))",
        )
        .await;
    stack.app_in(&carol, app, "running").await;

    // A git application's build log streams live into its Deploys tab.
    let repo = Repo::new(&[(
        "Dockerfile",
        &*format!("FROM {WEB_IMAGE}\nRUN echo '<b>built by the console test</b>'\n"),
    )]);
    let (status, git_app) = stack
        .post(
            "/api/paas/applications",
            &carol,
            json!({"name": "git-console", "plan_id": plan, "region": "local", "git_repo_url": repo.url()}),
        )
        .await;
    assert_eq!(status, 201, "{git_app}");
    let git_app = git_app["id"].as_i64().unwrap();
    browser
        .open(&format!("{}/#/apps/{git_app}/deploys", stack.base))
        .await;
    browser
        .until(
            20,
            "the git application's deploy button",
            &format!(
                "{}.includes('git-console') && !!document.querySelector('#deploy-now')",
                text_of("h1")
            ),
        )
        .await;
    browser.click("#deploy-now").await;
    browser
        .until(
            120,
            "the build's own line in the live log",
            &format!(
                "{}.includes('<b>built by the console test</b>')",
                text_of("#build-log")
            ),
        )
        .await;
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#build-log b').length")
            .await,
        0
    );

    // Delete by typing the name: the button stays off until it matches.
    browser
        .open(&format!("{}/#/apps/{app}/settings", stack.base))
        .await;
    browser
        .until(
            20,
            "the delete box",
            "!!document.querySelector('#delete-confirm')",
        )
        .await;
    browser.fill(&[("#delete-confirm", "web-consol")]).await;
    assert_eq!(
        browser
            .eval("document.querySelector('#delete-app').disabled")
            .await,
        true
    );
    browser.fill(&[("#delete-confirm", "web-console")]).await;
    browser.click("#delete-app").await;
    browser
        .until(60, "the list without the deleted application", &format!("location.hash === '#/apps' && !!document.querySelector('#apps') && !document.querySelector('[data-app=\"{app}\"]')"))
        .await;

    // A cross-site form posted with the browser's session cookie is refused:
    // no API token appears.
    let port = attacker_page(&stack.base).await;
    browser.open(&format!("http://127.0.0.1:{port}/")).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let tokens = stack.get("/api/auth/tokens", &carol).await;
    assert_eq!(tokens.as_array().unwrap().len(), 0, "{tokens}");

    // Logging out ends the session: the page asks for a login again.
    browser.open(&format!("{}/#/apps", stack.base)).await;
    browser
        .until(
            20,
            "the log-out button",
            "!!document.querySelector('#logout')",
        )
        .await;
    browser.click("#logout").await;
    browser.until_login_form(20).await;
    browser.open(&format!("{}/#/apps", stack.base)).await;
    browser.until_login_form(20).await;
}

#[tokio::test]
async fn an_admin_creates_a_plan_and_runtime_registers_a_node_and_credits_a_customer() {
    let stack = Stack::start(Timing::default()).await;
    let mut browser = Browser::start().await;
    browser
        .log_in(
            &format!("{}/admin#/plans", stack.base),
            "admin@example.com",
            PASSWORD,
        )
        .await;

    // A plan: the API's error beside its field, then created.
    browser.open(&format!("{}/admin#/plans", stack.base)).await;
    browser
        .until(
            20,
            "the plan form",
            "!!document.querySelector('#create-plan-name')",
        )
        .await;
    let plan = [
        ("#create-plan-name", "hobby"),
        ("#create-plan-cpu_limit", "0"),
        ("#create-plan-memory_limit", "256"),
        ("#create-plan-storage_limit", "1024"),
        ("#create-plan-monthly_price", "5.00"),
        ("#create-plan-hourly_rate", "0.0070"),
    ];
    browser.fill(&plan).await;
    browser.click("#create-plan-submit").await;
    browser.until_field_error("create-plan-cpu_limit").await;
    browser.fill(&[("#create-plan-cpu_limit", "250")]).await;
    browser.click("#create-plan-submit").await;
    browser
        .until(
            10,
            "the plan in the list",
            &format!("{}.includes('hobby')", text_of("#plans")),
        )
        .await;
    let plans = stack.get("/api/admin/paas/plans", &stack.admin).await;
    let plan_id = plans
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hobby")
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    // A runtime.
    browser
        .open(&format!("{}/admin#/runtimes", stack.base))
        .await;
    browser
        .until(
            20,
            "the runtime form",
            "!!document.querySelector('#create-runtime-name')",
        )
        .await;
    browser
        .fill(&[
            ("#create-runtime-name", "Go 1.22"),
            ("#create-runtime-runtime_type", "docker"),
            ("#create-runtime-version", "1.22"),
            ("#create-runtime-base_image", "golang:1.22"),
        ])
        .await;
    browser.click("#create-runtime-submit").await;
    browser
        .until(
            10,
            "the runtime in the list",
            &format!("{}.includes('Go 1.22')", text_of("#runtimes")),
        )
        .await;

    // A node: its install command is shown once, in a box to copy, and
    // carries no token.
    browser.open(&format!("{}/admin#/nodes", stack.base)).await;
    browser
        .until(
            20,
            "the node form",
            "!!document.querySelector('#register-node-name')",
        )
        .await;
    browser
        .fill(&[
            ("#register-node-name", "worker-9"),
            ("#register-node-region", "local"),
            ("#register-node-host_address", "127.0.0.1"),
        ])
        .await;
    browser.click("#register-node-submit").await;
    browser
        .until(
            10,
            "the install command",
            "!!document.querySelector('#install-command code')",
        )
        .await;
    let command = browser.eval(&text_of("#install-command code")).await;
    let token = browser.eval(&text_of("#registration-token code")).await;
    let (command, token) = (command.as_str().unwrap(), token.as_str().unwrap());
    assert!(token.starts_with("spr_"), "{token}");
    assert!(!command.contains(token), "{command}");
    browser
        .until(
            10,
            "the node in the list",
            &format!("{}.includes('worker-9')", text_of("#nodes")),
        )
        .await;

    // A customer with an application, found by e-mail and credited.
    let dave = stack.customer("dave@example.com").await;
    let (status, app) = stack
        .post(
            "/api/paas/applications",
            &dave,
            json!({"name": "daves-shop", "plan_id": plan_id, "region": "local", "image": WEB_IMAGE}),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    browser
        .open(&format!("{}/admin#/customers", stack.base))
        .await;
    browser
        .until(
            20,
            "the search box",
            "!!document.querySelector('#customer-search')",
        )
        .await;
    browser.fill(&[("#customer-search", "DAVE")]).await;
    browser
        .until(
            10,
            "only dave",
            &format!(
                "{t}.includes('dave@example.com') && !{t}.includes('admin@example.com')",
                t = text_of("#customers")
            ),
        )
        .await;
    browser.click("#customers a").await;
    browser
        .until(
            20,
            "dave's page with the application",
            &format!("{}.includes('daves-shop')", text_of("main")),
        )
        .await;
    browser
        .fill(&[("#credit-amount", "20.00"), ("#credit-reference", "pay_1")])
        .await;
    browser.click("#credit-submit").await;
    browser
        .until(
            10,
            "the new balance",
            &format!("{}.includes('20.0000')", text_of("#customer-balance")),
        )
        .await;
    let wallet = stack.get("/api/wallet", &dave).await;
    assert_eq!(wallet["balance"], "20.0000");

    // Suspend with a reason (an empty one is refused beside its field); the
    // customer's console says why; resume.
    browser.click("#suspend-submit").await;
    browser.until_field_error("suspend-reason").await;
    browser
        .fill(&[("#suspend-reason", "unpaid invoice 2026-11")])
        .await;
    browser.click("#suspend-submit").await;
    browser
        .until(
            10,
            "the suspension shown",
            &format!(
                "{}.includes('unpaid invoice 2026-11') && !!document.querySelector('#resume-user')",
                text_of("#suspension")
            ),
        )
        .await;
    assert_eq!(
        stack.get("/api/auth/me", &dave).await["suspension_reason"],
        "unpaid invoice 2026-11"
    );
    let mut daves = Browser::start().await;
    daves
        .log_in(&format!("{}/", stack.base), "dave@example.com", PASSWORD)
        .await;
    daves
        .until(
            20,
            "the banner",
            &format!(
                "{}.includes('unpaid invoice 2026-11')",
                text_of("#suspended-banner")
            ),
        )
        .await;
    browser.click("#resume-user").await;
    browser
        .until(
            10,
            "the suspend form again",
            "!!document.querySelector('#suspend-reason')",
        )
        .await;
    assert_eq!(
        stack.get("/api/auth/me", &dave).await["suspended_at"],
        Value::Null
    );

    // A customer's session is not let into the admin console.
    let mut other = Browser::start().await;
    other
        .log_in(
            &format!("{}/admin", stack.base),
            "dave@example.com",
            PASSWORD,
        )
        .await;
    other
        .until(
            10,
            "the refusal",
            &format!("{}.includes('needs an admin account')", text_of("main")),
        )
        .await;
}

#[tokio::test]
async fn docker_a_customer_deletes_their_account_and_its_applications_leave_the_node() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, _agent) = stack.node("worker-1").await;
    let gina = stack.customer("gina@example.com").await;
    let gina_id = stack.get("/api/auth/me", &gina).await["id"]
        .as_i64()
        .unwrap();
    let (status, _) = stack
        .post(
            &format!("/api/admin/wallets/{gina_id}/credit"),
            &stack.admin,
            json!({"amount": "10.00", "description": "before deletion"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, app) = stack
        .post(
            "/api/paas/applications",
            &gina,
            json!({"name": "ginas-app", "plan_id": plan, "region": "local", "image": WEB_IMAGE}),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    let app = app["id"].as_i64().unwrap();
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/deploy"),
            &gina,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(&gina, app, "running").await;
    assert_eq!(stack.running(app), 1);

    // From the console: the e-mail typed exactly, then the password.
    let mut browser = Browser::start().await;
    browser
        .log_in(
            &format!("{}/#/account", stack.base),
            "gina@example.com",
            PASSWORD,
        )
        .await;
    browser
        .until(
            20,
            "the account page",
            "!!document.querySelector('#delete-account-confirm')",
        )
        .await;
    browser
        .fill(&[
            ("#delete-account-confirm", "gina@example.org"),
            ("#delete-account-password", PASSWORD),
        ])
        .await;
    browser.click("#delete-account-submit").await;
    browser.until_field_error("delete-account-confirm").await;
    browser
        .fill(&[
            ("#delete-account-confirm", "gina@example.com"),
            ("#delete-account-password", "not it at all"),
        ])
        .await;
    browser.click("#delete-account-submit").await;
    browser.until_field_error("delete-account-password").await;
    assert_eq!(
        stack.get("/api/auth/me", &gina).await["id"],
        gina_id,
        "nothing happened yet"
    );
    browser
        .fill(&[("#delete-account-password", PASSWORD)])
        .await;
    browser.click("#delete-account-submit").await;
    browser.until_login_form(20).await;

    // Every credential is dead at once; the application leaves the node.
    let (status, _) = stack.call(Method::GET, "/api/auth/me", &gina, None).await;
    assert_eq!(status, 401);
    stack
        .until(60, "the application's containers removed", || async {
            stack.containers(app).is_empty()
        })
        .await;

    // The ledger stays, under an anonymous address; the e-mail is free.
    stack
        .until(60, "the application's row removed", || async {
            stack
                .get(&format!("/api/admin/users/{gina_id}"), &stack.admin)
                .await["applications"]
                == json!([])
        })
        .await;
    let kept = stack
        .get(&format!("/api/admin/users/{gina_id}"), &stack.admin)
        .await;
    assert_eq!(
        kept["user"]["email"],
        format!("deleted-{gina_id}@deleted.invalid")
    );
    assert_eq!(
        kept["wallet"]["transactions"][0]["description"],
        "before deletion"
    );
    assert_eq!(kept["applications"], json!([]));
    let again = stack.customer("gina@example.com").await;
    let me = stack.get("/api/auth/me", &again).await;
    assert_ne!(me["id"], gina_id);
    assert_eq!(stack.get("/api/paas/applications", &again).await, json!([]));

    // An admin deletes a customer the same way; never an admin, and a
    // customer deletes nobody else.
    let hal = stack.customer("hal@example.com").await;
    let hal_id = stack.get("/api/auth/me", &hal).await["id"]
        .as_i64()
        .unwrap();
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/api/admin/users/{hal_id}"),
            &again,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, answer) = stack
        .call(
            Method::DELETE,
            &format!("/api/admin/users/{hal_id}"),
            &stack.admin,
            None,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let (status, _) = stack.call(Method::GET, "/api/auth/me", &hal, None).await;
    assert_eq!(status, 401);
    let admin_id = stack.get("/api/auth/me", &stack.admin).await["id"]
        .as_i64()
        .unwrap();
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/api/admin/users/{admin_id}"),
            &stack.admin,
            None,
        )
        .await;
    assert_eq!(status, 409);
}
