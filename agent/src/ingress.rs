//! The node's ingress: an nginx of the agent's own (its own folder, pid file
//! and ports) with one server block per application. Every change is written,
//! checked with `nginx -t`, and only then reloaded; a file that fails the check
//! is replaced by the one before. nginx runs as a daemon of its own, so
//! applications stay reachable while the agent restarts.
//!
//! Each site file starts with a comment holding its [`Route`] as JSON, so a
//! restarted agent knows what it routed.
//!
//! HTTPS: a name with a certificate is served on the HTTPS port (TLS 1.2 and
//! newer) and its plain HTTP requests are redirected there. Certificate files
//! are named after their content, so a renewed one is a new file that the
//! reload switches to while requests keep being answered. Every server block,
//! the default one included, answers ACME HTTP-01 challenges from `acme/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use skypanel_protocol::task::Certificate;
use tokio::process::Command;
use tokio::sync::Mutex;

/// Where and how the ingress runs.
#[derive(Debug, Clone)]
pub struct IngressOptions {
    /// The folder holding nginx.conf, sites/, logs and temporary files.
    pub dir: PathBuf,
    /// The nginx binary.
    pub nginx: PathBuf,
    /// The address nginx listens on (all addresses on a worker node).
    pub address: String,
    pub http_port: u16,
    pub https_port: u16,
}

/// How long an answered challenge's file is kept.
const CHALLENGE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// What an application's server block says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub app_id: i64,
    pub hostnames: Vec<String>,
    pub mode: Mode,
    /// The names served over HTTPS, with the certificate each has.
    #[serde(default)]
    pub tls: Vec<TlsName>,
}

/// A name served over HTTPS and the certificate files it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsName {
    pub hostname: String,
    /// Names the files: `certs/<hostname>-<fingerprint>.crt` and `.key`.
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Mode {
    /// Proxies to the release's instances (ports on 127.0.0.1).
    Serving { release: i32, ports: Vec<u16> },
    /// Answers 503: the application is stopped.
    Stopped,
}

#[derive(Clone)]
pub struct Ingress {
    options: IngressOptions,
    /// Serialises writing, checking and reloading; holds the routes in force.
    routes: Arc<Mutex<BTreeMap<i64, Route>>>,
    /// ACME challenge answers by token, with when they were added.
    challenges: Arc<Mutex<BTreeMap<String, (String, std::time::Instant)>>>,
}

