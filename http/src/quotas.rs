//! Resource quotas (the seed design's): how many applications and databases
//! a customer may have, and the balance a wallet needs before anything new
//! is created. Past one: 409 `quota_exceeded` or `balance_too_low`, and
//! nothing is created; an account an admin suspended gets 403
//! `account_suspended`.

use bigdecimal::BigDecimal;
use skypanel_store::{Conn, apps, databases, wallets};

use crate::error::ApiError;

/// The limits; set by the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Quotas {
    pub max_apps: i64,
    pub max_databases: i64,
    /// The balance a wallet needs to create an application or a database.
    pub min_balance: BigDecimal,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_apps: 50,
            max_databases: 20,
            min_balance: BigDecimal::from(0),
        }
    }
}

impl Quotas {
    /// Reads a minimum balance (`5.00`); `None` when it is not an amount.
    pub fn parse_amount(text: &str) -> Option<BigDecimal> {
        text.trim().parse().ok()
    }
}

/// What is being created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creating {
    Application,
    Database,
}

/// Checks that the customer may create one more of `what`.
pub async fn check(
    conn: &mut Conn,
    quotas: &Quotas,
    user_id: i64,
    what: Creating,
) -> Result<(), ApiError> {
    refuse_suspended(conn, user_id).await?;
    let (have, max, noun) = match what {
        Creating::Application => (
            apps::names_of_owner(conn, user_id).await?.len() as i64,
            quotas.max_apps,
            "applications",
        ),
        Creating::Database => (
            databases::list(conn, user_id).await?.len() as i64,
            quotas.max_databases,
            "databases",
        ),
    };
    if have >= max {
        return Err(ApiError::conflict(
            "quota_exceeded",
            format!("an account may have {max} {noun}; delete one first or ask for a higher quota"),
            None,
        ));
    }
    let balance = match wallets::find(conn, user_id).await? {
        Some(wallet) => wallet.balance,
        None => BigDecimal::from(0),
    };
    if balance < quotas.min_balance {
        return Err(ApiError::conflict(
            "balance_too_low",
            format!(
                "creating {noun} needs a balance of at least {}; add credit first",
                skypanel_domain::money::format_amount(&quotas.min_balance, 2)
            ),
            None,
        ));
    }
    Ok(())
}

/// 403 `account_suspended` with the admin's reason while an admin holds the
/// account suspended: nothing new is created, deployed or started.
pub async fn refuse_suspended(conn: &mut Conn, user_id: i64) -> Result<(), ApiError> {
    let user = skypanel_store::accounts::get_user(conn, user_id).await?;
    if user.suspended_at.is_some() {
        return Err(ApiError::forbidden_because(
            "account_suspended",
            format!(
                "your account is suspended: {}; contact the platform's operator",
                user.suspension_reason.unwrap_or_default()
            ),
        ));
    }
    Ok(())
}
