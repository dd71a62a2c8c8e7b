//! Postgres schema `bridge`: observations, signing claims and attestations (validators), the
//! delivery queue with retry state and failures (relayers).

use std::future::Future;

use alloy::primitives::{Address, B256, U256};
use sqlx::{PgPool, Row};

use crate::message::Message;
use crate::source::ObservedMessage;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store file {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("store {0} is in use by another process (one validator per store)")]
    Locked(std::path::PathBuf),
    #[error(
        "refusing to sign {attempted}: validator {validator} already signed {claimed} for origin {origin_domain} sequence {sequence}"
    )]
    Equivocation {
        validator: Address,
        origin_domain: u32,
        sequence: u64,
        claimed: B256,
        attempted: B256,
    },
    #[error("{field} {value} does not fit the schema")]
    OutOfRange { field: &'static str, value: String },
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

fn to_i64(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        field,
        value: value.to_string(),
    })
}

fn b256(bytes: &[u8]) -> Result<B256, StoreError> {
    B256::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{} bytes where 32 expected", bytes.len())))
}

fn u32_of(field: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{field} {value}")))
}

fn u64_of(field: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{field} {value}")))
}

const MESSAGE_COLUMNS: &str = "m.id, m.origin_domain, m.sequence, m.sender, m.destination_domain, m.recipient, m.asset, m.amount::text AS amount";

fn message_from_row(row: &sqlx::postgres::PgRow) -> Result<(B256, Message), StoreError> {
    let id: Vec<u8> = row.try_get("id")?;
    let amount: String = row.try_get("amount")?;
    let message = Message {
        originDomain: u32_of("origin_domain", row.try_get("origin_domain")?)?,
        sequence: u64_of("sequence", row.try_get("sequence")?)?,
        sender: b256(&row.try_get::<Vec<u8>, _>("sender")?)?,
        destinationDomain: u32_of("destination_domain", row.try_get("destination_domain")?)?,
        recipient: b256(&row.try_get::<Vec<u8>, _>("recipient")?)?,
        asset: b256(&row.try_get::<Vec<u8>, _>("asset")?)?,
        amount: U256::from_str_radix(&amount, 10)
            .map_err(|_| StoreError::Corrupt(format!("amount {amount}")))?,
    };
    Ok((b256(&id)?, message))
}

/// A queued delivery as the relayer sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: B256,
    pub message: Message,
    pub status: String,
    pub attempts: i32,
    pub tx_hash: Option<B256>,
    pub raw_tx: Option<Vec<u8>>,
    pub tx_nonce: Option<u64>,
    /// Since the message was queued here.
    pub age: std::time::Duration,
}

/// An undelivered message and what is holding it up.
#[derive(Debug, Clone)]
pub struct StuckMessage {
    pub id: B256,
    pub origin_domain: u32,
    pub sequence: u64,
    pub destination_domain: u32,
    pub status: String,
    pub attempts: i32,
    pub age_secs: f64,
    pub signatures: i64,
    pub last_reason: Option<String>,
    pub last_detail: Option<String>,
    pub next_attempt_in_secs: Option<f64>,
}

/// Backlog and delivery figures for the metrics endpoint.
#[derive(Debug, Clone, Default)]
pub struct DeliveryStats {
    pub backlog_by_status: Vec<(String, i64)>,
    pub awaiting_enqueue: i64,
    pub failures_by_reason: Vec<(String, i64)>,
    /// (upper bound in seconds, cumulative count) plus the +Inf count and sum.
    pub latency_buckets: Vec<(f64, i64)>,
    pub latency_count: i64,
    pub latency_sum_secs: f64,
}

/// Undelivered messages of one destination in one delivery status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub destination_domain: u32,
    pub status: String,
    pub messages: i64,
}

/// A signature ready to publish: everything an [`crate::attestation::Attestation`] carries
/// but the destination contract, which the validator's configuration knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The validator's publication index (1, 2, 3… in signing order).
    pub publication: u64,
    pub id: B256,
    pub message: Message,
    pub origin_block: u64,
    pub origin_tx: Vec<u8>,
    pub set_version: u64,
    pub signature: Vec<u8>,
}

