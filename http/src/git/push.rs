//! A push's deploy: the repository's `pre-receive` hook (`skypanel
//! git-hook`) calls back here with the refs the push updates, under the
//! ticket its push was given. The pushed commit of the deploy branch is kept
//! for the build, the application's source becomes its repository here (a
//! push is the customer's word, as Heroku's), and the commit is deployed;
//! the build's log and the release's outcome stream back as `log` lines,
//! the last line `exit <code>`: the hook prints the lines (git shows them as
//! `remote:`) and exits with the code, so a failed build or release refuses
//! the push and the branch stays where it was.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use serde::Deserialize;
use skypanel_actors::AppRequest;
use skypanel_domain::credentials::generate_token;
use skypanel_store::apps::{self, Application, ApplicationChanges};
use skypanel_store::{builds, github, releases};
use tokio::io::{AsyncWriteExt, DuplexStream};

use super::{repo, text};
use crate::api::app_commands::through_actor;
use crate::api::builds::LogFollower;
use crate::state::AppState;

/// The pushes under way on this process, by their hook's ticket.
#[derive(Clone, Default)]
pub struct Pushes(Arc<Mutex<HashMap<String, Grant>>>);

/// What a push's ticket allows: deploying one application as its owner.
#[derive(Clone)]
struct Grant {
    user_id: i64,
    app_id: i64,
    dir: PathBuf,
}

/// A push's ticket; it stops working when dropped (the push is over).
pub struct Ticket {
    secret: String,
    pushes: Pushes,
}

impl Ticket {
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut open) = self.pushes.0.lock() {
            open.remove(&self.secret);
        }
    }
}

impl Pushes {
    /// A ticket for one push of `user_id` to application `app_id`.
    pub fn open(&self, user_id: i64, app_id: i64, dir: PathBuf) -> Ticket {
        let secret = generate_token("sph_");
        if let Ok(mut open) = self.0.lock() {
            open.insert(
                secret.clone(),
                Grant {
                    user_id,
                    app_id,
                    dir,
                },
            );
        }
        Ticket {
            secret,
            pushes: self.clone(),
        }
    }

    fn get(&self, secret: &str) -> Option<Grant> {
        self.0.lock().ok()?.get(secret).cloned()
    }
}

/// What the hook sends: its standard input, and where the push's objects wait.
#[derive(Deserialize)]
struct HookCall {
    quarantine: Option<String>,
    updates: Vec<RefUpdate>,
}

/// One line of the hook's input (`<old> <new> <ref>`; the old commit
/// decides nothing here, so it is not read).
#[derive(Deserialize)]
struct RefUpdate {
    new: String,
    name: String,
}

const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// How long a push waits for its release after the build (the release
/// phase may take an hour).
const RELEASE_WAIT: Duration = Duration::from_secs(2 * 3600);

/// `POST /git/<slug>.git/skypanel-pre-receive`, from the push's hook.
#[handler]
pub async fn pre_receive(
    request: &Request,
    body: Body,
    Path(_repo): Path<String>,
    Data(state): Data<&AppState>,
) -> Response {
    let grant = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|secret| state.pushes().get(secret.trim()));
    let Some(grant) = grant else {
        return text(StatusCode::UNAUTHORIZED, "no push has this ticket");
    };
    let call: HookCall = match body.into_bytes_limit(1024 * 1024).await {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(call) => call,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("not a hook's call: {e}")),
        },
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("not a hook's call: {e}")),
    };
    let (mut lines, reader) = tokio::io::duplex(64 * 1024);
    match start(state, request, &grant, call).await {
        Ok(Started::Building {
            app,
            build,
            branch,
            said,
        }) => {
            let state = state.clone();
            let user_id = grant.user_id;
            tokio::spawn(async move {
                for line in said {
                    let _ = say(&mut lines, &line).await;
                }
                let code = follow(&state, user_id, &app, &build, &branch, &mut lines).await;
                let _ = lines.write_all(format!("exit {code}\n").as_bytes()).await;
            });
        }
        Ok(Started::Said(said, code)) => {
            tokio::spawn(async move {
                for line in said {
                    let _ = say(&mut lines, &line).await;
                }
                let _ = lines.write_all(format!("exit {code}\n").as_bytes()).await;
            });
        }
        Err(refused) => {
            tokio::spawn(async move {
                let _ = say(&mut lines, &format!(" !     {refused}")).await;
                let _ = lines.write_all(b"exit 1\n").await;
            });
        }
    }
    Response::builder()
        .content_type("text/plain; charset=utf-8")
        .header("cache-control", "no-store")
        .body(Body::from_async_read(reader))
}

