//! The public API as `sky` calls it: JSON requests with the saved token,
//! every error body (`{"code","message","field"}`) turned into one
//! readable line, and Server-Sent Events read line by line.

use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;

/// Why a command failed; its `Display` is the one line `sky` prints.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Not logged in, or the saved credentials cannot be read or written.
    #[error("{0}")]
    Config(String),
    /// The API refused the request.
    #[error("{message}")]
    Api { status: u16, message: String },
    /// The API could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Network { url: String, reason: String },
    /// What was asked makes no sense (an unknown application …).
    #[error("{0}")]
    Usage(String),
    /// A build or another piece of work ended badly.
    #[error("{0}")]
    Failed(String),
}

/// An authenticated client of one control plane.
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// `base` is the control plane's address (`http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::builder()
                .user_agent(concat!("sky/", env!("CARGO_PKG_VERSION")))
                // A redirect's body is the answer (GitHub's install link).
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    /// The control plane's address with the WebSocket scheme (`ws://`, `wss://`).
    pub fn ws_base(&self) -> String {
        self.base
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.base)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; answers the JSON body (`null` for 204).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.map_err(|e| self.network(e))?;
        let status = answer.status();
        let text = answer.text().await.map_err(|e| self.network(e))?;
        if !(status.is_success() || status.is_redirection()) {
            return Err(api_error(status.as_u16(), &text));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| CliError::Api {
            status: status.as_u16(),
            message: format!("the API answered something that is not JSON: {e}"),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Follows a Server-Sent Events stream, handing each event's data (as
    /// JSON) to `each` until the stream ends or `each` answers false.
    pub async fn follow(
        &self,
        path: &str,
        mut each: impl FnMut(Value) -> bool,
    ) -> Result<(), CliError> {
        let answer = self
            .request(Method::GET, path)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.network(e))?;
        let status = answer.status();
        if !status.is_success() {
            let text = answer.text().await.unwrap_or_default();
            return Err(api_error(status.as_u16(), &text));
        }
        let mut stream = answer.bytes_stream();
        let mut pending = Vec::new();
        while let Some(chunk) = stream.next().await {
            pending.extend_from_slice(&chunk.map_err(|e| self.network(e))?);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                if let Some(data) = line.trim_end().strip_prefix("data:")
                    && let Ok(event) = serde_json::from_str::<Value>(data.trim())
                    && !each(event)
                {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn network(&self, err: reqwest::Error) -> CliError {
        let reason = std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_else(|| err.to_string());
        CliError::Network {
            url: self.base.clone(),
            reason,
        }
    }
}

/// One line from an error answer: its message, and the field it names.
fn api_error(status: u16, text: &str) -> CliError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let message = match (body["message"].as_str(), body["field"].as_str()) {
        (Some(message), Some(field)) => format!("{message} ({field})"),
        (Some(message), None) => message.to_string(),
        _ => format!("the API answered HTTP {status}"),
    };
    let message = if status == 401 {
        format!("{message}; run `sky login` again")
    } else {
        message
    };
    CliError::Api { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_answer_is_one_line_naming_the_field() {
        let err = api_error(
            422,
            r#"{"code":"invalid","message":"a name is 3 to 63 characters","field":"name"}"#,
        );
        assert_eq!(err.to_string(), "a name is 3 to 63 characters (name)");
        assert_eq!(
            api_error(502, "<html>bad gateway</html>").to_string(),
            "the API answered HTTP 502"
        );
        assert!(
            api_error(401, r#"{"code":"unauthorized","message":"invalid token"}"#)
                .to_string()
                .ends_with("run `sky login` again")
        );
    }
}
