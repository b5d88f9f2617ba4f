//! `SKYPANEL_REGISTRY_*`: the platform's image registry. Release images are
//! pushed there and pulled by every node of a region. Either the control
//! plane is the registry's token server (`SKYPANEL_REGISTRY_TOKEN_KEY` and
//! `_TOKEN_CERT`: each task carries a ticket good for its node and its
//! application only), or every node logs in with one account of a registry
//! run by someone else (`SKYPANEL_REGISTRY_USERNAME` and `_PASSWORD`: Harbor,
//! GHCR, ECR). Without `SKYPANEL_REGISTRY_URL` images stay on the node that
//! made them.

use std::time::Duration;

use skypanel_actors::{RegistryLogins, RegistrySettings};
use skypanel_domain::registry::{RegistryAddress, ticket_key};
use skypanel_jobs::registry::RegistryAuthority;

use crate::config::Raw;

/// The registry part of the configuration.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    pub address: RegistryAddress,
    pub login: Login,
    /// Releases whose images the registry keeps per application at least.
    pub keep_releases: i64,
    /// Releases younger than this keep their images whatever their number.
    pub keep_days: i64,
}

/// How nodes (and the control plane) log in to the registry.
#[derive(Clone)]
pub enum Login {
    Tokens(RegistryAuthority),
    Account { username: String, password: String },
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Login::Tokens(_) => "Tokens",
            Login::Account { .. } => "Account",
        })
    }
}

/// The registry's `auth.token.service` and `issuer` when the control plane
/// is its token server.
pub const TOKEN_SERVICE: &str = "skypanel-registry";
pub const TOKEN_ISSUER: &str = "skypanel";

impl RegistryConfig {
    /// Reads the variables; `None` without `SKYPANEL_REGISTRY_URL`.
    pub fn read(raw: &Raw, errors: &mut Vec<String>) -> Option<Self> {
        let url = raw.get("SKYPANEL_REGISTRY_URL")?;
        let address = match url.parse::<RegistryAddress>() {
            Ok(address) => address,
            Err(err) => {
                errors.push(format!("SKYPANEL_REGISTRY_URL: {}", err.message));
                return None;
            }
        };
        let file = |name: &str, errors: &mut Vec<String>| -> Option<String> {
            let path = raw.get(name)?;
            match std::fs::read_to_string(path) {
                Ok(text) => Some(text),
                Err(err) => {
                    errors.push(format!("{name}: cannot read {path}: {err}"));
                    None
                }
            }
        };
        let key = file("SKYPANEL_REGISTRY_TOKEN_KEY", errors);
        let cert = file("SKYPANEL_REGISTRY_TOKEN_CERT", errors);
        let username = raw.get("SKYPANEL_REGISTRY_USERNAME");
        let password = raw.get("SKYPANEL_REGISTRY_PASSWORD");
        let login = match (key, cert, username, password) {
            (Some(key), Some(cert), None, None) => {
                match RegistryAuthority::from_pem(&key, &cert, TOKEN_SERVICE, TOKEN_ISSUER) {
                    Ok(authority) => Login::Tokens(authority),
                    Err(err) => {
                        errors.push(format!("SKYPANEL_REGISTRY_TOKEN_KEY/_CERT: {err}"));
                        return None;
                    }
                }
            }
            (None, None, Some(username), Some(password)) => Login::Account {
                username: username.to_string(),
                password: password.to_string(),
            },
            _ => {
                errors.push(
                    "SKYPANEL_REGISTRY_URL: set either SKYPANEL_REGISTRY_TOKEN_KEY and \
                     SKYPANEL_REGISTRY_TOKEN_CERT (the platform is the registry's token server) \
                     or SKYPANEL_REGISTRY_USERNAME and SKYPANEL_REGISTRY_PASSWORD (an account \
                     of a registry run elsewhere)"
                        .into(),
                );
                return None;
            }
        };
        let number = |name: &str, default: i64, range: (i64, i64), errors: &mut Vec<String>| {
            crate::config::parse_number(name, raw.get(name), default, range, errors)
        };
        Some(Self {
            address,
            login,
            keep_releases: number("SKYPANEL_REGISTRY_KEEP", 10, (1, 10_000), errors),
            keep_days: number("SKYPANEL_REGISTRY_KEEP_DAYS", 30, (0, 3650), errors),
        })
    }

    /// What the actors need: where images go and how nodes log in.
    pub fn actor_settings(&self, jwt_secret: &str) -> RegistrySettings {
        let logins = match &self.login {
            Login::Tokens(_) => RegistryLogins::Tickets {
                key: ticket_key(jwt_secret),
            },
            Login::Account { username, password } => RegistryLogins::Account {
                username: username.clone(),
                password: password.clone(),
            },
        };
        RegistrySettings {
            address: self.address.clone(),
            logins,
            ticket_ttl: Duration::from_secs(3600),
        }
    }

    /// The registry's retention, when the control plane can sign its own
    /// tokens (a registry run elsewhere keeps its own retention).
    pub fn retention(&self) -> Option<skypanel_jobs::RegistryRetention> {
        match &self.login {
            Login::Tokens(authority) => Some(skypanel_jobs::RegistryRetention {
                client: skypanel_jobs::registry::RegistryClient::new(
                    self.address.clone(),
                    authority.clone(),
                ),
                keep_releases: usize::try_from(self.keep_releases).unwrap_or(10),
                keep_days: self.keep_days,
            }),
            Login::Account { .. } => None,
        }
    }

    /// The token server the HTTP layer runs, when the platform is one.
    pub fn token_server(&self, jwt_secret: &str) -> Option<skypanel_http::TokenServer> {
        match &self.login {
            Login::Tokens(authority) => Some(skypanel_http::TokenServer {
                authority: authority.clone(),
                ticket_key: ticket_key(jwt_secret),
            }),
            Login::Account { .. } => None,
        }
    }
}
