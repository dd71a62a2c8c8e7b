//! `advancia-outbox`: services' outbox logs and their dispatcher (ADRs 0019, 0023).
//!
//! A service writes its domain events to an outbox table of its own schema, in the same
//! transaction as the change they describe ([`append`]). Every outbox has one shape:
//!
//! ```sql
//! CREATE SEQUENCE events_seq;
//! CREATE TABLE events (
//!     seq bigint PRIMARY KEY,            -- gap-safe position (advancia_log.append)
//!     id uuid NOT NULL UNIQUE,           -- event id: the bus's and consumers' dedup key
//!     kind text NOT NULL,                -- e.g. payment.status_changed
//!     payload jsonb NOT NULL,            -- self-contained: consumers join nothing
//!     traceparent text,                  -- W3C trace context of the change
//!     created_at timestamptz NOT NULL DEFAULT now());
//! CREATE TRIGGER events_append BEFORE INSERT ON events FOR EACH ROW
//!     EXECUTE FUNCTION advancia_log.append('<schema>.events_seq', '<schema>.events');
//! ```
//!
//! Other services read an outbox as a [`OutboxLog`] through
//! [`advancia_db::follow::Follower`], behind a cursor in their own schema, exactly once.
//! The [`Dispatcher`] is one such follower: it publishes every entry to the event bus as
//! `<subject_prefix>.<kind>` with envelope id `<source>:<id>` and moves its cursor (in
//! `outbox.cursors` of the source's database) only after the bus acknowledged. A crash in
//! between re-publishes under the same ids, which the bus drops within its dedup window.

use std::time::Duration;

use advancia_bus::{Bus, Envelope};
use advancia_db::follow::{BoxError, Cursor, FollowConfig, Follower, Handler, LogSource};
use advancia_db::{Migration, ServiceMigrations};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "outbox",
    migrations: &[
        Migration {
            version: 1,
            name: "cursors",
            sql: include_str!("../migrations/0001_cursors.sql"),
        },
        Migration {
            version: 2,
            name: "follower_cursors",
            sql: include_str!("../migrations/0002_follower_cursors.sql"),
        },
    ],
};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("event bus: {0}")]
    Bus(#[from] advancia_bus::BusError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Follow(#[from] advancia_db::follow::FollowError),
}

/// One service's outbox table (a compile-time constant of the service that owns it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Cursor name and envelope id prefix; by convention the table, e.g. `payments.events`.
    pub name: &'static str,
    /// Schema-qualified table; also the channel its trigger notifies.
    pub table: &'static str,
    /// Subjects are `<subject_prefix>.<kind>`.
    pub subject_prefix: &'static str,
}

/// One outbox entry.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Event {
    pub seq: i64,
    /// The event id as text (a uuid; older logs may use their row id).
    pub id: String,
    pub kind: String,
    pub payload: Value,
    pub traceparent: Option<String>,
    pub created_at: time::OffsetDateTime,
}

/// Appends an event to `source` inside the caller's transaction (the change and its event
/// commit together); returns the event id. Call it last before committing: from here to the
/// commit, other writers of the same outbox wait (see [`advancia_db::log`]).
pub async fn append(
    conn: &mut PgConnection,
    source: &Source,
    kind: &str,
    payload: &Value,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(&format!(
        "INSERT INTO {} (id, kind, payload, traceparent) VALUES ($1, $2, $3, $4)",
        source.table
    ))
    .bind(id)
    .bind(kind)
    .bind(payload)
    // Consumers continue the trace of the request or job that made the change.
    .bind(advancia_telemetry::current_traceparent())
    .execute(conn)
    .await?;
    Ok(id)
}

/// An outbox read by position, in the database `pool` that holds it.
#[derive(Debug, Clone)]
pub struct OutboxLog {
    pool: PgPool,
    source: Source,
}

impl OutboxLog {
    pub fn new(pool: PgPool, source: Source) -> OutboxLog {
        OutboxLog { pool, source }
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The newest position (0 when empty): where a reader that wants only new events starts.
    pub async fn head(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(&format!(
            "SELECT coalesce(max(seq), 0) FROM {}",
            self.source.table
        ))
        .fetch_one(&self.pool)
        .await
    }
}

impl LogSource for OutboxLog {
    type Entry = Event;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn channel(&self) -> &str {
        self.source.table
    }

