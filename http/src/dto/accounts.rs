//! Accounts: registration, login, the current user, API tokens.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use skypanel_store::accounts::{ApiToken, User};

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// E-mail address, used to log in.
    #[oai(validator(
        pattern = r"^[a-z0-9][a-z0-9._+-]{0,40}@[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?)*\.[a-z]{2,12}$"
    ))]
    pub email: String,
    /// 8 to 128 characters.
    #[oai(validator(min_length = 8, max_length = 128))]
    pub password: String,
    /// Display name.
    #[oai(nullable)]
    pub name: Option<String>,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Object)]
pub struct AccessToken {
    /// A JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

/// A console session: who is logged in and the token the page sends back in
/// `X-CSRF-Token`. The session's secret is in the `skypanel_session` cookie
/// only (HttpOnly: no script reads it).
#[derive(Object)]
pub struct SessionView {
    pub user: UserView,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Object, Debug)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    #[oai(nullable)]
    pub name: Option<String>,
    /// `customer` or `admin`.
    pub role: String,
    pub created_at: DateTime<Utc>,
    /// Set while an admin holds the account suspended: its applications and
    /// databases are stopped (data kept) and nothing new can be created.
    #[oai(nullable)]
    pub suspended_at: Option<DateTime<Utc>>,
    /// Why, as the admin wrote it.
    #[oai(nullable)]
    pub suspension_reason: Option<String>,
    /// Set once the account is deleted (an admin's view only).
    #[oai(nullable)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
            role: u.role,
            created_at: u.created_at,
            suspended_at: u.suspended_at,
            suspension_reason: u.suspension_reason,
            deleted_at: u.deleted_at,
        }
    }
}

/// `POST /api/admin/users/{id}/suspend`.
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SuspendUserRequest {
    /// Why, shown to the customer in a notice and on their account (3 to
    /// 500 characters).
    #[oai(validator(min_length = 3, max_length = 500))]
    pub reason: String,
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateApiTokenRequest {
    /// What the token is for, e.g. `ci`.
    #[oai(validator(pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,98}[A-Za-z0-9]$"))]
    pub name: String,
    /// Days until it expires (1 to 3650); omitted means it never expires.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "3650")))]
    pub expires_in_days: Option<i64>,
}

#[derive(Object, Debug)]
pub struct ApiTokenView {
    pub id: i64,
    pub name: String,
    /// The last four characters of the secret, to tell tokens apart.
    pub hint: String,
    #[oai(nullable)]
    pub expires_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<ApiToken> for ApiTokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            hint: t.token_hint,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            created_at: t.created_at,
        }
    }
}

#[derive(Object)]
pub struct CreatedApiToken {
    /// The secret, shown this once: store it now. Send it as `Authorization: Bearer <token>`.
    pub token: String,
    #[oai(flatten)]
    pub details: ApiTokenView,
}

/// A user as an admin lists them.
#[derive(Object)]
pub struct AdminUserView {
    pub user: UserView,
    /// Decimal string.
    pub balance: String,
    pub currency: String,
    pub applications: i64,
    pub databases: i64,
}

/// One user as an admin sees them.
#[derive(Object)]
pub struct AdminUserDetail {
    pub user: UserView,
    /// With the latest 20 ledger entries.
    pub wallet: super::wallet::WalletView,
    pub applications: Vec<super::apps::ApplicationView>,
    /// Without connection details.
    pub databases: Vec<super::databases::DatabaseView>,
}

/// Everything the platform holds about one account (`GET /api/account/export`).
#[derive(Object)]
pub struct AccountExport {
    pub exported_at: DateTime<Utc>,
    pub account: UserView,
    pub applications: Vec<ExportedApplication>,
    /// Without connection details.
    pub databases: Vec<super::databases::DatabaseView>,
    /// With the whole ledger, newest first.
    pub wallet: super::wallet::WalletView,
    pub billing_records: Vec<super::billing::BillingRecordView>,
    pub notifications: Vec<super::billing::NotificationView>,
    /// Names and hints only; the secrets are not stored.
    pub api_tokens: Vec<ApiTokenView>,
    /// Without their signing secrets.
    pub webhooks: Vec<super::hooks::WebhookView>,
    /// Entries made by the account or about it, newest first.
    pub audit: Vec<super::admin::AuditEntryView>,
}

/// An application in an export: its settings (no secret), releases,
/// domains and the names of its variables.
#[derive(Object)]
pub struct ExportedApplication {
    pub application: super::apps::ApplicationView,
    pub releases: Vec<super::domains::ReleaseView>,
    pub domains: Vec<super::domains::DomainView>,
    pub variable_names: Vec<String>,
}

/// `DELETE /api/account`: the password, once more.
#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    pub password: String,
}

/// What an account's deletion removes on the nodes.
#[derive(Object)]
pub struct AccountDeleted {
    /// Applications being deleted (follow them to `deleting`, then gone).
    pub applications: Vec<i64>,
    /// Databases deleted with their data and backups.
    pub databases: Vec<i64>,
    /// What could not be removed now, and why (an admin deletes it later).
    pub not_removed: Vec<String>,
}
