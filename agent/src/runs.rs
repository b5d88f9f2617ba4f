//! One-off runs (`sky run`): a new container of the release with the run's
//! command, never restarted, removed once it ended.
//!
//! Detached, its output goes to the application's logs (followed from its
//! first line) and it ends with its command or its time limit. Attached,
//! the node opens the run's session to the control plane (it dials out),
//! waits for the caller to arrive, attaches to the container before
//! starting it (nothing written is missed), then relays: the caller's bytes
//! to the command's standard input, the command's output back, terminal
//! sizes to the container's TTY. The session closing kills the command.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::{AttachContainerOptions, ResizeContainerTTYOptions};
use futures::{SinkExt, StreamExt};
use skypanel_protocol::session::{self, Control, MAX_CHUNK, STDERR, STDIN, STDOUT};
use skypanel_protocol::task::{RunResult, RunSpec};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::applogs::AppLogs;
use crate::client::ControlPlane;
use crate::crash::CrashPolicy;
use crate::docker::{Engine, RUN, Role, SESSION};
use crate::executor::{TaskFailure, TaskLog};

/// Docker's detach keys are left to a sequence no one types: the default
/// (ctrl-p ctrl-q) would cut a shell's session on its history keys.
const DETACH_KEYS: &str = "ctrl-^,ctrl-^,ctrl-^,ctrl-^";

/// What a run needs of the agent.
#[derive(Clone)]
pub struct Runs {
    pub engine: Engine,
    pub crash: CrashPolicy,
    pub client: ControlPlane,
    pub logs: AppLogs,
}

fn docker(what: &str, err: &bollard::errors::Error) -> TaskFailure {
    TaskFailure::node(format!("{what}: {err}"))
}

/// Why a run ended before its command did.
fn time_limit(ttl: Duration) -> String {
    format!("stopped after its time limit of {} s", ttl.as_secs())
}
const STOPPED: &str = "the run was stopped";

impl Runs {
    /// Carries out a run to its end; answers its exit code (and why, when
    /// it did not end by itself).
    pub async fn run(
        &self,
        spec: &RunSpec,
        log: &TaskLog,
        cancel: watch::Receiver<bool>,
    ) -> Result<RunResult, TaskFailure> {
        let app = &spec.app;
        let name = self.engine.run_name(app.app_id, spec.run_id);
        // A container of this run left by an agent that stopped mid-run.
        let _ = self.engine.remove(&name).await;
        let chosen = crate::images::choose(&self.engine, app, log).await?;
        let network = self
            .engine
            .ensure_network(app.user_id)
            .await
            .map_err(|e| docker("cannot create the application network", &e))?;
        let process = format!("run.{}", spec.run_id);
        let role = Role {
            process: &process,
            command: Some(&spec.command),
            one_off: Some(if spec.attach { SESSION } else { RUN }),
            session: spec.attach.then_some(spec.tty),
        };
        self.engine
            .ensure_container(app, &chosen.image_id, &name, 0, role, &network)
            .await
            .map_err(|e| docker("cannot create the run's container", &e))?;
        self.crash.expect_stop(&name);
        log.line(format!("run.{} of release {}", spec.run_id, app.release));
        let ended = if spec.attach {
            self.attached(spec, &name, cancel).await
        } else {
            self.detached(spec, &name, cancel).await
        };
        let _ = self.engine.remove(&name).await;
        ended
    }

    /// Tells the control plane the container started (billing starts),
    /// trying a few times; the run goes on either way.
    async fn say_started(&self, run_id: i64) {
        for _ in 0..5 {
            match self.client.run_started(run_id).await {
                Ok(_) => return,
                Err(err) if err.is_transient() => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(err) => {
                    tracing::warn!(run_id, error = %err, "the control plane refused the run's start");
                    return;
                }
            }
        }
    }

    async fn detached(
        &self,
        spec: &RunSpec,
        name: &str,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<RunResult, TaskFailure> {
        let managed = self
            .engine
            .managed(Some(spec.app.app_id))
            .await
            .map_err(|e| docker("cannot list containers", &e))?
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| TaskFailure::node("the run's container went away"))?;
        self.engine
            .start(name)
            .await
            .map_err(|e| docker("cannot start the run", &e))?;
        // Followed from its first line (the container stays until the
        // follower read its last): a command that ends at once still leaves
        // its lines in the logs.
        let follower = self.logs.follow_from_start(managed);
        self.say_started(spec.run_id).await;
        let ttl = Duration::from_secs(spec.ttl_secs.max(1));
        let failure = tokio::select! {
            exited = self.engine.wait_exit(name) => {
                let code = exited.map_err(|e| docker("the run's container went away", &e))?;
                let _ = tokio::time::timeout(Duration::from_secs(5), follower).await;
                return Ok(RunResult { exit_code: Some(exit_code(code)), failure: None });
            }
            () = tokio::time::sleep(ttl) => time_limit(ttl),
            _ = cancel.changed() => STOPPED.to_string(),
        };
        let _ = self.engine.stop(name, 5).await;
        let code = self.engine.wait_exit(name).await.unwrap_or(137);
        let _ = tokio::time::timeout(Duration::from_secs(5), follower).await;
        Ok(RunResult {
            exit_code: Some(exit_code(code)),
            failure: Some(failure),
        })
    }

