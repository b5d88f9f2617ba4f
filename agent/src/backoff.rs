//! Exponential backoff with jitter, for reconnecting to the control plane.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            current: base,
        }
    }

    /// The next wait: the current step with up to ±25 % jitter; the step doubles.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        let millis = step.as_millis() as u64;
        let spread = millis / 4;
        let jittered = millis - spread + rand::thread_rng().gen_range(0..=spread * 2);
        Duration::from_millis(jittered)
    }

    /// After a success the next failure starts small again.
    pub fn reset(&mut self) {
        self.current = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert!((75..=125).contains(&delays[0]), "{delays:?}");
        assert!((150..=250).contains(&delays[1]), "{delays:?}");
        assert!(
            delays[4..].iter().all(|d| (600..=1000).contains(d)),
            "capped: {delays:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }
}
