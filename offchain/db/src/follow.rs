//! The one way to follow another component's append-only log (ADR 0023).
//!
//! A [`LogSource`] is a log whose positions become visible in order (see [`crate::log`], or
//! the indexer's `seq`) and whose writers `NOTIFY` a channel on commit. A [`Follower`] keeps
//! the reader's position in a cursor table of the *reader's* schema, in the reader's own
//! database, and hands each batch to a handler inside the transaction that moves the
//! cursor: effects written in that transaction happen exactly once, whatever crashes.
//! Effects outside it (a bus publish, a ledger call) happen at least once and must be
//! idempotent; the cursor then only moves once they succeeded.
//!
//! [`Follower::run`] is pushed, not polled: it `LISTEN`s on the source's database before
//! reading, so a commit after the read wakes it, and re-reads every `recheck` in case a
//! notification was lost with a dropped connection.
//!
//! The cursor table has the shape `(name text PRIMARY KEY, position bigint NOT NULL
//! DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now())`; its row is locked while a
//! batch is handled, so replicas of a reader take turns instead of racing.

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};

/// A boxed error from a source or a handler.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cursor database: {0}")]
    Cursor(#[from] sqlx::Error),
    #[error("reading the followed log: {0}")]
    Source(#[source] BoxError),
    #[error("handling entries after position {after}: {source}")]
    Handler {
        after: i64,
        #[source]
        source: BoxError,
    },
}

/// An append-only log read by position.
pub trait LogSource: Send + Sync {
    type Entry: Send + Sync;

    /// The database the log lives in (the follower `LISTEN`s there).
    fn pool(&self) -> &PgPool;

    /// The channel its writers notify on commit.
    fn channel(&self) -> &str;

    /// Entries after `after` (exclusive), by position, at most `limit`.
    fn read_after(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Self::Entry>, BoxError>> + Send;

    fn position(entry: &Self::Entry) -> i64;
}

/// Where a follower keeps its position: a row `name` of `table` (the reader's own
/// schema-qualified cursor table, a compile-time constant) in the reader's database.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub pool: PgPool,
    pub table: &'static str,
    pub name: String,
}

impl Cursor {
    pub fn new(pool: PgPool, table: &'static str, name: impl Into<String>) -> Cursor {
        Cursor {
            pool,
            table,
            name: name.into(),
        }
    }

    /// The position handled so far (0 before the first batch).
    pub async fn position(&self) -> Result<i64, sqlx::Error> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT position FROM {} WHERE name = $1",
            self.table
        ))
        .bind(&self.name)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(0))
    }

    /// Moves the cursor to `position` unless it is already there or further (a reader
    /// that starts "from now" instead of from the beginning of the log).
    pub async fn advance_to(&self, position: i64) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "INSERT INTO {0} (name, position) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET position = greatest({0}.position, $2),
                                              updated_at = now()",
            self.table
        ))
        .bind(&self.name)
        .bind(position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// How a follower reads and waits.
#[derive(Debug, Clone, Copy)]
pub struct FollowConfig {
    /// Entries per batch (and per handler call).
    pub batch: u32,
    /// Re-read this often without a notification.
    pub recheck: Duration,
    /// First wait after an error; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig {
            batch: 500,
            recheck: Duration::from_secs(5),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Reads a [`LogSource`] behind a [`Cursor`].
pub struct Follower<S> {
    source: S,
    cursor: Cursor,
    config: FollowConfig,
}

impl<S: LogSource> Follower<S> {
    pub fn new(source: S, cursor: Cursor) -> Follower<S> {
        Follower {
            source,
            cursor,
            config: FollowConfig::default(),
        }
    }

    pub fn with_config(mut self, config: FollowConfig) -> Follower<S> {
        self.config = config;
        self
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// Handles the next batch: locks the cursor row, reads the entries after it, calls
    /// `handle` with them inside the cursor's transaction, moves the cursor to the last one
    /// and commits. Returns how many entries were handled (0: caught up).
    pub async fn step<H>(&self, handle: &mut H) -> Result<usize, FollowError>
    where
        H: Handler<S::Entry>,
    {
        let table = self.cursor.table;
        let mut tx = self.cursor.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO {table} (name) VALUES ($1) ON CONFLICT DO NOTHING"
        ))
        .bind(&self.cursor.name)
        .execute(&mut *tx)
        .await?;
        let after: i64 = sqlx::query_scalar(&format!(
            "SELECT position FROM {table} WHERE name = $1 FOR UPDATE"
        ))
        .bind(&self.cursor.name)
        .fetch_one(&mut *tx)
        .await?;
        let entries = self
            .source
            .read_after(after, self.config.batch.max(1))
            .await
            .map_err(FollowError::Source)?;
        let Some(last) = entries.last().map(S::position) else {
            return Ok(0);
        };
        handle
            .handle(&mut tx, &entries)
            .await
            .map_err(|source| FollowError::Handler { after, source })?;
        sqlx::query(&format!(
            "UPDATE {table} SET position = $2, updated_at = now() WHERE name = $1"
        ))
        .bind(&self.cursor.name)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(entries.len())
    }

    /// Steps until a batch comes back short; returns how many entries were handled.
    pub async fn catch_up<H>(&self, handle: &mut H) -> Result<usize, FollowError>
    where
        H: Handler<S::Entry>,
    {
        let mut total = 0;
        loop {
            let n = self.step(handle).await?;
            total += n;
            if n < self.config.batch.max(1) as usize {
                return Ok(total);
            }
        }
    }

    /// Follows the log until `stop` resolves: catches up, then waits for a commit
    /// notification (or `recheck`) and catches up again. Errors are logged and retried
    /// with backoff; the cursor never moves past an entry whose handler failed.
    pub async fn run<H>(&self, handle: &mut H, stop: impl Future<Output = ()>)
    where
        H: Handler<S::Entry>,
    {
        tokio::pin!(stop);
        let mut listener: Option<PgListener> = None;
        let mut backoff = self.config.backoff;
        loop {
            if listener.is_none() {
                // Listen before reading: whatever commits after this is either in the
                // read or wakes us afterwards.
                match self.listen().await {
                    Ok(l) => listener = Some(l),
                    Err(e) => {
                        tracing::warn!(cursor = %self.cursor.name, error = %e,
                            "follower cannot listen; reading on the recheck timer");
                    }
                }
            }
            let wait = match self.catch_up(handle).await {
                Ok(_) => {
                    backoff = self.config.backoff;
                    None
                }
                Err(e) => {
                    tracing::warn!(cursor = %self.cursor.name, error = %e, "follower step failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    Some(wait)
                }
            };
            let woken = async {
                match (wait, listener.as_mut()) {
                    (Some(wait), _) => tokio::time::sleep(wait).await,
                    (None, Some(l)) => {
                        match tokio::time::timeout(self.config.recheck, l.try_recv()).await {
                            // A notification, or the recheck timer: read again.
                            Ok(Ok(Some(_))) | Err(_) => {}
                            // The connection dropped (it reconnects on the next call) or
                            // failed: listen afresh, read meanwhile.
                            Ok(Ok(None)) | Ok(Err(_)) => return true,
                        }
                    }
                    (None, None) => tokio::time::sleep(self.config.recheck).await,
                }
                false
            };
            tokio::select! {
                _ = &mut stop => return,
                relisten = woken => if relisten { listener = None; },
            }
        }
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let mut l = PgListener::connect_with(self.source.pool()).await?;
        l.listen(self.source.channel()).await?;
        Ok(l)
    }
}

/// What a follower does with a batch, inside the transaction that moves its cursor
/// (`conn` is that transaction, in the reader's database).
pub trait Handler<E>: Send {
    fn handle(
        &mut self,
        conn: &mut PgConnection,
        entries: &[E],
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}
