//! The platform's GitHub App: its configuration (secrets sealed together),
//! the `state` of authorizations in flight, the installations customers
//! connected, the applications built from a repository through one, and the
//! webhook deliveries already acted on.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::schema::{
    paas_app_github, paas_applications, paas_github_app, paas_github_deliveries,
    paas_github_installations, paas_github_states,
};
use crate::{Conn, Result};

/// How long a delivery id is remembered (GitHub redelivers for 3 days).
const DELIVERIES_KEPT_DAYS: i64 = 7;

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = paas_github_app, check_for_backend(diesel::pg::Pg))]
pub struct GithubApp {
    pub id: i64,
    pub app_id: i64,
    pub slug: String,
    pub client_id: String,
    /// Sealed JSON of the client secret, private key and webhook secret.
    pub secrets: Vec<u8>,
    pub updated_at: DateTime<Utc>,
}

impl GithubApp {
    pub fn secrets_associated_data(id: i64) -> Vec<u8> {
        format!("paas_github_app.secrets:{id}").into_bytes()
    }
}

/// The App's configuration, or None before an admin sets it.
pub async fn app(conn: &mut Conn) -> Result<Option<GithubApp>> {
    Ok(paas_github_app::table
        .find(1_i64)
        .select(GithubApp::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Sets the App's configuration (the only one); `seal` seals the secrets
/// under the row's associated data.
pub async fn set_app(
    conn: &mut Conn,
    app_id: i64,
    slug: &str,
    client_id: &str,
    seal: &(dyn Fn(i64) -> Vec<u8> + Sync),
    now: DateTime<Utc>,
) -> Result<GithubApp> {
    let sealed = seal(1);
    Ok(diesel::insert_into(paas_github_app::table)
        .values((
            paas_github_app::id.eq(1_i64),
            paas_github_app::app_id.eq(app_id),
            paas_github_app::slug.eq(slug),
            paas_github_app::client_id.eq(client_id),
            paas_github_app::secrets.eq(&sealed),
            paas_github_app::updated_at.eq(now),
        ))
        .on_conflict(paas_github_app::id)
        .do_update()
        .set((
            paas_github_app::app_id.eq(app_id),
            paas_github_app::slug.eq(slug),
            paas_github_app::client_id.eq(client_id),
            paas_github_app::secrets.eq(&sealed),
            paas_github_app::updated_at.eq(now),
        ))
        .returning(GithubApp::as_returning())
        .get_result(conn)
        .await?)
}

/// Removes the App's configuration; whether there was one.
pub async fn remove_app(conn: &mut Conn) -> Result<bool> {
    Ok(diesel::delete(paas_github_app::table).execute(conn).await? > 0)
}

/// Records an authorization's state (its digest) for `user_id`.
pub async fn create_state(
    conn: &mut Conn,
    user_id: i64,
    digest: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    // States nobody came back with are dropped as new ones are made.
    diesel::delete(paas_github_states::table.filter(paas_github_states::expires_at.lt(now)))
        .execute(conn)
        .await?;
    diesel::insert_into(paas_github_states::table)
        .values((
            paas_github_states::digest.eq(digest),
            paas_github_states::user_id.eq(user_id),
            paas_github_states::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Uses a state once: the customer it was made for, if it is unused and
/// not expired.
pub async fn take_state(conn: &mut Conn, digest: &str, now: DateTime<Utc>) -> Result<Option<i64>> {
    Ok(diesel::update(
        paas_github_states::table
            .filter(paas_github_states::digest.eq(digest))
            .filter(paas_github_states::used_at.is_null())
            .filter(paas_github_states::expires_at.gt(now)),
    )
    .set(paas_github_states::used_at.eq(now))
    .returning(paas_github_states::user_id)
    .get_result(conn)
    .await
    .optional()?)
}

#[derive(Queryable, Selectable, Debug, Clone, PartialEq, Eq)]
#[diesel(table_name = paas_github_installations, check_for_backend(diesel::pg::Pg))]
pub struct Installation {
    pub id: i64,
    pub user_id: i64,
    pub installation_id: i64,
    pub account_login: String,
    pub created_at: DateTime<Utc>,
}

/// Connects an installation to a customer (again: its account name is kept
/// current). An installation that comes back reconnects the customer's
/// applications built through it.
pub async fn connect(
    conn: &mut Conn,
    user_id: i64,
    installation_id: i64,
    account_login: &str,
) -> Result<Installation> {
    let row = diesel::insert_into(paas_github_installations::table)
        .values((
            paas_github_installations::user_id.eq(user_id),
            paas_github_installations::installation_id.eq(installation_id),
            paas_github_installations::account_login.eq(account_login),
        ))
        .on_conflict((
            paas_github_installations::user_id,
            paas_github_installations::installation_id,
        ))
        .do_update()
        .set(paas_github_installations::account_login.eq(account_login))
        .returning(Installation::as_returning())
        .get_result(conn)
        .await?;
    let owned = paas_applications::table
        .filter(paas_applications::user_id.eq(user_id))
        .select(paas_applications::id);
    diesel::update(
        paas_app_github::table
            .filter(paas_app_github::installation_id.eq(installation_id))
            .filter(paas_app_github::application_id.eq_any(owned)),
    )
    .set(paas_app_github::disconnected_at.eq(None::<DateTime<Utc>>))
    .execute(conn)
    .await?;
    Ok(row)
}

/// A customer's installations, oldest first.
pub async fn installations(conn: &mut Conn, user_id: i64) -> Result<Vec<Installation>> {
    Ok(paas_github_installations::table
        .filter(paas_github_installations::user_id.eq(user_id))
        .order(paas_github_installations::id)
        .select(Installation::as_select())
        .load(conn)
        .await?)
}

/// Whether the customer connected this installation.
pub async fn has_installation(conn: &mut Conn, user_id: i64, installation_id: i64) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        paas_github_installations::table
            .filter(paas_github_installations::user_id.eq(user_id))
            .filter(paas_github_installations::installation_id.eq(installation_id)),
    ))
    .get_result(conn)
    .await?)
}

/// An application's link to its repository.
#[derive(Queryable, Selectable, Debug, Clone, PartialEq, Eq)]
#[diesel(table_name = paas_app_github, check_for_backend(diesel::pg::Pg))]
pub struct AppGithub {
    pub application_id: i64,
    pub installation_id: i64,
    /// `owner/name` as GitHub spells it.
    pub repository: String,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Links an application to a repository through an installation (in the
/// transaction that creates the application).
pub async fn link_app(
    conn: &mut Conn,
    application_id: i64,
    installation_id: i64,
    repository: &str,
) -> Result<AppGithub> {
    Ok(diesel::insert_into(paas_app_github::table)
        .values((
            paas_app_github::application_id.eq(application_id),
            paas_app_github::installation_id.eq(installation_id),
            paas_app_github::repository.eq(repository),
        ))
        .on_conflict(paas_app_github::application_id)
        .do_update()
        .set((
            paas_app_github::installation_id.eq(installation_id),
            paas_app_github::repository.eq(repository),
            paas_app_github::disconnected_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(AppGithub::as_returning())
        .get_result(conn)
        .await?)
}

/// Creates an application built from a GitHub repository and its link, in
/// one transaction.
pub async fn create_app(
    conn: &mut Conn,
    new: &crate::apps::NewApplication,
    installation_id: i64,
    repository: &str,
) -> Result<crate::apps::Application> {
    conn.transaction(async |conn| {
        let app = crate::apps::create(conn, new, None).await?;
        link_app(conn, app.id, installation_id, repository).await?;
        Ok(app)
    })
    .await
}

/// Ends an application's link (its repository changed to another source).
pub async fn unlink_app(conn: &mut Conn, application_id: i64) -> Result<()> {
    diesel::delete(paas_app_github::table.find(application_id))
        .execute(conn)
        .await?;
    Ok(())
}

/// The links of these applications.
pub async fn app_links(conn: &mut Conn, application_ids: &[i64]) -> Result<Vec<AppGithub>> {
    if application_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(paas_app_github::table
        .filter(paas_app_github::application_id.eq_any(application_ids))
        .select(AppGithub::as_select())
        .load(conn)
        .await?)
}

/// An application a push deploys: its id and owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushTarget {
    pub application_id: i64,
    pub user_id: i64,
}

/// The applications a push to `repository`'s `branch` through this
/// installation deploys: linked and connected, on that branch, with
/// `auto_deploy` on, not being deleted.
pub async fn push_targets(
    conn: &mut Conn,
    installation_id: i64,
    repository: &str,
    branch: &str,
) -> Result<Vec<PushTarget>> {
    let rows: Vec<(i64, i64)> = paas_app_github::table
        .inner_join(paas_applications::table)
        .filter(paas_app_github::installation_id.eq(installation_id))
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("lower(paas_app_github.repository) = ")
                .bind::<diesel::sql_types::Text, _>(repository.to_lowercase()),
        )
        .filter(paas_app_github::disconnected_at.is_null())
        .filter(paas_applications::git_branch.eq(branch))
        .filter(paas_applications::auto_deploy.eq(true))
        .filter(paas_applications::status.ne("deleting"))
        .order(paas_applications::id)
        .select((paas_applications::id, paas_applications::user_id))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(application_id, user_id)| PushTarget {
            application_id,
            user_id,
        })
        .collect())
}

/// An application a removed installation disconnected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnected {
    pub application_id: i64,
    pub user_id: i64,
    pub name: String,
    pub repository: String,
}

/// A notice to the owner of a disconnected application: its message and
/// facts for webhooks.
pub type DisconnectNotice<'a> = &'a (dyn Fn(&Disconnected) -> (String, serde_json::Value) + Sync);

/// The installation was removed or suspended on GitHub: its applications
/// are disconnected and their owners get `notice`, in one transaction (the
/// ones newly disconnected are answered); with `forget` its connections to
/// customers are dropped.
pub async fn disconnect(
    conn: &mut Conn,
    installation_id: i64,
    forget: bool,
    notice: DisconnectNotice<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Disconnected>> {
    conn.transaction(async |conn| {
        let gone = disconnect_in(conn, installation_id, forget, now).await?;
        for app in &gone {
            let (message, data) = notice(app);
            crate::notifications::create_once(
                conn,
                app.user_id,
                "github_disconnected",
                &message,
                &data,
                &format!(
                    "github_disconnected:{}:{}",
                    app.application_id,
                    now.timestamp()
                ),
                now,
            )
            .await?;
        }
        Ok(gone)
    })
    .await
}

async fn disconnect_in(
    conn: &mut Conn,
    installation_id: i64,
    forget: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Disconnected>> {
    let ids: Vec<i64> = diesel::update(
        paas_app_github::table
            .filter(paas_app_github::installation_id.eq(installation_id))
            .filter(paas_app_github::disconnected_at.is_null()),
    )
    .set(paas_app_github::disconnected_at.eq(now))
    .returning(paas_app_github::application_id)
    .get_results(conn)
    .await?;
    if forget {
        diesel::delete(
            paas_github_installations::table
                .filter(paas_github_installations::installation_id.eq(installation_id)),
        )
        .execute(conn)
        .await?;
    }
    let rows: Vec<(i64, i64, String, String)> = paas_app_github::table
        .inner_join(paas_applications::table)
        .filter(paas_app_github::application_id.eq_any(&ids))
        .order(paas_applications::id)
        .select((
            paas_applications::id,
            paas_applications::user_id,
            paas_applications::name,
            paas_app_github::repository,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(application_id, user_id, name, repository)| Disconnected {
            application_id,
            user_id,
            name,
            repository,
        })
        .collect())
}

/// The installation is back (unsuspended): its applications whose owners
/// still have it connected are connected again.
pub async fn reconnect(conn: &mut Conn, installation_id: i64) -> Result<usize> {
    let owners = paas_github_installations::table
        .filter(paas_github_installations::installation_id.eq(installation_id))
        .select(paas_github_installations::user_id);
    let apps = paas_applications::table
        .filter(paas_applications::user_id.eq_any(owners))
        .select(paas_applications::id);
    Ok(diesel::update(
        paas_app_github::table
            .filter(paas_app_github::installation_id.eq(installation_id))
            .filter(paas_app_github::application_id.eq_any(apps)),
    )
    .set(paas_app_github::disconnected_at.eq(None::<DateTime<Utc>>))
    .execute(conn)
    .await?)
}

/// Records a webhook delivery; false when it was recorded before (a
/// redelivery, which must do nothing). Deliveries older than a week go.
pub async fn first_delivery(
    conn: &mut Conn,
    delivery_id: &str,
    event: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    diesel::delete(paas_github_deliveries::table.filter(
        paas_github_deliveries::received_at.lt(now - Duration::days(DELIVERIES_KEPT_DAYS)),
    ))
    .execute(conn)
    .await?;
    let inserted = diesel::insert_into(paas_github_deliveries::table)
        .values((
            paas_github_deliveries::delivery_id.eq(delivery_id),
            paas_github_deliveries::event.eq(event),
            paas_github_deliveries::received_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}
