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
    /// `none`, `pending`, `active` or `failed` (HTTPS certificates).
    pub ssl_status: String,
    /// Why the certificate could not be had, when it could not.
    pub ssl_error: Option<String>,
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
            certificate_expires_at: d.certificate_expires_at,
            created_at: d.created_at,
        }
    }
}

#[derive(Object, Deserialize)]
pub struct AddDomainRequest {
    /// A full name such as `shop.example.com`.
    pub hostname: String,
}

#[derive(Object, Debug)]
pub struct ReleaseView {
    /// 1, 2, 3 … per application.
    pub version: i32,
    /// The build whose image it runs, if it came from one.
    pub build_id: Option<i64>,
    pub image_tag: String,
    /// `Deploy of image …`, `Build #3 of 1a2b3c4`, `Rollback to v2`.
    pub description: String,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// The release the application serves.
    pub current: bool,
}

impl ReleaseView {
    pub fn of(release: Release, current: Option<i64>) -> Self {
        Self {
            current: current == Some(release.id),
            version: release.version,
            build_id: release.build_id,
            image_tag: release.image_tag,
            description: release.description,
            created_by: release.created_by,
            created_at: release.created_at,
        }
    }
}
