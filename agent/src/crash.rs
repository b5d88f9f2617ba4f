//! The crash policy. The agent follows Docker's `die` events for managed
//! containers: one that exits while it should run is started again, up to 3
//! times within 5 minutes; after that it is left stopped and reported as
//! crash-looping (the control plane then marks its application failed).
//! Stops and removals the agent makes itself are announced first and ignored.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::EventsOptions;
use futures::StreamExt;
use skypanel_protocol::node::ContainerState;
use tokio::sync::Notify;

use crate::backoff::Backoff;
use crate::docker::Engine;

/// Restarts allowed within [`WINDOW`].
pub const MAX_RESTARTS: usize = 3;
pub const WINDOW: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Inner {
    /// Containers the agent itself is stopping or removing.
    expected: HashSet<String>,
    /// Recent crash restarts per container.
    restarts: HashMap<String, VecDeque<Instant>>,
    looping: HashSet<String>,
}

#[derive(Clone, Default)]
pub struct CrashPolicy {
    inner: Arc<Mutex<Inner>>,
    /// Woken when something the control plane should hear about soon happened.
    pub urgent: Arc<Notify>,
}

/// What to do about a container that died.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ignore,
    Restart,
    GiveUp,
}

impl CrashPolicy {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        match self.inner.lock() {
            Ok(mut inner) => f(&mut inner),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The agent is about to stop or remove `name`: its exit is no crash.
    pub fn expect_stop(&self, name: &str) {
        self.with(|i| i.expected.insert(name.to_string()));
    }

    /// The agent (re)started `name` on purpose: it starts with a clean record.
    pub fn started(&self, name: &str) {
        self.with(|i| {
            i.expected.remove(name);
            i.restarts.remove(name);
            i.looping.remove(name);
        });
    }

    pub fn restarts(&self, name: &str) -> i32 {
        self.with(|i| i.restarts.get(name).map_or(0, |r| r.len() as i32))
    }

    /// The containers left stopped for crashing too often.
    pub fn looping_names(&self) -> Vec<String> {
        self.with(|i| i.looping.iter().cloned().collect())
    }

    pub fn looping(&self, name: &str) -> bool {
        self.with(|i| i.looping.contains(name))
    }

    /// Decides about a container that died at `now`.
    pub fn judge(&self, name: &str, now: Instant) -> Verdict {
        self.with(|i| {
            if i.expected.contains(name) || i.looping.contains(name) {
                return Verdict::Ignore;
            }
            let history = i.restarts.entry(name.to_string()).or_default();
            while history
                .front()
                .is_some_and(|at| now.duration_since(*at) > WINDOW)
            {
                history.pop_front();
            }
            if history.len() >= MAX_RESTARTS {
                i.looping.insert(name.to_string());
                Verdict::GiveUp
            } else {
                history.push_back(now);
                Verdict::Restart
            }
        })
    }

    /// Follows Docker events until the task is aborted, reconnecting on errors.
    pub async fn watch(self, engine: Engine) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let options = EventsOptions {
                filters: Some(HashMap::from([
                    ("type".to_string(), vec!["container".to_string()]),
                    ("event".to_string(), vec!["die".to_string()]),
                    ("label".to_string(), vec![engine.managed_filter()]),
                ])),
                ..Default::default()
            };
            let mut events = engine.raw().events(Some(options));
            while let Some(event) = events.next().await {
                let Ok(event) = event else { break };
                backoff.reset();
                let Some(name) = event
                    .actor
                    .and_then(|a| a.attributes)
                    .and_then(|mut a| a.remove("name"))
                else {
                    continue;
                };
                self.on_die(&engine, &name).await;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    async fn on_die(&self, engine: &Engine, name: &str) {
        // A restart the agent made emits a die too; only a stopped container crashed.
        if let Ok(Some(inspected)) = engine.inspect(name).await {
            let code = inspected.exit_code;
            // A one-off (a release phase, a run) ends for good when it ends.
            if inspected.state == ContainerState::Running || inspected.one_off {
                return;
            }
            match self.judge(name, Instant::now()) {
                Verdict::Ignore => {}
                Verdict::Restart => {
                    tracing::warn!(
                        container = name,
                        exit_code = code,
                        "container crashed; starting it again"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Err(err) = engine.start(name).await {
                        tracing::warn!(container = name, error = %crate::docker::short(&err), "cannot restart a crashed container");
                    }
                }
                Verdict::GiveUp => {
                    tracing::error!(
                        container = name,
                        exit_code = code,
                        "container keeps crashing; leaving it stopped"
                    );
                    self.urgent.notify_one();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_restarts_in_five_minutes_then_give_up() {
        let policy = CrashPolicy::default();
        let t = Instant::now();
        assert_eq!(policy.judge("c", t), Verdict::Restart);
        assert_eq!(
            policy.judge("c", t + Duration::from_secs(10)),
            Verdict::Restart
        );
        assert_eq!(
            policy.judge("c", t + Duration::from_secs(20)),
            Verdict::Restart
        );
        assert_eq!(policy.restarts("c"), 3);
        assert_eq!(
            policy.judge("c", t + Duration::from_secs(30)),
            Verdict::GiveUp
        );
        assert!(policy.looping("c"));
        assert_eq!(
            policy.judge("c", t + Duration::from_secs(40)),
            Verdict::Ignore
        );
    }

    #[test]
    fn old_crashes_leave_the_window_and_intended_stops_are_no_crash() {
        let policy = CrashPolicy::default();
        let t = Instant::now();
        for i in 0..3 {
            assert_eq!(
                policy.judge("c", t + Duration::from_secs(i)),
                Verdict::Restart
            );
        }
        assert_eq!(
            policy.judge("c", t + Duration::from_secs(400)),
            Verdict::Restart
        );
        policy.expect_stop("d");
        assert_eq!(policy.judge("d", t), Verdict::Ignore);
        policy.started("d");
        assert_eq!(policy.judge("d", t), Verdict::Restart);
    }
}
