//! Builds of an application, numbered per app. Every customer query is scoped
//! to the app's owner.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::apps::owned_id;
use crate::schema::paas_builds;
use crate::{Conn, Page, Result};

/// A build without its log (see [`log`]).
#[derive(Queryable, Selectable, Debug, Clone)]
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
