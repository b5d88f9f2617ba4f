//! Configuration in layers: defaults → an optional TOML file → `SKYPANEL_*`
//! environment variables → validation that collects every problem before
//! failing, so one start-up message names every bad variable. The environment
//! is passed in as a map, so tests swap it freely.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use skypanel_domain::names::normalize_hostname;
use skypanel_domain::secrets::SecretKey;

/// The settings every subcommand may need. `Debug` hides the secrets.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub redis_url: String,
    pub listen: SocketAddr,
    pub secret_key: SecretKey,
    pub jwt_secret: String,
    pub jwt_ttl: Duration,
    pub platform_domain: String,
    /// The port the nodes' ingress answers plain HTTP on for customers
    /// (`SKYPANEL_APPS_HTTP_PORT`, 80): applications' URLs name it when it
    /// is not 80.
    pub apps_http_port: u16,
    pub allow_file_git: bool,
    pub allow_plain_http_git: bool,
    pub public_url: String,
    /// Where the other control-plane replicas reach this one
    /// (`SKYPANEL_REPLICA_URL`; its listen address on this machine).
    pub replica_url: String,
    /// Load balancers whose `X-Forwarded-For` names the client
    /// (`SKYPANEL_TRUSTED_PROXIES`, IP addresses separated by commas).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub db_pool_size: usize,
    pub log_json: bool,
    /// Seconds without a heartbeat before a node is offline.
    pub node_offline_after: Duration,
    /// How often agents heartbeat.
    pub heartbeat_interval: Duration,
    /// How long a task lease lasts unless extended.
    pub lease_ttl: Duration,
    /// How long a fresh lease waits for the agent's first report before the
    /// task goes back to the queue (an answer lost on its way).
    pub lease_ack: Duration,
    /// How often the sweeper pushes the jobs of unfinished work again.
    pub sweep_interval: Duration,
    /// The longest a build may run.
    pub build_timeout: Duration,
    /// The most bytes of log a build keeps.
    pub build_max_log_bytes: i64,
    /// The largest image a build may make, in MB.
    pub build_max_image_mb: u64,
    /// The largest context (the checkout, packed) a build takes, in MB.
    pub build_max_context_mb: u64,
    /// Attempts a build gets when the infrastructure fails it.
    pub build_attempts: i32,
    /// Names this platform's job queues in Redis (`<prefix>:builds` …).
    pub queue_prefix: String,
    /// Runtime log lines kept per application.
    pub app_log_lines: usize,
    /// How long a wallet may stay below zero before suspension.
    pub billing_grace: Duration,
    /// Automatic HTTPS (off without `SKYPANEL_ACME_DIRECTORY`).
    pub ssl: skypanel_jobs::SslSettings,
    /// Managed databases' backups, and the data deleted ones leave.
    pub backups: skypanel_jobs::BackupSettings,
    /// How customers' webhooks are delivered.
    pub webhooks: skypanel_jobs::WebhookSettings,
    /// Requests allowed per minute.
    pub rate_limits: skypanel_http::rate_limit::RateLimits,
    /// How much a customer may create.
    pub quotas: skypanel_http::quotas::Quotas,
    /// The platform's image registry (none: images stay on their node).
    pub registry: Option<crate::registry::RegistryConfig>,
    /// How long a node stays under pressure before it is degraded.
    pub pressure_window: Duration,
    /// How long a deploy waits for a node with room before it gives up.
    pub placement_wait: Duration,
    /// How long a release phase's command may run.
    pub release_phase_timeout: Duration,
    /// Where GitHub answers (`SKYPANEL_GITHUB_API_URL`, `SKYPANEL_GITHUB_WEB_URL`).
    pub github: skypanel_http::github::GithubUrls,
    /// Where the applications' repositories for `git push` live.
    pub git_root: PathBuf,
    /// Where moving databases' dumps wait between their two nodes.
    pub transfer_root: PathBuf,
    /// The largest `git push` taken, in MiB.
    pub git_max_push_mb: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("platform_domain", &self.platform_domain)
            .field("allow_file_git", &self.allow_file_git)
            .field("public_url", &self.public_url)
            .field("replica_url", &self.replica_url)
            .finish_non_exhaustive()
    }
}

