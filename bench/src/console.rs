//! `skypanel-bench-console`: how fast the web console draws, in headless
//! Chromium on this machine. For the application list (of however many
//! applications the customer has) and for one application's page, after a
//! first visit has cached the assets: first contentful paint, the time the
//! view has drawn the API's answer (the console marks it with the User
//! Timing API: `skypanel:apps-drawn`, `skypanel:app-drawn`), and the
//! requests the load sent to the network. Prints the median and the worst
//! of `--rounds` loads each.
//!
//! `bench/console.sh` starts a control plane with a customer of 200
//! applications and runs it.

#[path = "../../tests/stack/browser.rs"]
#[allow(dead_code, clippy::unwrap_used)] // shared with the tests, which use all of it
mod browser;

use anyhow::Context;
use browser::Browser;
use clap::Parser;
use serde_json::Value;

#[derive(Parser, Debug)]
struct Args {
    /// The control plane, e.g. http://127.0.0.1:8080
    #[arg(long)]
    control_plane: String,
    /// The customer's access token (to find their e-mail and applications).
    #[arg(long)]
    token: String,
    /// The customer's password (to log in to the console).
    #[arg(long, default_value = "bench password 1")]
    password: String,
    /// Loads measured per page.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
}

/// One load of a page.
struct Load {
    first_paint: f64,
    drawn: f64,
    requests: Vec<String>,
}

async fn load(browser: &mut Browser, url: &str, mark: &str) -> anyhow::Result<Load> {
    browser.open("about:blank").await;
    browser.count_requests().await;
    browser.open(url).await;
    browser
        .until(
            30,
            "the view drawn",
            &format!("performance.getEntriesByName('{mark}').length > 0"),
        )
        .await;
    let times = browser
        .eval(&format!(
            "[(performance.getEntriesByName('first-contentful-paint')[0] || {{startTime: -1}}).startTime,
              performance.getEntriesByName('{mark}')[0].startTime]"
        ))
        .await;
    let number = |v: &Value| v.as_f64().context("a time");
    Ok(Load {
        first_paint: number(&times[0])?,
        drawn: number(&times[1])?,
        requests: browser.requests(),
    })
}

fn summary(name: &str, loads: &[Load]) {
    let mut paint: Vec<f64> = loads.iter().map(|l| l.first_paint).collect();
    let mut drawn: Vec<f64> = loads.iter().map(|l| l.drawn).collect();
    paint.sort_by(f64::total_cmp);
    drawn.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];
    let requests = loads.iter().map(|l| l.requests.len()).max().unwrap_or(0);
    println!(
        "{name}: first paint median {:.0} ms (worst {:.0}), drawn with its data median {:.0} ms (worst {:.0}), {requests} requests per load",
        median(&paint),
        paint[paint.len() - 1],
        median(&drawn),
        drawn[drawn.len() - 1],
    );
    if let Some(last) = loads.last() {
        for url in &last.requests {
            println!("    {url}");
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = args.control_plane.trim_end_matches('/').to_string();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{base}/api{path}"))
            .bearer_auth(&args.token)
            .send()
    };
    let me: Value = get("/auth/me").await?.json().await?;
    let email = me["email"].as_str().context("the customer's e-mail")?;
    let apps: Value = get("/paas/applications?limit=200").await?.json().await?;
    let count = apps.as_array().map_or(0, Vec::len);
    let app = apps[0]["id"].as_i64().context("an application")?;

    let mut browser = Browser::start().await;
    browser.viewport(1400, 900).await;
    browser
        .log_in(&format!("{base}/"), email, &args.password)
        .await;

    let list = format!("{base}/#/apps");
    let page = format!("{base}/#/apps/{app}/overview");
    // A first visit of each caches the assets.
    load(&mut browser, &list, "skypanel:apps-drawn").await?;
    load(&mut browser, &page, "skypanel:app-drawn").await?;
    let mut lists = Vec::new();
    let mut pages = Vec::new();
    for _ in 0..args.rounds {
        lists.push(load(&mut browser, &list, "skypanel:apps-drawn").await?);
        pages.push(load(&mut browser, &page, "skypanel:app-drawn").await?);
    }
    summary(&format!("application list ({count} applications)"), &lists);
    summary("application page (overview)", &pages);
    Ok(())
}
