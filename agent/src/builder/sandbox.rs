//! The sandbox a build's commands run in. The Docker CLI's classic builder
//! runs each `RUN` step in a container with the plan's CPU quota and memory
//! (no swap beyond it), every step's container inside a cgroup of the build's
//! own whose pids limit holds for the whole build, on the builds' network
//! (internet yes; the node's services, other customers' networks and the
//! link-local metadata address no: see `crate::firewall`). A build that goes
//! past a limit is stopped and fails naming it.
//!
//! Why the CLI and not the Engine API that bollard speaks: the API's build
//! options bollard knows have no cgroup parent, and the pids limit needs one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use skypanel_protocol::task::BuildLimits;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::executor::{TaskFailure, TaskLog};

/// The cgroup every step's container of one build lives in (cgroup v1's
/// pids hierarchy, or the unified one), with the build's pids limit.
pub struct BuildCgroup {
    /// What Docker is given as `--cgroup-parent`.
    pub parent: String,
    /// The folder holding `pids.max` and `pids.events`.
    dir: PathBuf,
    v2: bool,
}

const ROOT: &str = "/sys/fs/cgroup";
/// Where every build's cgroup is made.
const BUILDS: &str = "skypanel-builds";

impl BuildCgroup {
    /// Makes the build's cgroup with its pids limit.
    pub fn create(name: &str, pids: i32) -> Result<Self, String> {
        let v2 = Path::new(ROOT).join("cgroup.controllers").exists();
        let base = if v2 {
            PathBuf::from(ROOT)
        } else {
            Path::new(ROOT).join("pids")
        };
        if v2 {
            // The pids controller must reach the builds' cgroups (best effort:
            // a node whose root does not delegate it fails below, clearly).
            let _ = std::fs::write(base.join("cgroup.subtree_control"), "+pids");
            let _ = std::fs::create_dir_all(base.join(BUILDS));
            let _ = std::fs::write(base.join(BUILDS).join("cgroup.subtree_control"), "+pids");
        }
        let dir = base.join(BUILDS).join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot make the build's cgroup {}: {e}", dir.display()))?;
        std::fs::write(dir.join("pids.max"), pids.to_string())
            .map_err(|e| format!("cannot limit the build's processes: {e}"))?;
        Ok(Self {
            parent: format!("/{BUILDS}/{name}"),
            dir,
            v2,
        })
    }

