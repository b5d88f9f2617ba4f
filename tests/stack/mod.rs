//! A whole platform for end-to-end tests: a real `skypanel serve` process on
//! its own database, real `skypanel-agent` processes driving the real Docker
//! Engine, and test images made locally from busybox (no registry here).
//! Each stack's agents work in a namespace of their own, removed at the end.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skypanel_store::testing::TestDb;

pub mod browser;
pub mod databases;
pub mod engines;
pub mod github;
pub mod pebble;
pub mod proxy;
pub mod registry;
pub mod services;
pub mod settle;

pub const PASSWORD: &str = "correct horse battery";
/// System domains of test applications are `<slug>.apps.test`.
pub const PLATFORM_DOMAIN: &str = "apps.test";

/// Images the tests deploy: busybox's httpd serving "hello from skypanel" on $PORT.
pub const WEB_IMAGE: &str = "skypanel-test/web:3";
/// Waits 4 s before it listens (a task that is still running when we kill the agent).
pub const SLOW_IMAGE: &str = "skypanel-test/slow:2";
/// Listens, then exits with code 3 after 2 s, every time.
pub const CRASHER_IMAGE: &str = "skypanel-test/crasher:2";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI")
}

/// Runs the docker CLI; answers whether it succeeded and what it printed
/// (standard output, then standard error), trimmed.
pub fn docker_text(args: &[&str]) -> (bool, String) {
    let out = docker(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

/// Builds the test images from busybox unless they exist.
pub fn ensure_images() {
    let images = [
        (WEB_IMAGE, "exec httpd -f -p ${PORT:-8080} -h /www"),
        (
            SLOW_IMAGE,
            "sleep 4; exec httpd -f -p ${PORT:-8080} -h /www",
        ),
        (
            CRASHER_IMAGE,
            "httpd -f -p ${PORT:-8080} -h /www & sleep 2; exit 3",
        ),
    ];
    for (tag, script) in images {
        if docker(&["image", "inspect", tag]).status.success() {
            continue;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("busybox is needed to build test images: apt-get install busybox-static");
        let root =
            std::env::temp_dir().join(format!("skypanel-image-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "httpd", "sleep", "cat", "echo", "ls", "env", "wget", "nc", "printf", "hostname",
            "true", "false", "mkdir", "cp", "rm", "stty", "tty", "head", "wc",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.join("www/index.html"), "hello from skypanel\n").unwrap();
        let cmd = format!("CMD [\"/bin/sh\",\"-c\",\"{script}\"]");
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C {} -c . | docker import --change '{cmd}' - {tag}",
                root.display()
            ))
            .status()
            .unwrap();
        std::fs::remove_dir_all(&root).ok();
        assert!(status.success(), "cannot build test image {tag}");
    }
}

/// A TCP port of this machine that nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn binary(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_skypanel")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace (cargo build --workspace)",
        path.display()
    );
    path
}

/// A running agent process, with the nginx ingress it runs.
pub struct AgentProcess {
    child: Child,
    pub state_dir: PathBuf,
    /// The port its ingress answers HTTP on (127.0.0.1).
    pub ingress_port: u16,
    /// The port its ingress answers HTTPS on (127.0.0.1).
    pub https_port: u16,
}

impl AgentProcess {
    /// The process id (to read what `ps` shows of it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it exits within `seconds` (and how).
    pub fn exits_within(&mut self, seconds: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// SIGKILL: no chance to finish anything. Its nginx keeps running, as
    /// on a real node.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
        stop_nginx(&self.state_dir.join("ingress"));
    }
}