/// What a validator keeps: its cursor per source, what it observed, the signing claims that
/// make equivocation impossible, and its signatures in publication order. Implemented by
/// Postgres ([`Store`], the validator's own database) and by an embedded journal
/// ([`crate::journal::JournalStore`]) that needs no server.
pub trait ValidatorStore: Send + Sync {
    fn cursor(
        &self,
        validator: Address,
        origin_domain: u32,
        source: &str,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// Records observations and (when given) the next cursor atomically, so a crash never
    /// skips a block.
    fn record_batch(
        &self,
        validator: Address,
        origin_domain: u32,
        source: &str,
        observed: &[ObservedMessage],
        next_cursor: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Observed messages for `destination_domain` not yet signed at `set_version` nor
    /// refused, in (origin, sequence) order.
    fn messages_to_sign(
        &self,
        validator: Address,
        destination_domain: u32,
        set_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(B256, Message)>, StoreError>> + Send;
    /// Pins (origin, sequence, validator) to `id` and stores the signature with the next
    /// publication index; a different id already pinned there is [`StoreError::Equivocation`].
    fn store_signature(
        &self,
        validator: Address,
        id: B256,
        message: &Message,
        set_version: u64,
        signature: &[u8; 65],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn store_refusal(
        &self,
        validator: Address,
        id: B256,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Signatures with a publication index above `after`, in index order.
    fn unpublished(
        &self,
        validator: Address,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Signed>, StoreError>> + Send;
}

pub const LATENCY_BUCKETS_SECS: &[f64] =
    &[0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    // ------------------------------------------------------------------ relayer side

    /// Keeps an attestation this relayer read from a validator's location and verified
    /// (see [`crate::gather`]): the message, the validator's observation and its signature.
    pub async fn record_attestation(
        &self,
        a: &crate::attestation::Attestation,
        m: &Message,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_observation(
            &mut tx,
            a.validator,
            &ObservedMessage {
                message: m.clone(),
                id: a.id,
                origin_block: a.origin_block,
                origin_tx: a.origin_tx.to_vec(),
            },
        )
        .await?;
        sqlx::query(
            "INSERT INTO bridge.signatures (message_id, validator, set_version, signature)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(a.id.as_slice())
        .bind(a.validator.as_slice())
        .bind(to_i64("set_version", a.set_version)?)
        .bind(a.signature.as_ref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The next attestation index to read at `location`.
    pub async fn attestation_cursor(&self, location: &str) -> Result<Option<u64>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_index FROM bridge.attestation_cursors WHERE location = $1",
        )
        .bind(location)
        .fetch_optional(&self.pool)
        .await?;
        next.map(|n| u64_of("next_index", n)).transpose()
    }

    pub async fn set_attestation_cursor(
        &self,
        location: &str,
        validator: Address,
        next: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO bridge.attestation_cursors (location, validator, next_index) VALUES ($1, $2, $3)
             ON CONFLICT (location) DO UPDATE SET validator = EXCLUDED.validator,
                 next_index = EXCLUDED.next_index, updated_at = now()",
        )
        .bind(location)
        .bind(validator.as_slice())
        .bind(to_i64("next_index", next)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Queues every known message for `destination_domain` that is not queued yet.
    pub async fn enqueue(&self, destination_domain: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO bridge.deliveries (message_id, destination_domain, status)
             SELECT id, destination_domain, 'pending' FROM bridge.messages WHERE destination_domain = $1
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(i64::from(destination_domain))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Due deliveries, submitted ones first: their nonces predate any new transaction.
    pub async fn due(
        &self,
        destination_domain: u32,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS}, d.status, d.attempts, d.tx_hash, d.raw_tx, d.tx_nonce,
                    GREATEST(0, (EXTRACT(EPOCH FROM now() - d.enqueued_at) * 1000))::bigint AS age_ms
             FROM bridge.deliveries d JOIN bridge.messages m ON m.id = d.message_id
             WHERE d.destination_domain = $1 AND d.status IN ('pending', 'submitted') AND d.next_attempt_at <= now()
             ORDER BY (d.status = 'submitted') DESC, d.tx_nonce NULLS LAST, m.origin_domain, m.sequence
             LIMIT $2"
        ))
        .bind(i64::from(destination_domain))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let (id, message) = message_from_row(row)?;
                let tx_hash: Option<Vec<u8>> = row.try_get("tx_hash")?;
                let nonce: Option<i64> = row.try_get("tx_nonce")?;
                Ok(Delivery {
                    id,
                    message,
                    status: row.try_get("status")?,
                    attempts: row.try_get("attempts")?,
                    tx_hash: tx_hash.as_deref().map(b256).transpose()?,
                    raw_tx: row.try_get("raw_tx")?,
                    tx_nonce: nonce.map(|n| u64_of("tx_nonce", n)).transpose()?,
                    age: std::time::Duration::from_millis(u64_of(
                        "age_ms",
                        row.try_get("age_ms")?,
                    )?),
                })
            })
            .collect()
    }

    /// Attestations of `id` at `set_version`: (validator, 65-byte signature).
    pub async fn signatures(
        &self,
        id: B256,
        set_version: u64,
    ) -> Result<Vec<(Address, Vec<u8>)>, StoreError> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT validator, signature FROM bridge.signatures WHERE message_id = $1 AND set_version = $2 ORDER BY validator",
        )
        .bind(id.as_slice())
        .bind(to_i64("set_version", set_version)?)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(v, s)| {
                let validator = Address::try_from(v.as_slice())
                    .map_err(|_| StoreError::Corrupt("validator".into()))?;
                Ok((validator, s))
            })
            .collect()
    }

    /// Persists the signed transaction before it is broadcast.
    pub async fn mark_submitted(
        &self,
        id: B256,
        tx_hash: B256,
        raw_tx: &[u8],
        nonce: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE bridge.deliveries SET status = 'submitted', tx_hash = $2, raw_tx = $3, tx_nonce = $4,
                 submitted_at = now(), attempts = attempts + 1, next_attempt_at = now()
             WHERE message_id = $1",
        )
        .bind(id.as_slice())
        .bind(tx_hash.as_slice())
        .bind(raw_tx)
        .bind(to_i64("tx_nonce", nonce)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn mark_delivered(
        &self,
        id: B256,
        block: Option<u64>,
        gas_used: Option<u64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE bridge.deliveries SET status = 'delivered', delivered_at = now(), delivered_block = $2, gas_used = $3,
                 raw_tx = NULL, last_reason = NULL, last_detail = NULL
             WHERE message_id = $1 AND status <> 'delivered'",
        )
        .bind(id.as_slice())
        .bind(block.map(|b| to_i64("delivered_block", b)).transpose()?)
        .bind(gas_used.map(|g| to_i64("gas_used", g)).transpose()?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Back to pending (the stored transaction is dropped) after `delay_ms`; a failure is
    /// counted when `failure` is set, a wait (e.g. for signatures) only noted otherwise.
    pub async fn retry_later(
        &self,
        id: B256,
        reason: &str,
        detail: &str,
        delay_ms: u64,
        failure: bool,
        permanent: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let status = if permanent { "failed" } else { "pending" };
        sqlx::query(
            "UPDATE bridge.deliveries SET status = $2, last_reason = $3, last_detail = $4,
                 next_attempt_at = now() + make_interval(secs => $5::double precision / 1000.0),
                 tx_hash = NULL, raw_tx = NULL, tx_nonce = NULL,
                 attempts = attempts + CASE WHEN $6 AND status = 'pending' THEN 1 ELSE 0 END
             WHERE message_id = $1 AND status <> 'delivered'",
        )
        .bind(id.as_slice())
        .bind(status)
        .bind(reason)
        .bind(detail)
        .bind(i64::try_from(delay_ms).unwrap_or(i64::MAX))
        .bind(failure)
        .execute(&mut *tx)
        .await?;
        if failure {
            sqlx::query("INSERT INTO bridge.delivery_failures (message_id, reason, detail) VALUES ($1, $2, $3)")
                .bind(id.as_slice())
                .bind(reason)
                .bind(detail)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Keeps a submitted delivery waiting for its receipt.
    pub async fn recheck_later(&self, id: B256, delay_ms: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE bridge.deliveries SET next_attempt_at = now() + make_interval(secs => $2::double precision / 1000.0)
             WHERE message_id = $1",
        )
        .bind(id.as_slice())
        .bind(i64::try_from(delay_ms).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Undelivered messages older than `older_than_secs` (all destinations when `None`), with
    /// the number of attestations at any set version and the last reason.
    pub async fn stuck(
        &self,
        destination_domain: Option<u32>,
        older_than_secs: f64,
    ) -> Result<Vec<StuckMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.origin_domain, m.sequence, m.destination_domain,
                    COALESCE(d.status, 'not queued') AS status, COALESCE(d.attempts, 0) AS attempts,
                    EXTRACT(EPOCH FROM now() - m.first_seen_at)::double precision AS age,
                    (SELECT count(*) FROM bridge.signatures s WHERE s.message_id = m.id) AS signatures,
                    d.last_reason, d.last_detail,
                    EXTRACT(EPOCH FROM d.next_attempt_at - now())::double precision AS next_in
             FROM bridge.messages m LEFT JOIN bridge.deliveries d ON d.message_id = m.id
             WHERE (d.status IS NULL OR d.status <> 'delivered')
               AND ($1::bigint IS NULL OR m.destination_domain = $1)
               AND m.first_seen_at <= now() - make_interval(secs => $2)
             ORDER BY m.first_seen_at",
        )
        .bind(destination_domain.map(i64::from))
        .bind(older_than_secs)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StuckMessage {
                    id: b256(&row.try_get::<Vec<u8>, _>("id")?)?,
                    origin_domain: u32_of("origin_domain", row.try_get("origin_domain")?)?,
                    sequence: u64_of("sequence", row.try_get("sequence")?)?,
                    destination_domain: u32_of(
                        "destination_domain",
                        row.try_get("destination_domain")?,
                    )?,
                    status: row.try_get("status")?,
                    attempts: row.try_get("attempts")?,
                    age_secs: row.try_get("age")?,
                    signatures: row.try_get("signatures")?,
                    last_reason: row.try_get("last_reason")?,
                    last_detail: row.try_get("last_detail")?,
                    next_attempt_in_secs: row.try_get("next_in")?,
                })
            })
            .collect()
    }

    pub async fn stats(&self, destination_domain: u32) -> Result<DeliveryStats, StoreError> {
        let domain = i64::from(destination_domain);
        let backlog_by_status: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM bridge.deliveries WHERE destination_domain = $1 AND status <> 'delivered'
             GROUP BY status ORDER BY status",
        )
        .bind(domain)
        .fetch_all(&self.pool)
        .await?;
        let awaiting_enqueue: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bridge.messages m WHERE m.destination_domain = $1
               AND NOT EXISTS (SELECT 1 FROM bridge.deliveries d WHERE d.message_id = m.id)",
        )
        .bind(domain)
        .fetch_one(&self.pool)
        .await?;
        let failures_by_reason: Vec<(String, i64)> = sqlx::query_as(
            "SELECT f.reason, count(*) FROM bridge.delivery_failures f JOIN bridge.messages m ON m.id = f.message_id
             WHERE m.destination_domain = $1 GROUP BY f.reason ORDER BY f.reason",
        )
        .bind(domain)
        .fetch_all(&self.pool)
        .await?;
        let latencies: Vec<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM d.delivered_at - m.first_seen_at)::double precision
             FROM bridge.deliveries d JOIN bridge.messages m ON m.id = d.message_id
             WHERE d.destination_domain = $1 AND d.status = 'delivered' AND d.delivered_at IS NOT NULL",
        )
        .bind(domain)
        .fetch_all(&self.pool)
        .await?;
        let latency_buckets = LATENCY_BUCKETS_SECS
            .iter()
            .map(|bound| {
                (
                    *bound,
                    latencies.iter().filter(|l| **l <= *bound).count() as i64,
                )
            })
            .collect();
        Ok(DeliveryStats {
            backlog_by_status,
            awaiting_enqueue,
            failures_by_reason,
            latency_buckets,
            latency_count: latencies.len() as i64,
            latency_sum_secs: latencies.iter().sum(),
        })
    }

    /// Undelivered messages by destination domain and delivery status (`not_queued` for
    /// messages no relayer has queued yet), ordered so; `None` when the bridge schema is not
    /// installed in this database (the API's `/metrics` reads this).
    pub async fn backlog(&self) -> Result<Option<Vec<Backlog>>, StoreError> {
        let installed: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('bridge.deliveries')::text")
                .fetch_one(&self.pool)
                .await?;
        if installed.is_none() {
            return Ok(None);
        }
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT destination_domain::bigint, status, count(*) FROM bridge.deliveries
              WHERE status <> 'delivered' GROUP BY 1, 2
             UNION ALL
             SELECT m.destination_domain::bigint, 'not_queued', count(*) FROM bridge.messages m
              WHERE NOT EXISTS (SELECT 1 FROM bridge.deliveries d WHERE d.message_id = m.id)
              GROUP BY 1
             ORDER BY 1, 2",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(d, status, messages)| {
                Ok(Backlog {
                    destination_domain: u32_of("destination_domain", d)?,
                    status,
                    messages,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(Some)
    }
}

/// The message (once) and `validator`'s observation of it: what a validator records of its
/// own view, and what a relayer records of a verified attestation.
async fn insert_observation(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    validator: Address,
    o: &ObservedMessage,
) -> Result<(), StoreError> {
    let m = &o.message;
    sqlx::query(
        "INSERT INTO bridge.messages (id, origin_domain, sequence, sender, destination_domain, recipient, asset, amount)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric) ON CONFLICT (id) DO NOTHING",
    )
    .bind(o.id.as_slice())
    .bind(i64::from(m.originDomain))
    .bind(to_i64("sequence", m.sequence)?)
    .bind(m.sender.as_slice())
    .bind(i64::from(m.destinationDomain))
    .bind(m.recipient.as_slice())
    .bind(m.asset.as_slice())
    .bind(m.amount.to_string())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO bridge.observations (message_id, validator, origin_block, origin_tx)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(o.id.as_slice())
    .bind(validator.as_slice())
    .bind(to_i64("origin_block", o.origin_block)?)
    .bind(o.origin_tx.as_slice())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl ValidatorStore for Store {
    async fn cursor(
        &self,
        validator: Address,
        origin_domain: u32,
        source: &str,
    ) -> Result<Option<u64>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_block FROM bridge.validator_cursors WHERE validator = $1 AND origin_domain = $2 AND source = $3",
        )
        .bind(validator.as_slice())
        .bind(i64::from(origin_domain))
        .bind(source)
        .fetch_optional(&self.pool)
        .await?;
        next.map(|n| u64_of("next_block", n)).transpose()
    }

    async fn record_batch(
        &self,
        validator: Address,
        origin_domain: u32,
        source: &str,
        observed: &[ObservedMessage],
        next_cursor: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for o in observed {
            insert_observation(&mut tx, validator, o).await?;
        }
        if let Some(next_cursor) = next_cursor {
            sqlx::query(
            "INSERT INTO bridge.validator_cursors (validator, origin_domain, source, next_block) VALUES ($1, $2, $3, $4)
             ON CONFLICT (validator, origin_domain, source) DO UPDATE SET next_block = EXCLUDED.next_block, updated_at = now()",
        )
        .bind(validator.as_slice())
        .bind(i64::from(origin_domain))
        .bind(source)
        .bind(to_i64("next_block", next_cursor)?)
        .execute(&mut *tx)
        .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn messages_to_sign(
        &self,
        validator: Address,
        destination_domain: u32,
        set_version: u64,
        limit: usize,
    ) -> Result<Vec<(B256, Message)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM bridge.messages m
             JOIN bridge.observations o ON o.message_id = m.id AND o.validator = $1
             WHERE m.destination_domain = $2
               AND NOT EXISTS (SELECT 1 FROM bridge.signatures s WHERE s.message_id = m.id AND s.validator = $1 AND s.set_version = $3)
               AND NOT EXISTS (SELECT 1 FROM bridge.signing_refusals r WHERE r.message_id = m.id AND r.validator = $1)
               AND NOT EXISTS (SELECT 1 FROM bridge.deliveries d WHERE d.message_id = m.id AND d.status = 'delivered')
             ORDER BY m.origin_domain, m.sequence LIMIT $4"
        ))
        .bind(validator.as_slice())
        .bind(i64::from(destination_domain))
        .bind(to_i64("set_version", set_version)?)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn store_signature(
        &self,
        validator: Address,
        id: B256,
        message: &Message,
        set_version: u64,
        signature: &[u8; 65],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let sequence = to_i64("sequence", message.sequence)?;
        sqlx::query(
            "INSERT INTO bridge.signing_claims (origin_domain, sequence, validator, message_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(i64::from(message.originDomain))
        .bind(sequence)
        .bind(validator.as_slice())
        .bind(id.as_slice())
        .execute(&mut *tx)
        .await?;
        let claimed: Vec<u8> = sqlx::query_scalar(
            "SELECT message_id FROM bridge.signing_claims WHERE origin_domain = $1 AND sequence = $2 AND validator = $3 FOR UPDATE",
        )
        .bind(i64::from(message.originDomain))
        .bind(sequence)
        .bind(validator.as_slice())
        .fetch_one(&mut *tx)
        .await?;
        let claimed = b256(&claimed)?;
        if claimed != id {
            return Err(StoreError::Equivocation {
                validator,
                origin_domain: message.originDomain,
                sequence: message.sequence,
                claimed,
                attempted: id,
            });
        }
        // One publication sequence per validator: serialize its signers on an advisory lock.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('bridge.publication:' || encode($1, 'hex'), 0))")
            .bind(validator.as_slice())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO bridge.signatures (message_id, validator, set_version, signature, publication)
             VALUES ($1, $2, $3, $4,
                     (SELECT COALESCE(max(publication), 0) + 1 FROM bridge.signatures WHERE validator = $2))
             ON CONFLICT DO NOTHING",
        )
        .bind(id.as_slice())
        .bind(validator.as_slice())
        .bind(to_i64("set_version", set_version)?)
        .bind(signature.as_slice())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn store_refusal(&self, validator: Address, id: B256) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO bridge.signing_refusals (message_id, validator) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(id.as_slice())
            .bind(validator.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn unpublished(
        &self,
        validator: Address,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Signed>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS}, s.publication, s.set_version, s.signature, o.origin_block, o.origin_tx
             FROM bridge.signatures s
             JOIN bridge.messages m ON m.id = s.message_id
             JOIN bridge.observations o ON o.message_id = s.message_id AND o.validator = s.validator
             WHERE s.validator = $1 AND s.publication > $2
             ORDER BY s.publication LIMIT $3"
        ))
        .bind(validator.as_slice())
        .bind(to_i64("publication", after)?)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let (id, message) = message_from_row(row)?;
                Ok(Signed {
                    publication: u64_of("publication", row.try_get("publication")?)?,
                    id,
                    message,
                    origin_block: u64_of("origin_block", row.try_get("origin_block")?)?,
                    origin_tx: row.try_get("origin_tx")?,
                    set_version: u64_of("set_version", row.try_get("set_version")?)?,
                    signature: row.try_get("signature")?,
                })
            })
            .collect()
    }
}