    async fn read_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, BoxError> {
        Ok(sqlx::query_as(&format!(
            "SELECT seq, id::text AS id, kind, payload, traceparent, created_at FROM {}
              WHERE seq > $1 ORDER BY seq LIMIT $2",
            self.source.table
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    fn position(e: &Event) -> i64 {
        e.seq
    }
}

/// The envelope `e` of `source` is published as.
pub fn envelope(source: &Source, e: &Event) -> Result<Envelope, advancia_bus::BusError> {
    let mut env = Envelope::json(format!("{}.{}", source.subject_prefix, e.kind), &e.payload)?
        .with_id(format!("{}:{}", source.name, e.id));
    if let Some(tp) = &e.traceparent {
        env = env.with_header("traceparent", tp.clone());
    }
    Ok(env)
}

/// Publishes each batch, then lets the follower move the cursor.
struct Publish {
    bus: Bus,
    source: Source,
    published: u64,
}

impl Handler<Event> for Publish {
    async fn handle(&mut self, conn: &mut PgConnection, entries: &[Event]) -> Result<(), BoxError> {
        for e in entries {
            self.bus.publish(envelope(&self.source, e)?).await?;
        }
        let n = i64::try_from(entries.len()).unwrap_or(i64::MAX);
        sqlx::query("UPDATE outbox.cursors SET published = published + $2 WHERE name = $1")
            .bind(self.source.name)
            .bind(n)
            .execute(conn)
            .await?;
        self.published += entries.len() as u64;
        Ok(())
    }
}

/// Publishes services' outboxes to the event bus.
#[derive(Clone)]
pub struct Dispatcher {
    /// Holds the `outbox` schema (the cursors).
    pool: PgPool,
    bus: Bus,
    /// Each source with the database that holds it.
    sources: Vec<(Source, PgPool)>,
    config: FollowConfig,
}

impl Dispatcher {
    /// `pool` holds the `sources` and the `outbox` schema.
    pub fn new(pool: PgPool, bus: Bus, sources: Vec<Source>) -> Self {
        let sources = sources.into_iter().map(|s| (s, pool.clone())).collect();
        Self::over(pool, bus, sources)
    }

    /// `pool` holds the `outbox` schema; each source lives in the database beside it (a
    /// service with a database of its own).
    pub fn over(pool: PgPool, bus: Bus, sources: Vec<(Source, PgPool)>) -> Self {
        Self {
            pool,
            bus,
            sources,
            config: FollowConfig::default(),
        }
    }

    pub fn with_config(mut self, config: FollowConfig) -> Self {
        self.config = config;
        self
    }

    fn follower(&self, source: Source, in_pool: &PgPool) -> Follower<OutboxLog> {
        Follower::new(
            OutboxLog::new(in_pool.clone(), source),
            Cursor::new(self.pool.clone(), "outbox.cursors", source.name),
        )
        .with_config(self.config)
    }

    fn publisher(&self, source: Source) -> Publish {
        Publish {
            bus: self.bus.clone(),
            source,
            published: 0,
        }
    }

    /// Publishes what is pending in every source; returns how many events.
    pub async fn dispatch_once(&self) -> Result<usize, OutboxError> {
        let mut total = 0;
        for (s, in_pool) in &self.sources {
            let mut publish = self.publisher(*s);
            total += self.follower(*s, in_pool).catch_up(&mut publish).await?;
        }
        Ok(total)
    }

    /// Publishes every source as its entries commit (pushed by their notifications), until
    /// `stop` resolves; one task per source.
    pub async fn run(self, stop: impl std::future::Future<Output = ()> + Send + 'static) {
        let (tx, _) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for (s, in_pool) in self.sources.clone() {
            let follower = self.follower(s, &in_pool);
            let mut publish = self.publisher(s);
            let mut stopped = tx.subscribe();
            tasks.push(tokio::spawn(async move {
                follower
                    .run(&mut publish, async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await;
            }));
        }
        stop.await;
        let _ = tx.send(true);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}
