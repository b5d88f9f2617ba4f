//! Customer applications. Every query is scoped by owner in SQL: another
//! customer's application is `NotFound`, exactly like one that does not exist.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use skypanel_domain::lifecycle::AppStatus;

use crate::schema::{paas_applications, paas_domains};
use crate::{Conn, Error, Page, Result, found};

#[derive(Queryable, Selectable, Clone, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = paas_applications, check_for_backend(diesel::pg::Pg))]
pub struct Application {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub slug: String,
    pub runtime_id: Option<i64>,
    pub plan_id: i64,
    pub node_id: Option<i64>,
    pub region: String,
    pub git_repo_url: Option<String>,
    pub git_branch: String,
    /// Sealed; open with the row's associated data.
    pub git_oauth_token: Option<Vec<u8>>,
    pub image: Option<String>,
    pub port: i32,
    pub health_check_path: Option<String>,
    pub auto_deploy: bool,
    pub status: String,
    pub current_build_id: Option<i64>,
    pub current_release_id: Option<i64>,
    pub instance_count: i32,
    pub system_domain: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every command the node must carry out.
    pub generation: i64,
    /// The last generation the node reported done.
    pub applied_generation: i64,
    /// The status the app takes once `generation` is applied.
    pub target_status: Option<String>,
    /// Why the last command failed, in words for the customer.
    pub last_error: Option<String>,
    /// The status it had before its owner's wallet suspended it.
    pub suspended_from: Option<String>,
    /// How many instances of each process type besides `web` run
    /// (`{"worker": 2}`); `web`'s count is `instance_count`.
    pub formation: serde_json::Value,
    /// An image application's declared process types (type → command).
    pub processes: Option<serde_json::Value>,
    /// The release phase's command when the release's Procfile has none.
    pub release_command: Option<String>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("id", &self.id)
            .field("slug", &self.slug)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Application {
    pub fn status(&self) -> Result<AppStatus> {
        Ok(self.status.parse()?)
    }

    /// Every process type's count: `web` (`instance_count`) and the others.
    pub fn formation(&self) -> std::collections::BTreeMap<String, i32> {
        let mut counts: std::collections::BTreeMap<String, i32> =
            serde_json::from_value(self.formation.clone()).unwrap_or_default();
        counts.insert("web".to_string(), self.instance_count);
        counts
    }

    /// The process instances the application runs when running: what
    /// capacity and billing count.
    pub fn total_instances(&self) -> i32 {
        self.formation().values().sum()
    }

    /// The processes an image application declared in the API.
    pub fn declared_processes(&self) -> Option<std::collections::BTreeMap<String, String>> {
        self.processes
            .as_ref()
            .and_then(|p| serde_json::from_value(p.clone()).ok())
    }

    /// Associated data binding the sealed git token to this application.
    pub fn git_token_associated_data(id: i64) -> Vec<u8> {
        format!("paas_applications.git_oauth_token:{id}").into_bytes()
    }
}

#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = paas_applications)]
pub struct NewApplication {
    pub user_id: i64,
    pub name: String,
    pub slug: String,
    pub runtime_id: Option<i64>,
    pub plan_id: i64,
    pub region: String,
    pub git_repo_url: Option<String>,
    pub git_branch: String,
    pub image: Option<String>,
    pub port: i32,
    pub health_check_path: Option<String>,
    pub auto_deploy: bool,
    pub instance_count: i32,
    pub system_domain: String,
    pub processes: Option<serde_json::Value>,
    pub release_command: Option<String>,
}

/// Settings a customer may change. For nullable columns `Some(None)` clears.
#[derive(AsChangeset, Debug, Clone, Default)]
#[diesel(table_name = paas_applications)]
pub struct ApplicationChanges {
    pub runtime_id: Option<Option<i64>>,
    pub plan_id: Option<i64>,
    pub git_repo_url: Option<Option<String>>,
    pub git_branch: Option<String>,
    pub git_oauth_token: Option<Option<Vec<u8>>>,
    pub image: Option<Option<String>>,
    pub port: Option<i32>,
    pub health_check_path: Option<Option<String>>,
    pub auto_deploy: Option<bool>,
    pub processes: Option<Option<serde_json::Value>>,
    pub release_command: Option<Option<String>>,
}

impl ApplicationChanges {
    fn is_empty(&self) -> bool {
        self.runtime_id.is_none()
            && self.plan_id.is_none()
            && self.git_repo_url.is_none()
            && self.git_branch.is_none()
            && self.git_oauth_token.is_none()
            && self.image.is_none()
            && self.port.is_none()
            && self.health_check_path.is_none()
            && self.auto_deploy.is_none()
            && self.processes.is_none()
            && self.release_command.is_none()
    }
}

/// Creates an application and its system domain in one transaction.
/// `seal_token`, when given, seals the git token once the row id is known.
pub async fn create(
    conn: &mut Conn,
    new: &NewApplication,
    seal_token: Option<&(dyn Fn(i64) -> Vec<u8> + Sync)>,
) -> Result<Application> {
    conn.transaction(async |conn| {
        let mut app: Application = diesel::insert_into(paas_applications::table)
            .values(new)
            .returning(Application::as_returning())
            .get_result(conn)
            .await?;
        diesel::insert_into(paas_domains::table)
            .values((
                paas_domains::application_id.eq(app.id),
                paas_domains::hostname.eq(&app.system_domain),
                paas_domains::is_system.eq(true),
            ))
            .execute(conn)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict { .. } => Error::conflict(
                    Some("name"),
                    "this name's domain is already used by another application",
                ),
                other => other,
            })?;
        if let Some(seal) = seal_token {
            app = diesel::update(paas_applications::table.find(app.id))
                .set(paas_applications::git_oauth_token.eq(Some(seal(app.id))))
                .returning(Application::as_returning())
                .get_result(conn)
                .await?;
        }
        Ok::<_, Error>(app)
    })
    .await
}

