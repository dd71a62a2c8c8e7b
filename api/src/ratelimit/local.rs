//! In-process GCRA: the single-machine default.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{Decision, Quota, RateLimitError, RateLimiter, gcra};

/// Sharded maps of key → TAT. Entries whose TAT has passed carry no information (a
/// fresh key behaves the same), so a periodic sweep bounds memory by active clients.
pub struct LocalLimiter {
    shards: Vec<Mutex<HashMap<String, u64>>>,
    last_sweep: Mutex<Instant>,
}

const SHARDS: usize = 16;

impl Default for LocalLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            last_sweep: Mutex::new(Instant::now()),
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl LocalLimiter {
    fn shard(&self, key: &str) -> &Mutex<HashMap<String, u64>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// The check with an explicit clock, for tests.
    pub fn check_at(&self, key: &str, quota: &Quota, now_us: u64) -> Decision {
        let mut map = self
            .shard(key)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (decision, tat) = gcra(quota, map.get(key).copied(), now_us);
        map.insert(key.to_owned(), tat);
        decision
    }

    fn maybe_sweep(&self, now: u64) {
        let mut last = self
            .last_sweep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed().as_secs() < 60 {
            return;
        }
        *last = Instant::now();
        drop(last);
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|_, tat| *tat > now);
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RateLimiter for LocalLimiter {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, RateLimitError> {
        let now = now_us();
        self.maybe_sweep(now);
        Ok(self.check_at(key, quota, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_independent_and_concurrent_checks_never_overshoot() {
        let limiter = std::sync::Arc::new(LocalLimiter::default());
        let q = Quota::per_minute(100);
        let now = 5_000_000_000;
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let l = limiter.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| l.check_at("client-a", &q, now).allowed)
                        .count()
                })
            })
            .collect();
        let allowed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(allowed, 100, "exactly the burst is allowed across threads");
        assert!(limiter.check_at("client-b", &q, now).allowed);
    }
}
