//! The managed database transition table: pending until its node has it
//! running (or failed with a reason), stopped and started, suspended for an
//! unpaid balance and resumed to running.

use super::DatabaseStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseEvent {
    /// The node runs it and it accepts connections.
    Provisioned,
    /// Provisioning failed, or the database stopped working.
    Fail,
    Stop,
    Start,
    /// Its owner's balance stayed below zero.
    Suspend,
    /// Its owner paid.
    Resume,
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
        (S::Stopped | S::Running, E::Start) => Ok(S::Running),
        (S::Running | S::Stopped | S::Suspended, E::Suspend) => Ok(S::Suspended),
        (S::Suspended, E::Resume) => Ok(S::Running),
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
        assert!(is_billed(S::Running) && !is_billed(S::Pending) && !is_billed(S::Suspended));
    }
}
