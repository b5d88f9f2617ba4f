//! The agent task transition table: leasing, running, finishing, a lease that
//! expires, and cancellation. A report repeated for a task already in that
//! state is accepted and changes nothing, so agents may resend freely.

use super::TaskStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEvent {
    /// An agent leased the task.
    Lease,
    /// The agent started working on it.
    Run,
    Succeed,
    Fail,
    /// The lease ran out; `exhausted` when no attempt is left.
    Expire {
        exhausted: bool,
    },
    /// The work is no longer wanted (superseded or its app deleted).
    Cancel,
    /// The stored task cannot be handed to an agent (its spec or secrets do
    /// not open): it fails rather than block its node's queue.
    Unreadable,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task is {current}; it cannot take {event:?}")]
pub struct IllegalTaskTransition {
    pub current: TaskStatus,
    pub event: TaskEvent,
}

/// The new status. A repeated report (`Run` on running, `Succeed` on
/// succeeded, `Fail` on failed) answers the same status: no change.
pub fn task_transition(
    current: TaskStatus,
    event: TaskEvent,
) -> Result<TaskStatus, IllegalTaskTransition> {
    use TaskEvent as E;
    use TaskStatus as S;
    match (current, event) {
        (S::Queued, E::Lease) => Ok(S::Leased),
        (S::Leased | S::Running, E::Run) => Ok(S::Running),
        (S::Leased | S::Running, E::Succeed) => Ok(S::Succeeded),
        (S::Leased | S::Running, E::Fail) => Ok(S::Failed),
        (S::Leased | S::Running, E::Expire { exhausted: false }) => Ok(S::Queued),
        (S::Leased | S::Running, E::Expire { exhausted: true }) => Ok(S::Failed),
        (S::Queued | S::Leased | S::Running, E::Cancel) => Ok(S::Cancelled),
        (S::Queued | S::Leased, E::Unreadable) => Ok(S::Failed),
        (S::Succeeded, E::Succeed) => Ok(S::Succeeded),
        (S::Failed, E::Fail) => Ok(S::Failed),
        (S::Cancelled, E::Cancel) => Ok(S::Cancelled),
        _ => Err(IllegalTaskTransition { current, event }),
    }
}

/// Whether no further event can change the task.
pub fn is_final(status: TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskEvent as E;
    use TaskStatus as S;

    #[test]
    fn the_happy_path() {
        assert_eq!(task_transition(S::Queued, E::Lease), Ok(S::Leased));
        assert_eq!(task_transition(S::Leased, E::Run), Ok(S::Running));
        assert_eq!(task_transition(S::Running, E::Succeed), Ok(S::Succeeded));
    }

    #[test]
    fn replays_change_nothing_and_contradictions_are_refused() {
        assert_eq!(task_transition(S::Succeeded, E::Succeed), Ok(S::Succeeded));
        assert_eq!(task_transition(S::Running, E::Run), Ok(S::Running));
        assert!(task_transition(S::Succeeded, E::Fail).is_err());
        assert!(task_transition(S::Failed, E::Succeed).is_err());
        assert!(
            task_transition(S::Queued, E::Succeed).is_err(),
            "an unleased task cannot finish"
        );
        assert!(task_transition(S::Cancelled, E::Run).is_err());
    }

    #[test]
    fn expiry() {
        assert_eq!(
            task_transition(S::Running, E::Expire { exhausted: false }),
            Ok(S::Queued)
        );
        assert_eq!(
            task_transition(S::Leased, E::Expire { exhausted: true }),
            Ok(S::Failed)
        );
        assert!(task_transition(S::Queued, E::Expire { exhausted: false }).is_err());
        assert!(is_final(S::Cancelled) && !is_final(S::Leased));
    }
}
