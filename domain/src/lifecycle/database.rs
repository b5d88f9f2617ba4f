//! The managed database transition table: pending until its node has it
//! running (or failed with a reason), stopped and started again (through
//! pending: its node starts it), resized (pending while its container is
//! made again with the new plan's limits), suspended for an unpaid balance
//! and resumed to what it was (running, or stopped when its owner had
//! stopped it).

use super::DatabaseStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseEvent {
    /// The node runs it and it accepts connections.
    Provisioned,
    /// Provisioning failed, or the database stopped working.
    Fail,
    /// Its owner stopped it: the data stays, nothing is billed or held.
    Stop,
    /// Its owner started it (again): its node provisions it.
    Start,
    /// Its owner moved it to another plan: its node makes the container
    /// again with the plan's limits.
    Resize,
    /// Its owner's balance stayed below zero.
    Suspend,
    /// Its owner paid, and it had been running.
    Resume,
    /// Its owner paid, and it had been stopped by them.
    ResumeStopped,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the database is {current}; it cannot {event:?}")]
pub struct IllegalDatabaseTransition {
    pub current: DatabaseStatus,
    pub event: DatabaseEvent,
}

pub fn database_transition(
    current: DatabaseStatus,
    event: DatabaseEvent,
) -> Result<DatabaseStatus, IllegalDatabaseTransition> {
    use DatabaseEvent as E;
    use DatabaseStatus as S;
    match (current, event) {
        (S::Pending | S::Running, E::Provisioned) => Ok(S::Running),
        (S::Pending | S::Running | S::Failed, E::Fail) => Ok(S::Failed),
        (S::Running | S::Stopped, E::Stop) => Ok(S::Stopped),
        (S::Stopped | S::Failed, E::Start) => Ok(S::Pending),
        (S::Running, E::Resize) => Ok(S::Pending),
        (S::Running | S::Stopped | S::Suspended, E::Suspend) => Ok(S::Suspended),
        (S::Suspended, E::Resume) => Ok(S::Running),
        (S::Suspended, E::ResumeStopped) => Ok(S::Stopped),
        _ => Err(IllegalDatabaseTransition { current, event }),
    }
}

/// Whether a database in this state is billed (it runs on a node).
pub fn is_billed(status: DatabaseStatus) -> bool {
    status == DatabaseStatus::Running
}

#[cfg(test)]
mod tests {
    use super::*;
    use DatabaseEvent as E;
    use DatabaseStatus as S;

    #[test]
    fn a_database_runs_once_provisioned_and_only_then_is_billed() {
        assert_eq!(
            database_transition(S::Pending, E::Provisioned),
            Ok(S::Running)
        );
        assert_eq!(database_transition(S::Pending, E::Fail), Ok(S::Failed));
        assert!(database_transition(S::Failed, E::Provisioned).is_err());
        assert!(database_transition(S::Pending, E::Stop).is_err());
        assert_eq!(
            database_transition(S::Running, E::Suspend),
            Ok(S::Suspended)
        );
        assert_eq!(database_transition(S::Suspended, E::Resume), Ok(S::Running));
        assert!(database_transition(S::Running, E::Resume).is_err());
        // Stopped by its owner: started again through its node; a failed
        // one can be started again too; a running one is resized through pending.
        assert_eq!(database_transition(S::Running, E::Stop), Ok(S::Stopped));
        assert_eq!(database_transition(S::Stopped, E::Start), Ok(S::Pending));
        assert_eq!(database_transition(S::Failed, E::Start), Ok(S::Pending));
        assert!(database_transition(S::Running, E::Start).is_err());
        assert!(database_transition(S::Suspended, E::Start).is_err());
        assert_eq!(database_transition(S::Running, E::Resize), Ok(S::Pending));
        assert!(database_transition(S::Pending, E::Resize).is_err());
        // Suspended while stopped, it comes back stopped.
        assert_eq!(
            database_transition(S::Stopped, E::Suspend),
            Ok(S::Suspended)
        );
        assert_eq!(
            database_transition(S::Suspended, E::ResumeStopped),
            Ok(S::Stopped)
        );
        assert!(database_transition(S::Stopped, E::ResumeStopped).is_err());
        assert!(is_billed(S::Running) && !is_billed(S::Pending) && !is_billed(S::Suspended));
    }
}
