//! A small memory of credentials that authenticated lately, so that a
//! caller's every request does not cost a query: entries live a fixed time,
//! can be forgotten at once, and the memory starts over past a bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries of `V` by `K`, each answered for `ttl` after it was remembered.
pub struct Remembered<K, V> {
    entries: Arc<Mutex<HashMap<K, (V, Instant)>>>,
    ttl: Duration,
    most: usize,
}

impl<K, V> Clone for Remembered<K, V> {
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
            ttl: self.ttl,
            most: self.most,
        }
    }
}

impl<K: Eq + Hash, V: Clone> Remembered<K, V> {
    /// Remembers entries for `ttl`; past `most` entries the memory starts
    /// over (a bound against a flood of distinct credentials).
    pub fn new(ttl: Duration, most: usize) -> Self {
        Self {
            entries: Arc::default(),
            ttl,
            most,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of `key`, if remembered less than the time to live ago.
    pub fn get(&self, key: &K) -> Option<V> {
        self.lock()
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(value, _)| value.clone())
    }

    pub fn remember(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.most {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= self.most {
                entries.clear();
            }
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Forgets every entry whose value `gone` says is gone.
    pub fn forget(&self, gone: impl Fn(&V) -> bool) {
        self.lock().retain(|_, (value, _)| !gone(value));
    }

    /// Forgets the entry of `key`.
    pub fn forget_key(&self, key: &K) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_their_time_and_are_forgotten_on_demand_and_past_the_bound() {
        let memory = Remembered::new(Duration::from_millis(50), 2);
        memory.remember("a", 1);
        memory.remember("b", 2);
        assert_eq!(memory.get(&"a"), Some(1));
        memory.forget(|v| *v == 1);
        assert_eq!(memory.get(&"a"), None);
        memory.remember("a", 1);
        // Full: a third entry starts the memory over.
        memory.remember("c", 3);
        assert_eq!((memory.get(&"b"), memory.get(&"c")), (None, Some(3)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(memory.get(&"c"), None);
    }
}