/// Every problem found, one line per variable.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.0.len())?;
        for line in &self.0 {
            writeln!(f, "  {line}")?;
        }
        write!(
            f,
            "set them in the environment or in the file named by SKYPANEL_CONFIG"
        )
    }
}

impl std::error::Error for ConfigError {}

/// Raw values by variable name (`SKYPANEL_DATABASE_URL` …), before validation.
pub(crate) struct Raw(HashMap<String, String>);

impl Raw {
    /// Layers the file (keys without prefix, lowercase) under the environment.
    fn layered(
        env: &HashMap<String, String>,
        file: Option<&str>,
        errors: &mut Vec<String>,
    ) -> Self {
        let mut values = HashMap::new();
        if let Some(text) = file {
            match text.parse::<toml::Table>() {
                Ok(table) => {
                    for (key, value) in table {
                        let value = match value {
                            toml::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        values.insert(format!("SKYPANEL_{}", key.to_uppercase()), value);
                    }
                }
                // The error's own text quotes the offending line, which may
                // hold a secret: name the line only.
                Err(err) => {
                    let line = err
                        .span()
                        .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
                    errors.push(match line {
                        Some(line) => format!(
                            "SKYPANEL_CONFIG: the file is not valid TOML (line {line}): {}",
                            err.message()
                        ),
                        None => format!(
                            "SKYPANEL_CONFIG: the file is not valid TOML: {}",
                            err.message()
                        ),
                    })
                }
            }
        }
        for (key, value) in env {
            if key.starts_with("SKYPANEL_") {
                values.insert(key.clone(), value.clone());
            }
        }
        Self(values)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str, errors: &mut Vec<String>) -> Option<&str> {
        let value = self.get(name);
        if value.is_none() {
            errors.push(format!("{name}: missing"));
        }
        value
    }
}

fn check_database_url(url: &str, errors: &mut Vec<String>) {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        errors.push("SKYPANEL_DATABASE_URL: must be a postgres:// URL".into());
    }
}

fn parse_bool(name: &str, value: Option<&str>, errors: &mut Vec<String>) -> bool {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("0" | "false" | "no" | "off") => false,
        Some("1" | "true" | "yes" | "on") => true,
        Some(_) => {
            errors.push(format!("{name}: must be true or false"));
            false
        }
    }
}

pub(crate) fn parse_number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: Option<&str>,
    default: T,
    range: (T, T),
    errors: &mut Vec<String>,
) -> T {
    let Some(text) = value else { return default };
    match text.parse::<T>() {
        Ok(n) if n >= range.0 && n <= range.1 => n,
        _ => {
            errors.push(format!(
                "{name}: must be a number from {} to {}",
                range.0, range.1
            ));
            default
        }
    }
}

/// `SKYPANEL_SECRET_KEY` (seals and opens), with the earlier keys of
/// `SKYPANEL_SECRET_KEYS_OLD` (comma-separated; they only open values sealed
/// before a rotation).
fn secret_keys(raw: &Raw, errors: &mut Vec<String>) -> Option<SecretKey> {
    let current = raw
        .required("SKYPANEL_SECRET_KEY", errors)
        .and_then(|hex| {
            SecretKey::from_hex(hex)
                .map_err(|_| {
                    errors.push(
                        "SKYPANEL_SECRET_KEY: must be 64 hexadecimal characters (32 bytes)".into(),
                    )
                })
                .ok()
        })?;
    let mut earlier = Vec::new();
    for (n, hex) in raw
        .get("SKYPANEL_SECRET_KEYS_OLD")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .enumerate()
    {
        match SecretKey::from_hex(hex) {
            Ok(key) => earlier.push(key),
            Err(_) => errors.push(format!(
                "SKYPANEL_SECRET_KEYS_OLD: key {} must be 64 hexadecimal characters (32 bytes)",
                n + 1
            )),
        }
    }
    Some(current.with_previous(earlier))
}

impl Config {
    /// Only the database URL, for `migrate` and `admin`.
    pub fn database_url(
        env: &HashMap<String, String>,
        file: Option<&str>,
    ) -> Result<String, ConfigError> {
        let mut errors = Vec::new();
        let raw = Raw::layered(env, file, &mut errors);
        let url = raw
            .required("SKYPANEL_DATABASE_URL", &mut errors)
            .unwrap_or_default()
            .to_string();
        if !url.is_empty() {
            check_database_url(&url, &mut errors);
        }
        if errors.is_empty() {
            Ok(url)
        } else {
            Err(ConfigError(errors))
        }
    }

