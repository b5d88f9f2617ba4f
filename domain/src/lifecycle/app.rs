//! The application transition table: which customer command is legal in which
//! state, what state it shows while the agent carries it out and once it is
//! done, and how system events (a rollout's outcome, a crash loop, billing)
//! move the state.

use super::{AppCommand, AppStatus};

/// A request that the current state does not allow; the message names the state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {command} the application: {reason} (status: {current})")]
pub struct IllegalTransition {
    pub command: AppCommand,
    pub current: AppStatus,
    pub reason: &'static str,
}

/// What a legal command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandPlan {
    /// The status from the moment the command is accepted.
    pub now: AppStatus,
    /// The status once the agent reports the work done.
    pub done: AppStatus,
    /// Whether the node has anything to do (scaling a stopped app only records the count).
    pub converge: bool,
    /// The command waits for the rollout in flight and runs after it (a
    /// deploy, rollback or configuration change asked for while one runs).
    pub waits: bool,
}

impl CommandPlan {
    /// A plan that runs now.
    pub fn new(now: AppStatus, done: AppStatus, converge: bool) -> Self {
        Self {
            now,
            done,
            converge,
            waits: false,
        }
    }
}

fn plan(now: AppStatus, done: AppStatus, converge: bool) -> CommandPlan {
    CommandPlan::new(now, done, converge)
}

/// A plan that waits for the rollout in flight.
fn after_rollout() -> CommandPlan {
    CommandPlan {
        waits: true,
        ..plan(AppStatus::Building, AppStatus::Running, true)
    }
}

/// The table of customer commands.
pub fn app_transition(
    current: AppStatus,
    command: AppCommand,
) -> Result<CommandPlan, IllegalTransition> {
    use AppCommand as C;
    use AppStatus as S;
    let refuse = |reason| {
        Err(IllegalTransition {
            command,
            current,
            reason,
        })
    };
    match (current, command) {
        (S::Deleting, C::Delete) => Ok(plan(S::Deleting, S::Deleting, true)),
        (S::Deleting, _) => refuse("it is being deleted"),
        (_, C::Delete) => Ok(plan(S::Deleting, S::Deleting, true)),
        // A configuration change makes a release: rolled out where containers
        // should run, recorded for the next start where they should not, and
        // nothing but the variables before the first deploy.
        (S::Suspended | S::Stopped | S::Pending, C::Configure) => Ok(plan(current, current, false)),
        (S::Building, C::Deploy | C::Rollback | C::Configure) => Ok(after_rollout()),
        (S::Running | S::Failed, C::Configure) => Ok(plan(S::Building, S::Running, true)),
        (S::Suspended, C::Scale) => Ok(plan(S::Suspended, S::Suspended, false)),
        (S::Suspended, _) => refuse("it is suspended until the wallet balance is topped up"),
        (S::Building, C::Scale) => Ok(plan(S::Building, S::Running, true)),
        (S::Building, _) => refuse("a deploy is in progress; wait for it to finish"),
        (S::Pending, C::Rollback) => refuse("it has never been deployed"),
        (_, C::Deploy | C::Rollback) => Ok(plan(S::Building, S::Running, true)),
        (S::Running, C::Scale) => Ok(plan(S::Running, S::Running, true)),
        (_, C::Scale) => Ok(plan(current, current, false)),
        (S::Pending, C::Restart | C::Stop | C::Start) => refuse("it has never been deployed"),
        (S::Running | S::Failed, C::Restart) => Ok(plan(current, S::Running, true)),
        (S::Stopped, C::Restart) => refuse("it is stopped; start it instead"),
        (S::Running | S::Failed, C::Stop) => Ok(plan(current, S::Stopped, true)),
        (S::Stopped, C::Stop) => refuse("it is already stopped"),
        (S::Stopped, C::Start) => Ok(plan(current, S::Running, true)),
        (S::Running, C::Start) => refuse("it is already running"),
        (S::Failed, C::Start) => refuse("it has failed; restart or redeploy it"),
    }
}

/// What happens to an application without a customer asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEvent {
    /// The agent carried out the latest command; the app takes its `done` status.
    Converged { done: AppStatus },
    /// The agent could not carry out a rollout. `serving` tells whether an
    /// earlier release still runs (then the app stays running).
    RolloutFailed { serving: bool },
    /// A container kept crashing and the agent stopped restarting it.
    CrashLooped,
    /// Its node went offline and no other node of its region can take it.
    Unplaced,
    /// The wallet ran out past its grace period.
    Suspend,
    /// The wallet was topped up; back to the status before suspension.
    Resume { previous: AppStatus },
}

