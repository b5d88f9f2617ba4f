//! `store::Error`: what a query can fail with, with unique and foreign-key
//! violations turned into conflicts that name the field a caller got wrong.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No row, or a row the caller does not own.
    #[error("not found")]
    NotFound,
    /// A unique value is taken, or a row is still referenced; `field` names the input.
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    /// The row changed since it was read (its version moved on).
    #[error("the record changed concurrently")]
    Stale,
    /// A stored value no longer parses (a corrupt row or a newer schema).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database cannot be reached right now (pool exhausted, connection lost).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A write fenced by a shard whose lease this replica no longer holds
    /// (another replica took it over): the write did not happen.
    #[error("shard {shard} is owned by another control-plane replica now")]
    Fenced { shard: i32 },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database: {0}")]
    Database(DieselError),
}

impl Error {
    pub fn conflict(field: Option<&'static str>, message: impl Into<String>) -> Self {
        Self::Conflict {
            field,
            message: message.into(),
        }
    }
}

/// Unique constraints a caller can run into, with the field and words to report.
const UNIQUE_CONSTRAINTS: &[(&str, &str, &str)] = &[
    (
        "users_email_key",
        "email",
        "an account with this e-mail address already exists",
    ),
    (
        "paas_applications_slug_key",
        "name",
        "an application with this name already exists",
    ),
    (
        "paas_applications_system_domain_key",
        "name",
        "an application with this name already exists",
    ),
    (
        "paas_domains_hostname_key",
        "hostname",
        "this hostname is already used by an application",
    ),
    (
        "paas_plans_name_key",
        "name",
        "a plan with this name already exists",
    ),
    (
        "paas_runtimes_name_key",
        "name",
        "a runtime with this name already exists",
    ),
    (
        "paas_nodes_name_key",
        "name",
        "a node with this name already exists",
    ),
    (
        "paas_environment_vars_application_id_key_key",
        "key",
        "this variable already exists",
    ),
    (
        "paas_database_engines_db_type_version_key",
        "version",
        "an engine of this type and version already exists",
    ),
    (
        "paas_app_databases_application_id_database_id_key",
        "database_id",
        "this database is already linked to the application",
    ),
    (
        "paas_app_databases_application_id_env_var_prefix_key",
        "env_var_prefix",
        "another database of the application uses this prefix",
    ),
    (
        "paas_databases_user_id_name_key",
        "name",
        "a database with this name already exists",
    ),
    (
        "api_tokens_token_digest_key",
        "name",
        "token collision, try again",
    ),
];

impl From<DieselError> for Error {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => Error::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, ref info) => {
                let constraint = info.constraint_name().unwrap_or_default();
                match UNIQUE_CONSTRAINTS
                    .iter()
                    .find(|(name, ..)| *name == constraint)
                {
                    Some((_, field, message)) => Error::conflict(Some(field), *message),
                    None => Error::conflict(None, "this value is already taken"),
                }
            }
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, ref info) => {
                match info.constraint_name().unwrap_or_default() {
                    "paas_applications_check" => Error::conflict(
                        Some("image"),
                        "an application deploys from a git repository or an image, not both",
                    ),
                    _ => Error::conflict(
                        None,
                        "the change conflicts with the current state; try again",
                    ),
                }
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                Error::Unavailable("the connection to PostgreSQL was lost".into())
            }
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, ref info) => {
                let table = info.table_name().unwrap_or("another record");
                Error::conflict(None, format!("still referenced by {table}"))
            }
            other => Error::Database(other),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for Error {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Error::Unavailable(err.to_string())
    }
}

impl From<skypanel_domain::lifecycle::UnknownState> for Error {
    fn from(err: skypanel_domain::lifecycle::UnknownState) -> Self {
        Error::Corrupt(err.to_string())
    }
}
