//! An application's bare repository on the control plane: made on first
//! use with the `pre-receive` hook that calls back, and the commits a push
//! brings kept under `refs/skypanel/builds/<sha>` so that a build can fetch
//! them while the push still waits for its hook.

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// The ref a pushed commit is built from.
pub fn build_ref(sha: &str) -> String {
    format!("refs/skypanel/builds/{sha}")
}

/// The hook: the control plane's own program, named by the push's
/// environment (so that the file never needs rewriting).
const PRE_RECEIVE: &str = "#!/bin/sh\nexec \"$SKYPANEL_GIT_HOOK_PROGRAM\" git-hook\n";

/// `git` with no system or user configuration.
pub fn git(root: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .kill_on_drop(true);
    command
}

async fn run(mut command: Command, what: &str) -> Result<(), String> {
    let out = command
        .output()
        .await
        .map_err(|e| format!("cannot run git to {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "git could not {what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The folder of application `app_id`'s repository.
pub fn dir(root: &Path, app_id: i64) -> PathBuf {
    root.join(format!("{app_id}.git"))
}

/// Makes the application's repository unless it exists: made aside and
/// renamed into place, so a half-made one is never served.
pub async fn ensure(root: &Path, app_id: i64) -> Result<PathBuf, String> {
    let dir = dir(root, app_id);
    if dir.join("HEAD").exists() {
        return Ok(dir);
    }
    tokio::fs::create_dir_all(root)
        .await
        .map_err(|e| format!("cannot make {}: {e}", root.display()))?;
    let aside = root.join(format!(".{app_id}.{}.new", uuid::Uuid::new_v4().simple()));
    let mut init = git(root);
    init.args(["init", "--quiet", "--bare", "--initial-branch=main"])
        .arg(&aside);
    run(init, "make the repository").await?;
    let config = [
        // Every object a build needs is in this repository; pushes that
        // rewrite history are the customer's choice (as on Heroku).
        ("receive.denyNonFastForwards", "false"),
        ("receive.denyDeletes", "true"),
        ("core.logAllRefUpdates", "false"),
        ("gc.auto", "0"),
    ];
    for (name, value) in config {
        let mut set = git(root);
        set.arg("--git-dir")
            .arg(&aside)
            .args(["config", name, value]);
        run(set, "configure the repository").await?;
    }
    let hook = aside.join("hooks/pre-receive");
    let written = async {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::write(&hook, PRE_RECEIVE).await?;
        tokio::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).await
    };
    written
        .await
        .map_err(|e| format!("cannot write {}: {e}", hook.display()))?;
    match tokio::fs::rename(&aside, &dir).await {
        Ok(()) => Ok(dir),
        // Another request made it first.
        Err(_) if dir.join("HEAD").exists() => {
            let _ = tokio::fs::remove_dir_all(&aside).await;
            Ok(dir)
        }
        Err(e) => Err(format!("cannot put the repository in place: {e}")),
    }
}

/// Copies the objects of a push's quarantine (`GIT_QUARANTINE_PATH`, inside
/// the repository's `objects/`) into the repository's object store, packs'
/// indexes after their packs, then points the commit's build ref at it: a
/// fetch from another process sees the commit before the push is accepted.
/// Objects of a refused push stay behind, unreferenced but for the ref.
pub async fn keep_pushed(dir: &Path, quarantine: &Path, sha: &str) -> Result<(), String> {
    let objects = dir.join("objects");
    let quarantine = tokio::fs::canonicalize(quarantine)
        .await
        .map_err(|e| format!("the push's objects are not there: {e}"))?;
    let canonical_objects = tokio::fs::canonicalize(&objects)
        .await
        .map_err(|e| format!("the repository has no objects folder: {e}"))?;
    if quarantine.parent() != Some(canonical_objects.as_path()) {
        return Err("the push's objects are not in its repository".into());
    }
    let quarantine_dir = quarantine.clone();
    let objects_dir = canonical_objects.clone();
    tokio::task::spawn_blocking(move || copy_objects(&quarantine_dir, &objects_dir))
        .await
        .map_err(|e| format!("copying the push's objects stopped: {e}"))?
        .map_err(|e| format!("cannot copy the push's objects: {e}"))?;
    let mut update = git(dir);
    update
        .arg("--git-dir")
        .arg(dir)
        .args(["update-ref", &build_ref(sha), sha]);
    run(update, "keep the pushed commit").await
}

fn copy_objects(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut files = Vec::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(relative) = folders.pop() {
        for entry in std::fs::read_dir(from.join(&relative))? {
            let entry = entry?;
            let name = relative.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                folders.push(name);
            } else {
                files.push(name);
            }
        }
    }
    // A reader trusts an index only with its pack beside it.
    files.sort_by_key(|f| f.extension().is_some_and(|e| e == "idx"));
    for file in files {
        let target = to.join(&file);
        if target.exists() {
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let partial = target.with_extension("skypanel-partial");
        std::fs::copy(from.join(&file), &partial)?;
        std::fs::rename(&partial, &target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_refs_name_the_commit() {
        assert_eq!(
            build_ref("0123456789abcdef0123456789abcdef01234567"),
            "refs/skypanel/builds/0123456789abcdef0123456789abcdef01234567"
        );
    }
}
