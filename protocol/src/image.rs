//! Release images on the wire: which image a release runs (by content), where
//! a node that lacks it pulls it from, the registry login a task carries
//! (sealed, like every secret), and pushing a release's image to the
//! platform's registry.

use serde::{Deserialize, Serialize};

/// The image a release runs. Every container of the release runs `id`; a
/// node that does not have it pulls `pull` (the platform's registry) and
/// checks that what it got is `id`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ReleaseImage {
    /// The image's own digest (`sha256:…`, Docker's image id). `None` for a
    /// prebuilt image's first rollout: the node resolves `reference` and
    /// reports what it found, which pins the release from then on.
    #[serde(default)]
    pub id: Option<String>,
    /// The image's registry reference in the platform's registry
    /// (`host/repository@sha256:…`, or `host/repository:tag` while its push
    /// is under way), when it is there.
    #[serde(default)]
    pub pull: Option<String>,
}

impl ReleaseImage {
    /// Whether an image id is a content digest Docker can run by.
    pub fn is_digest(id: &str) -> bool {
        id.strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

/// How a node logs in to the platform's registry. Secret: travels sealed
/// with the task and is put back only into the lease answer to its node.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RegistryLogin {
    /// The registry's address (`host[:port]`).
    pub server: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Push a release's image from this node (which built it, or pulled it
/// first) to the platform's registry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct PushSpec {
    pub app_id: i64,
    pub release: i32,
    /// The image (its digest) on this node.
    pub image_id: String,
    /// Where it goes: `host/repository:tag`.
    pub target: String,
    /// The registry login; empty in stored payloads.
    #[serde(default)]
    pub login: Option<RegistryLogin>,
}

/// What a push left in the registry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Pushed {
    /// `host/repository:tag` as pushed.
    pub target: String,
    /// The manifest's digest in the registry (`sha256:…`).
    pub digest: String,
    /// The image's size (its layers, uncompressed).
    #[serde(default)]
    pub bytes: i64,
}

/// The image a prebuilt reference resolved to on the node that first ran it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Resolved {
    pub image_id: String,
}

/// The repository part of a registry reference: `host/a/b:tag` or
/// `host/a/b@sha256:…` → `host/a/b`.
pub fn repository_of(reference: &str) -> &str {
    if let Some((repository, _)) = reference.split_once('@') {
        return repository;
    }
    match reference.rsplit_once(':') {
        // A colon after the last slash is a tag; before it, a port.
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => reference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_repositories() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert!(ReleaseImage::is_digest(&digest));
        assert!(!ReleaseImage::is_digest("sha256:abc"));
        assert!(!ReleaseImage::is_digest("busybox:latest"));
        assert_eq!(
            repository_of("127.0.0.1:5000/app-1:v3"),
            "127.0.0.1:5000/app-1"
        );
        assert_eq!(
            repository_of(&format!("127.0.0.1:5000/x/app-1@{digest}")),
            "127.0.0.1:5000/x/app-1"
        );
        assert_eq!(
            repository_of("127.0.0.1:5000/app-1"),
            "127.0.0.1:5000/app-1"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let login = RegistryLogin {
            server: "r:5000".into(),
            username: "node-1".into(),
            password: "canary-password".into(),
        };
        assert!(!format!("{login:?}").contains("canary"));
    }
}
