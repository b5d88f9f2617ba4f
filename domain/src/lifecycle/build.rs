//! The build transition table: a build is pending until a node starts it,
//! building while one works on it (a retry on another node stays building),
//! and ends succeeded, failed or cancelled.

use super::BuildStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildEvent {
    /// A node was given the build (again, after an infrastructure failure).
    Start,
    /// The image was built.
    Succeed,
    /// The build failed (its code, or every attempt of the infrastructure).
    Fail,
    /// The customer cancelled it.
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("build is {current}; it cannot {event:?}")]
pub struct IllegalBuildTransition {
    pub current: BuildStatus,
    pub event: BuildEvent,
}

pub fn build_transition(
    current: BuildStatus,
    event: BuildEvent,
) -> Result<BuildStatus, IllegalBuildTransition> {
    use BuildEvent as E;
    use BuildStatus as S;
    match (current, event) {
        (S::Pending | S::Building, E::Start) => Ok(S::Building),
        (S::Pending | S::Building, E::Succeed) => Ok(S::Success),
        (S::Pending | S::Building, E::Fail) => Ok(S::Failed),
        (S::Pending | S::Building, E::Cancel) => Ok(S::Cancelled),
        _ => Err(IllegalBuildTransition { current, event }),
    }
}

/// Whether the build has ended.
pub fn is_finished(status: BuildStatus) -> bool {
    matches!(
        status,
        BuildStatus::Success | BuildStatus::Failed | BuildStatus::Cancelled
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildEvent as E;
    use BuildStatus as S;

    #[test]
    fn builds_end_once() {
        assert_eq!(build_transition(S::Pending, E::Start), Ok(S::Building));
        assert_eq!(build_transition(S::Building, E::Start), Ok(S::Building));
        assert_eq!(build_transition(S::Building, E::Succeed), Ok(S::Success));
        assert_eq!(build_transition(S::Pending, E::Cancel), Ok(S::Cancelled));
        for done in [S::Success, S::Failed, S::Cancelled] {
            assert!(is_finished(done));
            for event in [E::Start, E::Succeed, E::Fail, E::Cancel] {
                assert!(build_transition(done, event).is_err(), "{done} {event:?}");
            }
        }
    }
}
