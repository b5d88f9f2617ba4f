//! What the actors count for `/metrics`: tasks that ended (by kind and
//! status) and how long they took from being queued to their end, whichever
//! path ended them (the node's report or the lease sweep).

use skypanel_protocol::metrics::global;
use skypanel_store::tasks::Task;

/// Counts a task that reached its end state.
pub fn task_ended(task: &Task) {
    global().inc(
        "skypanel_tasks_finished_total",
        "Tasks that reached an end state, by kind and status.",
        &[("kind", &task.kind), ("status", &task.status)],
    );
    if let Some(finished) = task.finished_at {
        let seconds = (finished - task.created_at).num_milliseconds().max(0) as f64 / 1000.0;
        global().observe(
            "skypanel_task_duration_seconds",
            "Time from a task's queueing to its end, by kind.",
            &[("kind", &task.kind)],
            seconds,
        );
    }
}

/// Counts a call carried to the replica owning its entity (`sent`) or
/// served for another replica (`served`), and times the sent ones.
pub(crate) fn replica_call(call: &str, direction: &str, seconds: Option<f64>) {
    global().inc(
        "skypanel_replica_calls_total",
        "Requests for an actor carried between control-plane replicas, by call and direction (sent to the owner, served as the owner).",
        &[("call", call), ("direction", direction)],
    );
    if let Some(seconds) = seconds {
        global().observe(
            "skypanel_replica_call_seconds",
            "Time of a call carried to the replica owning its entity, by call.",
            &[("call", call)],
            seconds,
        );
    }
}