/// Stops the nginx an agent left running in `ingress_dir`.
fn stop_nginx(ingress_dir: &std::path::Path) {
    if let Ok(pid) = std::fs::read_to_string(ingress_dir.join("nginx.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
}

pub struct Stack {
    pub db: TestDb,
    control_plane: Option<Child>,
    /// More control-plane replicas on the same database and Redis: (address, process).
    replicas: Vec<(String, Option<Child>)>,
    /// The control plane's whole environment, to start it again the same way.
    control_plane_env: Vec<(String, String)>,
    /// Where the processes of this stack write their logs.
    pub logs: PathBuf,
    log_level: &'static str,
    pub base: String,
    /// The namespace of this stack's agents (labels and names of what they make).
    pub namespace: String,
    /// Every namespace handed to an agent of this stack (cleaned up at the end).
    namespaces: std::sync::Mutex<Vec<String>>,
    pub http: reqwest::Client,
    pub admin: String,
    /// The platform's image registry (unless the test runs without one).
    pub registry: Option<registry::Registry>,
}

/// Timing knobs of a stack, in seconds, and how much its processes log.
pub struct Timing {
    pub heartbeat: u64,
    pub offline_after: u64,
    pub lease_ttl: u64,
    /// `RUST_LOG` of the control plane and the agents.
    pub log_level: &'static str,
    /// Seconds a wallet may stay below zero before suspension.
    pub billing_grace: u64,
    /// More environment of the control plane.
    pub env: Vec<(&'static str, String)>,
    /// A PostgreSQL server of the test's own (a URL of a role that may
    /// create databases) instead of the shared one.
    pub database_server: Option<String>,
    /// A Redis of the test's own instead of the shared one.
    pub redis_url: Option<String>,
    /// Run the platform's image registry (release images are pushed there
    /// and pulled by the nodes that lack them).
    pub registry: bool,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat: 1,
            offline_after: 30,
            lease_ttl: 10,
            log_level: "info",
            billing_grace: 24 * 3600,
            env: Vec::new(),
            database_server: None,
            redis_url: None,
            registry: true,
        }
    }
}

/// A file for a process's stdout and stderr.
fn log_file(path: &std::path::Path) -> (Stdio, Stdio) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
}