/// Characters a hostname may have here (validated by the control plane too;
/// checked again because they are written into nginx's configuration).
fn safe_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// Characters of an ACME token (base64url).
fn safe_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Ingress {
    pub fn new(options: IngressOptions) -> Self {
        Self {
            options,
            routes: Arc::default(),
            challenges: Arc::default(),
        }
    }

    fn sites(&self) -> PathBuf {
        self.options.dir.join("sites")
    }

    fn main_conf(&self) -> PathBuf {
        self.options.dir.join("nginx.conf")
    }

    fn site_file(&self, app_id: i64) -> PathBuf {
        self.sites().join(format!("app-{app_id}.conf"))
    }

    fn certs(&self) -> PathBuf {
        self.options.dir.join("certs")
    }

    /// Serves `key_authorization` at `/.well-known/acme-challenge/<token>`
    /// under every name (the answers live in nginx's configuration, so no
    /// file needs to be readable by its workers); answers older than an
    /// hour are dropped.
    pub async fn answer_challenge(
        &self,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), String> {
        if !safe_token(token) || !safe_token(key_authorization.replace('.', "").as_str()) {
            return Err("refusing a malformed ACME challenge".into());
        }
        let _routes = self.routes.lock().await;
        let mut answers = self.challenges.lock().await;
        answers.retain(|_, (_, at)| at.elapsed() < CHALLENGE_TTL);
        answers.insert(
            token.to_string(),
            (key_authorization.to_string(), std::time::Instant::now()),
        );
        let file = self.options.dir.join("acme.conf");
        std::fs::write(&file, challenges_conf(&answers))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        drop(answers);
        self.check().await?;
        self.reload_or_start().await?;
        // A reload takes effect a moment after the signal: the answer must
        // be served before the ACME server is told to look.
        self.await_answer(token, key_authorization).await
    }

    /// Waits until nginx answers the challenge (at most 10 s).
    async fn await_answer(&self, token: &str, key_authorization: &str) -> Result<(), String> {
        let path = format!("/.well-known/acme-challenge/{token}");
        self.await_served(None, &path, key_authorization)
            .await
            .map_err(|()| "the ingress does not serve the ACME challenge's answer".into())
    }

    /// Waits until nginx answers `path` for `host` with `expected` (at most
    /// 10 s): a reload takes effect a moment after its signal.
    async fn await_served(&self, host: Option<&str>, path: &str, expected: &str) -> Result<(), ()> {
        let address = match self.options.address.as_str() {
            "0.0.0.0" | "" => "127.0.0.1",
            "::" => "[::1]",
            other => other,
        };
        let url = format!("http://{address}:{}{path}", self.options.http_port);
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| ())?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut request = client.get(&url);
            if let Some(host) = host {
                request = request.header("host", host);
            }
            let answer = match request.send().await {
                Ok(response) if response.status().is_success() => response.text().await.ok(),
                _ => None,
            };
            if answer.as_deref() == Some(expected) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Writes the certificates of the route's names (each file once) and
    /// answers the names they serve over HTTPS.
    fn install(
        &self,
        hostnames: &[String],
        certificates: &[Certificate],
    ) -> Result<Vec<TlsName>, String> {
        let dir = self.certs();
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut names = Vec::new();
        for cert in certificates {
            if !hostnames.contains(&cert.hostname) || !safe_hostname(&cert.hostname) {
                continue;
            }
            if !cert.chain_pem.contains("-----BEGIN CERTIFICATE-----")
                || !cert.key_pem.contains("PRIVATE KEY-----")
            {
                return Err(format!("the certificate of {} is not PEM", cert.hostname));
            }
            let digest = Sha256::digest(format!("{}\n{}", cert.chain_pem, cert.key_pem));
            let fingerprint = hex::encode(&digest[..8]);
            let (crt, key) = cert_files(&dir, &cert.hostname, &fingerprint);
            // Written aside and renamed: a file with this name is always whole.
            if !key.exists() {
                write_private(&key, cert.key_pem.as_bytes())?;
            }
            if !crt.exists() {
                write_private(&crt, cert.chain_pem.as_bytes())?;
            }
            names.push(TlsName {
                hostname: cert.hostname.clone(),
                fingerprint,
            });
        }
        Ok(names)
    }

    /// Removes certificate files no route uses (after a reload, so nginx
    /// no longer reads them).
    fn prune_certs(&self, routes: &BTreeMap<i64, Route>) {
        let used: std::collections::HashSet<String> = routes
            .values()
            .flat_map(|r| r.tls.iter())
            .flat_map(|t| {
                let (crt, key) = cert_files(&self.certs(), &t.hostname, &t.fingerprint);
                [crt, key]
            })
            .map(|p| p.display().to_string())
            .collect();
        if let Ok(entries) = std::fs::read_dir(self.certs()) {
            for entry in entries.flatten() {
                if !used.contains(&entry.path().display().to_string()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Writes the main configuration, reads back the routes of earlier runs,
    /// and makes sure nginx runs with it.
    pub async fn start(&self) -> Result<(), String> {
        let dir = &self.options.dir;
        for sub in ["sites", "logs", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", dir.join(sub).display()))?;
        }
        std::fs::write(self.main_conf(), main_conf(&self.options))
            .map_err(|e| format!("cannot write the nginx configuration: {e}"))?;
        // Challenges of an earlier run are stale.
        std::fs::write(dir.join("acme.conf"), challenges_conf(&BTreeMap::new()))
            .map_err(|e| format!("cannot write the nginx configuration: {e}"))?;
        let mut routes = self.routes.lock().await;
        for entry in std::fs::read_dir(self.sites()).map_err(|e| e.to_string())? {
            let Ok(entry) = entry else { continue };
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if let Some(route) = read_route(&text) {
                routes.insert(route.app_id, route);
            }
        }
        self.check().await?;
        self.reload_or_start().await
    }

    /// The routes in force.
    pub async fn routes(&self) -> BTreeMap<i64, Route> {
        self.routes.lock().await.clone()
    }

    /// Routes the application's hostnames to its instances (or to a 503 page
    /// while none runs). Nothing happens when the route is already in force.
    pub async fn serve(
        &self,
        app_id: i64,
        names: Names<'_>,
        release: i32,
        mut ports: Vec<u16>,
    ) -> Result<(), String> {
        ports.sort_unstable();
        let route = Route {
            app_id,
            hostnames: names.hostnames.to_vec(),
            mode: Mode::Serving { release, ports },
            tls: Vec::new(),
        };
        self.apply(route, Some(names.certificates)).await
    }

    /// Points a route that serves `release` at other ports (its instances
    /// moved), keeping its names and certificates.
    pub async fn reroute(
        &self,
        app_id: i64,
        release: i32,
        mut ports: Vec<u16>,
    ) -> Result<(), String> {
        ports.sort_unstable();
        let Some(route) = self.routes.lock().await.get(&app_id).cloned() else {
            return Ok(());
        };
        let route = Route {
            mode: Mode::Serving { release, ports },
            ..route
        };
        self.apply(route, None).await
    }

    /// Answers 503 for a stopped application's hostnames.
    pub async fn stopped(&self, app_id: i64, names: Names<'_>) -> Result<(), String> {
        let route = Route {
            app_id,
            hostnames: names.hostnames.to_vec(),
            mode: Mode::Stopped,
            tls: Vec::new(),
        };
        self.apply(route, Some(names.certificates)).await
    }

    /// Removes the application's server block; its hostnames answer 404.
    pub async fn remove(&self, app_id: i64) -> Result<(), String> {
        let mut routes = self.routes.lock().await;
        let file = self.site_file(app_id);
        if !file.exists() {
            routes.remove(&app_id);
            return Ok(());
        }
        std::fs::remove_file(&file)
            .map_err(|e| format!("cannot remove {}: {e}", file.display()))?;
        routes.remove(&app_id);
        self.reload_or_start().await?;
        self.prune_certs(&routes);
        Ok(())
    }

    /// Writes, checks and loads a route. With `certificates`, the route's
    /// names are served over HTTPS where one is given (files written under
    /// the lock, so no other change prunes them before they are used);
    /// without, the route keeps the ones it has.
    async fn apply(
        &self,
        mut route: Route,
        certificates: Option<&[Certificate]>,
    ) -> Result<(), String> {
        if let Some(bad) = route.hostnames.iter().find(|h| !safe_hostname(h)) {
            return Err(format!("refusing to route the hostname {bad:?}"));
        }
        let mut routes = self.routes.lock().await;
        if let Some(certificates) = certificates {
            route.tls = self.install(&route.hostnames, certificates)?;
        }
        if routes.get(&route.app_id) == Some(&route) && self.site_file(route.app_id).exists() {
            return Ok(());
        }
        let file = self.site_file(route.app_id);
        let previous = std::fs::read(&file).ok();
        std::fs::write(&file, site_conf(&self.options, &route))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        if let Err(err) = self.check().await {
            // Put back what worked.
            match previous {
                Some(bytes) => std::fs::write(&file, bytes).ok(),
                None => std::fs::remove_file(&file).ok(),
            };
            return Err(format!("the ingress refused the new configuration: {err}"));
        }
        let first = route.hostnames.first().cloned();
        let marker = route_marker(&route);
        routes.insert(route.app_id, route);
        self.reload_or_start().await?;
        self.prune_certs(&routes);
        // Done once nginx serves the new route: a release's old instances
        // are retired only after that, and `running` means served.
        if let Some(host) = first {
            self.await_served(Some(&host), ROUTE_PATH, &marker)
                .await
                .map_err(|()| {
                    "the ingress did not take its new configuration within 10 s".to_string()
                })?;
        }
        Ok(())
    }

    fn nginx(&self) -> Command {
        let mut command = Command::new(&self.options.nginx);
        command
            .arg("-p")
            .arg(&self.options.dir)
            .arg("-e")
            .arg(self.options.dir.join("logs/error.log"))
            .arg("-c")
            .arg(self.main_conf());
        command
    }

    /// `nginx -t` on the configuration as it is on disk.
    async fn check(&self) -> Result<(), String> {
        let out = self
            .nginx()
            .arg("-t")
            .arg("-q")
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.options.nginx.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn running_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.options.dir.join("nginx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// Reloads nginx (gracefully: running requests finish on the old
    /// workers), or starts it when it does not run.
    ///
    /// A reload is done once every worker of the old configuration stopped
    /// accepting connections (until then a new connection may still reach
    /// one and get the old routes), or after 10 s.
    async fn reload_or_start(&self) -> Result<(), String> {
        let master = self.running_pid();
        let before = master.map(accepting_workers).unwrap_or_default();
        let out = if master.is_some() {
            self.nginx().args(["-s", "reload"]).output().await
        } else {
            self.nginx().output().await
        }
        .map_err(|e| format!("cannot run {}: {e}", self.options.nginx.display()))?;
        if !out.status.success() {
            return Err(format!(
                "nginx: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if let Some(master) = master {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while accepting_workers(master).iter().any(|w| before.contains(w)) {
                if std::time::Instant::now() > deadline {
                    tracing::warn!(
                        "nginx's old workers still accept connections 10 s after a reload"
                    );
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        Ok(())
    }

    /// Stops nginx (for tests and `--ingress-stop-on-exit`); applications
    /// become unreachable.
    pub async fn stop(&self) {
        if self.running_pid().is_some() {
            let _ = self.nginx().args(["-s", "quit"]).output().await;
        }
    }
}

/// An application's names and the certificates of some of them.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    pub hostnames: &'a [String],
    pub certificates: &'a [Certificate],
}

impl<'a> Names<'a> {
    /// The names and certificates an application's spec carries.
    pub fn of(spec: &'a skypanel_protocol::task::AppSpec) -> Self {
        Self {
            hostnames: &spec.hostnames,
            certificates: &spec.certificates,
        }
    }
}

fn cert_files(dir: &Path, hostname: &str, fingerprint: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{hostname}-{fingerprint}.crt")),
        dir.join(format!("{hostname}-{fingerprint}.key")),
    )
}

/// Writes a file only its owner may read: to a temporary name first, then
/// renamed, so the file is whole whenever it exists.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&partial)
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}

/// The route a site file was written for.
fn read_route(text: &str) -> Option<Route> {
    let first = text.lines().next()?;
    serde_json::from_str(first.strip_prefix("# skypanel ")?).ok()
}

fn main_conf(options: &IngressOptions) -> String {
    let dir = options.dir.display();
    let listen = format!("{}:{}", options.address, options.http_port);
    let listen_tls = format!("{}:{}", options.address, options.https_port);
    let acme = acme_location(options);
    format!(
        r#"# Written by skypanel-agent: the node's ingress. Do not edit; it is rewritten at start.
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server_names_hash_bucket_size 128;
    server_names_hash_max_size 8192;
    client_max_body_size 100m;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:sp_tls:10m;
    ssl_session_timeout 1d;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    server {{
        listen {listen} default_server;
        server_name _;
        default_type text/plain;
{acme}        location / {{
            return 404 "No application answers to this host name.\n";
        }}
    }}
    server {{
        listen {listen_tls} ssl default_server;
        server_name _;
        ssl_reject_handshake on;
    }}
    include {dir}/sites/*.conf;
}}
"#
    )
}

/// The locations answering ACME HTTP-01 challenges, in every HTTP server
/// block: the current answers, and 404 for any other token.
fn acme_location(options: &IngressOptions) -> String {
    format!(
        "    include {}/acme.conf;\n    location ^~ /.well-known/acme-challenge/ {{\n        return 404;\n    }}\n",
        options.dir.display()
    )
}

/// The worker processes of the nginx whose master is `master` that still
/// accept connections: a worker told to quit renames itself "worker process
/// is shutting down" as it closes its listening sockets.
fn accepting_workers(master: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // The parent is the 4th field of stat, after "(comm)".
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            if parent != Some(master) {
                return false;
            }
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let title = String::from_utf8_lossy(&title);
            title.contains("worker process") && !title.contains("shutting down")
        })
        .collect()
}

/// Where each server block answers which version of its route it serves
/// (the agent waits for it after a reload; it never reaches the application).
const ROUTE_PATH: &str = "/.well-known/skypanel-route";

/// What a route's server blocks answer at [`ROUTE_PATH`]: a digest of the route.
fn route_marker(route: &Route) -> String {
    use sha2::Digest;
    let text = serde_json::to_string(route).unwrap_or_default();
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
}

fn route_location(route: &Route) -> String {
    format!(
        "    location = {ROUTE_PATH} {{\n        default_type text/plain;\n        return 200 \"{}\";\n    }}\n",
        route_marker(route)
    )
}

/// One exact location per challenge answer (tokens and answers are base64url
/// and dots: checked before they get here).
fn challenges_conf(answers: &BTreeMap<String, (String, std::time::Instant)>) -> String {
    let mut out = String::from("# ACME HTTP-01 answers, written by skypanel-agent.\n");
    for (token, (answer, _)) in answers {
        out += &format!(
            "location = /.well-known/acme-challenge/{token} {{\n    default_type text/plain;\n    return 200 \"{answer}\";\n}}\n"
        );
    }
    out
}

fn site_conf(options: &IngressOptions, route: &Route) -> String {
    let header = serde_json::to_string(route).unwrap_or_default();
    let listen = format!("{}:{}", options.address, options.http_port);
    let listen_tls = format!("{}:{}", options.address, options.https_port);
    let id = route.app_id;
    let acme = acme_location(options) + &route_location(route);
    let (upstream, answer) = match &route.mode {
        Mode::Serving { ports, .. } if !ports.is_empty() => {
            let servers: String = ports
                .iter()
                .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
                .collect();
            (
                format!("upstream sp_app_{id} {{\n{servers}    keepalive 16;\n}}\n"),
                proxy_location(id),
            )
        }
        Mode::Serving { .. } => (String::new(), unavailable("is not running right now")),
        Mode::Stopped => (String::new(), unavailable("is stopped")),
    };
    let secure: Vec<&str> = route.tls.iter().map(|t| t.hostname.as_str()).collect();
    let plain: Vec<&str> = route
        .hostnames
        .iter()
        .map(String::as_str)
        .filter(|h| !secure.contains(h))
        .collect();
    let mut out = format!("# skypanel {header}\n{upstream}");
    if !plain.is_empty() {
        out += &format!(
            "server {{\n    listen {listen};\n    server_name {};\n{acme}{answer}}}\n",
            plain.join(" ")
        );
    }
    if !secure.is_empty() {
        let port = match options.https_port {
            443 => String::new(),
            port => format!(":{port}"),
        };
        out += &format!(
            "server {{\n    listen {listen};\n    server_name {};\n{acme}    location / {{\n        return 308 https://$host{port}$request_uri;\n    }}\n}}\n",
            secure.join(" ")
        );
    }
    for name in &route.tls {
        let (crt, key) = cert_files(
            &options.dir.join("certs"),
            &name.hostname,
            &name.fingerprint,
        );
        out += &format!(
            "server {{\n    listen {listen_tls} ssl http2;\n    server_name {};\n    ssl_certificate {};\n    ssl_certificate_key {};\n{answer}}}\n",
            name.hostname,
            crt.display(),
            key.display()
        );
    }
    out
}

/// The location proxying to the application's instances.
fn proxy_location(id: i64) -> String {
    format!(
        r#"    location / {{
        proxy_pass http://sp_app_{id};
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_next_upstream error timeout http_502 http_503;
        proxy_connect_timeout 5s;
        proxy_read_timeout 120s;
    }}
"#
    )
}

fn unavailable(why: &str) -> String {
    format!(
        r#"    location / {{
        default_type text/html;
        add_header Retry-After 30 always;
        return 503 "<!doctype html><title>Unavailable</title><h1>503</h1><p>This application {why}.</p>\n";
    }}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> IngressOptions {
        IngressOptions {
            dir: PathBuf::from("/var/lib/skypanel-agent/ingress"),
            nginx: PathBuf::from("nginx"),
            address: "0.0.0.0".into(),
            http_port: 80,
            https_port: 443,
        }
    }

    #[test]
    fn a_site_names_its_hosts_and_balances_over_its_instances() {
        let route = Route {
            app_id: 7,
            hostnames: vec!["shop.apps.example.com".into(), "shop.example.org".into()],
            mode: Mode::Serving {
                release: 3,
                ports: vec![40001, 40002],
            },
            tls: vec![],
        };
        let conf = site_conf(&options(), &route);
        assert!(conf.contains("server_name shop.apps.example.com shop.example.org;"));
        assert!(conf.contains("server 127.0.0.1:40001") && conf.contains("server 127.0.0.1:40002"));
        assert!(conf.contains("listen 0.0.0.0:80;"));
        assert_eq!(read_route(&conf), Some(route));
    }

    #[test]
    fn no_instance_or_stopped_answers_503() {
        let stopped = Route {
            app_id: 7,
            hostnames: vec!["a.example.com".into()],
            mode: Mode::Stopped,
            tls: vec![],
        };
        let conf = site_conf(&options(), &stopped);
        assert!(conf.contains("return 503") && conf.contains("is stopped"));
        let empty = Route {
            mode: Mode::Serving {
                release: 1,
                ports: vec![],
            },
            ..stopped
        };
        let conf = site_conf(&options(), &empty);
        assert!(conf.contains("return 503") && !conf.contains("upstream"));
    }

    #[test]
    fn hostnames_that_could_inject_configuration_are_refused() {
        assert!(safe_hostname("shop.example.com"));
        for bad in ["a;b", "a b", "x}", "*.example.com", "", "A.example.com"] {
            assert!(!safe_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn a_name_with_a_certificate_is_served_over_https_and_redirected_there() {
        let route = Route {
            app_id: 7,
            hostnames: vec!["shop.apps.example.com".into(), "shop.example.org".into()],
            mode: Mode::Serving {
                release: 3,
                ports: vec![40001],
            },
            tls: vec![TlsName {
                hostname: "shop.example.org".into(),
                fingerprint: "00aa".into(),
            }],
        };
        let conf = site_conf(&options(), &route);
        // The name without a certificate is still proxied over HTTP.
        assert!(conf.contains("server_name shop.apps.example.com;"));
        // The one with a certificate: HTTP redirects, HTTPS proxies.
        assert!(conf.contains("return 308 https://$host$request_uri;"));
        assert!(conf.contains("listen 0.0.0.0:443 ssl http2;"));
        assert!(conf.contains(
            "ssl_certificate /var/lib/skypanel-agent/ingress/certs/shop.example.org-00aa.crt;"
        ));
        assert_eq!(conf.matches("proxy_pass http://sp_app_7;").count(), 2);
        // Challenges are answered over HTTP under every name.
        assert_eq!(
            conf.matches("location ^~ /.well-known/acme-challenge/")
                .count(),
            2
        );
        assert_eq!(read_route(&conf), Some(route));
        let main = main_conf(&options());
        assert!(main.contains("ssl_protocols TLSv1.2 TLSv1.3;"));
        assert!(main.contains("ssl_reject_handshake on;"));
        assert!(main.contains("location ^~ /.well-known/acme-challenge/"));
    }

    #[test]
    fn a_redirect_names_a_port_other_than_443() {
        let options = IngressOptions {
            https_port: 8443,
            ..options()
        };
        let route = Route {
            app_id: 1,
            hostnames: vec!["a.example.com".into()],
            mode: Mode::Stopped,
            tls: vec![TlsName {
                hostname: "a.example.com".into(),
                fingerprint: "ff".into(),
            }],
        };
        let conf = site_conf(&options, &route);
        assert!(conf.contains("return 308 https://$host:8443$request_uri;"));
        assert!(conf.contains("return 503"));
    }

    #[test]
    fn challenge_tokens_that_could_leave_the_folder_are_refused() {
        assert!(safe_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        let answers = BTreeMap::from([(
            "tok_1".to_string(),
            ("tok_1.thumb".to_string(), std::time::Instant::now()),
        )]);
        assert!(challenges_conf(&answers).contains(
            "location = /.well-known/acme-challenge/tok_1 {\n    default_type text/plain;\n    return 200 \"tok_1.thumb\";"
        ));
        for bad in ["../x", "a/b", "", "a.b", "a b"] {
            assert!(!safe_token(bad), "{bad}");
        }
    }
}
