//! git's smart HTTP protocol, answered by `git http-backend` run as a CGI
//! program per request: the request body streams into it (cut off past the
//! push limit: 413), its answer streams back. A push runs with a ticket of
//! its own in the environment, which its `pre-receive` hook shows when it
//! calls back ([`super::push`]).

use std::process::Stdio;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{Caller, authorize, repo, text};
use crate::state::AppState;

/// What one request asks of `git http-backend`.
struct Cgi<'a> {
    /// `info/refs`, `git-upload-pack` or `git-receive-pack`.
    service_path: &'a str,
    /// May the request body be larger than a fetch's negotiation?
    push: bool,
}

/// `GET /git/<slug>.git/info/refs?service=…`: the refs, for a fetch or a push.
#[handler]
pub async fn info_refs(
    request: &Request,
    body: Body,
    Path(repo): Path<String>,
    Data(state): Data<&AppState>,
) -> Response {
    let push = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "service=git-receive-pack"));
    let cgi = Cgi {
        service_path: "info/refs",
        push,
    };
    serve(state, request, body, &repo, cgi).await
}

/// `POST /git/<slug>.git/git-upload-pack`: a fetch or a clone.
#[handler]
pub async fn upload_pack(
    request: &Request,
    body: Body,
    Path(repo): Path<String>,
    Data(state): Data<&AppState>,
) -> Response {
    let cgi = Cgi {
        service_path: "git-upload-pack",
        push: false,
    };
    serve(state, request, body, &repo, cgi).await
}

/// `POST /git/<slug>.git/git-receive-pack`: a push.
#[handler]
pub async fn receive_pack(
    request: &Request,
    body: Body,
    Path(repo): Path<String>,
    Data(state): Data<&AppState>,
) -> Response {
    let cgi = Cgi {
        service_path: "git-receive-pack",
        push: true,
    };
    serve(state, request, body, &repo, cgi).await
}

/// The largest body of a fetch (its wants and haves).
const MAX_FETCH_BODY: u64 = 16 * 1024 * 1024;

async fn serve(
    state: &AppState,
    request: &Request,
    body: Body,
    repo_name: &str,
    cgi: Cgi<'_>,
) -> Response {
    let (app, caller) = match authorize(state, request, repo_name).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let owner = match caller {
        Caller::Owner(principal) => Some(principal),
        Caller::Build if cgi.push => {
            return text(StatusCode::FORBIDDEN, "a build may only fetch");
        }
        Caller::Build => None,
    };
    let settings = &state.settings().git;
    let dir = match repo::ensure(&settings.root, app.id).await {
        Ok(dir) => dir,
        Err(e) => {
            tracing::warn!(app_id = app.id, error = %e, "cannot make the application's repository");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the platform cannot open the repository now; try again",
            );
        }
    };
    let limit = if cgi.push {
        settings.max_push_bytes
    } else {
        MAX_FETCH_BODY
    };
    if request
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > limit)
    {
        return too_large(limit);
    }
    let mut command = repo::git(&settings.root);
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &settings.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{}.git/{}", app.id, cgi.service_path))
        .env("REQUEST_METHOD", request.method().as_str())
        .env("QUERY_STRING", request.uri().query().unwrap_or(""))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (header, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-length", "CONTENT_LENGTH"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "HTTP_GIT_PROTOCOL"),
    ] {
        if let Some(value) = request.headers().get(header).and_then(|v| v.to_str().ok()) {
            command.env(variable, value);
        }
    }
    // A push needs a user for receive-pack to run, and its hook's ticket.
    let mut grant = None;
    if let Some(principal) = &owner {
        command.env("REMOTE_USER", format!("user-{}", principal.user_id));
        if cgi.push && cgi.service_path == "git-receive-pack" {
            let ticket = state.pushes().open(principal.user_id, app.id, dir.clone());
            command
                .env("SKYPANEL_GIT_HOOK_PROGRAM", &settings.hook_program)
                .env(
                    "SKYPANEL_PUSH_URL",
                    format!(
                        "{}/git/{}.git/skypanel-pre-receive",
                        settings.local_url, app.slug
                    ),
                )
                .env("SKYPANEL_PUSH_TICKET", ticket.secret());
            grant = Some(ticket);
        }
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(error = %e, "cannot run git http-backend");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the platform cannot run git now",
            );
        }
    };
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the platform cannot run git now",
        );
    };
    // The body goes in whole before the answer is read: git answers a
    // request only once it has it all, so nothing waits on the other side.
    let mut reader = body.into_async_read();
    let mut taken: u64 = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match reader.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("the request body broke off: {e}"),
                );
            }
        };
        taken += read as u64;
        if taken > limit {
            let _ = child.start_kill();
            return too_large(limit);
        }
        if stdin.write_all(&buffer[..read]).await.is_err() {
            // git stopped reading: its answer says why.
            break;
        }
    }
    drop(stdin);
    let app_id = app.id;
    tokio::spawn(async move {
        let mut said = String::new();
        let _ = stderr.read_to_string(&mut said).await;
        match child.wait().await {
            Ok(status) if status.success() => {}
            Ok(status) => {
                tracing::info!(app_id, %status, stderr = %said.trim(), "git http-backend failed");
            }
            Err(e) => tracing::warn!(app_id, error = %e, "cannot wait for git http-backend"),
        }
        // The push is over: its hook's ticket is no longer good.
        drop(grant);
    });
    respond(BufReader::new(stdout)).await
}

fn too_large(limit: u64) -> Response {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the push is larger than the platform takes ({} MiB); leave large files out of the repository",
            limit / (1024 * 1024)
        ),
    )
}

/// The CGI program's answer as an HTTP response: its headers (`Status:`
/// among them), then its body as it comes.
async fn respond(mut stdout: BufReader<tokio::process::ChildStdout>) -> Response {
    let mut builder = Response::builder();
    let mut status = StatusCode::OK;
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line).await {
            Ok(0) | Err(_) => {
                return text(StatusCode::BAD_GATEWAY, "git answered nothing; try again");
            }
            Ok(_) => {}
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            status = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse::<u16>().ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
        } else {
            builder = builder.header(name.trim(), value);
        }
    }
    builder.status(status).body(Body::from_async_read(stdout))
}
