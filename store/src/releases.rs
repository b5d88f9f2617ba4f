//! Releases: the unit of deployment. Each is an image (by content) with the
//! environment, plan and port frozen when it was made, numbered per
//! application; builds, prebuilt images, configuration changes, database
//! links and rollbacks each make one.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use skypanel_domain::lifecycle::ReleaseKind;

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
    /// The node that built or first pulled the image (it has it before the
    /// registry does).
    pub node_id: Option<i64>,
    /// What made it (`domain::lifecycle::ReleaseKind`).
    pub kind: String,
    /// The image's own digest (`sha256:…`, Docker's image id): what every
    /// container of the release runs. `None` until a node resolved a
    /// prebuilt image's reference.
    pub image_id: Option<String>,
    /// Where the image is pushed in the platform's registry (`repository:tag`).
    pub registry_ref: Option<String>,
    /// The manifest's digest in the registry, once the push is done.
    pub image_digest: Option<String>,
    pub pushed_at: Option<DateTime<Utc>>,
    /// Why the last push failed.
    pub push_error: Option<String>,
    /// The image's size when pushed.
    pub image_bytes: Option<i64>,
    /// `pending` until its first rollout ends: `succeeded`, `failed` (with
    /// `failure`) or `superseded` (a later release rolled out first).
    pub status: String,
    /// Why its rollout failed (its release phase's exit and last lines, or
    /// its instances').
    pub failure: Option<String>,
}

/// What a release's first rollout came to.
pub const PENDING: &str = "pending";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
pub const SUPERSEDED: &str = "superseded";

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Release")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("image_tag", &self.image_tag)
            .field("kind", &self.kind)
            .field("image_id", &self.image_id)
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
    /// The node that holds the image already (it built it, or ran it).
    pub node_id: Option<i64>,
    pub kind: ReleaseKind,
    /// The image's digest when known (a build's, or an earlier release's).
    pub image_id: Option<&'a str>,
    /// Where the image is (or will be) in the platform's registry.
    pub registry_ref: Option<&'a str>,
    /// Its manifest digest there, when pushed already (an earlier release's image).
    pub image_digest: Option<&'a str>,
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
            paas_releases::kind.eq(new.kind.as_str()),
            paas_releases::image_id.eq(new.image_id),
            paas_releases::registry_ref.eq(new.registry_ref),
            paas_releases::image_digest.eq(new.image_digest),
            paas_releases::pushed_at.eq(new.image_digest.map(|_| Utc::now())),
        ))
        .returning(Release::as_returning())
        .get_result(conn)
        .await?)
}

