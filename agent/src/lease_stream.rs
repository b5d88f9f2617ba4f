//! The agent's side of the lease stream (`skypanel_protocol::lease_stream`):
//! its long-polls as asks over one upgraded connection, which costs the
//! control plane far less per waiting agent than an HTTP request does.
//! A control plane (or a proxy in front of it) that does not upgrade gets
//! the HTTP long-poll instead.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONNECTION, UPGRADE};
use skypanel_protocol::CREDENTIAL_HEADER;
use skypanel_protocol::lease_stream::{
    Hello, LeaseAsk, LeaseReply, Lines, MAX_REPLY_BYTES, PROTOCOL, frame, path,
};
use skypanel_protocol::task::LeasedTask;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{ClientError, refused};

/// How long opening the stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the control plane's hello may take after the 101: a proxy that
/// answered 101 without passing the connection on never sends it.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// An open lease stream, the credential it was opened with (a rotation
/// opens a new one) and the address it goes to (a move to another
/// control-plane address opens a new one too).
pub struct LeaseStream {
    io: reqwest::Upgraded,
    lines: Lines,
    pub credential: String,
    pub base: String,
}

impl LeaseStream {
    /// Opens node `node`'s stream. None when the control plane does not
    /// offer one (an older version, or a proxy that drops `Upgrade`).
    pub async fn open(
        http: &reqwest::Client,
        base: &str,
        node: i64,
        credential: &str,
    ) -> Result<Option<Self>, ClientError> {
        let opening = async {
            let response = http
                .get(format!("{base}{}", path(node)))
                .header(CREDENTIAL_HEADER, credential)
                .header(CONNECTION, "upgrade")
                .header(UPGRADE, PROTOCOL)
                .send()
                .await
                .map_err(|e| ClientError::Unreachable(e.without_url().to_string()))?;
            let status = response.status();
            if status == StatusCode::SWITCHING_PROTOCOLS {
                let io = response
                    .upgrade()
                    .await
                    .map_err(|e| ClientError::Unreachable(format!("lease stream: {e}")))?;
                let mut stream = Self {
                    io,
                    lines: Lines::new(MAX_REPLY_BYTES),
                    credential: credential.to_string(),
                    base: base.to_string(),
                };
                return Ok(stream.hello().await.then_some(stream));
            }
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            match refused(status, &body) {
                // Not offered here (404, 405, or 400 when the `Upgrade`
                // header did not arrive).
                ClientError::Rejected { .. } => Ok(None),
                err => Err(err),
            }
        };
        tokio::time::timeout(OPEN_TIMEOUT, opening)
            .await
            .map_err(|_| ClientError::Unreachable("opening the lease stream timed out".into()))?
    }

    /// One long-poll on the stream. After an error the stream is spent:
    /// drop it (the control plane closes its side after a refusal).
    pub async fn ask(
        &mut self,
        ask: &LeaseAsk,
        timeout: Duration,
    ) -> Result<Vec<LeasedTask>, ClientError> {
        let exchange = async {
            self.io
                .write_all(&frame(ask))
                .await
                .and(self.io.flush().await)
                .map_err(|e| ClientError::Unreachable(format!("lease stream: {e}")))?;
            let line = self.next_line().await?;
            let reply: LeaseReply = serde_json::from_slice(&line).map_err(|e| {
                ClientError::Unreachable(format!("lease stream: unreadable reply: {e}"))
            })?;
            match reply.refused {
                Some(refusal) => Err(refused(
                    StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST),
                    &serde_json::json!({"code": refusal.code, "message": refusal.message}),
                )),
                None => Ok(reply.tasks),
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Unreachable("lease stream: no reply in time".into()))?
    }

    /// Whether the control plane's hello arrives: else something between
    /// the agent and the control plane answered the upgrade without passing
    /// the connection on, and the stream is as good as not offered.
    async fn hello(&mut self) -> bool {
        let hello = tokio::time::timeout(HELLO_TIMEOUT, self.next_line()).await;
        let heard = matches!(&hello, Ok(Ok(line))
            if serde_json::from_slice::<Hello>(line).is_ok_and(|h| h == Hello::new()));
        if !heard {
            tracing::warn!(
                "the lease stream was upgraded but the control plane's hello never came (a proxy that does not pass upgrades on?)"
            );
        }
        heard
    }

    async fn next_line(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut chunk = vec![0u8; 8192];
        loop {
            if let Some(line) = self.lines.next_line() {
                return Ok(line);
            }
            let read = self
                .io
                .read(&mut chunk)
                .await
                .map_err(|e| ClientError::Unreachable(format!("lease stream: {e}")))?;
            if read == 0 {
                return Err(ClientError::Unreachable(
                    "lease stream: closed by the control plane".into(),
                ));
            }
            self.lines.push(&chunk[..read]).map_err(|_| {
                ClientError::Unreachable("lease stream: a reply past its size limit".into())
            })?;
        }
    }
}
