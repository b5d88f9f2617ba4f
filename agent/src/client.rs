//! The control plane as the agent sees it: typed calls of the agent protocol,
//! authenticated with the node credential (which can be swapped on rotation).
//! It may have several addresses (one per control-plane replica): calls go
//! to the current one and move on to the next when it cannot be reached.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use skypanel_protocol::CREDENTIAL_HEADER;
use skypanel_protocol::lease_stream::LeaseAsk;
use skypanel_protocol::node::{
    AppLogAck, AppLogBatch, Heartbeat, HeartbeatAck, RegisterRequest, Registered, Rotated,
};
use skypanel_protocol::task::{
    Extended, LeaseRef, LeasedTask, Leases, LogAck, LogBatch, StatusAck, StatusReport,
};
use uuid::Uuid;

use crate::lease_stream::LeaseStream;
use crate::state::Credentials;

/// How a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The credential (or registration token) is not accepted.
    #[error("the control plane refused our credentials: {0}")]
    Unauthorized(String),
    /// The lease is no longer ours: drop the task.
    #[error("our lease on the task is gone")]
    StaleLease,
    /// The control plane answered with an error that retrying will not fix.
    #[error("the control plane refused the call ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// No answer (network, timeout, 5xx): retry later.
    #[error("the control plane is unreachable: {0}")]
    Unreachable(String),
}

impl ClientError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unreachable(_))
    }
}

#[derive(Clone)]
pub struct ControlPlane {
    http: reqwest::Client,
    bases: Arc<Bases>,
    credentials: Arc<RwLock<Option<Credentials>>>,
    stream: Arc<tokio::sync::Mutex<StreamSlot>>,
}

/// The control plane's addresses and the one in use.
struct Bases {
    urls: Vec<String>,
    current: AtomicUsize,
}

impl Bases {
    /// One address, or several separated by commas (trailing `/` dropped).
    fn parse(text: &str) -> anyhow::Result<Self> {
        let urls: Vec<String> = text
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            anyhow::bail!(
                "--control-plane: give the control plane's URL (or several, comma-separated)"
            );
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            anyhow::bail!("--control-plane: {bad} must start with http:// or https://");
        }
        Ok(Self {
            urls,
            current: AtomicUsize::new(0),
        })
    }

    fn current(&self) -> &str {
        &self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()]
    }

    /// The control plane says `owner` holds this node's actor: when it is one
    /// of the addresses, it is used from now on.
    fn prefer(&self, owner: &str) {
        let owner = owner.trim_end_matches('/');
        let Some(at) = self.urls.iter().position(|u| u == owner) else {
            return;
        };
        let was = self.current.swap(at, Ordering::Relaxed) % self.urls.len();
        if was != at {
            tracing::info!(from = %self.urls[was], to = owner, "moving to the control-plane replica that holds this node");
        }
    }

    /// `failed` did not answer: the next address is tried from now on
    /// (unless another call moved on already).
    fn failed(&self, failed: &str) {
        if self.urls.len() < 2 {
            return;
        }
        let at = self.current.load(Ordering::Relaxed);
        if self.urls[at % self.urls.len()] == failed {
            let next = (at + 1) % self.urls.len();
            if self
                .current
                .compare_exchange(at, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                tracing::warn!(failed, next = %self.urls[next], "the control plane does not answer here; trying the next address");
            }
        }
    }
}

/// The lease stream between long-polls, or since when the control plane
/// is known not to offer one.
#[derive(Default)]
struct StreamSlot {
    open: Option<LeaseStream>,
    not_offered: Option<Instant>,
}

/// How long the agent long-polls over HTTP after the control plane did not
/// offer a lease stream, before it asks again (it may have been upgraded).
const STREAM_ASKED_AGAIN: Duration = Duration::from_secs(600);

const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The longest a dump takes to be handed over or fetched.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);

/// The response when it succeeded; its refusal as an error otherwise.
async fn refusal(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    Err(refused(status, &body))
}

/// The error a refusal with `status` and error body `body` stands for.
pub(crate) fn refused(status: StatusCode, body: &serde_json::Value) -> ClientError {
    let message = body["message"].as_str().unwrap_or("no message").to_string();
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ClientError::Unauthorized(message),
        StatusCode::CONFLICT if body["code"] == "stale_lease" => ClientError::StaleLease,
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            ClientError::Unreachable(format!("{s}: {message}"))
        }
        s => ClientError::Rejected {
            status: s.as_u16(),
            message,
        },
    }
}

