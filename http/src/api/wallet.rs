//! `/api/wallet`: the caller's prepaid balance and ledger.

use poem_openapi::OpenApi;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use skypanel_store::wallets;

use super::{Tag, page};
use crate::auth::BearerAuth;
use crate::dto::wallet::WalletView;
use crate::error::ApiResult;
use crate::state::AppState;

pub struct WalletApi {
    pub state: AppState,
}

#[OpenApi(tag = "Tag::Wallet")]
impl WalletApi {
    /// The caller's balance and ledger, newest entries first
    #[oai(path = "/wallet", method = "get", operation_id = "getWallet")]
    async fn wallet(
        &self,
        auth: BearerAuth,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
    ) -> ApiResult<Json<WalletView>> {
        let mut conn = self.state.store().conn().await?;
        let wallet = wallets::wallet_for_user(&mut conn, auth.user_id()).await?;
        let entries =
            wallets::list_transactions(&mut conn, wallet.id, page(limit.0, offset.0)).await?;
        Ok(Json(WalletView::new(wallet, entries)))
    }
}
