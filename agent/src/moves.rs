//! Databases moving between nodes. The node a database leaves cuts it off
//! its customer's network (nothing writes to it from then on), dumps it with
//! the engine's own tool, hands the dump to the control plane and stops it
//! (its data stays until the move succeeds); any failure puts it back on
//! its network, running. The node it goes to provisions it as usual, then
//! fetches the dump, checks its size and SHA-256 and restores it before the
//! provisioning counts as done.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use skypanel_protocol::database::{BackupResult, DatabaseSpec, ExportSpec, ImportSpec};
use tokio::io::AsyncWriteExt;

use crate::backups::{Dumps, Restoring, dump_into, io, restore_from, tool_of};
use crate::client::ControlPlane;
use crate::crash::CrashPolicy;
use crate::docker::{Engine, short};
use crate::executor::{TaskFailure, TaskLog};

/// What a move works with on the node.
pub struct Mover<'a> {
    pub engine: &'a Engine,
    pub crash: &'a CrashPolicy,
    pub dumps: &'a Dumps,
    pub client: &'a ControlPlane,
}

impl Mover<'_> {
    /// Dumps the moving database and hands the dump over; answers its size and
    /// SHA-256 (as a backup's, `backup_id` the move's id).
    pub async fn export(
        &self,
        spec: &ExportSpec,
        log: &TaskLog,
    ) -> Result<BackupResult, TaskFailure> {
        let Mover {
            engine,
            crash,
            dumps,
            client,
        } = *self;
        let tool = tool_of(
            &spec.db_type,
            &spec.username,
            &spec.password,
            &spec.database_name,
            log,
            "move",
        )?;
        let container = engine.database_container_name(spec.database_id);
        engine
            .isolate_database(spec.database_id, spec.user_id)
            .await
            .map_err(|e| {
                TaskFailure::node(format!(
                    "cannot cut the database off its network: {}",
                    short(&e)
                ))
            })?;
        log.line("the database is cut off from its network: nothing writes to it from now on");
        let path = dumps.move_path(spec.database_id, spec.move_id);
        let handed = async {
            let (size, sha256) =
                dump_into(engine, &container, &tool, &path, &spec.password, log).await?;
            log.line(format!(
                "dump written: {size} bytes, SHA-256 {sha256}; handing it to the control plane"
            ));
            client
                .put_move_dump(spec.move_id, &path)
                .await
                .map_err(|e| TaskFailure::node(format!("cannot hand the dump over: {e}")))?;
            Ok::<_, TaskFailure>((size, sha256))
        }
        .await;
        let _ = tokio::fs::remove_file(&path).await;
        let stopped = match &handed {
            Ok(_) => {
                crash.expect_stop(&container);
                engine.stop(&container, 30).await.map_err(|e| {
                    TaskFailure::node(format!("cannot stop the database: {}", short(&e)))
                })
            }
            Err(_) => Ok(()),
        };
        // Back on its network whatever happened: stopped after a hand-over (a
        // failed move starts it there again), running otherwise.
        let rejoined = engine
            .rejoin_database(spec.database_id, spec.user_id)
            .await
            .map_err(|e| {
                TaskFailure::node(format!(
                    "cannot put the database back on its network: {}",
                    short(&e)
                ))
            });
        let (size, sha256) = handed?;
        stopped?;
        rejoined?;
        log.line("dump handed over; the database is stopped here until its move ends");
        Ok(BackupResult {
            backup_id: spec.move_id,
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            sha256,
        })
    }

    /// Fetches the moving database's dump, checks it, and restores it into the
    /// database just provisioned here.
    pub async fn import(
        &self,
        spec: &DatabaseSpec,
        import: &ImportSpec,
        log: &TaskLog,
        ready_timeout: Duration,
    ) -> Result<(), TaskFailure> {
        let Mover {
            engine,
            crash,
            dumps,
            client,
        } = *self;
        let tool = tool_of(
            &spec.db_type,
            &spec.username,
            &spec.password,
            &spec.database_name,
            log,
            "move",
        )?;
        let path = dumps.move_path(spec.database_id, import.move_id);
        log.line(format!(
            "fetching the database's dump ({} bytes) from the control plane",
            import.size_bytes
        ));
        let restored = async {
            fetch(client, import, &path).await?;
            log.line("dump fetched; its size and SHA-256 match");
            let container = engine.database_container_name(spec.database_id);
            let tag = format!("move-{}", import.move_id);
            let into = Restoring {
                container: &container,
                tool: &tool,
                password: &spec.password,
                tag: &tag,
            };
            restore_from(engine, crash, &into, &path, log, ready_timeout).await
        }
        .await;
        let _ = tokio::fs::remove_file(&path).await;
        restored?;
        log.line("the database's data is restored here");
        Ok(())
    }
}

/// Writes the move's dump to `path`, checking its size and SHA-256.
async fn fetch(client: &ControlPlane, import: &ImportSpec, path: &Path) -> Result<(), TaskFailure> {
    let mut response = client
        .get_move_dump(import.move_id)
        .await
        .map_err(|e| TaskFailure::node(format!("cannot fetch the dump: {e}")))?;
    if let Some(folder) = path.parent() {
        tokio::fs::create_dir_all(folder)
            .await
            .map_err(|e| io("cannot create the dump folder", e))?;
        crate::backups::set_private(folder, 0o700);
    }
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|e| io("cannot create the dump file", e))?;
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| TaskFailure::node(format!("the dump's transfer broke off: {e}")))?
    {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|e| io("cannot write the dump file", e))?;
    }
    file.sync_all()
        .await
        .map_err(|e| io("cannot write the dump file", e))?;
    let sha256 = hex::encode(hasher.finalize());
    if i64::try_from(size).ok() != Some(import.size_bytes) || sha256 != import.sha256 {
        return Err(TaskFailure::node(format!(
            "the fetched dump is damaged ({size} bytes, SHA-256 {sha256}; expected {} bytes, {})",
            import.size_bytes, import.sha256
        )));
    }
    Ok(())
}
