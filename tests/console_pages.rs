//! Every page of the web console, in headless Chromium and Firefox, at a desktop's and
//! a phone's width: it draws without an error and without a page wider than
//! the screen, and its screenshot is saved under `target/console-screenshots/`
//! (the README shows two). And a log flood: an application writing 10,000
//! lines a second for 10 s does not freeze the page that tails it.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use stack::browser::Browser;
use stack::{PASSWORD, Repo, Stack, Timing, WEB_IMAGE};

/// The sizes every page is drawn at: a laptop's and a phone's.
const SIZES: [(u32, u32); 2] = [(1400, 900), (390, 844)];

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
}

/// Opens `url`, waits until its view has drawn (a heading, nothing still
/// loading, no error), checks nothing is wider than the screen, and saves
/// its screenshot as `name` at each size.
async fn page(browser: &mut Browser, url: &str, name: &str) {
    for (width, height) in SIZES {
        browser.viewport(width, height).await;
        browser.open(url).await;
        browser
            .until(
                20,
                &format!("{name} drawn at {width} px"),
                "!!document.querySelector('main h1') && !document.querySelector('main').innerText.includes('Loading…')
                 && !document.querySelector('#tab p:only-child:empty')",
            )
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let errors = browser
            .eval("[...document.querySelectorAll('main .error[role=alert]:not([hidden])')].map(e => e.innerText)")
            .await;
        assert_eq!(errors, json!([]), "{name} at {width} px shows an error");
        // (A phone's browser widens its layout to fit what overflows, so the
        // page is measured against the screen, not against innerWidth.)
        let wide = browser.eval("document.documentElement.scrollWidth").await;
        assert!(
            wide.as_i64().unwrap() <= i64::from(width),
            "{name} at {width} px is {wide} px wide"
        );
        browser
            .screenshot(&screenshots().join(format!("{name}-{width}x{height}.png")))
            .await;
    }
}

#[tokio::test]
async fn docker_every_console_page_draws_at_a_desktop_and_a_phone_width() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, _agent) = stack.node("worker-1").await;
    let erin = stack.customer("erin@example.com").await;
    let (status, app) = stack
        .post(
            "/api/paas/applications",
            &erin,
            json!({"name": "erins-site", "plan_id": plan, "region": "local", "image": WEB_IMAGE}),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    let app = app["id"].as_i64().unwrap();
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/deploy"),
            &erin,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(&erin, app, "running").await;
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{app}/env"),
            &erin,
            json!({"key": "GREETING", "value": "hello"}),
        )
        .await;
    assert_eq!(status, 201);

    // The overview's one read: the figures, the instances, the release.
    let overview = stack
        .get(&format!("/api/paas/applications/{app}/overview"), &erin)
        .await;
    assert_eq!(overview["metrics"]["application_id"], app, "{overview}");
    assert_eq!(overview["current_release"]["current"], true, "{overview}");
    assert!(overview["instances"].is_array(), "{overview}");

    let user = stack.get("/api/auth/me", &erin).await["id"]
        .as_i64()
        .unwrap();
    // The same walk in both browsers the console supports.
    every_page(&stack.base, app, user, Browser::start, "").await;
    every_page(&stack.base, app, user, Browser::start_firefox, "firefox-").await;
}

/// Every page of both consoles in the browser `start` opens, each saved
/// as `{prefix}{page}-{width}x{height}.png`.
async fn every_page<F, S>(base: &str, app: i64, user: i64, start: F, prefix: &str)
where
    F: Fn() -> S,
    S: std::future::Future<Output = Browser>,
{
    let mut browser = start().await;
    browser.viewport(1400, 900).await;
    browser.open(&format!("{base}/")).await;
    browser.until_login_form(20).await;
    browser
        .screenshot(&screenshots().join(format!("{prefix}login-1400x900.png")))
        .await;
    browser
        .log_in(&format!("{base}/#/apps"), "erin@example.com", PASSWORD)
        .await;
    let customer_pages = [
        ("#/apps", "apps".to_string()),
        ("#/apps/new", "new-app".into()),
        ("#/databases", "databases".into()),
        ("#/wallet", "wallet".into()),
        ("#/notifications", "notifications".into()),
        ("#/account", "account".into()),
    ];
    for (hash, name) in customer_pages {
        page(
            &mut browser,
            &format!("{base}/{hash}"),
            &format!("{prefix}{name}"),
        )
        .await;
    }
    for tab in [
        "overview",
        "deploys",
        "environment",
        "domains",
        "databases",
        "logs",
        "settings",
    ] {
        page(
            &mut browser,
            &format!("{base}/#/apps/{app}/{tab}"),
            &format!("{prefix}app-{tab}"),
        )
        .await;
        if tab == "overview" {
            browser
                .until(
                    20,
                    "the current release and a running instance",
                    "document.querySelector('#current-release').innerText.startsWith('v')
                     && [...document.querySelectorAll('#tab table td')].some(td => td.innerText === 'running')",
                )
                .await;
        }
    }
    // Logging out ends the session (a DELETE with the CSRF token).
    browser.click("#logout").await;
    browser.until_login_form(20).await;

    let mut admin = start().await;
    admin.viewport(1400, 900).await;
    admin
        .log_in(&format!("{base}/admin"), "admin@example.com", PASSWORD)
        .await;
    for view in [
        "overview".to_string(),
        "plans".into(),
        "runtimes".into(),
        "engines".into(),
        "nodes".into(),
        "customers".into(),
        format!("customers/{user}"),
        "audit".into(),
    ] {
        page(
            &mut admin,
            &format!("{base}/admin#/{view}"),
            &format!("{prefix}admin-{}", view.replace('/', "-")),
        )
        .await;
    }
}

