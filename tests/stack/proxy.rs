//! Proxies between an agent and its control plane, for fault tests: one that
//! cuts the network (every open connection dropped, new ones closed at once)
//! until it is restored, and one that delivers every HTTP request twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A TCP proxy on loopback that can cut the connection like a partition.
pub struct CutProxy {
    /// `http://127.0.0.1:<port>`: give this to the agent as its control plane.
    pub url: String,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl CutProxy {
    /// Forwards to `target` (`host:port`).
    pub async fn start(target: String) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (cut, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut cut_now = watching.clone();
                if *cut_now.borrow() {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_now.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        CutProxy { url, cut, task }
    }

    /// Drops every connection and refuses new ones until [`CutProxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP proxy that delivers every request to the control plane twice:
/// the agent gets the first answer, and the same request goes again right
/// behind it. (A second lease can take tasks the agent never hears of: they
/// come back when their unacknowledged lease runs out.) It counts the
/// duplicates the control plane answered with a server error.
pub struct TwiceProxy {
    pub url: String,
    doubled: Arc<AtomicUsize>,
    broken: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TwiceProxy {
    /// Forwards to `target` (`http://host:port`).
    pub async fn start(target: String) -> TwiceProxy {
        use poem::{Body, EndpointExt, Request, Response};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let doubled = Arc::new(AtomicUsize::new(0));
        let broken = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .unwrap();
        let (counted, failed) = (doubled.clone(), broken.clone());
        let endpoint = poem::endpoint::make(move |request: Request| {
            let (client, target) = (client.clone(), target.clone());
            let (doubled, broken) = (counted.clone(), failed.clone());
            async move {
                let method = request.method().clone();
                let uri = request.uri().clone();
                let headers = request.headers().clone();
                let body = request.into_body().into_bytes().await.unwrap_or_default();
                let request = || {
                    let mut forward = client.request(
                        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
                        format!("{target}{uri}"),
                    );
                    for (name, value) in &headers {
                        if name != "host" && name != "content-length" {
                            forward = forward.header(name.as_str(), value.as_bytes());
                        }
                    }
                    forward.body(body.to_vec())
                };
                let Ok(first) = request().send().await else {
                    return Response::builder()
                        .status(poem::http::StatusCode::BAD_GATEWAY)
                        .finish();
                };
                // The duplicate arrives right behind the first, racing the
                // agent's next message (as a retry on a flaky network does).
                let duplicate = request();
                let (method, uri) = (method.clone(), uri.clone());
                tokio::spawn(async move {
                    if let Ok(second) = duplicate.send().await {
                        doubled.fetch_add(1, Ordering::SeqCst);
                        if second.status().is_server_error() {
                            broken.fetch_add(1, Ordering::SeqCst);
                            eprintln!(
                                "a second delivery of {method} {uri} got {}: {}",
                                second.status(),
                                second.text().await.unwrap_or_default()
                            );
                        }
                    }
                });
                let status = first.status().as_u16();
                let content_type = first
                    .headers()
                    .get("content-type")
                    .map(|v| v.as_bytes().to_vec());
                let answer = first.bytes().await.unwrap_or_default();
                let mut reply =
                    Response::builder().status(poem::http::StatusCode::from_u16(status).unwrap());
                if let Some(content_type) = content_type {
                    reply = reply.header("content-type", content_type);
                }
                reply.body(Body::from(answer.to_vec()))
            }
        });
        let server = poem::Server::new(poem::listener::TcpListener::bind(address.to_string()));
        let task = tokio::spawn(async move {
            let _ = server.run(endpoint.map_to_response()).await;
        });
        // Wait until it accepts connections.
        for _ in 0..100 {
            if TcpStream::connect(address).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        TwiceProxy {
            url: format!("http://{address}"),
            doubled,
            broken,
            task,
        }
    }
}

impl TwiceProxy {
    /// Requests delivered twice so far.
    pub fn doubled(&self) -> usize {
        self.doubled.load(Ordering::SeqCst)
    }

    /// Second deliveries answered 5xx (a duplicate the control plane could not take).
    pub fn broken(&self) -> usize {
        self.broken.load(Ordering::SeqCst)
    }
}

impl Drop for TwiceProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
