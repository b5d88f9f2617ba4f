//! The audit log of sensitive actions: append-only from the application's side.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::audit_log;
use crate::{Conn, Page, Result};

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

/// One recorded entry.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
pub struct Recorded {
    pub id: i64,
    pub actor_user_id: Option<i64>,
    pub actor_node_id: Option<i64>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<i64>,
    pub details: serde_json::Value,
    pub ip_address: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Which entries to list; every field left out matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub actor_user_id: Option<i64>,
    pub actor_node_id: Option<i64>,
    /// An exact action (`user.login`), or a family with a trailing `.*` (`env.*`).
    pub action: Option<&'a str>,
    pub target_type: Option<&'a str>,
    pub target_id: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The entries matching `filter`, newest first.
pub async fn list(conn: &mut Conn, filter: &Filter<'_>, page: Page) -> Result<Vec<Recorded>> {
    let mut query = audit_log::table.select(Recorded::as_select()).into_boxed();
    if let Some(user) = filter.actor_user_id {
        query = query.filter(audit_log::actor_user_id.eq(user));
    }
    if let Some(node) = filter.actor_node_id {
        query = query.filter(audit_log::actor_node_id.eq(node));
    }
    match filter.action {
        Some(family) if family.ends_with(".*") => {
            let prefix = family.trim_end_matches('*').replace(['%', '_', '\\'], "");
            query = query.filter(audit_log::action.like(format!("{prefix}%")));
        }
        Some(action) => query = query.filter(audit_log::action.eq(action.to_string())),
        None => {}
    }
    if let Some(kind) = filter.target_type {
        query = query.filter(audit_log::target_type.eq(kind.to_string()));
    }
    if let Some(id) = filter.target_id {
        query = query.filter(audit_log::target_id.eq(id));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_log::created_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_log::created_at.lt(until));
    }
    Ok(query
        .order(audit_log::id.desc())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?)
}
