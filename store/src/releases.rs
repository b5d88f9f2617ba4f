//! Releases: every rollout of an application (a build's image, or a prebuilt
//! image), numbered per application.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::apps::owned_id;
use crate::schema::paas_releases;
use crate::{Conn, Page, Result};

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = paas_releases, check_for_backend(diesel::pg::Pg))]
pub struct Release {
    pub id: i64,
    pub application_id: i64,
    pub version: i32,
    pub build_id: Option<i64>,
    pub image_tag: String,
    pub config: serde_json::Value,
    /// Sealed environment the release ran with.
    pub env_snapshot: Option<Vec<u8>>,
    pub description: String,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// The node holding a built image (none for an image any node can pull).
    pub node_id: Option<i64>,
}

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Release")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("image_tag", &self.image_tag)
            .finish_non_exhaustive()
    }
}

/// A release to record; its version is the application's next.
#[derive(Debug, Clone)]
pub struct NewRelease<'a> {
    pub application_id: i64,
    pub build_id: Option<i64>,
    pub image_tag: &'a str,
    pub config: serde_json::Value,
    pub description: &'a str,
    pub created_by: Option<i64>,
    /// The node holding a built image; `None` for a pullable image.
    pub node_id: Option<i64>,
}

impl Release {
    /// Binds a release's sealed environment to the release.
    pub fn env_associated_data(id: i64) -> Vec<u8> {
        format!("paas_releases.env_snapshot:{id}").into_bytes()
    }
}

/// Records a release with the next version number of its application; its
/// environment, when given, is sealed by `seal` once the release's id is known.
pub async fn create_sealed(
    conn: &mut Conn,
    new: &NewRelease<'_>,
    seal: &(dyn Fn(i64) -> Vec<u8> + Sync),
) -> Result<Release> {
    let release = create(conn, new).await?;
    Ok(diesel::update(paas_releases::table.find(release.id))
        .set(paas_releases::env_snapshot.eq(Some(seal(release.id))))
        .returning(Release::as_returning())
        .get_result(conn)
        .await?)
}

/// Records a release with the next version number of its application.
pub async fn create(conn: &mut Conn, new: &NewRelease<'_>) -> Result<Release> {
    let next: i32 = paas_releases::table
        .filter(paas_releases::application_id.eq(new.application_id))
        .select(diesel::dsl::max(paas_releases::version))
        .first::<Option<i32>>(conn)
        .await?
        .unwrap_or(0)
        + 1;
    Ok(diesel::insert_into(paas_releases::table)
        .values((
            paas_releases::application_id.eq(new.application_id),
            paas_releases::version.eq(next),
            paas_releases::build_id.eq(new.build_id),
            paas_releases::image_tag.eq(new.image_tag),
            paas_releases::config.eq(&new.config),
            paas_releases::description.eq(new.description),
            paas_releases::created_by.eq(new.created_by),
            paas_releases::node_id.eq(new.node_id),
        ))
        .returning(Release::as_returning())
        .get_result(conn)
        .await?)
}

/// Release `version` of an application.
pub async fn by_version(conn: &mut Conn, application_id: i64, version: i32) -> Result<Release> {
    Ok(paas_releases::table
        .filter(paas_releases::application_id.eq(application_id))
        .filter(paas_releases::version.eq(version))
        .select(Release::as_select())
        .first(conn)
        .await?)
}

/// The newest release of an application, if any.
pub async fn latest(conn: &mut Conn, application_id: i64) -> Result<Option<Release>> {
    Ok(paas_releases::table
        .filter(paas_releases::application_id.eq(application_id))
        .order(paas_releases::version.desc())
        .select(Release::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn get(conn: &mut Conn, id: i64) -> Result<Release> {
    Ok(paas_releases::table
        .find(id)
        .select(Release::as_select())
        .first(conn)
        .await?)
}

/// The owner's releases of an application, newest first.
pub async fn list(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
    page: Page,
) -> Result<Vec<Release>> {
    Ok(paas_releases::table
        .filter(paas_releases::application_id.eq_any(owned_id(owner, application_id)))
        .order(paas_releases::version.desc())
        .limit(page.limit)
        .offset(page.offset)
        .select(Release::as_select())
        .load(conn)
        .await?)
}

/// An application's latest releases, newest first (the admin inspector).
pub async fn latest_of(conn: &mut Conn, application_id: i64, limit: i64) -> Result<Vec<Release>> {
    Ok(paas_releases::table
        .filter(paas_releases::application_id.eq(application_id))
        .order(paas_releases::version.desc())
        .limit(limit)
        .select(Release::as_select())
        .load(conn)
        .await?)
}
