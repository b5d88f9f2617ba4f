//! The lease stream: an agent's long-polls over one connection of its own.
//!
//! The agent sends `GET /api/internal/paas/nodes/{id}/lease-stream` with its
//! credential and `Upgrade: skypanel-lease/1`; the control plane answers
//! `101 Switching Protocols` and from then on the connection carries
//! newline-delimited JSON: the control plane first writes a [`Hello`] (so
//! the agent knows the upgrade reached it: a proxy that answers 101 without
//! passing the connection on is found at once, and the agent long-polls over
//! HTTP instead), then the agent writes one [`LeaseAsk`], the control
//! plane answers one [`LeaseReply`] (tasks, none when the wait ran out, or a
//! refusal after which it closes the connection), and so on. The asks mean
//! what the HTTP long-poll's query parameters mean (`POST …/leases`), with
//! the same replay of a repeated `request` id.
//!
//! Why: a waiting HTTP request holds the server's per-request machinery for
//! its whole wait (ARCHITECTURE.md, "The agents' protocol at fleet size"); a
//! waiting ask holds a few hundred bytes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::task::LeasedTask;

/// The `Upgrade` token of the lease stream.
pub const PROTOCOL: &str = "skypanel-lease/1";

/// The longest line of an ask the control plane reads.
pub const MAX_ASK_BYTES: usize = 1024;

/// The longest line of a reply the agent reads (32 tasks with their specs).
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// The path an agent upgrades on.
pub fn path(node_id: i64) -> String {
    format!("/api/internal/paas/nodes/{node_id}/lease-stream")
}

/// The first line on a stream, written by the control plane.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Hello {
    /// [`PROTOCOL`].
    pub hello: String,
}

impl Hello {
    pub fn new() -> Self {
        Self {
            hello: PROTOCOL.to_string(),
        }
    }
}

impl Default for Hello {
    fn default() -> Self {
        Self::new()
    }
}

/// One long-poll: lease up to `max` tasks, waiting up to `wait` seconds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LeaseAsk {
    pub wait: u64,
    pub max: i64,
    /// Names the ask: sent again (its reply was lost), it answers what the
    /// first one leased.
    #[serde(default)]
    pub request: Option<Uuid>,
}

/// Why an ask was refused: the API's error body.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub field: Option<String>,
    /// The HTTP status the same refusal has on the HTTP long-poll.
    pub status: u16,
}

/// The answer to one ask.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct LeaseReply {
    /// The tasks leased; empty when the wait ran out.
    #[serde(default)]
    pub tasks: Vec<LeasedTask>,
    /// Set when the ask was refused; the connection closes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
}

/// A line longer than the side's limit: the peer is not speaking the protocol.
#[derive(Debug, PartialEq, Eq)]
pub struct LineTooLong;

/// Cuts bytes read from a connection into lines, holding at most `limit`
/// bytes of an unfinished line.
#[derive(Debug)]
pub struct Lines {
    pending: Vec<u8>,
    limit: usize,
}

impl Lines {
    pub fn new(limit: usize) -> Self {
        Self {
            pending: Vec::new(),
            limit,
        }
    }

    /// Adds bytes just read.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), LineTooLong> {
        self.pending.extend_from_slice(bytes);
        let unfinished = match self.pending.iter().rposition(|b| *b == b'\n') {
            Some(end) => self.pending.len() - end - 1,
            None => self.pending.len(),
        };
        if unfinished > self.limit {
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// The next complete line, without its newline.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        let end = self.pending.iter().position(|b| *b == b'\n')?;
        let mut line: Vec<u8> = self.pending.drain(..=end).collect();
        line.pop();
        if self.pending.is_empty() {
            // An idle connection keeps no buffer.
            self.pending = Vec::new();
        }
        Some(line)
    }

    /// Whether bytes of an unfinished line are held.
    pub fn has_partial(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// One frame as written: its JSON and a newline.
pub fn frame<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_where_their_newline_is_whatever_the_reads() {
        let mut lines = Lines::new(64);
        lines.push(b"{\"wait\":2").unwrap();
        assert_eq!(lines.next_line(), None);
        lines.push(b"0,\"max\":8}\n{\"wa").unwrap();
        let ask: LeaseAsk = serde_json::from_slice(&lines.next_line().unwrap()).unwrap();
        assert_eq!(
            ask,
            LeaseAsk {
                wait: 20,
                max: 8,
                request: None
            }
        );
        assert_eq!(lines.next_line(), None);
        assert!(lines.has_partial());
        lines.push(b"it\":0,\"max\":1}\n").unwrap();
        assert_eq!(lines.next_line().unwrap(), b"{\"wait\":0,\"max\":1}");
        assert!(!lines.has_partial());
    }

    #[test]
    fn an_unfinished_line_past_the_limit_is_refused() {
        let mut lines = Lines::new(8);
        assert_eq!(lines.push(b"0123456789"), Err(LineTooLong));
        let mut lines = Lines::new(8);
        // Finished lines do not count against the limit.
        lines.push(b"0123456789\n0123").unwrap();
        assert_eq!(lines.next_line().unwrap(), b"0123456789");
    }

    #[test]
    fn a_refusal_reads_back_and_tasks_default_to_none() {
        let reply = LeaseReply {
            tasks: vec![],
            refused: Some(Refusal {
                code: "unauthorized".into(),
                message: "unknown or expired node credential".into(),
                field: None,
                status: 401,
            }),
        };
        let bytes = frame(&reply);
        assert_eq!(bytes.last(), Some(&b'\n'));
        let back: LeaseReply = serde_json::from_slice(&bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(back.refused, reply.refused);
        let empty: LeaseReply = serde_json::from_str("{\"tasks\":[]}").unwrap();
        assert!(empty.refused.is_none() && empty.tasks.is_empty());
    }
}
