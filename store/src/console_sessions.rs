//! Browser sessions of the web console: created at login, found by the
//! digest of the cookie's secret while unexpired, deleted at logout.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::accounts::User;
use crate::schema::{console_sessions, users};
use crate::{Conn, Result};

/// A live session's user, its CSRF token and when it ends.
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Stores a session by the digest of its secret, and forgets the expired
/// ones of every user on the way (a table that only grows otherwise).
pub async fn create(
    conn: &mut Conn,
    user_id: i64,
    digest: &str,
    csrf_token: &str,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    diesel::delete(console_sessions::table.filter(console_sessions::expires_at.le(Utc::now())))
        .execute(conn)
        .await?;
    diesel::insert_into(console_sessions::table)
        .values((
            console_sessions::user_id.eq(user_id),
            console_sessions::token_digest.eq(digest),
            console_sessions::csrf_token.eq(csrf_token),
            console_sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The unexpired session whose secret has this digest, with its user.
pub async fn find(conn: &mut Conn, digest: &str) -> Result<Option<Session>> {
    let found: Option<(User, String, DateTime<Utc>)> = console_sessions::table
        .inner_join(users::table)
        .filter(console_sessions::token_digest.eq(digest))
        .filter(console_sessions::expires_at.gt(Utc::now()))
        .select((
            User::as_select(),
            console_sessions::csrf_token,
            console_sessions::expires_at,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(found.map(|(user, csrf_token, expires_at)| Session {
        user,
        csrf_token,
        expires_at,
    }))
}

/// Ends a session (logout); answers whether there was one.
pub async fn delete(conn: &mut Conn, digest: &str) -> Result<bool> {
    let deleted =
        diesel::delete(console_sessions::table.filter(console_sessions::token_digest.eq(digest)))
            .execute(conn)
            .await?;
    Ok(deleted > 0)
}
