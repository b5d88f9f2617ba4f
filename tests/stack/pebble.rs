//! A real ACME server for tests: pebble (Let's Encrypt's test CA) and
//! pebble-challtestsrv as its DNS, on loopback ports of their own. Every
//! name resolves to 127.0.0.1 unless a test says otherwise, and pebble
//! validates HTTP-01 challenges on the port of the agent's ingress.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Pebble {
    dir: PathBuf,
    pebble: Child,
    dns: Child,
    /// The ACME directory URL.
    pub directory: String,
    /// The CA of pebble's own HTTPS (`SKYPANEL_ACME_CA_BUNDLE`).
    pub tls_ca: PathBuf,
    management: u16,
    dns_management: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.pebble.kill();
        let _ = self.dns.kill();
        let _ = self.pebble.wait();
        let _ = self.dns.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pebble {
    /// Starts pebble, validating HTTP-01 challenges on `http_port`.
    pub async fn start(http_port: u16) -> Pebble {
        let dir =
            std::env::temp_dir().join(format!("skypanel-pebble-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        // pebble's own HTTPS certificate, from a CA of this test.
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=skypanel test ACME CA",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "cert.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );

        let (acme, management, dns, dns_management, tls) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("cert.pem"),
            "privateKey": dir.join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| {
            let file = std::fs::File::create(dir.join(name)).unwrap();
            (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
        };
        let (out, err) = log("challtestsrv.log");
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("pebble-challtestsrv (apt-get install pebble)");
        let (out, err) = log("pebble.log");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order validates again (no authorization of an earlier one reused).
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("pebble (apt-get install pebble)");
        let started = Pebble {
            directory: format!("https://127.0.0.1:{acme}/dir"),
            tls_ca: dir.join("ca.pem"),
            dir,
            pebble,
            dns: dns_server,
            management,
            dns_management,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while started
            .curl(&[
                "--cacert",
                &started.tls_ca.display().to_string(),
                &started.directory,
            ])
            .is_none()
        {
            assert!(
                Instant::now() < deadline,
                "pebble did not start: {}",
                started.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        started
    }

    /// Runs curl; answers its output when it succeeded.
    pub fn curl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "5"])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The root that certificates pebble issues chain to, as a file.
    pub fn issuing_root(&self) -> PathBuf {
        let pem = self
            .curl(&[
                "--cacert",
                &self.tls_ca.display().to_string(),
                &format!("https://127.0.0.1:{}/roots/0", self.management),
            ])
            .expect("pebble's root");
        let path = self.dir.join("issuing-root.pem");
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// Makes `host` resolve to `address` (only) for pebble.
    pub fn resolve(&self, host: &str, address: &str) {
        let clear = serde_json::json!({"host": host}).to_string();
        self.curl(&[
            "-X",
            "POST",
            "-d",
            &clear,
            &format!("http://127.0.0.1:{}/clear-a", self.dns_management),
        ])
        .expect("program pebble-challtestsrv");
        let body = serde_json::json!({"host": host, "addresses": [address]}).to_string();
        self.curl(&[
            "-X",
            "POST",
            "-d",
            &body,
            &format!("http://127.0.0.1:{}/add-a", self.dns_management),
        ])
        .expect("program pebble-challtestsrv");
    }

    /// pebble's own log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }
}
