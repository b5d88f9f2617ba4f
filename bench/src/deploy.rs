//! `skypanel-bench-deploy`: how long a deploy takes to its first answer.
//!
//! 1. An image already on the node: `POST /deploy` → the first 200 through
//!    the node's ingress, beside the same image started with plain
//!    `docker run` and a wait for its published port's first 200, in turns
//!    in the same run. Prints both (median, p90) and the ratio of medians.
//! 2. A cold build from git (a Dockerfile on the same image, a fresh layer
//!    each round): `POST /deploy` → first 200, beside a plain `docker build`
//!    of the same context; the control plane's own share is the difference
//!    (what remains after the image build and a container start).
//!
//! 3. Releases (with `--registry`): an environment change to the first
//!    request answering the new value, and a release the node must pull from
//!    the registry beside `docker pull` + `docker run` of the same digest
//!    (see `release_rounds`).
//!
//! 4. An attached one-off run's keystroke latency (a byte echoed by `cat`)
//!    through the control plane's relay, beside `docker run -i` (see
//!    `run_latency`).
//!
//! `bench/deploy.sh` starts a control plane, a registry and an agent and runs this.

mod client;
mod release_rounds;
mod run_latency;

use client::{Api, login};

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    control_plane: String,
    #[arg(long)]
    admin_email: String,
    #[arg(long)]
    admin_password: String,
    /// The node's ingress port on 127.0.0.1.
    #[arg(long)]
    ingress_port: u16,
    /// The platform domain (system domains are `<slug>.<domain>`).
    #[arg(long, default_value = "localhost")]
    platform_domain: String,
    /// An image on the node answering 200 on `$PORT`.
    #[arg(long)]
    image: String,
    /// Rounds of each measurement.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Rounds of the cold build (each builds a fresh layer).
    #[arg(long, default_value_t = 5)]
    build_rounds: usize,
    /// The platform's registry (`host:port`): measure the release rounds.
    #[arg(long)]
    registry: Option<String>,
    /// The platform's JWT secret (a ticket for the plain `docker pull` is
    /// signed with a key derived from it).
    #[arg(long, env = "SKYPANEL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

/// Polls `url` (with `host`, if any) every 10 ms until it answers 200.
async fn first_200(
    http: &reqwest::Client,
    url: &str,
    host: Option<&str>,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let mut request = http.get(url).timeout(Duration::from_secs(2));
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Ok(answer) = request.send().await
            && answer.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} never answered 200");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker").args(args).output()?;
    if !out.status.success() {
        bail!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.9))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Waits until the application's status is `running`.
