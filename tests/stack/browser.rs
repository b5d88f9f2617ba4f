//! Headless Chromium driven over the DevTools protocol, for tests of the
//! console and the inspector: open a URL, run JavaScript in the page, wait
//! for what it shows, size the viewport, take a screenshot. Each browser has
//! its own profile folder, removed at the end.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Browser {
    child: Child,
    profile: PathBuf,
    socket: Socket,
    next_id: u64,
    /// Network events seen since [`Browser::count_requests`] began.
    network: Vec<Value>,
}

impl Browser {
    /// Starts Chromium and attaches to its first page.
    pub async fn start() -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "skypanel-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium (apt-get install chromium)");
        // Chromium writes the port it chose into the profile.
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Some(port) = std::fs::read_to_string(profile.join("DevToolsActivePort"))
                .ok()
                .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                break port;
            }
            assert!(Instant::now() < deadline, "chromium did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let targets: Value = loop {
            if let Ok(answer) = reqwest::get(format!("http://127.0.0.1:{port}/json/list")).await
                && let Ok(list) = answer.json::<Value>().await
                && list
                    .as_array()
                    .is_some_and(|l| l.iter().any(|t| t["type"] == "page"))
            {
                break list;
            }
            assert!(Instant::now() < deadline, "chromium has no page");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap()
            .to_string();
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("attach to chromium's page");
        Browser {
            child,
            profile,
            socket,
            next_id: 0,
            network: Vec::new(),
        }
    }

    /// Sends a DevTools command and answers its result.
    async fn command(&mut self, method: &str, params: Value) -> Value {
        match self.try_command(method, params).await {
            Ok(result) => result,
            Err(answer) => panic!("{method}: {answer}"),
        }
    }

    /// Sends a DevTools command: its result, or the whole answer when it
    /// is an error (e.g. the page navigated while it ran).
    async fn try_command(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::text(message)).await.unwrap();
        loop {
            let Some(Ok(message)) = self.socket.next().await else {
                panic!("chromium closed the connection");
            };
            let Ok(text) = message.into_text() else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["method"]
                .as_str()
                .is_some_and(|m| m.starts_with("Network."))
            {
                self.network.push(answer);
                continue;
            }
            if answer["id"] == id {
                if !answer["error"].is_null() {
                    return Err(answer);
                }
                return Ok(answer["result"].clone());
            }
        }
    }

    /// Opens `url` in the page.
    pub async fn open(&mut self, url: &str) {
        self.command("Page.navigate", json!({ "url": url })).await;
    }

    /// Runs `expression` in the page (awaiting a promise) and answers its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .command(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Sizes the page's viewport as a device of `width` × `height` CSS pixels.
    pub async fn viewport(&mut self, width: u32, height: u32) {
        self.command(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .await;
    }

    /// Starts counting the requests the page sends (see [`Browser::requests`]).
    pub async fn count_requests(&mut self) {
        self.command("Network.enable", json!({})).await;
        self.network.clear();
    }

    /// The URLs the page asked the network for since counting began (what a
    /// cache answered is left out).
    pub fn requests(&self) -> Vec<String> {
        let cached: Vec<&Value> = self
            .network
            .iter()
            .filter(|e| {
                e["method"] == "Network.requestServedFromCache"
                    || (e["method"] == "Network.responseReceived"
                        && (e["params"]["response"]["fromDiskCache"] == true
                            || e["params"]["response"]["fromPrefetchCache"] == true))
            })
            .map(|e| &e["params"]["requestId"])
            .collect();
        self.network
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter(|e| !cached.contains(&&e["params"]["requestId"]))
            .map(|e| {
                e["params"]["request"]["url"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    /// Bytes the page's JavaScript heap uses now.
    pub async fn heap_used(&mut self) -> f64 {
        self.command("Runtime.getHeapUsage", json!({})).await["usedSize"]
            .as_f64()
            .unwrap()
    }

    /// Saves a PNG of what the viewport shows to `path`.
    pub async fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine as _;
        let shot = self
            .command("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Sets form fields, given as (CSS selector, value), as typing would
    /// (with `input` and `change` events).
    pub async fn fill(&mut self, fields: &[(&str, &str)]) {
        for (selector, value) in fields {
            self.eval(&format!(
                "(() => {{ const el = document.querySelector({sel}); el.value = {value};
                   el.dispatchEvent(new Event('input', {{bubbles: true}}));
                   el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
                sel = Value::from(*selector),
                value = Value::from(*value)
            ))
            .await;
        }
    }

    /// Runs `expression` in the page: its value, or `None` when it threw or
    /// the page was between two documents.
    async fn try_eval(&mut self, expression: &str) -> Option<Value> {
        let result = self
            .try_command(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await
            .ok()?;
        result["exceptionDetails"]
            .is_null()
            .then(|| result["result"]["value"].clone())
    }

    /// Clicks the first element `selector` finds, waiting (up to 20 s) for
    /// one while the page is still drawing.
    pub async fn click(&mut self, selector: &str) {
        let expression = format!(
            "(e => e ? (e.click(), true) : false)(document.querySelector({}))",
            Value::from(selector)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.try_eval(&expression).await != Some(Value::Bool(true)) {
            assert!(Instant::now() < deadline, "nothing to click at {selector}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens the console at `url` and logs in through its form.
    pub async fn log_in(&mut self, url: &str, email: &str, password: &str) {
        self.open(url).await;
        self.until(
            60,
            "the login form",
            "!!document.querySelector('#login-email')",
        )
        .await;
        self.fill(&[("#login-email", email), ("#login-password", password)])
            .await;
        self.click("#login-submit").await;
        self.until(
            60,
            "the logged-in page",
            "!!document.querySelector('#logout')",
        )
        .await;
    }

    /// Waits until the console's form shows an error beside its input `id`.
    pub async fn until_field_error(&mut self, id: &str) {
        self.until(
            10,
            &format!("the error beside {id}"),
            &format!(
                "(e => !!e && !e.hidden && e.innerText.length > 0)(document.querySelector('#{id}-error'))"
            ),
        )
        .await;
    }

    /// Waits until `expression` is true in the page.
    pub async fn until(&mut self, seconds: u64, what: &str, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if self.try_eval(expression).await == Some(Value::Bool(true)) {
                return;
            }
            if Instant::now() > deadline {
                let text = self
                    .eval("(t => t.length > 3000 ? '…' + t.slice(-3000) : t)(document.body.innerText)")
                    .await;
                panic!("timed out after {seconds} s waiting for: {what}; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// JavaScript for the text of the first element `selector` finds, or "".
pub fn text_of(selector: &str) -> String {
    format!(
        "(document.querySelector({}) || {{innerText: ''}}).innerText",
        Value::from(selector)
    )
}