pub async fn list(conn: &mut Conn, owner: i64, page: Page) -> Result<Vec<Application>> {
    Ok(paas_applications::table
        .filter(paas_applications::user_id.eq(owner))
        .order(paas_applications::id)
        .limit(page.limit)
        .offset(page.offset)
        .select(Application::as_select())
        .load(conn)
        .await?)
}

pub async fn get(conn: &mut Conn, owner: i64, id: i64) -> Result<Application> {
    Ok(paas_applications::table
        .filter(paas_applications::id.eq(id))
        .filter(paas_applications::user_id.eq(owner))
        .select(Application::as_select())
        .first(conn)
        .await?)
}

/// The application whose slug is `slug` (slugs are unique), whoever owns
/// it: callers check the owner.
pub async fn by_slug(conn: &mut Conn, slug: &str) -> Result<Application> {
    Ok(paas_applications::table
        .filter(paas_applications::slug.eq(slug))
        .select(Application::as_select())
        .first(conn)
        .await?)
}

/// The id of application `id` if `owner` owns it, as a subquery: child tables
/// (variables, builds, releases, domains) filter on it so that every customer
/// query is scoped to its owner in SQL, not only by an earlier check.
#[diesel::dsl::auto_type]
pub(crate) fn owned_id(owner: i64, id: i64) -> _ {
    paas_applications::table
        .filter(paas_applications::id.eq(id))
        .filter(paas_applications::user_id.eq(owner))
        .select(paas_applications::id)
}

/// The owner's application, locked for the rest of the transaction.
pub async fn lock(conn: &mut Conn, owner: i64, id: i64) -> Result<Application> {
    Ok(paas_applications::table
        .filter(paas_applications::id.eq(id))
        .filter(paas_applications::user_id.eq(owner))
        .for_update()
        .select(Application::as_select())
        .first(conn)
        .await?)
}

pub async fn update(
    conn: &mut Conn,
    owner: i64,
    id: i64,
    changes: &ApplicationChanges,
    at: DateTime<Utc>,
) -> Result<Application> {
    if changes.is_empty() {
        return get(conn, owner, id).await;
    }
    conn.transaction(async |conn| {
        let app = diesel::update(
            paas_applications::table
                .filter(paas_applications::id.eq(id))
                .filter(paas_applications::user_id.eq(owner)),
        )
        .set(changes)
        .returning(Application::as_returning())
        .get_result(conn)
        .await?;
        // A new plan is billed from now on.
        crate::usage::sync_application(conn, &app, at).await?;
        Ok(app)
    })
    .await
}

