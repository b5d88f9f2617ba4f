//! Managed databases on the node: a named volume and a hardened container
//! per database on its customer's network, started the way the engine's
//! official image expects; provisioning waits until the engine accepts TCP
//! connections.

use std::time::{Duration, Instant};

use skypanel_protocol::database::{DatabaseSpec, DatabaseTarget, launch};
use skypanel_protocol::node::ContainerState;

use crate::crash::CrashPolicy;
use crate::docker::{Engine, Inspected, short};
use crate::executor::{TaskFailure, TaskLog};

/// Runs the database (idempotent: an existing one is started if stopped,
/// or made again on the same volume when its plan's limits changed) and
/// waits up to `timeout` for its engine to accept connections.
pub async fn provision(
    engine: &Engine,
    crash: &CrashPolicy,
    spec: &DatabaseSpec,
    log: &TaskLog,
    timeout: Duration,
) -> Result<(), TaskFailure> {
    let Some(launch) = launch(spec) else {
        return Err(TaskFailure::app(format!(
            "this node does not run {} databases",
            spec.db_type
        )));
    };
    crate::images::ensure(engine, &spec.image)
        .await
        .map_err(|e| {
            TaskFailure::node(format!(
                "the engine image {} is not available: {e}",
                spec.image
            ))
        })?;
    let network = engine.ensure_network(spec.user_id).await.map_err(|e| {
        TaskFailure::node(format!(
            "cannot create the customer's network: {}",
            short(&e)
        ))
    })?;
    let outdated = engine
        .database_outdated(spec, &launch)
        .await
        .map_err(|e| TaskFailure::node(format!("cannot inspect the database: {}", short(&e))))?;
    if outdated {
        // A new plan: the engine shuts down cleanly and comes back on the
        // same volume with the new limits (a stop the agent makes is not a
        // crash to restart).
        let name = engine.database_container_name(spec.database_id);
        log.line(format!(
            "the container changed (plan or command): making {} again with {} millicores and {} MB on the same data",
            spec.db_type, spec.cpu_millicores, spec.memory_mb
        ));
        crash.expect_stop(&name);
        engine
            .stop(&name, 30)
            .await
            .map_err(|e| TaskFailure::node(format!("cannot stop the database: {}", short(&e))))?;
        engine.remove(&name).await.map_err(|e| {
            TaskFailure::node(format!("cannot remove the old container: {}", short(&e)))
        })?;
    }
    let name = engine
        .ensure_database(spec, &launch, &network)
        .await
        .map_err(|e| {
            TaskFailure::node(format!(
                "cannot create the database container: {}",
                short(&e)
            ))
        })?;
    // On its customer's network even if a move cut it off and could not
    // put it back (its node stopped meanwhile).
    engine
        .rejoin_database(spec.database_id, spec.user_id)
        .await
        .map_err(|e| {
            TaskFailure::node(format!(
                "cannot put the database on its network: {}",
                short(&e)
            ))
        })?;
    engine
        .start(&name)
        .await
        .map_err(|e| TaskFailure::node(format!("cannot start the database: {}", short(&e))))?;
    // Started on purpose: from now on an exit is a crash again (a stop
    // the agent made earlier no longer hides it).
    crash.started(&name);
    log.line(format!(
        "{} started; waiting for it to accept connections",
        spec.db_type
    ));
    wait_until_ready(engine, &name, launch.port, log, timeout).await
}

/// Waits up to `timeout` until the database in container `name` accepts
/// TCP connections on `port`; one that exits meanwhile fails with its last lines.
pub async fn wait_until_ready(
    engine: &Engine,
    name: &str,
    port: u16,
    log: &TaskLog,
    timeout: Duration,
) -> Result<(), TaskFailure> {
    let deadline = Instant::now() + timeout;
    loop {
        match engine.inspect(name).await {
            Ok(Some(Inspected {
                state: ContainerState::Running,
                address: Some(ip),
                ..
            })) => {
                let address = std::net::SocketAddr::new(ip, port);
                let connect = tokio::net::TcpStream::connect(address);
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
                    log.line("the database accepts connections");
                    return Ok(());
                }
            }
            Ok(Some(Inspected {
                state: ContainerState::Exited | ContainerState::Dead,
                exit_code,
                ..
            })) => {
                for line in engine.tail(name, 20).await {
                    log.line(line);
                }
                return Err(TaskFailure::app(format!(
                    "the database exited with code {exit_code} while starting"
                )));
            }
            Ok(None) => return Err(TaskFailure::node("the database container disappeared")),
            Ok(Some(_)) | Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(TaskFailure::app(format!(
                "the database did not accept connections within {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Stops the database's container; its data stays (a provision starts it again).
pub async fn stop(engine: &Engine, target: &DatabaseTarget) -> Result<(), TaskFailure> {
    let name = engine.database_container_name(target.database_id);
    engine
        .stop(&name, 30)
        .await
        .map_err(|e| TaskFailure::node(format!("cannot stop the database: {}", short(&e))))
}

/// Removes the database's container (and its data and backups with `purge`), then the
/// customer's network once nothing uses it.
pub async fn remove(
    engine: &Engine,
    dumps: &crate::backups::Dumps,
    target: &DatabaseTarget,
) -> Result<(), TaskFailure> {
    if target.purge {
        dumps
            .purge(target.database_id)
            .await
            .map_err(|e| TaskFailure::node(format!("cannot remove the database's backups: {e}")))?;
    }
    engine
        .remove_database(target.database_id, target.purge)
        .await
        .map_err(|e| TaskFailure::node(format!("cannot remove the database: {}", short(&e))))?;
    engine
        .remove_network_if_empty(target.user_id)
        .await
        .map_err(|e| {
            TaskFailure::node(format!(
                "cannot remove the customer's network: {}",
                short(&e)
            ))
        })
}
