//! Moves of managed databases between nodes (a new plan its own node has no
//! room for): the record of each, from `exporting` (dumped on the node it
//! leaves) through `importing` (restored on the node it goes to) to
//! `succeeded` or `failed` with the reason. At most one move per database
//! is under way (a partial unique index); each step changes the row only
//! from the state it expects, so a repeated report changes nothing.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::paas_database_moves;
use crate::{Conn, Result};

/// A database's move.
#[derive(Queryable, Selectable, Debug, Clone, PartialEq)]
#[diesel(table_name = paas_database_moves, check_for_backend(diesel::pg::Pg))]
pub struct Move {
    pub id: i64,
    pub database_id: i64,
    pub from_node_id: i64,
    pub to_node_id: i64,
    pub from_plan_id: i64,
    pub to_plan_id: i64,
    /// `exporting`, `importing`, `succeeded` or `failed`.
    pub status: String,
    pub export_task_id: Option<i64>,
    pub import_task_id: Option<i64>,
    /// The dump's size and SHA-256, once the node it leaves made it.
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    /// What the owner was told it would take.
    pub estimated_seconds: i32,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Move {
    /// Whether the move is under way.
    pub fn active(&self) -> bool {
        matches!(self.status.as_str(), "exporting" | "importing")
    }
}

/// A move about to start.
#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = paas_database_moves)]
pub struct NewMove {
    pub database_id: i64,
    pub from_node_id: i64,
    pub to_node_id: i64,
    pub from_plan_id: i64,
    pub to_plan_id: i64,
    pub estimated_seconds: i32,
    pub started_at: DateTime<Utc>,
}

/// Records a move (exporting). A database already moving is a conflict.
pub async fn begin(conn: &mut Conn, new: &NewMove) -> Result<Move> {
    diesel::insert_into(paas_database_moves::table)
        .values(new)
        .returning(Move::as_returning())
        .get_result(conn)
        .await
        .map_err(|err| match err {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => crate::Error::conflict(
                None,
                "the database is moving to another node already; try again once it runs",
            ),
            other => other.into(),
        })
}

/// The task that dumps the database on the node it leaves.
pub async fn set_export_task(conn: &mut Conn, id: i64, task_id: i64) -> Result<()> {
    let rows = diesel::update(paas_database_moves::table.find(id))
        .set(paas_database_moves::export_task_id.eq(Some(task_id)))
        .execute(conn)
        .await?;
    crate::found(rows)
}

/// The move under way of a database, if any.
pub async fn active(conn: &mut Conn, database_id: i64) -> Result<Option<Move>> {
    Ok(paas_database_moves::table
        .filter(paas_database_moves::database_id.eq(database_id))
        .filter(paas_database_moves::status.eq_any(["exporting", "importing"]))
        .select(Move::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A database's latest move (under way or ended), if any.
pub async fn latest(conn: &mut Conn, database_id: i64) -> Result<Option<Move>> {
    Ok(paas_database_moves::table
        .filter(paas_database_moves::database_id.eq(database_id))
        .order(paas_database_moves::id.desc())
        .select(Move::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A move by id.
pub async fn by_id(conn: &mut Conn, id: i64) -> Result<Move> {
    Ok(paas_database_moves::table
        .find(id)
        .select(Move::as_select())
        .first(conn)
        .await?)
}

/// The dump is made and copied: the move imports it with task `task_id`.
/// Answers false when the move was no longer exporting (nothing changed).
pub async fn exported(
    conn: &mut Conn,
    id: i64,
    size_bytes: i64,
    sha256: &str,
    task_id: i64,
) -> Result<bool> {
    let rows = diesel::update(paas_database_moves::table.find(id))
        .filter(paas_database_moves::status.eq("exporting"))
        .set((
            paas_database_moves::status.eq("importing"),
            paas_database_moves::size_bytes.eq(Some(size_bytes)),
            paas_database_moves::sha256.eq(Some(sha256)),
            paas_database_moves::import_task_id.eq(Some(task_id)),
        ))
        .execute(conn)
        .await?;
    Ok(rows == 1)
}

/// Ends a move under way: succeeded, or failed with `error`. Answers false
/// when it had ended already (nothing changed).
pub async fn finish(
    conn: &mut Conn,
    id: i64,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool> {
    let status = if error.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    let rows = diesel::update(paas_database_moves::table.find(id))
        .filter(paas_database_moves::status.eq_any(["exporting", "importing"]))
        .set((
            paas_database_moves::status.eq(status),
            paas_database_moves::error.eq(error),
            paas_database_moves::finished_at.eq(Some(at)),
        ))
        .execute(conn)
        .await?;
    Ok(rows == 1)
}
