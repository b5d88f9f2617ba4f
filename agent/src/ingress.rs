//! The node's ingress: an nginx of the agent's own (its own folder, pid file
//! and ports) with one server block per application. Every change is written,
//! checked with `nginx -t`, and only then reloaded; a file that fails the check
//! is replaced by the one before. nginx runs as a daemon of its own, so
//! applications stay reachable while the agent restarts.
//!
//! Each site file starts with a comment holding its [`Route`] as JSON, so a
//! restarted agent knows what it routed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
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
}

/// What an application's server block says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub app_id: i64,
    pub hostnames: Vec<String>,
    pub mode: Mode,
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

impl Ingress {
    pub fn new(options: IngressOptions) -> Self {
        Self {
            options,
            routes: Arc::default(),
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
        hostnames: &[String],
        release: i32,
        mut ports: Vec<u16>,
    ) -> Result<(), String> {
        ports.sort_unstable();
        self.apply(Route {
            app_id,
            hostnames: hostnames.to_vec(),
            mode: Mode::Serving { release, ports },
        })
        .await
    }

    /// Answers 503 for a stopped application's hostnames.
    pub async fn stopped(&self, app_id: i64, hostnames: &[String]) -> Result<(), String> {
        self.apply(Route {
            app_id,
            hostnames: hostnames.to_vec(),
            mode: Mode::Stopped,
        })
        .await
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
        self.reload_or_start().await
    }

    async fn apply(&self, route: Route) -> Result<(), String> {
        if let Some(bad) = route.hostnames.iter().find(|h| !safe_hostname(h)) {
            return Err(format!("refusing to route the hostname {bad:?}"));
        }
        let mut routes = self.routes.lock().await;
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
        routes.insert(route.app_id, route);
        self.reload_or_start().await
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
    async fn reload_or_start(&self) -> Result<(), String> {
        let out = if self.running_pid().is_some() {
            self.nginx().args(["-s", "reload"]).output().await
        } else {
            self.nginx().output().await
        }
        .map_err(|e| format!("cannot run {}: {e}", self.options.nginx.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "nginx: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Stops nginx (for tests and `--ingress-stop-on-exit`); applications
    /// become unreachable.
    pub async fn stop(&self) {
        if self.running_pid().is_some() {
            let _ = self.nginx().args(["-s", "quit"]).output().await;
        }
    }
}

/// The route a site file was written for.
fn read_route(text: &str) -> Option<Route> {
    let first = text.lines().next()?;
    serde_json::from_str(first.strip_prefix("# skypanel ")?).ok()
}

fn main_conf(options: &IngressOptions) -> String {
    let dir = options.dir.display();
    let listen = format!("{}:{}", options.address, options.http_port);
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
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    server {{
        listen {listen} default_server;
        server_name _;
        default_type text/plain;
        return 404 "No application answers to this host name.\n";
    }}
    include {dir}/sites/*.conf;
}}
"#
    )
}

fn site_conf(options: &IngressOptions, route: &Route) -> String {
    let header = serde_json::to_string(route).unwrap_or_default();
    let listen = format!("{}:{}", options.address, options.http_port);
    let names = route.hostnames.join(" ");
    let id = route.app_id;
    let body = match &route.mode {
        Mode::Serving { ports, .. } if !ports.is_empty() => {
            let servers: String = ports
                .iter()
                .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
                .collect();
            format!(
                r#"upstream sp_app_{id} {{
{servers}    keepalive 16;
}}
server {{
    listen {listen};
    server_name {names};
    location / {{
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
}}
"#
            )
        }
        Mode::Serving { .. } => unavailable(&listen, &names, "is not running right now"),
        Mode::Stopped => unavailable(&listen, &names, "is stopped"),
    };
    format!("# skypanel {header}\n{body}")
}

fn unavailable(listen: &str, names: &str, why: &str) -> String {
    format!(
        r#"server {{
    listen {listen};
    server_name {names};
    location / {{
        default_type text/html;
        add_header Retry-After 30 always;
        return 503 "<!doctype html><title>Unavailable</title><h1>503</h1><p>This application {why}.</p>\n";
    }}
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
}
