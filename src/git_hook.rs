//! `skypanel git-hook`: the `pre-receive` hook of the applications'
//! repositories. It sends the refs a push updates (its standard input) and
//! where the push's objects wait to the control plane that runs the push
//! (`SKYPANEL_PUSH_URL`, with the push's `SKYPANEL_PUSH_TICKET`), prints the
//! `log` lines of the answer as they come (git shows them to the pusher as
//! `remote:` lines) and exits with its `exit` code: non-zero refuses the push.

use std::io::Write;
use std::process::ExitCode;

/// Runs the hook; every failure is a line for the pusher and exit 1.
pub async fn run() -> ExitCode {
    match hook().await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code),
        Err(why) => {
            println!(" !     {why}");
            ExitCode::FAILURE
        }
    }
}

async fn hook() -> Result<u8, String> {
    let url = std::env::var("SKYPANEL_PUSH_URL")
        .map_err(|_| "this hook runs only in a push to the platform (no SKYPANEL_PUSH_URL)")?;
    let ticket = std::env::var("SKYPANEL_PUSH_TICKET")
        .map_err(|_| "this hook runs only in a push to the platform (no SKYPANEL_PUSH_TICKET)")?;
    let mut updates = Vec::new();
    // A few lines git writes at once: read before anything else runs.
    for line in std::io::stdin().lines() {
        let line = line.map_err(|e| format!("cannot read the pushed refs: {e}"))?;
        let mut parts = line.split_whitespace();
        if let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) {
            updates.push(serde_json::json!({"old": old, "new": new, "name": name}));
        }
    }
    let call = serde_json::json!({
        "quarantine": std::env::var("GIT_QUARANTINE_PATH").ok(),
        "updates": updates,
    });
    let mut response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(ticket)
        .json(&call)
        .send()
        .await
        .map_err(|e| format!("the platform did not answer: {e}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(format!(
            "the platform refused the push ({status}): {}",
            text.trim()
        ));
    }
    let mut pending = Vec::new();
    let mut out = std::io::stdout();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the platform stopped answering: {e}"))?
    {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).to_string();
            if let Some(text) = line.strip_prefix("log ") {
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            } else if let Some(code) = line.strip_prefix("exit ") {
                return Ok(code.trim().parse().unwrap_or(1));
            }
        }
    }
    Err("the platform's answer ended before the deploy did; see sky builds".into())
}
