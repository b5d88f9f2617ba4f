//! One-off runs on real Docker, through the real control plane and agent:
//! `sky run` attached (exit code, standard input, output and errors), a
//! terminal session through the WebSocket relay (its size, a resize, the
//! exit code), a detached run's output in `sky logs`, and every other end a
//! run can have (its time limit, its session closing, a stop), each leaving
//! no container behind; another customer reaches none of it.
//! Every test is named `docker_…` (they need Docker).

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use stack::{PASSWORD, Stack, Timing, WEB_IMAGE, binary, through_ingress};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An image application with `GREETING=hello`, deployed and running.
async fn deployed(stack: &Stack, token: &str, name: &str, plan: i64) -> i64 {
    let body = json!({"name": name, "plan_id": plan, "region": "local", "image": WEB_IMAGE});
    let (status, app) = stack.post("/api/paas/applications", token, body).await;
    assert_eq!(status, 201, "{app:#}");
    let id = app["id"].as_i64().unwrap();
    let (status, added) = stack
        .post(
            &format!("/api/paas/applications/{id}/env"),
            token,
            json!({"key": "GREETING", "value": "hello"}),
        )
        .await;
    assert_eq!(status, 201, "{added:#}");
    let (status, _) = stack
        .post(
            &format!("/api/paas/applications/{id}/deploy"),
            token,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stack.app_in(token, id, "running").await;
    id
}

/// `sky` with a configuration of its own, logged in.
struct Sky {
    config: PathBuf,
}

/// How a `sky` command ended.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Sky {
    async fn logged_in(stack: &Stack, email: &str) -> Sky {
        let config =
            std::env::temp_dir().join(format!("sky-config-{}", uuid::Uuid::new_v4().simple()));
        let sky = Sky { config };
        let ran = sky
            .run(
                &[
                    "login",
                    "--api",
                    &stack.base,
                    "--email",
                    email,
                    "--password",
                    PASSWORD,
                ],
                None,
            )
            .await;
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        sky
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Ran {
        let mut command = tokio::process::Command::new(binary("sky"));
        command
            .args(args)
            .env("XDG_CONFIG_HOME", &self.config)
            .env_remove("SKY_API")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("run sky");
        if let Some(text) = stdin {
            let mut input = child.stdin.take().unwrap();
            input.write_all(text.as_bytes()).await.unwrap();
            drop(input);
        }
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("sky run ends within 2 minutes")
            .unwrap();
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }
}

/// Starts a run; answers the API's answer (the run, and its session).
async fn start_run(stack: &Stack, token: &str, app: i64, body: Value) -> Value {
    let (status, started) = stack
        .post(&format!("/api/paas/applications/{app}/runs"), token, body)
        .await;
    assert_eq!(status, 201, "{started:#}");
    started
}

/// Opens an attached run's session as `sky run` does.
async fn open_session(stack: &Stack, started: &Value) -> Socket {
    let url = format!(
        "{}{}?ticket={}",
        stack.base.replacen("http://", "ws://", 1),
        started["session"]["path"].as_str().unwrap(),
        started["session"]["ticket"].as_str().unwrap()
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// What a session said until `done` is true of it (at most 60 s): the
/// command's output, and the control messages.
#[derive(Default, Debug)]
struct Said {
    output: String,
    controls: Vec<Value>,
    closed: bool,
}

async fn read_until(socket: &mut Socket, said: &mut Said, done: impl Fn(&Said) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(said) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the session never said what was waited for: {said:#?}"
        );
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => {
                said.output.push_str(&String::from_utf8_lossy(&bytes[1..]));
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                said.controls.push(serde_json::from_str(&text).unwrap());
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                said.closed = true;
                return;
            }
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the session never said what was waited for: {said:#?}"),
        }
    }
}

fn typed(text: &str) -> Message {
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(text.as_bytes());
    Message::binary(bytes)
}

/// Waits until run `run` is no longer pending or running; answers it.
async fn run_ends(stack: &Stack, token: &str, app: i64, run: i64) -> Value {
    let path = format!("/api/paas/applications/{app}/runs/{run}");
    stack
        .until(60, &format!("run {run} ends"), || async {
            let now = stack.get(&path, token).await;
            now["status"] == "succeeded" || now["status"] == "failed"
        })
        .await;
    stack.get(&path, token).await
}

/// The run's container, if it is still there.
fn run_container(stack: &Stack, app: i64, run: i64) -> Option<String> {
    let suffix = format!("-run-{run}");
    stack.containers(app).into_iter().find(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|n| n.ends_with(&suffix))
    })
}

