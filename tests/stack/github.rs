//! A GitHub stand-in for tests (GitHub is not reachable from these
//! machines): the documented endpoints the platform uses and nothing else.
//! The App's JWT is checked (RS256 with the App's public key, its issuer and
//! lifetime); installation tokens are minted per installation (narrowed to
//! repositories when asked) and checked on every call and clone; the OAuth
//! code exchange answers the user's token, which lists the installations
//! that user reaches; repositories are served over git's smart HTTP (`git
//! http-backend`) to `x-access-token:<token>` only; webhook deliveries are
//! signed with the App's secret. Test support, never shipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use poem::http::StatusCode;
use poem::web::{Data, Form, Json, Query};
use poem::{EndpointExt, IntoResponse, Request, Response, Route, handler};
use serde::Deserialize;
use serde_json::{Value, json};

/// An installation of the App on an account, granting some repositories.
#[derive(Clone, Debug)]
pub struct Installation {
    pub account: String,
    pub repositories: Vec<String>,
    pub suspended: bool,
}

#[derive(Default)]
struct World {
    installations: BTreeMap<i64, Installation>,
    /// User login → the installations that user can reach.
    users: BTreeMap<String, Vec<i64>>,
    /// OAuth code → user login (used once).
    codes: BTreeMap<String, String>,
    /// User token → login.
    user_tokens: BTreeMap<String, String>,
    /// Installation token → (installation, repositories it is narrowed to).
    tokens: BTreeMap<String, (i64, Option<Vec<String>>)>,
    /// Repository `owner/name` → its git directory.
    repositories: BTreeMap<String, PathBuf>,
    /// Every token handed out, for checks that none leaked.
    issued: Vec<String>,
    /// App JWTs refused (bad signature, issuer, lifetime).
    refused_jwts: usize,
    /// Clones: (repository, whether the token was accepted).
    clones: Vec<(String, bool)>,
}

struct Shared {
    app_id: i64,
    public_key: jsonwebtoken::DecodingKey,
    client_id: String,
    client_secret: String,
    world: Mutex<World>,
    root: PathBuf,
}

pub struct GithubStandIn {
    pub base: String,
    pub app_id: i64,
    pub slug: String,
    pub client_id: String,
    pub client_secret: String,
    /// The App's private key (PEM, PKCS#1 as GitHub hands it out).
    pub private_key: String,
    pub webhook_secret: String,
    shared: Arc<Shared>,
    /// Stops the stand-in's server (which runs on a thread of its own, so a
    /// test blocked in `git` against it does not stop it answering).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    http: reqwest::Client,
}

impl Drop for GithubStandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.shared.root);
    }
}

fn random(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

fn status(code: u16, message: &str) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .content_type("application/json")
        .body(json!({"message": message}).to_string())
}

fn bearer(request: &Request) -> Option<String> {
    let value = request.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| token.to_string())
}

impl Shared {
    /// Whether the request carries a valid App JWT.
    fn app_jwt_ok(&self, request: &Request) -> bool {
        let Some(token) = bearer(request) else {
            return false;
        };
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_required_spec_claims(&["exp", "iat", "iss"]);
        validation.set_issuer(&[self.app_id.to_string()]);
        #[derive(Deserialize)]
        struct Claims {
            iat: i64,
            exp: i64,
        }
        let ok = match jsonwebtoken::decode::<Claims>(&token, &self.public_key, &validation) {
            // GitHub refuses JWTs longer than ten minutes.
            Ok(data) => data.claims.exp - data.claims.iat <= 600,
            Err(_) => false,
        };
        if !ok {
            self.world.lock().unwrap().refused_jwts += 1;
        }
        ok
    }

    /// The installation (and narrowing) of an installation token.
    fn installation_of(&self, token: &str) -> Option<(i64, Option<Vec<String>>)> {
        self.world.lock().unwrap().tokens.get(token).cloned()
    }

    /// Whether an installation token reaches a repository.
    fn grants(&self, token: &str, full_name: &str) -> bool {
        let Some((installation, narrowed)) = self.installation_of(token) else {
            return false;
        };
        let world = self.world.lock().unwrap();
        let Some(found) = world.installations.get(&installation) else {
            return false;
        };
        let name = full_name.split('/').nth(1).unwrap_or_default();
        !found.suspended
            && found
                .repositories
                .iter()
                .any(|r| r.eq_ignore_ascii_case(full_name))
            && narrowed.is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
    }
}

#[derive(Deserialize, Default)]
struct TokenRequest {
    repositories: Option<Vec<String>>,
}

