//! The audit log of sensitive actions: append-only from the application's side.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::audit_log;
use crate::{Conn, Result};

/// Who did it: a user, an agent (by node), or the platform itself.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    User(i64),
    Node(i64),
    System,
}

/// One entry to append.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor: Actor,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<i64>,
    /// Never a secret: callers pass ids, names and counts only.
    pub details: serde_json::Value,
    pub ip_address: Option<&'a str>,
}

pub async fn record(conn: &mut Conn, entry: Entry<'_>) -> Result<()> {
    let (user, node) = match entry.actor {
        Actor::User(id) => (Some(id), None),
        Actor::Node(id) => (None, Some(id)),
        Actor::System => (None, None),
    };
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::actor_user_id.eq(user),
            audit_log::actor_node_id.eq(node),
            audit_log::action.eq(entry.action),
            audit_log::target_type.eq(entry.target_type),
            audit_log::target_id.eq(entry.target_id),
            audit_log::details.eq(entry.details),
            audit_log::ip_address.eq(entry.ip_address),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
