//! Managed databases of customers: the row, its sealed password, placement
//! and the state its node reports. Status changes follow
//! `domain::lifecycle::database` and keep the usage interval in line.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use skypanel_domain::lifecycle::{DatabaseEvent, DatabaseStatus, database_transition};

use crate::apps::owned_id;
use crate::schema::{paas_app_databases, paas_database_health, paas_databases};
use crate::usage::{self, Running};
use crate::{Conn, Error, Result};

/// A database without its password.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_databases, check_for_backend(diesel::pg::Pg))]
pub struct Database {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub db_type: String,
    pub version: String,
    pub plan_id: i64,
    pub node_id: Option<i64>,
    pub region: String,
    /// The name other containers on the customer's network reach it by.
    pub host: Option<String>,
    pub port: Option<i32>,
    pub username: Option<String>,
    pub database_name: Option<String>,
    pub status: String,
    pub failure_reason: Option<String>,
    pub image: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Suspended while its owner had it stopped: a resume brings it back stopped.
    pub resume_stopped: bool,
}

impl Database {
    pub fn status(&self) -> Result<DatabaseStatus> {
        Ok(self.status.parse()?)
    }

    /// Binds a database's sealed password to the database.
    pub fn password_associated_data(id: i64) -> Vec<u8> {
        format!("paas_databases.password:{id}").into_bytes()
    }
}

/// What a new database is.
#[derive(Debug, Clone)]
pub struct NewDatabase<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub db_type: &'a str,
    pub version: &'a str,
    pub plan_id: i64,
    pub region: &'a str,
    pub image: &'a str,
    /// The host name other containers reach database `id` by.
    pub host_of: fn(i64) -> String,
    pub port: i32,
    pub username: &'a str,
    pub database_name: &'a str,
}

/// Creates a pending database with its password sealed by `seal(id)`, in
/// one transaction. A name the customer already uses is a conflict on `name`.
pub async fn create(
    conn: &mut Conn,
    new: &NewDatabase<'_>,
    seal: &(dyn Fn(i64) -> Vec<u8> + Sync),
) -> Result<Database> {
    conn.transaction(async |conn| {
        let db: Database = diesel::insert_into(paas_databases::table)
            .values((
                paas_databases::user_id.eq(new.user_id),
                paas_databases::name.eq(new.name),
                paas_databases::db_type.eq(new.db_type),
                paas_databases::version.eq(new.version),
                paas_databases::plan_id.eq(new.plan_id),
                paas_databases::region.eq(new.region),
                paas_databases::image.eq(new.image),
                paas_databases::port.eq(new.port),
                paas_databases::username.eq(new.username),
                paas_databases::database_name.eq(new.database_name),
            ))
            .returning(Database::as_returning())
            .get_result(conn)
            .await?;
        let host = (new.host_of)(db.id);
        Ok(diesel::update(paas_databases::table.find(db.id))
            .set((
                paas_databases::password.eq(Some(seal(db.id))),
                paas_databases::host.eq(Some(host)),
            ))
            .returning(Database::as_returning())
            .get_result(conn)
            .await?)
    })
    .await
}

/// The owner's database.
pub async fn get(conn: &mut Conn, owner: i64, id: i64) -> Result<Database> {
    Ok(paas_databases::table
        .filter(paas_databases::id.eq(id))
        .filter(paas_databases::user_id.eq(owner))
        .select(Database::as_select())
        .first(conn)
        .await?)
}

/// A database by id alone (for the platform's own work).
pub async fn by_id(conn: &mut Conn, id: i64) -> Result<Database> {
    Ok(paas_databases::table
        .find(id)
        .select(Database::as_select())
        .first(conn)
        .await?)
}

/// The owner's sealed password of a database.
pub async fn sealed_password(conn: &mut Conn, owner: i64, id: i64) -> Result<Vec<u8>> {
    paas_databases::table
        .filter(paas_databases::id.eq(id))
        .filter(paas_databases::user_id.eq(owner))
        .select(paas_databases::password)
        .first::<Option<Vec<u8>>>(conn)
        .await?
        .ok_or(Error::NotFound)
}

