//! Application logs: the agent follows what every managed container writes
//! and ships it to the control plane in batches every second. A container
//! restarted is followed again from the last line shipped; while the control
//! plane cannot be reached, lines wait in a bounded buffer (the oldest go
//! first when it is full).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use skypanel_protocol::limits::{MAX_APP_LOG_BATCH_BYTES, MAX_APP_LOG_LINE_BYTES, clip};
use skypanel_protocol::node::{AppLogBatch, AppLogEntry, ContainerState};
use tokio::sync::watch;

use crate::client::ControlPlane;
use crate::docker::{Engine, Managed, SESSION};

/// What the lines of a container are named by, as Heroku names dynos:
/// `web.0`, `worker.1`; a one-off by its process (`release`, `run.12`).
fn dyno_name(container: &Managed) -> String {
    match container.one_off {
        Some(_) => container.process.clone(),
        None => format!("{}.{}", container.process, container.instance),
    }
}

/// How often new containers are looked for.
const DISCOVER_EVERY: Duration = Duration::from_secs(2);
/// How often lines are shipped.
const SHIP_EVERY: Duration = Duration::from_secs(1);
/// The most lines in one batch.
const BATCH: usize = 2000;
/// The most lines waiting while the control plane is unreachable.
const BUFFER: usize = 50_000;

#[derive(Clone)]
pub struct AppLogs {
    engine: Engine,
    client: ControlPlane,
    buffer: Arc<Mutex<VecDeque<AppLogEntry>>>,
    /// Per container name: the time of the last line taken, and whether a
    /// follower runs for it now.
    followed: Arc<Mutex<HashMap<String, Followed>>>,
    /// Containers that ran before the agent started are followed from here.
    started: DateTime<Utc>,
}

#[derive(Default, Clone)]
struct Followed {
    last: Option<DateTime<Utc>>,
    running: bool,
}

impl AppLogs {
    pub fn new(engine: Engine, client: ControlPlane) -> Self {
        Self {
            engine,
            client,
            buffer: Arc::default(),
            followed: Arc::default(),
            started: Utc::now(),
        }
    }

