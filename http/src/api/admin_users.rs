//! `/api/admin/users`: the platform's users as an admin finds them (by
//! e-mail), and one user with their applications, databases and wallet.

use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_domain::money::format_amount;
use skypanel_store::{Page, accounts, apps, databases, wallets};

use super::{Tag, page};
use crate::auth::AdminAuth;
use crate::dto::accounts::{AccountExport, AdminUserDetail, AdminUserView};
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