async fn running(api: &Api, app: i64) -> anyhow::Result<()> {
    for _ in 0..600 {
        let a = api
            .call(
                reqwest::Method::GET,
                &format!("/paas/applications/{app}"),
                None,
            )
            .await?;
        match a["status"].as_str() {
            Some("running") => return Ok(()),
            Some("failed") => bail!("the app failed: {}", a["last_error"]),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    bail!("the app never ran")
}

async fn delete(api: &Api, app: i64) -> anyhow::Result<()> {
    api.call(
        reqwest::Method::DELETE,
        &format!("/paas/applications/{app}"),
        None,
    )
    .await?;
    for _ in 0..300 {
        let gone = api
            .http
            .get(format!("{}/api/paas/applications/{app}", api.base))
            .bearer_auth(api.token.as_deref().unwrap_or_default())
            .send()
            .await?
            .status()
            == 404;
        if gone {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("app {app} was not deleted")
}

/// One platform round: create an image app, deploy, first 200 through the ingress.
async fn platform_round(
    api: &Api,
    args: &Args,
    plan: i64,
    round: usize,
) -> anyhow::Result<Duration> {
    let name = format!("bench-image-{round}");
    let app = api
        .call(
            reqwest::Method::POST,
            "/paas/applications",
            Some(json!({"name": name, "plan_id": plan, "region": "local", "image": args.image})),
        )
        .await?["id"]
        .as_i64()
        .context("app id")?;
    let host = format!("{name}.{}", args.platform_domain);
    let url = format!("http://127.0.0.1:{}/", args.ingress_port);
    let started = Instant::now();
    api.call(
        reqwest::Method::POST,
        &format!("/paas/applications/{app}/deploy"),
        Some(json!({})),
    )
    .await?;
    first_200(&api.http, &url, Some(&host), Duration::from_secs(60)).await?;
    let took = started.elapsed();
    running(api, app).await?;
    delete(api, app).await?;
    Ok(took)
}

/// One `docker run` round: start the image, first 200 on its published port.
async fn docker_round(http: &reqwest::Client, image: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let id = docker(&[
        "run",
        "-d",
        "-e",
        "PORT=8080",
        "-p",
        "127.0.0.1::8080",
        image,
    ])?;
    let port = docker(&["port", &id, "8080/tcp"])?;
    let port = port
        .lines()
        .next()
        .context("no port")?
        .rsplit(':')
        .next()
        .context("port")?
        .to_string();
    let result = first_200(
        http,
        &format!("http://127.0.0.1:{port}/"),
        None,
        Duration::from_secs(60),
    )
    .await;
    let took = started.elapsed();
    docker(&["rm", "-f", &id])?;
    result.map(|()| took)
}

/// A git repository whose Dockerfile (unless it has one already) adds a
/// fresh layer to `image`.
fn repo(dir: &std::path::Path, image: &str, round: usize) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir)?;
    if !dir.join("Dockerfile").exists() {
        std::fs::write(
            dir.join("Dockerfile"),
            format!("FROM {image}\nCOPY index.html /www/index.html\n"),
        )?;
    }
    std::fs::write(
        dir.join("index.html"),
        format!("round {round} {:?}\n", Instant::now()),
    )?;
    let git = |args: &[&str]| -> anyhow::Result<()> {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.com",
            ])
            .args(args)
            .output()?
            .status
            .success();
        if ok {
            Ok(())
        } else {
            bail!("git {args:?} failed")
        }
    };
    if !dir.join(".git").exists() {
        git(&["init", "--quiet", "--initial-branch", "main"])?;
    }
    git(&["add", "-A"])?;
    git(&["commit", "--quiet", "-m", &format!("round {round}")])?;
    Ok(format!("file://{}", dir.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::new();
    let base = args.control_plane.trim_end_matches('/').to_string();
    let admin = login(&http, &base, &args.admin_email, &args.admin_password).await?;
    let admin_api = Api {
        http: http.clone(),
        base: base.clone(),
        token: Some(admin),
    };
    let plan = admin_api
        .call(
            reqwest::Method::POST,
            "/admin/paas/plans",
            Some(
                json!({"name": format!("bench-{}", std::process::id()), "cpu_limit": 500,
                        "memory_limit": 128, "storage_limit": 1024,
                        "monthly_price": "5.00", "hourly_rate": "0.0070"}),
            ),
        )
        .await?["id"]
        .as_i64()
        .context("plan id")?;
    let email = format!("bench-{}@example.com", std::process::id());
    http.post(format!("{base}/api/auth/register"))
        .json(&json!({"email": email, "password": "bench password 1"}))
        .send()
        .await?;
    let api = Api {
        http: http.clone(),
        base: base.clone(),
        token: Some(login(&http, &base, &email, "bench password 1").await?),
    };

    // One application stays deployed throughout, as a customer's first one
    // would: its network exists, as it does for every later deploy.
    let keeper = api
        .call(
            reqwest::Method::POST,
            "/paas/applications",
            Some(json!({"name": "bench-keeper", "plan_id": plan, "region": "local", "image": args.image})),
        )
        .await?["id"]
        .as_i64()
        .context("app id")?;
    api.call(
        reqwest::Method::POST,
        &format!("/paas/applications/{keeper}/deploy"),
        Some(json!({})),
    )
    .await?;
    running(&api, keeper).await?;
    // Warm both paths once (page cache, docker-proxy, nginx workers).
    platform_round(&api, &args, plan, 0).await?;
    docker_round(&http, &args.image).await?;
    let (mut platform, mut plain) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        platform.push(platform_round(&api, &args, plan, round).await?);
        plain.push(docker_round(&http, &args.image).await?);
    }
    let (p50, p90) = stats(platform);
    let (d50, d90) = stats(plain);
    println!(
        "deploy of an image already on the node, {} rounds each, in turns:",
        args.rounds
    );
    println!(
        "  POST /deploy → first 200 through the ingress   median {}  p90 {}",
        ms(p50),
        ms(p90)
    );
    println!(
        "  docker run → first 200 on its port            median {}  p90 {}",
        ms(d50),
        ms(d90)
    );
    println!(
        "  ratio (medians)                               {:.2}x",
        p50.as_secs_f64() / d50.as_secs_f64()
    );

    // Cold builds from git.
    let dir = std::env::temp_dir().join(format!("skypanel-bench-repo-{}", std::process::id()));
    let mut totals = Vec::new();
    let mut builds = Vec::new();
    let rounds = args.build_rounds.max(1);
    for round in 1..=rounds {
        let url = repo(&dir.join(format!("app-{round}")), &args.image, round)?;
        let name = format!("bench-git-{round}");
        let app = api
            .call(
                reqwest::Method::POST,
                "/paas/applications",
                Some(
                    json!({"name": name, "plan_id": plan, "region": "local", "git_repo_url": url}),
                ),
            )
            .await?["id"]
            .as_i64()
            .context("app id")?;
        let host = format!("{name}.{}", args.platform_domain);
        let started = Instant::now();
        api.call(
            reqwest::Method::POST,
            &format!("/paas/applications/{app}/deploy"),
            Some(json!({})),
        )
        .await?;
        first_200(
            &http,
            &format!("http://127.0.0.1:{}/", args.ingress_port),
            Some(&host),
            Duration::from_secs(300),
        )
        .await?;
        totals.push(started.elapsed());
        delete(&api, app).await?;
        // The same build with the Docker CLI alone (a fresh layer again).
        repo(&dir.join(format!("app-{round}")), &args.image, round + 1000)?;
        let tag = format!("skypanel-bench/plain-build:{round}");
        let context = dir.join(format!("app-{round}"));
        let started = Instant::now();
        let ok = Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(&context)
            .output()?
            .status
            .success();
        builds.push(started.elapsed());
        if !ok {
            bail!("docker build failed");
        }
        let _ = docker(&["rmi", "-f", &tag]);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (t50, _) = stats(totals);
    let (b50, _) = stats(builds);
    let start_cost = d50;
    let share = t50.saturating_sub(b50 + start_cost);
    println!("cold build from git, {rounds} rounds:");
    println!(
        "  POST /deploy → first 200 through the ingress   median {}",
        ms(t50)
    );
    println!(
        "  docker build of the same context               median {}",
        ms(b50)
    );
    println!(
        "  docker run → first 200 (from above)            median {}",
        ms(start_cost)
    );
    println!(
        "  the platform's own share (clone, context, queue, tasks, ingress)  {} ({:.0}% of the total)",
        ms(share),
        share.as_secs_f64() * 100.0 / t50.as_secs_f64()
    );
    let keystrokes = args.rounds * 30;
    let platform = run_latency::through_platform(&api, keeper, keystrokes).await?;
    let plain = run_latency::through_docker(&args.image, keystrokes).await?;
    let (r50, r90) = stats(platform);
    let (k50, k90) = stats(plain);
    println!("a keystroke echoed by `cat` in a one-off run, {keystrokes} keystrokes each:");
    println!(
        "  sky run session (control plane relay + node)   median {:.2} ms, p90 {:.2} ms",
        r50.as_secs_f64() * 1000.0,
        r90.as_secs_f64() * 1000.0
    );
    println!(
        "  docker run -i                                  median {:.2} ms, p90 {:.2} ms",
        k50.as_secs_f64() * 1000.0,
        k90.as_secs_f64() * 1000.0
    );
    println!(
        "  added by the platform per keystroke            median {:.2} ms",
        (r50.as_secs_f64() - k50.as_secs_f64()) * 1000.0
    );
    if let (Some(registry), Some(secret)) = (&args.registry, &args.jwt_secret) {
        releases(&api, &admin_api, &args, plan, registry, secret).await?;
    }
    Ok(())
}

/// The release rounds: environment changes, and deploys that pull.
async fn releases(
    api: &Api,
    admin: &Api,
    args: &Args,
    plan: i64,
    registry: &str,
    jwt_secret: &str,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("skypanel-bench-echo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("cgi-bin"))?;
    std::fs::write(
        dir.join("cgi-bin/greeting"),
        "#!/bin/sh\necho \"Content-Type: text/plain\"\necho\necho \"$GREETING\"\n",
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("cgi-bin/greeting"),
            std::fs::Permissions::from_mode(0o755),
        )?;
    }
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY index.html /www/index.html\nCOPY cgi-bin /www/cgi-bin\n",
            args.image
        ),
    )?;
    let url = repo(&dir, &args.image, 0)?;
    let app = api
        .call(
            reqwest::Method::POST,
            "/paas/applications",
            Some(json!({"name": "bench-echo", "plan_id": plan, "region": "local", "git_repo_url": url})),
        )
        .await?["id"]
        .as_i64()
        .context("app id")?;
    api.call(
        reqwest::Method::POST,
        &format!("/paas/applications/{app}/deploy"),
        Some(json!({})),
    )
    .await?;
    running(api, app).await?;
    let node = admin
        .call(reqwest::Method::GET, "/admin/paas/nodes", None)
        .await?
        .as_array()
        .and_then(|n| n.first())
        .and_then(|n| n["id"].as_i64())
        .context("no node")?;
    let target = release_rounds::Target {
        api,
        app,
        host: format!("bench-echo.{}", args.platform_domain),
        ingress_port: args.ingress_port,
        registry,
        jwt_secret,
    };
    let (times, failed) = release_rounds::env_changes(&target, args.rounds).await?;
    let (e50, e90) = stats(times);
    println!(
        "environment change → first request with the new value, {} rounds:",
        args.rounds
    );
    println!(
        "  POST .../env → served                         median {}  p90 {}  ({} failed requests)",
        ms(e50),
        ms(e90),
        failed.len()
    );
    for failure in &failed {
        println!("    failed: {failure}");
    }
    let (platform, plain) = release_rounds::pulls(&target, node, args.rounds).await?;
    let (p50, p90) = stats(platform);
    let (d50, d90) = stats(plain);
    println!(
        "a release the node must pull from the registry, {} rounds each, in turns:",
        args.rounds
    );
    println!(
        "  POST /start → first 200 through the ingress    median {}  p90 {}",
        ms(p50),
        ms(p90)
    );
    println!(
        "  docker pull + docker run → first 200           median {}  p90 {}",
        ms(d50),
        ms(d90)
    );
    println!(
        "  ratio (medians)                               {:.2}x",
        p50.as_secs_f64() / d50.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    delete(api, app).await
}
