//! `skypanel-bench-agents`: N simulated agents against a running control
//! plane. Each registers, heartbeats and long-polls like a real agent while
//! the benchmark commits tasks for random nodes straight into PostgreSQL. It
//! prints task pickup latency (commit → arrival at the agent: p50, p99, max),
//! heartbeats handled per second, nodes wrongly marked offline, and the
//! control plane's CPU and memory.
//!
//! `bench/agents.sh` starts a control plane and runs this with the defaults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::Rng;
use serde_json::{Value, json};
use skypanel_protocol::CREDENTIAL_HEADER;
use skypanel_protocol::task::{AppTarget, TaskSpec};
use skypanel_store::Store;
use skypanel_store::tasks::{self, NewTask};

#[derive(Parser, Debug)]
struct Args {
    /// The control plane, e.g. http://127.0.0.1:8080
    #[arg(long)]
    control_plane: String,
    /// Its database (tasks are committed there directly, and timed).
    #[arg(long)]
    database_url: String,
    #[arg(long)]
    admin_email: String,
    #[arg(long)]
    admin_password: String,
    /// The control plane's process id, for its CPU and memory figures.
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Seconds between each agent's heartbeats.
    #[arg(long, default_value_t = 10)]
    heartbeat_interval: u64,
    /// Tasks committed per second, spread over random nodes.
    #[arg(long, default_value_t = 100)]
    task_rate: u64,
    /// Seconds of measurement once every agent polls.
    #[arg(long, default_value_t = 60)]
    duration: u64,
}

#[derive(Default)]
struct Figures {
    /// Commit instant of each task, by id.
    committed: HashMap<i64, Instant>,
    /// Pickup latency of each task that arrived.
    latencies: Vec<Duration>,
    /// Tasks that arrived before the benchmark noted their commit (counted as 0 ms).
    early: std::collections::HashSet<i64>,
    heartbeats: u64,
    heartbeat_errors: u64,
}

type Shared = Arc<Mutex<Figures>>;

fn record<T>(figures: &Shared, f: impl FnOnce(&mut Figures) -> T) -> T {
    let mut guard = figures.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard)
}

