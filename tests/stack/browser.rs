//! Headless Chromium driven over the DevTools protocol, and headless Firefox
//! over WebDriver BiDi (the protocol Firefox speaks), for tests of the
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
    /// Firefox's page (its browsing context), which every BiDi command
    /// names; `None` for Chromium, whose socket is the page's own.
    firefox: Option<String>,
}

impl Browser {
    /// Starts Chromium and attaches to its first page.
    pub async fn start() -> Browser {
        let profile = new_profile("chromium");
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
        Browser::attached(child, profile, socket)
    }

    /// A browser whose commands go over `socket` (a page's, for Chromium).
    fn attached(child: Child, profile: PathBuf, socket: Socket) -> Browser {
        Browser {
            child,
            profile,
            socket,
            next_id: 0,
            network: Vec::new(),
            firefox: None,
        }
    }

    /// Starts Firefox (ESR, as Debian ships it) and opens a WebDriver BiDi
    /// session on its first page.
    pub async fn start_firefox() -> Browser {
        use std::io::BufRead as _;
        let profile = new_profile("firefox");
        let mut child = Command::new("firefox-esr")
            .args(["--headless", "--no-remote", "--remote-debugging-port=0"])
            .arg("--profile")
            .arg(&profile)
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("firefox (apt-get install firefox-esr)");
        // Firefox says on stderr where it listens; the rest of its stderr
        // is drained so that it never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (found, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("ws://") {
                    let _ = found.send(line[at..].trim().to_string());
                }
            }
        });
        let address = listening
            .recv_timeout(Duration::from_secs(60))
            .expect("firefox did not start its WebDriver BiDi server");
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("{}/session", address.trim_end_matches('/')))
                .await
                .expect("connect to firefox's WebDriver BiDi server");
        let mut browser = Browser::attached(child, profile, socket);
        browser
            .command("session.new", json!({"capabilities": {}}))
            .await;
        let tree = browser.command("browsingContext.getTree", json!({})).await;
        browser.firefox = Some(
            tree["contexts"][0]["context"]
                .as_str()
                .expect("firefox has a page")
                .to_string(),
        );
        browser
    }

    /// Sends a command (DevTools or BiDi) and answers its result.
    async fn command(&mut self, method: &str, params: Value) -> Value {
        match self.try_command(method, params).await {
            Ok(result) => result,
            Err(answer) => panic!("{method}: {answer}"),
        }
    }

    /// Sends a command: its result, or the whole answer when it is an error
    /// (e.g. the page navigated while it ran). Both protocols answer
    /// `{"id", "result"}`, or an `error` beside the id.
    async fn try_command(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::text(message)).await.unwrap();
        loop {
            let Some(Ok(message)) = self.socket.next().await else {
                panic!("the browser closed the connection");
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
        match self.firefox.clone() {
            None => self.command("Page.navigate", json!({ "url": url })).await,
            Some(context) => {
                self.command(
                    "browsingContext.navigate",
                    json!({"context": context, "url": url, "wait": "interactive"}),
                )
                .await
            }
        };
    }

    /// Runs `expression` in the page (awaiting a promise) and answers its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        match self.evaluate(expression).await {
            Ok(value) => value,
            Err(failure) => panic!("{expression}: {failure}"),
        }
    }

    /// Runs `expression` in the page: its value as JSON, or what went wrong
    /// (it threw, or the page was between two documents).
    async fn evaluate(&mut self, expression: &str) -> Result<Value, Value> {
        let Some(context) = self.firefox.clone() else {
            let result = self
                .try_command(
                    "Runtime.evaluate",
                    json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
                )
                .await?;
            return if result["exceptionDetails"].is_null() {
                Ok(result["result"]["value"].clone())
            } else {
                Err(result)
            };
        };
        // BiDi answers a value in its own serialisation: the page turns it
        // into JSON text first, so both browsers answer the same values.
        let wrapped = format!("(async () => JSON.stringify(await ({expression})))()");
        let result = self
            .try_command(
                "script.evaluate",
                json!({"expression": wrapped, "target": {"context": context}, "awaitPromise": true}),
            )
            .await?;
        match (result["type"].as_str(), result["result"]["value"].as_str()) {
            (Some("success"), Some(text)) => Ok(serde_json::from_str(text).unwrap()),
            (Some("success"), None) => Ok(Value::Null),
            _ => Err(result),
        }
    }

    /// Sizes the page's viewport as a device of `width` × `height` CSS pixels.
    pub async fn viewport(&mut self, width: u32, height: u32) {
        if let Some(context) = self.firefox.clone() {
            self.command(
                "browsingContext.setViewport",
                json!({"context": context, "viewport": {"width": width, "height": height}}),
            )
            .await;
            return;
        }
        self.command(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .await;
    }

    /// Starts counting the requests the page sends (see [`Browser::requests`]).
    pub async fn count_requests(&mut self) {
        assert!(self.firefox.is_none(), "requests are counted in Chromium");
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
        assert!(self.firefox.is_none(), "the heap is measured in Chromium");
        self.command("Runtime.getHeapUsage", json!({})).await["usedSize"]
            .as_f64()
            .unwrap()
    }

    /// Saves a PNG of what the viewport shows to `path`.
    pub async fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine as _;
        let shot = match self.firefox.clone() {
            None => {
                self.command("Page.captureScreenshot", json!({"format": "png"}))
                    .await
            }
            Some(context) => {
                self.command(
                    "browsingContext.captureScreenshot",
                    json!({ "context": context }),
                )
                .await
            }
        };
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
        self.evaluate(expression).await.ok()
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

    /// Waits (up to `seconds`) until the console shows its login form.
    pub async fn until_login_form(&mut self, seconds: u64) {
        self.until(
            seconds,
            "the login form",
            "!!document.querySelector('#login-email')",
        )
        .await;
    }

    /// Opens the console at `url` and logs in through its form.
    pub async fn log_in(&mut self, url: &str, email: &str, password: &str) {
        self.open(url).await;
        self.until_login_form(60).await;
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
                // What the page loaded (name, status, milliseconds): a module
                // that never came shows here.
                let loaded = self
                    .try_eval("performance.getEntriesByType('resource').map(r => `${r.name.split('/').pop()} ${r.responseStatus} ${Math.round(r.duration)}`)")
                    .await;
                panic!(
                    "timed out after {seconds} s waiting for: {what}; the page shows:\n{text}\nit loaded: {loaded:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A new, empty profile folder for a browser of `kind`.
fn new_profile(kind: &str) -> PathBuf {
    let profile =
        std::env::temp_dir().join(format!("skypanel-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&profile).unwrap();
    profile
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
