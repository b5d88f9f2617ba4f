//! `skypanel-agent`: runs on every worker node. It registers once with a
//! one-time token, then heartbeats, long-polls the control plane for tasks,
//! carries them out on Docker, and restarts crashed containers (within limits).

mod applogs;
mod backoff;
mod backups;
mod builder;
mod client;
mod config;
mod crash;
mod dbhealth;
mod dbs;
mod docker;
mod executor;
mod exporter;
mod firewall;
mod heartbeat;
mod images;
mod ingress;
mod lease_stream;
mod metrics;
mod moves;
mod runner;
mod runs;
mod state;
mod tasklog;

use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::prelude::*;

use anyhow::Context;
use clap::Parser;
use skypanel_protocol::node::RegisterRequest;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::builder::Builder;
use crate::client::{ClientError, ControlPlane};
use crate::config::Args;
use crate::crash::CrashPolicy;
use crate::docker::Engine;
use crate::executor::{Executor, ExecutorOptions};
use crate::heartbeat::Heartbeats;
use crate::ingress::{Ingress, IngressOptions};
use crate::runner::Runner;
use crate::state::Credentials;

/// How long running tasks get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // bollard logs the Docker API's bodies at debug level, and those carry
    // the containers' environment (customers' secrets): its events below
    // info never reach the log, whatever RUST_LOG says.
    let quiet_docker = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("bollard") && *meta.level() > tracing::Level::INFO)
    });
    let logs = tracing_subscriber::registry().with(filter);
    // Colour codes only for a terminal: never in a log file or a pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    if args.log_json {
        logs.with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_target(false)
                .with_filter(quiet_docker),
        )
        .init();
    } else {
        logs.with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(ansi)
                .with_filter(quiet_docker),
        )
        .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("skypanel-agent: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("skypanel-agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.token_flag.is_some() {
        anyhow::bail!(
            "--token puts the registration token on the command line, where every user of \
             the node sees it (ps): put it in a file of mode 0600 named by --token-file \
             (SKYPANEL_AGENT_TOKEN_FILE), or in SKYPANEL_AGENT_TOKEN"
        );
    }
    let client = ControlPlane::new(args.control_plane())?;
    let engine = Engine::connect(args.namespace.clone(), args.network_pool()?)
        .context("cannot reach Docker")?;
    engine
        .ping()
        .await
        .context("cannot reach Docker (is the daemon running?)")?;
    for missing in firewall::ensure().await {
        tracing::error!(rule = %missing, "a firewall rule is missing: the node lacks this protection");
    }
    let credentials =
        match state::load(&args.state_dir).context("cannot read the state directory")? {
            Some(credentials) => credentials,
            None => register(&client, &args).await?,
        };
    tracing::info!(node_id = credentials.node_id, "agent starting");
    client.set_credentials(credentials);

    let crash = CrashPolicy::default();
    let watcher = tokio::spawn(crash.clone().watch(engine.clone()));
    let (stop, shutdown) = watch::channel(false);
    let health = dbhealth::HealthQueue::default();
    let measuring = tokio::spawn(
        dbhealth::DbHealth {
            engine: engine.clone(),
            interval: args.db_health_interval(),
            queue: health.clone(),
        }
        .run(shutdown.clone()),
    );
    let heartbeats = Heartbeats {
        client: client.clone(),
        engine: engine.clone(),
        crash: crash.clone(),
        health,
        interval: args.heartbeat_interval(),
        state_dir: args.state_dir.clone(),
    };
    let beating = tokio::spawn(heartbeats.run(shutdown.clone()));
    let logs = applogs::AppLogs::new(engine.clone(), client.clone());
    let shipping = tokio::spawn(logs.clone().run(shutdown.clone()));
    let ingress = Ingress::new(IngressOptions {
        dir: args.ingress_dir(),
        nginx: args.nginx.clone(),
        address: args.ingress_address.clone(),
        http_port: args.ingress_http_port,
        https_port: args.ingress_https_port,
    });
    ingress
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the ingress (nginx): {e}"))?;
    std::fs::create_dir_all(args.build_dir()).context("cannot create the build folder")?;
    let runs = runs::Runs {
        engine: engine.clone(),
        crash: crash.clone(),
        client: client.clone(),
        logs,
    };
    let engine_for_metrics = engine.clone();
    let executor = Executor::new(ExecutorOptions {
        engine: engine.clone(),
        crash,
        builder: Builder::new(engine, args.build_dir()),
        ingress: ingress.clone(),
        health_timeout: Duration::from_secs(args.health_timeout),
        drain: Duration::from_secs(args.drain_seconds),
        dumps: crate::backups::Dumps::new(args.backup_dir()),
        keep_images: args.keep_images,
        client: client.clone(),
    });
    let syncing = tokio::spawn(sync_ingress_forever(executor.clone()));
    let exporting = match args.metrics_listen {
        Some(address) => Some(
            exporter::serve(address, engine_for_metrics)
                .await
                .with_context(|| format!("cannot listen for metrics on {address}"))?,
        ),
        None => None,
    };
    let runner = Runner {
        client,
        executor,
        runs,
        max_tasks: args.max_tasks.max(1),
        lease_wait: args.lease_wait.min(skypanel_protocol::MAX_LEASE_WAIT_SECS),
        task_timeout: Duration::from_secs(args.task_timeout),
        running: Default::default(),
    };
    let leasing = tokio::spawn(runner.run(shutdown, SHUTDOWN_GRACE));

    wait_for_signal().await;
    tracing::info!("stopping: no new tasks; finishing the running ones");
    let _ = stop.send(true);
    let _ = leasing.await;
    let _ = beating.await;
    let _ = shipping.await;
    let _ = measuring.await;
    watcher.abort();
    syncing.abort();
    if let Some(exporting) = exporting {
        exporting.abort();
    }
    if args.stop_ingress_on_exit {
        ingress.stop().await;
    }
    Ok(())
}

