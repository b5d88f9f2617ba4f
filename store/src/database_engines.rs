//! Managed database engines: the image that runs each database type and
//! version, managed by admins (seeded with the official images).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::schema::{paas_database_engines, paas_databases};
use crate::{Conn, Error, Result};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_database_engines, check_for_backend(diesel::pg::Pg))]
pub struct Engine {
    pub id: i64,
    /// `postgresql`, `mysql`, `redis` or `mongodb`.
    pub db_type: String,
    pub version: String,
    pub image: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Every engine, by type and version.
pub async fn list(conn: &mut Conn) -> Result<Vec<Engine>> {
    Ok(paas_database_engines::table
        .order((
            paas_database_engines::db_type.asc(),
            paas_database_engines::version.asc(),
        ))
        .select(Engine::as_select())
        .load(conn)
        .await?)
}

/// The engine of a type and version.
pub async fn find(conn: &mut Conn, db_type: &str, version: &str) -> Result<Engine> {
    Ok(paas_database_engines::table
        .filter(paas_database_engines::db_type.eq(db_type))
        .filter(paas_database_engines::version.eq(version))
        .select(Engine::as_select())
        .first(conn)
        .await?)
}

/// Adds an engine; the same type and version twice is a conflict on `version`.
pub async fn create(conn: &mut Conn, db_type: &str, version: &str, image: &str) -> Result<Engine> {
    Ok(diesel::insert_into(paas_database_engines::table)
        .values((
            paas_database_engines::db_type.eq(db_type),
            paas_database_engines::version.eq(version),
            paas_database_engines::image.eq(image),
        ))
        .returning(Engine::as_returning())
        .get_result(conn)
        .await?)
}

/// Points an engine at another image (databases created from now on use it).
pub async fn set_image(conn: &mut Conn, id: i64, image: &str) -> Result<Engine> {
    Ok(diesel::update(paas_database_engines::table.find(id))
        .set(paas_database_engines::image.eq(image))
        .returning(Engine::as_returning())
        .get_result(conn)
        .await?)
}

/// Removes an engine no database uses; one in use is a conflict naming how many.
pub async fn delete(conn: &mut Conn, id: i64) -> Result<()> {
    conn.transaction(async |conn| {
        let engine: Engine = paas_database_engines::table
            .find(id)
            .select(Engine::as_select())
            .for_update()
            .first(conn)
            .await?;
        let used: i64 = paas_databases::table
            .filter(paas_databases::db_type.eq(&engine.db_type))
            .filter(paas_databases::version.eq(&engine.version))
            .count()
            .get_result(conn)
            .await?;
        if used > 0 {
            return Err(Error::conflict(
                None,
                format!(
                    "{used} database(s) run {} {}; delete them first",
                    engine.db_type, engine.version
                ),
            ));
        }
        diesel::delete(paas_database_engines::table.find(id))
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
}
