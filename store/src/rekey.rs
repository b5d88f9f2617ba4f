//! Sealing every secret at rest again under the current key (`skypanel
//! secrets rotate`): each sealed column is walked in batches, and a value
//! that opens only with an earlier key is replaced by the same value sealed
//! under the current one, with the same associated data. The update only
//! lands while the row still holds the value read, so a secret changed
//! meanwhile by the running control plane (already sealed under the current
//! key) is never overwritten. Values no key opens are counted, not touched.

use diesel::sql_types::{BigInt, Bytea, Nullable, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;
use skypanel_domain::secrets::SecretKey;

use crate::{Conn, Result};

/// Rows read per batch.
const BATCH: i64 = 500;

/// One sealed column and how its associated data is made from its row.
struct Column {
    table: &'static str,
    column: &'static str,
    /// SQL for the row's owner id and name, when the associated data needs them.
    owner: &'static str,
    name: &'static str,
    associated_data: fn(&Row) -> Vec<u8>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Bytea)]
    sealed: Vec<u8>,
    #[diesel(sql_type = Nullable<BigInt>)]
    owner: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

/// Every sealed column of the schema: every `bytea` column is one, and a
/// test (store/tests) fails when a `bytea` column is missing here.
const COLUMNS: &[Column] = &[
    Column {
        table: "paas_environment_vars",
        column: "value",
        owner: "application_id",
        name: "key",
        associated_data: |r| {
            skypanel_domain::env::associated_data(
                r.owner.unwrap_or(0),
                r.name.as_deref().unwrap_or(""),
            )
        },
    },
    Column {
        table: "paas_applications",
        column: "git_oauth_token",
        owner: "NULL",
        name: "NULL",
        associated_data: |r| crate::apps::Application::git_token_associated_data(r.id),
    },
    Column {
        table: "paas_applications",
        column: "webhook_secret",
        owner: "NULL",
        name: "NULL",
        associated_data: |r| crate::apps::webhook_secret_associated_data(r.id),
    },
    Column {
        table: "paas_releases",
        column: "env_snapshot",
        owner: "NULL",
        name: "NULL",
        associated_data: |r| crate::releases::Release::env_associated_data(r.id),
    },
    Column {
        table: "paas_databases",
        column: "password",
        owner: "NULL",
        name: "NULL",
        associated_data: |r| crate::databases::Database::password_associated_data(r.id),
    },
    Column {
        table: "paas_tasks",
        column: "sealed_secrets",
        owner: "NULL",
        name: "NULL",
        associated_data: |r| crate::tasks::Task::secrets_associated_data(r.id),
    },
    Column {
        table: "paas_webhooks",
        column: "secret",
        owner: "NULL",
        name: "NULL",
        associated_data: |r| crate::webhooks::Webhook::secret_associated_data(r.id),
    },
    Column {
        table: "paas_domains",
        column: "private_key",
        owner: "NULL",
        name: "NULL",
        associated_data: |r| crate::domains::Domain::key_associated_data(r.id),
    },
    Column {
        table: "paas_github_app",
        column: "secrets",
        owner: "NULL",
        name: "NULL",
        associated_data: |r| crate::github::GithubApp::secrets_associated_data(r.id),
    },
    Column {
        table: "paas_acme_accounts",
        column: "credentials",
        owner: "NULL",
        name: "directory_url",
        associated_data: |r| {
            crate::certificates::account_associated_data(r.name.as_deref().unwrap_or(""))
        },
    },
];

/// Every sealed column, as `table.column`.
pub fn sealed_columns() -> Vec<String> {
    COLUMNS
        .iter()
        .map(|c| format!("{}.{}", c.table, c.column))
        .collect()
}

/// What a rotation did, per column (`table.column`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// Values sealed again under the current key.
    pub resealed: u64,
    /// Values already under the current key.
    pub current: u64,
    /// Values no key opens (left as they are), as `table.column#id`.
    pub unreadable: Vec<String>,
    /// Values changed by someone else between the read and the update (they
    /// were written under the current key).
    pub raced: u64,
    pub columns: Vec<(String, u64)>,
}

/// Seals every value that opens only with an earlier key again under `key`'s
/// current one.
pub async fn rotate(conn: &mut Conn, key: &SecretKey) -> Result<Rotated> {
    let mut done = Rotated::default();
    for column in COLUMNS {
        let mut after = 0i64;
        let mut resealed_here = 0u64;
        loop {
            let rows: Vec<Row> = sql_query(format!(
                "SELECT id, {col} AS sealed, {owner}::bigint AS owner, {name}::text AS name \
                 FROM {table} WHERE {col} IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
                col = column.column,
                owner = column.owner,
                name = column.name,
                table = column.table,
            ))
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(BATCH)
            .load(conn)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            for row in &rows {
                match key.reseal(&row.sealed, &(column.associated_data)(row)) {
                    Ok(None) => done.current += 1,
                    Err(_) => done
                        .unreadable
                        .push(format!("{}.{}#{}", column.table, column.column, row.id)),
                    Ok(Some(again)) => {
                        let changed = sql_query(format!(
                            "UPDATE {table} SET {col} = $1 WHERE id = $2 AND {col} = $3",
                            table = column.table,
                            col = column.column,
                        ))
                        .bind::<Bytea, _>(&again)
                        .bind::<BigInt, _>(row.id)
                        .bind::<Bytea, _>(&row.sealed)
                        .execute(conn)
                        .await?;
                        if changed == 1 {
                            done.resealed += 1;
                            resealed_here += 1;
                        } else {
                            done.raced += 1;
                        }
                    }
                }
            }
        }
        done.columns
            .push((format!("{}.{}", column.table, column.column), resealed_here));
    }
    Ok(done)
}
