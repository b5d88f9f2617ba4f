//! The agent's state directory: the node credential, written atomically with
//! mode 0600 so that no other user of the machine can read it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone)]
pub struct Credentials {
    pub node_id: i64,
    pub credential: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join("credential.json")
}

/// The saved credential, if the node registered before.
pub fn load(dir: &Path) -> anyhow::Result<Option<Credentials>> {
    match fs::read(path(dir)) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Saves the credential: a 0600 temporary file renamed over the old one.
pub fn save(dir: &Path, credentials: &Credentials) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let tmp = dir.join("credential.json.tmp");
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&serde_json::to_vec(credentials)?)?;
    file.sync_all()?;
    fs::rename(&tmp, path(dir))?;
    Ok(())
}

/// Reads the one-time registration token from `file`, which no other user
/// of the machine may read (the token makes whoever holds it a node).
pub fn read_token_file(file: &Path) -> anyhow::Result<String> {
    let meta = fs::metadata(file)
        .map_err(|err| anyhow::anyhow!("cannot read the token file {}: {err}", file.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "the token file {} can be read by other users (mode {mode:o}): chmod 600 it and start again",
            file.display()
        );
    }
    let token = fs::read_to_string(file)
        .map_err(|err| anyhow::anyhow!("cannot read the token file {}: {err}", file.display()))?;
    let token = token.trim();
    if token.is_empty() {
        anyhow::bail!("the token file {} is empty", file.display());
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        let dir =
            std::env::temp_dir().join(format!("skypanel-agent-test-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        fs::write(&file, "spr_abc\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let refused = read_token_file(&file).unwrap_err().to_string();
        assert!(
            refused.contains("mode 644") && refused.contains("chmod 600"),
            "{refused}"
        );
        assert!(!refused.contains("spr_abc"), "{refused}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&file).unwrap(), "spr_abc");
        fs::write(&file, "\n").unwrap();
        assert!(
            read_token_file(&file)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let missing = read_token_file(&dir.join("absent"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot read the token file"), "{missing}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saved_with_owner_only_permissions() {
        let dir =
            std::env::temp_dir().join(format!("skypanel-agent-test-{}", uuid::Uuid::new_v4()));
        assert!(load(&dir).unwrap().is_none());
        save(
            &dir,
            &Credentials {
                node_id: 3,
                credential: "spn_x".into(),
            },
        )
        .unwrap();
        let mode = fs::metadata(path(&dir)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&dir).unwrap().unwrap().node_id, 3);
        assert!(!format!("{:?}", load(&dir).unwrap().unwrap()).contains("spn_x"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
