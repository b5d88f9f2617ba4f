//! The agent's metrics for Prometheus, off unless `--metrics-listen` names
//! an address: `GET /metrics` there answers the text format (anything else
//! 404), with no authentication (keep it on a local or private address).
//! Counted as the agent goes: tasks by kind and outcome and their run
//! time, heartbeats by outcome; counted at the scrape: the managed
//! containers by state.

use std::net::SocketAddr;
use std::time::Duration;

use skypanel_protocol::metrics::{Metrics, global};
use skypanel_protocol::task::ReportedStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::docker::Engine;

/// A task the agent worked on ended with `status` after `took`.
pub fn task_done(kind: &str, status: ReportedStatus, took: Duration) {
    let status = match status {
        ReportedStatus::Succeeded => "succeeded",
        ReportedStatus::Failed => "failed",
        ReportedStatus::Running => "running",
    };
    global().inc(
        "skypanel_agent_tasks_total",
        "Tasks this agent worked on, by kind and outcome.",
        &[("kind", kind), ("status", status)],
    );
    global().observe(
        "skypanel_agent_task_duration_seconds",
        "Time this agent worked on a task, by kind.",
        &[("kind", kind)],
        took.as_secs_f64(),
    );
}

/// A heartbeat was sent (`ok`) or failed.
pub fn heartbeat(ok: bool) {
    global().inc(
        "skypanel_agent_heartbeats_total",
        "Heartbeats this agent sent, by outcome.",
        &[("outcome", if ok { "sent" } else { "failed" })],
    );
}

/// Listens on `address` and answers scrapes until aborted.
pub async fn serve(
    address: SocketAddr,
    engine: Engine,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "serving metrics at /metrics");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(answer(stream, engine.clone()));
        }
    }))
}

/// Answers one request on `stream` (one request a connection).
async fn answer(mut stream: tokio::net::TcpStream, engine: Engine) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // The request line and headers, at most 8 KiB, within 5 s.
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) =
        if method == "GET" && (target == "/metrics" || target.starts_with("/metrics?")) {
            let now = Metrics::default();
            containers(&engine, &now).await;
            ("200 OK", format!("{}{}", global().render(), now.render()))
        } else {
            (
                "404 Not Found",
                "only GET /metrics is served here\n".to_string(),
            )
        };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The managed containers by state, as Docker lists them now.
async fn containers(engine: &Engine, now: &Metrics) {
    match engine.managed(None).await {
        Ok(list) => {
            let mut by_state = std::collections::BTreeMap::<String, f64>::new();
            for c in list {
                *by_state
                    .entry(format!("{:?}", c.state).to_lowercase())
                    .or_default() += 1.0;
            }
            for (state, n) in by_state {
                now.set(
                    "skypanel_agent_containers",
                    "Application containers this agent manages, by state.",
                    &[("state", &state)],
                    n,
                );
            }
        }
        Err(err) => {
            tracing::warn!(error = %crate::docker::short(&err), "cannot list containers for /metrics");
            now.set(
                "skypanel_agent_scrape_errors",
                "Parts of this scrape that could not be had.",
                &[("part", "docker")],
                1.0,
            );
        }
    }
}
