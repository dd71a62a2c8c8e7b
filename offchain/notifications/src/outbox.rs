//! The outbox worker. Claiming is one statement: due rows of the channels this worker
//! has, `FOR UPDATE SKIP LOCKED` so concurrent workers take disjoint rows, stamped with a
//! fresh claim id, a lease and the attempt count, committed before anything is sent. The
//! outcome is written only if the claim still matches, so a worker whose lease ran out
//! cannot overwrite the result of the one that took over. A worker that dies mid-send
//! leaves its rows leased; when the lease ends another worker sends them again under the
//! same idempotency key: nothing is lost, and a receiver sees the repeat as a repeat.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tracing::Instrument;
use uuid::Uuid;

use crate::NotificationError;
use crate::channels::{Channels, DeliveryError, Endpoint, Outgoing, Receipt};
use crate::model::{ChannelKind, NOTIFICATION_COLS, Notification};

/// Postgres NOTIFY channel that wakes workers when rows are queued.
pub const OUTBOX_CHANNEL: &str = "notifications_outbox";

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Rows claimed per round.
    pub batch: u32,
    /// Rows sent at once.
    pub concurrency: usize,
    /// How long a claim holds; longer than any channel's timeout.
    pub lease: Duration,
    /// Backoff before the second attempt; doubles per attempt up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Longest sleep between rounds when no notification wakes the worker.
    pub idle_poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch: 32,
            concurrency: 8,
            lease: Duration::from_secs(120),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(6 * 3600),
            idle_poll: Duration::from_secs(5),
        }
    }
}

/// Delay before the attempt after `attempt` (1-based) failed: exponential, capped, with
/// "equal jitter" (half fixed, half random) so retries of one outage spread out while the
/// delay still grows.
pub fn backoff(attempt: i32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rng.gen_range(0..=jitter_ms))
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub claimed: usize,
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
    /// Outcomes not written because the lease had passed to another worker.
    pub fenced: usize,
}

#[derive(Clone)]
pub struct OutboxWorker {
    pool: PgPool,
    channels: Arc<Channels>,
    config: WorkerConfig,
}

type Claimed = (Uuid, Uuid, String, String, String, i32, i32);

impl OutboxWorker {
    pub fn new(pool: PgPool, channels: Channels, config: WorkerConfig) -> OutboxWorker {
        OutboxWorker {
            pool,
            channels: Arc::new(channels),
            config,
        }
    }