    /// Follows and ships until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let shipper = tokio::spawn(self.clone().ship_forever());
        let mut tick = tokio::time::interval(DISCOVER_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => self.discover().await,
                _ = shutdown.changed() => break,
            }
        }
        shipper.abort();
        self.ship_once().await;
    }

    fn lock_followed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Followed>> {
        self.followed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_buffer(&self) -> std::sync::MutexGuard<'_, VecDeque<AppLogEntry>> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn discover(&self) {
        let Ok(containers) = self.engine.managed(None).await else {
            return;
        };
        let mut followed = self.lock_followed();
        followed.retain(|name, _| containers.iter().any(|c| &c.name == name));
        for c in containers {
            // An attached run's output goes to its caller only.
            if c.state != ContainerState::Running || c.one_off.as_deref() == Some(SESSION) {
                continue;
            }
            let entry = followed.entry(c.name.clone()).or_default();
            if entry.running {
                continue;
            }
            entry.running = true;
            let since = entry.last.unwrap_or(self.started);
            tokio::spawn(self.clone().follow(c, since));
        }
    }

    /// Follows a container from its first line (a one-off run just
    /// started); the answer ends once its last line was taken.
    pub fn follow_from_start(&self, container: Managed) -> tokio::task::JoinHandle<()> {
        self.lock_followed()
            .entry(container.name.clone())
            .or_default()
            .running = true;
        tokio::spawn(self.clone().follow(container, DateTime::<Utc>::UNIX_EPOCH))
    }

    /// Takes a container's lines from `since` until it stops.
    async fn follow(self, container: Managed, since: DateTime<Utc>) {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            timestamps: true,
            since: i32::try_from(since.timestamp()).unwrap_or(0),
            ..Default::default()
        };
        let process = dyno_name(&container);
        let mut stream = self.engine.raw().logs(&container.id, Some(options));
        while let Some(Ok(output)) = stream.next().await {
            let (stream_name, bytes) = match &output {
                LogOutput::StdErr { message } => ("stderr", message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    ("stdout", message)
                }
                LogOutput::StdIn { .. } => continue,
            };
            let text = String::from_utf8_lossy(bytes);
            for raw in text.lines().filter(|l| !l.is_empty()) {
                let (at, line) = split_timestamp(raw);
                // Lines of the second `since` names may come again: skip them.
                if at.is_some_and(|t| t < since) {
                    continue;
                }
                let mut followed = self.lock_followed();
                let entry = followed.entry(container.name.clone()).or_default();
                if let (Some(at), Some(last)) = (at, entry.last)
                    && at <= last
                {
                    continue;
                }
                if at.is_some() {
                    entry.last = at;
                }
                drop(followed);
                self.push(AppLogEntry {
                    application_id: container.app_id,
                    instance: container.instance,
                    release: container.release,
                    process: process.clone(),
                    stream: stream_name.to_string(),
                    timestamp: at.unwrap_or_else(Utc::now).to_rfc3339(),
                    // A line longer than the control plane keeps is cut, not dropped.
                    line: clip(line, MAX_APP_LOG_LINE_BYTES).into_owned(),
                });
            }
        }
        if let Some(entry) = self.lock_followed().get_mut(&container.name) {
            entry.running = false;
        }
    }

    fn push(&self, entry: AppLogEntry) {
        let mut buffer = self.lock_buffer();
        if buffer.len() >= BUFFER {
            buffer.pop_front();
        }
        buffer.push_back(entry);
    }

    async fn ship_forever(self) {
        let mut tick = tokio::time::interval(SHIP_EVERY);
        loop {
            tick.tick().await;
            self.ship_once().await;
        }
    }

    /// Sends what waits, in batches; lines the control plane could not take
    /// for a passing reason go back to the front of the buffer.
    async fn ship_once(&self) {
        loop {
            // At most BATCH lines and MAX_APP_LOG_BATCH_BYTES of them.
            let lines: Vec<AppLogEntry> = {
                let mut buffer = self.lock_buffer();
                let mut bytes = 0;
                let n = buffer
                    .iter()
                    .take(BATCH)
                    .take_while(|entry| {
                        bytes += entry.line.len() + 64;
                        bytes <= MAX_APP_LOG_BATCH_BYTES
                    })
                    .count()
                    .max(1)
                    .min(buffer.len());
                buffer.drain(..n).collect()
            };
            if lines.is_empty() {
                return;
            }
            let full = !self.lock_buffer().is_empty();
            let batch = AppLogBatch { lines };
            match self.client.app_logs(&batch).await {
                Ok(_) => {}
                Err(err) if err.is_transient() => {
                    let mut buffer = self.lock_buffer();
                    for line in batch.lines.into_iter().rev() {
                        if buffer.len() < BUFFER {
                            buffer.push_front(line);
                        }
                    }
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "application logs refused");
                    return;
                }
            }
            if !full {
                return;
            }
        }
    }
}

/// Docker's `timestamps` prefix (`2026-11-23T10:00:00.123456789Z `) and the line.
fn split_timestamp(raw: &str) -> (Option<DateTime<Utc>>, &str) {
    match raw.split_once(' ') {
        Some((ts, rest)) => match DateTime::parse_from_rfc3339(ts) {
            Ok(at) => (Some(at.with_timezone(&Utc)), rest),
            Err(_) => (None, raw),
        },
        None => (None, raw),
    }
}

#[cfg(test)]
mod tests {
    use super::split_timestamp;

    #[test]
    fn docker_timestamps_are_split_off() {
        let (at, line) = split_timestamp("2026-11-23T10:00:00.123456789Z GET / 200");
        assert_eq!(line, "GET / 200");
        assert_eq!(at.unwrap().timestamp_subsec_nanos(), 123_456_789);
        let (at, line) = split_timestamp("no timestamp here");
        assert!(at.is_none());
        assert_eq!(line, "no timestamp here");
    }
}