impl Stack {
    pub async fn start(timing: Timing) -> Stack {
        ensure_images();
        let db = match &timing.database_server {
            Some(server) => TestDb::on_server(server).await,
            None => TestDb::new().await,
        };
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let redis = match &timing.redis_url {
            Some(url) => url.clone(),
            None => std::env::var("SKYPANEL_TEST_REDIS_URL")
                .expect("SKYPANEL_TEST_REDIS_URL: run the tests through ./ops/test"),
        };
        let logs =
            std::env::temp_dir().join(format!("skypanel-logs-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&logs).unwrap();
        let mut env: Vec<(String, String)> = [
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("RUST_LOG", timing.log_level.to_string()),
            ("SKYPANEL_DATABASE_URL", db.url.clone()),
            ("SKYPANEL_REDIS_URL", redis),
            ("SKYPANEL_SECRET_KEY", "cd".repeat(32)),
            (
                "SKYPANEL_JWT_SECRET",
                "a-jwt-secret-of-at-least-32-chars!".to_string(),
            ),
            ("SKYPANEL_LISTEN", format!("127.0.0.1:{port}")),
            ("SKYPANEL_HEARTBEAT_INTERVAL", timing.heartbeat.to_string()),
            (
                "SKYPANEL_NODE_OFFLINE_AFTER",
                timing.offline_after.to_string(),
            ),
            ("SKYPANEL_LEASE_TTL", timing.lease_ttl.to_string()),
            ("SKYPANEL_ALLOW_FILE_GIT", "true".to_string()),
            ("SKYPANEL_ALLOW_PLAIN_HTTP_GIT", "true".to_string()),
            ("SKYPANEL_QUEUE_PREFIX", db_queue_prefix(&db)),
            ("SKYPANEL_PLATFORM_DOMAIN", PLATFORM_DOMAIN.to_string()),
            ("SKYPANEL_BILLING_GRACE", timing.billing_grace.to_string()),
            ("SKYPANEL_GIT_ROOT", logs.join("git").display().to_string()),
            (
                "SKYPANEL_TRANSFER_ROOT",
                logs.join("transfers").display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let registry = timing.registry.then(|| {
            let registry = registry::Registry::prepare(&logs.join("registry"), free_port(), &base);
            registry.start();
            env.extend([
                ("SKYPANEL_REGISTRY_URL".to_string(), registry.address()),
                (
                    "SKYPANEL_REGISTRY_TOKEN_KEY".to_string(),
                    registry.key.display().to_string(),
                ),
                (
                    "SKYPANEL_REGISTRY_TOKEN_CERT".to_string(),
                    registry.cert.display().to_string(),
                ),
            ]);
            registry
        });
        env.extend(timing.env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let http = reqwest::Client::new();
        let namespace = format!("t{}-", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut stack = Stack {
            db,
            control_plane: None,
            replicas: Vec::new(),
            control_plane_env: env,
            logs,
            log_level: timing.log_level,
            base,
            namespaces: std::sync::Mutex::new(vec![namespace.clone()]),
            namespace,
            http,
            admin: String::new(),
            registry,
        };
        stack.start_control_plane().await;
        let created = Command::new(binary("skypanel"))
            .args(["admin", "create", "--email", "admin@example.com"])
            .env("SKYPANEL_DATABASE_URL", &stack.db.url)
            .env("SKYPANEL_ADMIN_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(created.status.success());
        stack.admin = stack.login("admin@example.com").await;
        stack
    }

    /// Starts the control plane process (again, after [`Stack::kill_control_plane`])
    /// and waits until it answers.
    pub async fn start_control_plane(&mut self) {
        assert!(
            self.control_plane.is_none(),
            "the control plane runs already"
        );
        let (stdout, stderr) = log_file(&self.logs.join("control-plane.log"));
        let child = Command::new(binary("skypanel"))
            .arg("serve")
            .env_clear()
            .envs(self.control_plane_env.iter().map(|(k, v)| (k, v)))
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.control_plane = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .http
            .get(format!("{}/api/health", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "the control plane did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts one more control-plane replica (same database, Redis and
    /// secrets, its own port) and waits until it answers; answers its index
    /// for [`Stack::replica_base`] and [`Stack::kill_replica`]. The first
    /// replica is the stack's own control plane at `base`.
    pub async fn start_replica(&mut self) -> usize {
        self.start_replica_with(&[]).await
    }

    /// [`Stack::start_replica`] with more (or other) environment.
    pub async fn start_replica_with(&mut self, env: &[(&str, String)]) -> usize {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let index = self.replicas.len() + 1;
        let (stdout, stderr) = log_file(&self.logs.join(format!("replica-{index}.log")));
        let child = Command::new(binary("skypanel"))
            .arg("serve")
            .env_clear()
            .envs(self.control_plane_env.iter().map(|(k, v)| (k, v)))
            .env("SKYPANEL_LISTEN", format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.replicas.push((base.clone(), Some(child)));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .http
            .get(format!("{base}/api/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "replica {index} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        index
    }

    /// Where replica `index` answers (0: the stack's own control plane).
    pub fn replica_base(&self, index: usize) -> String {
        match index {
            0 => self.base.clone(),
            i => self.replicas[i - 1].0.clone(),
        }
    }

    /// SIGKILL of replica `index` (0: the stack's own control plane).
    pub fn kill_replica(&mut self, index: usize) {
        if index == 0 {
            return self.kill_control_plane();
        }
        if let Some(mut child) = self.replicas[index - 1].1.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sets (or with `None` removes) a variable of the control plane's
    /// environment for its next start.
    pub fn set_control_plane_env(&mut self, key: &str, value: Option<&str>) {
        self.control_plane_env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.control_plane_env
                .push((key.to_string(), value.to_string()));
        }
    }

    /// SIGKILL of the control plane: no chance to finish anything.
    pub fn kill_control_plane(&mut self) {
        if let Some(mut child) = self.control_plane.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Calls the API; answers (status, JSON body or Null).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, 200, "GET {path}: {body:#}");
        body
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn login(&self, email: &str) -> String {
        let answer = self
            .http
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        answer.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn customer(&self, email: &str) -> String {
        self.http
            .post(format!("{}/api/auth/register", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        self.login(email).await
    }

    pub async fn plan(&self) -> i64 {
        let body = json!({"name": "small", "cpu_limit": 250, "memory_limit": 64, "storage_limit": 100,
                          "monthly_price": "5.00", "hourly_rate": "0.0070"});
        let (status, plan) = self.post("/api/admin/paas/plans", &self.admin, body).await;
        assert_eq!(status, 201, "{plan:#}");
        plan["id"].as_i64().unwrap()
    }

    /// Registers a node in region `local` whose agent never starts (the
    /// region exists; no node of it is online). Answers its id.
    pub async fn pending_node(&self, name: &str) -> i64 {
        let body = json!({"name": name, "region": "local", "host_address": "127.0.0.1"});
        let (status, node) = self
            .post("/api/admin/paas/nodes/register", &self.admin, body)
            .await;
        assert_eq!(status, 201, "{node:#}");
        node["node_id"].as_i64().unwrap()
    }

    /// Registers a node and starts its agent; answers (node id, agent).
    pub async fn node(&self, name: &str) -> (i64, AgentProcess) {
        self.node_in(name, agent_dir()).await
    }

    /// Registers a node and starts its agent in `state_dir` (where a test
    /// may have chosen its ingress port: [`write_ingress_port`]).
    pub async fn node_in(&self, name: &str, state_dir: PathBuf) -> (i64, AgentProcess) {
        self.node_at(name, state_dir, &self.base, &self.namespace)
            .await
    }

    /// Registers a node whose agent reaches the control plane at
    /// `control_plane` and works in `namespace` (see [`Stack::agent_at`]).
    pub async fn node_at(
        &self,
        name: &str,
        state_dir: PathBuf,
        control_plane: &str,
        namespace: &str,
    ) -> (i64, AgentProcess) {
        self.node_with(name, state_dir, control_plane, namespace, &[])
            .await
    }

    /// [`Stack::node_at`] with more environment for its agent.
    pub async fn node_with(
        &self,
        name: &str,
        state_dir: PathBuf,
        control_plane: &str,
        namespace: &str,
        env: &[(&str, String)],
    ) -> (i64, AgentProcess) {
        let body = json!({"name": name, "region": "local", "host_address": "127.0.0.1"});
        let (status, registered) = self
            .post("/api/admin/paas/nodes/register", &self.admin, body)
            .await;
        assert_eq!(status, 201, "{registered:#}");
        let mut command = self.agent_command(control_plane, namespace, &state_dir);
        // Never on the command line: `ps` shows that to every user.
        command.env(
            "SKYPANEL_AGENT_TOKEN",
            registered["registration_token"].as_str().unwrap(),
        );
        for (key, value) in env {
            command.env(key, value);
        }
        let agent = self.spawn_agent(command, state_dir);
        let id = registered["node_id"].as_i64().unwrap();
        self.until_node(20, id, "online").await;
        (id, agent)
    }

    /// Waits up to `seconds` for node `id` to have `status` (as admins see it).
    pub async fn until_node(&self, seconds: u64, id: i64, status: &str) {
        self.until(seconds, &format!("node {id} is {status}"), || async {
            let nodes = self.get("/api/admin/paas/nodes", &self.admin).await;
            nodes
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["id"] == id && n["status"] == status)
        })
        .await;
    }

    /// Starts an agent process (with a token on its first start); its
    /// ingress keeps the port of an earlier run from the same state folder.
    pub fn agent(&self, token: Option<&str>, state_dir: PathBuf) -> AgentProcess {
        self.agent_at(&self.base, &self.namespace, token, state_dir)
    }

    /// What one agent process has logged so far.
    pub fn agent_log(&self, agent: &AgentProcess) -> String {
        let name = agent.state_dir.file_name().unwrap().to_string_lossy();
        std::fs::read_to_string(self.logs.join(format!("agent-{name}.log"))).unwrap_or_default()
    }

    /// Starts an agent that reaches the control plane at `control_plane` (a
    /// proxy of a fault test) and names what it makes in `namespace` (an agent
    /// of a namespace of its own sees only its own containers, as on a node of its own).
    pub fn agent_at(
        &self,
        control_plane: &str,
        namespace: &str,
        token: Option<&str>,
        state_dir: PathBuf,
    ) -> AgentProcess {
        let mut command = self.agent_command(control_plane, namespace, &state_dir);
        if let Some(token) = token {
            // Never on the command line: `ps` shows that to every user.
            command.env("SKYPANEL_AGENT_TOKEN", token);
        }
        self.spawn_agent(command, state_dir)
    }

    /// Starts `command` (from [`Stack::agent_command`]) as the agent of `state_dir`.
    pub fn spawn_agent(&self, mut command: Command, state_dir: PathBuf) -> AgentProcess {
        AgentProcess {
            child: command.spawn().unwrap(),
            ingress_port: kept_port(&state_dir, "test-ingress-port"),
            https_port: kept_port(&state_dir, "test-ingress-https-port"),
            state_dir,
        }
    }

    /// The agent's command with the test's flags, logging to the stack's logs.
    pub fn agent_command(
        &self,
        control_plane: &str,
        namespace: &str,
        state_dir: &std::path::Path,
    ) -> Command {
        {
            let mut known = self.namespaces.lock().unwrap();
            if !known.iter().any(|n| n == namespace) {
                known.push(namespace.to_string());
            }
        }
        let ingress_port = kept_port(state_dir, "test-ingress-port");
        let https_port = kept_port(state_dir, "test-ingress-https-port");
        let (stdout, stderr) = log_file(&self.logs.join(format!(
            "agent-{}.log",
            state_dir.file_name().unwrap().to_string_lossy()
        )));
        let mut command = Command::new(binary("skypanel-agent"));
        command
            .env("RUST_LOG", self.log_level)
            .args(["--control-plane", control_plane])
            .arg("--state-dir")
            .arg(state_dir)
            .args([
                "--heartbeat-interval",
                "1",
                "--db-health-interval",
                "2",
                "--lease-wait",
                "5",
                "--health-timeout",
                "10",
                "--drain-seconds",
                "1",
                "--ingress-address",
                "127.0.0.1",
                "--ingress-http-port",
                &ingress_port.to_string(),
                "--ingress-https-port",
                &https_port.to_string(),
            ])
            .args(["--namespace", namespace])
            .stdout(stdout)
            .stderr(stderr);
        command
    }

    /// Polls `check` every 100 ms until it holds, for up to `seconds`.
    pub async fn until<F, Fut>(&self, seconds: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out after {seconds} s waiting for: {what}");
    }

    /// Waits until build `build` of `app` has written `text` in its log (a
    /// step that prints it runs: the checkout is done).
    pub async fn until_build_log(&self, token: &str, app: i64, build: i64, text: &str) {
        let path = format!("/api/paas/applications/{app}/builds/{build}/logs");
        self.until(60, &format!("build {build} logs {text:?}"), || async {
            self.get(&path, token).await["log"]
                .as_str()
                .is_some_and(|log| log.contains(text))
        })
        .await;
    }

    /// Waits until the application has `status`; answers it.
    pub async fn app_in(&self, token: &str, app: i64, status: &str) -> Value {
        let path = format!("/api/paas/applications/{app}");
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let now = self.get(&path, token).await;
            if now["status"] == status {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "application {app} never became {status}; it is {now:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The containers of this stack's agents for an application, as Docker
    /// has them: "name state" (every namespace of the stack).
    pub fn containers(&self, app: i64) -> Vec<String> {
        let namespaces = self.namespaces.lock().unwrap().clone();
        namespaces
            .iter()
            .flat_map(|namespace| self.containers_in(namespace, app))
            .collect()
    }

    /// How many of the application's containers run.
    pub fn running(&self, app: i64) -> usize {
        self.containers(app)
            .iter()
            .filter(|c| c.ends_with(" running"))
            .count()
    }

    /// The containers of an application made by the agents of one namespace.
    pub fn containers_in(&self, namespace: &str, app: i64) -> Vec<String> {
        let filter_ns = format!("label=skypanel.managed={namespace}");
        let filter_app = format!("label=skypanel.app={app}");
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &filter_ns,
            "--filter",
            &filter_app,
            "--format",
            "{{.Names}} {{.State}}",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Creates an application deployed from the git repository at `url`
    /// (branch main); answers its id.
    pub async fn git_app(&self, token: &str, name: &str, plan: i64, url: &str) -> i64 {
        let body = json!({"name": name, "plan_id": plan, "region": "local",
                          "git_repo_url": url, "git_branch": "main"});
        let (status, app) = self.post("/api/paas/applications", token, body).await;
        assert_eq!(status, 201, "{app:#}");
        app["id"].as_i64().unwrap()
    }

    /// Starts a deploy from git; answers its build's id. A deploy that waits
    /// for a rollout in flight (a configuration change's) is followed until
    /// its build starts.
    pub async fn start_deploy(&self, token: &str, app: i64) -> i64 {
        let builds = format!("/api/paas/applications/{app}/builds?limit=1");
        let newest = |list: Value| list[0]["id"].as_i64().unwrap_or(0);
        let before = newest(self.get(&builds, token).await);
        let (status, answer) = self
            .post(
                &format!("/api/paas/applications/{app}/deploy"),
                token,
                json!({}),
            )
            .await;
        assert_eq!(status, 202, "{answer:#}");
        if let Some(build) = answer["build"]["id"].as_i64() {
            return build;
        }
        assert!(
            answer["waiting"].is_object(),
            "a build, or a wait: {answer:#}"
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = newest(self.get(&builds, token).await);
            if now > before {
                return now;
            }
            assert!(Instant::now() < deadline, "the waiting deploy never built");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to two minutes) until the build ends; answers it.
    pub async fn build_ends(&self, token: &str, app: i64, build: i64) -> Value {
        let path = format!("/api/paas/applications/{app}/builds/{build}");
        self.until(120, "the build ends", || async {
            let (status, b) = self.call(reqwest::Method::GET, &path, token, None).await;
            status == 200 && !matches!(b["status"].as_str(), Some("pending" | "building"))
        })
        .await;
        self.get(&path, token).await
    }

    /// Runs one SQL statement on the control plane's database (what the
    /// API cannot do: the passing of time, a name that now resolves elsewhere).
    pub async fn sql(&self, statement: &str) {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        let mut conn = diesel_async::AsyncPgConnection::establish(&self.db.url)
            .await
            .unwrap();
        diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .unwrap();
    }

    /// Backdates every usage interval by two hours and bills the past hour
    /// (the clock is real); answers the billing run. A wallet with no credit
    /// goes below zero.
    pub async fn bill_past_hour(&self) -> Value {
        self.sql("UPDATE paas_usage SET started_at = started_at - interval '2 hours'")
            .await;
        let hour = (chrono::Utc::now() - chrono::Duration::hours(1))
            .format("%Y-%m-%dT%H:00:00Z")
            .to_string();
        let (status, run) = self
            .post(
                "/api/admin/paas/billing/run",
                &self.admin,
                json!({"period_start": hour}),
            )
            .await;
        assert_eq!(status, 200, "{run:#}");
        run
    }

    /// `docker inspect` of a container, as JSON.
    pub fn inspect(&self, name: &str) -> Value {
        let out = docker(&["inspect", name]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
    }
}

impl Stack {
    /// The local names (tags and digests) of images of a registry on `port`.
    fn registry_images(&self, port: u16) -> Vec<String> {
        let prefix = format!("127.0.0.1:{port}/");
        let out = docker(&[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}}",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .flat_map(|l| {
                let parts: Vec<&str> = l.split_whitespace().collect();
                let mut names = Vec::new();
                if let [repository, tag, digest] = parts[..] {
                    if tag != "<none>" {
                        names.push(format!("{repository}:{tag}"));
                    }
                    if digest != "<none>" {
                        names.push(format!("{repository}@{digest}"));
                    }
                }
                names
            })
            .collect()
    }

    /// Everything this stack's processes wrote so far (the control plane's
    /// and the agents' logs).
    pub fn process_logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(&self.logs).unwrap().flatten() {
            all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        all
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.kill_control_plane();
        for index in 1..=self.replicas.len() {
            self.kill_replica(index);
        }
        // SKYPANEL_TEST_KEEP_LOGS=1 keeps them after a passing test too.
        if !std::thread::panicking() && std::env::var_os("SKYPANEL_TEST_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.logs);
        } else {
            eprintln!(
                "the stack's process logs are kept in {}",
                self.logs.display()
            );
        }
        let namespaces = self.namespaces.lock().unwrap().clone();
        for namespace in namespaces {
            let filter = format!("label=skypanel.managed={namespace}");
            let ids = docker(&["ps", "-aq", "--filter", &filter]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                docker(&["rm", "-f", id]);
            }
            let networks = docker(&["network", "ls", "-q", "--filter", &filter]);
            for id in String::from_utf8_lossy(&networks.stdout).split_whitespace() {
                docker(&["network", "rm", id]);
            }
            let built = format!("reference={namespace}skypanel/*");
            let images = docker(&["images", "-q", "--filter", &built]);
            for id in String::from_utf8_lossy(&images.stdout).split_whitespace() {
                docker(&["rmi", "-f", id]);
            }
        }
        // What the nodes pulled from (or pushed to) this stack's registry.
        if let Some(registry) = &self.registry {
            for reference in self.registry_images(registry.port) {
                docker(&["rmi", "-f", &reference]);
            }
        }
    }
}

/// A fresh state folder for an agent.
pub fn agent_dir() -> PathBuf {
    std::env::temp_dir().join(format!("skypanel-agent-{}", uuid::Uuid::new_v4().simple()))
}

/// Chooses the HTTP port of the ingress of the agent that will run in
/// `state_dir` (before it starts: an ACME server must know it).
pub fn write_ingress_port(state_dir: &std::path::Path) -> u16 {
    kept_port(state_dir, "test-ingress-port")
}

/// The port kept in `state_dir/file`, or a free one, written there.
fn kept_port(state_dir: &std::path::Path, file: &str) -> u16 {
    let file = state_dir.join(file);
    let port = std::fs::read_to_string(&file)
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(free_port);
    std::fs::create_dir_all(state_dir).unwrap();
    std::fs::write(&file, port.to_string()).unwrap();
    port
}

/// Stacks share one Redis: each names its queues after its own database.
fn db_queue_prefix(db: &TestDb) -> String {
    let name = db.url.rsplit('/').next().unwrap_or("test");
    format!("test-{name}")
}

/// GETs `path` from an ingress on 127.0.0.1 with a Host header; answers
/// (status, body), or `None` when the request itself failed.
/// Waits (up to 40 s) until the ingress on `port` answers `host` `path`
/// with `body` (trimmed).
pub async fn serves(port: u16, host: &str, path: &str, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = None;
    while Instant::now() < deadline {
        last = through_ingress(port, host, path).await;
        if matches!(&last, Some((200, text)) if text.trim() == body) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{host}{path} never answered {body:?}; last answer {last:?}");
}

pub async fn through_ingress(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let answer = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host)
        .send()
        .await
        .ok()?;
    let status = answer.status().as_u16();
    Some((status, answer.text().await.ok()?))
}

/// A git repository on disk for a test, served as a `file://` URL.
pub struct Repo {
    pub dir: PathBuf,
}

impl Repo {
    /// A repository whose branch `main` holds `files` in one commit.
    pub fn new(files: &[(&str, &str)]) -> Repo {
        let dir =
            std::env::temp_dir().join(format!("skypanel-repo-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let repo = Repo { dir };
        repo.git(&["init", "--quiet", "--initial-branch", "main"]);
        repo.commit(files, "first");
        repo
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Writes `files` and commits them; answers the commit's sha.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, text) in files {
            let path = self.dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            if path.to_string_lossy().contains("cgi-bin") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GETs `http://127.0.0.1:port/` and answers the body.
pub async fn fetch(port: i64) -> Option<String> {
    let answer = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .ok()?;
    answer.status().is_success().then_some(())?;
    answer.text().await.ok()
}
