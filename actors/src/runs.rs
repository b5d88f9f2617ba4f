//! One-off runs (`sky run`): a command in a new container of a release on
//! the application's node, with the release's environment (and the caller's
//! extra variables) and the plan's limits. Starting one records the run and
//! its `app.run` task in one transaction; the node says when the container
//! started (billing starts), and the task's end ends the run. A run's task
//! is not one of the application's (no `application_id`): it neither waits
//! for nor holds up the application's rollouts.

use std::collections::BTreeMap;

use diesel_async::AsyncConnection;
use skypanel_domain::Invalid;
use skypanel_domain::credentials::token_digest;
use skypanel_domain::lifecycle::AppStatus;
use skypanel_protocol::task::{AppSpec, RunResult, RunSpec, TaskResult, TaskSpec};
use skypanel_store::apps::{self, Application};
use skypanel_store::releases::{self, Release};
use skypanel_store::runs::{self, Ending, NewRun, Run};
use skypanel_store::tasks::{self, Task};
use skypanel_store::{Conn, nodes};

use crate::context::Context;
use crate::error::Error;

/// The most runs of one application that may be under way at once.
pub const MAX_LIVE_PER_APP: i64 = 5;
/// A run's time limit when none is asked for, and the longest one may ask.
pub const DEFAULT_TTL_SECS: u32 = 3600;
pub const MAX_TTL_SECS: u32 = 24 * 3600;
/// How long an attached run's container waits for its caller's session.
pub const ATTACH_TIMEOUT_SECS: u64 = 60;
/// The longest a command line may be.
pub const MAX_COMMAND_BYTES: usize = 8 * 1024;
/// What an attached run's session ticket starts with.
pub const TICKET_PREFIX: &str = "spr_";
/// How long past its time limit a run may go without its node saying it
/// ended before the control plane ends it (the node went away).
const OVERDUE_GRACE_SECS: i64 = 120;

/// What a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Run by `/bin/sh -c`.
    pub command: String,
    /// A release version; the one serving when absent.
    pub release: Option<i32>,
    /// Variables over the release's (for this run only).
    pub env: BTreeMap<String, String>,
    pub attach: bool,
    pub tty: bool,
    pub cols: u16,
    pub rows: u16,
    pub ttl_secs: Option<u32>,
}

/// A started run, and for an attached one the ticket that opens its
/// session (shown once).
pub struct Started {
    pub run: Run,
    pub ticket: Option<String>,
}

/// Checks what can be checked without the database.
fn validate(request: &RunRequest) -> Result<u32, Invalid> {
    let command = request.command.trim();
    if command.is_empty() {
        return Err(Invalid::new("command", "name the command to run"));
    }
    if request.command.len() > MAX_COMMAND_BYTES {
        return Err(Invalid::new(
            "command",
            format!("a command line is at most {MAX_COMMAND_BYTES} bytes"),
        ));
    }
    if request.command.contains('\0') {
        return Err(Invalid::new("command", "a command cannot hold a NUL byte"));
    }
    for (key, value) in &request.env {
        skypanel_domain::env::validate_key(key)
            .and_then(|()| skypanel_domain::env::validate_value(value))
            .map_err(|e| Invalid::new(format!("env.{key}"), e.message))?;
    }
    if request.tty && !request.attach {
        return Err(Invalid::new("tty", "only an attached run has a terminal"));
    }
    let ttl = request.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(Invalid::new(
            "ttl_secs",
            format!("a run's time limit is 1 to {MAX_TTL_SECS} seconds"),
        ));
    }
    Ok(ttl)
}

