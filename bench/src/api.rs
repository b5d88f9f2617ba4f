//! `skypanel-bench-api`: the customer API's read path under load.
//!
//! `setup` makes a customer with a few applications on a running control
//! plane and prints their access token (for `wrk`). `rate` sends requests
//! at a fixed rate (open loop: a slow answer does not delay the next send)
//! and prints p50, p99 and max from send to answer, answers that were not
//! 200, the rate reached, and how far sends fell behind their schedule (a
//! server that stalls fills the in-flight cap and delays them).
//!
//! `bench/api.sh` starts a control plane and runs both, with `wrk` for the
//! closed-loop throughput.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod client;

use anyhow::Context;
use clap::{Parser, Subcommand};
use client::{Api, login};
use serde_json::json;
use tokio::sync::Semaphore;

#[derive(Parser, Debug)]
struct Args {
    /// The control plane, e.g. http://127.0.0.1:8080
    #[arg(long)]
    control_plane: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Makes a customer with applications; prints its access token.
    Setup {
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_password: String,
        /// Applications the customer owns (what the list answers).
        #[arg(long, default_value_t = 10)]
        apps: usize,
        /// The customer's password (to log in to the console).
        #[arg(long, default_value = "bench password 1")]
        password: String,
    },
    /// Sends GET requests at a fixed rate; prints their latency.
    Rate {
        /// The path, e.g. /api/paas/applications
        #[arg(long)]
        path: String,
        /// A bearer token to send, if any.
        #[arg(long)]
        token: Option<String>,
        /// Requests per second.
        #[arg(long, default_value_t = 5000)]
        rate: u64,
        /// Seconds of measurement (after one second of warm-up).
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Requests in flight at most (more are counted as late, not dropped).
        #[arg(long, default_value_t = 512)]
        in_flight: usize,
    },
}

async fn setup(
    base: &str,
    admin_email: &str,
    admin_password: &str,
    apps: usize,
    password: &str,
) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let api = |token: Option<String>| Api {
        http: http.clone(),
        base: base.to_string(),
        token,
    };
    let post = reqwest::Method::POST;
    let admin = api(Some(login(&http, base, admin_email, admin_password).await?));
    let plan = admin
        .call(
            post.clone(),
            "/admin/paas/plans",
            Some(
                json!({"name": format!("bench-api-{}", std::process::id()), "cpu_limit": 500,
                        "memory_limit": 128, "storage_limit": 1024,
                        "monthly_price": "5.00", "hourly_rate": "0.0070"}),
            ),
        )
        .await?["id"]
        .as_i64()
        .context("plan id")?;
    // Applications are created in a region some node serves.
    admin
        .call(
            post.clone(),
            "/admin/paas/nodes/register",
            Some(
                json!({"name": format!("bench-api-{}", std::process::id()), "region": "local",
                        "host_address": "127.0.0.1"}),
            ),
        )
        .await?;
    let email = format!("bench-api-{}@example.com", std::process::id());
    api(None)
        .call(
            post.clone(),
            "/auth/register",
            Some(json!({"email": email, "password": password})),
        )
        .await?;
    let token = login(&http, base, &email, password).await?;
    let customer = api(Some(token.clone()));
    for n in 0..apps {
        customer
            .call(
                post.clone(),
                "/paas/applications",
                Some(
                    json!({"name": format!("bench-app-{n}"), "plan_id": plan, "region": "local",
                            "image": "skypanel-sample/hello:1"}),
                ),
            )
            .await?;
    }
    Ok(token)
}

/// The figures of one fixed-rate run.
struct Figures {
    latencies: Vec<Duration>,
    not_ok: usize,
    /// The most a send was behind its schedule.
    behind: Duration,
    elapsed: Duration,
}

async fn rate(
    base: &str,
    path: &str,
    token: Option<String>,
    rate: u64,
    duration: u64,
    in_flight: usize,
) -> anyhow::Result<Figures> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .build()?;
    let url = format!("{base}{path}");
    let limit = Arc::new(Semaphore::new(in_flight));
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let warmup = rate as usize;
    let total = warmup + (rate * duration) as usize;
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total);
    for n in 0..total {
        let due = start + period * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let permit = limit.clone().acquire_owned().await?;
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        handles.push(tokio::spawn(async move {
            // Latency counts from the send: the timer's own millisecond of
            // lateness is the client's, not the server's. A server that
            // stalls shows as sends behind schedule (the in-flight cap).
            let sent = Instant::now();
            let behind = sent.saturating_duration_since(due);
            let mut request = http.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let ok = match request.send().await {
                Ok(answer) => answer.status() == 200 && answer.bytes().await.is_ok(),
                Err(_) => false,
            };
            drop(permit);
            (sent.elapsed(), behind, ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total - warmup);
    let (mut not_ok, mut behind) = (0, Duration::ZERO);
    for (n, handle) in handles.into_iter().enumerate() {
        let (latency, late, ok) = handle.await?;
        if n < warmup {
            continue;
        }
        latencies.push(latency);
        behind = behind.max(late);
        if !ok {
            not_ok += 1;
        }
    }
    let elapsed = start.elapsed() - period * warmup as u32;
    Ok(Figures {
        latencies,
        not_ok,
        behind,
        elapsed,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = args.control_plane.trim_end_matches('/').to_string();
    match args.command {
        Command::Setup {
            admin_email,
            admin_password,
            apps,
            password,
        } => {
            let token = setup(&base, &admin_email, &admin_password, apps, &password).await?;
            println!("{token}");
        }
        Command::Rate {
            path,
            token,
            rate: per_second,
            duration,
            in_flight,
        } => {
            let mut figures = rate(&base, &path, token, per_second, duration, in_flight).await?;
            figures.latencies.sort();
            let n = figures.latencies.len();
            let at = |q: f64| figures.latencies[((n as f64 * q) as usize).min(n - 1)];
            println!(
                "GET {path} at {per_second}/s for {duration} s: {n} requests, {:.0}/s reached, \
                 p50 {}  p99 {}  max {}, {} not 200, sends behind schedule by {} at most",
                n as f64 / figures.elapsed.as_secs_f64(),
                ms(at(0.50)),
                ms(at(0.99)),
                ms(figures.latencies[n - 1]),
                figures.not_ok,
                ms(figures.behind)
            );
        }
    }
    Ok(())
}
