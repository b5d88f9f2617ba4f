//! An application's environment variables. Values arrive and leave sealed;
//! this module never sees plaintext. Every query is scoped to the app's owner.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use skypanel_domain::env::MAX_VARS_PER_APP;

use crate::apps::owned_id;
use crate::schema::{paas_applications, paas_environment_vars};
use crate::{Conn, Error, Result, found};

#[derive(Queryable, Selectable, Clone, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = paas_environment_vars, check_for_backend(diesel::pg::Pg))]
pub struct EnvVar {
    pub id: i64,
    pub application_id: i64,
    pub key: String,
    /// Sealed value.
    pub value: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvVar")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

pub async fn list(conn: &mut Conn, owner: i64, application_id: i64) -> Result<Vec<EnvVar>> {
    Ok(paas_environment_vars::table
        .filter(paas_environment_vars::application_id.eq_any(owned_id(owner, application_id)))
        .order(paas_environment_vars::key)
        .select(EnvVar::as_select())
        .load(conn)
        .await?)
}

/// Adds a new variable; an existing key is a conflict, and so is the
/// [`MAX_VARS_PER_APP`]+1st. The app row is locked so concurrent adds count right.
pub async fn add(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
    key: &str,
    sealed: &[u8],
) -> Result<EnvVar> {
    conn.transaction(async |conn| {
        paas_applications::table
            .find(application_id)
            .filter(paas_applications::user_id.eq(owner))
            .select(paas_applications::id)
            .for_update()
            .first::<i64>(conn)
            .await?;
        let count: i64 = paas_environment_vars::table
            .filter(paas_environment_vars::application_id.eq(application_id))
            .count()
            .get_result(conn)
            .await?;
        if count >= MAX_VARS_PER_APP {
            return Err(Error::conflict(
                Some("key"),
                format!("an application has at most {MAX_VARS_PER_APP} variables"),
            ));
        }
        Ok(diesel::insert_into(paas_environment_vars::table)
            .values((
                paas_environment_vars::application_id.eq(application_id),
                paas_environment_vars::key.eq(key),
                paas_environment_vars::value.eq(sealed),
            ))
            .returning(EnvVar::as_returning())
            .get_result(conn)
            .await?)
    })
    .await
}

/// Replaces the value of an existing key.
pub async fn update(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
    key: &str,
    sealed: &[u8],
) -> Result<EnvVar> {
    Ok(diesel::update(
        paas_environment_vars::table
            .filter(paas_environment_vars::application_id.eq_any(owned_id(owner, application_id)))
            .filter(paas_environment_vars::key.eq(key)),
    )
    .set(paas_environment_vars::value.eq(sealed))
    .returning(EnvVar::as_returning())
    .get_result(conn)
    .await?)
}

pub async fn delete(conn: &mut Conn, owner: i64, application_id: i64, key: &str) -> Result<()> {
    found(
        diesel::delete(
            paas_environment_vars::table
                .filter(
                    paas_environment_vars::application_id.eq_any(owned_id(owner, application_id)),
                )
                .filter(paas_environment_vars::key.eq(key)),
        )
        .execute(conn)
        .await?,
    )
}

/// Replaces every variable of an application with `vars` (key, sealed
/// value), as a rollback restores a release's environment. Runs inside the
/// caller's transaction.
pub async fn replace_all(
    conn: &mut Conn,
    application_id: i64,
    vars: &[(String, Vec<u8>)],
) -> Result<()> {
    diesel::delete(
        paas_environment_vars::table
            .filter(paas_environment_vars::application_id.eq(application_id)),
    )
    .execute(conn)
    .await?;
    let rows: Vec<_> = vars
        .iter()
        .map(|(key, sealed)| {
            (
                paas_environment_vars::application_id.eq(application_id),
                paas_environment_vars::key.eq(key),
                paas_environment_vars::value.eq(sealed),
            )
        })
        .collect();
    if !rows.is_empty() {
        diesel::insert_into(paas_environment_vars::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// How a change treats keys that exist or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Every key set must be new (a conflict on `key` otherwise).
    Add,
    /// Every key set or removed must exist (not found otherwise).
    Update,
    /// Set creates or replaces; removing a missing key is not an error.
    Set,
}

/// A change of an application's variables: keys to set (sealed values)
/// and keys to remove.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub set: Vec<(String, Vec<u8>)>,
    pub removed: Vec<String>,
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Change")
            .field("set", &self.set.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("removed", &self.removed)
            .finish()
    }
}

/// Applies a change inside the caller's transaction, which must hold the
/// application's row lock (counts stay right); answers the variables after it.
pub async fn apply_change(
    conn: &mut Conn,
    application_id: i64,
    change: &Change,
    mode: Mode,
) -> Result<Vec<EnvVar>> {
    let existing: Vec<String> = paas_environment_vars::table
        .filter(paas_environment_vars::application_id.eq(application_id))
        .select(paas_environment_vars::key)
        .load(conn)
        .await?;
    let has = |key: &str| existing.iter().any(|k| k == key);
    for (key, _) in &change.set {
        if mode == Mode::Add && has(key) {
            return Err(Error::conflict(
                Some("key"),
                format!("variable {key} exists already; change it with PUT"),
            ));
        }
        if mode == Mode::Update && !has(key) {
            return Err(Error::NotFound);
        }
    }
    if mode == Mode::Update && change.removed.iter().any(|k| !has(k)) {
        return Err(Error::NotFound);
    }
    let after = existing
        .iter()
        .filter(|k| !change.removed.contains(k))
        .chain(change.set.iter().map(|(k, _)| k).filter(|k| !has(k)))
        .count() as i64;
    if after > MAX_VARS_PER_APP && after > existing.len() as i64 {
        return Err(Error::conflict(
            Some("key"),
            format!("an application has at most {MAX_VARS_PER_APP} variables"),
        ));
    }
    if !change.removed.is_empty() {
        diesel::delete(
            paas_environment_vars::table
                .filter(paas_environment_vars::application_id.eq(application_id))
                .filter(paas_environment_vars::key.eq_any(&change.removed)),
        )
        .execute(conn)
        .await?;
    }
    for (key, sealed) in &change.set {
        diesel::insert_into(paas_environment_vars::table)
            .values((
                paas_environment_vars::application_id.eq(application_id),
                paas_environment_vars::key.eq(key),
                paas_environment_vars::value.eq(sealed),
            ))
            .on_conflict((
                paas_environment_vars::application_id,
                paas_environment_vars::key,
            ))
            .do_update()
            .set(paas_environment_vars::value.eq(sealed))
            .execute(conn)
            .await?;
    }
    Ok(paas_environment_vars::table
        .filter(paas_environment_vars::application_id.eq(application_id))
        .order(paas_environment_vars::key)
        .select(EnvVar::as_select())
        .load(conn)
        .await?)
}
