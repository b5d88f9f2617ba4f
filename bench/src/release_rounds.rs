//! The release rounds of `skypanel-bench-deploy`:
//!
//! - an environment change (`POST .../env`) until the first request that
//!   answers the new value through the ingress, and the requests that failed
//!   meanwhile;
//! - a release the node must pull from the registry (its containers and its
//!   image removed, then `POST .../start`) until the first 200, beside
//!   `docker pull` of the same digest from the same registry and `docker run`
//!   until the first 200, in turns.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::{Api, docker, first_200};

/// What the release rounds need to know of the platform.
pub struct Target<'a> {
    pub api: &'a Api,
    pub app: i64,
    pub host: String,
    pub ingress_port: u16,
    /// The registry's `host:port` and the platform's JWT secret (a ticket
    /// for `docker login` is signed with a key derived from it).
    pub registry: &'a str,
    pub jwt_secret: &'a str,
}

/// Environment changes until the new value is served; answers the times and
/// the requests that failed meanwhile.
pub async fn env_changes(
    target: &Target<'_>,
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<String>)> {
    let url = format!("http://127.0.0.1:{}/cgi-bin/greeting", target.ingress_port);
    let mut times = Vec::new();
    let mut failed = Vec::new();
    for round in 0..rounds {
        let value = format!("round-{round}-{}", std::process::id());
        let started = Instant::now();
        target
            .api
            .call(
                reqwest::Method::POST,
                &format!("/paas/applications/{}/env", target.app),
                Some(json!({"vars": {"GREETING": value}})),
            )
            .await?;
        loop {
            let answer = target
                .api
                .http
                .get(&url)
                .header("host", &target.host)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            match answer {
                Ok(a) if a.status().is_success() => {
                    if a.text().await.unwrap_or_default().trim() == value {
                        break;
                    }
                }
                Ok(a) => failed.push(format!("answered {}", a.status())),
                Err(err) => failed.push(format!("{err:?}")),
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the change was never served");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.push(started.elapsed());
        crate::running(target.api, target.app).await?;
    }
    Ok((times, failed))
}

/// Stops the application and removes its containers and its image from
/// the node's Docker.
async fn forget(target: &Target<'_>, image_id: &str) -> anyhow::Result<()> {
    let path = format!("/paas/applications/{}", target.app);
    target
        .api
        .call(
            reqwest::Method::POST,
            &format!("{path}/stop"),
            Some(json!({})),
        )
        .await?;
    for _ in 0..300 {
        let app = target.api.call(reqwest::Method::GET, &path, None).await?;
        if app["status"] == "stopped" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let label = format!("label=skypanel.app={}", target.app);
    for id in docker(&[
        "ps",
        "-aq",
        "--filter",
        &label,
        "--filter",
        "label=skypanel.managed=bench-",
    ])?
    .split_whitespace()
    {
        docker(&["rm", "-f", id])?;
    }
    let _ = docker(&["rmi", "-f", image_id]);
    Ok(())
}

/// Deploys of a release the node must pull, beside `docker pull` + `docker
/// run` of the same digest: answers (platform, plain) times.
pub async fn pulls(
    target: &Target<'_>,
    node_id: i64,
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let current = current_release(target).await?;
    let image_id = current["image_id"]
        .as_str()
        .context("no image id")?
        .to_string();
    let pulled = registry_image(target).await?;
    // A Docker CLI of its own, logged in with a ticket for this application.
    let config = std::env::temp_dir().join(format!("skypanel-bench-docker-{}", std::process::id()));
    std::fs::create_dir_all(&config)?;
    let key = skypanel_domain::registry::ticket_key(target.jwt_secret);
    let ticket = skypanel_domain::registry::Ticket {
        node_id,
        repositories: vec![format!("app-{}", target.app)],
        push: false,
        expires_at: chrono::Utc::now().timestamp() + 3600,
    };
    let login = std::process::Command::new("docker")
        .env("DOCKER_CONFIG", &config)
        .args([
            "login",
            target.registry,
            "-u",
            &format!("node-{node_id}"),
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .context("stdin")
                .map_err(std::io::Error::other)?
                .write_all(ticket.issue(&key).as_bytes())?;
            child.wait_with_output()
        })?;
    if !login.status.success() {
        bail!("docker login: {}", String::from_utf8_lossy(&login.stderr));
    }
    let plain_docker = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new("docker")
            .env("DOCKER_CONFIG", &config)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let url = format!("http://127.0.0.1:{}/", target.ingress_port);
    let (mut platform, mut plain) = (Vec::new(), Vec::new());
    forget(target, &image_id).await?;
    for _ in 0..rounds {
        let started = Instant::now();
        target
            .api
            .call(
                reqwest::Method::POST,
                &format!("/paas/applications/{}/start", target.app),
                Some(json!({})),
            )
            .await?;
        first_200(
            &target.api.http,
            &url,
            Some(&target.host),
            Duration::from_secs(120),
        )
        .await?;
        platform.push(started.elapsed());
        crate::running(target.api, target.app).await?;

        forget(target, &image_id).await?;
        let started = Instant::now();
        plain_docker(&["pull", "-q", &pulled])?;
        let id = plain_docker(&[
            "run",
            "-d",
            "-e",
            "PORT=8080",
            "-p",
            "127.0.0.1::8080",
            &pulled,
        ])?;
        let port = plain_docker(&["port", &id, "8080/tcp"])?;
        let port = port
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .context("no port")?
            .to_string();
        let answered = first_200(
            &target.api.http,
            &format!("http://127.0.0.1:{port}/"),
            None,
            Duration::from_secs(60),
        )
        .await;
        plain.push(started.elapsed());
        plain_docker(&["rm", "-f", &id])?;
        let _ = plain_docker(&["rmi", "-f", &pulled]);
        answered?;
    }
    let _ = std::fs::remove_dir_all(&config);
    Ok((platform, plain))
}

/// The release the application serves.
async fn current_release(target: &Target<'_>) -> anyhow::Result<Value> {
    let releases = target
        .api
        .call(
            reqwest::Method::GET,
            &format!("/paas/applications/{}/releases", target.app),
            None,
        )
        .await?;
    releases
        .as_array()
        .and_then(|l| l.iter().find(|r| r["current"] == true))
        .cloned()
        .context("no current release")
}

/// The current release's image in the registry, once its push is done.
async fn registry_image(target: &Target<'_>) -> anyhow::Result<String> {
    for _ in 0..300 {
        if let Some(image) = current_release(target).await?["registry_image"].as_str() {
            return Ok(image.to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the release's image never reached the registry")
}