/// One `log` line for the push's output.
async fn say(lines: &mut DuplexStream, line: &str) -> std::io::Result<()> {
    let mut out = String::with_capacity(line.len() + 5);
    out.push_str("log ");
    out.push_str(&line.replace(['\n', '\r'], " "));
    out.push('\n');
    lines.write_all(out.as_bytes()).await
}

enum Started {
    /// The deploy's build runs.
    Building {
        app: Box<Application>,
        build: Box<builds::Build>,
        branch: String,
        /// Lines before the build's.
        said: Vec<String>,
    },
    /// Nothing to follow: these lines, then this exit code.
    Said(Vec<String>, u8),
}

/// The branches a push may deploy from: `main` and `master` (as Heroku),
/// and the application's own branch.
fn deploys(app: &Application, branch: &str) -> bool {
    branch == "main" || branch == "master" || branch == app.git_branch
}

/// Checks the push, keeps its commit, makes this repository the
/// application's source and asks for the deploy. An error is the reason the
/// push is refused; nothing is changed then.
async fn start(
    state: &AppState,
    request: &Request,
    grant: &Grant,
    call: HookCall,
) -> Result<Started, String> {
    let busy = |e: &dyn std::fmt::Display| {
        tracing::warn!(app_id = grant.app_id, error = %e, "a push could not be deployed");
        "the platform cannot deploy now; push again in a moment".to_string()
    };
    let mut conn = state.store().conn().await.map_err(|e| busy(&e))?;
    let app = apps::get(&mut conn, grant.user_id, grant.app_id)
        .await
        .map_err(|_| "the application is gone".to_string())?;
    drop(conn);
    let mut deploy = None;
    for update in &call.updates {
        let Some(branch) = update.name.strip_prefix("refs/heads/") else {
            return Err(format!(
                "{} is not a branch: push a branch (main) to deploy it",
                update.name
            ));
        };
        if !deploys(&app, branch) {
            return Err(format!(
                "pushes to {branch} do not deploy: push to main (git push sky HEAD:main)"
            ));
        }
        if update.new == NO_COMMIT {
            return Err(format!("{branch} deploys; it cannot be deleted"));
        }
        if !(update.new.len() == 40 && update.new.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(format!("{} is not a commit", update.new));
        }
        if deploy.is_some() {
            return Err("push one branch at a time".into());
        }
        deploy = Some((branch.to_string(), update.new.clone()));
    }
    let Some((branch, sha)) = deploy else {
        return Ok(Started::Said(vec!["nothing to deploy".into()], 0));
    };
    let quarantine = call
        .quarantine
        .as_deref()
        .filter(|q| !q.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| grant.dir.join("objects"));
    if quarantine != grant.dir.join("objects") && quarantine.is_dir() {
        repo::keep_pushed(&grant.dir, &quarantine, &sha)
            .await
            .map_err(|e| busy(&e))?;
    } else {
        // Nothing new came (the commit is here already): keep it all the same.
        let mut update = repo::git(&grant.dir);
        update
            .arg("--git-dir")
            .arg(&grant.dir)
            .args(["update-ref", &repo::build_ref(&sha), &sha]);
        let out = update.output().await.map_err(|e| busy(&e))?;
        if !out.status.success() {
            return Err(format!("{sha} is not a commit of this repository"));
        }
    }
    // The application deploys from here from now on.
    let url = super::repository_url(&state.settings().public_url, &app.slug);
    let switched = app.git_repo_url.as_deref() != Some(url.as_str())
        || app.image.is_some()
        || app.git_branch != branch;
    let mut said = Vec::new();
    if switched {
        let changes = ApplicationChanges {
            git_repo_url: Some(Some(url.clone())),
            git_branch: Some(branch.clone()),
            git_oauth_token: Some(None),
            image: Some(None),
            processes: app.processes.is_some().then_some(None),
            ..ApplicationChanges::default()
        };
        let mut conn = state.store().conn().await.map_err(|e| busy(&e))?;
        apps::update(&mut conn, grant.user_id, app.id, &changes, state.now())
            .await
            .map_err(|e| busy(&e))?;
        let before = match (&app.image, &app.git_repo_url) {
            (Some(image), _) => Some(format!("the image {image}")),
            (None, Some(other)) if *other != url => Some(other.clone()),
            (None, Some(_)) => Some(format!("branch {}", app.git_branch)),
            (None, None) => None,
        };
        said.push(match before {
            Some(before) => format!(
                "-----> {} now deploys what is pushed to {branch} (it deployed {before})",
                app.name
            ),
            None => format!("-----> {} deploys what is pushed to {branch}", app.name),
        });
    }
    let asked = AppRequest::Deploy {
        by: grant.user_id,
        commit: Some(sha.clone()),
    };
    let accepted = match through_actor(state, request, grant.user_id, app.id, asked).await {
        Ok(accepted) => accepted,
        Err(refused) => {
            if switched {
                let back = ApplicationChanges {
                    git_repo_url: Some(app.git_repo_url.clone()),
                    git_branch: Some(app.git_branch.clone()),
                    git_oauth_token: Some(app.git_oauth_token.clone()),
                    image: Some(app.image.clone()),
                    processes: app.processes.is_some().then(|| app.processes.clone()),
                    ..ApplicationChanges::default()
                };
                let restored = async {
                    let mut conn = state.store().conn().await?;
                    apps::update(&mut conn, grant.user_id, app.id, &back, state.now()).await
                };
                if let Err(e) = restored.await {
                    tracing::warn!(app_id = app.id, error = %e, "cannot restore the source of a refused push");
                }
            }
            return Err(refused.body().message.clone());
        }
    };
    if switched {
        let mut conn = state.store().conn().await.map_err(|e| busy(&e))?;
        github::unlink_app(&mut conn, app.id)
            .await
            .map_err(|e| busy(&e))?;
    }
    match accepted.build {
        Some(build) => Ok(Started::Building {
            app: Box::new(accepted.app),
            build: Box::new(build),
            branch,
            said,
        }),
        None => {
            said.push(
                "the deploy waits for the change under way on the application and starts after it; follow it with: sky builds"
                    .into(),
            );
            Ok(Started::Said(said, 0))
        }
    }
}