    /// The database URL and the secret key with its earlier keys, for
    /// `secrets rotate`.
    pub fn database_and_keys(
        env: &HashMap<String, String>,
        file: Option<&str>,
    ) -> Result<(String, SecretKey), ConfigError> {
        let url = Self::database_url(env, file)?;
        let mut errors = Vec::new();
        let raw = Raw::layered(env, file, &mut errors);
        match secret_keys(&raw, &mut errors) {
            Some(key) if errors.is_empty() => Ok((url, key)),
            _ => Err(ConfigError(errors)),
        }
    }

    /// Everything `serve` needs.
    pub fn load(env: &HashMap<String, String>, file: Option<&str>) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let raw = Raw::layered(env, file, &mut errors);

        let database_url = raw
            .required("SKYPANEL_DATABASE_URL", &mut errors)
            .unwrap_or_default()
            .to_string();
        if !database_url.is_empty() {
            check_database_url(&database_url, &mut errors);
        }
        let redis_url = raw
            .required("SKYPANEL_REDIS_URL", &mut errors)
            .unwrap_or_default()
            .to_string();
        if !redis_url.is_empty() && redis::Client::open(redis_url.as_str()).is_err() {
            errors.push("SKYPANEL_REDIS_URL: must be a redis:// URL".into());
        }
        let listen_text = raw.get("SKYPANEL_LISTEN").unwrap_or("127.0.0.1:8080");
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            errors
                .push("SKYPANEL_LISTEN: must be an address and port such as 127.0.0.1:8080".into());
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let secret_key = secret_keys(&raw, &mut errors);
        let jwt_secret = raw
            .required("SKYPANEL_JWT_SECRET", &mut errors)
            .unwrap_or_default()
            .to_string();
        if !jwt_secret.is_empty() && jwt_secret.len() < 32 {
            errors.push("SKYPANEL_JWT_SECRET: must be at least 32 characters".into());
        }
        let platform_domain = normalize_hostname(
            "SKYPANEL_PLATFORM_DOMAIN",
            raw.get("SKYPANEL_PLATFORM_DOMAIN").unwrap_or("localhost"),
        )
        .unwrap_or_else(|_| {
            errors.push(
                "SKYPANEL_PLATFORM_DOMAIN: must be a hostname such as apps.example.com".into(),
            );
            String::new()
        });
        let allow_file_git = parse_bool(
            "SKYPANEL_ALLOW_FILE_GIT",
            raw.get("SKYPANEL_ALLOW_FILE_GIT"),
            &mut errors,
        );
        let allow_plain_http_git = parse_bool(
            "SKYPANEL_ALLOW_PLAIN_HTTP_GIT",
            raw.get("SKYPANEL_ALLOW_PLAIN_HTTP_GIT"),
            &mut errors,
        );
        let jwt_ttl = parse_number(
            "SKYPANEL_JWT_TTL",
            raw.get("SKYPANEL_JWT_TTL"),
            3600u64,
            (60, 86_400),
            &mut errors,
        );
        let apps_http_port = parse_number(
            "SKYPANEL_APPS_HTTP_PORT",
            raw.get("SKYPANEL_APPS_HTTP_PORT"),
            80u16,
            (1, 65535),
            &mut errors,
        );
        let db_pool_size = parse_number(
            "SKYPANEL_DB_POOL_SIZE",
            raw.get("SKYPANEL_DB_POOL_SIZE"),
            16usize,
            (1, 512),
            &mut errors,
        );
        let public_url = raw.get("SKYPANEL_PUBLIC_URL").map_or_else(
            || format!("http://{listen}"),
            |u| u.trim_end_matches('/').to_string(),
        );
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            errors.push("SKYPANEL_PUBLIC_URL: must start with http:// or https://".into());
        }
        let mut trusted_proxies = Vec::new();
        for text in raw
            .get("SKYPANEL_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            match text.parse::<std::net::IpAddr>() {
                Ok(ip) => trusted_proxies.push(ip),
                Err(_) => errors.push(format!(
                    "SKYPANEL_TRUSTED_PROXIES: {text} is not an IP address"
                )),
            }
        }
        let replica_url = raw.get("SKYPANEL_REPLICA_URL").map_or_else(
            || local_url(listen),
            |u| u.trim_end_matches('/').to_string(),
        );
        if !(replica_url.starts_with("http://") || replica_url.starts_with("https://")) {
            errors.push("SKYPANEL_REPLICA_URL: must start with http:// or https://".into());
        }
        let node_offline_after = parse_number(
            "SKYPANEL_NODE_OFFLINE_AFTER",
            raw.get("SKYPANEL_NODE_OFFLINE_AFTER"),
            90u64,
            (1, 3600),
            &mut errors,
        );
        let heartbeat_interval = parse_number(
            "SKYPANEL_HEARTBEAT_INTERVAL",
            raw.get("SKYPANEL_HEARTBEAT_INTERVAL"),
            30u64,
            (1, 600),
            &mut errors,
        );
        let lease_ttl = parse_number(
            "SKYPANEL_LEASE_TTL",
            raw.get("SKYPANEL_LEASE_TTL"),
            30u64,
            (2, 3600),
            &mut errors,
        );
        let lease_ack = parse_number(
            "SKYPANEL_LEASE_ACK",
            raw.get("SKYPANEL_LEASE_ACK"),
            10u64,
            (1, 600),
            &mut errors,
        );
        let sweep_interval = parse_number(
            "SKYPANEL_SWEEP_INTERVAL",
            raw.get("SKYPANEL_SWEEP_INTERVAL"),
            30u64,
            (1, 3600),
            &mut errors,
        );
        let build_timeout = parse_number(
            "SKYPANEL_BUILD_TIMEOUT",
            raw.get("SKYPANEL_BUILD_TIMEOUT"),
            900u64,
            (10, 6 * 3600),
            &mut errors,
        );
        let build_max_log_bytes = parse_number(
            "SKYPANEL_BUILD_MAX_LOG_BYTES",
            raw.get("SKYPANEL_BUILD_MAX_LOG_BYTES"),
            4 * 1024 * 1024i64,
            (1024, 256 * 1024 * 1024),
            &mut errors,
        );
        let build_max_image_mb = parse_number(
            "SKYPANEL_BUILD_MAX_IMAGE_MB",
            raw.get("SKYPANEL_BUILD_MAX_IMAGE_MB"),
            4096u64,
            (1, 1024 * 1024),
            &mut errors,
        );
        let build_max_context_mb = parse_number(
            "SKYPANEL_BUILD_MAX_CONTEXT_MB",
            raw.get("SKYPANEL_BUILD_MAX_CONTEXT_MB"),
            1024u64,
            (1, 1024 * 1024),
            &mut errors,
        );
        let build_attempts = parse_number(
            "SKYPANEL_BUILD_ATTEMPTS",
            raw.get("SKYPANEL_BUILD_ATTEMPTS"),
            3i32,
            (1, 10),
            &mut errors,
        );
        let queue_prefix = raw
            .get("SKYPANEL_QUEUE_PREFIX")
            .unwrap_or("skypanel")
            .to_string();
        if !queue_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            errors.push(
                "SKYPANEL_QUEUE_PREFIX: letters, digits, hyphens and underscores only".into(),
            );
        }
        let app_log_lines = parse_number(
            "SKYPANEL_APP_LOG_LINES",
            raw.get("SKYPANEL_APP_LOG_LINES"),
            10_000usize,
            (100, 1_000_000),
            &mut errors,
        );
        let billing_grace = parse_number(
            "SKYPANEL_BILLING_GRACE",
            raw.get("SKYPANEL_BILLING_GRACE"),
            24 * 3600u64,
            (0, 90 * 24 * 3600),
            &mut errors,
        );
        let ssl = ssl_settings(&raw, &mut errors);
        let backups = backup_settings(&raw, &mut errors);
        let limit = |name: &str, default: u32, errors: &mut Vec<String>| {
            parse_number(name, raw.get(name), default, (0, 1_000_000), errors)
        };
        let quota_defaults = skypanel_http::quotas::Quotas::default();
        let quotas = skypanel_http::quotas::Quotas {
            max_apps: parse_number(
                "SKYPANEL_MAX_APPS_PER_USER",
                raw.get("SKYPANEL_MAX_APPS_PER_USER"),
                quota_defaults.max_apps,
                (0, 100_000),
                &mut errors,
            ),
            max_databases: parse_number(
                "SKYPANEL_MAX_DATABASES_PER_USER",
                raw.get("SKYPANEL_MAX_DATABASES_PER_USER"),
                quota_defaults.max_databases,
                (0, 100_000),
                &mut errors,
            ),
            min_balance: match raw.get("SKYPANEL_MIN_BALANCE_TO_CREATE") {
                None => quota_defaults.min_balance,
                Some(text) => match skypanel_http::quotas::Quotas::parse_amount(text) {
                    Some(amount) => amount,
                    None => {
                        errors.push(
                            "SKYPANEL_MIN_BALANCE_TO_CREATE: must be an amount such as 5.00".into(),
                        );
                        quota_defaults.min_balance
                    }
                },
            },
        };
        let defaults = skypanel_http::rate_limit::RateLimits::default();
        let rate_limits = skypanel_http::rate_limit::RateLimits {
            api_per_ip: limit("SKYPANEL_RATE_LIMIT_API", defaults.api_per_ip, &mut errors),
            login_per_ip: limit(
                "SKYPANEL_RATE_LIMIT_LOGIN",
                defaults.login_per_ip,
                &mut errors,
            ),
            api_per_user: limit(
                "SKYPANEL_RATE_LIMIT_USER",
                defaults.api_per_user,
                &mut errors,
            ),
            deploy_per_user: limit(
                "SKYPANEL_RATE_LIMIT_DEPLOY",
                defaults.deploy_per_user,
                &mut errors,
            ),
        };
        let webhooks = skypanel_jobs::WebhookSettings {
            allow_private: parse_bool(
                "SKYPANEL_WEBHOOK_ALLOW_PRIVATE",
                raw.get("SKYPANEL_WEBHOOK_ALLOW_PRIVATE"),
                &mut errors,
            ),
            retry_base: Duration::from_secs(parse_number(
                "SKYPANEL_WEBHOOK_RETRY_SECONDS",
                raw.get("SKYPANEL_WEBHOOK_RETRY_SECONDS"),
                30u64,
                (1, 86400),
                &mut errors,
            )),
            ..skypanel_jobs::WebhookSettings::default()
        };
        let registry = crate::registry::RegistryConfig::read(&raw, &mut errors);
        let pressure_window = parse_number(
            "SKYPANEL_NODE_PRESSURE_SECONDS",
            raw.get("SKYPANEL_NODE_PRESSURE_SECONDS"),
            300u64,
            (0, 86_400),
            &mut errors,
        );
        let placement_wait = parse_number(
            "SKYPANEL_PLACEMENT_WAIT",
            raw.get("SKYPANEL_PLACEMENT_WAIT"),
            1800u64,
            (0, 7 * 86_400),
            &mut errors,
        );
        let release_phase_timeout = parse_number(
            "SKYPANEL_RELEASE_PHASE_TIMEOUT",
            raw.get("SKYPANEL_RELEASE_PHASE_TIMEOUT"),
            3600u64,
            (1, 86_400),
            &mut errors,
        );
        let github = {
            let defaults = skypanel_http::github::GithubUrls::default();
            let mut url = |name: &str, default: String| {
                let value = raw
                    .get(name)
                    .map_or(default, |u| u.trim().trim_end_matches('/').to_string());
                if !(value.starts_with("https://") || value.starts_with("http://")) {
                    errors.push(format!("{name}: must start with https:// or http://"));
                }
                value
            };
            skypanel_http::github::GithubUrls {
                api: url("SKYPANEL_GITHUB_API_URL", defaults.api),
                web: url("SKYPANEL_GITHUB_WEB_URL", defaults.web),
            }
        };
        let git_root = PathBuf::from(
            raw.get("SKYPANEL_GIT_ROOT")
                .unwrap_or("/var/lib/skypanel/git"),
        );
        if !git_root.is_absolute() {
            errors.push("SKYPANEL_GIT_ROOT: must be an absolute path".into());
        }
        let transfer_root = PathBuf::from(
            raw.get("SKYPANEL_TRANSFER_ROOT")
                .unwrap_or("/var/lib/skypanel/transfers"),
        );
        if !transfer_root.is_absolute() {
            errors.push("SKYPANEL_TRANSFER_ROOT: must be an absolute path".into());
        }
        let git_max_push_mb = parse_number(
            "SKYPANEL_GIT_MAX_PUSH_MB",
            raw.get("SKYPANEL_GIT_MAX_PUSH_MB"),
            1024u64,
            (1, 1_048_576),
            &mut errors,
        );
        let log_json = match raw.get("SKYPANEL_LOG_FORMAT").unwrap_or("text") {
            "text" => false,
            "json" => true,
            _ => {
                errors.push("SKYPANEL_LOG_FORMAT: must be text or json".into());
                false
            }
        };

        match secret_key {
            Some(secret_key) if errors.is_empty() => Ok(Self {
                database_url,
                redis_url,
                listen,
                replica_url,
                trusted_proxies,
                secret_key,
                jwt_secret,
                jwt_ttl: Duration::from_secs(jwt_ttl),
                platform_domain,
                apps_http_port,
                allow_file_git,
                allow_plain_http_git,
                public_url,
                db_pool_size,
                log_json,
                node_offline_after: Duration::from_secs(node_offline_after),
                heartbeat_interval: Duration::from_secs(heartbeat_interval),
                lease_ttl: Duration::from_secs(lease_ttl),
                lease_ack: Duration::from_secs(lease_ack),
                sweep_interval: Duration::from_secs(sweep_interval),
                build_timeout: Duration::from_secs(build_timeout),
                build_max_log_bytes,
                build_max_image_mb,
                build_max_context_mb,
                build_attempts,
                queue_prefix,
                app_log_lines,
                billing_grace: Duration::from_secs(billing_grace),
                ssl,
                backups,
                webhooks,
                rate_limits,
                quotas,
                registry,
                pressure_window: Duration::from_secs(pressure_window),
                placement_wait: Duration::from_secs(placement_wait),
                release_phase_timeout: Duration::from_secs(release_phase_timeout),
                github,
                git_root,
                git_max_push_mb,
                transfer_root,
            }),
            _ => Err(ConfigError(errors)),
        }
    }

    /// The actors' part of the configuration.
    pub fn actor_settings(&self) -> skypanel_actors::Settings {
        skypanel_actors::Settings {
            node_offline_after: self.node_offline_after,
            heartbeat_interval: self.heartbeat_interval,
            lease_ttl: self.lease_ttl,
            lease_ack: self.lease_ack,
            build_timeout: self.build_timeout,
            build_max_log_bytes: self.build_max_log_bytes,
            build_max_image_mb: self.build_max_image_mb,
            build_max_context_mb: self.build_max_context_mb,
            billing_grace: self.billing_grace,
            registry: self
                .registry
                .as_ref()
                .map(|r| r.actor_settings(&self.jwt_secret)),
            pressure_window: self.pressure_window,
            placement_wait: self.placement_wait,
            release_phase_timeout: self.release_phase_timeout,
            transfer_root: self.transfer_root.clone(),
            ..skypanel_actors::Settings::default()
        }
    }

    /// How build jobs drive builds.
    pub fn build_settings(&self) -> skypanel_jobs::BuildSettings {
        skypanel_jobs::BuildSettings {
            max_attempts: self.build_attempts,
            follow_limit: self.build_timeout + Duration::from_secs(5 * 60),
            ..skypanel_jobs::BuildSettings::default()
        }
    }

    /// How certificates are had (cloned for the workers).
    pub fn ssl_settings(&self) -> skypanel_jobs::SslSettings {
        self.ssl.clone()
    }

    /// How backups are made and kept (cloned for the workers).
    pub fn backup_settings(&self) -> skypanel_jobs::BackupSettings {
        self.backups.clone()
    }

    /// How webhooks are delivered (cloned for the workers).
    pub fn webhook_settings(&self) -> skypanel_jobs::WebhookSettings {
        self.webhooks.clone()
    }

    /// The HTTP layer's part of the configuration.
    pub fn http_settings(&self) -> skypanel_http::Settings {
        skypanel_http::Settings {
            jwt_secret: self.jwt_secret.clone(),
            jwt_ttl: self.jwt_ttl,
            platform_domain: self.platform_domain.clone(),
            allow_file_git: self.allow_file_git,
            allow_plain_http_git: self.allow_plain_http_git,
            public_url: self.public_url.clone(),
            registration_ttl: Duration::from_secs(24 * 3600),
            https: self.ssl.enabled(),
            renew_before: self.ssl.renew_before,
            volume_retention: self.backups.volume_retention,
            webhook_allow_private: self.webhooks.allow_private,
            rate_limits: self.rate_limits,
            trusted_proxies: self.trusted_proxies.clone(),
            quotas: self.quotas.clone(),
            registry: self
                .registry
                .as_ref()
                .and_then(|r| r.token_server(&self.jwt_secret)),
            registry_retention: self.registry.as_ref().and_then(|r| r.retention()),
            github: self.github.clone(),
            git: skypanel_http::git::GitSettings {
                root: self.git_root.clone(),
                max_push_bytes: self.git_max_push_mb * 1024 * 1024,
                local_url: local_url(self.listen),
                hook_program: std::env::current_exe().unwrap_or_else(|_| "skypanel".into()),
            },
        }
    }
}

