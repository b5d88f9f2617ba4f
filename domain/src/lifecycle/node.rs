//! The worker node transition table: heartbeats, missed heartbeats, and the
//! admin's disable/enable.

use super::NodeStatus;

/// The share of memory or disk in use (percent) that puts a node under pressure.
pub const DEGRADED_AT_PERCENT: f64 = 90.0;
/// The share of CPU in use (percent) that puts a node under pressure: a
/// build may use every core for minutes, and that alone is no reason to
/// stop placing work there.
pub const CPU_PRESSURE_AT_PERCENT: f64 = 95.0;

/// What happens to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeEvent {
    /// A heartbeat arrived; `overloaded` when the node has been under
    /// pressure (see [`under_pressure`]) for the whole pressure window.
    Heartbeat { overloaded: bool },
    /// No heartbeat for longer than the offline threshold.
    HeartbeatsMissed,
    /// An admin took the node out of placement.
    Disable,
    /// An admin put it back; `registered` when its agent ever registered.
    Enable { registered: bool },
}

/// The new status, or `None` when the event changes nothing in this state.
pub fn node_transition(current: NodeStatus, event: NodeEvent) -> Option<NodeStatus> {
    use NodeEvent as E;
    use NodeStatus as S;
    let next = match (current, event) {
        (S::Disabled, E::Heartbeat { .. } | E::HeartbeatsMissed | E::Disable) => return None,
        (_, E::Heartbeat { overloaded: true }) => S::Degraded,
        (_, E::Heartbeat { overloaded: false }) => S::Online,
        (S::Online | S::Degraded, E::HeartbeatsMissed) => S::Offline,
        (_, E::HeartbeatsMissed) => return None,
        (_, E::Disable) => S::Disabled,
        (S::Disabled, E::Enable { registered: true }) => S::Offline,
        (S::Disabled, E::Enable { registered: false }) => S::Pending,
        (_, E::Enable { .. }) => return None,
    };
    (next != current).then_some(next)
}

/// Whether a heartbeat's figures put a node under pressure: memory or disk
/// at or above [`DEGRADED_AT_PERCENT`], or CPU at or above
/// [`CPU_PRESSURE_AT_PERCENT`]. A node is degraded only after a whole window
/// of it (the NodeActor keeps the time).
pub fn under_pressure(cpu_percent: f64, memory_percent: f64, disk_percent: f64) -> bool {
    cpu_percent >= CPU_PRESSURE_AT_PERCENT
        || memory_percent >= DEGRADED_AT_PERCENT
        || disk_percent >= DEGRADED_AT_PERCENT
}

#[cfg(test)]
mod tests {
    use super::*;
    use NodeEvent as E;
    use NodeStatus as S;

    #[test]
    fn heartbeats() {
        assert_eq!(
            node_transition(S::Pending, E::Heartbeat { overloaded: false }),
            Some(S::Online)
        );
        assert_eq!(
            node_transition(S::Offline, E::Heartbeat { overloaded: false }),
            Some(S::Online)
        );
        assert_eq!(
            node_transition(S::Online, E::Heartbeat { overloaded: true }),
            Some(S::Degraded)
        );
        assert_eq!(
            node_transition(S::Degraded, E::Heartbeat { overloaded: false }),
            Some(S::Online)
        );
        assert_eq!(
            node_transition(S::Online, E::Heartbeat { overloaded: false }),
            None
        );
        assert_eq!(
            node_transition(S::Disabled, E::Heartbeat { overloaded: false }),
            None
        );
    }

    #[test]
    fn missed_heartbeats_and_admin() {
        assert_eq!(
            node_transition(S::Online, E::HeartbeatsMissed),
            Some(S::Offline)
        );
        assert_eq!(
            node_transition(S::Degraded, E::HeartbeatsMissed),
            Some(S::Offline)
        );
        assert_eq!(node_transition(S::Pending, E::HeartbeatsMissed), None);
        assert_eq!(node_transition(S::Online, E::Disable), Some(S::Disabled));
        assert_eq!(
            node_transition(S::Disabled, E::Enable { registered: true }),
            Some(S::Offline)
        );
        assert_eq!(
            node_transition(S::Disabled, E::Enable { registered: false }),
            Some(S::Pending)
        );
        assert_eq!(
            node_transition(S::Online, E::Enable { registered: true }),
            None
        );
    }

    #[test]
    fn a_busy_cpu_is_not_pressure_but_full_memory_or_disk_is() {
        assert!(!under_pressure(93.0, 50.0, 50.0));
        assert!(under_pressure(96.0, 50.0, 50.0));
        assert!(under_pressure(10.0, 91.0, 50.0));
        assert!(under_pressure(10.0, 50.0, 90.0));
    }
}