/// Records how release `version`'s first rollout ended (`SUCCEEDED` or
/// `FAILED` with why), if it was still pending, and marks the application's
/// older pending releases superseded. Answers whether it was pending.
pub async fn finish(
    conn: &mut Conn,
    application_id: i64,
    version: i32,
    status: &str,
    failure: Option<&str>,
) -> Result<bool> {
    let changed = diesel::update(
        paas_releases::table
            .filter(paas_releases::application_id.eq(application_id))
            .filter(paas_releases::version.eq(version))
            .filter(paas_releases::status.eq(PENDING)),
    )
    .set((
        paas_releases::status.eq(status),
        paas_releases::failure.eq(failure),
    ))
    .execute(conn)
    .await?;
    diesel::update(
        paas_releases::table
            .filter(paas_releases::application_id.eq(application_id))
            .filter(paas_releases::version.lt(version))
            .filter(paas_releases::status.eq(PENDING)),
    )
    .set(paas_releases::status.eq(SUPERSEDED))
    .execute(conn)
    .await?;
    Ok(changed > 0)
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

/// Records the image digest a node resolved a release's image reference to,
/// on the release and on the configuration releases and rollbacks made from
/// it before it was known (up to the next deploy of an image). The first
/// answer wins: a release's image never changes once known.
pub async fn resolve_image(
    conn: &mut Conn,
    release_id: i64,
    image_id: &str,
    node_id: i64,
) -> Result<Release> {
    let release = get(conn, release_id).await?;
    let next_image_deploy: Option<i32> = paas_releases::table
        .filter(paas_releases::application_id.eq(release.application_id))
        .filter(paas_releases::version.gt(release.version))
        .filter(paas_releases::kind.eq(ReleaseKind::Image.as_str()))
        .select(diesel::dsl::min(paas_releases::version))
        .first(conn)
        .await?;
    diesel::update(
        paas_releases::table
            .filter(paas_releases::application_id.eq(release.application_id))
            .filter(paas_releases::image_id.is_null())
            .filter(paas_releases::image_tag.eq(&release.image_tag))
            .filter(paas_releases::version.ge(release.version))
            .filter(paas_releases::version.lt(next_image_deploy.unwrap_or(i32::MAX))),
    )
    .set((
        paas_releases::image_id.eq(image_id),
        paas_releases::node_id.eq(node_id),
    ))
    .execute(conn)
    .await?;
    get(conn, release_id).await
}

/// Records that an image of the application is in the registry at
/// `registry_ref` as manifest `digest`: every release of the application
/// running that image learns it (configuration releases and rollbacks share
/// their source's image).
pub async fn record_push(
    conn: &mut Conn,
    application_id: i64,
    image_id: &str,
    registry_ref: &str,
    digest: &str,
    bytes: i64,
) -> Result<usize> {
    Ok(diesel::update(
        paas_releases::table
            .filter(paas_releases::application_id.eq(application_id))
            .filter(paas_releases::image_id.eq(image_id))
            .filter(paas_releases::image_digest.is_null()),
    )
    .set((
        paas_releases::registry_ref.eq(registry_ref),
        paas_releases::image_digest.eq(digest),
        paas_releases::pushed_at.eq(diesel::dsl::now),
        paas_releases::push_error.eq(None::<String>),
        paas_releases::image_bytes.eq(bytes),
    ))
    .execute(conn)
    .await?)
}

/// Every release of an application, newest first (registry retention).
pub async fn all_of(conn: &mut Conn, application_id: i64) -> Result<Vec<Release>> {
    Ok(paas_releases::table
        .filter(paas_releases::application_id.eq(application_id))
        .order(paas_releases::version.desc())
        .select(Release::as_select())
        .load(conn)
        .await?)
}

/// Forgets that the registry has an image (retention deleted it): its
/// releases can no longer be pulled by a node that lacks them.
pub async fn forget_push(conn: &mut Conn, application_id: i64, digest: &str) -> Result<usize> {
    Ok(diesel::update(
        paas_releases::table
            .filter(paas_releases::application_id.eq(application_id))
            .filter(paas_releases::image_digest.eq(digest)),
    )
    .set((
        paas_releases::image_digest.eq(None::<String>),
        paas_releases::pushed_at.eq(None::<DateTime<Utc>>),
        paas_releases::push_error.eq("removed from the registry by its retention"),
    ))
    .execute(conn)
    .await?)
}

/// The registry's share as the platform knows it: images (distinct digests)
/// and their bytes.
pub async fn registry_usage(conn: &mut Conn) -> Result<(i64, i64)> {
    #[derive(QueryableByName)]
    struct Usage {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        images: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        bytes: i64,
    }
    let usage: Usage = diesel::sql_query(
        "SELECT count(*)::bigint AS images, COALESCE(sum(bytes), 0)::bigint AS bytes
           FROM (SELECT DISTINCT ON (application_id, image_digest) COALESCE(image_bytes, 0) AS bytes
                   FROM paas_releases WHERE image_digest IS NOT NULL) pushed",
    )
    .get_result(conn)
    .await?;
    Ok((usage.images, usage.bytes))
}

/// Records why a push failed (the release keeps running where it is).
pub async fn record_push_failure(conn: &mut Conn, release_id: i64, error: &str) -> Result<()> {
    diesel::update(
        paas_releases::table
            .find(release_id)
            .filter(paas_releases::image_digest.is_null()),
    )
    .set(paas_releases::push_error.eq(error))
    .execute(conn)
    .await?;
    Ok(())
}

/// The newest release of the application whose image is `image_id` and
/// is already in the registry (a rollback or configuration release reuses it).
pub async fn pushed_with_image(
    conn: &mut Conn,
    application_id: i64,
    image_id: &str,
) -> Result<Option<Release>> {
    Ok(paas_releases::table
        .filter(paas_releases::application_id.eq(application_id))
        .filter(paas_releases::image_id.eq(image_id))
        .filter(paas_releases::image_digest.is_not_null())
        .order(paas_releases::version.desc())
        .select(Release::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Names where the application's image `image_id` goes in the registry, on
/// every release of it that has no place yet.
pub async fn set_registry_ref(
    conn: &mut Conn,
    application_id: i64,
    image_id: &str,
    registry_ref: &str,
) -> Result<()> {
    diesel::update(
        paas_releases::table
            .filter(paas_releases::application_id.eq(application_id))
            .filter(paas_releases::image_id.eq(image_id))
            .filter(paas_releases::registry_ref.is_null()),
    )
    .set(paas_releases::registry_ref.eq(registry_ref))
    .execute(conn)
    .await?;
    Ok(())
}
