//! Deploys by `git push`, end to end on the real control plane, agent,
//! Docker and nginx: `sky git:remote` sets up the remote and git's login,
//! a push builds and releases the pushed commit while its log shows as the
//! push's `remote:` lines, a failing build refuses the push (the branch and
//! the release stay), other branches and other customers are refused, and a
//! push over the platform's limit is refused with 413.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::json;
use stack::{PASSWORD, PLATFORM_DOMAIN, Repo, Stack, Timing, WEB_IMAGE, binary};

/// A Dockerfile site whose page is `page`.
fn site(page: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Dockerfile",
            format!("FROM {WEB_IMAGE}\nCOPY index.html /www/index.html\n"),
        ),
        ("index.html", page.to_string()),
    ]
}

fn files<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(p, t)| (*p, t.as_str())).collect()
}

/// What a command printed and how it ended.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `sky` or `git` in `dir`, with `sky`'s own configuration folder (git
/// runs `sky git:credential`, which reads it).
fn run(config: &Path, dir: &Path, program: &Path, args: &[&str]) -> Ran {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("XDG_CONFIG_HOME", config)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("SKY_API")
        .output()
        .unwrap();
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// `git push` (or any git command) off the test's runtime: git waits for
/// the control plane, which the test's runtime does not serve.
async fn git(config: &Path, dir: &Path, args: &[&str]) -> Ran {
    let (config, dir) = (config.to_path_buf(), dir.to_path_buf());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&config, &dir, Path::new("git"), &args)
    })
    .await
    .unwrap()
}

fn basic(password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("sky:{password}"))
    )
}

