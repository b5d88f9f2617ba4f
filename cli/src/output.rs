//! How `sky` prints: aligned tables and `key: value` blocks for people, the
//! API's JSON with `--json`, and a spinner on standard error while a build
//! runs (only when standard error is a terminal).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::Value;

/// A value as text: strings bare, `null` empty.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints `rows` of `items` as an aligned table with `headers`.
pub fn table(headers: &[&str], items: &[Value], columns: &[&str]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|c| text(&item[*c])).collect())
        .collect();
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
    if items.is_empty() {
        println!("(none)");
    }
}

/// Prints `key: value` lines of the fields of `item`.
pub fn fields(item: &Value, keys: &[&str]) {
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    for key in keys {
        let value = text(&item[*key]);
        if !value.is_empty() {
            println!("{key:<width$}  {value}");
        }
    }
}

/// Prints JSON, pretty.
pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A spinner on standard error, when it is a terminal; stops when dropped.
pub struct Spinner {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Spinner {
    pub fn start(label: String) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { task: None };
        }
        let task = tokio::spawn(async move {
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            for frame in FRAMES.iter().cycle() {
                eprint!("\r\x1b[2K{frame} {label}");
                let _ = std::io::stderr().flush();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { task: Some(task) }
    }

    /// Prints a line above the spinner.
    pub fn line(&self, line: &str) {
        if self.task.is_some() {
            eprint!("\r\x1b[2K");
        }
        println!("{line}");
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            eprint!("\r\x1b[2K");
        }
    }
}
