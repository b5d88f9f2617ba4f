//! Where a finished task's outcome goes, whichever path ended it (the
//! node's report through the Orchestrator, the lease sweep, a task that
//! could not be read): a database's task to its database (or its move), an
//! image push to its release, a one-off run to its run. Anything else of an
//! application is its AppActor's, which the caller reaches in its own way.

use skypanel_store::tasks::Task;

use crate::context::Context;
use crate::error::Error;

/// Delivers `task`'s outcome; answers the application whose actor must be
/// told the rest (none when it went elsewhere, or the task has no owner).
pub(crate) async fn deliver(ctx: &Context, task: &Task) -> Result<Option<i64>, Error> {
    if let Some(database_id) = task.database_id {
        crate::databases::task_finished(ctx, task, database_id).await?;
        return Ok(None);
    }
    match task.kind.as_str() {
        "image.push" => crate::images::push_finished(ctx, task).await?,
        "app.run" => crate::runs::task_finished(ctx, task).await?,
        _ => return Ok(task.application_id),
    }
    Ok(None)
}