impl ControlPlane {
    /// `base`: the control plane's URL, or several (each replica's) separated by commas.
    pub fn new(base: String) -> anyhow::Result<Self> {
        let bases = Arc::new(Bases::parse(&base)?);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("skypanel-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            bases,
            credentials: Arc::new(RwLock::new(None)),
            stream: Arc::default(),
        })
    }

    pub fn set_credentials(&self, credentials: Credentials) {
        if let Ok(mut slot) = self.credentials.write() {
            *slot = Some(credentials);
        }
    }

    pub fn node_id(&self) -> i64 {
        self.credentials
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.node_id))
            .unwrap_or(0)
    }

    /// The address calls go to now.
    fn base(&self) -> String {
        self.bases.current().to_string()
    }

    /// Moves on from `base` when `error` says it did not answer.
    fn note<T>(&self, base: &str, result: Result<T, ClientError>) -> Result<T, ClientError> {
        if let Err(ClientError::Unreachable(_)) = &result {
            self.bases.failed(base);
        }
        result
    }

    fn credential(&self) -> String {
        self.credentials
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.credential.clone()))
            .unwrap_or_default()
    }

    async fn post<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<Option<R>, ClientError> {
        let base = self.base();
        let answer = self.post_to(&base, path, body, timeout).await;
        self.note(&base, answer)
    }

    async fn post_to<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<Option<R>, ClientError> {
        let response = self
            .http
            .post(format!("{base}{path}"))
            .header(CREDENTIAL_HEADER, self.credential())
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if status.is_success() {
            return response
                .json::<R>()
                .await
                .map(Some)
                .map_err(|e| ClientError::Unreachable(format!("unreadable answer: {e}")));
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        Err(refused(status, &body))
    }

    async fn expect<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        self.post(path, body, CALL_TIMEOUT)
            .await?
            .ok_or_else(|| ClientError::Unreachable("an empty answer".into()))
    }

    pub async fn register(&self, request: &RegisterRequest) -> Result<Registered, ClientError> {
        self.expect("/api/internal/paas/nodes/register", request)
            .await
    }

    pub async fn heartbeat(&self, beat: &Heartbeat) -> Result<HeartbeatAck, ClientError> {
        let ack: HeartbeatAck = self
            .expect(
                &format!("/api/internal/paas/nodes/{}/heartbeat", self.node_id()),
                beat,
            )
            .await?;
        if let Some(owner) = &ack.owner {
            self.bases.prefer(owner);
        }
        Ok(ack)
    }

    pub async fn rotate(&self) -> Result<Rotated, ClientError> {
        self.expect(
            &format!(
                "/api/internal/paas/nodes/{}/credentials/rotate",
                self.node_id()
            ),
            &(),
        )
        .await
    }

    /// Leases up to `max` tasks, waiting up to `wait` seconds for one.
    /// `request` names the request: sent again after a failure, it answers
    /// what the first delivery leased (whose answer was lost).
    pub async fn lease(
        &self,
        wait: u64,
        max: usize,
        request: Uuid,
    ) -> Result<Vec<LeasedTask>, ClientError> {
        if let Some(tasks) = self.lease_on_stream(wait, max, request).await? {
            return Ok(tasks);
        }
        let path = format!(
            "/api/internal/paas/nodes/{}/leases?wait={wait}&max={max}&request={request}",
            self.node_id()
        );
        let leases: Option<Leases> = self
            .post(&path, &(), Duration::from_secs(wait) + CALL_TIMEOUT)
            .await?;
        Ok(leases.map(|l| l.tasks).unwrap_or_default())
    }

    /// [`Self::lease`] over the lease stream, opened on first use and again
    /// after an error or a credential rotation. None when the control plane
    /// does not offer one: long-poll over HTTP.
    async fn lease_on_stream(
        &self,
        wait: u64,
        max: usize,
        request: Uuid,
    ) -> Result<Option<Vec<LeasedTask>>, ClientError> {
        let mut slot = self.stream.lock().await;
        if slot
            .not_offered
            .is_some_and(|since| since.elapsed() < STREAM_ASKED_AGAIN)
        {
            return Ok(None);
        }
        let credential = self.credential();
        // Taken out while in use: an ask given up half-way (a shutdown, an
        // error) leaves no stream whose next reply would answer it.
        let base = self.base();
        let mut stream = match slot.open.take() {
            Some(stream) if stream.credential == credential && stream.base == base => stream,
            _ => match self.note(
                &base,
                LeaseStream::open(&self.http, &base, self.node_id(), &credential).await,
            )? {
                Some(stream) => {
                    tracing::debug!("lease stream open");
                    stream
                }
                None => {
                    tracing::info!(
                        "the control plane offers no lease stream; long-polling over HTTP"
                    );
                    slot.not_offered = Some(Instant::now());
                    return Ok(None);
                }
            },
        };
        let ask = LeaseAsk {
            wait,
            max: i64::try_from(max).unwrap_or(i64::MAX),
            request: Some(request),
        };
        let tasks = self.note(
            &base,
            stream
                .ask(&ask, Duration::from_secs(wait) + CALL_TIMEOUT)
                .await,
        )?;
        slot.open = Some(stream);
        slot.not_offered = None;
        Ok(Some(tasks))
    }

    pub async fn extend(&self, task_id: i64, lease_id: Uuid) -> Result<Extended, ClientError> {
        self.expect(
            &format!("/api/internal/paas/tasks/{task_id}/extend"),
            &LeaseRef { lease_id },
        )
        .await
    }

    pub async fn status(
        &self,
        task_id: i64,
        report: &StatusReport,
    ) -> Result<StatusAck, ClientError> {
        self.expect(
            &format!("/api/internal/paas/tasks/{task_id}/status"),
            report,
        )
        .await
    }

    pub async fn app_logs(&self, batch: &AppLogBatch) -> Result<AppLogAck, ClientError> {
        self.expect(
            &format!("/api/internal/paas/nodes/{}/app-logs", self.node_id()),
            batch,
        )
        .await
    }

    pub async fn logs(&self, task_id: i64, batch: &LogBatch) -> Result<LogAck, ClientError> {
        self.expect(&format!("/api/internal/paas/tasks/{task_id}/logs"), batch)
            .await
    }

    /// Hands a moving database's dump (the file at `path`) to the control plane.
    pub async fn put_move_dump(
        &self,
        move_id: i64,
        path: &std::path::Path,
    ) -> Result<(), ClientError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::Unreachable(format!("cannot read the dump: {e}")))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| ClientError::Unreachable(format!("cannot read the dump: {e}")))?
            .len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let base = self.base();
        let response = self
            .http
            .put(format!(
                "{base}{}",
                skypanel_protocol::database::move_dump_path(move_id)
            ))
            .header(CREDENTIAL_HEADER, self.credential())
            .header(reqwest::header::CONTENT_LENGTH, size)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(TRANSFER_TIMEOUT)
            .body(body)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.without_url().to_string()));
        let response = self.note(&base, response)?;
        refusal(response).await.map(|_| ())
    }

    /// Fetches a moving database's dump from the control plane.
    pub async fn get_move_dump(&self, move_id: i64) -> Result<reqwest::Response, ClientError> {
        let base = self.base();
        let response = self
            .http
            .get(format!(
                "{base}{}",
                skypanel_protocol::database::move_dump_path(move_id)
            ))
            .header(CREDENTIAL_HEADER, self.credential())
            .timeout(TRANSFER_TIMEOUT)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.without_url().to_string()));
        let response = self.note(&base, response)?;
        refusal(response).await
    }

    /// Says that run `run_id`'s container started (billing starts).
    pub async fn run_started(&self, run_id: i64) -> Result<StatusAck, ClientError> {
        self.expect(
            &format!("/api/internal/paas/runs/{run_id}/started"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Opens the node's side of run `run_id`'s session: a WebSocket to the
    /// control plane (the node dials out; nothing dials the node).
    pub async fn open_session(
        &self,
        run_id: i64,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        ClientError,
    > {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let base = self
            .base()
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let url = format!("{base}/api/internal/paas/runs/{run_id}/session");
        let mut request = url
            .into_client_request()
            .map_err(|e| ClientError::Unreachable(format!("bad session address: {e}")))?;
        let credential = self
            .credential()
            .parse()
            .map_err(|_| ClientError::Unauthorized("an unusable credential".into()))?;
        request.headers_mut().insert(CREDENTIAL_HEADER, credential);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(skypanel_protocol::session::MAX_CHUNK * 2));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        match tokio::time::timeout(CALL_TIMEOUT, connect).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                    .unwrap_or_default();
                Err(ClientError::Rejected {
                    status,
                    message: body["message"].as_str().unwrap_or("refused").to_string(),
                })
            }
            Ok(Err(err)) => Err(ClientError::Unreachable(err.to_string())),
            Err(_) => Err(ClientError::Unreachable(
                "the control plane did not open the session in time".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_a_list_and_a_failure_moves_to_the_next_once() {
        let bases = Bases::parse(" http://a:1/, http://b:2 ,,http://c:3").unwrap();
        assert_eq!(bases.urls, ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(bases.current(), "http://a:1");
        bases.failed("http://a:1");
        assert_eq!(bases.current(), "http://b:2");
        // A second call that failed on the address already left moves nothing.
        bases.failed("http://a:1");
        assert_eq!(bases.current(), "http://b:2");
        bases.failed("http://b:2");
        bases.failed("http://c:3");
        assert_eq!(bases.current(), "http://a:1", "round and round");

        let one = Bases::parse("https://panel.example.com/").unwrap();
        one.failed("https://panel.example.com");
        assert_eq!(one.current(), "https://panel.example.com");
        assert!(Bases::parse(" , ").is_err());
        assert!(Bases::parse("http://a, ftp://b").is_err());
    }

    #[test]
    fn the_replica_holding_the_node_is_preferred_when_it_is_listed() {
        let bases = Bases::parse("http://a:1,http://b:2,http://c:3").unwrap();
        bases.prefer("http://c:3/");
        assert_eq!(bases.current(), "http://c:3");
        // An address the agent was not given (a load balancer's replicas)
        // changes nothing.
        bases.prefer("http://10.0.0.9:8081");
        assert_eq!(bases.current(), "http://c:3");
        // A failure still moves on, and the next hint moves back.
        bases.failed("http://c:3");
        assert_eq!(bases.current(), "http://a:1");
        bases.prefer("http://b:2");
        assert_eq!(bases.current(), "http://b:2");
        let one = Bases::parse("http://lb:80").unwrap();
        one.prefer("http://127.0.0.1:8081");
        assert_eq!(one.current(), "http://lb:80");
    }
}
