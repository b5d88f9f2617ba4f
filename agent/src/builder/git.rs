//! Cloning the application's repository with the `git` command. A private
//! repository's token reaches git only through `GIT_ASKPASS` (a script that
//! prints it from the environment of that one process): never in a URL, an
//! argument, a file or a log line. Every line git prints is scrubbed of it
//! anyway before it goes anywhere.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::executor::{TaskFailure, TaskLog};

/// The commit a build is made from.
#[derive(Debug, Clone)]
pub struct Commit {
    pub sha: String,
    pub message: String,
}

/// Replaces every occurrence of the secret in `line`.
pub fn scrub(line: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => line.replace(secret, "***"),
        _ => line.to_string(),
    }
}

pub struct Clone<'a> {
    pub url: &'a str,
    pub branch: &'a str,
    pub commit: Option<&'a str>,
    /// A ref to fetch the commit by (the branch may not point at it yet).
    pub fetch_ref: Option<&'a str>,
    pub token: Option<&'a str>,
    /// An empty folder of the build's own: the checkout goes to `work/src`.
    pub work: &'a Path,
}

impl Clone<'_> {
    fn git(&self) -> Command {
        let mut command = Command::new("git");
        command
            // No system or user configuration (credential helpers, URL rewrites).
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.work)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env(
                "GIT_SSH_COMMAND",
                "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            )
            .args(["-c", "credential.helper="])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = self.token {
            command
                .env("GIT_ASKPASS", self.work.join("askpass"))
                .env("SKYPANEL_GIT_TOKEN", token);
        }
        command
    }

    /// Runs git; its output goes to the log, scrubbed. A failure is worded
    /// for the customer.
    async fn run(
        &self,
        mut command: Command,
        log: &TaskLog,
        what: &str,
    ) -> Result<String, TaskFailure> {
        let out = command
            .output()
            .await
            .map_err(|e| TaskFailure::node(format!("cannot run git: {e}")))?;
        let stdout = scrub(&String::from_utf8_lossy(&out.stdout), self.token);
        let stderr = scrub(&String::from_utf8_lossy(&out.stderr), self.token);
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            log.line(format!("git: {line}"));
        }
        if out.status.success() {
            return Ok(stdout);
        }
        let reason = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("fatal:") || l.starts_with("error:"))
            .unwrap_or("git failed")
            .to_string();
        Err(TaskFailure::app(format!("{what}: {reason}")))
    }

    /// Clones the branch (and checks out the pinned commit); answers the
    /// checkout's folder and its commit.
    pub async fn run_clone(&self, log: &TaskLog) -> Result<(PathBuf, Commit), TaskFailure> {
        if self.token.is_some() {
            write_askpass(&self.work.join("askpass"))
                .map_err(|e| TaskFailure::node(format!("cannot prepare git: {e}")))?;
        }
        let src = self.work.join("src");
        match (self.fetch_ref, self.commit) {
            (Some(reference), Some(commit)) => self.fetch(&src, reference, commit, log).await?,
            _ => self.clone_branch(&src, log).await?,
        }
        let mut show = self.git();
        show.arg("-C")
            .arg(&src)
            .args(["log", "-1", "--format=%H%n%s"]);
        let shown = self.run(show, log, "cannot read the commit").await?;
        let mut lines = shown.lines();
        let commit = Commit {
            sha: lines.next().unwrap_or_default().trim().to_string(),
            message: lines.next().unwrap_or_default().trim().to_string(),
        };
        log.line(format!(
            "building commit {} {}",
            commit.sha.get(..7).unwrap_or(&commit.sha),
            commit.message
        ));
        // The history is not part of the image.
        let _ = std::fs::remove_dir_all(src.join(".git"));
        Ok((src, commit))
    }

    /// Clones the branch, then checks out the pinned commit if there is one.
    async fn clone_branch(&self, src: &Path, log: &TaskLog) -> Result<(), TaskFailure> {
        let mut clone = self.git();
        clone.args([
            "clone",
            "--quiet",
            "--no-tags",
            "--single-branch",
            "--branch",
        ]);
        clone.arg(self.branch);
        if self.commit.is_none() {
            clone.args(["--depth", "1"]);
        }
        clone.arg("--").arg(self.url).arg(src);
        log.line(format!("cloning branch {}", self.branch));
        self.run(clone, log, "cannot clone the repository").await?;
        if let Some(commit) = self.commit {
            let mut checkout = self.git();
            checkout
                .arg("-C")
                .arg(src)
                .args(["checkout", "--quiet", "--detach"])
                .arg(commit)
                .arg("--");
            self.run(
                checkout,
                log,
                &format!("commit {commit} is not on branch {}", self.branch),
            )
            .await?;
        }
        Ok(())
    }

    /// Fetches one ref (at depth 1) into a new repository and checks out
    /// its commit, which must be the one asked for.
    async fn fetch(
        &self,
        src: &Path,
        reference: &str,
        commit: &str,
        log: &TaskLog,
    ) -> Result<(), TaskFailure> {
        let mut init = self.git();
        init.args(["init", "--quiet"]).arg(src);
        self.run(init, log, "cannot prepare the checkout").await?;
        let mut fetch = self.git();
        fetch
            .arg("-C")
            .arg(src)
            .args(["fetch", "--quiet", "--no-tags", "--depth", "1", "--"])
            .arg(self.url)
            .arg(reference);
        log.line(format!(
            "fetching commit {}",
            commit.get(..7).unwrap_or(commit)
        ));
        self.run(fetch, log, "cannot fetch the pushed commit")
            .await?;
        let mut checkout = self.git();
        checkout
            .arg("-C")
            .arg(src)
            .args(["checkout", "--quiet", "--detach", "FETCH_HEAD", "--"]);
        self.run(checkout, log, "cannot check out the pushed commit")
            .await?;
        let mut head = self.git();
        head.arg("-C").arg(src).args(["rev-parse", "HEAD"]);
        let at = self.run(head, log, "cannot read the commit").await?;
        if at.trim() != commit {
            return Err(TaskFailure::app(format!(
                "{reference} is at {}, not at the pushed commit {commit}",
                at.trim()
            )));
        }
        Ok(())
    }
}

/// The script git runs for credentials: the user name for the usual hosts'
/// token logins, the token (from this process's environment) for the password.
fn write_askpass(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        path,
        "#!/bin/sh\ncase \"$1\" in\n  Username*) echo x-access-token ;;\n  *) echo \"$SKYPANEL_GIT_TOKEN\" ;;\nesac\n",
    )?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn secrets_are_scrubbed() {
        assert_eq!(
            scrub("fatal: https://x:tok123@h/ failed", Some("tok123")),
            "fatal: https://x:***@h/ failed"
        );
        assert_eq!(scrub("plain", None), "plain");
        assert_eq!(scrub("plain", Some("")), "plain");
    }
}
