//! An attached run's session, as WebSocket messages. The caller (`sky run`)
//! and the node each hold one WebSocket to the control plane, which relays
//! every message from one to the other unchanged:
//!
//! - binary messages carry bytes of one stream: the first byte names it
//!   ([`STDIN`] from the caller, [`STDOUT`] or [`STDERR`] from the node; with
//!   a terminal everything the command writes comes as `STDOUT`), the rest
//!   are the bytes;
//! - text messages are [`Control`] JSON: the caller's terminal size and the
//!   end of its input, the node's "the command started" and its exit code,
//!   or why the session could not go on.

use serde::{Deserialize, Serialize};

/// Bytes the caller typed.
pub const STDIN: u8 = 0;
/// Bytes the command wrote to its standard output (or its terminal).
pub const STDOUT: u8 = 1;
/// Bytes the command wrote to its standard error.
pub const STDERR: u8 = 2;

/// The most bytes of one binary message.
pub const MAX_CHUNK: usize = 32 * 1024;

/// A control message (a text message of the session).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// The caller's terminal has this size now.
    Resize { cols: u16, rows: u16 },
    /// The caller's input ended (its standard input was closed).
    Eof,
    /// (To the node.) The caller is there: start the command.
    Attached,
    /// The node started the command; what the caller types reaches it.
    Started,
    /// The command exited with `code`; nothing follows.
    Exit { code: i32 },
    /// The session cannot go on, and why; nothing follows.
    Error { message: String },
}

impl Control {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a control message; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A binary message carrying `bytes` of `stream`.
pub fn frame(stream: u8, bytes: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(bytes.len() + 1);
    message.push(stream);
    message.extend_from_slice(bytes);
    message
}

/// The stream and the bytes of a binary message; `None` when it is empty.
pub fn unframe(message: &[u8]) -> Option<(u8, &[u8])> {
    let (&stream, bytes) = message.split_first()?;
    Some((stream, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_name_their_stream() {
        let message = frame(STDERR, b"oops\n");
        assert_eq!(unframe(&message), Some((STDERR, &b"oops\n"[..])));
        assert_eq!(unframe(&frame(STDIN, b"")), Some((STDIN, &b""[..])));
        assert_eq!(unframe(&[]), None);
    }

    #[test]
    fn control_messages_are_tagged_json() {
        let resize = Control::Resize {
            cols: 120,
            rows: 40,
        };
        assert_eq!(
            resize.to_text(),
            r#"{"type":"resize","cols":120,"rows":40}"#
        );
        assert_eq!(Control::parse(&resize.to_text()), Some(resize));
        assert_eq!(
            Control::parse(r#"{"type":"exit","code":3}"#),
            Some(Control::Exit { code: 3 })
        );
        assert_eq!(Control::parse("hello"), None);
        assert_eq!(Control::parse(r#"{"type":"reboot"}"#), None);
    }
}