/// (user+system CPU seconds, RSS MB, peak RSS MB) of a process.
fn process_figures(pid: u32) -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<f64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((
        ticks / 100.0,
        kb("VmRSS:")? / 1024.0,
        kb("VmHWM:")? / 1024.0,
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

struct Agent {
    node_id: i64,
    credential: String,
}

async fn register_all(
    http: &reqwest::Client,
    args: &Args,
    admin: &str,
) -> anyhow::Result<Vec<Agent>> {
    let run = chrono::Utc::now().timestamp();
    let mut agents = Vec::with_capacity(args.agents);
    for chunk in (0..args.agents).collect::<Vec<_>>().chunks(50) {
        let batch = chunk.iter().map(|i| async move {
            let node: Value = http
                .post(format!("{}/api/admin/paas/nodes/register", args.control_plane))
                .bearer_auth(admin)
                .json(&json!({"name": format!("bench-{run}-{i}"), "region": "bench", "host_address": "127.0.0.1"}))
                .send()
                .await?
                .json()
                .await?;
            let token = node["registration_token"].as_str().context("no registration token")?.to_string();
            let registered: Value = http
                .post(format!("{}/api/internal/paas/nodes/register", args.control_plane))
                .json(&json!({"registration_token": token, "agent_version": "bench", "hostname": "bench",
                              "cpu_total": 4000, "memory_total_mb": 8192, "disk_total_mb": 100000}))
                .send()
                .await?
                .json()
                .await?;
            Ok::<_, anyhow::Error>(Agent {
                node_id: registered["node_id"].as_i64().context("no node id")?,
                credential: registered["credential"].as_str().context("no credential")?.to_string(),
            })
        });
        for agent in futures::future::join_all(batch).await {
            agents.push(agent?);
        }
    }
    Ok(agents)
}

async fn heartbeat_loop(
    http: reqwest::Client,
    base: String,
    agent: Arc<Agent>,
    interval: Duration,
    figures: Shared,
    stop: Instant,
) {
    // Spread the first beats over one interval, as agents started at random times would.
    let offset = rand::thread_rng().gen_range(0..interval.as_millis().max(1) as u64);
    tokio::time::sleep(Duration::from_millis(offset)).await;
    while Instant::now() < stop {
        let beat = json!({
            "node_id": agent.node_id, "timestamp": chrono::Utc::now(), "agent_version": "bench",
            "cpu_usage_percent": 10.0, "cpu_total": 4000, "memory_used_mb": 1024, "memory_total_mb": 8192,
            "disk_used_mb": 1000, "disk_total_mb": 100000, "container_count": 0, "containers": []
        });
        let sent = http
            .post(format!(
                "{base}/api/internal/paas/nodes/{}/heartbeat",
                agent.node_id
            ))
            .header(CREDENTIAL_HEADER, &agent.credential)
            .json(&beat)
            .send()
            .await;
        let ok = sent.is_ok_and(|r| r.status().is_success());
        record(&figures, |f| {
            if ok {
                f.heartbeats += 1
            } else {
                f.heartbeat_errors += 1
            }
        });
        tokio::time::sleep(interval).await;
    }
}

async fn poll_loop(
    http: reqwest::Client,
    base: String,
    agent: Arc<Agent>,
    figures: Shared,
    stop: Instant,
) {
    while Instant::now() < stop {
        // As the real agent does: each wait 75-100 % of the configured one.
        let wait = rand::thread_rng().gen_range(15..=20);
        let answer = http
            .post(format!(
                "{base}/api/internal/paas/nodes/{}/leases?wait={wait}&max=8",
                agent.node_id
            ))
            .header(CREDENTIAL_HEADER, &agent.credential)
            .send()
            .await;
        let arrived = Instant::now();
        let Ok(answer) = answer else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if answer.status().as_u16() != 200 {
            continue;
        }
        let Ok(leases) = answer.json::<Value>().await else {
            continue;
        };
        for task in leases["tasks"].as_array().cloned().unwrap_or_default() {
            let id = task["task_id"].as_i64().unwrap_or(0);
            record(&figures, |f| match f.committed.get(&id) {
                Some(at) => f.latencies.push(arrived.saturating_duration_since(*at)),
                None => {
                    f.early.insert(id);
                }
            });
            for status in ["running", "succeeded"] {
                let _ = http
                    .post(format!("{base}/api/internal/paas/tasks/{id}/status"))
                    .header(CREDENTIAL_HEADER, &agent.credential)
                    .json(&json!({"lease_id": task["lease_id"], "status": status}))
                    .send()
                    .await;
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.agents * 3)
        .timeout(Duration::from_secs(60))
        .build()?;
    let login: Value = http
        .post(format!("{}/api/auth/login", args.control_plane))
        .json(&json!({"email": args.admin_email, "password": args.admin_password}))
        .send()
        .await?
        .json()
        .await?;
    let admin = login["access_token"]
        .as_str()
        .context("admin login failed")?
        .to_string();
    let store = Store::connect(&args.database_url, 4)?;

    println!("registering {} agents …", args.agents);
    let started = Instant::now();
    let agents: Vec<Arc<Agent>> = register_all(&http, &args, &admin)
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    println!("registered in {:.1} s", started.elapsed().as_secs_f64());

    let figures: Shared = Arc::default();
    let warmup = Duration::from_secs(args.heartbeat_interval + 5);
    let stop = Instant::now() + warmup + Duration::from_secs(args.duration);
    let interval = Duration::from_secs(args.heartbeat_interval);
    let mut workers = Vec::new();
    for agent in &agents {
        workers.push(tokio::spawn(heartbeat_loop(
            http.clone(),
            args.control_plane.clone(),
            agent.clone(),
            interval,
            figures.clone(),
            stop,
        )));
        workers.push(tokio::spawn(poll_loop(
            http.clone(),
            args.control_plane.clone(),
            agent.clone(),
            figures.clone(),
            stop,
        )));
    }
    println!(
        "warming up for {} s (every agent heartbeats and polls) …",
        warmup.as_secs()
    );
    tokio::time::sleep(warmup).await;
    record(&figures, |f| {
        f.heartbeats = 0;
        f.heartbeat_errors = 0;
    });
    let cpu_before = args.pid.and_then(process_figures);
    let measuring = Instant::now();

    println!(
        "measuring for {} s at {} tasks/s …",
        args.duration, args.task_rate
    );
    let mut conn = store.conn().await?;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / args.task_rate.max(1)));
    let mut created = 0u64;
    while Instant::now() + Duration::from_secs(2) < stop {
        tick.tick().await;
        let agent = &agents[rand::thread_rng().gen_range(0..agents.len())];
        let spec = TaskSpec::AppStop(AppTarget {
            app_id: 0,
            user_id: 0,
            generation: 0,
            hostnames: Vec::new(),
            certificates: Vec::new(),
        });
        let new = NewTask {
            node_id: agent.node_id,
            application_id: None,
            build_id: None,
            database_id: None,
            kind: spec.kind(),
            payload: serde_json::to_value(&spec)?,
            generation: None,
            max_attempts: 3,
        };
        let task = tasks::create(&mut conn, &new, None).await?;
        record(&figures, |f| {
            if f.early.remove(&task.id) {
                f.latencies.push(Duration::ZERO);
            } else {
                f.committed.insert(task.id, Instant::now());
            }
        });
        created += 1;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = measuring.elapsed().as_secs_f64();
    let cpu_after = args.pid.and_then(process_figures);
    for worker in workers {
        worker.abort();
    }

    let nodes: Value = http
        .get(format!("{}/api/admin/paas/nodes", args.control_plane))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let offline = nodes.as_array().map_or(0, |n| {
        n.iter()
            .filter(|n| n["region"] == "bench" && n["status"] != "online")
            .count()
    });

    let (mut latencies, heartbeats, heartbeat_errors) = record(&figures, |f| {
        (f.latencies.clone(), f.heartbeats, f.heartbeat_errors)
    });
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!("agents                  {}", args.agents);
    println!("tasks committed         {created}");
    println!("tasks picked up         {}", latencies.len());
    println!(
        "pickup latency (ms)     p50 {:.2}   p99 {:.2}   max {:.2}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "heartbeats handled/s    {:.1}   (errors: {heartbeat_errors})",
        heartbeats as f64 / elapsed
    );
    println!("nodes not online        {offline}");
    if let (Some((cpu0, _, _)), Some((cpu1, rss, peak))) = (cpu_before, cpu_after) {
        println!(
            "control plane CPU       {:.1} % of one core",
            (cpu1 - cpu0) / elapsed * 100.0
        );
        println!("control plane RSS       {rss:.1} MB (peak {peak:.1} MB)");
    }
    Ok(())
}