    async fn attached(
        &self,
        spec: &RunSpec,
        name: &str,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<RunResult, TaskFailure> {
        let socket = self
            .client
            .open_session(spec.run_id)
            .await
            .map_err(|e| TaskFailure::node(format!("cannot open the run's session: {e}")))?;
        let (mut to_caller, mut from_caller) = socket.split();
        // The caller arrives (the control plane says so), or the run ends
        // without having started.
        let wait = Duration::from_secs(spec.attach_timeout_secs.max(1));
        let arrived = tokio::time::timeout(wait, async {
            while let Some(Ok(message)) = from_caller.next().await {
                if let Message::Text(text) = &message {
                    match Control::parse(text) {
                        Some(Control::Attached) => return Ok(()),
                        Some(Control::Error { message }) => return Err(message),
                        _ => {}
                    }
                }
            }
            Err("the control plane closed the session".to_string())
        })
        .await;
        match arrived {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                return Ok(RunResult {
                    exit_code: None,
                    failure: Some(format!("the session never opened: {why}")),
                });
            }
            Err(_) => {
                let _ = to_caller.close().await;
                return Ok(RunResult {
                    exit_code: None,
                    failure: Some(format!(
                        "no one opened the session within {} s",
                        wait.as_secs()
                    )),
                });
            }
        }
        let options = AttachContainerOptions {
            detach_keys: Some(DETACH_KEYS.to_string()),
            logs: false,
            stream: true,
            stdin: true,
            stdout: true,
            stderr: true,
        };
        let attached = self
            .engine
            .raw()
            .attach_container(name, Some(options))
            .await
            .map_err(|e| docker("cannot attach to the run's container", &e))?;
        let mut output = attached.output;
        let mut input = Some(attached.input);
        self.engine
            .start(name)
            .await
            .map_err(|e| docker("cannot start the run", &e))?;
        if spec.tty && spec.cols > 0 && spec.rows > 0 {
            self.resize(name, spec.cols, spec.rows).await;
        }
        let _ = to_caller
            .send(Message::text(Control::Started.to_text()))
            .await;
        let started = self.clone();
        let run_id = spec.run_id;
        tokio::spawn(async move { started.say_started(run_id).await });

        let ttl = Duration::from_secs(spec.ttl_secs.max(1));
        let deadline = tokio::time::sleep(ttl);
        tokio::pin!(deadline);
        let mut failure = None;
        let mut caller_here = true;
        loop {
            tokio::select! {
                out = output.next() => match out {
                    Some(Ok(chunk)) => {
                        let (stream, bytes) = match chunk {
                            LogOutput::StdErr { message } => (STDERR, message),
                            LogOutput::StdOut { message } | LogOutput::Console { message } => (STDOUT, message),
                            LogOutput::StdIn { .. } => continue,
                        };
                        for piece in bytes.chunks(MAX_CHUNK) {
                            if to_caller.send(Message::binary(session::frame(stream, piece))).await.is_err() {
                                caller_here = false;
                                break;
                            }
                        }
                        if !caller_here {
                            failure = Some("the session ended".to_string());
                            break;
                        }
                    }
                    // The command closed its output: it is exiting.
                    Some(Err(_)) | None => break,
                },
                message = from_caller.next() => match message {
                    Some(Ok(Message::Binary(bytes))) => {
                        if let (Some((STDIN, typed)), Some(stdin)) = (session::unframe(&bytes), input.as_mut())
                            && (stdin.write_all(typed).await.is_err() || stdin.flush().await.is_err())
                        {
                            input = None;
                        }
                    }
                    Some(Ok(Message::Text(text))) => match Control::parse(&text) {
                        Some(Control::Resize { cols, rows }) if spec.tty => self.resize(name, cols, rows).await,
                        Some(Control::Eof) => {
                            if let Some(mut stdin) = input.take() {
                                let _ = stdin.shutdown().await;
                            }
                        }
                        _ => {}
                    },
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        caller_here = false;
                        failure = Some("the session ended".to_string());
                        break;
                    }
                    Some(Ok(_)) => {}
                },
                () = &mut deadline => {
                    failure = Some(time_limit(ttl));
                    break;
                }
                _ = cancel.changed() => {
                    failure = Some(STOPPED.to_string());
                    break;
                }
            }
        }
        if failure.is_some() {
            let _ = self.engine.stop(name, 2).await;
        }
        drop(input);
        let code = match tokio::time::timeout(Duration::from_secs(15), self.engine.wait_exit(name))
            .await
        {
            Ok(Ok(code)) => exit_code(code),
            _ => {
                let _ = self.engine.stop(name, 0).await;
                137
            }
        };
        if caller_here {
            let last = match &failure {
                Some(why) => Control::Error {
                    message: format!("{why} (exit code {code})"),
                },
                None => Control::Exit { code },
            };
            let _ = to_caller.send(Message::text(last.to_text())).await;
            let _ = to_caller.close().await;
        }
        Ok(RunResult {
            exit_code: Some(code),
            failure,
        })
    }

    async fn resize(&self, name: &str, cols: u16, rows: u16) {
        let options = ResizeContainerTTYOptions {
            h: i32::from(rows.clamp(1, 1000)),
            w: i32::from(cols.clamp(1, 1000)),
        };
        if let Err(err) = self.engine.raw().resize_container_tty(name, options).await {
            tracing::debug!(container = name, error = %err, "cannot resize the run's terminal");
        }
    }
}

fn exit_code(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(-1)
}
