//! Where `sky` keeps its credentials: `$XDG_CONFIG_HOME/sky/credentials.json`
//! (`~/.config/sky/` without it), readable by its owner only (0600, in a
//! 0700 folder), written to a temporary file and renamed into place.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::client::CliError;

/// What `sky login` saves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// The control plane's address.
    pub api: String,
    /// An API token (`spt_…`).
    pub token: String,
    pub email: Option<String>,
    /// The token's id when `sky login` made it (`sky logout` revokes it).
    #[serde(default)]
    pub token_id: Option<i64>,
}

fn folder() -> Result<PathBuf, CliError> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".config"))
            .ok_or_else(|| CliError::Config("neither XDG_CONFIG_HOME nor HOME is set".into()))?,
    };
    Ok(base.join("sky"))
}

fn file() -> Result<PathBuf, CliError> {
    Ok(folder()?.join("credentials.json"))
}

/// The saved credentials; a clear error when there are none.
pub fn load() -> Result<Credentials, CliError> {
    let path = file()?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CliError::Config(
                "not logged in; run `sky login --api URL --email E --password P` first".into(),
            )
        } else {
            CliError::Config(format!("cannot read {}: {e}", path.display()))
        }
    })?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::Config(format!(
            "{} is damaged ({e}); run `sky login` again",
            path.display()
        ))
    })
}

/// Saves the credentials, readable by their owner only.
pub fn save(credentials: &Credentials) -> Result<PathBuf, CliError> {
    let dir = folder()?;
    let failed = |e: std::io::Error| {
        CliError::Config(format!(
            "cannot save the credentials in {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(&dir).map_err(failed)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
    let path = dir.join("credentials.json");
    let partial = dir.join(".credentials.json.partial");
    let text =
        serde_json::to_vec_pretty(credentials).map_err(|e| CliError::Config(e.to_string()))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(failed)?;
    out.write_all(&text).map_err(failed)?;
    out.sync_all().map_err(failed)?;
    std::fs::rename(&partial, &path).map_err(failed)?;
    Ok(path)
}

/// Forgets the credentials.
pub fn remove() -> Result<(), CliError> {
    match std::fs::remove_file(file()?) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CliError::Config(e.to_string())),
        _ => Ok(()),
    }
}
