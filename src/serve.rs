//! `skypanel serve`: logging, migrations, the HTTP server and graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use poem::Server;
use poem::listener::TcpListener;
use skypanel_http::AppState;
use skypanel_store::Store;

use crate::config::Config;

/// How long in-flight requests get to finish after SIGTERM or Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a terminal: never in a log file or a pipe.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn check_redis(url: &str) -> anyhow::Result<redis::Client> {
    let client = redis::Client::open(url).context("SKYPANEL_REDIS_URL is not a valid Redis URL")?;
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(5), ping).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(err)) => anyhow::bail!("cannot reach Redis at SKYPANEL_REDIS_URL: {err}"),
        Err(_) => anyhow::bail!("cannot reach Redis at SKYPANEL_REDIS_URL: timed out after 5 s"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(config.log_json);
    let store = Store::connect(&config.database_url, config.db_pool_size)?;
    let applied = store
        .migrate()
        .await
        .context("cannot migrate the database at SKYPANEL_DATABASE_URL")?;
    if !applied.is_empty() {
        tracing::info!(count = applied.len(), "applied migrations");
    }
    let redis = check_redis(&config.redis_url).await?;
    let context = skypanel_actors::Context::new(
        store.clone(),
        config.secret_key.clone(),
        config.actor_settings(),
    );
    context.shards().set_address(config.replica_url.clone());
    let orchestrator = skypanel_actors::Orchestrator::start(context)
        .await
        .context("cannot start the actors")?;
    let queues = skypanel_jobs::Queues::connect(&config.redis_url, &config.queue_prefix)
        .await
        .context("cannot reach Redis at SKYPANEL_REDIS_URL for the job queues")?;
    // A deploy that waited for a rollout starts its build from the actor:
    // its job is queued at once (the sweeper would, later).
    let builds = queues.clone();
    orchestrator
        .context()
        .set_build_hook(Arc::new(move |build_id| {
            let builds = builds.clone();
            tokio::spawn(async move {
                if let Err(err) = builds.push_build(build_id).await {
                    tracing::warn!(build_id, error = %err, "cannot queue the build now; the sweeper will");
                }
            });
        }));
    let workers = skypanel_jobs::Workers::start(skypanel_jobs::WorkersOptions {
        queues: queues.clone(),
        orchestrator: orchestrator.clone(),
        store: store.clone(),
        builds: config.build_settings(),
        ssl: config.ssl_settings(),
        backups: config.backup_settings(),
        webhooks: config.webhook_settings(),
        sweep_every: config.sweep_interval,
        registry: config.registry.as_ref().and_then(|r| r.retention()),
    });
    skypanel_http::dto::apps::set_apps_http_port(config.apps_http_port);
    let state = AppState::new(
        store,
        config.http_settings(),
        config.secret_key.clone(),
        Some(redis),
        Some(orchestrator.clone()),
    );
    state.set_log_streams(queues.log_streams(config.app_log_lines));
    state.set_queues(queues);
    let listener = TcpListener::bind(config.listen);
    tracing::info!(
        listen = %config.listen,
        public_url = %config.public_url,
        "skypanel is serving the API at {0}/api and its docs at {0}/api/docs",
        config.public_url
    );
    let actors_down = Arc::new(AtomicBool::new(false));
    let stop = {
        let orchestrator = orchestrator.clone();
        let actors_down = actors_down.clone();
        async move {
            tokio::select! {
                () = shutdown_signal() => {}
                () = orchestrator.stopped() => {
                    tracing::error!("the actors stopped for good; stopping so that the service manager restarts skypanel");
                    actors_down.store(true, Ordering::SeqCst);
                }
            }
        }
    };
    Server::new(listener)
        .run_with_graceful_shutdown(skypanel_http::app(state), stop, Some(SHUTDOWN_GRACE))
        .await
        .context("the HTTP server stopped")?;
    workers.stop(SHUTDOWN_GRACE).await;
    orchestrator.shutdown().await;
    if actors_down.load(Ordering::SeqCst) {
        anyhow::bail!("the actors stopped after repeated failures (see the log above)");
    }
    Ok(())
}

/// The API description, for `skypanel openapi`. Building the API needs a
/// state, but describing it touches nothing: the pool below never connects.
pub fn spec_service() -> anyhow::Result<skypanel_http::ApiService> {
    let settings = skypanel_http::Settings {
        jwt_secret: String::new(),
        jwt_ttl: Duration::from_secs(3600),
        platform_domain: "localhost".into(),
        allow_file_git: false,
        allow_plain_http_git: false,
        public_url: String::new(),
        registration_ttl: Duration::from_secs(3600),
        https: false,
        renew_before: Duration::from_secs(30 * 24 * 3600),
        volume_retention: Duration::from_secs(7 * 24 * 3600),
        webhook_allow_private: false,
        rate_limits: skypanel_http::rate_limit::RateLimits::default(),
        trusted_proxies: Vec::new(),
        quotas: skypanel_http::quotas::Quotas::default(),
        registry: None,
        registry_retention: None,
        github: Default::default(),
        git: Default::default(),
    };
    let key = skypanel_domain::secrets::SecretKey::from_hex(&"00".repeat(32))?;
    let store = Store::connect("postgres://spec-only@127.0.0.1/none", 1)?;
    Ok(skypanel_http::openapi_service(&AppState::new(
        store, settings, key, None, None,
    )))
}
