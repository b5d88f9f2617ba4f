//! One-off runs: what a caller asks for, and a run as its owner sees it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use skypanel_store::runs::Run;

/// A command to run once in a new container of a release.
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RunCreate {
    /// The command line, run by `/bin/sh -c` (at most 8 KiB). It is listed
    /// with the run: do not put secrets in it.
    pub command: String,
    /// The release to run (its image and environment); the one serving
    /// when absent.
    #[serde(default)]
    pub release: Option<i32>,
    /// Variables for this run only, over the release's.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    /// Attached: the answer carries a one-time ticket that opens the
    /// session (a WebSocket, see `session`); detached (the default): the
    /// output goes to the application's logs.
    #[serde(default)]
    pub attach: Option<bool>,
    /// A terminal for the command (attached runs only).
    #[serde(default)]
    pub tty: Option<bool>,
    /// The terminal's size.
    #[serde(default)]
    #[oai(validator(maximum(value = "1000")))]
    pub cols: Option<u16>,
    #[serde(default)]
    #[oai(validator(maximum(value = "1000")))]
    pub rows: Option<u16>,
    /// The longest the command may run, in seconds (1 to 86400; default 3600).
    #[serde(default)]
    pub ttl_secs: Option<u32>,
}

/// A one-off run.
#[derive(Object, Debug)]
pub struct RunView {
    pub id: i64,
    pub application_id: i64,
    /// `run.<id>`: how its lines are named in the application's logs.
    pub name: String,
    /// The release it runs.
    pub release: i32,
    pub command: String,
    pub attach: bool,
    pub tty: bool,
    /// `pending` (on its way to the node), `running`, `succeeded` (exit 0)
    /// or `failed` (another exit code, or `failure` says why).
    pub status: String,
    #[oai(nullable)]
    pub exit_code: Option<i32>,
    #[oai(nullable)]
    pub failure: Option<String>,
    /// The user who started it.
    pub started_by: i64,
    pub ttl_secs: i32,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub ended_at: Option<DateTime<Utc>>,
    /// How long it ran (so far), billed per second at the plan's rate.
    #[oai(nullable)]
    pub duration_secs: Option<i64>,
}

impl RunView {
    pub fn of(run: Run, now: DateTime<Utc>) -> Self {
        let duration_secs = run.duration_secs(now);
        Self {
            id: run.id,
            application_id: run.application_id,
            name: format!("run.{}", run.id),
            release: run.release_version,
            command: run.command,
            attach: run.attach,
            tty: run.tty,
            status: run.status,
            exit_code: run.exit_code,
            failure: run.failure,
            started_by: run.started_by,
            ttl_secs: run.ttl_secs,
            created_at: run.created_at,
            started_at: run.started_at,
            ended_at: run.ended_at,
            duration_secs,
        }
    }
}

/// How to open an attached run's session.
#[derive(Object, Debug)]
pub struct RunSession {
    /// Where the WebSocket is, under the API's address
    /// (`/api/paas/runs/<id>/session`; `ws://` or `wss://` as the API's scheme).
    pub path: String,
    /// The one-time ticket, as the `ticket` query parameter. It opens the
    /// session once, within a minute of the run's container starting.
    pub ticket: String,
}

/// A run just started.
#[derive(Object, Debug)]
pub struct RunStarted {
    pub run: RunView,
    /// For an attached run.
    #[oai(nullable)]
    pub session: Option<RunSession>,
}
