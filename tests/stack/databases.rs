//! Helpers of the managed-database tests: a database's network and a
//! client container on it, backups and restores through the API and the
//! dumps a node keeps, and a watch over the node's process list.

use serde_json::{Value, json};

use super::{Stack, docker_text as docker};

/// The customer network a database's container is on.
pub fn network_of(stack: &Stack, id: i64) -> String {
    network_of_container(stack, &format!("{}sp-db-{id}", stack.namespace))
}

/// The (first) network container `name` is on.
pub fn network_of_container(stack: &Stack, name: &str) -> String {
    let info = stack.inspect(name);
    info["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone()
}

/// Runs a client of `image` (`psql`, `redis-cli` …) on `network`.
pub fn client(network: &str, image: &str, program: &str, args: &[&str]) -> String {
    let mut all = vec![
        "run",
        "--rm",
        "--network",
        network,
        "--entrypoint",
        program,
        image,
    ];
    all.extend_from_slice(args);
    let (ok, out) = docker(&all);
    assert!(ok, "{program} {args:?}: {out}");
    out
}

/// Starts a backup; answers its id.
pub async fn backup(stack: &Stack, token: &str, db: i64) -> i64 {
    let (status, backup) = stack
        .post(
            &format!("/api/paas/databases/{db}/backup"),
            token,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{backup:#}");
    assert_eq!(backup["status"], "pending");
    backup["id"].as_i64().unwrap()
}

/// Waits until a backup or restore (in `list`) ends; answers it.
pub async fn ended(stack: &Stack, token: &str, list: &str, id: i64) -> Value {
    let find = || async {
        let all = stack.get(list, token).await;
        all.as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    stack
        .until(120, &format!("{list} {id} ends"), || async {
            let found = find().await;
            found["status"] == "succeeded" || found["status"] == "failed"
        })
        .await;
    find().await
}

/// Starts a restore of `backup_id`; answers the restore's id.
pub async fn restore(stack: &Stack, token: &str, db: i64, backup_id: i64) -> i64 {
    let (status, restore) = stack
        .post(
            &format!("/api/paas/databases/{db}/restore"),
            token,
            json!({ "backup_id": backup_id }),
        )
        .await;
    assert_eq!(status, 202, "{restore:#}");
    restore["id"].as_i64().unwrap()
}

/// The SHA-256 of a file, by `sha256sum`.
pub fn sha256_of(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The dumps the node keeps of a database.
pub fn dumps(state_dir: &std::path::Path, db: i64) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(state_dir.join("backups").join(format!("db-{db}")))
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
    names.sort();
    names
}

/// Watches the machine's process list (what `ps -ef` shows: every
/// process's full command line, the containers' included) until finished.
pub struct ProcessWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<std::collections::BTreeSet<String>>,
}

impl ProcessWatch {
    /// Starts sampling `/proc/*/cmdline` about every two milliseconds.
    pub fn start() -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !flag.load(Ordering::Relaxed) {
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
                        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
                        if !line.trim().is_empty() {
                            seen.insert(line.trim().to_string());
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            seen
        });
        Self { stop, sampler }
    }

    /// Stops; answers every distinct command line seen meanwhile.
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler
            .join()
            .expect("the sampler")
            .into_iter()
            .collect()
    }
}

/// Asserts that the process list seen while a backup ran showed its
/// dump tool (the watch was long enough to see it) and never `password`.
pub fn assert_tool_seen_password_never(seen: &[String], tool: &str, password: &str) {
    assert!(
        seen.iter().any(|line| line.contains(tool)),
        "the watch never saw {tool} run: {seen:#?}"
    );
    let shown: Vec<&String> = seen.iter().filter(|l| l.contains(password)).collect();
    assert!(
        shown.is_empty(),
        "the process list showed the password: {shown:#?}"
    );
}
