//! `skypanel-bench-agents`: N simulated agents against a running control
//! plane. Each registers, heartbeats and long-polls like a real agent while
//! the benchmark commits tasks for random nodes straight into PostgreSQL. It
//! prints task pickup latency (commit → arrival at the agent: p50, p99, max),
//! tasks lost (committed, never picked up), heartbeats handled per second,
//! nodes wrongly marked offline, the control plane's database connections,
//! CPU and memory; `--row` prints them as one Markdown table row as well.
//!
//! Connections are shared as a real fleet shares them: each agent keeps one
//! long-poll connection of its own (its lease stream, or with
//! `--http-long-poll` a connection its HTTP long-polls reuse), while heartbeats and status reports of
//! every agent go through a small pool (`--beat-connections`), so that 10,000
//! agents fit in this process's 20,000 open files.
//!
//! With several control-plane replicas (`--control-plane` a comma-separated
//! list, `--pid` one per replica) the agents are spread over them and move
//! to the next when theirs stops answering, as real agents given a list do;
//! `--kill-after S` SIGKILLs the last replica S seconds into the measurement
//! and prints how long its shards took to be taken over.
//!
//! `bench/agents.sh` starts a control plane per fleet size and runs this.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::Rng;
use serde_json::{Value, json};
use skypanel_protocol::CREDENTIAL_HEADER;
use skypanel_protocol::lease_stream::{self, LeaseAsk, Lines};
use skypanel_protocol::task::{AppTarget, TaskSpec};
use skypanel_store::Store;
use skypanel_store::tasks::{self, NewTask};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
struct Args {
    /// The control plane, e.g. http://127.0.0.1:8080, or each replica's
    /// URL separated by commas (the agents are spread over them).
    #[arg(long)]
    control_plane: String,
    /// Its database (tasks are committed there directly, and timed).
    #[arg(long)]
    database_url: String,
    #[arg(long)]
    admin_email: String,
    #[arg(long)]
    admin_password: String,
    /// The control plane's process id, for its CPU and memory figures (one
    /// per replica, comma-separated, in the order of `--control-plane`).
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// SIGKILL the last replica this many seconds into the measurement,
    /// and measure how long its shards take to be taken over.
    #[arg(long)]
    kill_after: Option<u64>,
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Seconds between each agent's heartbeats.
    #[arg(long, default_value_t = 10)]
    heartbeat_interval: u64,
    /// Tasks committed per second, spread over random nodes.
    #[arg(long, default_value_t = 100)]
    task_rate: u64,
    /// Seconds of measurement once every agent polls.
    #[arg(long, default_value_t = 45)]
    duration: u64,
    /// Connections shared by every agent's heartbeats and status reports.
    #[arg(long, default_value_t = 32)]
    beat_connections: usize,
    /// Long-poll with HTTP requests instead of the lease stream the real
    /// agent uses (to compare what each costs the control plane).
    #[arg(long)]
    http_long_poll: bool,
    /// Keep each agent on the replica it was spread to, as agents behind
    /// one load-balanced address are (by default an agent moves to the
    /// replica its heartbeat answer names as its node's owner, as the real
    /// agent given several addresses does).
    #[arg(long)]
    stay: bool,
    /// Also print the figures as one row of the README's table.
    #[arg(long)]
    row: bool,
}

#[derive(Default)]
struct Figures {
    /// Commit instant of each task not picked up yet, by id.
    committed: HashMap<i64, Instant>,
    /// Pickup latency of each task that arrived.
    latencies: Vec<Duration>,
    /// Tasks that arrived before the benchmark noted their commit (counted as 0 ms).
    early: std::collections::HashSet<i64>,
    heartbeats: u64,
    heartbeat_errors: u64,
    /// Agents whose first heartbeat was answered (the node came online).
    online: usize,
    /// Long-polls that failed (a connection error or an answer other than 200/204).
    poll_errors: u64,
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
    /// The control-plane address it uses now (an index into the list).
    at: AtomicUsize,
}

