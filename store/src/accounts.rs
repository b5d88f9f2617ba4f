//! Users and their long-lived API tokens. A user is created together with an
//! empty wallet, in one transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use skypanel_domain::lifecycle::Role;

use crate::schema::{api_tokens, users, wallets};
use crate::{Conn, Error, Result, found};

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub name: Option<String>,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the account was deleted (its row stays for accounting).
    pub deleted_at: Option<DateTime<Utc>>,
    /// When an admin suspended the account, and why (the customer reads it).
    pub suspended_at: Option<DateTime<Utc>>,
    pub suspension_reason: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl User {
    pub fn role(&self) -> Result<Role> {
        Ok(self.role.parse()?)
    }
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::pg::Pg))]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub token_hint: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Creates a user and their wallet. A taken e-mail is a conflict on `email`.
pub async fn create_user(
    conn: &mut Conn,
    email: &str,
    password_hash: &str,
    name: Option<&str>,
    role: Role,
) -> Result<User> {
    conn.transaction(async |conn| {
        let user: User = diesel::insert_into(users::table)
            .values((
                users::email.eq(email),
                users::password_hash.eq(password_hash),
                users::name.eq(name),
                users::role.eq(role.as_str()),
            ))
            .returning(User::as_returning())
            .get_result(conn)
            .await?;
        diesel::insert_into(wallets::table)
            .values(wallets::user_id.eq(user.id))
            .execute(conn)
            .await?;
        Ok::<_, Error>(user)
    })
    .await
}

/// Creates an admin, or makes an existing user an admin with the given password.
/// Answers the user and whether it was newly created.
pub async fn upsert_admin(
    conn: &mut Conn,
    email: &str,
    password_hash: &str,
) -> Result<(User, bool)> {
    let updated: Option<User> = diesel::update(users::table.filter(users::email.eq(email)))
        .set((
            users::role.eq(Role::Admin.as_str()),
            users::password_hash.eq(password_hash),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match updated {
        Some(user) => Ok((user, false)),
        None => Ok((
            create_user(conn, email, password_hash, None, Role::Admin).await?,
            true,
        )),
    }
}

pub async fn find_user_by_email(conn: &mut Conn, email: &str) -> Result<Option<User>> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn get_user(conn: &mut Conn, id: i64) -> Result<User> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await?)
}

pub async fn user_exists(conn: &mut Conn, id: i64) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(users::table.find(id)))
        .get_result(conn)
        .await?)
}

