//! An application's environment variables. Values arrive and leave sealed;
//! this module never sees plaintext. Every query is scoped to the app's owner.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use skypanel_domain::env::MAX_VARS_PER_APP;

use crate::apps::owned_id;
use crate::schema::{paas_applications, paas_environment_vars};
use crate::{Conn, Error, Result, found};

#[derive(Queryable, Selectable, Clone)]
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
