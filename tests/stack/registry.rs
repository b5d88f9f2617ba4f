//! The platform's image registry for a stack: Debian's CNCF distribution
//! registry (`docker-registry`) on a loopback port of its own, its storage in
//! a folder of its own, with token auth whose tokens the stack's control
//! plane signs (a key and certificate made with openssl for this stack).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry; stopped and its storage removed on drop.
pub struct Registry {
    child: std::sync::Mutex<Option<Child>>,
    pub port: u16,
    pub dir: PathBuf,
    pub key: PathBuf,
    pub cert: PathBuf,
    config: PathBuf,
}

impl Registry {
    /// Makes the token key and certificate and the configuration; the
    /// registry starts with [`Registry::start`] once the control plane's
    /// port (its token realm) is known.
    pub fn prepare(dir: &Path, port: u16, control_plane: &str) -> Registry {
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=skypanel-registry-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(
            made.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
                 \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: {secret}\n\
                 auth:\n  token:\n    realm: {control_plane}/api/registry/token\n\
                 \x20   service: skypanel-registry\n    issuer: skypanel\n    rootcertbundle: {cert}\n",
                storage = dir.join("storage").display(),
                secret = uuid::Uuid::new_v4().simple(),
                cert = cert.display(),
            ),
        )
        .unwrap();
        Registry {
            child: std::sync::Mutex::new(None),
            port,
            dir: dir.to_path_buf(),
            key,
            cert,
            config,
        }
    }

    /// Starts the registry and waits until it answers.
    pub fn start(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("registry.log"))
            .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("docker-registry is needed: apt-get install docker-registry");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `host:port`, as the control plane's `SKYPANEL_REGISTRY_URL`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bytes the registry stores.
    pub fn stored_bytes(&self) -> u64 {
        fn walk(path: &Path) -> u64 {
            std::fs::read_dir(path)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| match e.metadata() {
                            Ok(m) if m.is_dir() => walk(&e.path()),
                            Ok(m) => m.len(),
                            Err(_) => 0,
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(&self.dir.join("storage"))
    }

    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
