//! `/api/paas/databases` and `/api/paas/applications/:id/databases`: a
//! customer's managed databases, and their links into applications. Creating one
//! places it with the Scheduler and queues its provisioning on the node
//! (`pending` until the engine accepts connections, then `running`, or
//! `failed` with the reason). Connection details, password included, are
//! shown to the owner on the database itself only.

use poem::Request;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use skypanel_actors::{AppRequest, ConfigChange};
use skypanel_domain::credentials::{generate_database_password, generate_database_user};
use skypanel_domain::lifecycle::ReleaseKind;
use skypanel_domain::names::{validate_region, validate_slug};
use skypanel_protocol::database::{Connection, default_prefix, port_of};
use skypanel_protocol::names::database_host;
use skypanel_store::databases::{self, Database, NewDatabase};
use skypanel_store::{apps, database_engines};

use super::app_commands::through_actor;
use super::apps::usable_plan;
use super::{Audit, Created, NoContent, Tag};
use crate::auth::BearerAuth;
use crate::body::JsonBody;
use crate::dto::databases::*;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::state::AppState;

pub struct DatabasesApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/paas", tag = "Tag::Databases")]
impl DatabasesApi {
    /// The database types and versions this platform runs
    #[oai(
        path = "/database-engines",
        method = "get",
        operation_id = "listDatabaseEngines"
    )]
    async fn engines(&self, _auth: BearerAuth) -> ApiResult<Json<Vec<EngineChoice>>> {
        let mut conn = self.state.store().conn().await?;
        let list = database_engines::list(&mut conn).await?;
        Ok(Json(
            list.into_iter()
                .map(|e| EngineChoice {
                    db_type: e.db_type,
                    version: e.version,
                })
                .collect(),
        ))
    }

    /// Create a managed database
    ///
    /// Placed on a node of the region with room for the plan, and provisioned
    /// there: `pending` until it accepts connections. No node with room is 409
    /// `no_node_available`, and nothing is kept.
    #[oai(path = "/databases", method = "post", operation_id = "createDatabase")]
    async fn create(
        &self,
        request: &Request,
        auth: BearerAuth,
        body: JsonBody<CreateDatabaseRequest>,
    ) -> ApiResult<Created<DatabaseView>> {
        let b = body.0;
        validate_slug(&b.name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
        validate_region("region", &b.region)?;
        let Some(port) = port_of(&b.db_type) else {
            return Err(ApiError::invalid(
                "db_type",
                "db_type is one of postgresql, mysql, redis, mongodb",
            ));
        };
        let mut conn = self.state.store().conn().await?;
        let engine = database_engines::find(&mut conn, &b.db_type, &b.version)
            .await
            .map_err(|_| {
                ApiError::invalid(
                    "version",
                    format!("this platform runs no {} {}", b.db_type, b.version),
                )
            })?;
        let plan = usable_plan(&mut conn, b.plan_id).await?;
        let quotas = &self.state.settings().quotas;
        crate::quotas::check(
            &mut conn,
            quotas,
            auth.user_id(),
            crate::quotas::Creating::Database,
        )
        .await?;
        let password = generate_database_password();
        let secrets = self.state.secrets();
        let seal = |id| secrets.seal_str(&password, &Database::password_associated_data(id));
        let new = NewDatabase {
            user_id: auth.user_id(),
            name: &b.name,
            db_type: &b.db_type,
            version: &b.version,
            plan_id: plan.id,
            region: &b.region,
            image: &engine.image,
            host_of: database_host,
            port: i32::from(port),
            username: &generate_database_user(),
            database_name: &b.name.replace('-', "_"),
        };
        let db = databases::create(&mut conn, &new, &seal).await?;
        drop(conn);
        if let Err(err) = self.state.orchestrator()?.provision_database(&db).await {
            // Nothing is kept of a database that could not be placed.
            let mut conn = self.state.store().conn().await?;
            databases::delete(&mut conn, auth.user_id(), db.id, self.state.now(), None).await?;
            return Err(err.into());
        }
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, auth.user_id(), "database.create")
            .on("database", db.id)
            .with(
                serde_json::json!({"name": db.name, "db_type": db.db_type, "version": db.version}),
            )
            .write(&mut conn)
            .await;
        let db = databases::get(&mut conn, auth.user_id(), db.id).await?;
        Ok(Created::Created(Json(self.with_connection(db).await?)))
    }

    /// List the customer's databases (no passwords)
    #[oai(path = "/databases", method = "get", operation_id = "listDatabases")]
    async fn list(&self, auth: BearerAuth) -> ApiResult<Json<Vec<DatabaseView>>> {
        let mut conn = self.state.store().conn().await?;
        let list = databases::list(&mut conn, auth.user_id()).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// A database, with its connection details
    #[oai(path = "/databases/:id", method = "get", operation_id = "getDatabase")]
    async fn get(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<DatabaseView>> {
        let mut conn = self.state.store().conn().await?;
        let db = databases::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("database")?;
        drop(conn);
        Ok(Json(self.with_connection(db).await?))
    }

    /// The databases linked into an application
    #[oai(
        path = "/applications/:id/databases",
        method = "get",
        operation_id = "listDatabaseLinks"
    )]
    async fn links(&self, auth: BearerAuth, id: Path<i64>) -> ApiResult<Json<Vec<LinkView>>> {
        let mut conn = self.state.store().conn().await?;
        let app = apps::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("application")?;
        let links = databases::links(&mut conn, app.id).await?;
        Ok(Json(links.into_iter().map(Into::into).collect()))
    }

    /// Link a database into an application
    ///
    /// The application gets `<PREFIX>_URL`, `_HOST`, `_PORT`, `_USER`,
    /// `_PASSWORD` and `_NAME` (a variable the customer set keeps its
    /// value); a running application is rolled out again as a new release
    /// to get them, others get them at their next deploy or start.
    #[oai(
        path = "/applications/:id/databases/:dbId",
        method = "post",
        operation_id = "linkDatabase"
    )]
    async fn link(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        #[oai(name = "dbId")] db_id: Path<i64>,
        body: JsonBody<LinkRequest>,
    ) -> ApiResult<Created<LinkView>> {
        let user = auth.user_id();
        let mut conn = self.state.store().conn().await?;
        let db = databases::get(&mut conn, user, db_id.0)
            .await
            .or_not_found("database")?;
        let prefix = match body.0.env_var_prefix {
            Some(prefix) => {
                let ok = prefix.len() <= 32
                    && prefix.starts_with(|c: char| c.is_ascii_uppercase())
                    && !prefix.ends_with('_')
                    && prefix
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !ok {
                    return Err(ApiError::invalid(
                        "env_var_prefix",
                        "a prefix is capital letters, digits and '_' (up to 32), starting with a letter, such as DATABASE or CACHE",
                    ));
                }
                prefix
            }
            None => default_prefix(&db.db_type).to_string(),
        };
        let link = databases::link(&mut conn, user, id.0, db.id, &prefix)
            .await
            .or_not_found("application")?;
        drop(conn);
        let description = format!("Link {} ({prefix}_URL)", db.name);
        if let Err(err) = self
            .release_if_running(request, user, id.0, description)
            .await
        {
            // The link is not kept when the application could not take it.
            let mut conn = self.state.store().conn().await?;
            databases::unlink(&mut conn, user, id.0, db.id).await.ok();
            return Err(err);
        }
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, user, "database.link")
            .on("application", id.0)
            .with(serde_json::json!({"database_id": db.id, "env_var_prefix": prefix}))
            .write(&mut conn)
            .await;
        Ok(Created::Created(Json(link.into())))
    }

    /// Unlink a database from an application
    ///
    /// The variables go away: a running application is rolled out again without them.
    #[oai(
        path = "/applications/:id/databases/:dbId",
        method = "delete",
        operation_id = "unlinkDatabase"
    )]
    async fn unlink(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        #[oai(name = "dbId")] db_id: Path<i64>,
    ) -> ApiResult<NoContent> {
        let user = auth.user_id();
        let mut conn = self.state.store().conn().await?;
        let db = databases::get(&mut conn, user, db_id.0)
            .await
            .or_not_found("link")?;
        databases::unlink(&mut conn, user, id.0, db.id)
            .await
            .or_not_found("link")?;
        drop(conn);
        let description = format!("Unlink {}", db.name);
        self.release_if_running(request, user, id.0, description)
            .await?;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, user, "database.unlink")
            .on("application", id.0)
            .with(serde_json::json!({"database_id": db_id.0}))
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }

    /// Stop a database
    ///
    /// Its engine shuts down; its data stays on its node. A stopped
    /// database is not billed and holds no capacity; the applications
    /// linked to it cannot reach it until it starts again (their owner gets
    /// a `database_stopped` notice naming them). Stopping a stopped
    /// database changes nothing; a pending, failed or suspended one is 409.
    #[oai(
        path = "/databases/:id/stop",
        method = "post",
        operation_id = "stopDatabase"
    )]
    async fn stop(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<Json<DatabaseView>> {
        let db = self.owned(auth.user_id(), id.0).await?;
        let db = self.state.orchestrator()?.stop_database(&db).await?;
        self.audit(
            request,
            auth.user_id(),
            "database.stop",
            &db,
            serde_json::json!({}),
        )
        .await?;
        Ok(Json(self.with_connection(db).await?))
    }

    /// Start a stopped database
    ///
    /// Its node starts it again on its data (`pending` until it accepts
    /// connections, then `running` and billed); a failed database is
    /// provisioned again the same way. The node must have room for its plan:
    /// otherwise 409 `no_node_available` says why and nothing changes.
    /// Starting a running or pending database changes nothing; a suspended
    /// one comes back when its owner's balance does.
    #[oai(
        path = "/databases/:id/start",
        method = "post",
        operation_id = "startDatabase"
    )]
    async fn start(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> ApiResult<Json<DatabaseView>> {
        let db = self.owned(auth.user_id(), id.0).await?;
        let db = self.state.orchestrator()?.start_database(&db).await?;
        self.audit(
            request,
            auth.user_id(),
            "database.start",
            &db,
            serde_json::json!({}),
        )
        .await?;
        Ok(Json(self.with_connection(db).await?))
    }

    /// Move a database to another plan
    ///
    /// A running database is made again on its node with the new plan's
    /// limits, on the same data: `pending` for the moment its engine
    /// restarts (the owner gets a `database_resized` notice naming the
    /// applications that cannot reach it meanwhile), then `running`, billed
    /// at the new plan's rate. When its node has no room for the new plan,
    /// it moves to another node of its region that has: dumped on its node
    /// (cut off from its network first), copied, and restored there with
    /// the new plan (`pending` meanwhile; a `database_resized` notice says
    /// how long it should take, `database_moved` how long it took, and
    /// `last_move` follows it; a failure brings it back on its node as it
    /// was, with a `database_move_failed` notice). A database linked into
    /// applications does not move (it is reachable only on its own node),
    /// nor does one whose node is down: 409 `no_node_available` with the
    /// reason, and nothing changes. A stopped database takes the plan for
    /// its next start.
    #[oai(
        path = "/databases/:id",
        method = "put",
        operation_id = "updateDatabase"
    )]
    async fn update(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        body: JsonBody<UpdateDatabaseRequest>,
    ) -> ApiResult<Json<DatabaseView>> {
        let db = self.owned(auth.user_id(), id.0).await?;
        let mut conn = self.state.store().conn().await?;
        let plan = usable_plan(&mut conn, body.0.plan_id).await?;
        drop(conn);
        let from = db.plan_id;
        let db = self
            .state
            .orchestrator()?
            .resize_database(&db, &plan)
            .await?;
        let change = serde_json::json!({"from_plan_id": from, "plan_id": plan.id});
        self.audit(request, auth.user_id(), "database.resize", &db, change)
            .await?;
        Ok(Json(self.with_connection(db).await?))
    }

    /// Delete a database
    ///
    /// Its container is stopped and removed. Its data (volume and backups)
    /// stays on the node for the retention period
    /// (`SKYPANEL_DB_VOLUME_RETENTION_DAYS`, listed to admins) unless
    /// `purge=true` removes it now. A database linked into an application
    /// is 409: unlink it first.
    #[oai(
        path = "/databases/:id",
        method = "delete",
        operation_id = "deleteDatabase"
    )]
    async fn delete(
        &self,
        request: &Request,
        auth: BearerAuth,
        id: Path<i64>,
        purge: Query<Option<bool>>,
    ) -> ApiResult<NoContent> {
        let purge = purge.0.unwrap_or(false);
        let mut conn = self.state.store().conn().await?;
        let db = databases::get(&mut conn, auth.user_id(), id.0)
            .await
            .or_not_found("database")?;
        let linked = databases::linked_applications(&mut conn, db.id).await?;
        if !linked.is_empty() {
            return Err(ApiError::conflict(
                "conflict",
                format!(
                    "the database is linked into {}; unlink it first",
                    linked.join(", ")
                ),
                None,
            ));
        }
        if skypanel_store::database_moves::active(&mut conn, db.id)
            .await?
            .is_some()
        {
            return Err(ApiError::conflict(
                "conflict",
                "the database is moving to another node; delete it once its move has ended",
                None,
            ));
        }
        let now = self.state.now();
        let keep_until = (!purge).then(|| {
            now + chrono::Duration::from_std(self.state.settings().volume_retention)
                .unwrap_or_else(|_| chrono::Duration::days(7))
        });
        let db = databases::delete(&mut conn, auth.user_id(), id.0, now, keep_until)
            .await
            .or_not_found("database")?;
        drop(conn);
        self.state
            .orchestrator()?
            .remove_database(&db, purge)
            .await?;
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, auth.user_id(), "database.delete")
            .on("database", db.id)
            .with(serde_json::json!({"name": db.name, "purge": purge}))
            .write(&mut conn)
            .await;
        Ok(NoContent::NoContent)
    }
}

