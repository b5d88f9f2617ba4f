//! Builds of an application, numbered per app. Every customer query is scoped
//! to the app's owner. A build's log is the agent's output, appended while it
//! runs and capped; its status follows `domain::lifecycle::BuildStatus`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use skypanel_domain::lifecycle::BuildStatus;

use crate::apps::owned_id;
use crate::schema::paas_builds;
use crate::{Conn, Page, Result};

/// A build without its log (see [`log`]).
#[derive(Queryable, Selectable, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = paas_builds, check_for_backend(diesel::pg::Pg))]
pub struct Build {
    pub id: i64,
    pub application_id: i64,
    pub build_number: i32,
    pub git_commit_sha: Option<String>,
    pub git_commit_message: Option<String>,
    pub status: String,
    pub image_tag: Option<String>,
    pub failure_reason: Option<String>,
    pub node_id: Option<i64>,
    pub attempt: i32,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub git_branch: Option<String>,
    /// The commit asked for (a push webhook's); the branch's head when absent.
    pub commit_requested: Option<String>,
    pub requested_by: Option<i64>,
    /// `dockerfile`, or the runtime type a Dockerfile was generated for.
    pub builder: Option<String>,
    pub image_size_mb: Option<i64>,
}

impl Build {
    pub fn status(&self) -> Result<BuildStatus> {
        Ok(self.status.parse()?)
    }
}

/// A build to record; its number is the application's next.
#[derive(Debug, Clone)]
pub struct NewBuild<'a> {
    pub application_id: i64,
    pub branch: &'a str,
    pub commit: Option<&'a str>,
    pub requested_by: Option<i64>,
}

/// Records a pending build with the application's next build number.
pub async fn create(conn: &mut Conn, new: &NewBuild<'_>) -> Result<Build> {
    let next: i32 = paas_builds::table
        .filter(paas_builds::application_id.eq(new.application_id))
        .select(diesel::dsl::max(paas_builds::build_number))
        .first::<Option<i32>>(conn)
        .await?
        .unwrap_or(0)
        + 1;
    Ok(diesel::insert_into(paas_builds::table)
        .values((
            paas_builds::application_id.eq(new.application_id),
            paas_builds::build_number.eq(next),
            paas_builds::status.eq(BuildStatus::Pending.as_str()),
            paas_builds::git_branch.eq(new.branch),
            paas_builds::commit_requested.eq(new.commit),
            paas_builds::requested_by.eq(new.requested_by),
        ))
        .returning(Build::as_returning())
        .get_result(conn)
        .await?)
}

/// A build by id (no owner check: for the actors and jobs).
pub async fn by_id(conn: &mut Conn, build_id: i64) -> Result<Build> {
    Ok(paas_builds::table
        .find(build_id)
        .select(Build::as_select())
        .first(conn)
        .await?)
}

/// A build's new state, written only while it is `from` (a cancelled build
/// stays cancelled). Answers the build when it changed.
#[derive(Debug, Clone, Default)]
pub struct BuildChange {
    pub status: Option<BuildStatus>,
    pub node_id: Option<i64>,
    pub attempt: Option<i32>,
    pub started: bool,
    pub completed: bool,
    pub failure_reason: Option<String>,
    pub image_tag: Option<String>,
    pub git_commit_sha: Option<String>,
    pub git_commit_message: Option<String>,
    pub builder: Option<String>,
    pub image_size_mb: Option<i64>,
}