/// The table of system events: the new status, or `None` when the event does
/// not apply in this state (a late or duplicate report is ignored, not an error).
pub fn app_event(current: AppStatus, event: AppEvent) -> Option<AppStatus> {
    use AppEvent as E;
    use AppStatus as S;
    match (current, event) {
        (
            S::Deleting | S::Suspended,
            E::Converged { .. } | E::RolloutFailed { .. } | E::CrashLooped | E::Unplaced,
        ) => None,
        (_, E::Converged { done }) => Some(done),
        (S::Building, E::RolloutFailed { serving: true }) => Some(S::Running),
        (S::Building | S::Running | S::Failed, E::RolloutFailed { .. }) => Some(S::Failed),
        (S::Running, E::CrashLooped) => Some(S::Failed),
        (S::Running | S::Building | S::Failed, E::Unplaced) => Some(S::Failed),
        (_, E::Unplaced) => None,
        (S::Deleting | S::Suspended, E::Suspend) => None,
        (_, E::Suspend) => Some(S::Suspended),
        (S::Suspended, E::Resume { previous }) if previous != S::Suspended => Some(previous),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AppCommand as C;
    use AppStatus as S;

    #[test]
    fn illegal_requests_name_the_state() {
        let err = app_transition(S::Running, C::Start).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot start the application: it is already running (status: running)"
        );
        assert!(app_transition(S::Stopped, C::Stop).is_err());
        assert!(app_transition(S::Pending, C::Restart).is_err());
        assert!(app_transition(S::Building, C::Restart).is_err());
        assert!(app_transition(S::Suspended, C::Start).is_err());
        assert!(
            app_transition(S::Deleting, C::Scale)
                .unwrap_err()
                .to_string()
                .contains("being deleted")
        );
    }

    #[test]
    fn legal_requests_and_their_plans() {
        assert_eq!(
            app_transition(S::Pending, C::Deploy),
            Ok(plan(S::Building, S::Running, true))
        );
        assert_eq!(
            app_transition(S::Running, C::Stop),
            Ok(plan(S::Running, S::Stopped, true))
        );
        assert_eq!(
            app_transition(S::Stopped, C::Start),
            Ok(plan(S::Stopped, S::Running, true))
        );
        assert_eq!(
            app_transition(S::Failed, C::Restart),
            Ok(plan(S::Failed, S::Running, true))
        );
        assert_eq!(
            app_transition(S::Running, C::Scale),
            Ok(plan(S::Running, S::Running, true))
        );
        assert_eq!(
            app_transition(S::Stopped, C::Scale),
            Ok(plan(S::Stopped, S::Stopped, false))
        );
        assert_eq!(
            app_transition(S::Pending, C::Scale),
            Ok(plan(S::Pending, S::Pending, false))
        );
        assert_eq!(
            app_transition(S::Running, C::Delete),
            Ok(plan(S::Deleting, S::Deleting, true))
        );
        assert!(
            app_transition(S::Deleting, C::Delete).is_ok(),
            "deleting twice is idempotent"
        );
    }

    #[test]
    fn deploys_and_configuration_changes_wait_for_a_rollout_in_flight() {
        for command in [C::Deploy, C::Rollback, C::Configure] {
            let plan = app_transition(S::Building, command).unwrap();
            assert!(plan.waits, "{command}");
            assert_eq!(plan.done, S::Running);
        }
        assert!(!app_transition(S::Running, C::Deploy).unwrap().waits);
        assert!(app_transition(S::Deleting, C::Configure).is_err());
    }

    #[test]
    fn a_configuration_change_rolls_out_only_where_containers_should_run() {
        assert_eq!(
            app_transition(S::Running, C::Configure),
            Ok(plan(S::Building, S::Running, true))
        );
        assert_eq!(
            app_transition(S::Failed, C::Configure),
            Ok(plan(S::Building, S::Running, true))
        );
        for quiet in [S::Stopped, S::Suspended, S::Pending] {
            assert_eq!(
                app_transition(quiet, C::Configure),
                Ok(plan(quiet, quiet, false))
            );
        }
    }

    #[test]
    fn events() {
        assert_eq!(
            app_event(S::Building, AppEvent::Converged { done: S::Running }),
            Some(S::Running)
        );
        assert_eq!(
            app_event(S::Building, AppEvent::RolloutFailed { serving: true }),
            Some(S::Running)
        );
        assert_eq!(
            app_event(S::Building, AppEvent::RolloutFailed { serving: false }),
            Some(S::Failed)
        );
        assert_eq!(
            app_event(S::Running, AppEvent::CrashLooped),
            Some(S::Failed)
        );
        assert_eq!(
            app_event(S::Stopped, AppEvent::CrashLooped),
            None,
            "a stopped app does not crash"
        );
        assert_eq!(
            app_event(S::Deleting, AppEvent::Converged { done: S::Running }),
            None
        );
        assert_eq!(app_event(S::Running, AppEvent::Suspend), Some(S::Suspended));
        assert_eq!(
            app_event(
                S::Suspended,
                AppEvent::Resume {
                    previous: S::Stopped
                }
            ),
            Some(S::Stopped)
        );
        assert_eq!(
            app_event(
                S::Running,
                AppEvent::Resume {
                    previous: S::Stopped
                }
            ),
            None
        );
    }
}
