//! The prepaid wallet and its ledger.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use skypanel_domain::money::format_amount;
use skypanel_store::wallets::{Wallet, WalletTransaction};

#[derive(Object, Debug)]
pub struct TransactionView {
    pub id: i64,
    /// `credit` or `debit`.
    pub kind: String,
    /// Decimal string, always positive; `kind` gives the direction.
    pub amount: String,
    /// The balance right after this entry.
    pub balance_after: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

impl From<WalletTransaction> for TransactionView {
    fn from(t: WalletTransaction) -> Self {
        Self {
            id: t.id,
            kind: t.kind,
            amount: format_amount(&t.amount, 4),
            balance_after: format_amount(&t.balance_after, 4),
            description: t.description,
            created_at: t.created_at,
        }
    }
}

#[derive(Object, Debug)]
pub struct WalletView {
    pub user_id: i64,
    /// Decimal string; negative when usage exceeded the credit.
    pub balance: String,
    pub currency: String,
    /// Since when the balance is below zero, if it is.
    #[oai(nullable)]
    pub negative_since: Option<DateTime<Utc>>,
    /// Newest first, paged by `limit` and `offset`.
    pub transactions: Vec<TransactionView>,
}

impl WalletView {
    pub fn new(wallet: Wallet, transactions: Vec<WalletTransaction>) -> Self {
        Self {
            user_id: wallet.user_id,
            balance: format_amount(&wallet.balance, 4),
            currency: wallet.currency,
            negative_since: wallet.negative_since,
            transactions: transactions.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreditRequest {
    /// Decimal string, more than zero, at most two decimals: `"25.00"`.
    #[oai(validator(pattern = r"^[1-9][0-9]{0,4}(\.[0-9]{1,2})?$"))]
    pub amount: String,
    /// Shown to the customer in their ledger.
    #[oai(validator(pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,98}[A-Za-z0-9]$"))]
    pub description: String,
    /// Makes the credit idempotent: a payment provider's payment id.
    /// A second credit with the same reference answers 409.
    #[oai(nullable)]
    pub reference: Option<String>,
}

#[derive(Object, Debug)]
pub struct CreditResult {
    pub balance: String,
    pub transaction: TransactionView,
}