/// Starts a run of `owner`'s application `app_id`, asked by `started_by`.
pub async fn start(
    ctx: &Context,
    owner: i64,
    started_by: i64,
    app_id: i64,
    request: RunRequest,
) -> Result<Started, Error> {
    let ttl = validate(&request)?;
    let mut conn = ctx.store().conn().await?;
    let app = apps::get(&mut conn, owner, app_id).await?;
    match app.status()? {
        AppStatus::Deleting => return Err(Error::NotFound),
        AppStatus::Suspended => {
            return Err(Error::Conflict(
                "the application is suspended until the wallet balance is topped up".into(),
            ));
        }
        _ => {}
    }
    let release = match request.release {
        Some(version) => releases::by_version(&mut conn, app.id, version)
            .await
            .map_err(|e| match e {
                skypanel_store::Error::NotFound => Error::Invalid(Invalid::new(
                    "release",
                    format!("the application has no release v{version}"),
                )),
                other => other.into(),
            })?,
        None => match app.current_release_id {
            Some(id) => releases::get(&mut conn, id).await?,
            None => {
                return Err(Error::Conflict(
                    "the application has no release to run yet: deploy it first".into(),
                ));
            }
        },
    };
    let Some(node) = app.node_id else {
        return Err(Error::Conflict(
            "the application has no node yet: deploy it first".into(),
        ));
    };
    let node_row = nodes::get(&mut conn, node).await?;
    if node_row.status != "online" {
        return Err(Error::NoCapacity(format!(
            "the application's node is {} right now; try again once it is back",
            node_row.status
        )));
    }
    if runs::live_of_app(&mut conn, app.id).await? >= MAX_LIVE_PER_APP {
        return Err(Error::Conflict(format!(
            "the application already has {MAX_LIVE_PER_APP} runs under way; wait for one to end"
        )));
    }
    let mut app_spec = spec_of(&mut conn, ctx, &app, &release, node).await?;
    app_spec.env.extend(request.env.clone());
    let ticket = request
        .attach
        .then(|| skypanel_domain::credentials::generate_token(TICKET_PREFIX));
    let digest = ticket.as_deref().map(token_digest);
    let command = request.command.trim().to_string();
    let started = conn
        .transaction(async |conn| {
            let run = runs::create(
                conn,
                &NewRun {
                    application_id: app.id,
                    user_id: app.user_id,
                    started_by,
                    release_version: release.version,
                    plan_id: app.plan_id,
                    command: &command,
                    attach: request.attach,
                    tty: request.tty,
                    ttl_secs: i32::try_from(ttl).unwrap_or(i32::MAX),
                    node_id: node,
                    session_ticket: digest.as_deref(),
                },
            )
            .await?;
            let mut spec = TaskSpec::AppRun(RunSpec {
                run_id: run.id,
                app: app_spec,
                command: command.clone(),
                attach: request.attach,
                tty: request.tty,
                cols: request.cols,
                rows: request.rows,
                ttl_secs: u64::from(ttl),
                attach_timeout_secs: ATTACH_TIMEOUT_SECS,
            });
            let of = crate::app_work::TaskOf {
                node,
                application_id: None,
                build_id: None,
                database_id: None,
                generation: None,
            };
            let task = crate::app_work::create_task_with(conn, ctx, of, &mut spec, 1).await?;
            runs::set_task(conn, run.id, task.id).await?;
            Ok::<_, skypanel_store::Error>(Run {
                task_id: Some(task.id),
                ..run
            })
        })
        .await?;
    tracing::info!(
        app_id = app.id,
        run_id = started.id,
        release = release.version,
        attach = request.attach,
        "run queued"
    );
    Ok(Started {
        run: started,
        ticket,
    })
}

/// The container spec of `release` for a one-off: its image, environment
/// and limits; no processes, no names.
async fn spec_of(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
    release: &Release,
    node: i64,
) -> skypanel_store::Result<AppSpec> {
    let frozen = crate::releases::frozen(conn, ctx, app, release).await?;
    let (release_image, registry_login) = crate::releases::release_image(ctx, app, release, node);
    Ok(AppSpec {
        app_id: app.id,
        user_id: app.user_id,
        slug: app.slug.clone(),
        generation: app.generation,
        release: release.version,
        image: release.image_tag.clone(),
        release_image,
        registry_login,
        instances: 0,
        port: frozen.port,
        health_check_path: None,
        env: frozen.env,
        cpu_millicores: frozen.cpu_millicores,
        memory_mb: frozen.memory_mb,
        pids_limit: ctx.settings().pids_limit,
        hostnames: Vec::new(),
        certificates: Vec::new(),
        web_command: None,
        processes: Vec::new(),
        release_phase: None,
    })
}

