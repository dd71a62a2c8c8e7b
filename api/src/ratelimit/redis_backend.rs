//! Redis-backed GCRA for several API replicas sharing one budget.

use redis::Script;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Decision, Quota, RateLimitError, RateLimiter};

/// The GCRA step of [`super::gcra`], run atomically inside Redis with Redis's clock so
/// every replica sees the same time. Returns {allowed, remaining, reset_us, retry_us}.
const GCRA_LUA: &str = r#"
local t = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local burst_window = t * limit
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = math.max(tonumber(stored), now)
end
local new_tat = tat + t
local allow_at = new_tat - burst_window
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
local used = new_tat - now
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(used / 1000) + 1)
local remaining = math.floor((burst_window - used) / t)
if remaining > limit then remaining = limit end
return {1, remaining, used, 0}
"#;

#[derive(Clone)]
pub struct RedisLimiter {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
}

impl RedisLimiter {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`); keys are namespaced by `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisLimiter, RateLimitError> {
        let client =
            redis::Client::open(url).map_err(|e| RateLimitError::Backend(e.to_string()))?;
        // Bounded waits: a rate-limit check sits on every request's path, and start-up
        // should fail fast with a clear error rather than retry for many seconds.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_millis(500)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| RateLimitError::Backend(e.to_string()))?;
        Ok(RedisLimiter {
            conn,
            script: Script::new(GCRA_LUA),
            prefix: prefix.to_owned(),
        })
    }
}

impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, RateLimitError> {
        let mut conn = self.conn.clone();
        let (allowed, remaining, reset_us, retry_us): (i64, i64, i64, i64) = self
            .script
            .key(format!("{}:{key}", self.prefix))
            .arg(quota.emission_interval_us())
            .arg(quota.limit)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| RateLimitError::Backend(e.to_string()))?;
        let us = |v: i64| std::time::Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            limit: quota.limit,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset: us(reset_us),
            retry_after: us(retry_us),
        })
    }
}
