//! `/api/account/...`: what the platform holds about the caller, as one
//! download (the seed's "data export"); the admin API answers the same for
//! any user.

use poem_openapi::OpenApi;
use poem_openapi::payload::Json;
use skypanel_store::{
    Conn, Page, accounts, apps, audit, billing, databases, domains, env_vars, notifications,
    releases, wallets, webhooks,
};

use super::Tag;
use crate::auth::BearerAuth;
use crate::dto::accounts::{AccountExport, ExportedApplication};
use crate::error::{ApiResult, OrNotFound};
use crate::state::AppState;

/// Rows an export takes of each kind: everything a customer can have.
const EVERYTHING: Page = Page {
    limit: 10_000_000,
    offset: 0,
};

pub struct AccountApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/account", tag = "Tag::Auth")]
impl AccountApi {
    /// Download everything the platform holds about you
    ///
    /// One JSON document: the account; each application with its settings,
    /// releases, domains and the names (not the values) of its variables;
    /// databases without connection details; the wallet's whole ledger;
    /// billing records; notices; API tokens and event webhooks without
    /// their secrets; and the audit entries made by or about the account.
    #[oai(path = "/export", method = "get", operation_id = "exportAccount")]
    async fn export(&self, auth: BearerAuth) -> ApiResult<Json<AccountExport>> {
        let mut conn = self.state.store().conn().await?;
        Ok(Json(export(&mut conn, auth.user_id()).await?))
    }
}

/// The export of user `user_id`.
pub(crate) async fn export(conn: &mut Conn, user_id: i64) -> ApiResult<AccountExport> {
    let user = accounts::get_user(conn, user_id)
        .await
        .or_not_found("user")?;
    let mut applications = Vec::new();
    for app in apps::list(conn, user_id, EVERYTHING).await? {
        let releases = releases::list(conn, user_id, app.id, EVERYTHING)
            .await?
            .into_iter()
            .map(|r| crate::dto::domains::ReleaseView::of(r, app.current_release_id))
            .collect();
        let domains = domains::list(conn, user_id, app.id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        let variable_names = env_vars::list(conn, user_id, app.id)
            .await?
            .into_iter()
            .map(|v| v.key)
            .collect();
        applications.push(ExportedApplication {
            application: app.into(),
            releases,
            domains,
            variable_names,
        });
    }
    let wallet = wallets::wallet_for_user(conn, user_id).await?;
    let ledger = wallets::list_transactions(conn, wallet.id, EVERYTHING).await?;
    let by_user = audit::Filter {
        actor_user_id: Some(user_id),
        ..Default::default()
    };
    let about_user = audit::Filter {
        target_type: Some("user"),
        target_id: Some(user_id),
        ..Default::default()
    };
    let mut entries = audit::list(conn, &by_user, EVERYTHING).await?;
    for entry in audit::list(conn, &about_user, EVERYTHING).await? {
        if !entries.iter().any(|e| e.id == entry.id) {
            entries.push(entry);
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.id));
    Ok(AccountExport {
        exported_at: chrono::Utc::now(),
        account: user.into(),
        applications,
        databases: databases::list(conn, user_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        wallet: crate::dto::wallet::WalletView::new(wallet, ledger),
        billing_records: billing::list_records(conn, user_id, None, None, EVERYTHING)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        notifications: notifications::list(conn, user_id, EVERYTHING)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        api_tokens: accounts::list_tokens(conn, user_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        webhooks: webhooks::list(conn, user_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        audit: entries.into_iter().map(Into::into).collect(),
    })
}
