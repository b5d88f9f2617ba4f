//! The time the control plane acts at: the system clock in production, a
//! hand-set one in tests, so that billing hours and grace periods are driven
//! without sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time; cheap to clone (clones share a manual clock).
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Mutex<DateTime<Utc>>>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that stands at `at` until it is set or advanced.
    pub fn manual(at: DateTime<Utc>) -> Self {
        Self(Some(Arc::new(Mutex::new(at))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            None => Utc::now(),
            Some(at) => *at.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a manual clock to `at` (the system clock ignores it).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(now) = &self.0 {
            *now.lock().unwrap_or_else(|e| e.into_inner()) = at;
        }
    }

    /// Moves a manual clock forward by `by` (the system clock ignores it).
    pub fn advance(&self, by: Duration) {
        if let Some(now) = &self.0 {
            let mut now = now.lock().unwrap_or_else(|e| e.into_inner());
            *now += by;
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system"),
            Some(_) => write!(f, "Clock::manual({})", self.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clocks_move_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-11-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::manual(start);
        let shared = clock.clone();
        assert_eq!(clock.now(), start);
        shared.advance(Duration::minutes(30));
        assert_eq!(clock.now(), start + Duration::minutes(30));
        clock.set(start);
        assert_eq!(shared.now(), start);
        let system = Clock::system();
        system.set(start);
        assert!(system.now() > start);
    }
}