/// The node started the run's container: it runs, and is billed, from now.
pub async fn started(ctx: &Context, node: i64, run_id: i64) -> Result<Run, Error> {
    let mut conn = ctx.store().conn().await?;
    if let Some(run) = runs::started(&mut conn, run_id, node, ctx.now()).await? {
        return Ok(run);
    }
    let run = runs::get(&mut conn, run_id).await?;
    if run.node_id != Some(node) {
        return Err(Error::NotFound);
    }
    Ok(run)
}

/// The run's task ended (reported, cancelled, or its lease expired for good).
pub async fn task_finished(ctx: &Context, task: &Task) -> Result<(), Error> {
    let mut conn = ctx.store().conn().await?;
    let Some(run) = runs::by_task(&mut conn, task.id).await? else {
        return Ok(());
    };
    let result = TaskResult::from_json(task.result.as_ref()).run;
    let failure_text;
    let ending = match (&result, task.status.as_str()) {
        (Some(RunResult { exit_code, failure }), "succeeded") => {
            failure_text = failure.clone();
            Ending {
                exit_code: *exit_code,
                failure: failure_text.as_deref(),
            }
        }
        (_, status) => {
            failure_text = Some(match (status, task.error.as_deref()) {
                ("cancelled", _) => "the run was stopped".to_string(),
                (_, Some(error)) => error.to_string(),
                _ => "the run's node stopped answering".to_string(),
            });
            Ending {
                exit_code: None,
                failure: failure_text.as_deref(),
            }
        }
    };
    if let Some(ended) = runs::finish(&mut conn, run.id, ending, ctx.now()).await? {
        tracing::info!(
            run_id = ended.id,
            app_id = ended.application_id,
            status = %ended.status,
            exit_code = ?ended.exit_code,
            "run ended"
        );
    }
    Ok(())
}

/// Asks the run's node to stop it (its task is cancelled); a run that has
/// not reached its node ends at once.
pub async fn stop(ctx: &Context, run: &Run) -> Result<Run, Error> {
    let mut conn = ctx.store().conn().await?;
    if let Some(task_id) = run.task_id {
        let task = tasks::request_cancel(&mut conn, task_id).await?;
        if task.status == "cancelled" {
            drop(conn);
            task_finished(ctx, &task).await?;
            let mut conn = ctx.store().conn().await?;
            return Ok(runs::get(&mut conn, run.id).await?);
        }
    }
    Ok(runs::get(&mut conn, run.id).await?)
}

/// Stops every run of the customer (suspended: nothing of theirs runs).
pub async fn stop_all_of(ctx: &Context, user_id: i64) -> Result<(), Error> {
    let live = {
        let mut conn = ctx.store().conn().await?;
        runs::live_of_owner(&mut conn, user_id).await?
    };
    for run in live {
        stop(ctx, &run).await?;
    }
    Ok(())
}

/// Ends runs whose node never said they ended, well past their time limit
/// (the node went away with them): failed, with why, and no longer billed.
pub async fn end_overdue(ctx: &Context) -> Result<(), Error> {
    let mut conn = ctx.store().conn().await?;
    let now = ctx.now();
    for run in runs::overdue(&mut conn, now, OVERDUE_GRACE_SECS).await? {
        if let Some(task_id) = run.task_id {
            tasks::request_cancel(&mut conn, task_id).await?;
        }
        let ending = Ending {
            exit_code: None,
            failure: Some("the run's node never said it ended; it was given up"),
        };
        if runs::finish(&mut conn, run.id, ending, now)
            .await?
            .is_some()
        {
            tracing::warn!(run_id = run.id, "an overdue run was given up");
        }
    }
    Ok(())
}