pub async fn delete(conn: &mut Conn, owner: i64, id: i64) -> Result<()> {
    found(
        diesel::delete(
            paas_applications::table
                .filter(paas_applications::id.eq(id))
                .filter(paas_applications::user_id.eq(owner)),
        )
        .execute(conn)
        .await?,
    )
}

/// An application by id alone, for the actors (never for a customer request).
pub async fn load(conn: &mut Conn, id: i64) -> Result<Application> {
    Ok(paas_applications::table
        .find(id)
        .select(Application::as_select())
        .first(conn)
        .await?)
}

/// Every application id, for rebuilding the application actors.
pub async fn all_ids(conn: &mut Conn) -> Result<Vec<i64>> {
    Ok(paas_applications::table
        .select(paas_applications::id)
        .order(paas_applications::id)
        .load(conn)
        .await?)
}

/// Ids of the applications placed on a node.
pub async fn ids_on_node(conn: &mut Conn, node_id: i64) -> Result<Vec<i64>> {
    Ok(paas_applications::table
        .filter(paas_applications::node_id.eq(node_id))
        .select(paas_applications::id)
        .load(conn)
        .await?)
}

/// The orchestration state an application actor writes. `None` leaves a
/// column as it is; for nullable columns `Some(None)` clears.
#[derive(AsChangeset, Debug, Clone, Default)]
#[diesel(table_name = paas_applications)]
pub struct StateChange {
    pub status: Option<String>,
    pub target_status: Option<Option<String>>,
    pub generation: Option<i64>,
    pub applied_generation: Option<i64>,
    pub node_id: Option<Option<i64>>,
    pub current_release_id: Option<Option<i64>>,
    pub current_build_id: Option<Option<i64>>,
    pub instance_count: Option<i32>,
    pub last_error: Option<Option<String>>,
    pub suspended_from: Option<Option<String>>,
    /// Set with [`StateChange::with_formation`].
    pub formation: Option<serde_json::Value>,
}

impl StateChange {
    /// Sets the counts of the process types besides `web` (zeros left out).
    pub fn with_formation(mut self, others: &std::collections::BTreeMap<String, i32>) -> Self {
        let kept: std::collections::BTreeMap<&String, &i32> = others
            .iter()
            .filter(|(name, count)| **count > 0 && name.as_str() != "web")
            .collect();
        self.formation = Some(serde_json::json!(kept));
        self
    }

    /// The instances of the types besides `web` this change sets, if it sets them.
    pub fn other_instances(&self) -> Option<i32> {
        let counts: std::collections::BTreeMap<String, i32> =
            serde_json::from_value(self.formation.clone()?).ok()?;
        Some(counts.values().sum())
    }
}

/// Writes `change` if the row is still at `expected_version`, bumping it,
/// and the application's usage interval as of `at` (one transaction).
/// Another writer in between is `Error::Stale`: reload and decide again.
pub async fn write_state(
    conn: &mut Conn,
    id: i64,
    expected_version: i64,
    change: &StateChange,
    at: DateTime<Utc>,
) -> Result<Application> {
    conn.transaction(async |conn| {
        let app = diesel::update(
            paas_applications::table
                .filter(paas_applications::id.eq(id))
                .filter(paas_applications::version.eq(expected_version)),
        )
        .set((
            change,
            paas_applications::version.eq(paas_applications::version + 1),
        ))
        .returning(Application::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::Stale)?;
        crate::usage::sync_application(conn, &app, at).await?;
        Ok(app)
    })
    .await
}

/// Records the node an application is placed on, bumping its version.
pub async fn place(conn: &mut Conn, id: i64, node_id: i64) -> Result<()> {
    let updated = diesel::update(paas_applications::table.find(id))
        .set((
            paas_applications::node_id.eq(Some(node_id)),
            paas_applications::version.eq(paas_applications::version + 1),
        ))
        .execute(conn)
        .await?;
    crate::found(updated)
}

/// Binds an application's sealed webhook secret to the application.
pub fn webhook_secret_associated_data(id: i64) -> Vec<u8> {
    format!("paas_applications.webhook_secret:{id}").into_bytes()
}

