//! The platform's image registry: where release images go (repository and
//! tag names), and the short-lived logins ("tickets") a task gives its node
//! to pull, or push, the images of one application and nothing else.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::Invalid;

/// Where release images live: a registry's `host[:port]` and an optional
/// path its repositories share (`ghcr.io/acme` → `ghcr.io/acme/app-7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAddress {
    host: String,
    path: String,
}

impl std::str::FromStr for RegistryAddress {
    type Err = Invalid;

    /// `host[:port][/path]`, with or without `http://` or `https://` (Docker
    /// decides how to talk to it: TLS, or plain HTTP on loopback).
    fn from_str(text: &str) -> Result<Self, Invalid> {
        let bare = text
            .trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let (host, path) = bare.split_once('/').unwrap_or((bare, ""));
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        let path_ok = path.split('/').all(|part| {
            path.is_empty()
                || (!part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'-' | b'_')
                    }))
        });
        if !host_ok || !path_ok {
            return Err(Invalid::new(
                "registry",
                format!(
                    "{text:?} is not a registry address such as 127.0.0.1:5000 or ghcr.io/acme"
                ),
            ));
        }
        Ok(Self {
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}

impl RegistryAddress {
    /// `host[:port]`: what a login is for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository's name inside the registry (what token scopes name).
    pub fn repository_name(&self, app_id: i64) -> String {
        if self.path.is_empty() {
            format!("app-{app_id}")
        } else {
            format!("{}/app-{app_id}", self.path)
        }
    }

    /// The application's repository, as Docker names it.
    pub fn repository(&self, app_id: i64) -> String {
        format!("{}/{}", self.host, self.repository_name(app_id))
    }

    /// Where release `version`'s image is pushed.
    pub fn reference(&self, app_id: i64, version: i32) -> String {
        format!("{}:v{version}", self.repository(app_id))
    }
}

/// What a ticket lets its node do.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The node it was given to (the login's user name is `node-<id>`).
    pub node_id: i64,
    /// Repository names (inside the registry) it may pull.
    pub repositories: Vec<String>,
    /// Whether it may push to them too.
    pub push: bool,
    /// Unix seconds after which it is worthless.
    pub expires_at: i64,
}

/// The key tickets are signed with, derived from the platform's JWT secret
/// (so that every control plane of a platform has it without one more secret).
pub fn ticket_key(jwt_secret: &str) -> Vec<u8> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(b"skypanel registry tickets\0");
    hash.update(jwt_secret.as_bytes());
    hash.finalize().to_vec()
}

/// The prefix of every ticket (and of nothing else the platform issues).
const TICKET_PREFIX: &str = "srt1.";

impl Ticket {
    /// The login user name of a node.
    pub fn username(node_id: i64) -> String {
        format!("node-{node_id}")
    }

    /// The ticket as a password: its claims and their HMAC-SHA256 with `key`.
    pub fn issue(&self, key: &[u8]) -> String {
        let claims = serde_json::to_vec(self).unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(&claims);
        let mac = crate::signatures::sign(key, body.as_bytes());
        format!(
            "{TICKET_PREFIX}{body}.{}",
            mac.trim_start_matches("sha256=")
        )
    }

    /// The ticket a password is, if `key` signed it for `username`'s node and
    /// it has not expired at `now` (Unix seconds).
    pub fn open(key: &[u8], username: &str, password: &str, now: i64) -> Option<Ticket> {
        let (body, mac) = password.strip_prefix(TICKET_PREFIX)?.split_once('.')?;
        if !crate::signatures::verify(key, body.as_bytes(), &format!("sha256={mac}")) {
            return None;
        }
        let ticket: Ticket = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (ticket.expires_at > now && Self::username(ticket.node_id) == username).then_some(ticket)
    }

    /// The actions of `wanted` (`pull`, `push`) this ticket grants on `repository`.
    pub fn grants<'a>(&self, repository: &str, wanted: &[&'a str]) -> Vec<&'a str> {
        if !self.repositories.iter().any(|r| r == repository) {
            return Vec::new();
        }
        wanted
            .iter()
            .copied()
            .filter(|a| *a == "pull" || (*a == "push" && self.push))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_repositories_and_tags() {
        let local: RegistryAddress = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(local.reference(7, 3), "127.0.0.1:5000/app-7:v3");
        assert_eq!(local.repository_name(7), "app-7");
        let hosted: RegistryAddress = "https://ghcr.io/acme/paas/".parse().unwrap();
        assert_eq!(hosted.host(), "ghcr.io");
        assert_eq!(hosted.repository(7), "ghcr.io/acme/paas/app-7");
        for bad in ["", "http://", "reg istry", "host/UPPER", "host//x"] {
            assert!(bad.parse::<RegistryAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tickets_grant_their_repositories_to_their_node_until_they_expire() {
        let key = b"a key of the control plane";
        let ticket = Ticket {
            node_id: 4,
            repositories: vec!["app-7".into()],
            push: false,
            expires_at: 1_000,
        };
        let password = ticket.issue(key);
        let opened = Ticket::open(key, "node-4", &password, 999).unwrap();
        assert_eq!(opened, ticket);
        assert_eq!(opened.grants("app-7", &["pull", "push"]), vec!["pull"]);
        assert!(opened.grants("app-8", &["pull"]).is_empty());
        // Another node's name, an expired ticket, another key, an edited claim.
        assert!(Ticket::open(key, "node-5", &password, 999).is_none());
        assert!(Ticket::open(key, "node-4", &password, 1_000).is_none());
        assert!(Ticket::open(b"another key", "node-4", &password, 999).is_none());
        let (body, mac) = password
            .trim_start_matches(TICKET_PREFIX)
            .split_once('.')
            .unwrap();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        claims["repositories"] = serde_json::json!(["app-8"]);
        let forged = format!(
            "{TICKET_PREFIX}{}.{mac}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert!(Ticket::open(key, "node-4", &forged, 999).is_none());
        let pusher = Ticket {
            push: true,
            ..ticket
        };
        assert_eq!(
            pusher.grants("app-7", &["pull", "push"]),
            vec!["pull", "push"]
        );
    }
}