/// Stores a new API token by its digest; the secret itself is never stored.
pub async fn create_token(
    conn: &mut Conn,
    user_id: i64,
    name: &str,
    digest: &str,
    hint: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<ApiToken> {
    Ok(diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::user_id.eq(user_id),
            api_tokens::name.eq(name),
            api_tokens::token_digest.eq(digest),
            api_tokens::token_hint.eq(hint),
            api_tokens::expires_at.eq(expires_at),
        ))
        .returning(ApiToken::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn list_tokens(conn: &mut Conn, user_id: i64) -> Result<Vec<ApiToken>> {
    Ok(api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .order(api_tokens::id.asc())
        .select(ApiToken::as_select())
        .load(conn)
        .await?)
}

/// Revokes one of the user's tokens; another user's token is not found.
pub async fn delete_token(conn: &mut Conn, user_id: i64, token_id: i64) -> Result<()> {
    found(
        diesel::delete(
            api_tokens::table
                .filter(api_tokens::id.eq(token_id))
                .filter(api_tokens::user_id.eq(user_id)),
        )
        .execute(conn)
        .await?,
    )
}

/// Finds the user behind an unexpired token digest, with the token's expiry,
/// and records the use (at most once a minute, to keep reads cheap).
pub async fn authenticate_token(
    conn: &mut Conn,
    digest: &str,
) -> Result<Option<(User, Option<DateTime<Utc>>)>> {
    let now = Utc::now();
    let found: Option<(ApiToken, User)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_digest.eq(digest))
        .filter(
            api_tokens::expires_at
                .is_null()
                .or(api_tokens::expires_at.gt(now)),
        )
        .select((ApiToken::as_select(), User::as_select()))
        .first(conn)
        .await
        .optional()?;
    let Some((token, user)) = found else {
        return Ok(None);
    };
    let stale = token
        .last_used_at
        .is_none_or(|at| now - at > chrono::Duration::minutes(1));
    if stale {
        diesel::update(api_tokens::table.find(token.id))
            .set(api_tokens::last_used_at.eq(now))
            .execute(conn)
            .await?;
    }
    Ok(Some((user, token.expires_at)))
}

/// Counts users by role, for the admin statistics.
pub async fn count_users_by_role(conn: &mut Conn) -> Result<Vec<(String, i64)>> {
    Ok(users::table
        .group_by(users::role)
        .select((users::role, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}

/// A user as an admin lists them: with their balance and how many
/// applications and databases they have.
pub struct UserSummary {
    pub user: User,
    pub balance: bigdecimal::BigDecimal,
    pub currency: String,
    pub applications: i64,
    pub databases: i64,
}

/// Users, oldest first, whose e-mail contains `search` (any case) when given.
pub async fn list_users(
    conn: &mut Conn,
    search: Option<&str>,
    page: crate::Page,
) -> Result<Vec<UserSummary>> {
    use crate::schema::{paas_applications, paas_databases};
    let mut query = users::table
        .inner_join(wallets::table)
        .order(users::id)
        .limit(page.limit)
        .offset(page.offset)
        .select((User::as_select(), wallets::balance, wallets::currency))
        .into_boxed();
    if let Some(search) = search {
        let escaped = search
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        query = query.filter(users::email.like(format!("%{escaped}%")));
    }
    let found: Vec<(User, bigdecimal::BigDecimal, String)> = query.load(conn).await?;
    let ids: Vec<i64> = found.iter().map(|(u, _, _)| u.id).collect();
    let apps: Vec<(i64, i64)> = paas_applications::table
        .filter(paas_applications::user_id.eq_any(&ids))
        .group_by(paas_applications::user_id)
        .select((paas_applications::user_id, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    let dbs: Vec<(i64, i64)> = paas_databases::table
        .filter(paas_databases::user_id.eq_any(&ids))
        .group_by(paas_databases::user_id)
        .select((paas_databases::user_id, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    let count = |list: &[(i64, i64)], id: i64| {
        list.iter()
            .find(|(owner, _)| *owner == id)
            .map_or(0, |(_, n)| *n)
    };
    Ok(found
        .into_iter()
        .map(|(user, balance, currency)| UserSummary {
            applications: count(&apps, user.id),
            databases: count(&dbs, user.id),
            user,
            balance,
            currency,
        })
        .collect())
}

/// Deletes an account, keeping its row for the ledger and billing records:
/// the e-mail is replaced (free to register again), the password can no
/// longer match, the name goes, and its API tokens, console sessions and
/// event webhooks are removed, in one transaction. Answers false when the
/// account was already deleted.
pub async fn delete_account(conn: &mut Conn, user_id: i64, at: DateTime<Utc>) -> Result<bool> {
    use crate::schema::{console_sessions, paas_webhooks};
    conn.transaction(async |conn| {
        let changed = diesel::update(
            users::table
                .filter(users::id.eq(user_id))
                .filter(users::deleted_at.is_null()),
        )
        .set((
            users::email.eq(format!("deleted-{user_id}@deleted.invalid")),
            // Not a PHC string: no password verifies against it.
            users::password_hash.eq("!deleted"),
            users::name.eq(None::<String>),
            users::deleted_at.eq(Some(at)),
        ))
        .execute(conn)
        .await?;
        if changed == 0 {
            return Ok::<_, Error>(false);
        }
        diesel::delete(api_tokens::table.filter(api_tokens::user_id.eq(user_id)))
            .execute(conn)
            .await?;
        diesel::delete(console_sessions::table.filter(console_sessions::user_id.eq(user_id)))
            .execute(conn)
            .await?;
        diesel::delete(paas_webhooks::table.filter(paas_webhooks::user_id.eq(user_id)))
            .execute(conn)
            .await?;
        Ok(true)
    })
    .await
}

/// An admin suspends (`Some((when, why))`) or resumes (`None`) an account.
/// Answers the user as it is now; a deleted or unknown account is not found.
/// Suspending an account already suspended keeps its first date and takes
/// the new reason.
pub async fn set_suspension(
    conn: &mut Conn,
    user_id: i64,
    suspension: Option<(DateTime<Utc>, &str)>,
) -> Result<User> {
    let target = users::table
        .filter(users::id.eq(user_id))
        .filter(users::deleted_at.is_null());
    let changed =
        match suspension {
            Some((at, reason)) => diesel::update(target)
                .set((
                    users::suspended_at.eq(diesel::dsl::sql::<
                        diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
                    >("COALESCE(suspended_at, ")
                    .bind::<diesel::sql_types::Timestamptz, _>(at)
                    .sql(")")),
                    users::suspension_reason.eq(Some(reason)),
                    users::updated_at.eq(at),
                ))
                .returning(User::as_returning())
                .get_result(conn)
                .await
                .optional()?,
            None => diesel::update(target)
                .set((
                    users::suspended_at.eq(None::<DateTime<Utc>>),
                    users::suspension_reason.eq(None::<String>),
                ))
                .returning(User::as_returning())
                .get_result(conn)
                .await
                .optional()?,
        };
    changed.ok_or(Error::NotFound)
}

/// Accounts an admin has suspended (their wallets' actors watch them).
pub async fn suspended_users(conn: &mut Conn) -> Result<Vec<i64>> {
    Ok(users::table
        .filter(users::suspended_at.is_not_null())
        .select(users::id)
        .load(conn)
        .await?)
}
