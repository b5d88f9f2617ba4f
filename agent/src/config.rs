//! The agent's flags, each with an environment equivalent.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(name = "skypanel-agent", version, about = "SkyPanel node agent")]
pub struct Args {
    /// The control plane's URL, e.g. https://panel.example.com (a load
    /// balancer in front of its replicas), or each replica's URL separated
    /// by commas: the agent moves to the next one when one does not answer.
    #[arg(long = "control-plane", env = "SKYPANEL_AGENT_CONTROL_PLANE")]
    pub control_plane: String,

    /// A file holding the one-time registration token (first start only;
    /// mode 0600, deleted once spent). SKYPANEL_AGENT_TOKEN in the
    /// environment does the same.
    #[arg(long = "token-file", env = "SKYPANEL_AGENT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// The registration token from the environment only: a command line is
    /// visible to every user of the node (`ps`).
    #[arg(skip = std::env::var("SKYPANEL_AGENT_TOKEN").ok().filter(|t| !t.is_empty()))]
    pub token_env: Option<String>,

    /// Refused: see `--token-file`.
    #[arg(long = "token", hide = true)]
    pub token_flag: Option<String>,

    /// Where the node credential is kept (mode 0600).
    #[arg(
        long = "state-dir",
        env = "SKYPANEL_AGENT_STATE_DIR",
        default_value = "/var/lib/skypanel-agent"
    )]
    pub state_dir: PathBuf,

    /// Seconds between heartbeats.
    #[arg(
        long = "heartbeat-interval",
        env = "SKYPANEL_AGENT_HEARTBEAT_INTERVAL",
        default_value_t = 30
    )]
    pub heartbeat_interval: u64,

    /// Seconds between two measurements of each database's size and connections.
    #[arg(
        long = "db-health-interval",
        env = "SKYPANEL_AGENT_DB_HEALTH_INTERVAL",
        default_value_t = 60
    )]
    pub db_health_interval: u64,

    /// The port the node's ingress answers HTTP on.
    #[arg(
        long = "ingress-http-port",
        env = "SKYPANEL_AGENT_INGRESS_HTTP_PORT",
        default_value_t = 80
    )]
    pub ingress_http_port: u16,

    /// The port the node's ingress answers HTTPS on.
    #[arg(
        long = "ingress-https-port",
        env = "SKYPANEL_AGENT_INGRESS_HTTPS_PORT",
        default_value_t = 443
    )]
    pub ingress_https_port: u16,

    /// The folder of the node's ingress (nginx configuration, sites, logs);
    /// `<state-dir>/ingress` by default.
    #[arg(long = "ingress-dir", env = "SKYPANEL_AGENT_INGRESS_DIR")]
    pub ingress_dir: Option<PathBuf>,

    /// The address the ingress listens on.
    #[arg(
        long = "ingress-address",
        env = "SKYPANEL_AGENT_INGRESS_ADDRESS",
        default_value = "0.0.0.0"
    )]
    pub ingress_address: String,

    /// The nginx binary the ingress runs.
    #[arg(long, env = "SKYPANEL_AGENT_NGINX", default_value = "nginx")]
    pub nginx: PathBuf,

    /// Seconds old instances keep serving their requests after a new release
    /// took over the ingress.
    #[arg(
        long = "drain-seconds",
        env = "SKYPANEL_AGENT_DRAIN_SECONDS",
        default_value_t = 5
    )]
    pub drain_seconds: u64,

    /// Where managed databases' backups are kept; `<state-dir>/backups` by default.
    #[arg(long = "backup-dir", env = "SKYPANEL_AGENT_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Where builds get their working folders; `<state-dir>/builds` by default.
    #[arg(long = "build-dir", env = "SKYPANEL_AGENT_BUILD_DIR")]
    pub build_dir: Option<PathBuf>,

    /// Stop the ingress when the agent stops (tests; a node keeps serving
    /// while its agent restarts).
    #[arg(
        long = "stop-ingress-on-exit",
        env = "SKYPANEL_AGENT_STOP_INGRESS_ON_EXIT"
    )]
    pub stop_ingress_on_exit: bool,

    /// Tasks worked on at the same time.
    #[arg(
        long = "max-tasks",
        env = "SKYPANEL_AGENT_MAX_TASKS",
        default_value_t = 4
    )]
    pub max_tasks: usize,

    /// Seconds a lease request waits for work.
    #[arg(
        long = "lease-wait",
        env = "SKYPANEL_AGENT_LEASE_WAIT",
        default_value_t = 30
    )]
    pub lease_wait: u64,

    /// Seconds a new container has to accept connections on its port.
    #[arg(
        long = "health-timeout",
        env = "SKYPANEL_AGENT_HEALTH_TIMEOUT",
        default_value_t = 60
    )]
    pub health_timeout: u64,

    /// Seconds the longest task may run.
    #[arg(
        long = "task-timeout",
        env = "SKYPANEL_AGENT_TASK_TIMEOUT",
        default_value_t = 900
    )]
    pub task_timeout: u64,

    /// Prefix of every container and network name this agent manages (and
    /// the value of its managed label). Leave empty on a worker node; tests set
    /// it so that several agents can share one Docker.
    #[arg(long, env = "SKYPANEL_AGENT_NAMESPACE", default_value = "")]
    pub namespace: String,

    /// The IPv4 range customer networks take their /24 subnets from, or
    /// `docker` for Docker's own default pools (about 31 networks in all).
    /// It must not overlap the node's other networks.
    #[arg(
        long = "network-pool",
        env = "SKYPANEL_AGENT_NETWORK_POOL",
        default_value = "10.200.0.0/14"
    )]
    pub network_pool: String,

    /// Release images kept per application besides those its containers
    /// run (older ones the agent made are removed; the registry has them).
    #[arg(
        long = "keep-images",
        env = "SKYPANEL_AGENT_KEEP_IMAGES",
        default_value_t = 3
    )]
    pub keep_images: usize,

    /// Log as JSON lines.
    #[arg(long = "log-json", env = "SKYPANEL_AGENT_LOG_JSON")]
    pub log_json: bool,

    /// Serve Prometheus metrics at `http://<address>/metrics` (off unless
    /// set; keep it on a local or private address: it has no authentication).
    #[arg(long = "metrics-listen", env = "SKYPANEL_AGENT_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Args {
    /// The subnet pool of customer networks (`None`: Docker's own).
    pub fn network_pool(&self) -> anyhow::Result<Option<crate::docker::SubnetPool>> {
        if self.network_pool == "docker" {
            return Ok(None);
        }
        self.network_pool
            .parse()
            .map(Some)
            .map_err(|e: String| anyhow::anyhow!("--network-pool: {e}"))
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_interval.max(1))
    }

    pub fn db_health_interval(&self) -> Duration {
        Duration::from_secs(self.db_health_interval.max(1))
    }

    pub fn ingress_dir(&self) -> PathBuf {
        self.ingress_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("ingress"))
    }

    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("backups"))
    }

    pub fn build_dir(&self) -> PathBuf {
        self.build_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("builds"))
    }

    pub fn control_plane(&self) -> String {
        self.control_plane.trim_end_matches('/').to_string()
    }
}
