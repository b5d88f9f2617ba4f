//! `sky run` and `sky run:detached`: one-off commands in a new container of
//! the application's release. Attached, the local terminal is the
//! command's: raw mode when it is a terminal (so Ctrl-C, arrows and
//! full-screen programs reach the command), its size sent at the start and
//! on every resize, standard input to the command and the command's output
//! back, through the control plane's WebSocket relay. `sky` exits with the
//! command's exit code.

use std::io::{IsTerminal, Write};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use skypanel_protocol::session::{self, Control, MAX_CHUNK, STDERR, STDIN, STDOUT};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::client::{Api, CliError};

/// What `sky run` was asked.
pub struct RunArgs<'a> {
    pub app_id: i64,
    pub app: &'a str,
    pub command: &'a [String],
    pub release: Option<i32>,
    pub env: &'a [String],
    pub ttl: Option<u32>,
    pub no_tty: bool,
}

/// The command line `words` make for `/bin/sh -c`: one word is taken as it
/// is (`sky run app -- 'echo $HOME'`); several are quoted each as needed,
/// so `sky run app -- sh -c 'exit 3'` runs what it says.
pub fn command_line(words: &[String]) -> String {
    if let [one] = words {
        return one.clone();
    }
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn env_of(pairs: &[String]) -> Result<serde_json::Map<String, Value>, CliError> {
    let mut env = serde_json::Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(CliError::Usage(format!("{pair:?} is not KEY=VALUE")));
        };
        env.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(env)
}

/// Starts a detached run; answers the run.
pub async fn detached(api: &Api, args: &RunArgs<'_>) -> Result<Value, CliError> {
    let body = json!({
        "command": command_line(args.command),
        "release": args.release,
        "env": env_of(args.env)?,
        "attach": false,
        "ttl_secs": args.ttl,
    });
    let started = api
        .post(&format!("/paas/applications/{}/runs", args.app_id), &body)
        .await?;
    Ok(started["run"].clone())
}

/// The local terminal's size, when standard output is one.
fn terminal_size() -> Option<(u16, u16)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// Puts the terminal back as it was when dropped.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enter() -> Option<Self> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// Runs the command attached; answers its exit code.
pub async fn attached(api: &Api, args: &RunArgs<'_>) -> Result<i32, CliError> {
    let tty = !args.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (cols, rows) = if tty {
        terminal_size().unwrap_or((80, 24))
    } else {
        (80, 24)
    };
    let mut env = env_of(args.env)?;
    if tty && let Ok(term) = std::env::var("TERM") {
        env.entry("TERM").or_insert(Value::String(term));
    }
    let command = command_line(args.command);
    let body = json!({
        "command": command,
        "release": args.release,
        "env": env,
        "attach": true,
        "tty": tty,
        "cols": cols,
        "rows": rows,
        "ttl_secs": args.ttl,
    });
    let started = api
        .post(&format!("/paas/applications/{}/runs", args.app_id), &body)
        .await?;
    let run_id = started["run"]["id"].as_i64().unwrap_or_default();
    let path = started["session"]["path"].as_str().unwrap_or_default();
    let ticket = started["session"]["ticket"].as_str().unwrap_or_default();
    eprint!("Running {command} on {}... ", args.app);
    let _ = std::io::stderr().flush();
    let url = format!("{}{path}?ticket={ticket}", api.ws_base());
    let request = url
        .into_client_request()
        .map_err(|e| CliError::Usage(format!("bad API address: {e}")))?;
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| CliError::Network {
            url: api.ws_base(),
            reason: e.to_string(),
        })?;
    let (mut to_run, mut from_run) = socket.split();

    let mut raw = None;
    let mut input = [0u8; 4096];
    let mut stdin = tokio::io::stdin();
    let mut stdin_open = false;
    let mut resized = if tty {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
    } else {
        None
    };
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let ended = loop {
        tokio::select! {
            message = from_run.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    match session::unframe(&bytes) {
                        Some((STDOUT, out)) => {
                            let _ = stdout.write_all(out);
                            let _ = stdout.flush();
                        }
                        Some((STDERR, out)) => {
                            let _ = stderr.write_all(out);
                            let _ = stderr.flush();
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Text(text))) => match Control::parse(&text) {
                    Some(Control::Started) => {
                        eprintln!("up, run.{run_id}");
                        if tty {
                            raw = RawMode::enter();
                        }
                        stdin_open = true;
                    }
                    Some(Control::Exit { code }) => break Ok(code),
                    Some(Control::Error { message }) => break Err(message),
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None => {
                    break Err("the session closed".to_string());
                }
                Some(Err(err)) => break Err(format!("the session broke: {err}")),
                Some(Ok(_)) => {}
            },
            read = stdin.read(&mut input), if stdin_open => match read {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    let _ = to_run.send(Message::text(Control::Eof.to_text())).await;
                }
                Ok(n) => {
                    for piece in input[..n].chunks(MAX_CHUNK) {
                        let _ = to_run.send(Message::binary(session::frame(STDIN, piece))).await;
                    }
                }
            },
            Some(()) = async {
                match resized.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((cols, rows)) = terminal_size() {
                    let _ = to_run.send(Message::text(Control::Resize { cols, rows }.to_text())).await;
                }
            }
        }
    };
    drop(raw);
    let _ = to_run.close().await;
    match ended {
        Ok(code) => Ok(code),
        Err(why) => {
            eprintln!("\nsky: {why}");
            // The run's own exit code, when it has one.
            let run = api
                .get(&format!("/paas/applications/{}/runs/{run_id}", args.app_id))
                .await
                .unwrap_or(Value::Null);
            let code = run["exit_code"].as_i64().filter(|c| *c != 0).unwrap_or(1);
            Ok(i32::try_from(code).unwrap_or(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::command_line;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn one_word_is_the_command_line_and_several_are_quoted() {
        assert_eq!(
            command_line(&words(&["echo $HOME; exit 3"])),
            "echo $HOME; exit 3"
        );
        assert_eq!(
            command_line(&words(&["sh", "-c", "echo $GREETING; exit 3"])),
            "sh -c 'echo $GREETING; exit 3'"
        );
        assert_eq!(
            command_line(&words(&["printf", "it's", ""])),
            r"printf 'it'\''s' ''"
        );
        assert_eq!(
            command_line(&words(&["python", "manage.py", "migrate", "--noinput"])),
            "python manage.py migrate --noinput"
        );
    }
}