pub async fn change(
    conn: &mut Conn,
    build_id: i64,
    from: BuildStatus,
    change: &BuildChange,
) -> Result<Option<Build>> {
    let now = Utc::now();
    Ok(diesel::update(
        paas_builds::table
            .find(build_id)
            .filter(paas_builds::status.eq(from.as_str())),
    )
    .set((
        change.status.map(|s| paas_builds::status.eq(s.as_str())),
        change.node_id.map(|n| paas_builds::node_id.eq(Some(n))),
        change.attempt.map(|a| paas_builds::attempt.eq(a)),
        change.started.then(|| {
            paas_builds::started_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >("COALESCE(started_at, now())"))
        }),
        change
            .completed
            .then(|| paas_builds::completed_at.eq(Some(now))),
        change
            .failure_reason
            .as_ref()
            .map(|r| paas_builds::failure_reason.eq(Some(r))),
        change
            .image_tag
            .as_ref()
            .map(|t| paas_builds::image_tag.eq(Some(t))),
        change
            .git_commit_sha
            .as_ref()
            .map(|c| paas_builds::git_commit_sha.eq(Some(c))),
        change
            .git_commit_message
            .as_ref()
            .map(|m| paas_builds::git_commit_message.eq(Some(m))),
        change
            .builder
            .as_ref()
            .map(|b| paas_builds::builder.eq(Some(b))),
        change
            .image_size_mb
            .map(|m| paas_builds::image_size_mb.eq(Some(m))),
    ))
    .returning(Build::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Appends lines to a build's stored log, keeping at most `cap` bytes (one
/// line says when the rest was cut).
pub async fn append_log(conn: &mut Conn, build_id: i64, text: &str, cap: i64) -> Result<()> {
    const CUT: &str = "\n[log truncated: it reached its size limit]";
    diesel::sql_query(
        "UPDATE paas_builds SET build_log = CASE
             WHEN octet_length(build_log) >= $3 THEN build_log
             WHEN octet_length(build_log) + octet_length($2) + 1 > $3
                  THEN build_log || $4
             WHEN build_log = '' THEN $2
             ELSE build_log || E'\\n' || $2 END
          WHERE id = $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(build_id)
    .bind::<diesel::sql_types::Text, _>(text)
    .bind::<diesel::sql_types::BigInt, _>(cap)
    .bind::<diesel::sql_types::Text, _>(CUT)
    .execute(conn)
    .await?;
    Ok(())
}

/// The part of a build's log from byte `offset` on, and its status (for following it).
pub async fn log_since(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
    build_id: i64,
    offset: i64,
) -> Result<(String, String, i64)> {
    #[derive(QueryableByName)]
    struct Part {
        #[diesel(sql_type = diesel::sql_types::Text)]
        text: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        length: i64,
    }
    let part: Part = diesel::sql_query(
        "SELECT convert_from(substring(convert_to(b.build_log, 'UTF8') FROM ($4 + 1)::int), 'UTF8') AS text,
                b.status, octet_length(b.build_log)::bigint AS length
           FROM paas_builds b JOIN paas_applications a ON a.id = b.application_id
          WHERE b.id = $1 AND b.application_id = $2 AND a.user_id = $3",
    )
    .bind::<diesel::sql_types::BigInt, _>(build_id)
    .bind::<diesel::sql_types::BigInt, _>(application_id)
    .bind::<diesel::sql_types::BigInt, _>(owner)
    .bind::<diesel::sql_types::BigInt, _>(offset)
    .get_result(conn)
    .await?;
    Ok((part.text, part.status, part.length))
}

/// Builds not finished yet (pending or building), oldest first: the build
/// jobs that must exist.
pub async fn unfinished(conn: &mut Conn) -> Result<Vec<Build>> {
    Ok(paas_builds::table
        .filter(paas_builds::status.eq_any([
            BuildStatus::Pending.as_str(),
            BuildStatus::Building.as_str(),
        ]))
        .order(paas_builds::id)
        .select(Build::as_select())
        .load(conn)
        .await?)
}

/// The newest builds first.
pub async fn list(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
    page: Page,
) -> Result<Vec<Build>> {
    Ok(paas_builds::table
        .filter(paas_builds::application_id.eq_any(owned_id(owner, application_id)))
        .order(paas_builds::build_number.desc())
        .limit(page.limit)
        .offset(page.offset)
        .select(Build::as_select())
        .load(conn)
        .await?)
}

pub async fn get(conn: &mut Conn, owner: i64, application_id: i64, build_id: i64) -> Result<Build> {
    Ok(paas_builds::table
        .filter(paas_builds::id.eq(build_id))
        .filter(paas_builds::application_id.eq_any(owned_id(owner, application_id)))
        .select(Build::as_select())
        .first(conn)
        .await?)
}

/// The stored log of a build.
pub async fn log(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
    build_id: i64,
) -> Result<String> {
    Ok(paas_builds::table
        .filter(paas_builds::id.eq(build_id))
        .filter(paas_builds::application_id.eq_any(owned_id(owner, application_id)))
        .select(paas_builds::build_log)
        .first(conn)
        .await?)
}

/// Builds started in the last `hours` hours, by status, for the admin statistics.
pub async fn count_recent_by_status(conn: &mut Conn, hours: i64) -> Result<Vec<(String, i64)>> {
    let since = Utc::now() - chrono::Duration::hours(hours);
    Ok(paas_builds::table
        .filter(paas_builds::created_at.ge(since))
        .group_by(paas_builds::status)
        .select((paas_builds::status, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}
