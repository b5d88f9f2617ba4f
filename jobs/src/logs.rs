//! Runtime logs of applications: one capped Redis stream per application
//! (`<prefix>:logs:app:<id>`, the newest lines kept), appended by the agents'
//! batches and read back as a tail or followed. Losing them loses logs only.

use redis::AsyncCommands;
use redis::streams::{StreamMaxlen, StreamRangeReply};
use serde::{Deserialize, Serialize};

use crate::{Error, bounded};

/// One line an application wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// The stream entry's id: pass it back to read what came after.
    pub id: String,
    /// When the container wrote it (RFC 3339, from Docker).
    pub timestamp: String,
    pub instance: i32,
    pub release: i32,
    /// `web.0`, `worker.1`, `release`, `run.12` (empty in lines stored
    /// before processes were named).
    pub process: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
}

/// A line to append (its id is given by Redis).
#[derive(Debug, Clone)]
pub struct NewLine<'a> {
    pub timestamp: &'a str,
    pub instance: i32,
    pub release: i32,
    pub process: &'a str,
    pub stream: &'a str,
    pub line: &'a str,
}

/// The log streams; cheap to clone.
#[derive(Clone)]
pub struct LogStreams {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    /// Lines kept per application.
    cap: usize,
}

impl LogStreams {
    pub fn new(conn: redis::aio::ConnectionManager, prefix: &str, cap: usize) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
            cap,
        }
    }

    fn key(&self, app_id: i64) -> String {
        format!("{}:logs:app:{app_id}", self.prefix)
    }

    /// Appends lines to an application's stream, trimming it to about its cap.
    pub async fn append(&self, app_id: i64, lines: &[NewLine<'_>]) -> Result<(), Error> {
        if lines.is_empty() {
            return Ok(());
        }
        let key = self.key(app_id);
        let mut pipe = redis::pipe();
        for l in lines {
            pipe.xadd_maxlen(
                &key,
                StreamMaxlen::Approx(self.cap),
                "*",
                &[
                    ("ts", l.timestamp.to_string()),
                    ("instance", l.instance.to_string()),
                    ("release", l.release.to_string()),
                    ("process", l.process.to_string()),
                    ("stream", l.stream.to_string()),
                    ("line", l.line.to_string()),
                ],
            )
            .ignore();
        }
        let mut conn = self.conn.clone();
        bounded(async {
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| Error::Redis(e.to_string()))
        })
        .await
    }

    /// The last `n` lines, oldest first.
    pub async fn tail(&self, app_id: i64, n: usize) -> Result<Vec<LogLine>, Error> {
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = bounded(async {
            conn.xrevrange_count(self.key(app_id), "+", "-", n)
                .await
                .map_err(|e| Error::Redis(e.to_string()))
        })
        .await?;
        let mut lines = lines_of(reply);
        lines.reverse();
        Ok(lines)
    }

    /// Up to `n` lines after entry `after`, oldest first.
    pub async fn after(&self, app_id: i64, after: &str, n: usize) -> Result<Vec<LogLine>, Error> {
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = bounded(async {
            conn.xrange_count(self.key(app_id), format!("({after}"), "+", n)
                .await
                .map_err(|e| Error::Redis(e.to_string()))
        })
        .await?;
        Ok(lines_of(reply))
    }

    /// Removes an application's stream (it was deleted).
    pub async fn remove(&self, app_id: i64) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        bounded(async {
            conn.del::<_, ()>(self.key(app_id))
                .await
                .map_err(|e| Error::Redis(e.to_string()))
        })
        .await
    }
}

fn lines_of(reply: StreamRangeReply) -> Vec<LogLine> {
    reply
        .ids
        .into_iter()
        .map(|entry| {
            let text = |field: &str| entry.get::<String>(field).unwrap_or_default();
            LogLine {
                timestamp: text("ts"),
                instance: text("instance").parse().unwrap_or(0),
                release: text("release").parse().unwrap_or(0),
                process: text("process"),
                stream: text("stream"),
                line: text("line"),
                id: entry.id,
            }
        })
        .collect()
}