/// Where this process answers on its own machine: its listen address, with
/// an unspecified one (`0.0.0.0`, `::`) as the loopback of its family.
fn local_url(listen: SocketAddr) -> String {
    let mut at = listen;
    if at.ip().is_unspecified() {
        at.set_ip(match at {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{at}")
}

/// `SKYPANEL_BACKUP_*` and `SKYPANEL_DB_VOLUME_RETENTION_DAYS`: how many
/// backups each database keeps, when the daily ones run, and how long a
/// deleted database's data stays on its node.
fn backup_settings(raw: &Raw, errors: &mut Vec<String>) -> skypanel_jobs::BackupSettings {
    let defaults = skypanel_jobs::BackupSettings::default();
    let retention = parse_number(
        "SKYPANEL_BACKUP_RETENTION",
        raw.get("SKYPANEL_BACKUP_RETENTION"),
        defaults.retention,
        (1, 1000),
        errors,
    );
    let schedule = raw
        .get("SKYPANEL_BACKUP_SCHEDULE")
        .map_or(defaults.schedule.clone(), str::to_string);
    if let Err(err) = skypanel_jobs::BackupSettings::check_schedule(&schedule) {
        errors.push(format!(
            "SKYPANEL_BACKUP_SCHEDULE: not a cron expression with seconds (such as \"0 0 2 * * *\"): {err}"
        ));
    }
    let volume_days = parse_number(
        "SKYPANEL_DB_VOLUME_RETENTION_DAYS",
        raw.get("SKYPANEL_DB_VOLUME_RETENTION_DAYS"),
        7u64,
        (0, 3650),
        errors,
    );
    skypanel_jobs::BackupSettings {
        retention,
        schedule,
        volume_retention: Duration::from_secs(volume_days * 24 * 3600),
        ..defaults
    }
}

/// `SKYPANEL_ACME_*` and `SKYPANEL_SSL_*`: where certificates come from and
/// when they are renewed.
fn ssl_settings(raw: &Raw, errors: &mut Vec<String>) -> skypanel_jobs::SslSettings {
    let directory = raw.get("SKYPANEL_ACME_DIRECTORY").map(str::to_string);
    if let Some(url) = &directory
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        errors.push("SKYPANEL_ACME_DIRECTORY: must be the URL of an ACME directory".into());
    }
    let ca_bundle = raw
        .get("SKYPANEL_ACME_CA_BUNDLE")
        .map(std::path::PathBuf::from);
    if let Some(path) = &ca_bundle
        && !path.is_file()
    {
        errors.push(format!(
            "SKYPANEL_ACME_CA_BUNDLE: {} is not a readable file",
            path.display()
        ));
    }
    let contact = raw.get("SKYPANEL_ACME_CONTACT").map(str::to_string);
    if let Some(email) = &contact
        && skypanel_domain::names::normalize_email(email).is_err()
    {
        errors.push("SKYPANEL_ACME_CONTACT: must be an e-mail address".into());
    }
    let renew_days = parse_number(
        "SKYPANEL_SSL_RENEW_BEFORE_DAYS",
        raw.get("SKYPANEL_SSL_RENEW_BEFORE_DAYS"),
        30u64,
        (1, 36500),
        errors,
    );
    let retry_secs = parse_number(
        "SKYPANEL_SSL_RETRY_SECONDS",
        raw.get("SKYPANEL_SSL_RETRY_SECONDS"),
        60u64,
        (1, 86400),
        errors,
    );
    skypanel_jobs::SslSettings {
        directory,
        ca_bundle,
        contact,
        renew_before: Duration::from_secs(renew_days * 24 * 3600),
        retry_base: Duration::from_secs(retry_secs),
        ..skypanel_jobs::SslSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn complete() -> HashMap<String, String> {
        env(&[
            ("SKYPANEL_DATABASE_URL", "postgres://u:p@127.0.0.1/skypanel"),
            ("SKYPANEL_REDIS_URL", "redis://127.0.0.1:6379"),
            ("SKYPANEL_SECRET_KEY", &"ab".repeat(32)),
            ("SKYPANEL_JWT_SECRET", &"j".repeat(32)),
        ])
    }

    #[test]
    fn defaults_fill_the_rest() {
        let config = Config::load(&complete(), None).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.platform_domain, "localhost");
        assert_eq!(config.public_url, "http://127.0.0.1:8080");
        assert!(!config.allow_file_git);
        assert_eq!(config.jwt_ttl, Duration::from_secs(3600));
    }

    #[test]
    fn replicas_name_their_address_and_their_load_balancers() {
        let config = Config::load(&complete(), None).unwrap();
        assert_eq!(config.replica_url, "http://127.0.0.1:8080");
        assert!(config.trusted_proxies.is_empty());
        let mut vars = complete();
        vars.insert("SKYPANEL_LISTEN".into(), "0.0.0.0:9000".into());
        vars.insert("SKYPANEL_TRUSTED_PROXIES".into(), "10.0.0.5, ::1".into());
        let config = Config::load(&vars, None).unwrap();
        assert_eq!(config.replica_url, "http://127.0.0.1:9000");
        assert_eq!(config.trusted_proxies.len(), 2);
        vars.insert(
            "SKYPANEL_TRUSTED_PROXIES".into(),
            "10.0.0.5, lb.internal".into(),
        );
        vars.insert("SKYPANEL_REPLICA_URL".into(), "10.0.0.7:9000".into());
        let text = Config::load(&vars, None).unwrap_err().to_string();
        assert!(
            text.contains("SKYPANEL_TRUSTED_PROXIES: lb.internal is not an IP address"),
            "{text}"
        );
        assert!(
            text.contains("SKYPANEL_REPLICA_URL: must start with http://"),
            "{text}"
        );
    }

    #[test]
    fn every_bad_variable_is_named_at_once() {
        let bad = env(&[
            ("SKYPANEL_SECRET_KEY", "tooshort"),
            ("SKYPANEL_LISTEN", "nowhere"),
            ("SKYPANEL_ALLOW_FILE_GIT", "maybe"),
            ("SKYPANEL_JWT_SECRET", "short"),
        ]);
        let err = Config::load(&bad, None).unwrap_err();
        let text = err.to_string();
        for name in [
            "SKYPANEL_DATABASE_URL: missing",
            "SKYPANEL_REDIS_URL: missing",
            "SKYPANEL_SECRET_KEY: must be 64",
            "SKYPANEL_LISTEN",
            "SKYPANEL_ALLOW_FILE_GIT",
            "SKYPANEL_JWT_SECRET: must be at least 32",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(
            !text.contains("tooshort"),
            "secret values must not be echoed"
        );
        assert_eq!(err.0.len(), 6);
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = "listen = \"127.0.0.1:9000\"\nplatform_domain = \"apps.example.com\"\nallow_file_git = true\n";
        let mut vars = complete();
        vars.insert("SKYPANEL_LISTEN".into(), "127.0.0.1:9100".into());
        let config = Config::load(&vars, Some(file)).unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.platform_domain, "apps.example.com");
        assert!(config.allow_file_git);
    }

    #[test]
    fn a_broken_file_is_named_by_line_without_its_text() {
        let file = "listen = \"127.0.0.1:9000\"\njwt_secret = \"s3cret-in-the-file\n";
        let err = Config::load(&complete(), Some(file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid TOML (line 2)"), "{err}");
        assert!(!err.contains("s3cret-in-the-file"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let config = Config::load(&complete(), None).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("jjjj") && !shown.contains("abab") && !shown.contains("u:p@"));
    }

    #[test]
    fn database_url_alone() {
        assert!(
            Config::database_url(&env(&[("SKYPANEL_DATABASE_URL", "mysql://x")]), None).is_err()
        );
        assert!(Config::database_url(&complete(), None).is_ok());
    }
}
