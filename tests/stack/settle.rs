//! What the fault tests (and the replicas' failover tests) share: a slow
//! build to strike in the middle of, and the check that the platform has
//! settled exactly after a fault.

use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{Repo, Stack, WEB_IMAGE};

/// An application whose build has a 4-second step (the moment a fault
/// strikes), never cached: each has a step of its own.
pub fn slow_app(page: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Dockerfile",
            format!(
                "FROM {WEB_IMAGE}\nRUN echo a slow step {} && sleep 4\nCOPY index.html /www/index.html\n",
                uuid::Uuid::new_v4().simple()
            ),
        ),
        ("index.html", page.to_string()),
    ]
}

pub fn files<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(p, t)| (*p, t.as_str())).collect()
}

/// Waits until the build prints its slow step (it runs on a node).
pub async fn slow_step_runs(stack: &Stack, token: &str, app: i64, build: i64) {
    let path = format!("/api/paas/applications/{app}/builds/{build}/logs");
    stack
        .until(60, "the slow step runs", || async {
            stack.get(&path, token).await["log"]
                .as_str()
                .is_some_and(|l| l.contains("a slow step"))
        })
        .await;
}

#[derive(QueryableByName)]
pub struct Count {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

pub async fn count(conn: &mut AsyncPgConnection, sql: &str, app: i64) -> i64 {
    sql_query(sql)
        .bind::<BigInt, _>(app)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
}

/// After a fault the platform has settled exactly: no task of the application
/// left unfinished, exactly `instances` running containers of its current
/// release (and no other container of it on any node), and usage intervals
/// that never overlap, so no moment is billed twice.
pub async fn settled_exactly(stack: &Stack, app: i64, instances: usize) {
    let mut conn = AsyncPgConnection::establish(&stack.db.url).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let unfinished = count(
            &mut conn,
            "SELECT count(*) AS n FROM paas_tasks WHERE application_id = $1 \
             AND status IN ('queued', 'leased', 'running')",
            app,
        )
        .await;
        if unfinished == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{unfinished} task(s) of the application never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Read each time: a task's end is recorded before its application's
        // actor (perhaps on another replica) makes its release current.
        let current = count(
            &mut conn,
            "SELECT r.version::bigint AS n FROM paas_releases r \
               JOIN paas_applications a ON a.current_release_id = r.id WHERE a.id = $1",
            app,
        )
        .await;
        let release = format!("-r{current}-");
        let containers = stack.containers(app);
        if containers.len() == instances
            && containers
                .iter()
                .all(|c| c.ends_with(" running") && c.contains(&release))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 60 s, not exactly {instances} running container(s) of release {current}: {containers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let overlapping = count(
        &mut conn,
        "SELECT count(*) AS n FROM paas_usage a JOIN paas_usage b \
           ON a.resource_type = b.resource_type AND a.resource_id = b.resource_id AND a.id < b.id \
          AND tstzrange(a.started_at, a.ended_at) && tstzrange(b.started_at, b.ended_at) \
          WHERE a.resource_type = 'application' AND a.resource_id = $1",
        app,
    )
    .await;
    assert_eq!(
        overlapping, 0,
        "usage intervals overlap: a moment billed twice"
    );
    let open = count(
        &mut conn,
        "SELECT count(*) AS n FROM paas_usage WHERE resource_type = 'application' \
         AND resource_id = $1 AND ended_at IS NULL",
        app,
    )
    .await;
    assert_eq!(
        open, 1,
        "one open usage interval for the running application"
    );
    let succeeded = count(
        &mut conn,
        "SELECT count(*) AS n FROM paas_builds WHERE application_id = $1 AND status = 'success'",
        app,
    )
    .await;
    let releases = count(
        &mut conn,
        "SELECT count(*) AS n FROM paas_releases WHERE application_id = $1",
        app,
    )
    .await;
    assert_eq!(succeeded, releases, "one release per successful build");
}

/// A customer's application on `plan` whose deploy is in its slow build
/// step; answers (token, application, repository, build).
pub async fn mid_deploy(
    stack: &Stack,
    plan: i64,
    name: &str,
    page: &str,
) -> (String, i64, Repo, i64) {
    let (token, app, repo) = customer_with_app(stack, plan, name, page).await;
    let build = stack.start_deploy(&token, app).await;
    slow_step_runs(stack, &token, app, build).await;
    (token, app, repo, build)
}

/// A customer and a repository of a slow-building application on the plan.
pub async fn customer_with_app(
    stack: &Stack,
    plan: i64,
    name: &str,
    page: &str,
) -> (String, i64, Repo) {
    let token = stack.customer(&format!("{name}@example.com")).await;
    let repo = Repo::new(&files(&slow_app(page)));
    let app = stack.git_app(&token, name, plan, &repo.url()).await;
    (token, app, repo)
}