    /// Claims due rows and delivers them; returns what happened.
    pub async fn run_once(&self) -> Result<Round, NotificationError> {
        let claim = Uuid::now_v7();
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let claimed: Vec<Claimed> = sqlx::query_as(
            "WITH due AS (
                 SELECT id FROM notifications.deliveries
                  WHERE status = 'pending' AND next_attempt_at <= now()
                    AND (locked_until IS NULL OR locked_until < now())
                    AND channel = ANY ($1)
                  ORDER BY next_attempt_at
                  LIMIT $2
                  FOR UPDATE SKIP LOCKED)
             UPDATE notifications.deliveries d
                SET claim = $3, attempts = d.attempts + 1,
                    locked_until = now() + $4 * interval '1 millisecond'
               FROM due WHERE d.id = due.id
             RETURNING d.id, d.notification_id, d.channel, d.destination, d.idempotency_key,
                       d.attempts, d.max_attempts",
        )
        .bind(self.channels.kinds())
        .bind(i64::from(self.config.batch.max(1)))
        .bind(claim)
        .bind(lease_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut round = Round {
            claimed: claimed.len(),
            ..Round::default()
        };
        if claimed.is_empty() {
            return Ok(round);
        }

        let ids: Vec<Uuid> = claimed.iter().map(|c| c.1).collect();
        let notifications: HashMap<Uuid, Notification> =
            sqlx::query_as::<_, Notification>(&format!(
                "SELECT {NOTIFICATION_COLS} FROM notifications.notifications WHERE id = ANY ($1)"
            ))
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|n| (n.id, n))
            .collect();
        let endpoint_ids: Vec<Uuid> = claimed
            .iter()
            .filter(|c| c.2 == ChannelKind::Webhook.as_str())
            .filter_map(|c| Uuid::try_parse(&c.3).ok())
            .collect();
        let endpoints: HashMap<Uuid, Endpoint> = sqlx::query_as::<_, (Uuid, String, String)>(
            "SELECT id, url, secret FROM notifications.webhook_endpoints
              WHERE id = ANY ($1) AND active",
        )
        .bind(&endpoint_ids)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(id, url, secret)| (id, Endpoint { url, secret }))
        .collect();

        // Trace context of each notification, so its deliveries join the creator's trace.
        let traceparents: HashMap<Uuid, String> = sqlx::query_as::<_, (Uuid, String)>(
            "SELECT id, traceparent FROM notifications.notifications
              WHERE id = ANY ($1) AND traceparent IS NOT NULL",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();

        let mut jobs = Vec::with_capacity(claimed.len());
        for (id, notification_id, channel, destination, key, attempt, max_attempts) in claimed {
            let (Some(kind), Some(n)) = (
                ChannelKind::parse(&channel),
                notifications.get(&notification_id),
            ) else {
                return Err(NotificationError::Corrupt(format!("delivery {id}")));
            };
            let endpoint = Uuid::try_parse(&destination)
                .ok()
                .and_then(|e| endpoints.get(&e).cloned());
            jobs.push((
                Outgoing {
                    delivery_id: id,
                    channel: kind,
                    destination,
                    idempotency_key: key,
                    attempt,
                    notification: n.clone(),
                    endpoint,
                },
                max_attempts,
            ));
        }

        let outcomes: Vec<Result<Outcome, NotificationError>> = futures_util::stream::iter(jobs)
            .map(|(msg, max_attempts)| {
                let span = tracing::info_span!(
                    "notification_delivery",
                    delivery_id = %msg.delivery_id,
                    channel = msg.channel.as_str(),
                    attempt = msg.attempt,
                    traceparent = tracing::field::Empty
                );
                if let Some(tp) = traceparents.get(&msg.notification.id) {
                    span.record("traceparent", tp.as_str());
                }
                async move {
                    let result = match self.channels.get(msg.channel) {
                        Some(ch) => ch.deliver(&msg).await,
                        None => Err(DeliveryError::Retry("channel not configured".into())),
                    };
                    self.record(claim, &msg, max_attempts, result).await
                }
                .instrument(span)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        for o in outcomes {
            match o? {
                Outcome::Delivered => round.delivered += 1,
                Outcome::Retry => round.retried += 1,
                Outcome::Dead => round.dead += 1,
                Outcome::Fenced => round.fenced += 1,
            }
        }
        Ok(round)
    }

    async fn record(
        &self,
        claim: Uuid,
        msg: &Outgoing,
        max_attempts: i32,
        result: Result<Receipt, DeliveryError>,
    ) -> Result<Outcome, NotificationError> {
        let mut tx = self.pool.begin().await?;
        let (outcome, updated, detail) = match result {
            Ok(receipt) => {
                let n = sqlx::query(
                    "UPDATE notifications.deliveries SET status = 'delivered', delivered_at = now(),
                         provider_id = $3, last_error = NULL, claim = NULL, locked_until = NULL
                      WHERE id = $1 AND claim = $2 AND status = 'pending'",
                )
                .bind(msg.delivery_id)
                .bind(claim)
                .bind(&receipt.provider_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                (Outcome::Delivered, n, receipt.provider_id)
            }
            Err(e) => {
                let permanent = matches!(e, DeliveryError::Permanent(_));
                let error = e.to_string();
                if permanent || msg.attempt >= max_attempts {
                    let n = sqlx::query(
                        "UPDATE notifications.deliveries SET status = 'dead', dead_at = now(),
                             last_error = $3, claim = NULL, locked_until = NULL
                          WHERE id = $1 AND claim = $2 AND status = 'pending'",
                    )
                    .bind(msg.delivery_id)
                    .bind(claim)
                    .bind(&error)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    tracing::warn!(delivery = %msg.delivery_id, channel = msg.channel.as_str(),
                        attempt = msg.attempt, error, "delivery dead-lettered");
                    (Outcome::Dead, n, Some(error))
                } else {
                    let delay = backoff(
                        msg.attempt,
                        self.config.backoff_base,
                        self.config.backoff_max,
                        &mut rand::thread_rng(),
                    );
                    let n = sqlx::query(
                        "UPDATE notifications.deliveries SET last_error = $3, claim = NULL,
                             locked_until = NULL,
                             next_attempt_at = now() + $4 * interval '1 millisecond'
                          WHERE id = $1 AND claim = $2 AND status = 'pending'",
                    )
                    .bind(msg.delivery_id)
                    .bind(claim)
                    .bind(&error)
                    .bind(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    tracing::info!(delivery = %msg.delivery_id, channel = msg.channel.as_str(),
                        attempt = msg.attempt, retry_in_ms = delay.as_millis() as u64, error,
                        "delivery failed, will retry");
                    (Outcome::Retry, n, Some(error))
                }
            }
        };
        if updated == 0 {
            tx.rollback().await?;
            tracing::warn!(delivery = %msg.delivery_id, "lease lost before the outcome was written");
            return Ok(Outcome::Fenced);
        }
        let label = match outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry => "retry",
            _ => "dead",
        };
        sqlx::query(
            "INSERT INTO notifications.delivery_attempts (delivery_id, attempt, outcome, detail)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(msg.delivery_id)
        .bind(msg.attempt)
        .bind(label)
        .bind(detail)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Rounds until `shutdown` resolves: straight on while there is work, else waiting for
    /// a queue notification or `idle_poll` (retries come due without one).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), NotificationError> {
        tokio::pin!(shutdown);
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        loop {
            // Shutdown is checked between rounds, never inside one: a round's claimed
            // deliveries finish (the caller bounds the wait with its drain deadline).
            tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(()),
                _ = std::future::ready(()) => {}
            }
            let round = self.run_once().await;
            match round {
                Ok(r) if r.claimed > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "outbox round failed"),
            }
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::timeout(self.config.idle_poll, listener.try_recv()) => {}
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Delivered,
    Retry,
    Dead,
    Fenced,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(3600);
        for attempt in 1..=20 {
            let full = base.saturating_mul(1 << (attempt - 1).min(30)).min(max);
            for _ in 0..50 {
                let d = backoff(attempt, base, max, &mut rng);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
        let spread: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(3, base, max, &mut rng)).collect();
        assert!(spread.len() > 10, "jitter spreads retries");
    }
}
