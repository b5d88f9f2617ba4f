//! `/api/admin/users`: the platform's users as an admin finds them (by
//! e-mail), and one user with their applications, databases and wallet.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_domain::lifecycle::Role;
use skypanel_domain::money::format_amount;
use skypanel_store::{Page, accounts, apps, databases, wallets};

use super::{Audit, Tag, page};
use crate::auth::AdminAuth;
use crate::body::JsonBody;
use crate::dto::accounts::{
    AccountExport, AdminUserDetail, AdminUserView, SuspendUserRequest, UserView,
};
use crate::dto::wallet::WalletView;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

/// The longest search string.
const SEARCH_MAX: usize = 254;

pub struct AdminUsersApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/admin/users", tag = "Tag::AdminUsers")]
impl AdminUsersApi {
    /// List users
    ///
    /// Oldest first, 50 a page by default (at most 200); `q` keeps those
    /// whose e-mail contains it, in any case. Each with their balance and
    /// how many applications and databases they have.
    #[oai(path = "/", method = "get", operation_id = "adminListUsers")]
    async fn list(
        &self,
        _auth: AdminAuth,
        #[oai(validator(max_length = 254))] q: Query<Option<String>>,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<AdminUserView>>> {
        let search = q.0.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if search.is_some_and(|s| s.len() > SEARCH_MAX) {
            return Err(ApiError::invalid(
                "q",
                "a search has at most 254 characters",
            ));
        }
        let mut conn = self.state.store().conn().await?;
        let list = accounts::list_users(&mut conn, search, page(limit.0, offset.0)).await?;
        Ok(Json(list.into_iter().map(AdminUserView::from).collect()))
    }

    /// One user
    ///
    /// The account, its wallet with the latest 20 ledger entries, its
    /// applications and its databases (without connection details).
    #[oai(path = "/:id", method = "get", operation_id = "adminGetUser")]
    async fn get(&self, _auth: AdminAuth, id: Path<i64>) -> ApiResult<Json<AdminUserDetail>> {
        let mut conn = self.state.store().conn().await?;
        let user = accounts::get_user(&mut conn, id.0)
            .await
            .or_not_found("user")?;
        let wallet = wallets::wallet_for_user(&mut conn, user.id).await?;
        let entries =
            wallets::list_transactions(&mut conn, wallet.id, Page::new(Some(20), None)).await?;
        let applications = apps::list(&mut conn, user.id, Page::new(Some(Page::MAX_LIMIT), None))
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        let databases = databases::list(&mut conn, user.id)
            .await?
            .into_iter()
            .map(crate::dto::databases::DatabaseView::from)
            .collect();
        Ok(Json(AdminUserDetail {
            user: user.into(),
            wallet: WalletView::new(wallet, entries),
            applications,
            databases,
        }))
    }

    /// Everything the platform holds about one user
    ///
    /// The same document as the user's own `GET /api/account/export`.
    #[oai(path = "/:id/export", method = "get", operation_id = "adminExportUser")]
    async fn export(&self, _auth: AdminAuth, id: Path<i64>) -> ApiResult<Json<AccountExport>> {
        let mut conn = self.state.store().conn().await?;
        Ok(Json(super::account::export(&mut conn, id.0).await?))
    }

    /// Suspend a customer's account
    ///
    /// Their applications and databases stop with their data kept (as an
    /// unpaid balance does), whatever their balance; they cannot create an
    /// application or a database or deploy until resumed, and they get a
    /// notice with `reason`. They can still log in, read and download their
    /// data. Suspending again changes the reason. Not for an admin (409).
    #[oai(
        path = "/:id/suspend",
        method = "post",
        operation_id = "adminSuspendUser"
    )]
    async fn suspend(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
        body: JsonBody<SuspendUserRequest>,
    ) -> ApiResult<Json<UserView>> {
        let reason = body.0.reason.trim().to_string();
        if reason.chars().count() < 3 || reason.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "reason",
                "say why in 3 to 500 characters on one line",
            ));
        }
        let mut conn = self.state.store().conn().await?;
        let user = accounts::get_user(&mut conn, id.0)
            .await
            .or_not_found("user")?;
        if user.deleted_at.is_some() {
            return Err(ApiError::not_found("user"));
        }
        if user.role()? == Role::Admin {
            return Err(ApiError::conflict(
                "conflict",
                "an admin account is not suspended: make it a customer first",
                None,
            ));
        }
        let user = accounts::set_suspension(&mut conn, user.id, Some((self.state.now(), &reason)))
            .await
            .or_not_found("user")?;
        Audit::by(request, auth.0.user_id, "user.suspend")
            .on("user", user.id)
            .with(serde_json::json!({"reason": reason}))
            .write(&mut conn)
            .await;
        drop(conn);
        self.act_on(user.id).await;
        Ok(Json(user.into()))
    }

    /// Resume a suspended customer's account
    ///
    /// Their applications and databases come back to what they were (unless
    /// their balance is still below zero past its grace period), and they
    /// can create and deploy again. Resuming an account that is not
    /// suspended changes nothing.
    #[oai(
        path = "/:id/resume",
        method = "post",
        operation_id = "adminResumeUser"
    )]
    async fn resume(
        &self,
        request: &Request,
        auth: AdminAuth,
        id: Path<i64>,
    ) -> ApiResult<Json<UserView>> {
        let mut conn = self.state.store().conn().await?;
        let before = accounts::get_user(&mut conn, id.0)
            .await
            .or_not_found("user")?;
        let user = accounts::set_suspension(&mut conn, before.id, None)
            .await
            .or_not_found("user")?;
        if before.suspended_at.is_some() {
            Audit::by(request, auth.0.user_id, "user.resume")
                .on("user", user.id)
                .write(&mut conn)
                .await;
        }
        drop(conn);
        self.act_on(user.id).await;
        Ok(Json(user.into()))
    }
}

impl AdminUsersApi {
    /// Has the owner's wallet actor suspend or resume their resources now;
    /// one that fails is tried again by the actor itself, so the answer
    /// does not wait on every node.
    async fn act_on(&self, user_id: i64) {
        let Ok(orchestrator) = self.state.orchestrator() else {
            tracing::warn!(
                user_id,
                "no orchestrator: the suspension acts when the actors start"
            );
            return;
        };
        if let Err(err) = orchestrator.wallet_check(user_id).await {
            tracing::warn!(user_id, error = %err, "cannot act on a suspension now; the wallet's actor tries again");
        }
    }
}

impl From<accounts::UserSummary> for AdminUserView {
    fn from(s: accounts::UserSummary) -> Self {
        Self {
            user: s.user.into(),
            balance: format_amount(&s.balance, 4),
            currency: s.currency,
            applications: s.applications,
            databases: s.databases,
        }
    }
}
