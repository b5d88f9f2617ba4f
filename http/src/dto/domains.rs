//! Domains and releases of an application.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use skypanel_store::domains::Domain;
use skypanel_store::releases::Release;

#[derive(Object, Debug)]
pub struct DomainView {
    pub hostname: String,
    /// The `<slug>.<platform domain>` name every application has.
    pub is_system: bool,
    /// The HTTPS certificate: `none` (the platform issues none), `pending`
    /// (being requested), `active` (served over HTTPS; HTTP redirects there)
    /// or `failed` (served over HTTP only; see `ssl_error`).
    pub ssl_status: String,
    /// Why the last attempt failed, in words the owner can act on (also
    /// while a renewal failed and the current certificate keeps serving).
    #[oai(nullable)]
    pub ssl_error: Option<String>,
    /// Attempts used by the current certificate request (at most 3).
    pub ssl_attempts: i32,
    #[oai(nullable)]
    pub certificate_issued_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub certificate_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Domain> for DomainView {
    fn from(d: Domain) -> Self {
        Self {
            hostname: d.hostname,
            is_system: d.is_system,
            ssl_status: d.ssl_status,
            ssl_error: d.ssl_error,
            ssl_attempts: d.ssl_attempts,
            certificate_issued_at: d.certificate_issued_at,
            certificate_expires_at: d.certificate_expires_at,
            created_at: d.created_at,
        }
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddDomainRequest {
    /// A full name such as `shop.example.com` (not an IP address).
    #[oai(validator(
        max_length = 253,
        pattern = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
    ))]
    pub hostname: String,
}

#[derive(Object, Debug)]
pub struct ReleaseView {
    /// 1, 2, 3 … per application.
    pub version: i32,
    /// The build whose image it runs, if it came from one.
    #[oai(nullable)]
    pub build_id: Option<i64>,
    pub image_tag: String,
    /// What made it: `build`, `image` (a prebuilt image), `config` (variables
    /// changed), `rollback`, `link` (a database linked or unlinked).
    pub kind: String,
    /// `Deploy of image …`, `Build #3 of 1a2b3c4`, `Set GREETING`,
    /// `Rollback to v2`, `Link shop-db (DATABASE_URL)`.
    pub description: String,
    /// The image every container of the release runs, by content
    /// (`sha256:…`); none until a node first resolved a prebuilt image.
    #[oai(nullable)]
    pub image_id: Option<String>,
    /// Where the image is in the platform's registry, once pushed
    /// (`host/app-N@sha256:…`): any node of the region can run it.
    #[oai(nullable)]
    pub registry_image: Option<String>,
    /// Why the last push to the registry failed, if it did.
    #[oai(nullable)]
    pub push_error: Option<String>,
    #[oai(nullable)]
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// The release the application serves.
    pub current: bool,
    /// `pending` until its first rollout ends: `succeeded`, `failed` (see
    /// `failure`), or `superseded` (a later release rolled out first).
    pub status: String,
    /// Why its rollout failed: the release phase's exit and last lines, or
    /// its instances'.
    #[oai(nullable)]
    pub failure: Option<String>,
    /// Its process types and their commands (the Procfile's entries; `web`
    /// runs the image's own command when not among them).
    pub processes: std::collections::BTreeMap<String, String>,
    /// The release phase's command, run once before the release's first rollout.
    #[oai(nullable)]
    pub release_command: Option<String>,
}

impl ReleaseView {
    pub fn of(release: Release, current: Option<i64>) -> Self {
        let (mut processes, release_command) =
            skypanel_actors::processes_and_release_command(&release);
        processes.remove(skypanel_protocol::procfile::RELEASE);
        Self {
            status: release.status.clone(),
            failure: release.failure.clone(),
            processes,
            release_command,
            current: current == Some(release.id),
            version: release.version,
            build_id: release.build_id,
            image_tag: release.image_tag,
            kind: release.kind,
            description: release.description,
            registry_image: release.image_digest.as_ref().and_then(|digest| {
                release
                    .registry_ref
                    .as_deref()
                    .map(|r| format!("{}@{digest}", skypanel_protocol::image::repository_of(r)))
            }),
            image_id: release.image_id,
            push_error: release.push_error,
            created_by: release.created_by,
            created_at: release.created_at,
        }
    }
}
