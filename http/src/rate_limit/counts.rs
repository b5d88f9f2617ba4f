//! Request counts kept in this process and added to Redis in batches, so that
//! a request far from its limit costs no round trip.
//!
//! Each count (a limit's Redis key: class, who, minute) holds what Redis last
//! answered for it (`shared`: every replica's requests) and what this process
//! counted since (`pending`). A request is counted here when the limit is a
//! generous one (at least [`COUNTED_HERE_FROM`] a minute) and the count,
//! with this request, stays under 90 % of it; a flusher adds the pending
//! counts to Redis every [`FLUSH_EVERY`] in one pipeline and learns the
//! totals. Any other request (strict limits such as logins and deploys, or a
//! count near its limit) adds itself and the pending counts to Redis at once
//! and is judged on the total Redis answers, exactly as before.
//!
//! With one replica the totals are exact. With several, a replica sees the
//! others' requests at most one flush late, and a count near its limit is
//! asked of Redis on every request, so a limit is overrun by at most what the
//! replicas counted here in one flush interval while under 90 %.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;

/// Limits of fewer requests a minute are asked of Redis on every request.
pub const COUNTED_HERE_FROM: u32 = 1000;

/// How often counts kept here are added to Redis.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Seconds a count's key lives in Redis (its minute and a second).
pub const KEY_TTL_SECS: i64 = 61;

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    /// The minute the count is for (its key names it too).
    window: i64,
    /// The total Redis last answered.
    shared: u64,
    /// Counted here since, not yet added to Redis.
    pending: u64,
}

/// Whether a request may be counted here: the limit is generous and the
/// count with this request stays under 90 % of it.
pub fn counted_here(per_minute: u32, shared: u64, pending: u64) -> bool {
    per_minute >= COUNTED_HERE_FROM && (shared + pending + 1) * 10 <= u64::from(per_minute) * 9
}

/// The counts of this process; see the module's documentation. Only
/// generous limits have a count here (strict ones always ask Redis), and
/// the flusher, started by the first of them, forgets past minutes.
#[derive(Default)]
pub struct Counts {
    counts: Mutex<HashMap<String, Count>>,
    flusher: OnceLock<()>,
}

impl Counts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Count>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request against `key`. `None`: counted here, it passes.
    /// `Some(n)`: add `n` (this request and the pending ones) to Redis now
    /// and judge the request on the total, then hand it to [`Self::learned`].
    pub fn count(&self, key: &str, window: i64, per_minute: u32) -> Option<u64> {
        if per_minute < COUNTED_HERE_FROM {
            return Some(1);
        }
        let mut counts = self.lock();
        let count = counts.entry(key.to_string()).or_insert(Count {
            window,
            ..Count::default()
        });
        if counted_here(per_minute, count.shared, count.pending) {
            count.pending += 1;
            None
        } else {
            Some(std::mem::take(&mut count.pending) + 1)
        }
    }

    /// Redis answered `total` for `key`.
    pub fn learned(&self, key: &str, total: u64) {
        if let Some(count) = self.lock().get_mut(key) {
            count.shared = count.shared.max(total);
        }
    }

    /// Takes the pending counts (to add to Redis), and forgets the counts of
    /// minutes before the newest one with nothing pending.
    fn take_pending(&self) -> Vec<(String, u64)> {
        let mut counts = self.lock();
        let newest = counts.values().map(|c| c.window).max().unwrap_or(0);
        counts.retain(|_, c| c.window >= newest || c.pending > 0);
        counts
            .iter_mut()
            .filter(|(_, c)| c.pending > 0)
            .map(|(key, c)| (key.clone(), std::mem::take(&mut c.pending)))
            .collect()
    }

    /// Starts the flusher once (it ends when the counts are dropped).
    pub fn start_flusher(self: &Arc<Self>, conn: &ConnectionManager) {
        self.flusher.get_or_init(|| {
            tokio::spawn(flush_forever(Arc::downgrade(self), conn.clone()));
        });
    }
}

async fn flush_forever(counts: Weak<Counts>, mut conn: ConnectionManager) {
    let mut failing = false;
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let Some(counts) = counts.upgrade() else {
            return;
        };
        let pending = counts.take_pending();
        if pending.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        for (key, n) in &pending {
            pipe.incr(key, *n).expire(key, KEY_TTL_SECS).ignore();
        }
        match tokio::time::timeout(
            Duration::from_secs(1),
            pipe.query_async::<Vec<u64>>(&mut conn),
        )
        .await
        {
            Ok(Ok(totals)) => {
                failing = false;
                for ((key, _), total) in pending.iter().zip(totals) {
                    counts.learned(key, total);
                }
            }
            // The requests passed already; their counts are lost with Redis.
            failure => {
                if !failing {
                    let error = match failure {
                        Ok(Err(e)) => e.to_string(),
                        _ => "no answer from Redis in time".into(),
                    };
                    tracing::warn!(%error, "cannot add request counts to Redis; requests pass uncounted meanwhile");
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_limits_and_counts_near_a_limit_go_to_redis() {
        // Logins (20), deploys (30): always Redis.
        assert!(!counted_here(20, 0, 0));
        assert!(!counted_here(COUNTED_HERE_FROM - 1, 0, 0));
        // A generous limit far from reached: here.
        assert!(counted_here(1200, 0, 0));
        assert!(counted_here(1200, 1000, 79));
        // With this request past 90 %: Redis.
        assert!(!counted_here(1200, 1000, 80));
        assert!(!counted_here(1200, 1200, 0));
    }

    #[test]
    fn pending_counts_go_to_redis_with_the_request_that_asks_it() {
        let counts = Counts::default();
        for _ in 0..5 {
            assert_eq!(counts.count("k", 1, 1000), None);
        }
        // Redis says others counted 895: with the 5 pending and this one,
        // past 90 %; the next request asks Redis, carrying the 5 with it.
        counts.learned("k", 895);
        assert_eq!(counts.count("k", 1, 1000), Some(6));
        // A strict limit asks Redis and keeps nothing here (no flusher may
        // ever run to forget it).
        assert_eq!(counts.count("login", 1, 20), Some(1));
        assert!(!counts.lock().contains_key("login"));
        assert!(counts.take_pending().is_empty());
        // A new minute: the old one, with nothing pending, is forgotten.
        assert_eq!(counts.count("k2", 2, 1000), None);
        assert_eq!(counts.take_pending(), vec![("k2".to_string(), 1)]);
        assert_eq!(counts.lock().len(), 1);
    }
}