#[handler]
fn access_tokens(
    request: &Request,
    poem::web::Path(id): poem::web::Path<i64>,
    body: Option<Json<TokenRequest>>,
    shared: Data<&Arc<Shared>>,
) -> Response {
    if !shared.app_jwt_ok(request) {
        return status(401, "A JSON web token could not be decoded");
    }
    let mut world = shared.world.lock().unwrap();
    match world.installations.get(&id) {
        None => return status(404, "Not Found"),
        Some(i) if i.suspended => return status(403, "This installation has been suspended"),
        Some(_) => {}
    }
    let token = random("ghs_");
    let narrowed = body.and_then(|b| b.0.repositories);
    world.tokens.insert(token.clone(), (id, narrowed));
    world.issued.push(token.clone());
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    Response::builder()
        .status(StatusCode::CREATED)
        .content_type("application/json")
        .body(json!({"token": token, "expires_at": expires}).to_string())
}

#[handler]
fn repository_installation(
    request: &Request,
    poem::web::Path((owner, repo)): poem::web::Path<(String, String)>,
    shared: Data<&Arc<Shared>>,
) -> Response {
    if !shared.app_jwt_ok(request) {
        return status(401, "A JSON web token could not be decoded");
    }
    let full = format!("{owner}/{repo}");
    let world = shared.world.lock().unwrap();
    let found = world
        .installations
        .iter()
        .find(|(_, i)| i.repositories.iter().any(|r| r.eq_ignore_ascii_case(&full)));
    match found {
        Some((id, i)) => Json(json!({"id": id, "account": {"login": i.account}})).into_response(),
        None => status(404, "Not Found"),
    }
}

#[derive(Deserialize)]
struct Paging {
    page: Option<usize>,
    per_page: Option<usize>,
}

/// A page of `items` and the `Link` header GitHub sends with it.
fn paged<T: Clone>(items: &[T], paging: &Paging, base: &str) -> (Vec<T>, Option<String>) {
    let page = paging.page.unwrap_or(1).max(1);
    let per_page = paging.per_page.unwrap_or(30).clamp(1, 100);
    let start = (page - 1) * per_page;
    let slice: Vec<T> = items.iter().skip(start).take(per_page).cloned().collect();
    let link = (start + per_page < items.len()).then(|| {
        format!(
            "<{base}?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        )
    });
    (slice, link)
}

fn with_link(body: Value, link: Option<String>) -> Response {
    let mut builder = Response::builder().content_type("application/json");
    if let Some(link) = link {
        builder = builder.header("link", link);
    }
    builder.body(body.to_string())
}

#[handler]
fn installation_repositories(
    request: &Request,
    Query(paging): Query<Paging>,
    shared: Data<&Arc<Shared>>,
) -> Response {
    let Some((installation, _)) = bearer(request).and_then(|t| shared.installation_of(&t)) else {
        return status(401, "Bad credentials");
    };
    let world = shared.world.lock().unwrap();
    let Some(found) = world.installations.get(&installation) else {
        return status(401, "Bad credentials");
    };
    let all: Vec<Value> = found
        .repositories
        .iter()
        .map(|full| {
            let (owner, name) = full.split_once('/').unwrap();
            json!({"full_name": full, "name": name, "private": true,
                   "default_branch": "main", "owner": {"login": owner}})
        })
        .collect();
    let (page, link) = paged(&all, &paging, "/installation/repositories");
    with_link(
        json!({"total_count": all.len(), "repositories": page}),
        link,
    )
}

/// Branches and their heads, read from the repository.
fn branches_of(dir: &Path) -> Vec<(String, String)> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args([
            "for-each-ref",
            "--format=%(refname:short) %(objectname)",
            "refs/heads",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect()
}

#[handler]
fn branches(
    request: &Request,
    poem::web::Path((owner, repo)): poem::web::Path<(String, String)>,
    Query(paging): Query<Paging>,
    shared: Data<&Arc<Shared>>,
) -> Response {
    let full = format!("{owner}/{repo}");
    let Some(token) = bearer(request) else {
        return status(401, "Bad credentials");
    };
    if !shared.grants(&token, &full) {
        return status(404, "Not Found");
    }
    let dir = shared
        .world
        .lock()
        .unwrap()
        .repositories
        .get(&full)
        .cloned();
    let Some(dir) = dir else {
        return status(404, "Not Found");
    };
    let all: Vec<Value> = branches_of(&dir)
        .into_iter()
        .map(|(name, sha)| json!({"name": name, "commit": {"sha": sha}, "protected": false}))
        .collect();
    let (page, link) = paged(&all, &paging, &format!("/repos/{full}/branches"));
    with_link(Value::Array(page), link)
}

#[derive(Deserialize)]
struct CodeExchange {
    client_id: String,
    client_secret: String,
    code: String,
}

#[handler]
fn oauth_access_token(Form(form): Form<CodeExchange>, shared: Data<&Arc<Shared>>) -> Response {
    if form.client_id != shared.client_id || form.client_secret != shared.client_secret {
        return Json(json!({"error": "incorrect_client_credentials",
                           "error_description": "The client_id and/or client_secret passed are incorrect."}))
        .into_response();
    }
    let mut world = shared.world.lock().unwrap();
    let Some(login) = world.codes.remove(&form.code) else {
        return Json(json!({"error": "bad_verification_code",
                           "error_description": "The code passed is incorrect or expired."}))
        .into_response();
    };
    let token = random("ghu_");
    world.user_tokens.insert(token.clone(), login);
    world.issued.push(token.clone());
    Json(json!({"access_token": token, "token_type": "bearer", "scope": ""})).into_response()
}

#[handler]
fn user_installations(request: &Request, shared: Data<&Arc<Shared>>) -> Response {
    let world = shared.world.lock().unwrap();
    let Some(login) = bearer(request).and_then(|t| world.user_tokens.get(&t).cloned()) else {
        return status(401, "Bad credentials");
    };
    let list: Vec<Value> = world
        .users
        .get(&login)
        .into_iter()
        .flatten()
        .filter_map(|id| world.installations.get(id).map(|i| (id, i)))
        .map(|(id, i)| json!({"id": id, "app_id": shared.app_id, "account": {"login": i.account}}))
        .collect();
    Json(json!({"total_count": list.len(), "installations": list})).into_response()
}

/// git's smart HTTP for `/<owner>/<name>.git/...`, to an installation token
/// that reaches the repository (`x-access-token:<token>`).
#[handler]
async fn git(request: &Request, body: poem::Body, shared: Data<&Arc<Shared>>) -> Response {
    let path = request.uri().path().to_string();
    let Some((full, _rest)) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once(".git/"))
        .map(|(full, rest)| (full.to_string(), rest.to_string()))
    else {
        return status(404, "Not Found");
    };
    let credentials = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let Some(credentials) = credentials else {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"GitHub\"")
            .finish();
    };
    let token = credentials.strip_prefix("x-access-token:").unwrap_or("");
    let granted = shared.grants(token, &full);
    shared
        .world
        .lock()
        .unwrap()
        .clones
        .push((full.clone(), granted));
    if !granted {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"GitHub\"")
            .finish();
    }
    let input = body.into_vec().await.unwrap_or_default();
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", request.method().as_str())
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", request.uri().query().unwrap_or(""))
        .env(
            "CONTENT_TYPE",
            request.header("content-type").unwrap_or_default(),
        )
        .env("CONTENT_LENGTH", input.len().to_string())
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(encoding) = request.header("content-encoding") {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if let Some(protocol) = request.header("git-protocol") {
        command.env("HTTP_GIT_PROTOCOL", protocol);
    }
    let mut child = command.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&input).await;
    }
    let out = child.wait_with_output().await.unwrap();
    cgi_response(&out.stdout)
}

