//! Keystroke latency of an attached run (`sky run`): one byte typed, the
//! same byte echoed back by `cat` in the run's container, through the
//! control plane's WebSocket relay and the node's own session to it; beside
//! the same round trip through `docker run -i` of the same image on the
//! same machine (Docker's own attach, no platform in between). The
//! difference is what the platform adds per keystroke.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use skypanel_protocol::session::{self, Control, STDIN, STDOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::client::Api;

/// Round trips of `n` single bytes through an attached run of `cat`.
pub async fn through_platform(api: &Api, app: i64, n: usize) -> anyhow::Result<Vec<Duration>> {
    let started = api
        .call(
            reqwest::Method::POST,
            &format!("/paas/applications/{app}/runs"),
            Some(json!({"command": "cat", "attach": true})),
        )
        .await?;
    let url = format!(
        "{}{}?ticket={}",
        api.base.replacen("http://", "ws://", 1),
        started["session"]["path"].as_str().context("no session")?,
        started["session"]["ticket"].as_str().context("no ticket")?
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    // The command starts.
    loop {
        match tokio::time::timeout(Duration::from_secs(60), socket.next()).await? {
            Some(Ok(Message::Text(text))) => match Control::parse(&text) {
                Some(Control::Started) => break,
                Some(Control::Error { message }) => bail!("the run did not start: {message}"),
                _ => {}
            },
            Some(Ok(_)) => {}
            _ => bail!("the session closed before the run started"),
        }
    }
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let byte = b'a' + (i % 26) as u8;
        let sent = Instant::now();
        socket
            .send(Message::binary(session::frame(STDIN, &[byte])))
            .await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), socket.next()).await? {
                Some(Ok(Message::Binary(bytes))) => {
                    if session::unframe(&bytes) == Some((STDOUT, &[byte][..])) {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                _ => bail!("the session closed mid-measure"),
            }
        }
        times.push(sent.elapsed());
    }
    socket.send(Message::text(Control::Eof.to_text())).await?;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    Ok(times)
}

/// The same round trips through `docker run -i --rm IMAGE cat`.
pub async fn through_docker(image: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut child = tokio::process::Command::new("docker")
        .args(["run", "-i", "--rm", image, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut input = child.stdin.take().context("stdin")?;
    let mut output = child.stdout.take().context("stdout")?;
    // The first byte also waits for the container to start: not counted.
    let mut byte = [0u8; 1];
    input.write_all(b"x").await?;
    output.read_exact(&mut byte).await?;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let sent_byte = b'a' + (i % 26) as u8;
        let sent = Instant::now();
        input.write_all(&[sent_byte]).await?;
        input.flush().await?;
        output.read_exact(&mut byte).await?;
        if byte[0] != sent_byte {
            bail!("docker echoed {:?} for {:?}", byte[0], sent_byte);
        }
        times.push(sent.elapsed());
    }
    drop(input);
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    Ok(times)
}
