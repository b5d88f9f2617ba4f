//! A task's log as the agent collects it and ships it in numbered batches.
//! A log can be capped: it keeps its first half and its last half, and one
//! line says how many bytes between them were left out (a build that prints
//! 50 MB keeps its start, where it says what it builds, and its end, where it
//! says what failed). Long lines are cut, batches stay within what the
//! control plane takes, and a secret can be scrubbed from every line.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use skypanel_protocol::limits::{MAX_LOG_BATCH_BYTES, MAX_TASK_LOG_LINE_BYTES, clip};

#[derive(Clone, Default)]
pub struct TaskLog {
    inner: Arc<Mutex<LogState>>,
    seq: Arc<AtomicI32>,
}

#[derive(Default)]
struct LogState {
    /// Lines waiting to be shipped.
    lines: VecDeque<String>,
    /// Bytes of the log's head taken so far.
    head: u64,
    /// The most bytes the log keeps; `None` for no cap.
    cap: Option<u64>,
    /// Past the head: the latest lines, at most half the cap.
    tail: VecDeque<String>,
    tail_bytes: u64,
    /// Bytes left out between the head and the tail.
    left_out: u64,
    secret: Option<String>,
}

fn size(line: &str) -> u64 {
    line.len() as u64 + 1
}

impl TaskLog {
    pub fn line(&self, line: impl Into<String>) {
        let Ok(mut state) = self.inner.lock() else {
            return;
        };
        let mut line: String = line.into();
        if let Some(secret) = state.secret.as_deref().filter(|s| !s.is_empty()) {
            line = line.replace(secret, "***");
        }
        let line = clip(&line, MAX_TASK_LOG_LINE_BYTES).into_owned();
        let Some(cap) = state.cap else {
            state.lines.push_back(line);
            return;
        };
        let half = cap / 2;
        if state.tail.is_empty() && state.head + size(&line) <= half {
            state.head += size(&line);
            state.lines.push_back(line);
            return;
        }
        state.tail_bytes += size(&line);
        state.tail.push_back(line);
        while state.tail_bytes > half {
            let Some(old) = state.tail.pop_front() else {
                break;
            };
            state.tail_bytes -= size(&old);
            state.left_out += size(&old);
        }
    }

    /// Keeps at most `bytes` of log: its first half and its last half.
    pub fn limit(&self, bytes: u64) {
        if let Ok(mut state) = self.inner.lock() {
            state.cap = Some(bytes.max(1024));
        }
    }

    /// Scrubs `secret` from every line from now on.
    pub fn hide(&self, secret: Option<String>) {
        if let Ok(mut state) = self.inner.lock() {
            state.secret = secret;
        }
    }

    /// The work is over: the kept tail follows the head, after a line
    /// saying what was left out.
    pub fn finish(&self) {
        let Ok(mut state) = self.inner.lock() else {
            return;
        };
        if state.left_out > 0 {
            let note = format!(
                "[… {} bytes of the log were left out here: it keeps its first and last {} KiB …]",
                state.left_out,
                state.cap.unwrap_or(0) / 2 / 1024
            );
            state.lines.push_back(note);
            state.left_out = 0;
        }
        let tail = std::mem::take(&mut state.tail);
        state.tail_bytes = 0;
        state.lines.extend(tail);
    }

    /// Takes the lines waiting, at most one batch's worth.
    pub fn drain(&self) -> Vec<String> {
        let Ok(mut state) = self.inner.lock() else {
            return Vec::new();
        };
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(line) = state.lines.front() {
            if !batch.is_empty() && bytes + line.len() + 1 > MAX_LOG_BATCH_BYTES {
                break;
            }
            bytes += line.len() + 1;
            if let Some(line) = state.lines.pop_front() {
                batch.push(line);
            }
        }
        batch
    }

    /// The sequence number of the next batch (0, 1, 2 …).
    pub fn next_seq(&self) -> i32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(log: &TaskLog) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let batch = log.drain();
            if batch.is_empty() {
                return lines;
            }
            let bytes: usize = batch.iter().map(|l| l.len() + 1).sum();
            assert!(bytes <= MAX_LOG_BATCH_BYTES + 1, "a batch of {bytes} bytes");
            lines.extend(batch);
        }
    }

    #[test]
    fn a_flood_keeps_its_head_and_its_tail_and_says_what_was_left_out() {
        let log = TaskLog::default();
        log.limit(64 * 1024);
        for i in 0..100_000 {
            log.line(format!("line {i:06} {}", "x".repeat(40)));
        }
        log.finish();
        let lines = all(&log);
        assert_eq!(lines[0], format!("line 000000 {}", "x".repeat(40)));
        assert_eq!(
            lines.last().unwrap(),
            &format!("line 099999 {}", "x".repeat(40))
        );
        let note = lines.iter().find(|l| l.contains("were left out")).unwrap();
        assert!(note.contains("first and last 32 KiB"), "{note}");
        let kept: usize = lines.iter().map(|l| l.len() + 1).sum();
        assert!(kept <= 64 * 1024 + 200, "{kept} bytes kept");
    }

    #[test]
    fn one_enormous_line_is_cut_and_batches_stay_small() {
        let log = TaskLog::default();
        log.line("x".repeat(10 * 1024 * 1024));
        for _ in 0..100 {
            log.line("y".repeat(10_000));
        }
        let lines = all(&log);
        assert_eq!(lines.len(), 101);
        assert!(lines[0].len() <= MAX_TASK_LOG_LINE_BYTES && lines[0].ends_with("bytes cut]"));
    }

    #[test]
    fn secrets_are_scrubbed() {
        let log = TaskLog::default();
        log.hide(Some("s3cret".into()));
        log.line("token s3cret here");
        assert_eq!(log.drain(), vec!["token *** here".to_string()]);
    }
}