/// Keeps the ingress pointed at instances that moved (restarted after a crash).
async fn sync_ingress_forever(executor: Executor) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        executor.sync_ingress().await;
    }
}

/// First start: trades the one-time token for the node credential and saves it.
async fn register(client: &ControlPlane, args: &Args) -> anyhow::Result<Credentials> {
    let token = match (&args.token_env, &args.token_file) {
        (Some(token), _) => token.clone(),
        (None, Some(file)) => state::read_token_file(file)?,
        (None, None) => anyhow::bail!(
            "no credential in the state directory and no registration token: register the \
             node (POST /api/admin/paas/nodes/register) and start the agent with its token \
             in a file named by --token-file (SKYPANEL_AGENT_TOKEN_FILE) or in SKYPANEL_AGENT_TOKEN"
        ),
    };
    let host = metrics::HostMetrics::default().sample();
    let request = RegisterRequest {
        registration_token: token,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        cpu_total: host.cpu_total,
        memory_total_mb: host.memory_total_mb,
        disk_total_mb: host.disk_total_mb,
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        match client.register(&request).await {
            Ok(registered) => {
                let credentials = Credentials {
                    node_id: registered.node_id,
                    credential: registered.credential,
                };
                state::save(&args.state_dir, &credentials)
                    .context("cannot save the node credential")?;
                tracing::info!(node_id = credentials.node_id, "registered");
                // The token is spent: its file has nothing left to protect.
                if let Some(file) = &args.token_file
                    && let Err(err) = std::fs::remove_file(file)
                {
                    tracing::warn!(file = %file.display(), error = %err, "cannot delete the spent token file");
                }
                return Ok(credentials);
            }
            Err(ClientError::Unauthorized(_)) => anyhow::bail!(
                "the registration token was refused (used, unknown or expired); ask an admin for a new one"
            ),
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %err, retry_in = ?delay, "cannot register yet");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
}
