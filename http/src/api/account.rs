//! `/api/account/...`: what the platform holds about the caller, as one
//! download (the seed's "data export"); the admin API answers the same for
//! any user.

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use skypanel_domain::credentials;
use skypanel_domain::lifecycle::{AppStatus, Role};
use skypanel_store::wakeups::Forget;
use skypanel_store::{
    Conn, Page, accounts, apps, audit, billing, databases, domains, env_vars, notifications,
    releases, wallets, webhooks,
};

use super::{Audit, Tag, blocking};
use crate::auth::{AdminAuth, BearerAuth};
use crate::body::JsonBody;
use crate::dto::accounts::{
    AccountDeleted, AccountExport, DeleteAccountRequest, ExportedApplication,
};
use crate::error::{ApiError, ApiResult, OrNotFound};
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

    /// Delete your account
    ///
    /// Needs your password. At once: you can no longer log in (every token
    /// and console session ends), your API tokens and event webhooks are
    /// removed, and your e-mail is free to register again. Then, on the
    /// nodes: every application (its containers, domains and routes) and
    /// every database with its data and backups. The ledger and billing
    /// records stay for accounting, under an anonymous address. Download
    /// your data first (`GET /api/account/export`) if you want it.
    #[oai(path = "/", method = "delete", operation_id = "deleteAccount")]
    async fn delete(
        &self,
        request: &Request,
        auth: BearerAuth,
        body: JsonBody<DeleteAccountRequest>,
    ) -> ApiResult<DeletionAccepted> {
        let mut conn = self.state.store().conn().await?;
        let user = accounts::get_user(&mut conn, auth.user_id())
            .await
            .or_not_found("user")?;
        drop(conn);
        let (password, hash) = (body.0.password, user.password_hash.clone());
        if !blocking(move || credentials::verify_password(&password, &hash)).await? {
            return Err(ApiError::invalid("password", "the password is not right"));
        }
        let deleted = delete_account(&self.state, request, auth.user_id(), auth.user_id()).await?;
        Ok(DeletionAccepted::Accepted(Json(deleted)))
    }
}

/// 202: the account is gone; its resources go on the nodes.
#[derive(ApiResponse)]
pub(crate) enum DeletionAccepted {
    /// Deleted; its applications and databases are being removed.
    #[oai(status = 202)]
    Accepted(Json<AccountDeleted>),
}

/// `DELETE /api/admin/users/{id}`: an admin deletes a customer's account.
pub struct AdminAccountApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/admin/users", tag = "Tag::AdminUsers")]
impl AdminAccountApi {
    /// Delete a customer's account
    ///
    /// As the customer's own `DELETE /api/account` does, without their
    /// password. An admin account is not deleted this way (409).
    #[oai(path = "/:id", method = "delete", operation_id = "adminDeleteUser")]
    async fn delete(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
    ) -> ApiResult<DeletionAccepted> {
        let mut conn = self.state.store().conn().await?;
        let user = accounts::get_user(&mut conn, id.0)
            .await
            .or_not_found("user")?;
        drop(conn);
        if user.role()? == Role::Admin {
            return Err(ApiError::conflict(
                "conflict",
                "an admin account is not deleted here: make it a customer first",
                None,
            ));
        }
        if user.deleted_at.is_some() {
            return Err(ApiError::not_found("user"));
        }
        let deleted = delete_account(&self.state, request, user.id, auth.0.user_id).await?;
        Ok(DeletionAccepted::Accepted(Json(deleted)))
    }
}

/// Deletes account `user_id` (by `actor`): the row anonymized with its
/// tokens, sessions and webhooks gone in one transaction, then its
/// applications through their actors and its databases (purged) on their
/// nodes. One that cannot be removed now does not stop the others: it is
/// named in `not_removed` with why, and stays for an admin to delete.
async fn delete_account(
    state: &AppState,
    request: &Request,
    user_id: i64,
    actor: i64,
) -> ApiResult<AccountDeleted> {
    let mut conn = state.store().conn().await?;
    let now = state.now();
    if !accounts::delete_account(&mut conn, user_id, now).await? {
        return Err(ApiError::not_found("user"));
    }
    state.forget(&mut conn, Forget::User(user_id)).await;
    let applications = apps::list(&mut conn, user_id, EVERYTHING).await?;
    let owned_databases = databases::list(&mut conn, user_id).await?;
    drop(conn);
    let mut deleted = AccountDeleted {
        applications: Vec::new(),
        databases: Vec::new(),
        not_removed: Vec::new(),
    };
    for app in applications {
        if app.status == AppStatus::Deleting.as_str() {
            deleted.applications.push(app.id);
            continue;
        }
        match super::app_commands::delete_through_actor(state, request, user_id, app.id).await {
            Ok(_) => deleted.applications.push(app.id),
            Err(err) => deleted.not_removed.push(format!(
                "application {}: {}",
                app.name,
                err.body().message
            )),
        }
    }
    for db in owned_databases {
        let mut conn = state.store().conn().await?;
        let removed = databases::delete(&mut conn, user_id, db.id, now, None).await;
        drop(conn);
        let outcome = match removed {
            Ok(db) => state
                .orchestrator()?
                .remove_database(&db, true)
                .await
                .map_err(ApiError::from),
            Err(err) => Err(ApiError::from(err)),
        };
        match outcome {
            Ok(()) => deleted.databases.push(db.id),
            Err(err) => {
                deleted
                    .not_removed
                    .push(format!("database {}: {}", db.name, err.body().message))
            }
        }
    }
    let mut conn = state.store().conn().await?;
    Audit::by(request, actor, "user.delete")
        .on("user", user_id)
        .with(serde_json::json!({
            "applications": deleted.applications,
            "databases": deleted.databases,
            "not_removed": deleted.not_removed,
        }))
        .write(&mut conn)
        .await;
    Ok(deleted)
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