#[tokio::test]
async fn docker_one_off_runs_attach_a_terminal_or_run_detached_and_end_every_way() {
    let stack = Stack::start(Timing::default()).await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let bob = stack.customer("bob@example.com").await;
    let app = deployed(&stack, &alice, "shop", plan).await;
    let sky = Sky::logged_in(&stack, "alice@example.com").await;

    // Attached without a terminal: output, errors and the exit code.
    let ran = sky
        .run(
            &[
                "run",
                "shop",
                "--",
                "echo \"$GREETING from a run\"; echo oops >&2; exit 3",
            ],
            None,
        )
        .await;
    assert_eq!(ran.code, Some(3), "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("hello from a run"), "{}", ran.stdout);
    assert!(ran.stderr.contains("oops"), "{}", ran.stderr);
    assert!(!ran.stdout.contains("oops"), "{}", ran.stdout);
    // Standard input reaches the command, and its end ends it.
    let ran = sky
        .run(
            &["run", "shop", "--no-tty", "--", "wc", "-l"],
            Some("a\nb\nc\n"),
        )
        .await;
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.stdout.trim(), "3");

    // A terminal session: its size, a resize, and the shell's exit code.
    let started = start_run(
        &stack,
        &alice,
        app,
        json!({"command": "sh", "attach": true, "tty": true, "cols": 100, "rows": 30}),
    )
    .await;
    let tty_run = started["run"]["id"].as_i64().unwrap();
    let mut socket = open_session(&stack, &started).await;
    let mut said = Said::default();
    read_until(&mut socket, &mut said, |s| {
        s.controls.iter().any(|c| c["type"] == "started")
    })
    .await;
    socket.send(typed("stty size; tty\r")).await.unwrap();
    read_until(&mut socket, &mut said, |s| s.output.contains("/dev/pts/")).await;
    assert!(said.output.contains("30 100"), "{said:#?}");
    socket
        .send(Message::text(r#"{"type":"resize","cols":120,"rows":40}"#))
        .await
        .unwrap();
    socket.send(typed("stty size\r")).await.unwrap();
    read_until(&mut socket, &mut said, |s| s.output.contains("40 120")).await;
    socket.send(typed("exit 5\r")).await.unwrap();
    read_until(&mut socket, &mut said, |s| {
        s.controls.iter().any(|c| c["type"] == "exit") || s.closed
    })
    .await;
    assert!(
        said.controls.contains(&json!({"type": "exit", "code": 5})),
        "{said:#?}"
    );
    let ended = run_ends(&stack, &alice, app, tty_run).await;
    assert_eq!(
        (&ended["status"], &ended["exit_code"], &ended["tty"]),
        (&json!("failed"), &json!(5), &json!(true)),
        "{ended:#}"
    );
    assert!(ended["duration_secs"].as_i64().is_some(), "{ended:#}");
    assert!(run_container(&stack, app, tty_run).is_none());
    // A ticket opens its session once.
    let again = tokio_tungstenite::connect_async(format!(
        "{}{}?ticket={}",
        stack.base.replacen("http://", "ws://", 1),
        started["session"]["path"].as_str().unwrap(),
        started["session"]["ticket"].as_str().unwrap()
    ))
    .await;
    assert!(again.is_err(), "a used ticket opened a session again");

    // Detached: the output goes to the application's logs, named run.<id>.
    let ran = sky
        .run(
            &["run:detached", "shop", "--", "echo \"detached $GREETING\""],
            None,
        )
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let listed = stack
        .get(&format!("/api/paas/applications/{app}/runs"), &alice)
        .await;
    let detached = listed[0]["id"].as_i64().unwrap();
    assert!(
        ran.stdout.contains(&format!("run.{detached}")),
        "{}",
        ran.stdout
    );
    let ended = run_ends(&stack, &alice, app, detached).await;
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    assert_eq!(ended["exit_code"], 0);
    stack
        .until(30, "the detached run's line in sky logs", || async {
            sky.run(&["logs", "shop"], None)
                .await
                .stdout
                .contains(&format!("[run.{detached}] detached hello"))
        })
        .await;

    // Its time limit ends a run, and it is removed.
    let started = start_run(
        &stack,
        &alice,
        app,
        json!({"command": "sleep 120", "ttl_secs": 2}),
    )
    .await;
    let limited = started["run"]["id"].as_i64().unwrap();
    let ended = run_ends(&stack, &alice, app, limited).await;
    assert_eq!(ended["status"], "failed");
    assert!(
        ended["failure"]
            .as_str()
            .unwrap()
            .contains("time limit of 2 s"),
        "{ended:#}"
    );
    assert!(run_container(&stack, app, limited).is_none());

    // A session that closes ends its command.
    let started = start_run(
        &stack,
        &alice,
        app,
        json!({"command": "sleep 120", "attach": true}),
    )
    .await;
    let abandoned = started["run"]["id"].as_i64().unwrap();
    let mut socket = open_session(&stack, &started).await;
    let mut said = Said::default();
    read_until(&mut socket, &mut said, |s| {
        s.controls.iter().any(|c| c["type"] == "started")
    })
    .await;
    assert!(run_container(&stack, app, abandoned).is_some());
    drop(socket);
    let ended = run_ends(&stack, &alice, app, abandoned).await;
    assert_eq!(ended["failure"], "the session ended", "{ended:#}");
    assert!(run_container(&stack, app, abandoned).is_none());

    // A stopped run ends too.
    let started = start_run(&stack, &alice, app, json!({"command": "sleep 120"})).await;
    let stopped = started["run"]["id"].as_i64().unwrap();
    let path = format!("/api/paas/applications/{app}/runs/{stopped}");
    stack
        .until(30, "the run runs", || async {
            stack.get(&path, &alice).await["status"] == "running"
        })
        .await;
    let (status, _) = stack.post(&format!("{path}/stop"), &alice, json!({})).await;
    assert_eq!(status, 202);
    let ended = run_ends(&stack, &alice, app, stopped).await;
    assert_eq!(ended["failure"], "the run was stopped", "{ended:#}");
    assert!(run_container(&stack, app, stopped).is_none());

    // Another customer reaches none of it, nor a session with a made-up ticket.
    let (status, _) = stack
        .call(
            reqwest::Method::GET,
            &format!("/api/paas/applications/{app}/runs"),
            &bob,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let forged = tokio_tungstenite::connect_async(format!(
        "{}/api/paas/runs/{stopped}/session?ticket=spr_0000",
        stack.base.replacen("http://", "ws://", 1)
    ))
    .await;
    assert!(forged.is_err());

    // The web process served throughout, untouched.
    let (code, _) = through_ingress(agent.ingress_port, "shop.apps.test", "/")
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(stack.running(app), 1);
}
