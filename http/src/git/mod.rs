//! `git push` deploys: every application has a repository on the control
//! plane at `/git/<slug>.git`, served over git's smart HTTP protocol by
//! `git http-backend` ([`backend`]). A customer pushes with Basic
//! authentication (any user name; an API token or an access token as the
//! password; `sky git:remote` sets that up); a push's `pre-receive` hook
//! hands the pushed commit to [`push`], which deploys it and streams the
//! build back as the push's `remote:` lines. A build clones the pushed
//! commit back from here with a read-only ticket of its application
//! ([`ticket`]), minted when its task is leased.

pub mod backend;
pub mod push;
pub mod repo;
pub mod ticket;

use std::path::PathBuf;

use base64::Engine;
use poem::http::StatusCode;
use poem::{Request, Response, Route};
use skypanel_store::apps::{self, Application};

use crate::auth::Principal;
use crate::state::AppState;

pub use push::Pushes;

/// Where the repositories live and what a push may be.
#[derive(Clone, Debug)]
pub struct GitSettings {
    /// A folder of one bare repository per application (`<id>.git`).
    pub root: PathBuf,
    /// The largest push body taken (413 past it).
    pub max_push_bytes: u64,
    /// Where this process answers on its own machine: the hook calls it.
    pub local_url: String,
    /// The program the `pre-receive` hook runs (`<program> git-hook`).
    pub hook_program: PathBuf,
}

impl Default for GitSettings {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/var/lib/skypanel/git"),
            max_push_bytes: 1024 * 1024 * 1024,
            local_url: "http://127.0.0.1:8080".into(),
            hook_program: PathBuf::from("skypanel"),
        }
    }
}

/// The routes under `/git`, outside the OpenAPI document: git's smart HTTP
/// protocol and the hook's call back.
pub fn routes() -> Route {
    Route::new()
        .at("/:repo/info/refs", poem::get(backend::info_refs))
        .at("/:repo/git-upload-pack", poem::post(backend::upload_pack))
        .at("/:repo/git-receive-pack", poem::post(backend::receive_pack))
        .at("/:repo/skypanel-pre-receive", poem::post(push::pre_receive))
}

/// The URL of an application's repository on this control plane.
pub fn repository_url(public_url: &str, slug: &str) -> String {
    format!("{}/git/{slug}.git", public_url.trim_end_matches('/'))
}

/// The application slug of a repository URL of this control plane.
pub fn slug_of_url<'a>(public_url: &str, url: &'a str) -> Option<&'a str> {
    let prefix = format!("{}/git/", public_url.trim_end_matches('/'));
    let slug = url.strip_prefix(prefix.as_str())?.strip_suffix(".git")?;
    (!slug.is_empty() && !slug.contains('/')).then_some(slug)
}

/// Who asks for a repository, and what they may do with it.
pub(crate) enum Caller {
    /// The application's owner: fetch and push.
    Owner(Principal),
    /// A build of the application: fetch only.
    Build,
}

/// A plain-text answer git shows its user (`remote: <message>` for errors).
pub(crate) fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .header("cache-control", "no-store")
        .body(message)
}

/// 401 with the challenge that makes git send its credentials.
fn challenge(message: &str) -> Response {
    let mut response = text(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        "www-authenticate",
        poem::http::HeaderValue::from_static("Basic realm=\"SkyPanel\""),
    );
    response
}

/// The password of a Basic `Authorization` header.
fn basic_password(request: &Request) -> Option<String> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some(password.to_string())
}

/// The application a request names (`<slug>.git`) and who asks for it, or
/// the answer to give instead: 401 without valid credentials, 404 for an
/// application that does not exist or is someone else's (the same answer).
pub(crate) async fn authorize(
    state: &AppState,
    request: &Request,
    repo: &str,
) -> Result<(Application, Caller), Response> {
    let not_found = || {
        text(
            StatusCode::NOT_FOUND,
            format!("no application of yours has the repository {repo}"),
        )
    };
    let slug = repo.strip_suffix(".git").ok_or_else(not_found)?;
    let Some(password) = basic_password(request) else {
        return Err(challenge(
            "log in: the password is an API token (sky git:remote APP sets it up)",
        ));
    };
    let internal = |e: skypanel_store::Error| {
        tracing::warn!(error = %e, "a git request could not read the database");
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the platform cannot answer now; try again",
        )
    };
    let mut conn = state.store().conn().await.map_err(internal)?;
    let app = match apps::by_slug(&mut conn, slug).await {
        Ok(app) => Some(app),
        Err(skypanel_store::Error::NotFound) => None,
        Err(e) => return Err(internal(e)),
    };
    drop(conn);
    if password.starts_with(ticket::PREFIX) {
        let key = state.settings().jwt_secret.as_bytes();
        return match app {
            Some(app) if ticket::verify(key, &password, app.id, state.now()) => {
                Ok((app, Caller::Build))
            }
            _ => Err(challenge(
                "the build's ticket is not valid for this repository",
            )),
        };
    }
    let principal = crate::auth::authenticate_token(request, password)
        .await
        .map_err(|_| challenge("the token is invalid or expired; log in again (sky login)"))?;
    match app {
        Some(app) if app.user_id == principal.user_id => Ok((app, Caller::Owner(principal))),
        _ => Err(not_found()),
    }
}

/// Gives a build of an application that deploys from its repository here
/// its read ticket as its lease is handed out (valid for the build's time),
/// and, for a pushed commit, the ref to fetch it by. A repository URL of
/// another application here gets no ticket: the build fails saying so.
pub(crate) async fn grant_build_read(
    state: &AppState,
    spec: &mut skypanel_protocol::task::BuildSpec,
) {
    let Some(slug) = slug_of_url(&state.settings().public_url, &spec.repo_url) else {
        return;
    };
    let app = match state.store().conn().await {
        Ok(mut conn) => apps::load(&mut conn, spec.app_id).await,
        Err(e) => Err(e),
    };
    match app {
        Ok(app) if app.slug == slug => {
            let lasts = chrono::Duration::seconds(
                i64::try_from(spec.timeout_secs).unwrap_or(i64::MAX / 2) + 600,
            );
            let key = state.settings().jwt_secret.as_bytes();
            spec.git_token = Some(ticket::mint(key, app.id, state.now() + lasts));
            spec.fetch_ref = spec.commit.as_deref().map(repo::build_ref);
        }
        Ok(_) => {
            spec.git_token_refused = Some(format!(
                "{} is another application's repository; push to this application's own",
                spec.repo_url
            ));
        }
        Err(e) => {
            spec.git_token_refused = Some(format!(
                "the platform's database could not be read to clone the repository: {e}"
            ));
        }
    }
}
