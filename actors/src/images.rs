//! Release images and the platform's registry. A release's image is pushed
//! from the node that has it (it built it, or resolved a prebuilt reference
//! first) by an `image.push` task that runs beside the rollout, never in its
//! way; when the push ends, every release of that image learns its digest in
//! the registry, and from then on any node of the region can run it.

use skypanel_protocol::image::PushSpec;
use skypanel_protocol::task::{TaskResult, TaskSpec};
use skypanel_store::apps::Application;
use skypanel_store::releases::{self, Release};
use skypanel_store::tasks::{self, Task};
use skypanel_store::{Conn, apps};

use crate::app_work::{TaskOf, create_task};
use crate::context::Context;
use crate::error::Error;

/// Queues the push of a release's image from the node that has it, unless
/// the registry has it already or a push of it is under way. Runs in the
/// caller's transaction.
pub(crate) async fn ensure_pushed(
    conn: &mut Conn,
    ctx: &Context,
    app: &Application,
    release: &Release,
) -> skypanel_store::Result<()> {
    let Some(registry) = &ctx.settings().registry else {
        return Ok(());
    };
    let (Some(image_id), Some(holder)) = (&release.image_id, release.node_id) else {
        return Ok(());
    };
    if release.image_digest.is_some() || tasks::push_under_way(conn, app.id, image_id).await? {
        return Ok(());
    }
    let target = release
        .registry_ref
        .clone()
        .unwrap_or_else(|| registry.address.reference(app.id, release.version));
    releases::set_registry_ref(conn, app.id, image_id, &target).await?;
    let mut spec = TaskSpec::ImagePush(PushSpec {
        app_id: app.id,
        release: release.version,
        image_id: image_id.clone(),
        target,
        login: Some(registry.login(holder, app.id, true, ctx.now())),
    });
    let of = TaskOf {
        node: holder,
        application_id: None,
        database_id: None,
        build_id: None,
        generation: None,
    };
    let task = create_task(conn, ctx, of, &mut spec).await?;
    tracing::info!(
        app_id = app.id,
        release = release.version,
        task_id = task.id,
        node_id = holder,
        "pushing the release's image to the registry"
    );
    Ok(())
}

/// Records the end of an `image.push` task: the digest on every release of
/// the image, or why it failed (the release keeps running where it is; the
/// next rollout of it tries again).
pub(crate) async fn push_finished(ctx: &Context, task: &Task) -> Result<(), Error> {
    let spec = match serde_json::from_value::<TaskSpec>(task.payload.clone()) {
        Ok(TaskSpec::ImagePush(spec)) => spec,
        _ => return Ok(()),
    };
    let mut conn = ctx.store().conn().await?;
    let result = TaskResult::from_json(task.result.as_ref());
    match (task.status.as_str(), result.pushed) {
        ("succeeded", Some(pushed)) => {
            let learned = releases::record_push(
                &mut conn,
                spec.app_id,
                &spec.image_id,
                &pushed.target,
                &pushed.digest,
                pushed.bytes,
            )
            .await?;
            tracing::info!(
                app_id = spec.app_id,
                release = spec.release,
                digest = %pushed.digest,
                releases = learned,
                "the release's image is in the registry"
            );
        }
        (status, _) => {
            let reason = task
                .error
                .clone()
                .unwrap_or_else(|| format!("the push ended {status} without a digest"));
            tracing::warn!(app_id = spec.app_id, release = spec.release, %reason, "the push of a release's image failed");
            if let Ok(release) = releases::by_version(&mut conn, spec.app_id, spec.release).await {
                releases::record_push_failure(&mut conn, release.id, &reason).await?;
            }
        }
    }
    Ok(())
}

/// Pins a release to the image a node resolved its prebuilt reference to,
/// and queues its push from that node.
pub(crate) async fn resolved(
    ctx: &Context,
    app_id: i64,
    version: i32,
    image_id: &str,
    node: i64,
) -> Result<(), Error> {
    use diesel_async::AsyncConnection;
    let mut conn = ctx.store().conn().await?;
    let app = apps::load(&mut conn, app_id).await?;
    conn.transaction(async |conn| {
        crate::shards::fence(conn, ctx, app_id).await?;
        let release = releases::by_version(conn, app_id, version).await?;
        let release = releases::resolve_image(conn, release.id, image_id, node).await?;
        ensure_pushed(conn, ctx, &app, &release).await
    })
    .await?;
    Ok(())
}
