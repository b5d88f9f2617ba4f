//! `/api/internal/paas/...`: the agent protocol. Registration with a one-time
//! token, heartbeats, credential rotation, long-polled leases, and the
//! fenced reports on a leased task (extend, status, logs).

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::{ApiResponse, OpenApi};
use skypanel_actors::Polled;
use skypanel_domain::credentials::{
    NODE_CREDENTIAL_PREFIX, REGISTRATION_TOKEN_PREFIX, generate_token, rotated_credential,
    token_digest,
};
use skypanel_jobs::NewLine;
use skypanel_protocol::limits::{
    MAX_APP_LOG_LINE_BYTES, MAX_APP_LOG_LINES, MAX_LOG_BATCH_BYTES, clip,
};
use skypanel_protocol::node::{
    AppLogAck, AppLogBatch, Heartbeat, HeartbeatAck, RegisterRequest, Registered, Rotated,
};
use skypanel_protocol::task::{
    Extended, LeaseRef, Leases, LogAck, LogBatch, StatusAck, StatusReport,
};
use skypanel_store::agents::{self, MachineInfo};
use skypanel_store::apps;
use skypanel_store::audit::Actor;
use skypanel_store::tasks::{self, Refusal};
use skypanel_store::wakeups::Forget;

use super::{Audit, Tag};
use crate::auth::{NODE_CREDENTIAL_HEADER, NodeAuth};
use crate::body::{JsonBody, JsonReply};
use crate::error::{ActorNotFound, ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct AgentsApi {
    pub state: AppState,
}

/// How long a previous credential keeps working after a rotation.
const ROTATION_GRACE_MINUTES: i64 = 10;
/// What a build's stored log may hold beyond the agent's cap: the line
/// saying what the agent left out between the log's head and tail.
const BUILD_LOG_SLACK: i64 = 64 * 1024;

#[derive(ApiResponse)]
pub enum RegisterAnswer {
    /// Registered: keep the credential, it is shown once.
    #[oai(status = 201)]
    Registered(JsonReply<Registered>),
}

#[derive(ApiResponse)]
pub enum LeaseAnswer {
    /// Tasks leased to this node.
    #[oai(status = 200)]
    Tasks(JsonReply<Leases>),
    /// Nothing to do within the wait.
    #[oai(status = 204)]
    Nothing,
}

fn refusal(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::StaleLease => ApiError::conflict(
            "stale_lease",
            "this lease is no longer yours: the task was handed to another attempt",
            Some("lease_id"),
        ),
        Refusal::Contradiction(message) => ApiError::conflict("conflict", message, Some("status")),
    }
}

impl AgentsApi {
    fn lease_ttl_secs(&self) -> ApiResult<i64> {
        Ok(self
            .state
            .orchestrator()?
            .context()
            .settings()
            .lease_ttl
            .as_secs() as i64)
    }
}