#[tokio::test]
async fn docker_git_push_builds_releases_and_refuses_what_it_must() {
    let stack = Stack::start(Timing {
        env: vec![("SKYPANEL_GIT_MAX_PUSH_MB", "2".into())],
        ..Timing::default()
    })
    .await;
    let plan = stack.plan().await;
    let (_node, agent) = stack.node("worker-1").await;
    let alice = stack.customer("alice@example.com").await;
    let bob = stack.customer("bob@example.com").await;
    let (status, app) = stack
        .post(
            "/api/paas/applications",
            &alice,
            json!({"name": "pushed", "plan_id": plan, "region": "local"}),
        )
        .await;
    assert_eq!(status, 201, "an application with no source yet: {app:#}");
    let app_id = app["id"].as_i64().unwrap();
    let slug = app["slug"].as_str().unwrap().to_string();
    let host = format!("{slug}.{PLATFORM_DOMAIN}");
    let remote_url = format!("{}/git/{slug}.git", stack.base);

    let config: PathBuf =
        std::env::temp_dir().join(format!("sky-config-{}", uuid::Uuid::new_v4().simple()));
    let first = site("first push");
    let repo = Repo::new(&files(&first));
    let sky = binary("sky");
    let login = run(
        &config,
        &repo.dir,
        &sky,
        &[
            "login",
            "--api",
            &stack.base,
            "--email",
            "alice@example.com",
            "--password",
            PASSWORD,
        ],
    );
    assert!(login.ok, "{}{}", login.stdout, login.stderr);
    let remote = run(&config, &repo.dir, &sky, &["git:remote", "pushed"]);
    assert!(remote.ok, "{}{}", remote.stdout, remote.stderr);
    assert!(
        remote
            .stdout
            .contains(&format!("Git remote sky: {remote_url}")),
        "{}",
        remote.stdout
    );
    // Outside a repository: a readable refusal.
    let elsewhere = std::env::temp_dir();
    let outside = run(&config, &elsewhere, &sky, &["git:remote", "pushed"]);
    assert!(!outside.ok);
    assert!(
        outside.stderr.contains("not a git repository"),
        "{}",
        outside.stderr
    );

    // The first push builds, releases and shows the build as it goes.
    let sha = run(&config, &repo.dir, Path::new("git"), &["rev-parse", "HEAD"])
        .stdout
        .trim()
        .to_string();
    let pushed = git(&config, &repo.dir, &["push", "sky", "main"]).await;
    assert!(pushed.ok, "the first push: {}", pushed.stderr);
    eprintln!("the first push printed:\n{}", pushed.stderr);
    assert!(
        pushed.stderr.contains(&format!(
            "remote: -----> Building pushed from main at {} (build #1)",
            &sha[..7]
        )),
        "{}",
        pushed.stderr
    );
    assert!(
        pushed
            .stderr
            .contains("remote: -----> pushed deploys what is pushed to main"),
        "{}",
        pushed.stderr
    );
    assert!(
        pushed
            .stderr
            .contains(&format!("remote:        fetching commit {}", &sha[..7])),
        "the build's own lines: {}",
        pushed.stderr
    );
    assert!(
        pushed.stderr.contains("remote: -----> Released v1"),
        "{}",
        pushed.stderr
    );
    stack::serves(agent.ingress_port, &host, "/", "first push").await;
    let shown = stack
        .get(&format!("/api/paas/applications/{app_id}"), &alice)
        .await;
    assert_eq!(shown["git_repo_url"], remote_url.as_str(), "{shown:#}");
    assert_eq!(shown["status"], "running");
    let builds = stack
        .get(&format!("/api/paas/applications/{app_id}/builds"), &alice)
        .await;
    assert_eq!(builds[0]["git_commit_sha"], sha.as_str(), "{builds:#}");

    // A second commit: built from the push, served.
    let second = site("second push");
    let second_sha = repo.commit(&files(&second), "second");
    let pushed = git(&config, &repo.dir, &["push", "sky", "main"]).await;
    assert!(pushed.ok, "the second push: {}", pushed.stderr);
    assert!(
        pushed.stderr.contains("remote: -----> Released v2"),
        "{}",
        pushed.stderr
    );
    stack::serves(agent.ingress_port, &host, "/", "second push").await;

    // A build that fails refuses the push: the branch and the release stay.
    let broken = vec![("Dockerfile", format!("FROM {WEB_IMAGE}\nRUN exit 3\n"))];
    repo.commit(&files(&broken), "broken");
    let refused = git(&config, &repo.dir, &["push", "sky", "main"]).await;
    assert!(
        !refused.ok,
        "a failing build fails the push: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("remote:  !     build #3 failed"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("pre-receive hook declined"),
        "{}",
        refused.stderr
    );
    let at = git(&config, &repo.dir, &["ls-remote", "sky", "refs/heads/main"]).await;
    assert!(at.ok, "{}", at.stderr);
    assert!(
        at.stdout.starts_with(&second_sha),
        "main stays at the released commit: {}",
        at.stdout
    );
    stack::serves(agent.ingress_port, &host, "/", "second push").await;
    run(
        &config,
        &repo.dir,
        Path::new("git"),
        &["reset", "--quiet", "--hard", "HEAD~1"],
    );

    // Only the deploy branch deploys; a tag is no branch.
    let feature = git(&config, &repo.dir, &["push", "sky", "HEAD:feature"]).await;
    assert!(!feature.ok);
    assert!(
        feature
            .stderr
            .contains("pushes to feature do not deploy: push to main"),
        "{}",
        feature.stderr
    );

    // A commit the repository has already (nothing new is sent) deploys
    // too, from master.
    let again = git(&config, &repo.dir, &["push", "sky", "HEAD:master"]).await;
    assert!(again.ok, "{}", again.stderr);
    assert!(
        again.stderr.contains(&format!(
            "remote: -----> Building pushed from master at {} (build #4)",
            &second_sha[..7]
        )),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("remote: -----> Released v3"),
        "{}",
        again.stderr
    );

    // Another customer's token finds no such repository; no token is asked
    // for one; a wrong one is refused.
    let http = reqwest::Client::new();
    let refs = format!("{remote_url}/info/refs?service=git-upload-pack");
    let answer = http.get(&refs).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    assert!(
        answer
            .headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("Basic")),
        "{answer:?}"
    );
    let answer = http
        .get(&refs)
        .header("authorization", basic(&bob))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404, "bob does not see alice's repository");
    let answer = http
        .get(&refs)
        .header("authorization", basic("spt_not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let answer = http
        .get(&refs)
        .header("authorization", basic("spg_1_99999999999_00"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401, "a forged build ticket");
    let answer = http
        .get(&refs)
        .header("authorization", basic(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // Bob's own git push to alice's application is refused too.
    let header = format!("http.extraHeader=Authorization: {}", basic(&bob));
    let denied = git(
        &config,
        &repo.dir,
        &["-c", &header, "push", &remote_url, "main"],
    )
    .await;
    assert!(!denied.ok);
    assert!(
        denied.stderr.contains(&format!(
            "no application of yours has the repository {slug}.git"
        )),
        "{}",
        denied.stderr
    );
    assert!(!denied.stderr.contains(&bob), "no token in git's output");

    // Past the limit (2 MiB here): 413, whether the size is said or not.
    // A declared length over the limit is refused before any of the body
    // is read: only the head is sent (a client still writing its body when
    // the answer comes may see its connection closed instead).
    let address = stack.base.trim_start_matches("http://").to_string();
    let mut connection = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /git/{slug}.git/git-receive-pack HTTP/1.1\r\nHost: {address}\r\nAuthorization: {}\r\nContent-Type: application/x-git-receive-pack-request\r\nContent-Length: {}\r\n\r\n",
        basic(&alice),
        3 * 1024 * 1024
    );
    tokio::io::AsyncWriteExt::write_all(&mut connection, head.as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut connection, &mut answer)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&answer), "HTTP/1.1 413");
    // Bytes no compression shrinks (xorshift), so the pack is as large.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect();
    std::fs::write(repo.dir.join("noise.bin"), noise).unwrap();
    let big_sha = repo.commit(&[], "noise");
    let oversize = git(&config, &repo.dir, &["push", "sky", "main"]).await;
    assert!(!oversize.ok, "{}", oversize.stderr);
    let at = git(&config, &repo.dir, &["ls-remote", "sky", "refs/heads/main"]).await;
    assert!(!at.stdout.starts_with(&big_sha), "{}", at.stdout);
    let builds = stack
        .get(&format!("/api/paas/applications/{app_id}/builds"), &alice)
        .await;
    assert_eq!(
        builds.as_array().unwrap().len(),
        4,
        "no build for refused pushes: {builds:#}"
    );

    // Deleting the application removes its repository.
    let repository = stack.logs.join("git").join(format!("{app_id}.git"));
    assert!(repository.join("HEAD").exists(), "{}", repository.display());
    let (status, _) = stack
        .call(
            reqwest::Method::DELETE,
            &format!("/api/paas/applications/{app_id}"),
            &alice,
            None,
        )
        .await;
    assert!(status == 202 || status == 204, "{status}");
    assert!(!repository.exists(), "{}", repository.display());
    let _ = std::fs::remove_dir_all(&config);
}