impl DatabasesApi {
    /// Makes a release with the links as they are now: rolled out on a
    /// running application, kept for the next start of a stopped one, after
    /// the rollout in flight otherwise.
    async fn release_if_running(
        &self,
        request: &Request,
        user_id: i64,
        app_id: i64,
        description: String,
    ) -> ApiResult<()> {
        let configure = AppRequest::Configure(Box::new(ConfigChange {
            env: None,
            kind: ReleaseKind::Link,
            description,
            by: user_id,
        }));
        through_actor(&self.state, request, user_id, app_id, configure).await?;
        Ok(())
    }

    /// The caller's database `id` (404 for anyone else's).
    async fn owned(&self, user_id: i64, id: i64) -> ApiResult<Database> {
        let mut conn = self.state.store().conn().await?;
        databases::get(&mut conn, user_id, id)
            .await
            .or_not_found("database")
    }

    /// Writes an audit entry about `db`.
    async fn audit(
        &self,
        request: &Request,
        user_id: i64,
        action: &'static str,
        db: &Database,
        details: serde_json::Value,
    ) -> ApiResult<()> {
        let mut conn = self.state.store().conn().await?;
        Audit::by(request, user_id, action)
            .on("database", db.id)
            .with(details)
            .write(&mut conn)
            .await;
        Ok(())
    }

