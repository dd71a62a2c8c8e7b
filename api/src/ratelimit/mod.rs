//! Per-route rate limits with the Generic Cell Rate Algorithm (GCRA).
//!
//! GCRA keeps one timestamp per key — the theoretical arrival time (TAT) of the next
//! request — so the in-process limiter is a map of `u64`s and the Redis limiter is one
//! key per client updated by a Lua script (atomic, with Redis's clock, so replicas
//! share one budget and one notion of time).

mod local;
mod redis_backend;

use std::time::Duration;

pub use local::LocalLimiter;
pub use redis_backend::RedisLimiter;

/// `limit` requests per `period`, allowing a burst of up to `limit` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period: Duration,
}

impl Quota {
    pub const fn per_minute(limit: u32) -> Quota {
        Quota {
            limit,
            period: Duration::from_secs(60),
        }
    }

    /// Time between requests at the sustained rate, in microseconds (at least 1).
    pub fn emission_interval_us(&self) -> u64 {
        let period = u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX);
        (period / u64::from(self.limit.max(1))).max(1)
    }

    /// Parses `1000/min`, `50/s`, `10/h`.
    pub fn parse(s: &str) -> Result<Quota, String> {
        let (n, unit) = s
            .split_once('/')
            .ok_or_else(|| format!("rate limit `{s}` is not of the form N/unit"))?;
        let limit: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("rate limit `{s}`: `{n}` is not a whole number"))?;
        if limit == 0 {
            return Err(format!("rate limit `{s}` must allow at least one request"));
        }
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => return Err(format!("rate limit `{s}`: unknown unit `{other}`")),
        };
        Ok(Quota { limit, period })
    }
}

/// The outcome of one check, with what the `RateLimit` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Until the budget is whole again.
    pub reset: Duration,
    /// When denied: how long until one request is allowed.
    pub retry_after: Duration,
}

/// The GCRA step shared by both backends (the Lua script mirrors it line by line).
/// Returns the decision and the TAT to store (unchanged when denied).
pub fn gcra(quota: &Quota, stored_tat_us: Option<u64>, now_us: u64) -> (Decision, u64) {
    let t = quota.emission_interval_us();
    let burst_window = t.saturating_mul(u64::from(quota.limit));
    let tat = stored_tat_us.unwrap_or(now_us).max(now_us);
    let new_tat = tat.saturating_add(t);
    let allow_at = new_tat.saturating_sub(burst_window);
    if now_us < allow_at {
        let used = tat - now_us;
        return (
            Decision {
                allowed: false,
                limit: quota.limit,
                remaining: 0,
                reset: Duration::from_micros(used),
                retry_after: Duration::from_micros(allow_at - now_us),
            },
            tat,
        );
    }
    let used = new_tat - now_us;
    let remaining = (burst_window.saturating_sub(used) / t).min(u64::from(quota.limit));
    (
        Decision {
            allowed: true,
            limit: quota.limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: Duration::from_micros(used),
            retry_after: Duration::ZERO,
        },
        new_tat,
    )
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate limiter backend unavailable: {0}")]
    Backend(String),
}

/// A rate limiter backend. `key` already includes the route group.
pub trait RateLimiter: Send + Sync + 'static {
    fn check(
        &self,
        key: &str,
        quota: &Quota,
    ) -> impl std::future::Future<Output = Result<Decision, RateLimitError>> + Send;
}

/// The configured backend: in-process by default, Redis for several replicas.
#[derive(Clone)]
pub enum Limiter {
    Local(std::sync::Arc<LocalLimiter>),
    Redis(RedisLimiter),
}

impl Limiter {
    pub async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, RateLimitError> {
        match self {
            Limiter::Local(l) => l.check(key, quota).await,
            Limiter::Redis(r) => r.check(key, quota).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotas() {
        assert_eq!(Quota::parse("1000/min").unwrap(), Quota::per_minute(1000));
        assert_eq!(
            Quota::parse("5/s").unwrap(),
            Quota {
                limit: 5,
                period: Duration::from_secs(1)
            }
        );
        assert!(Quota::parse("0/min").is_err());
        assert!(Quota::parse("x/min").is_err());
        assert!(Quota::parse("10/fortnight").is_err());
        assert!(Quota::parse("10").is_err());
    }

    #[test]
    fn burst_then_sustained_rate() {
        let q = Quota {
            limit: 10,
            period: Duration::from_secs(10),
        }; // one per second sustained, burst 10
        let mut tat = None;
        let now = 1_000_000_000u64;
        for i in 0..10 {
            let (d, t) = gcra(&q, tat, now);
            assert!(d.allowed, "request {i} of the burst");
            assert_eq!(d.remaining, 9 - i);
            tat = Some(t);
        }
        let (d, t) = gcra(&q, tat, now);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, Duration::from_secs(1));
        assert_eq!(t, tat.unwrap(), "a denied request does not consume budget");
        // One emission interval later exactly one more is allowed.
        let (d, t) = gcra(&q, tat, now + 1_000_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let (d, _) = gcra(&q, Some(t), now + 1_000_000);
        assert!(!d.allowed);
        // After a full period idle the whole burst is back.
        let (d, _) = gcra(&q, Some(t), now + 20_000_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 9);
    }
}