/// Streams the build's log, then waits for its release; answers the exit
/// code of the push (0: released).
async fn follow(
    state: &AppState,
    user_id: i64,
    app: &Application,
    build: &builds::Build,
    branch: &str,
    lines: &mut DuplexStream,
) -> u8 {
    let sha = build.commit_requested.as_deref().unwrap_or_default();
    let opening = format!(
        "-----> Building {} from {branch} at {} (build #{})",
        app.name,
        sha.get(..7).unwrap_or(sha),
        build.build_number
    );
    if say(lines, &opening).await.is_err() {
        return 1;
    }
    let mut follower = LogFollower::new(state.clone(), user_id, app.id, build.id);
    let mut status = None;
    while let Some(events) = follower.next_events().await {
        for event in events {
            if let Some(line) = event.line
                && say(lines, &format!("       {line}")).await.is_err()
            {
                // The pusher went away; the deploy goes on.
                return 1;
            }
            if event.status.is_some() {
                status = event.status;
            }
        }
    }
    let ended = async {
        let mut conn = state.store().conn().await?;
        builds::get(&mut conn, user_id, app.id, build.id).await
    };
    let ended = match ended.await {
        Ok(ended) => ended,
        Err(e) => {
            let _ = say(lines, &format!(" !     cannot read the build: {e}")).await;
            return 1;
        }
    };
    let status = status.unwrap_or_else(|| ended.status.clone());
    if status != "success" {
        let reason = ended
            .failure_reason
            .unwrap_or_else(|| format!("the build is {status}"));
        let _ = say(
            lines,
            &format!(" !     build #{} {status}: {reason}", build.build_number),
        )
        .await;
        let _ = say(
            lines,
            " !     the push is refused; the application keeps its release",
        )
        .await;
        return 1;
    }
    let _ = say(lines, "-----> Build succeeded; releasing").await;
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    loop {
        let release = async {
            let mut conn = state.store().conn().await?;
            let recent = releases::latest_of(&mut conn, app.id, 20).await?;
            Ok::<_, skypanel_store::Error>(
                recent.into_iter().find(|r| r.build_id == Some(build.id)),
            )
        };
        match release.await {
            Ok(Some(release)) if release.status == releases::SUCCEEDED => {
                let _ = say(
                    lines,
                    &format!(
                        "-----> Released v{}: {}",
                        release.version,
                        crate::dto::apps::app_url(&app.system_domain)
                    ),
                )
                .await;
                return 0;
            }
            Ok(Some(release)) if release.status == releases::FAILED => {
                let _ = say(
                    lines,
                    &format!(
                        " !     release v{} failed: {}",
                        release.version,
                        release.failure.unwrap_or_default()
                    ),
                )
                .await;
                let _ = say(
                    lines,
                    " !     the push is refused; the application keeps its release",
                )
                .await;
                return 1;
            }
            Ok(Some(release)) if release.status == releases::SUPERSEDED => {
                let _ = say(
                    lines,
                    &format!(
                        "-----> v{} was superseded by a later release",
                        release.version
                    ),
                )
                .await;
                return 0;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(app_id = app.id, error = %e, "a push cannot read its release"),
        }
        if tokio::time::Instant::now() > deadline {
            let _ = say(
                lines,
                "-----> the release is still rolling out; follow it with: sky releases",
            )
            .await;
            return 0;
        }
        // A keep-alive for the pusher's connection, and a check it is there.
        if lines.flush().await.is_err() {
            return 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