    /// The view with the connection details (the password opened).
    async fn with_connection(&self, db: Database) -> ApiResult<DatabaseView> {
        let mut conn = self.state.store().conn().await?;
        let sealed = databases::sealed_password(&mut conn, db.user_id, db.id).await?;
        let password = self
            .state
            .secrets()
            .open_str(&sealed, &Database::password_associated_data(db.id))
            .map_err(|e| {
                ApiError::from(skypanel_store::Error::Corrupt(format!(
                    "password of database {}: {e}",
                    db.id
                )))
            })?;
        let (host, port) = (db.host.clone().unwrap_or_default(), db.port.unwrap_or(0));
        let user = db.username.clone().unwrap_or_default();
        let database = db.database_name.clone().unwrap_or_default();
        let url = Connection {
            db_type: &db.db_type,
            host: &host,
            port,
            user: &user,
            password: &password,
            database: &database,
        }
        .url();
        let measured = databases::health_of(&mut conn, db.id).await?;
        let last_backup = skypanel_store::backups::last_ended(&mut conn, &[db.id])
            .await?
            .pop();
        let last_move = skypanel_store::database_moves::latest(&mut conn, db.id).await?;
        let mut view = DatabaseView::from(db);
        view.health = Some(DatabaseHealth::new(measured, last_backup));
        view.last_move = last_move.map(Into::into);
        view.connection = Some(ConnectionView {
            host,
            port,
            username: user,
            password,
            database,
            url,
        });
        Ok(view)
    }
}