/// The owner's databases, oldest first.
pub async fn list(conn: &mut Conn, owner: i64) -> Result<Vec<Database>> {
    Ok(paas_databases::table
        .filter(paas_databases::user_id.eq(owner))
        .order(paas_databases::id.asc())
        .select(Database::as_select())
        .load(conn)
        .await?)
}

/// Records the node the Scheduler chose.
pub async fn place(conn: &mut Conn, id: i64, node_id: i64) -> Result<()> {
    let rows = diesel::update(paas_databases::table.find(id))
        .set(paas_databases::node_id.eq(Some(node_id)))
        .execute(conn)
        .await?;
    crate::found(rows)
}

/// Puts a database whose move failed back on the node it left, at the plan
/// it had there (it is pending until that node has it running again).
pub async fn rehome(conn: &mut Conn, id: i64, node_id: i64, plan_id: i64) -> Result<Database> {
    Ok(diesel::update(paas_databases::table.find(id))
        .set((
            paas_databases::node_id.eq(Some(node_id)),
            paas_databases::plan_id.eq(plan_id),
        ))
        .returning(Database::as_returning())
        .get_result(conn)
        .await?)
}

/// Applies `event` to the database (checked against the transition table),
/// with `reason` for a failure, and keeps its usage interval in line, in one
/// transaction at `at`. Answers the database as it is now; an event the
/// table refuses changes nothing and is an error.
pub async fn transition(
    conn: &mut Conn,
    id: i64,
    event: DatabaseEvent,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Database> {
    conn.transaction(async |conn| {
        let db: Database = paas_databases::table
            .find(id)
            .select(Database::as_select())
            .for_update()
            .first(conn)
            .await?;
        let current = db.status()?;
        let next = database_transition(current, event)
            .map_err(|e| Error::conflict(None, e.to_string()))?;
        // What a suspension interrupts is what its resume brings back.
        let resume_stopped = match event {
            DatabaseEvent::Suspend => current == DatabaseStatus::Stopped,
            _ => db.resume_stopped && next == DatabaseStatus::Suspended,
        };
        let updated: Database = diesel::update(paas_databases::table.find(id))
            .set((
                paas_databases::status.eq(next.as_str()),
                paas_databases::failure_reason.eq(reason),
                paas_databases::resume_stopped.eq(resume_stopped),
            ))
            .returning(Database::as_returning())
            .get_result(conn)
            .await?;
        sync_usage(conn, &updated, at).await?;
        Ok(updated)
    })
    .await
}

/// Opens, closes or re-prices the database's usage interval to match its
/// status and plan now.
async fn sync_usage(conn: &mut Conn, db: &Database, at: DateTime<Utc>) -> Result<()> {
    let running =
        skypanel_domain::lifecycle::database::is_billed(db.status()?).then_some(Running {
            user_id: db.user_id,
            plan_id: db.plan_id,
            instances: 1,
        });
    usage::sync(conn, "database", db.id, running, at).await
}

/// Moves the owner's database to `plan_id`, in one transaction at `at`: a
/// running one becomes pending (its node makes its container again with
/// the new limits; its billing pauses until it runs again, at the new
/// plan's rate), a stopped one just takes the plan for its next start.
/// Any other state is a conflict.
pub async fn resize(
    conn: &mut Conn,
    owner: i64,
    id: i64,
    plan_id: i64,
    at: DateTime<Utc>,
) -> Result<Database> {
    conn.transaction(async |conn| {
        let db: Database = paas_databases::table
            .filter(paas_databases::id.eq(id))
            .filter(paas_databases::user_id.eq(owner))
            .select(Database::as_select())
            .for_update()
            .first(conn)
            .await?;
        let current = db.status()?;
        let next = match current {
            DatabaseStatus::Stopped => current,
            _ => database_transition(current, DatabaseEvent::Resize).map_err(|_| {
                Error::conflict(
                    None,
                    format!("the database is {current}; only a running or stopped database can change its plan"),
                )
            })?,
        };
        let updated: Database = diesel::update(paas_databases::table.find(id))
            .set((
                paas_databases::plan_id.eq(plan_id),
                paas_databases::status.eq(next.as_str()),
                paas_databases::failure_reason.eq(None::<String>),
            ))
            .returning(Database::as_returning())
            .get_result(conn)
            .await?;
        sync_usage(conn, &updated, at).await?;
        Ok(updated)
    })
    .await
}

/// Deletes the owner's database row (its billing interval closed at `at`);
/// with `keep_until`, its data on its node is recorded as kept until then,
/// in the same transaction.
pub async fn delete(
    conn: &mut Conn,
    owner: i64,
    id: i64,
    at: DateTime<Utc>,
    keep_until: Option<DateTime<Utc>>,
) -> Result<Database> {
    conn.transaction(async |conn| {
        let db: Database = paas_databases::table
            .filter(paas_databases::id.eq(id))
            .filter(paas_databases::user_id.eq(owner))
            .select(Database::as_select())
            .for_update()
            .first(conn)
            .await?;
        usage::sync(conn, "database", id, None, at).await?;
        diesel::delete(paas_databases::table.find(id))
            .execute(conn)
            .await?;
        if let (Some(purge_after), Some(node_id)) = (keep_until, db.node_id) {
            let kept = crate::backups::NewKeptVolume {
                database_id: db.id,
                user_id: db.user_id,
                node_id,
                name: &db.name,
                db_type: &db.db_type,
                deleted_at: at,
                purge_after,
            };
            crate::backups::keep_volume(conn, &kept).await?;
        }
        Ok(db)
    })
    .await
}

/// A database linked into an application under a variable prefix.
#[derive(Debug, Clone)]
pub struct Link {
    pub database: Database,
    pub env_var_prefix: String,
    pub created_at: DateTime<Utc>,
}

/// Links the owner's database into the owner's application. Either one
/// missing or another customer's is `NotFound`; the same link twice, or a
/// prefix another link of the application uses, is a conflict.
pub async fn link(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
    database_id: i64,
    prefix: &str,
) -> Result<Link> {
    let database = get(conn, owner, database_id).await?;
    let app: i64 = crate::schema::paas_applications::table
        .filter(crate::schema::paas_applications::id.eq(application_id))
        .filter(crate::schema::paas_applications::user_id.eq(owner))
        .select(crate::schema::paas_applications::id)
        .first(conn)
        .await?;
    let created_at: DateTime<Utc> = diesel::insert_into(paas_app_databases::table)
        .values((
            paas_app_databases::application_id.eq(app),
            paas_app_databases::database_id.eq(database.id),
            paas_app_databases::env_var_prefix.eq(prefix),
        ))
        .returning(paas_app_databases::created_at)
        .get_result(conn)
        .await?;
    Ok(Link {
        database,
        env_var_prefix: prefix.to_string(),
        created_at,
    })
}

/// Removes a link of the owner's application.
pub async fn unlink(
    conn: &mut Conn,
    owner: i64,
    application_id: i64,
    database_id: i64,
) -> Result<()> {
    let rows = diesel::delete(
        paas_app_databases::table
            .filter(paas_app_databases::application_id.eq_any(owned_id(owner, application_id)))
            .filter(paas_app_databases::database_id.eq(database_id)),
    )
    .execute(conn)
    .await?;
    crate::found(rows)
}

/// The databases linked into an application, oldest link first.
pub async fn links(conn: &mut Conn, application_id: i64) -> Result<Vec<Link>> {
    let rows: Vec<(Database, String, DateTime<Utc>)> = paas_app_databases::table
        .inner_join(paas_databases::table)
        .filter(paas_app_databases::application_id.eq(application_id))
        .order(paas_app_databases::id.asc())
        .select((
            Database::as_select(),
            paas_app_databases::env_var_prefix,
            paas_app_databases::created_at,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(database, env_var_prefix, created_at)| Link {
            database,
            env_var_prefix,
            created_at,
        })
        .collect())
}

/// A database's sealed password by id alone (for the platform's own work).
pub async fn sealed_password_of(conn: &mut Conn, id: i64) -> Result<Vec<u8>> {
    paas_databases::table
        .find(id)
        .select(paas_databases::password)
        .first::<Option<Vec<u8>>>(conn)
        .await?
        .ok_or(Error::NotFound)
}

/// The names of the applications a database is linked into.
pub async fn linked_applications(conn: &mut Conn, database_id: i64) -> Result<Vec<String>> {
    use crate::schema::paas_applications;
    Ok(paas_app_databases::table
        .inner_join(paas_applications::table)
        .filter(paas_app_databases::database_id.eq(database_id))
        .order(paas_applications::name.asc())
        .select(paas_applications::name)
        .load(conn)
        .await?)
}

/// The owner's databases in one of `statuses`, by id.
pub async fn of_owner_with_status(
    conn: &mut Conn,
    owner: i64,
    statuses: &[&str],
) -> Result<Vec<Database>> {
    Ok(paas_databases::table
        .filter(paas_databases::user_id.eq(owner))
        .filter(paas_databases::status.eq_any(statuses))
        .order(paas_databases::id.asc())
        .select(Database::as_select())
        .load(conn)
        .await?)
}

/// Owners with a suspended database (their wallets watch for a top-up).
pub async fn owners_with_suspended(conn: &mut Conn) -> Result<Vec<i64>> {
    Ok(paas_databases::table
        .filter(paas_databases::status.eq("suspended"))
        .select(paas_databases::user_id)
        .distinct()
        .load(conn)
        .await?)
}

/// What a database's node last measured of it.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = paas_database_health, check_for_backend(diesel::pg::Pg))]
pub struct Health {
    pub database_id: i64,
    /// Its data folder's size on disk.
    pub size_bytes: Option<i64>,
    /// Client connections to its engine.
    pub connections: Option<i32>,
    pub measured_at: DateTime<Utc>,
}

/// Keeps node `node_id`'s measurements of the databases placed on it (one
/// about a database placed elsewhere, or deleted, is dropped), each
/// replacing the one before.
pub async fn record_health(conn: &mut Conn, node_id: i64, measured: &[Health]) -> Result<()> {
    use diesel::upsert::excluded;
    let ids: Vec<i64> = measured.iter().map(|h| h.database_id).collect();
    let here: Vec<i64> = paas_databases::table
        .filter(paas_databases::id.eq_any(&ids))
        .filter(paas_databases::node_id.eq(node_id))
        .select(paas_databases::id)
        .load(conn)
        .await?;
    let rows: Vec<&Health> = measured
        .iter()
        .filter(|h| here.contains(&h.database_id))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    diesel::insert_into(paas_database_health::table)
        .values(rows)
        .on_conflict(paas_database_health::database_id)
        .do_update()
        .set((
            paas_database_health::size_bytes.eq(excluded(paas_database_health::size_bytes)),
            paas_database_health::connections.eq(excluded(paas_database_health::connections)),
            paas_database_health::measured_at.eq(excluded(paas_database_health::measured_at)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The last measurement of database `id`, if any.
pub async fn health_of(conn: &mut Conn, id: i64) -> Result<Option<Health>> {
    Ok(paas_database_health::table
        .find(id)
        .select(Health::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Every customer's databases, oldest first, each with its last
/// measurement: one page.
pub async fn all_with_health(
    conn: &mut Conn,
    page: crate::Page,
) -> Result<Vec<(Database, Option<Health>)>> {
    Ok(paas_databases::table
        .left_join(paas_database_health::table)
        .order(paas_databases::id.asc())
        .limit(page.limit)
        .offset(page.offset)
        .select((Database::as_select(), Option::<Health>::as_select()))
        .load(conn)
        .await?)
}