    /// The containers (of the build's steps) still in the build's cgroup.
    pub fn containers(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the build ran into its process limit: a fork was refused
    /// (counted in the cgroup of the process that forked: a step's
    /// container, below this one) or the peak reached the limit.
    pub fn pids_refused(&self) -> bool {
        let read = |path: &Path| std::fs::read_to_string(path).ok();
        let refused_in = |dir: &Path| {
            read(&dir.join("pids.events")).is_some_and(|text| {
                text.lines().any(|l| {
                    l.strip_prefix("max ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
        };
        let number =
            |name: &str| read(&self.dir.join(name)).and_then(|t| t.trim().parse::<u64>().ok());
        let peaked = matches!((number("pids.peak"), number("pids.max")), (Some(peak), Some(max)) if peak >= max);
        let steps = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().is_dir() && refused_in(&e.path()))
            })
            .unwrap_or(false);
        peaked || steps || refused_in(&self.dir)
    }
}

impl Drop for BuildCgroup {
    /// Removes the build's cgroup (and, on cgroup v1, the ones Docker made
    /// beside it in the other controllers' hierarchies).
    fn drop(&mut self) {
        let name = self.parent.trim_start_matches('/');
        if self.v2 {
            let _ = std::fs::remove_dir(&self.dir);
            return;
        }
        if let Ok(controllers) = std::fs::read_dir(ROOT) {
            for controller in controllers.flatten() {
                let _ = std::fs::remove_dir(controller.path().join(name));
            }
        }
    }
}

/// How a build ended, when it was not by itself.
#[derive(Debug)]
enum Stopped {
    Pids,
}

/// Runs `docker build` of the context tar at `context` in the sandbox,
/// streaming its output to the log.
pub async fn docker_build(
    context: &Path,
    tag: &str,
    network: &str,
    cgroup: &BuildCgroup,
    limits: &BuildLimits,
    log: &TaskLog,
) -> Result<(), TaskFailure> {
    let memory = format!("{}m", limits.memory_mb);
    let quota = (i64::from(limits.cpu_millicores) * 100).to_string();
    let context_file = std::fs::File::open(context)
        .map_err(|e| TaskFailure::node(format!("cannot read the build context: {e}")))?;
    let mut child = tokio::process::Command::new("docker")
        // The classic builder: the one that honours these limits.
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--rm", "--force-rm", "-f", "Dockerfile", "-t", tag])
        .args(["--memory", &memory, "--memory-swap", &memory])
        .args(["--cpu-period", "100000", "--cpu-quota", &quota])
        .args(["--network", network, "--cgroup-parent", &cgroup.parent])
        .arg("-")
        .stdin(Stdio::from(context_file))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            TaskFailure::node(format!(
                "cannot run docker build (the Docker CLI is needed): {e}"
            ))
        })?;
    let stdout = child.stdout.take().map(BufReader::new);
    let stderr = child.stderr.take().map(BufReader::new);
    let mut errors: Vec<String> = Vec::new();
    let lines = async {
        let out = async {
            if let Some(mut out) = stdout.map(|o| o.lines()) {
                while let Ok(Some(line)) = out.next_line().await {
                    if !line.trim().is_empty() {
                        log.line(line.trim_end().to_string());
                    }
                }
            }
        };
        let err = async {
            if let Some(mut err) = stderr.map(|e| e.lines()) {
                while let Ok(Some(line)) = err.next_line().await {
                    let line = line.trim_end().to_string();
                    // The CLI's notice that the classic builder is deprecated.
                    if line.is_empty() || line.starts_with("DEPRECATED") || line.starts_with("  ") {
                        continue;
                    }
                    log.line(line.clone());
                    errors.push(line);
                }
            }
        };
        tokio::join!(out, err);
        child.wait().await
    };
    let watch = async {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if cgroup.pids_refused() {
                return Stopped::Pids;
            }
        }
    };
    let status = tokio::select! {
        status = lines => status.map_err(|e| TaskFailure::node(format!("docker build: {e}")))?,
        stopped = watch => {
            return Err(match stopped {
                Stopped::Pids => pids_failure(limits),
            });
        }
    };
    if status.success() {
        return Ok(());
    }
    // A step that could not fork may have ended before the watch looked.
    if cgroup.pids_refused() {
        return Err(pids_failure(limits));
    }
    Err(failure(&errors, limits))
}

fn pids_failure(limits: &BuildLimits) -> TaskFailure {
    TaskFailure::app(format!(
        "the build reached its limit of {} processes and was stopped",
        limits.pids
    ))
}

/// A failed build in words the customer can act on.
fn failure(errors: &[String], limits: &BuildLimits) -> TaskFailure {
    let last = errors.last().cloned().unwrap_or_default();
    let Some(code) = errors.iter().rev().find_map(|e| {
        e.rsplit_once("returned a non-zero code: ")
            .map(|(_, c)| c.trim())
    }) else {
        return if last.contains("Cannot connect to the Docker daemon") {
            TaskFailure::node(format!("the image build failed: {last}"))
        } else {
            TaskFailure::app(format!("the image build failed: {last}"))
        };
    };
    if code == "137" {
        return TaskFailure::app(format!(
            "the build used more than {} MB of memory, its limit, and a step was killed",
            limits.memory_mb
        ));
    }
    TaskFailure::app(format!("build step exited with code {code}: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_limit_or_the_step() {
        let limits = BuildLimits::default();
        let killed = failure(
            &["The command '/bin/sh -c big' returned a non-zero code: 137".into()],
            &limits,
        );
        assert!(
            killed.message.contains("more than 2048 MB of memory"),
            "{}",
            killed.message
        );
        let step = failure(
            &["The command '/bin/sh -c exit 3' returned a non-zero code: 3".into()],
            &limits,
        );
        assert!(step.message.starts_with("build step exited with code 3"));
        assert!(!step.infrastructure);
    }
}
