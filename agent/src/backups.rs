//! Backups and restores of managed databases on the node. A backup runs the
//! engine's own dump tool inside the database's container and streams its
//! output into `<backup-dir>/db-<id>/<backup>.dump` (written under a
//! temporary name and renamed once complete, with its size and SHA-256
//! measured on the way); then the dumps the control plane no longer keeps
//! are removed. A restore checks the dump's SHA-256 first, then feeds it to
//! the engine's restore tool (Redis: the dump becomes its data files and the
//! engine is started again). A tool that exits non-zero fails the task with
//! the last lines it wrote: a backup is never reported done when it is not.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use skypanel_protocol::database::{
    BackupResult, BackupSpec, DumpTool, RestoreBy, RestoreSpec, dump_tool, port_of,
};
use tokio::io::{AsyncReadExt, AsyncWrite};

use crate::crash::CrashPolicy;
use crate::docker::{Engine, ExecError};
use crate::executor::{TaskFailure, TaskLog};

/// Where the node keeps its databases' dumps.
#[derive(Debug, Clone)]
pub struct Dumps {
    dir: PathBuf,
}

impl Dumps {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn folder(&self, database_id: i64) -> PathBuf {
        self.dir.join(format!("db-{database_id}"))
    }

    /// The dump of backup `backup_id` of database `database_id`.
    pub fn path(&self, database_id: i64, backup_id: i64) -> PathBuf {
        self.folder(database_id).join(format!("{backup_id}.dump"))
    }

    /// The dump a move of database `database_id` hands over (`move_id`).
    pub fn move_path(&self, database_id: i64, move_id: i64) -> PathBuf {
        self.folder(database_id)
            .join(format!("move-{move_id}.dump"))
    }