/// An application and its sealed webhook secret, by id alone (the webhook
/// proves who it is by its signature, not by a token).
pub async fn with_webhook_secret(
    conn: &mut Conn,
    id: i64,
) -> Result<(Application, Option<Vec<u8>>)> {
    Ok(paas_applications::table
        .find(id)
        .select((Application::as_select(), paas_applications::webhook_secret))
        .first(conn)
        .await?)
}

/// Sets the owner's application's sealed webhook secret; with `only_if_unset`,
/// an existing one is kept. Answers the secret in force.
pub async fn set_webhook_secret(
    conn: &mut Conn,
    owner: i64,
    id: i64,
    sealed: &[u8],
    only_if_unset: bool,
) -> Result<Vec<u8>> {
    let mut query = diesel::update(
        paas_applications::table
            .filter(paas_applications::id.eq(id))
            .filter(paas_applications::user_id.eq(owner)),
    )
    .into_boxed();
    if only_if_unset {
        query = query.filter(paas_applications::webhook_secret.is_null());
    }
    let updated: Option<Option<Vec<u8>>> = query
        .set(paas_applications::webhook_secret.eq(Some(sealed)))
        .returning(paas_applications::webhook_secret)
        .get_result(conn)
        .await
        .optional()?;
    match updated {
        Some(Some(secret)) => Ok(secret),
        _ => {
            let current: Option<Vec<u8>> = paas_applications::table
                .filter(paas_applications::id.eq(id))
                .filter(paas_applications::user_id.eq(owner))
                .select(paas_applications::webhook_secret)
                .first(conn)
                .await?;
            current.ok_or(Error::NotFound)
        }
    }
}

/// Whether an application row exists.
pub async fn exists(conn: &mut Conn, id: i64) -> Result<bool> {
    Ok(
        diesel::select(diesel::dsl::exists(paas_applications::table.find(id)))
            .get_result(conn)
            .await?,
    )
}

/// Removes an application row once its containers are gone, ending its usage at `at`.
pub async fn delete_by_id(conn: &mut Conn, id: i64, at: DateTime<Utc>) -> Result<()> {
    conn.transaction(async |conn| {
        diesel::delete(paas_applications::table.find(id))
            .execute(conn)
            .await?;
        crate::usage::close(conn, crate::usage::APPLICATION, id, at).await
    })
    .await
}

/// Counts every customer's applications by status, for the admin statistics.
pub async fn count_by_status(conn: &mut Conn) -> Result<Vec<(String, i64)>> {
    Ok(paas_applications::table
        .group_by(paas_applications::status)
        .select((paas_applications::status, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}

/// Ids of a customer's applications in any of `statuses`.
pub async fn ids_of_owner_with_status(
    conn: &mut Conn,
    owner: i64,
    statuses: &[&str],
) -> Result<Vec<i64>> {
    Ok(paas_applications::table
        .filter(paas_applications::user_id.eq(owner))
        .filter(paas_applications::status.eq_any(statuses))
        .select(paas_applications::id)
        .order(paas_applications::id)
        .load(conn)
        .await?)
}

/// Owners of suspended applications, for the actors to watch at start.
pub async fn owners_with_suspended(conn: &mut Conn) -> Result<Vec<i64>> {
    Ok(paas_applications::table
        .filter(paas_applications::status.eq(AppStatus::Suspended.as_str()))
        .select(paas_applications::user_id)
        .distinct()
        .load(conn)
        .await?)
}

/// A customer's applications' ids and names.
pub async fn names_of_owner(conn: &mut Conn, owner: i64) -> Result<Vec<(i64, String)>> {
    Ok(paas_applications::table
        .filter(paas_applications::user_id.eq(owner))
        .select((paas_applications::id, paas_applications::name))
        .load(conn)
        .await?)
}

/// Every application, newest first (the admin inspector).
pub async fn list_all(conn: &mut Conn, limit: i64) -> Result<Vec<Application>> {
    Ok(paas_applications::table
        .order(paas_applications::id.desc())
        .limit(limit)
        .select(Application::as_select())
        .load(conn)
        .await?)
}
