//! Prepaid wallets and their ledger. Every balance change inserts a ledger row
//! and updates the balance in one transaction, with the wallet row locked, so
//! the balance always equals credits minus debits.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::schema::{wallet_transactions, wallets};
use crate::{Conn, Error, Page, Result};

#[derive(Queryable, Selectable, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = wallets, check_for_backend(diesel::pg::Pg))]
pub struct Wallet {
    pub id: i64,
    pub user_id: i64,
    pub balance: BigDecimal,
    pub currency: String,
    pub negative_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// This spell below zero has had its notice.
    pub negative_noticed: bool,
}

#[derive(Queryable, Selectable, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = wallet_transactions, check_for_backend(diesel::pg::Pg))]
pub struct WalletTransaction {
    pub id: i64,
    pub wallet_id: i64,
    pub kind: String,
    pub amount: BigDecimal,
    pub balance_after: BigDecimal,
    pub description: String,
    pub reference: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// Which way money moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    Credit,
    Debit,
}

/// One balance change to apply.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub direction: Direction,
    /// Strictly positive; the direction gives the sign.
    pub amount: &'a BigDecimal,
    pub description: &'a str,
    /// Idempotency key: a second change with the same reference is a conflict.
    pub reference: Option<&'a str>,
    pub created_by: Option<i64>,
    /// When it happens (a wallet going below zero is negative since then).
    pub at: DateTime<Utc>,
}

/// The user's wallet, created empty if the user has none yet.
pub async fn wallet_for_user(conn: &mut Conn, user_id: i64) -> Result<Wallet> {
    diesel::insert_into(wallets::table)
        .values(wallets::user_id.eq(user_id))
        .on_conflict(wallets::user_id)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(wallets::table
        .filter(wallets::user_id.eq(user_id))
        .select(Wallet::as_select())
        .first(conn)
        .await?)
}

/// The newest ledger rows of the user's wallet first.
pub async fn list_transactions(
    conn: &mut Conn,
    wallet_id: i64,
    page: Page,
) -> Result<Vec<WalletTransaction>> {
    Ok(wallet_transactions::table
        .filter(wallet_transactions::wallet_id.eq(wallet_id))
        .order(wallet_transactions::id.desc())
        .limit(page.limit)
        .offset(page.offset)
        .select(WalletTransaction::as_select())
        .load(conn)
        .await?)
}

/// Applies one change to the user's wallet: locks the wallet, writes the
/// ledger row and the new balance, and tracks since when it is negative.
pub async fn apply_change(
    conn: &mut Conn,
    user_id: i64,
    change: Change<'_>,
) -> Result<(Wallet, WalletTransaction)> {
    if *change.amount <= 0 {
        return Err(Error::conflict(
            Some("amount"),
            "a ledger amount is positive",
        ));
    }
    wallet_for_user(conn, user_id).await?;
    conn.transaction(async |conn| {
        let wallet: Wallet = wallets::table
            .filter(wallets::user_id.eq(user_id))
            .for_update()
            .select(Wallet::as_select())
            .first(conn)
            .await?;
        let (kind, balance) = match change.direction {
            Direction::Credit => ("credit", &wallet.balance + change.amount),
            Direction::Debit => ("debit", &wallet.balance - change.amount),
        };
        let entry: WalletTransaction = diesel::insert_into(wallet_transactions::table)
            .values((
                wallet_transactions::wallet_id.eq(wallet.id),
                wallet_transactions::kind.eq(kind),
                wallet_transactions::amount.eq(change.amount),
                wallet_transactions::balance_after.eq(&balance),
                wallet_transactions::description.eq(change.description),
                wallet_transactions::reference.eq(change.reference),
                wallet_transactions::created_by.eq(change.created_by),
            ))
            .returning(WalletTransaction::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict { .. } => {
                    Error::conflict(Some("reference"), "this change was already applied")
                }
                other => other,
            })?;
        let negative_since = if balance < 0 {
            Some(wallet.negative_since.unwrap_or(change.at))
        } else {
            None
        };
        let wallet: Wallet = diesel::update(wallets::table.find(wallet.id))
            .set((
                wallets::balance.eq(&balance),
                wallets::negative_since.eq(negative_since),
                wallets::negative_noticed.eq(balance < 0 && wallet.negative_noticed),
            ))
            .returning(Wallet::as_returning())
            .get_result(conn)
            .await?;
        Ok::<_, Error>((wallet, entry))
    })
    .await
}

/// The user's wallet, if it has one.
pub async fn find(conn: &mut Conn, user_id: i64) -> Result<Option<Wallet>> {
    Ok(wallets::table
        .filter(wallets::user_id.eq(user_id))
        .select(Wallet::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Records that this spell below zero has had its notice; false when it
/// had one already (or the wallet is not below zero any more).
pub async fn mark_negative_noticed(conn: &mut Conn, user_id: i64) -> Result<bool> {
    let updated = diesel::update(
        wallets::table
            .filter(wallets::user_id.eq(user_id))
            .filter(wallets::negative_since.is_not_null())
            .filter(wallets::negative_noticed.eq(false)),
    )
    .set(wallets::negative_noticed.eq(true))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// Users whose wallet is below zero, for the actors to watch at start.
pub async fn negative_users(conn: &mut Conn) -> Result<Vec<i64>> {
    Ok(wallets::table
        .filter(wallets::negative_since.is_not_null())
        .select(wallets::user_id)
        .order(wallets::user_id)
        .load(conn)
        .await?)
}