    /// Removes every dump of a database (its data is purged).
    pub async fn purge(&self, database_id: i64) -> std::io::Result<()> {
        match tokio::fs::remove_dir_all(self.folder(database_id)).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// Removes the database's dumps other than `keep` (and unfinished ones).
    async fn prune(&self, database_id: i64, keep: &[i64]) -> std::io::Result<usize> {
        let mut removed = 0;
        let mut entries = tokio::fs::read_dir(self.folder(database_id)).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            let kept = name
                .to_str()
                .and_then(|n| n.strip_suffix(".dump"))
                .and_then(|n| n.parse::<i64>().ok())
                .is_some_and(|id| keep.contains(&id));
            if !kept {
                tokio::fs::remove_file(entry.path()).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Writes what it is given to a file while measuring its size and SHA-256.
struct Measured {
    file: tokio::fs::File,
    hasher: Sha256,
    size: u64,
}

impl AsyncWrite for Measured {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = std::pin::Pin::new(&mut this.file).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = written {
            this.hasher.update(&buf[..n]);
            this.size += n as u64;
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

pub(crate) fn io(what: &str, err: std::io::Error) -> TaskFailure {
    TaskFailure::node(format!("{what}: {err}"))
}

fn exec_failure(what: &str, err: ExecError) -> TaskFailure {
    match err {
        // The container is not there or not running: the database is down.
        ExecError::Docker(e) if matches!(crate::docker::status_of(&e), Some(404 | 409)) => {
            TaskFailure::app(format!(
                "{what}: the database is not running ({})",
                crate::docker::short(&e)
            ))
        }
        other => TaskFailure::node(format!("{what}: {other}")),
    }
}

/// Dumps the database into a new file on the node; answers its size and SHA-256.
pub async fn backup(
    engine: &Engine,
    dumps: &Dumps,
    spec: &BackupSpec,
    log: &TaskLog,
) -> Result<BackupResult, TaskFailure> {
    let tool = tool_of(
        &spec.db_type,
        &spec.username,
        &spec.password,
        &spec.database_name,
        log,
        "back up",
    )?;
    let target = dumps.path(spec.database_id, spec.backup_id);
    let container = engine.database_container_name(spec.database_id);
    let (size, sha256) = dump_into(engine, &container, &tool, &target, &spec.password, log).await?;
    log.line(format!("backup written: {size} bytes, SHA-256 {sha256}"));
    let mut keep = spec.keep.clone();
    keep.push(spec.backup_id);
    // Only dumps the control plane no longer lists go.
    match dumps.prune(spec.database_id, &keep).await {
        Ok(0) => {}
        Ok(n) => log.line(format!("{n} older backup(s) past the retention removed")),
        Err(err) => log.line(format!("older backups could not be removed: {err}")),
    }
    Ok(BackupResult {
        backup_id: spec.backup_id,
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        sha256,
    })
}

/// Runs the engine's dump `tool` in `container` into the file `target`
/// (written under a temporary name, renamed once complete, mode 0600);
/// answers its size and SHA-256. A tool that fails or writes nothing fails
/// with its last line (the password masked).
pub(crate) async fn dump_into(
    engine: &Engine,
    container: &str,
    tool: &DumpTool,
    target: &Path,
    password: &str,
    log: &TaskLog,
) -> Result<(u64, String), TaskFailure> {
    let folder = target.parent().map(Path::to_path_buf).unwrap_or_default();
    tokio::fs::create_dir_all(&folder)
        .await
        .map_err(|e| io("cannot create the backup folder", e))?;
    set_private(&folder, 0o700);
    let partial = target.with_extension("partial");
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .await
        .map_err(|e| io("cannot create the backup file", e))?;
    let mut out = Measured {
        file,
        hasher: Sha256::new(),
        size: 0,
    };
    log.line(format!(
        "{} running in the database's container",
        tool.dump[0]
    ));
    let ran = engine
        .exec(container, tool.dump.clone(), env(&tool.env), None, &mut out)
        .await;
    let exited = match ran {
        Ok(exited) => exited,
        Err(err) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(exec_failure("the dump could not run", err));
        }
    };
    if exited.code != 0 || out.size == 0 {
        let _ = tokio::fs::remove_file(&partial).await;
        for line in exited.stderr.lines() {
            log.line(line.to_string());
        }
        let why = if exited.code != 0 {
            format!("{} exited with code {}", tool.dump[0], exited.code)
        } else {
            format!("{} wrote nothing", tool.dump[0])
        };
        let detail = masked(exited.stderr.lines().last().unwrap_or_default(), password);
        return Err(TaskFailure::app(if detail.is_empty() {
            format!("the backup failed: {why}")
        } else {
            format!("the backup failed: {why}: {detail}")
        }));
    }
    out.file
        .sync_all()
        .await
        .map_err(|e| io("cannot write the backup file", e))?;
    let (mut size, mut sha256) = (out.size, hex::encode(out.hasher.finalize()));
    if tool.restore == RestoreBy::RedisData
        && trim_redis_eof_mark(&partial)
            .await
            .map_err(|e| io("cannot write the backup file", e))?
    {
        size = tokio::fs::metadata(&partial)
            .await
            .map_err(|e| io("cannot read the backup file", e))?
            .len();
        sha256 = sha256_of(&partial)
            .await
            .map_err(|e| io("cannot read the backup file", e))?;
    }
    tokio::fs::rename(&partial, target)
        .await
        .map_err(|e| io("cannot keep the backup file", e))?;
    Ok((size, sha256))
}

/// Restores the database from one of its dumps on the node.
pub async fn restore(
    engine: &Engine,
    crash: &CrashPolicy,
    dumps: &Dumps,
    spec: &RestoreSpec,
    log: &TaskLog,
    ready_timeout: Duration,
) -> Result<(), TaskFailure> {
    let tool = tool_of(
        &spec.db_type,
        &spec.username,
        &spec.password,
        &spec.database_name,
        log,
        "restore",
    )?;
    let path = dumps.path(spec.database_id, spec.backup_id);
    let actual = sha256_of(&path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            TaskFailure::app(format!(
                "backup {} is no longer on the database's node",
                spec.backup_id
            ))
        } else {
            io("cannot read the backup file", e)
        }
    })?;
    if actual != spec.sha256 {
        return Err(TaskFailure::app(format!(
            "backup {} is damaged (its SHA-256 is {actual}, not {}); nothing was restored",
            spec.backup_id, spec.sha256
        )));
    }
    log.line(format!(
        "backup {} checked (SHA-256 matches)",
        spec.backup_id
    ));
    let container = engine.database_container_name(spec.database_id);
    let tag = format!("restore-{}", spec.restore_id);
    let restored = Restoring {
        container: &container,
        tool: &tool,
        password: &spec.password,
        tag: &tag,
    };
    restore_from(engine, crash, &restored, &path, log, ready_timeout).await?;
    log.line(format!("restored from backup {}", spec.backup_id));
    Ok(())
}

/// What a restore puts a dump into.
pub(crate) struct Restoring<'a> {
    pub container: &'a str,
    pub tool: &'a DumpTool,
    pub password: &'a str,
    /// Names the restore's temporary files.
    pub tag: &'a str,
}

/// Feeds the (checked) dump at `path` to the engine's restore tool in the
/// container (Redis: the dump becomes its data files and it starts again).
pub(crate) async fn restore_from(
    engine: &Engine,
    crash: &CrashPolicy,
    into: &Restoring<'_>,
    path: &Path,
    log: &TaskLog,
    ready_timeout: Duration,
) -> Result<(), TaskFailure> {
    match &into.tool.restore {
        RestoreBy::Stdin(cmd) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| io("cannot read the backup file", e))?;
            let program = cmd[0].clone();
            log.line(format!("{program} running in the database's container"));
            let exited = engine
                .exec(
                    into.container,
                    cmd.clone(),
                    env(&into.tool.env),
                    Some(file),
                    &mut tokio::io::sink(),
                )
                .await
                .map_err(|e| exec_failure("the restore could not run", e))?;
            if exited.code != 0 {
                for line in exited.stderr.lines() {
                    log.line(line.to_string());
                }
                let detail = masked(
                    exited.stderr.lines().last().unwrap_or_default(),
                    into.password,
                );
                return Err(TaskFailure::app(format!(
                    "the restore failed: {program} exited with code {}: {detail}",
                    exited.code
                )));
            }
            if let Some(err) = exited.input_error {
                return Err(TaskFailure::node(format!(
                    "the restore failed: {program} did not read the whole backup: {err}"
                )));
            }
            Ok(())
        }
        RestoreBy::RedisData => {
            restore_redis_data(
                engine,
                crash,
                into.container,
                path,
                into.tag,
                log,
                ready_timeout,
            )
            .await
        }
    }
}