/// A CGI program's output as an HTTP response.
fn cgi_response(out: &[u8]) -> Response {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, gap)) = split else {
        return status(500, "the CGI program answered no headers");
    };
    let mut builder = Response::builder();
    let mut code = 200;
    for line in String::from_utf8_lossy(&out[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(200);
        } else {
            builder = builder.header(name.trim(), value);
        }
    }
    builder
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .body(out[end + gap..].to_vec())
}

impl GithubStandIn {
    /// Starts the stand-in on a free port, with a fresh App key pair.
    pub async fn start() -> GithubStandIn {
        let root =
            std::env::temp_dir().join(format!("skypanel-github-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).unwrap();
        let key_path = root.join("app.pem");
        let made = Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&key_path)
            .arg("2048")
            .output()
            .unwrap();
        assert!(made.status.success(), "openssl genrsa: {made:?}");
        let public = Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key_path)
            .output()
            .unwrap();
        assert!(public.status.success(), "openssl rsa -pubout: {public:?}");
        let private_key = std::fs::read_to_string(&key_path).unwrap();
        std::fs::remove_file(&key_path).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let base = format!("http://127.0.0.1:{port}");
        let shared = Arc::new(Shared {
            app_id: 4242,
            public_key: jsonwebtoken::DecodingKey::from_rsa_pem(&public.stdout).unwrap(),
            client_id: "Iv1.standin".into(),
            client_secret: random("secret-"),
            world: Mutex::new(World::default()),
            root: root.clone(),
        });
        let app = Route::new()
            .at(
                "/app/installations/:id/access_tokens",
                poem::post(access_tokens),
            )
            .at(
                "/repos/:owner/:repo/installation",
                poem::get(repository_installation),
            )
            .at("/repos/:owner/:repo/branches", poem::get(branches))
            .at(
                "/installation/repositories",
                poem::get(installation_repositories),
            )
            .at("/login/oauth/access_token", poem::post(oauth_access_token))
            .at("/user/installations", poem::get(user_installations))
            .at("/:owner/*rest", git)
            .data(shared.clone());
        let acceptor = poem::listener::TcpListener::bind(format!("127.0.0.1:{port}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let _ = poem::Server::new(acceptor)
                    .run_with_graceful_shutdown(
                        app,
                        async move {
                            let _ = stopped.await;
                        },
                        Some(std::time::Duration::from_secs(1)),
                    )
                    .await;
            });
        });
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("{base}/user/installations"))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        GithubStandIn {
            base,
            app_id: shared.app_id,
            slug: "skypanel-test".into(),
            client_id: shared.client_id.clone(),
            client_secret: shared.client_secret.clone(),
            private_key,
            webhook_secret: random("whsec-"),
            shared,
            stop: Some(stop),
            http,
        }
    }

    /// The App's configuration as the admin API takes it.
    pub fn app_config(&self) -> Value {
        json!({
            "app_id": self.app_id,
            "slug": self.slug,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "private_key": self.private_key,
            "webhook_secret": self.webhook_secret,
        })
    }

    /// The control plane's settings that point at the stand-in.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SKYPANEL_GITHUB_API_URL", self.base.clone()),
            ("SKYPANEL_GITHUB_WEB_URL", self.base.clone()),
        ]
    }

    /// Installs the App on `account` granting `repositories`, reachable by
    /// the GitHub user `login`.
    pub fn install(&self, id: i64, account: &str, repositories: &[&str], login: &str) {
        let mut world = self.shared.world.lock().unwrap();
        world.installations.insert(
            id,
            Installation {
                account: account.into(),
                repositories: repositories.iter().map(|r| r.to_string()).collect(),
                suspended: false,
            },
        );
        world.users.entry(login.into()).or_default().push(id);
    }

    /// Removes an installation (what uninstalling on GitHub does).
    pub fn uninstall(&self, id: i64) {
        let mut world = self.shared.world.lock().unwrap();
        world.installations.remove(&id);
        world.tokens.retain(|_, (i, _)| *i != id);
    }

    /// Serves `dir`'s repository as `owner/name`.
    pub fn serve_repository(&self, full_name: &str, git_dir: &Path) {
        let link = self.shared.root.join(format!("{full_name}.git"));
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(git_dir, &link).unwrap();
        self.shared
            .world
            .lock()
            .unwrap()
            .repositories
            .insert(full_name.into(), git_dir.to_path_buf());
    }

    /// What GitHub does when `login` authorizes the App: a one-time code.
    pub fn authorize(&self, login: &str) -> String {
        let code = random("code-");
        self.shared
            .world
            .lock()
            .unwrap()
            .codes
            .insert(code.clone(), login.into());
        code
    }

    /// An installation token as GitHub would mint it for `installation`
    /// (for tests that try one where it must not work).
    pub fn mint(&self, installation: i64) -> String {
        let token = random("ghs_");
        let mut world = self.shared.world.lock().unwrap();
        world.tokens.insert(token.clone(), (installation, None));
        world.issued.push(token.clone());
        token
    }

    /// Every token handed out so far.
    pub fn issued(&self) -> Vec<String> {
        self.shared.world.lock().unwrap().issued.clone()
    }

    /// Clones asked for: (repository, accepted).
    pub fn clones(&self) -> Vec<(String, bool)> {
        self.shared.world.lock().unwrap().clones.clone()
    }

    pub fn refused_jwts(&self) -> usize {
        self.shared.world.lock().unwrap().refused_jwts
    }

    /// Delivers a webhook event to `url`, signed with `secret` (the App's
    /// unless told), as delivery `delivery`: (status, body).
    pub async fn deliver(
        &self,
        url: &str,
        event: &str,
        delivery: &str,
        payload: &Value,
        secret: Option<&str>,
    ) -> (u16, Value) {
        let body = serde_json::to_vec(payload).unwrap();
        let signature = skypanel_domain::signatures::sign(
            secret.unwrap_or(&self.webhook_secret).as_bytes(),
            &body,
        );
        let answer = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .header("user-agent", "GitHub-Hookshot/standin")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// A push event as GitHub sends it.
    pub fn push_event(installation: i64, full_name: &str, branch: &str, sha: &str) -> Value {
        json!({
            "ref": format!("refs/heads/{branch}"),
            "before": "0000000000000000000000000000000000000000",
            "after": sha,
            "deleted": false,
            "repository": {"full_name": full_name, "private": true},
            "installation": {"id": installation},
            "head_commit": {"id": sha, "message": "a change"},
        })
    }
}
