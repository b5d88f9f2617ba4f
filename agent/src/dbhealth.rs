//! Database health on the node: every interval, each running managed
//! database's data size (`du` inside its container) and its engine's client
//! connections (a query its own client runs inside the container, the
//! password read there), queued for the next heartbeat to carry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use skypanel_protocol::database::{DatabaseHealthReport, health_probe, parse_probe};
use tokio::sync::watch;

use crate::docker::Engine;

/// How long one probe may take before it counts as no answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Measurements waiting for the next heartbeat.
#[derive(Clone, Default)]
pub struct HealthQueue(Arc<Mutex<Vec<DatabaseHealthReport>>>);

impl HealthQueue {
    /// Takes what was measured since the last call.
    pub fn take(&self) -> Vec<DatabaseHealthReport> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, report: DatabaseHealthReport) {
        let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // A heartbeat that failed leaves the old figure behind: the newer one replaces it.
        queue.retain(|r| r.database_id != report.database_id);
        queue.push(report);
    }
}

pub struct DbHealth {
    pub engine: Engine,
    pub interval: Duration,
    pub queue: HealthQueue,
}

impl DbHealth {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            self.measure_all().await;
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn measure_all(&self) {
        let databases = match self.engine.running_databases().await {
            Ok(list) => list,
            Err(err) => {
                tracing::warn!(error = %crate::docker::short(&err), "cannot list the databases to measure");
                return;
            }
        };
        for (database_id, name, db_type) in databases {
            let Some(probe) = health_probe(&db_type) else {
                continue;
            };
            let size_bytes = self.run_probe(&name, probe.size, true).await;
            let connections = match probe.connections {
                Some(command) => self
                    .run_probe(&name, command, false)
                    .await
                    .and_then(|n| i32::try_from(n).ok()),
                None => None,
            };
            self.queue.push(DatabaseHealthReport {
                database_id,
                size_bytes,
                connections,
                measured_at: chrono::Utc::now(),
            });
        }
    }

    /// Runs one probe inside container `name`; its number, or `None` when it
    /// failed or printed none (the engine is starting, say).
    async fn run_probe(&self, name: &str, command: Vec<String>, size: bool) -> Option<i64> {
        let mut out = Vec::new();
        let ran = tokio::time::timeout(
            PROBE_TIMEOUT,
            self.engine.exec(name, command, Vec::new(), None, &mut out),
        )
        .await;
        match ran {
            Ok(Ok(exited)) if exited.code == 0 => parse_probe(&String::from_utf8_lossy(&out), size),
            Ok(Ok(exited)) => {
                tracing::debug!(container = name, code = exited.code, stderr = %exited.stderr, "a health probe failed");
                None
            }
            Ok(Err(err)) => {
                tracing::debug!(container = name, error = %err, "a health probe could not run");
                None
            }
            Err(_) => None,
        }
    }
}
