//! The heartbeat loop: the node's figures and every managed container with
//! its usage, sent every interval (and at once after a crash loop), the
//! credential rotated when the control plane says it is old.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use skypanel_protocol::node::{ContainerReport, Heartbeat};
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::client::ControlPlane;
use crate::crash::CrashPolicy;
use crate::docker::Engine;
use crate::metrics::HostMetrics;
use crate::state::{self, Credentials};

pub struct Heartbeats {
    pub client: ControlPlane,
    pub engine: Engine,
    pub crash: CrashPolicy,
    /// Database measurements the next heartbeat carries.
    pub health: crate::dbhealth::HealthQueue,
    pub interval: Duration,
    pub state_dir: PathBuf,
}

impl Heartbeats {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut metrics = HostMetrics::default();
        metrics.sample();
        let mut previous_cpu: HashMap<String, (u64, u64)> = HashMap::new();
        let mut backoff = Backoff::new(
            Duration::from_millis(500),
            self.interval.max(Duration::from_secs(1)),
        );
        while !*shutdown.borrow() {
            let beat = self.collect(&mut metrics, &mut previous_cpu).await;
            let sent = self.client.heartbeat(&beat).await;
            crate::exporter::heartbeat(sent.is_ok());
            let wait = match sent {
                Ok(ack) => {
                    backoff.reset();
                    if ack.rotate_credential {
                        self.rotate().await;
                    }
                    self.interval
                }
                Err(err) => {
                    tracing::warn!(error = %err, "heartbeat failed");
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.crash.urgent.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn collect(
        &self,
        metrics: &mut HostMetrics,
        previous_cpu: &mut HashMap<String, (u64, u64)>,
    ) -> Heartbeat {
        let host = metrics.sample();
        // When the list was read: reports are ordered by it, not by arrival.
        let listed_at = chrono::Utc::now();
        let mut managed = self.engine.managed(None).await.unwrap_or_else(|err| {
            tracing::warn!(error = %crate::docker::short(&err), "cannot list containers");
            Vec::new()
        });
        // One-off containers are not instances.
        managed.retain(|m| m.one_off.is_none());
        let usages =
            futures::future::join_all(managed.iter().map(|m| self.engine.usage(&m.id))).await;
        let mut containers = Vec::with_capacity(managed.len());
        let mut seen = HashMap::new();
        for (m, usage) in managed.into_iter().zip(usages) {
            let (cpu, memory) = match usage {
                Some((total, system, cpus, memory)) => {
                    let cpu = previous_cpu
                        .get(&m.id)
                        .map_or(0.0, |(prev_total, prev_system)| {
                            let used = total.saturating_sub(*prev_total) as f64;
                            let all = system.saturating_sub(*prev_system) as f64;
                            if all > 0.0 {
                                used / all * f64::from(cpus) * 100.0
                            } else {
                                0.0
                            }
                        });
                    seen.insert(m.id.clone(), (total, system));
                    (cpu, (memory / 1024 / 1024) as i64)
                }
                None => (0.0, 0),
            };
            containers.push(ContainerReport {
                restart_count: self.crash.restarts(&m.name),
                crash_looping: self.crash.looping(&m.name),
                container_id: m.id,
                name: m.name,
                application_id: m.app_id,
                user_id: m.user_id,
                release: m.release,
                process: m.process,
                instance: m.instance,
                generation: m.generation,
                state: m.state,
                host_port: m.host_port,
                cpu_usage_percent: cpu,
                memory_used_mb: memory,
            });
        }
        *previous_cpu = seen;
        Heartbeat {
            node_id: self.client.node_id(),
            timestamp: listed_at,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            cpu_usage_percent: host.cpu_percent,
            cpu_total: host.cpu_total,
            memory_used_mb: host.memory_used_mb,
            memory_total_mb: host.memory_total_mb,
            disk_used_mb: host.disk_used_mb,
            disk_total_mb: host.disk_total_mb,
            container_count: containers.len() as i32,
            containers,
            images: Some(crate::images::usage(&self.engine).await),
            crashed_databases: self
                .crash
                .looping_names()
                .iter()
                .filter_map(|name| self.engine.database_id_of(name))
                .collect(),
            database_health: self.health.take(),
        }
    }

    /// Gets a new credential, saves it, then uses it (the old one keeps working meanwhile).
    async fn rotate(&self) {
        match self.client.rotate().await {
            Ok(rotated) => {
                let credentials = Credentials {
                    node_id: self.client.node_id(),
                    credential: rotated.credential,
                };
                match state::save(&self.state_dir, &credentials) {
                    Ok(()) => {
                        self.client.set_credentials(credentials);
                        tracing::info!("node credential rotated");
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot save the rotated credential; keeping the old one")
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot rotate the credential"),
        }
    }
}