/// Redis reads its data only when it starts: the engine is stopped, the
/// dump is written as its RDB file and as the base of a fresh append-only
/// file (the one Redis loads, with `--appendonly yes`), and it is started.
async fn restore_redis_data(
    engine: &Engine,
    crash: &CrashPolicy,
    container: &str,
    dump: &Path,
    tag: &str,
    log: &TaskLog,
    ready_timeout: Duration,
) -> Result<(), TaskFailure> {
    let tar_path = dump.with_extension(format!("{tag}.tar"));
    let (source, tar_out) = (dump.to_path_buf(), tar_path.clone());
    tokio::task::spawn_blocking(move || redis_archive(&source, &tar_out))
        .await
        .map_err(|e| TaskFailure::node(format!("cannot prepare the restore: {e}")))?
        .map_err(|e| io("cannot prepare the restore", e))?;
    // The old append-only files go first: Redis would load them instead.
    let remove = ["rm", "-rf", "/data/appendonlydir"]
        .map(String::from)
        .to_vec();
    let _ = engine
        .exec(container, remove, Vec::new(), None, &mut tokio::io::sink())
        .await;
    crash.expect_stop(container);
    log.line("stopping redis to put the backup in place");
    let stopped = engine.stop(container, 30).await;
    let result = async {
        stopped.map_err(|e| {
            TaskFailure::node(format!("cannot stop redis: {}", crate::docker::short(&e)))
        })?;
        let tar = tokio::fs::File::open(&tar_path)
            .await
            .map_err(|e| io("cannot read the restore archive", e))?;
        engine.upload(container, "/data", tar).await.map_err(|e| {
            TaskFailure::node(format!(
                "cannot put the backup in place: {}",
                crate::docker::short(&e)
            ))
        })
    }
    .await;
    let _ = tokio::fs::remove_file(&tar_path).await;
    // Started again whatever happened: the database must not stay down.
    crash.started(container);
    engine.start(container).await.map_err(|e| {
        TaskFailure::node(format!("cannot start redis: {}", crate::docker::short(&e)))
    })?;
    result?;
    let port = port_of("redis").unwrap_or(6379);
    crate::dbs::wait_until_ready(engine, container, port, log, ready_timeout).await
}