#[OpenApi(prefix_path = "/internal/paas", tag = "Tag::Agents")]
impl AgentsApi {
    /// Register a node's agent
    ///
    /// Exchanges the one-time registration token for the node's credential.
    /// A used, unknown or expired token answers 401.
    #[oai(
        path = "/nodes/register",
        method = "post",
        operation_id = "agentRegister"
    )]
    async fn register(
        &self,
        request: &Request,
        body: JsonBody<RegisterRequest>,
    ) -> ApiResult<RegisterAnswer> {
        let b = body.0;
        let refused =
            || ApiError::unauthorized("the registration token is unknown, already used or expired");
        if !b.registration_token.starts_with(REGISTRATION_TOKEN_PREFIX) {
            return Err(refused());
        }
        let credential = generate_token(NODE_CREDENTIAL_PREFIX);
        let info = MachineInfo {
            hostname: &b.hostname.chars().take(255).collect::<String>(),
            agent_version: &b.agent_version.chars().take(64).collect::<String>(),
            cpu_total: b.cpu_total.max(0),
            memory_total_mb: i32::try_from(b.memory_total_mb.max(0)).unwrap_or(i32::MAX),
            disk_total_mb: i32::try_from(b.disk_total_mb.max(0)).unwrap_or(i32::MAX),
        };
        let digest = token_digest(&credential);
        let mut conn = self.state.store().conn().await?;
        let node = agents::register(
            &mut conn,
            &token_digest(&b.registration_token),
            &digest,
            &info,
        )
        .await?
        .ok_or_else(refused)?;
        // A node registered again: its former credential is no longer good,
        // on any replica.
        self.state.forget(&mut conn, Forget::Node(node.id)).await;
        self.state.node_credentials().remember(digest, node.id);
        Audit::new(request, Actor::Node(node.id), "node.agent_registered")
            .on("node", node.id)
            .write(&mut conn)
            .await;
        drop(conn);
        let orchestrator = self.state.orchestrator()?;
        orchestrator.node_changed(node.id).await?;
        let settings = orchestrator.context().settings();
        Ok(RegisterAnswer::Registered(JsonReply(Registered {
            node_id: node.id,
            credential,
            heartbeat_interval_secs: settings.heartbeat_interval.as_secs(),
            lease_ttl_secs: settings.lease_ttl.as_secs(),
        })))
    }

    /// Report health, figures and the containers the node runs
    #[oai(
        path = "/nodes/:id/heartbeat",
        method = "post",
        operation_id = "agentHeartbeat"
    )]
    async fn heartbeat(
        &self,
        auth: NodeAuth,
        id: Path<i64>,
        body: JsonBody<Heartbeat>,
    ) -> ApiResult<JsonReply<HeartbeatAck>> {
        let node = auth.require(id.0)?;
        if body.0.node_id != node {
            return Err(ApiError::invalid(
                "node_id",
                "the heartbeat names another node",
            ));
        }
        skypanel_protocol::metrics::global().inc(
            "skypanel_agent_heartbeats_total",
            "Heartbeats received from agents.",
            &[],
        );
        let mut ack = self.state.orchestrator()?.heartbeat(node, body.0).await?;
        // A node still on the credential a rotation replaced lost that
        // rotation's answer: it rotates again (and gets the same credential)
        // before the grace period locks it out.
        ack.rotate_credential |= auth.previous_credential();
        Ok(JsonReply(ack))
    }

    /// Ship lines the node's application containers wrote
    ///
    /// Kept in a capped stream per application; lines of applications the
    /// node does not run are dropped.
    #[oai(
        path = "/nodes/:id/app-logs",
        method = "post",
        operation_id = "agentShipAppLogs"
    )]
    async fn app_logs(
        &self,
        auth: NodeAuth,
        id: Path<i64>,
        body: JsonBody<AppLogBatch>,
    ) -> ApiResult<JsonReply<AppLogAck>> {
        let node = auth.require(id.0)?;
        let batch = body.0;
        if batch.lines.len() > MAX_APP_LOG_LINES {
            return Err(ApiError::invalid(
                "lines",
                format!("a batch carries at most {MAX_APP_LOG_LINES} lines"),
            ));
        }
        let mut conn = self.state.store().conn().await?;
        let ours: std::collections::HashSet<i64> = apps::ids_on_node(&mut conn, node)
            .await?
            .into_iter()
            .collect();
        drop(conn);
        let clipped: Vec<_> = batch
            .lines
            .iter()
            .map(|entry| clip(&entry.line, MAX_APP_LOG_LINE_BYTES))
            .collect();
        let mut by_app: std::collections::BTreeMap<i64, Vec<NewLine<'_>>> = Default::default();
        let mut refused = 0;
        for (entry, line) in batch.lines.iter().zip(&clipped) {
            if !ours.contains(&entry.application_id) {
                refused += 1;
                continue;
            }
            by_app
                .entry(entry.application_id)
                .or_default()
                .push(NewLine {
                    timestamp: &entry.timestamp,
                    instance: entry.instance,
                    release: entry.release,
                    process: if entry.process.len() <= 64 {
                        &entry.process
                    } else {
                        ""
                    },
                    stream: if entry.stream == "stderr" {
                        "stderr"
                    } else {
                        "stdout"
                    },
                    line,
                });
        }
        let streams = self.state.log_streams()?;
        let mut stored = 0;
        for (app, lines) in &by_app {
            streams.append(*app, lines).await.map_err(|e| {
                tracing::warn!(error = %e, "cannot store application logs");
                ApiError::unavailable("unavailable", "application logs cannot be stored right now")
            })?;
            stored += lines.len();
        }
        Ok(JsonReply(AppLogAck { stored, refused }))
    }

    /// Replace the node's credential
    ///
    /// The old credential keeps working for 10 minutes, so a lost answer does
    /// not lock the agent out.
    #[oai(
        path = "/nodes/:id/credentials/rotate",
        method = "post",
        operation_id = "agentRotateCredential"
    )]
    async fn rotate(
        &self,
        request: &Request,
        auth: NodeAuth,
        id: Path<i64>,
    ) -> ApiResult<JsonReply<Rotated>> {
        let node = auth.require(id.0)?;
        // The credential that authenticated (the current one, or the previous
        // one within its grace period) decides the answer: the new credential
        // is derived from it, so a rotation delivered twice answers the same.
        let presented = request
            .header(NODE_CREDENTIAL_HEADER)
            .unwrap_or_default()
            .to_string();
        let credential =
            rotated_credential(self.state.settings().jwt_secret.as_bytes(), &presented);
        let digest = token_digest(&credential);
        let mut conn = self.state.store().conn().await?;
        let rotated = agents::rotate(
            &mut conn,
            node,
            &token_digest(&presented),
            &digest,
            chrono::Duration::minutes(ROTATION_GRACE_MINUTES),
        )
        .await?;
        if !rotated {
            // Not the current credential: the previous one, whose rotation
            // was done already. The same answer again, unless the current
            // credential came from elsewhere.
            let current = agents::credential_digest(&mut conn, node).await?;
            if current.as_deref() != Some(digest.as_str()) {
                return Err(ApiError::conflict(
                    "already_rotated",
                    "this credential was replaced already; use the credential its rotation answered",
                    None,
                ));
            }
            return Ok(JsonReply(Rotated { credential }));
        }
        Audit::new(request, Actor::Node(node), "node.credential_rotated")
            .on("node", node)
            .write(&mut conn)
            .await;
        drop(conn);
        self.state.node_credentials().forget_node(node);
        self.state.node_credentials().remember(digest, node);
        // The node's actor caches when the credential was issued.
        self.state.orchestrator()?.node_changed(node).await?;
        Ok(JsonReply(Rotated { credential }))
    }

    /// Lease tasks, waiting up to `wait` seconds for one
    ///
    /// Answers the node's queued tasks at once when there are any, else waits
    /// (at most 60 s) and answers the moment one is committed, else 204. A
    /// `request` id sent again (the answer was lost) answers the tasks that
    /// request leased, which the node has not taken up yet, instead of
    /// leaving them held until the acknowledgement window ends.
    #[oai(
        path = "/nodes/:id/leases",
        method = "post",
        operation_id = "agentLease"
    )]
    async fn lease(
        &self,
        auth: NodeAuth,
        id: Path<i64>,
        wait: Query<Option<u64>>,
        max: Query<Option<i64>>,
        request: Query<Option<uuid::Uuid>>,
    ) -> ApiResult<LeaseAnswer> {
        let node = auth.require(id.0)?;
        let polled = crate::leasing::long_poll(
            &self.state,
            node,
            wait.0.unwrap_or(0),
            max.0.unwrap_or(8),
            request.0,
            std::future::pending(),
        )
        .await?;
        Ok(match polled {
            Polled::Tasks(tasks) if !tasks.is_empty() => {
                LeaseAnswer::Tasks(JsonReply(Leases { tasks }))
            }
            _ => LeaseAnswer::Nothing,
        })
    }

    /// Say that a one-off run's container started
    ///
    /// The run is `running`, and billed, from now. Only the run's node may
    /// say so; saying it again changes nothing.
    #[oai(
        path = "/runs/:run/started",
        method = "post",
        operation_id = "agentRunStarted"
    )]
    async fn run_started(&self, auth: NodeAuth, run: Path<i64>) -> ApiResult<JsonReply<StatusAck>> {
        let orchestrator = self.state.orchestrator()?;
        let before = {
            let mut conn = self.state.store().conn().await?;
            skypanel_store::runs::get(&mut conn, run.0)
                .await
                .or_not_found("run")?
        };
        let after = skypanel_actors::runs::started(orchestrator.context(), auth.0.node, run.0)
            .await
            .or_not_found("run")?;
        Ok(JsonReply(StatusAck {
            changed: before.status != after.status,
            status: after.status,
        }))
    }

    /// Extend the lease of a task being worked on
    #[oai(
        path = "/tasks/:taskId/extend",
        method = "post",
        operation_id = "agentExtendLease"
    )]
    async fn extend(
        &self,
        auth: NodeAuth,
        #[oai(name = "taskId")] task_id: Path<i64>,
        body: JsonBody<LeaseRef>,
    ) -> ApiResult<JsonReply<Extended>> {
        let ttl = self.lease_ttl_secs()?;
        let mut conn = self.state.store().conn().await?;
        let extension = tasks::extend(&mut conn, task_id.0, auth.0.node, body.0.lease_id, ttl)
            .await
            .or_not_found("task")?
            .map_err(refusal)?;
        Ok(JsonReply(Extended {
            lease_deadline: extension.deadline,
            cancel_requested: extension.cancel_requested,
        }))
    }

    /// Report a task's progress: running, succeeded or failed
    ///
    /// Fenced by the lease id: a stale lease answers 409 and changes nothing.
    /// Repeating a report already recorded changes nothing either.
    #[oai(
        path = "/tasks/:taskId/status",
        method = "post",
        operation_id = "agentReportStatus"
    )]
    async fn status(
        &self,
        auth: NodeAuth,
        #[oai(name = "taskId")] task_id: Path<i64>,
        body: JsonBody<StatusReport>,
    ) -> ApiResult<JsonReply<StatusAck>> {
        let reported = self
            .state
            .orchestrator()?
            .report_task(auth.0.node, task_id.0, body.0)
            .await
            .or_not_found("task")?
            .map_err(refusal)?;
        let task = reported.task;
        Ok(JsonReply(StatusAck {
            status: task.status,
            changed: reported.changed,
        }))
    }

    /// Append a batch of a task's log lines
    ///
    /// Batches are numbered by `seq`; a batch sent again is ignored.
    #[oai(
        path = "/tasks/:taskId/logs",
        method = "post",
        operation_id = "agentAppendLogs"
    )]
    async fn logs(
        &self,
        auth: NodeAuth,
        #[oai(name = "taskId")] task_id: Path<i64>,
        body: JsonBody<LogBatch>,
    ) -> ApiResult<JsonReply<LogAck>> {
        let batch = body.0;
        if batch.seq < 0 {
            return Err(ApiError::invalid("seq", "seq counts from 0"));
        }
        let text = batch.lines.join("\n");
        if text.len() > MAX_LOG_BATCH_BYTES {
            return Err(ApiError::invalid(
                "lines",
                "a batch carries at most 256 KiB",
            ));
        }
        let mut conn = self.state.store().conn().await?;
        let cap = self
            .state
            .orchestrator()?
            .context()
            .settings()
            .build_max_log_bytes
            + BUILD_LOG_SLACK;
        let stored = tasks::append_log(
            &mut conn,
            task_id.0,
            auth.0.node,
            batch.lease_id,
            batch.seq,
            &text,
            cap,
        )
        .await
        .or_not_found("task")?
        .map_err(refusal)?;
        Ok(JsonReply(LogAck { stored }))
    }
}
