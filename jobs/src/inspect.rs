//! What the admin inspector reads from and does to the queues, straight
//! from apalis-redis' keys (its own inspection calls are broken in 1.0.0,
//! see STACK.md): `<q>:active` (list, waiting), `<q>:scheduled` (sorted set:
//! delayed, or waiting for a retry), `<q>:inflight:<worker>` (sets, running),
//! `<q>:done` and `<q>:dead` (sets), `<q>:data` (hash: id → job) and
//! `<q>:meta:<id>` (hash: status, attempts, result, done_at).
//!
//! Retry moves a dead or retrying job to the front of the waiting list with
//! its attempts reset; kill moves a waiting, delayed or retrying job to the
//! dead set (its last error stays). Both run as one Lua script, so a worker fetching at the same
//! moment sees the job in one place only.

use redis::AsyncCommands;
use serde::Serialize;

use crate::queues::{BACKUPS, BILLING, BUILDS, NOTIFY, SSL};
use crate::{Error, Queues, bounded};

/// The queues the inspector shows, in order.
pub const QUEUES: [&str; 5] = [BUILDS, BILLING, SSL, BACKUPS, NOTIFY];

/// Jobs listed per queue.
const LISTED: usize = 20;

/// One queue's counts and its latest troubled jobs.
#[derive(Debug, Clone, Serialize)]
pub struct QueueOverview {
    pub queue: String,
    /// Waiting to run (now, or later when delayed).
    pub pending: u64,
    pub running: u64,
    pub done: u64,
    /// Failed and waiting for another attempt.
    pub failed: u64,
    /// Failed for good, or killed.
    pub dead: u64,
    /// The latest failed and dead jobs, newest first.
    pub jobs: Vec<JobView>,
}

/// A job as Redis keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    /// `failed` (another attempt will come) or `dead`.
    pub state: String,
    pub attempts: u32,
    /// The last run's outcome as apalis recorded it (the error, for a failure).
    pub result: Option<String>,
    /// When it last ran (Unix seconds).
    pub last_run: Option<i64>,
    /// The job's arguments (ids only: jobs carry no secrets).
    pub job: Option<String>,
}

/// What a retry or kill found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Moved,
    /// No such job, or not in a state the action applies to.
    NotThere,
}

const RETRY: &str = r#"
local dead, scheduled, active, signal, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[1]
local was = redis.call('SREM', dead, id) + redis.call('ZREM', scheduled, id)
if was == 0 then return 0 end
redis.call('HSET', meta, 'status', 'Pending', 'attempts', 0)
redis.call('LPUSH', active, id)
redis.call('DEL', signal)
redis.call('LPUSH', signal, 1)
return 1
"#;

const KILL: &str = r#"
local dead, scheduled, active, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id = ARGV[1]
local was = redis.call('LREM', active, 0, id) + redis.call('ZREM', scheduled, id)
if was == 0 then return 0 end
redis.call('SADD', dead, id)
redis.call('HSET', meta, 'status', 'Killed', 'done_at', ARGV[2])
return 1
"#;

impl Queues {
    fn key(&self, queue: &str, suffix: &str) -> String {
        format!("{}:{queue}:{suffix}", self.prefix())
    }

    /// The counts and troubled jobs of every queue.
    pub async fn overview(&self) -> Result<Vec<QueueOverview>, Error> {
        bounded(async {
            let mut all = Vec::new();
            for queue in QUEUES {
                all.push(self.overview_of(queue).await.map_err(redis_error)?);
            }
            Ok(all)
        })
        .await
    }

    async fn overview_of(&self, queue: &str) -> redis::RedisResult<QueueOverview> {
        let mut conn = self.connection();
        let waiting: u64 = conn.llen(self.key(queue, "active")).await?;
        // Bounded reads: the page asks every two seconds.
        let scheduled: Vec<String> = conn.zrange(self.key(queue, "scheduled"), 0, 499).await?;
        let done: u64 = conn.scard(self.key(queue, "done")).await?;
        let dead_count: u64 = conn.scard(self.key(queue, "dead")).await?;
        let dead: Vec<String> = conn
            .srandmember_multiple(self.key(queue, "dead"), 200)
            .await?;
        let workers: Vec<String> = conn.zrange(self.key(queue, "workers"), 0, -1).await?;
        let mut running = 0u64;
        for worker in &workers {
            let inflight: u64 = conn
                .scard(self.key(queue, &format!("inflight:{worker}")))
                .await?;
            running += inflight;
        }
        let mut retrying = Vec::new();
        let mut delayed = 0u64;
        for id in scheduled {
            let view = self.job(queue, &id, "failed").await?;
            if view.attempts > 0 {
                retrying.push(view);
            } else {
                delayed += 1;
            }
        }
        let failed = retrying.len() as u64;
        let mut jobs = retrying;
        for id in &dead {
            jobs.push(self.job(queue, id, "dead").await?);
        }
        jobs.sort_by(|a, b| b.last_run.cmp(&a.last_run).then(b.id.cmp(&a.id)));
        jobs.truncate(LISTED);
        Ok(QueueOverview {
            queue: queue.to_string(),
            pending: waiting + delayed,
            running,
            done,
            failed,
            dead: dead_count,
            jobs,
        })
    }

    async fn job(&self, queue: &str, id: &str, state: &str) -> redis::RedisResult<JobView> {
        let mut conn = self.connection();
        let meta: std::collections::HashMap<String, String> =
            conn.hgetall(self.key(queue, &format!("meta:{id}"))).await?;
        let job: Option<Vec<u8>> = conn.hget(self.key(queue, "data"), id).await?;
        Ok(JobView {
            id: id.to_string(),
            state: state.to_string(),
            attempts: meta
                .get("attempts")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            result: meta.get("result").cloned(),
            last_run: meta.get("done_at").and_then(|t| t.parse().ok()),
            job: job.map(|bytes| String::from_utf8_lossy(&bytes).chars().take(500).collect()),
        })
    }

    /// Runs a dead or retrying job again, first in line, with its attempts reset.
    pub async fn retry(&self, queue: &str, id: &str) -> Result<Moved, Error> {
        let script = redis::Script::new(RETRY);
        let mut conn = self.connection();
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.key(queue, "dead"))
            .key(self.key(queue, "scheduled"))
            .key(self.key(queue, "active"))
            .key(self.key(queue, "signal"))
            .key(self.key(queue, &format!("meta:{id}")))
            .arg(id);
        Self::moved(invocation, &mut conn).await
    }

    /// Kills a waiting, delayed or retrying job: it goes to the dead set.
    pub async fn kill(&self, queue: &str, id: &str, now: i64) -> Result<Moved, Error> {
        let script = redis::Script::new(KILL);
        let mut conn = self.connection();
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.key(queue, "dead"))
            .key(self.key(queue, "scheduled"))
            .key(self.key(queue, "active"))
            .key(self.key(queue, &format!("meta:{id}")))
            .arg(id)
            .arg(now);
        Self::moved(invocation, &mut conn).await
    }

    /// Runs a script that moves one job (1: moved), within [`bounded`]'s wait.
    async fn moved(
        invocation: redis::ScriptInvocation<'_>,
        conn: &mut redis::aio::ConnectionManager,
    ) -> Result<Moved, Error> {
        let moved: i64 =
            bounded(async { invocation.invoke_async(conn).await.map_err(redis_error) }).await?;
        Ok(if moved == 1 {
            Moved::Moved
        } else {
            Moved::NotThere
        })
    }
}

fn redis_error(err: redis::RedisError) -> Error {
    Error::Redis(err.to_string())
}
