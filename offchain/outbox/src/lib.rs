//! `advancia-outbox`: the dispatcher of ADR 0019. Services write events to an outbox
//! table in the same transaction as their change (`facilities.events`, ...); this crate
//! publishes those rows to the event bus in id order and remembers how far it got in
//! `outbox.cursors`.
//!
//! Delivery is at-least-once: a crash between publishing and committing the cursor
//! re-publishes the same rows under the same envelope ids (`<source>:<row id>`), which
//! the bus drops as duplicates within its dedup window. The cursor row is locked while a
//! batch is published, so several dispatcher replicas take turns instead of racing.
//!
//! Row ids come from a sequence, and a transaction holding a lower id can commit after
//! one holding a higher id; a row is only published once it is `lag` old, so such a
//! late commit is not skipped by the cursor (lag > the longest outbox transaction).

use std::time::Duration;

use advancia_bus::{Bus, Envelope};
use advancia_db::{Migration, ServiceMigrations};
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinHandle;

pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "outbox",
    migrations: &[Migration {
        version: 1,
        name: "cursors",
        sql: include_str!("../migrations/0001_cursors.sql"),
    }],
};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("event bus: {0}")]
    Bus(#[from] advancia_bus::BusError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// An outbox table with columns `id bigint` (increasing), `kind text` (becomes the last
/// subject tokens), `payload jsonb` and `created_at timestamptz`.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// Cursor key and envelope id prefix, e.g. `facilities.events`.
    pub name: &'static str,
    /// Schema-qualified table (a compile-time constant, never user input).
    pub table: &'static str,
    /// Subjects are `<subject_prefix>.<kind>`.
    pub subject_prefix: &'static str,
}

/// The facility service's outbox.
pub const FACILITIES: Source = Source {
    name: "facilities.events",
    table: "facilities.events",
    subject_prefix: "events.facilities",
};

#[derive(Clone)]
pub struct Dispatcher {
    pool: PgPool,
    bus: Bus,
    sources: Vec<Source>,
    batch: i64,
    lag: Duration,
}

impl Dispatcher {
    pub fn new(pool: PgPool, bus: Bus, sources: Vec<Source>) -> Self {
        Self {
            pool,
            bus,
            sources,
            batch: 500,
            lag: Duration::from_secs(1),
        }
    }

    pub fn with_lag(mut self, lag: Duration) -> Self {
        self.lag = lag;
        self
    }

    /// Publishes what is pending in every source; returns how many rows.
    pub async fn dispatch_once(&self) -> Result<usize, OutboxError> {
        let mut total = 0;
        for s in &self.sources {
            loop {
                let n = self.dispatch_batch(s).await?;
                total += n;
                if n < usize::try_from(self.batch).unwrap_or(usize::MAX) {
                    break;
                }
            }
        }
        Ok(total)
    }

    async fn dispatch_batch(&self, s: &Source) -> Result<usize, OutboxError> {
        sqlx::query("INSERT INTO outbox.cursors (source) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(s.name)
            .execute(&self.pool)
            .await?;
        let mut tx = self.pool.begin().await?;
        let last: i64 =
            sqlx::query_scalar("SELECT last_id FROM outbox.cursors WHERE source = $1 FOR UPDATE")
                .bind(s.name)
                .fetch_one(&mut *tx)
                .await?;
        let rows: Vec<(i64, String, Value)> = sqlx::query_as(&format!(
            "SELECT id, kind, payload FROM {} WHERE id > $1
               AND created_at < now() - make_interval(secs => $3)
             ORDER BY id LIMIT $2",
            s.table
        ))
        .bind(last)
        .bind(self.batch)
        .bind(self.lag.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        let Some(new_last) = rows.last().map(|r| r.0) else {
            return Ok(0);
        };
        for (id, kind, payload) in &rows {
            let env = Envelope::json(format!("{}.{kind}", s.subject_prefix), payload)?
                .with_id(format!("{}:{id}", s.name));
            self.bus.publish(env).await?;
        }
        sqlx::query(
            "UPDATE outbox.cursors SET last_id = $2, published = published + $3, updated_at = now()
             WHERE source = $1",
        )
        .bind(s.name)
        .bind(new_last)
        .bind(i64::try_from(rows.len()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Dispatches every `every` until the handle is aborted.
    pub fn spawn(self, every: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match self.dispatch_once().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "outbox rows published"),
                    Err(e) => tracing::warn!(error = %e, "outbox dispatch failed"),
                }
            }
        })
    }
}