/// The archive put into a Redis data folder: `dump.rdb`, and an
/// append-only folder whose manifest names the dump as its base.
fn redis_archive(dump: &Path, out: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(out)?;
    let mut tar = tar::Builder::new(file);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    header.set_mtime(0);
    tar.append_data(&mut header, "appendonlydir", std::io::empty())?;
    let size = std::fs::metadata(dump)?.len();
    for name in ["dump.rdb", "appendonlydir/appendonly.aof.1.base.rdb"] {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(size);
        header.set_mtime(0);
        tar.append_data(&mut header, name, std::fs::File::open(dump)?)?;
    }
    let manifest = b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
    for (name, body) in [
        ("appendonlydir/appendonly.aof.manifest", &manifest[..]),
        ("appendonlydir/appendonly.aof.1.incr.aof", &[][..]),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(body.len() as u64);
        header.set_mtime(0);
        tar.append_data(&mut header, name, body)?;
    }
    tar.into_inner()?.flush()
}

/// The length of the mark a diskless Redis transfer ends with.
const REDIS_EOF_MARK: usize = 40;

/// `redis-cli --rdb -` writes the 40 hex characters that end a diskless
/// transfer after the RDB (it truncates them off a file, which it cannot do
/// to a pipe), and Redis refuses an append-only base with bytes after its
/// RDB. An RDB itself never ends so (its last 9 bytes are 0xFF and the
/// checksum), so 40 trailing hex characters are the mark: they are cut off.
/// Answers whether they were.
async fn trim_redis_eof_mark(path: &Path) -> std::io::Result<bool> {
    use tokio::io::AsyncSeekExt;
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .await?;
    let len = file.metadata().await?.len();
    let mark = REDIS_EOF_MARK as u64;
    if len <= mark + 9 {
        return Ok(false);
    }
    file.seek(std::io::SeekFrom::Start(len - mark)).await?;
    let mut tail = [0u8; REDIS_EOF_MARK];
    file.read_exact(&mut tail).await?;
    if !tail.iter().all(u8::is_ascii_hexdigit) {
        return Ok(false);
    }
    file.set_len(len - mark).await?;
    file.sync_all().await?;
    Ok(true)
}

pub(crate) async fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The engine's dump tool, with the password hidden from the task's log
/// from now on; `verb` says what cannot be done to an unknown type.
pub(crate) fn tool_of(
    db_type: &str,
    user: &str,
    password: &str,
    database: &str,
    log: &TaskLog,
    verb: &str,
) -> Result<DumpTool, TaskFailure> {
    log.hide(Some(password.to_string()));
    dump_tool(db_type, user, password, database)
        .ok_or_else(|| TaskFailure::app(format!("this node cannot {verb} {db_type} databases")))
}

/// `line` with every occurrence of the password hidden.
fn masked(line: &str, password: &str) -> String {
    if password.is_empty() {
        line.to_string()
    } else {
        line.replace(password, "***")
    }
}

fn env(pairs: &[(String, String)]) -> Vec<String> {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

pub(crate) fn set_private(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_mark_after_a_redis_dump_is_cut_off_and_a_plain_dump_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("sp-trim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rdb: Vec<u8> = [
            &b"REDIS0010"[..],
            &[0xfe, 0x00, 0xff],
            &[1, 2, 3, 4, 5, 6, 7, 8],
        ]
        .concat()
        .into_iter()
        .cycle()
        .take(60)
        .chain([0xff, 9, 9, 9, 9, 9, 9, 9, 9])
        .collect();
        let marked = dir.join("marked");
        let mark = "db6ebefbe6ebaeb15341ade135d9e8a611f2fc5a";
        std::fs::write(&marked, [rdb.as_slice(), mark.as_bytes()].concat()).unwrap();
        assert!(trim_redis_eof_mark(&marked).await.unwrap());
        assert_eq!(std::fs::read(&marked).unwrap(), rdb);
        assert!(
            !trim_redis_eof_mark(&marked).await.unwrap(),
            "an RDB ends with 0xFF and its checksum"
        );
        assert_eq!(std::fs::read(&marked).unwrap(), rdb);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