#[tokio::test]
async fn docker_a_log_flood_leaves_the_console_responsive_with_its_memory_bounded() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let frank = stack.customer("frank@example.com").await;
    // GET /cgi-bin/flood makes the application write 10,000 lines a second
    // for 10 s to its own output (its first process's).
    let flood = "#!/bin/sh\necho Content-Type: text/plain\necho\n\
                 ( j=0; while [ $j -lt 10 ]; do i=0; while [ $i -lt 10000 ]; do \
                 echo \"flood $j $i <b>not bold</b>\"; i=$((i+1)); done; sleep 1; j=$((j+1)); done ) \
                 > /proc/1/fd/1 2>&1 &\necho started\n";
    let repo = Repo::new(&[
        (
            "Dockerfile",
            &*format!(
                "FROM {WEB_IMAGE}\nCOPY flood /www/cgi-bin/flood\nRUN [\"/bin/sh\", \"-c\", \"chmod 755 /www/cgi-bin/flood\"]\n"
            ),
        ),
        ("flood", flood),
    ]);
    let app = stack.git_app(&frank, "noisy", plan, &repo.url()).await;
    let build = stack.start_deploy(&frank, app).await;
    assert_eq!(
        stack.build_ends(&frank, app, build).await["status"],
        "success"
    );
    let running = stack.app_in(&frank, app, "running").await;

    let mut browser = Browser::start().await;
    browser
        .log_in(
            &format!("{}/#/apps/{app}/logs", stack.base),
            "frank@example.com",
            PASSWORD,
        )
        .await;
    browser
        .until(60, "the log view", "!!document.querySelector('#app-log')")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let host = running["system_domain"].as_str().unwrap().to_string();
    let port = agent.ingress_port;
    let (status, body) = stack::through_ingress(port, &host, "/cgi-bin/flood")
        .await
        .expect("the flood starts");
    assert_eq!((status, body.trim()), (200, "started"));

    // While it floods: Pause and Resume clicked are answered within a frame
    // (the round trip measured from here, through the DevTools protocol),
    // and the page holds no more than its cap of lines.
    let started = Instant::now();
    let mut slowest = 0.0f64;
    let mut clicks = 0;
    let mut most_lines = 0;
    while started.elapsed() < Duration::from_secs(12) {
        let asked = Instant::now();
        let answer = browser
            .eval(
                "new Promise(resolve => { const t = performance.now();
                   const pause = document.querySelector('#log-pause');
                   pause.click(); pause.click();
                   requestAnimationFrame(() => resolve([performance.now() - t,
                     document.querySelector('#app-log').childElementCount])); })",
            )
            .await;
        let round_trip = asked.elapsed().as_secs_f64() * 1000.0;
        slowest = slowest.max(round_trip);
        most_lines = most_lines.max(answer[1].as_i64().unwrap());
        clicks += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The flood reached the page, and no line became markup.
    browser
        .until(60, "flooded lines in the page", "[...document.querySelectorAll('#app-log .line')].some(l => l.textContent.includes('flood 9'))")
        .await;
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#app-log b').length")
            .await,
        0
    );
    let heap = browser.heap_used().await;
    println!(
        "log flood: {clicks} clicks, slowest round trip {slowest:.0} ms, at most {most_lines} lines in the page, JS heap {:.1} MB",
        heap / 1e6
    );
    assert!(most_lines <= 1000, "{most_lines} lines kept");
    assert!(
        slowest < 2000.0,
        "a click took {slowest:.0} ms to be answered during the flood"
    );
    assert!(heap < 100e6, "JS heap {heap} bytes");
}
