//! Where a finished task's outcome goes, whichever path ended it (the
//! node's report through the Orchestrator, the lease sweep, a task that
//! could not be read): a database's task to its database (or its move), an
//! image push to its release, a one-off run to its run. Anything else of an
//! application is its AppActor's, which the caller reaches in its own way.
//! The node's report itself is read here too (`Orchestrator::report_task`).

use skypanel_domain::lifecycle::TaskEvent;
use skypanel_domain::lifecycle::task::is_final;
use skypanel_protocol::task::{ReportedStatus, StatusReport, TaskResult};
use skypanel_store::tasks::{self, Task};

use crate::context::Context;
use crate::error::Error;

/// Delivers `task`'s outcome; answers the application whose actor must be
/// told the rest (none when it went elsewhere, or the task has no owner).
#[tracing::instrument(name = "task_outcome", skip_all, fields(
    task_id = task.id,
    kind = %task.kind,
    app_id = task.application_id,
    database_id = task.database_id,
    status = %task.status,
))]
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

impl crate::Orchestrator {
    /// A node's report on a task it leased: running, succeeded or failed.
    /// Fenced by the lease id (a stale one is refused and changes nothing);
    /// a report already recorded changes nothing either. A report that ends
    /// the task delivers its outcome to its owner.
    #[tracing::instrument(name = "task_report", skip_all, fields(node_id = node, task_id))]
    pub async fn report_task(
        &self,
        node: i64,
        task_id: i64,
        report: StatusReport,
    ) -> Result<Result<tasks::Reported, tasks::Refusal>, Error> {
        let event = match report.status {
            ReportedStatus::Running => TaskEvent::Run,
            ReportedStatus::Succeeded => TaskEvent::Succeed,
            ReportedStatus::Failed => TaskEvent::Fail,
        };
        let error: Option<String> = report.error.map(|e| e.chars().take(2000).collect());
        let result = TaskResult {
            infrastructure: report.infrastructure,
            build: report.build,
            backup: report.backup,
            resolved: report.resolved,
            pushed: report.pushed,
            run: report.run,
        };
        let ctx = self.context();
        let ttl = ctx.settings().lease_ttl.as_secs() as i64;
        let mut conn = ctx.store().conn().await?;
        let stored = tasks::Report {
            lease_id: report.lease_id,
            event,
            error: error.as_deref(),
            result: result.to_json(),
        };
        let reported = match tasks::report(&mut conn, task_id, node, stored, ttl).await? {
            Ok(reported) => reported,
            Err(refusal) => return Ok(Err(refusal)),
        };
        drop(conn);
        if reported.changed && is_final(reported.task.status()?) {
            crate::metrics::task_ended(&reported.task);
            self.task_finished(&reported.task, report.instances, report.observed_at)
                .await?;
        }
        Ok(Ok(reported))
    }
}
