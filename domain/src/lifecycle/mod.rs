//! Lifecycle states of the platform's entities, stored as lowercase strings,
//! and the transition tables that say which change is legal in which state:
//! [`app`] for applications, [`build`] for builds, [`node`] for worker nodes,
//! [`task`] for agent tasks. Every state change goes through one of these functions.

pub mod app;
pub mod build;
pub mod database;
pub mod node;
pub mod task;

pub use app::{AppEvent, CommandPlan, IllegalTransition, app_event, app_transition};
pub use build::{BuildEvent, IllegalBuildTransition, build_transition};
pub use database::{DatabaseEvent, IllegalDatabaseTransition, database_transition};
pub use node::{NodeEvent, node_transition};
pub use task::{IllegalTaskTransition, TaskEvent, task_transition};

use std::fmt;
use std::str::FromStr;

/// Declares a state enum stored as a lowercase string, with `as_str`, `ALL`,
/// `Display` and `FromStr`.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState { kind: stringify!($name), value: s.to_string() }),
                }
            }
        }
    };
}

/// A stored state string that no variant matches (a corrupt row or a newer schema).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} state \"{value}\"")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

string_enum!(
    /// A user's role.
    Role { Customer => "customer", Admin => "admin" }
);

string_enum!(
    /// The observed state of an application.
    AppStatus {
        Pending => "pending",
        Building => "building",
        Running => "running",
        Stopped => "stopped",
        Failed => "failed",
        Suspended => "suspended",
        Deleting => "deleting",
    }
);

string_enum!(
    /// What a customer asks of an application.
    AppCommand {
        Deploy => "deploy",
        Restart => "restart",
        Stop => "stop",
        Start => "start",
        Scale => "scale",
        Delete => "delete",
        Rollback => "roll back",
        Configure => "configure",
    }
);

string_enum!(
    /// What made a release: a build from git, a prebuilt image, a change of
    /// the environment, a rollback to an earlier release, or a database
    /// linked or unlinked.
    ReleaseKind {
        Build => "build",
        Image => "image",
        Config => "config",
        Rollback => "rollback",
        Link => "link",
    }
);

string_enum!(
    /// A worker node's health as the control plane sees it.
    NodeStatus {
        Pending => "pending",
        Online => "online",
        Degraded => "degraded",
        Offline => "offline",
        Disabled => "disabled",
    }
);

string_enum!(
    /// A build's progress.
    BuildStatus {
        Pending => "pending",
        Building => "building",
        Success => "success",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// An agent task's progress in the lease queue.
    TaskStatus {
        Queued => "queued",
        Leased => "leased",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// A managed database's state.
    DatabaseStatus {
        Pending => "pending",
        Running => "running",
        Stopped => "stopped",
        Failed => "failed",
        Suspended => "suspended",
    }
);

impl AppStatus {
    /// The statuses in which an application holds its plan's CPU and memory
    /// on its node: it runs, is about to (a build or rollout), or its
    /// containers are still being removed. Failed, stopped, suspended and
    /// never deployed applications hold nothing (as they are not billed).
    pub const HOLDING: &'static [AppStatus] =
        &[AppStatus::Building, AppStatus::Running, AppStatus::Deleting];

    pub fn holds_capacity(self) -> bool {
        Self::HOLDING.contains(&self)
    }
}

impl DatabaseStatus {
    /// The statuses in which a database holds its plan's CPU and memory on
    /// its node: being provisioned, or running.
    pub const HOLDING: &'static [DatabaseStatus] =
        &[DatabaseStatus::Pending, DatabaseStatus::Running];

    pub fn holds_capacity(self) -> bool {
        Self::HOLDING.contains(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for s in AppStatus::ALL {
            assert_eq!(s.as_str().parse::<AppStatus>().unwrap(), *s);
        }
        for s in NodeStatus::ALL {
            assert_eq!(s.to_string().parse::<NodeStatus>().unwrap(), *s);
        }
        assert!("nope".parse::<TaskStatus>().is_err());
    }
}