/// The control plane's addresses (one per replica).
type Bases = Arc<Vec<String>>;

impl Agent {
    fn base<'a>(&self, bases: &'a Bases) -> &'a str {
        &bases[self.at.load(Ordering::Relaxed) % bases.len()]
    }

    /// The control plane named the replica holding this agent's node: that
    /// one from now on, when it is one of the addresses.
    fn prefer(&self, bases: &Bases, owner: &str) {
        let owner = owner.trim_end_matches('/');
        if let Some(at) = bases.iter().position(|b| b.trim_end_matches('/') == owner) {
            self.at.store(at, Ordering::Relaxed);
        }
    }

    /// Its address did not answer: the next one from now on.
    fn failed(&self, bases: &Bases, base: &str) {
        if bases.len() > 1 && self.base(bases) == base {
            self.at.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The pool of connections heartbeats and reports share: a client and the
/// permits that keep its connections to `beat_connections`.
#[derive(Clone)]
struct BeatPool {
    http: reqwest::Client,
    permits: Arc<Semaphore>,
}

impl BeatPool {
    async fn post(
        &self,
        url: String,
        credential: &str,
        body: &Value,
    ) -> reqwest::Result<reqwest::Response> {
        let _permit = self.permits.acquire().await;
        self.http
            .post(url)
            .header(CREDENTIAL_HEADER, credential)
            .json(body)
            .send()
            .await
    }
}

async fn register_all(
    beats: &BeatPool,
    args: &Args,
    bases: &Bases,
    admin: &str,
) -> anyhow::Result<Vec<Agent>> {
    let run = chrono::Utc::now().timestamp();
    let mut agents = Vec::with_capacity(args.agents);
    for chunk in (0..args.agents).collect::<Vec<_>>().chunks(50) {
        let batch = chunk.iter().map(|i| async move {
            let _permit = beats.permits.acquire().await;
            let answer = beats
                .http
                .post(format!("{}/api/admin/paas/nodes/register", bases[0]))
                .bearer_auth(admin)
                .json(&json!({"name": format!("bench-{run}-{i}"), "region": "bench", "host_address": "127.0.0.1"}))
                .send()
                .await?;
            let status = answer.status();
            let node: Value = answer.json().await?;
            let token = node["registration_token"]
                .as_str()
                .with_context(|| format!("no registration token ({status}: {node})"))?
                .to_string();
            let registered: Value = beats
                .http
                .post(format!("{}/api/internal/paas/nodes/register", bases[0]))
                .json(&json!({"registration_token": token, "agent_version": "bench", "hostname": "bench",
                              "cpu_total": 4000, "memory_total_mb": 8192, "disk_total_mb": 100000}))
                .send()
                .await?
                .json()
                .await?;
            Ok::<_, anyhow::Error>(Agent {
                node_id: registered["node_id"].as_i64().context("no node id")?,
                credential: registered["credential"].as_str().context("no credential")?.to_string(),
                at: AtomicUsize::new(*i),
            })
        });
        for agent in futures::future::join_all(batch).await {
            agents.push(agent?);
        }
    }
    Ok(agents)
}

async fn heartbeat_loop(
    beats: BeatPool,
    bases: Bases,
    agent: Arc<Agent>,
    interval: Duration,
    figures: Shared,
    stop: Instant,
    stay: bool,
) {
    // Spread the first beats over one interval, as agents started at random times would.
    let offset = rand::thread_rng().gen_range(0..interval.as_millis().max(1) as u64);
    tokio::time::sleep(Duration::from_millis(offset)).await;
    let mut online = false;
    let mut tick = tokio::time::interval(interval);
    // A beat that was late does not make the next ones come in a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < stop {
        tick.tick().await;
        let beat = json!({
            "node_id": agent.node_id, "timestamp": chrono::Utc::now(), "agent_version": "bench",
            "cpu_usage_percent": 10.0, "cpu_total": 4000, "memory_used_mb": 1024, "memory_total_mb": 8192,
            "disk_used_mb": 1000, "disk_total_mb": 100000, "container_count": 0, "containers": []
        });
        let base = agent.base(&bases).to_string();
        let url = format!("{base}/api/internal/paas/nodes/{}/heartbeat", agent.node_id);
        let sent = beats.post(url, &agent.credential, &beat).await;
        if sent.as_ref().map_or(true, |r| r.status().is_server_error()) {
            agent.failed(&bases, &base);
        }
        let ok = match sent {
            Ok(answer) if answer.status().is_success() => {
                if let Ok(ack) = answer.json::<Value>().await
                    && let Some(owner) = ack["owner"].as_str()
                    && !stay
                {
                    agent.prefer(&bases, owner);
                }
                true
            }
            _ => false,
        };
        let first = ok && !online;
        online |= ok;
        record(&figures, |f| {
            if ok {
                f.heartbeats += 1
            } else {
                f.heartbeat_errors += 1
            }
            if first {
                f.online += 1;
            }
        });
    }
}

/// What the agents do with the tasks a long-poll answered: note their
/// arrival, and report them running and succeeded through the shared pool.
fn arrived(
    tasks: Vec<Value>,
    at: Instant,
    beats: &BeatPool,
    bases: &Bases,
    agent: &Arc<Agent>,
    figures: &Shared,
) {
    for task in tasks {
        let id = task["task_id"].as_i64().unwrap_or(0);
        record(figures, |f| match f.committed.remove(&id) {
            Some(committed) => f.latencies.push(at.saturating_duration_since(committed)),
            None => {
                f.early.insert(id);
            }
        });
        // The reports go through the shared pool, off this agent's poll.
        let (beats, bases, agent) = (beats.clone(), bases.clone(), agent.clone());
        tokio::spawn(async move {
            for status in ["running", "succeeded"] {
                let body = json!({"lease_id": task["lease_id"], "status": status});
                // A replica that died meanwhile: the report goes to the next.
                for _ in 0..bases.len() {
                    let base = agent.base(&bases).to_string();
                    let url = format!("{base}/api/internal/paas/tasks/{id}/status");
                    match beats.post(url, &agent.credential, &body).await {
                        Ok(r) if !r.status().is_server_error() => break,
                        _ => agent.failed(&bases, &base),
                    }
                }
            }
        });
    }
}

/// As the real agent does: each wait 75-100 % of the configured one.
fn jittered_wait() -> u64 {
    rand::thread_rng().gen_range(15..=20)
}

/// What one simulated agent's long-polls work with.
struct Poller {
    /// The client of the agents' own long-poll connections.
    polls: reqwest::Client,
    beats: BeatPool,
    bases: Bases,
    agent: Arc<Agent>,
    figures: Shared,
}

/// An agent's long-polls as HTTP requests (`--http-long-poll`).
async fn poll_loop(poller: Poller, stop: Instant) {
    let Poller {
        polls,
        beats,
        bases,
        agent,
        figures,
    } = poller;
    while Instant::now() < stop {
        let base = agent.base(&bases).to_string();
        let leases = format!("{base}/api/internal/paas/nodes/{}/leases", agent.node_id);
        let answer = polls
            .post(format!("{leases}?wait={}&max=8", jittered_wait()))
            .header(CREDENTIAL_HEADER, &agent.credential)
            .send()
            .await;
        let at = Instant::now();
        let answer = match answer {
            Ok(answer) if answer.status().as_u16() == 200 => answer,
            Ok(answer) if answer.status().as_u16() == 204 => continue,
            _ => {
                agent.failed(&bases, &base);
                record(&figures, |f| f.poll_errors += 1);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(leased) = answer.json::<Value>().await else {
            record(&figures, |f| f.poll_errors += 1);
            continue;
        };
        let tasks = leased["tasks"].as_array().cloned().unwrap_or_default();
        arrived(tasks, at, &beats, &bases, &agent, &figures);
    }
}

/// An agent's long-polls as asks on its lease stream, as the real agent
/// makes them (the default).
async fn stream_loop(poller: Poller, stop: Instant) {
    let Poller {
        polls,
        beats,
        bases,
        agent,
        figures,
    } = poller;
    let mut stream = None;
    while Instant::now() < stop {
        let base = agent.base(&bases).to_string();
        let failed = async {
            agent.failed(&bases, &base);
            record(&figures, |f| f.poll_errors += 1);
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (io, lines) = match &mut stream {
            Some(open) => open,
            None => match open_stream(&polls, &base, &agent).await {
                Some(open) => stream.insert(open),
                None => {
                    failed.await;
                    continue;
                }
            },
        };
        let ask = LeaseAsk {
            wait: jittered_wait(),
            max: 8,
            request: None,
        };
        let Some(reply) = exchange(io, lines, &ask).await else {
            stream = None;
            failed.await;
            continue;
        };
        let at = Instant::now();
        if !reply["refused"].is_null() {
            stream = None;
            failed.await;
            continue;
        }
        let tasks = reply["tasks"].as_array().cloned().unwrap_or_default();
        arrived(tasks, at, &beats, &bases, &agent, &figures);
    }
}

async fn open_stream(
    polls: &reqwest::Client,
    base: &str,
    agent: &Agent,
) -> Option<(reqwest::Upgraded, Lines)> {
    let response = polls
        .get(format!("{base}{}", lease_stream::path(agent.node_id)))
        .header(CREDENTIAL_HEADER, &agent.credential)
        .header("connection", "upgrade")
        .header("upgrade", lease_stream::PROTOCOL)
        .send()
        .await
        .ok()?;
    if response.status().as_u16() != 101 {
        return None;
    }
    let mut io = response.upgrade().await.ok()?;
    let mut lines = Lines::new(lease_stream::MAX_REPLY_BYTES);
    // The control plane's hello comes first.
    read_line(&mut io, &mut lines).await?;
    Some((io, lines))
}

/// One ask and its reply; None when the stream broke.
async fn exchange(io: &mut reqwest::Upgraded, lines: &mut Lines, ask: &LeaseAsk) -> Option<Value> {
    io.write_all(&lease_stream::frame(ask)).await.ok()?;
    read_line(io, lines).await
}

/// The next line of the stream as JSON; None when the stream broke.
async fn read_line(io: &mut reqwest::Upgraded, lines: &mut Lines) -> Option<Value> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(line) = lines.next_line() {
            return serde_json::from_slice(&line).ok();
        }
        let read = tokio::time::timeout(Duration::from_secs(80), io.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if read == 0 {
            return None;
        }
        lines.push(&chunk[..read]).ok()?;
    }
}

/// SIGKILLs the replica at `address` (process `pid`) and answers how long
/// until every shard it held is held by another replica.
async fn kill_and_time_takeover(address: String, pid: Option<u32>, store: Store) -> Option<f64> {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let pid = pid?;
    println!("SIGKILL of the replica at {address} (pid {pid})");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let killed = Instant::now();
    while killed.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(mut conn) = store.conn().await else {
            continue;
        };
        // Shards without an unexpired owner other than the killed replica.
        let orphaned: Result<Count, _> = diesel::sql_query(
            "SELECT count(*) AS n FROM paas_shard_leases l \
             LEFT JOIN paas_replicas r ON r.id = l.owner \
             WHERE l.owner IS NULL OR l.expires_at IS NULL OR l.expires_at < now() \
                OR r.address = $1",
        )
        .bind::<diesel::sql_types::Text, _>(&address)
        .get_result(&mut conn)
        .await;
        if orphaned.is_ok_and(|c| c.n == 0) {
            return Some(killed.elapsed().as_secs_f64());
        }
    }
    None
}

/// Connections of the control plane to its database: (most open, most busy)
/// seen while sampling every second, until `stop`.
async fn sample_connections(store: Store, stop: Instant) -> (i64, i64) {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        open: i64,
        #[diesel(sql_type = BigInt)]
        busy: i64,
    }
    let (mut open, mut busy) = (0, 0);
    while Instant::now() < stop {
        if let Ok(mut conn) = store.conn().await {
            let counted: Result<Count, _> = diesel::sql_query(
                "SELECT count(*) AS open, count(*) FILTER (WHERE state <> 'idle') AS busy
                   FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name <> 'skypanel-bench'",
            )
            .get_result(&mut conn)
            .await;
            if let Ok(c) = counted {
                open = open.max(c.open);
                busy = busy.max(c.busy);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    (open, busy)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bases: Bases = Arc::new(
        args.control_plane
            .split(',')
            .map(|b| b.trim().trim_end_matches('/').to_string())
            .filter(|b| !b.is_empty())
            .collect(),
    );
    anyhow::ensure!(!bases.is_empty(), "--control-plane: no address");
    // One connection per agent for its long-poll, as a real agent keeps
    // (upgraded to its lease stream unless `--http-long-poll`). The stream's
    // asks have their own timeout: a request timeout would end the stream.
    let mut polls = reqwest::Client::builder().pool_max_idle_per_host(args.agents);
    if args.http_long_poll {
        polls = polls.timeout(Duration::from_secs(60));
    }
    let polls = polls.build()?;
    let beats = BeatPool {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(args.beat_connections)
            .timeout(Duration::from_secs(30))
            .build()?,
        permits: Arc::new(Semaphore::new(args.beat_connections.max(1))),
    };
    let login: Value = beats
        .http
        .post(format!("{}/api/auth/login", bases[0]))
        .json(&json!({"email": args.admin_email, "password": args.admin_password}))
        .send()
        .await?
        .json()
        .await?;
    let admin = login["access_token"]
        .as_str()
        .context("admin login failed")?
        .to_string();
    let separator = if args.database_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let store = Store::connect(
        &format!(
            "{}{separator}application_name=skypanel-bench",
            args.database_url
        ),
        4,
    )?;

    println!("registering {} agents …", args.agents);
    let started = Instant::now();
    let agents: Vec<Arc<Agent>> = register_all(&beats, &args, &bases, &admin)
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    println!("registered in {:.1} s", started.elapsed().as_secs_f64());

    let figures: Shared = Arc::default();
    let warmup = Duration::from_secs(args.heartbeat_interval + 5);
    // The agents run until they are aborted at the end.
    let forever = Instant::now() + Duration::from_secs(24 * 3600);
    let interval = Duration::from_secs(args.heartbeat_interval);
    let mut workers = Vec::new();
    for agent in &agents {
        workers.push(tokio::spawn(heartbeat_loop(
            beats.clone(),
            bases.clone(),
            agent.clone(),
            interval,
            figures.clone(),
            forever,
            args.stay,
        )));
        let poller = Poller {
            polls: polls.clone(),
            beats: beats.clone(),
            bases: bases.clone(),
            agent: agent.clone(),
            figures: figures.clone(),
        };
        workers.push(if args.http_long_poll {
            tokio::spawn(poll_loop(poller, forever))
        } else {
            tokio::spawn(stream_loop(poller, forever))
        });
    }
    println!(
        "warming up for {} s (every agent heartbeats and polls) …",
        warmup.as_secs()
    );
    tokio::time::sleep(warmup).await;
    // Measured once every node came online (its first heartbeat, a status
    // change, is written at once): a fleet starting together is a burst
    // of its own, not the steady state measured here.
    let waited = Instant::now();
    while record(&figures, |f| f.online) < agents.len()
        && waited.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stop = Instant::now() + Duration::from_secs(args.duration);
    record(&figures, |f| {
        f.heartbeats = 0;
        f.heartbeat_errors = 0;
        f.poll_errors = 0;
    });
    let cpu_before: Vec<_> = args.pid.iter().map(|p| process_figures(*p)).collect();
    let measuring = Instant::now();
    let connections = tokio::spawn(sample_connections(store.clone(), stop));
    let failover = args.kill_after.map(|after| {
        let victim = (
            bases[bases.len() - 1].clone(),
            args.pid.last().copied(),
            store.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(after)).await;
            kill_and_time_takeover(victim.0, victim.1, victim.2).await
        })
    });

    println!(
        "measuring for {} s at {} tasks/s …",
        args.duration, args.task_rate
    );
    let mut conn = store.conn().await?;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / args.task_rate.max(1)));
    let mut created = 0u64;
    // The last tasks get 5 s to arrive before the agents stop.
    while Instant::now() + Duration::from_secs(5) < stop {
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
    drop(conn);
    tokio::time::sleep(stop.saturating_duration_since(Instant::now())).await;
    let elapsed = measuring.elapsed().as_secs_f64();
    let cpu_after: Vec<_> = args.pid.iter().map(|p| process_figures(*p)).collect();
    let (db_open, db_busy) = connections.await.unwrap_or_default();
    for worker in workers {
        worker.abort();
    }

    let nodes: Value = beats
        .http
        .get(format!("{}/api/admin/paas/nodes", bases[0]))
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

    let (mut latencies, lost, heartbeats, heartbeat_errors, poll_errors) = record(&figures, |f| {
        (
            f.latencies.clone(),
            f.committed.len(),
            f.heartbeats,
            f.heartbeat_errors,
            f.poll_errors,
        )
    });
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99, max) = (
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    let beats_per_s = heartbeats as f64 / elapsed;
    let expected_beats = args.agents as f64 / args.heartbeat_interval.max(1) as f64;
    println!();
    println!("agents                  {}", args.agents);
    println!("tasks committed         {created}");
    println!("tasks picked up         {}", latencies.len());
    println!("tasks lost              {lost}");
    println!("pickup latency (ms)     p50 {p50:.2}   p99 {p99:.2}   max {max:.2}");
    println!(
        "heartbeats handled/s    {beats_per_s:.1} of {expected_beats:.0}   (errors: {heartbeat_errors})"
    );
    println!("long-poll errors        {poll_errors}");
    println!("nodes not online        {offline}");
    println!("database connections    {db_open} open at most, {db_busy} busy at most");
    let mut per_process = Vec::new();
    for (i, (before, after)) in cpu_before.iter().zip(&cpu_after).enumerate() {
        let name = if args.pid.len() > 1 {
            format!("replica {}", i + 1)
        } else {
            "control plane".to_string()
        };
        match (before, after) {
            (Some((cpu0, _, _)), Some((cpu1, rss, peak))) => {
                let cpu = (cpu1 - cpu0) / elapsed * 100.0;
                println!(
                    "{name:<23} CPU {cpu:.1} % of one core, RSS {rss:.1} MB (peak {peak:.1} MB)"
                );
                per_process.push((cpu, *peak));
            }
            _ => println!("{name:<23} gone before the end (killed)"),
        }
    }
    let takeover = match failover {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    if let Some(seconds) = takeover {
        println!(
            "failover                the killed replica's shards taken over in {seconds:.2} s"
        );
    }
    if args.row {
        let join = |f: &dyn Fn(&(f64, f64)) -> String| {
            if per_process.is_empty() {
                "–".to_string()
            } else {
                per_process.iter().map(f).collect::<Vec<_>>().join(" / ")
            }
        };
        let cpu = join(&|(c, _)| format!("{c:.0} % of a core"));
        let peak = join(&|(_, p)| format!("{p:.0} MB"));
        println!(
            "ROW | {} ({} s) | {p50:.2} ms | {p99:.2} ms | {max:.1} ms | {} of {created} | {lost} | {beats_per_s:.0} of {expected_beats:.0} | {offline} | {db_open} ({db_busy} busy) | {cpu} | {peak} |",
            args.agents,
            args.duration,
            latencies.len(),
        );
    }
    Ok(())
}
