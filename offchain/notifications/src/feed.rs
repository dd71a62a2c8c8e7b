//! Another service's append-only log, followed by id behind a named cursor in
//! `notifications.cursors`. Each step reads the rows after the cursor, writes their
//! notifications and moves the cursor in one transaction, so every row produces its
//! notifications exactly once whatever crashes; the cursor row's lock keeps two readers off
//! the same range, and `source_key`s make any overlap harmless anyway.

use std::future::Future;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;

use crate::NotificationError;
use crate::model::SendRequest;
use crate::service::NotificationService;

/// One source log: how to read it and what each row calls for.
pub trait Feed: Send + Sync {
    /// The cursor's name in `notifications.cursors` (by convention the source table).
    const CURSOR: &'static str;
    /// Rows with id > `$1`, ordered by id, at most `$2`.
    const QUERY: &'static str;
    type Row: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin;

    fn id(row: &Self::Row) -> i64;

    /// The W3C trace context the source recorded with the row, if any: the notifications
    /// (and, through them, their deliveries) continue that trace.
    fn traceparent(_row: &Self::Row) -> Option<&str> {
        None
    }

    /// The notifications `row` calls for (none, or one per recipient), read inside the
    /// step's transaction.
    fn requests(
        &self,
        conn: &mut PgConnection,
        row: &Self::Row,
    ) -> impl Future<Output = Result<Vec<SendRequest>, NotificationError>> + Send;
}

#[derive(Clone)]
pub struct FeedReader<F> {
    pool: PgPool,
    notifications: NotificationService,
    feed: F,
}

impl<F: Feed> FeedReader<F> {
    pub fn with(notifications: NotificationService, feed: F) -> FeedReader<F> {
        FeedReader {
            pool: notifications.pool().clone(),
            notifications,
            feed,
        }
    }

    /// Handles up to `limit` rows after the cursor; returns how many notifications it created.
    pub async fn step(&self, limit: u32) -> Result<usize, NotificationError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO notifications.cursors (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(F::CURSOR)
            .execute(&mut *tx)
            .await?;
        let position: i64 = sqlx::query_scalar(
            "SELECT position FROM notifications.cursors WHERE name = $1 FOR UPDATE",
        )
        .bind(F::CURSOR)
        .fetch_one(&mut *tx)
        .await?;
        let rows: Vec<F::Row> = sqlx::query_as(F::QUERY)
            .bind(position)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&mut *tx)
            .await?;
        let Some(last) = rows.last().map(F::id) else {
            return Ok(0);
        };
        let mut created = 0;
        for row in &rows {
            let span = tracing::info_span!(
                "feed_row",
                feed = F::CURSOR,
                id = F::id(row),
                traceparent = tracing::field::Empty
            );
            if let Some(tp) = F::traceparent(row) {
                span.record("traceparent", tp);
            }
            async {
                for req in self.feed.requests(&mut tx, row).await? {
                    if self.notifications.send_in(&mut tx, &req).await?.created {
                        created += 1;
                    }
                }
                Ok::<_, NotificationError>(())
            }
            .instrument(span)
            .await?;
        }
        sqlx::query(
            "UPDATE notifications.cursors SET position = $2, updated_at = now() WHERE name = $1",
        )
        .bind(F::CURSOR)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Steps until caught up; then the caller sleeps and calls again.
    pub async fn catch_up(&self, batch: u32) -> Result<usize, NotificationError> {
        let mut total = 0;
        loop {
            let before: i64 = self.position().await?;
            total += self.step(batch).await?;
            if self.position().await? == before {
                return Ok(total);
            }
        }
    }

    pub async fn position(&self) -> Result<i64, NotificationError> {
        Ok(
            sqlx::query_scalar("SELECT position FROM notifications.cursors WHERE name = $1")
                .bind(F::CURSOR)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }
}

/// Staff members (their user ids) of the facility whose 32-byte registry id is `chain_id_hex`
/// holding any of `roles`. Facilities map their uuid to the registry id as the uuid's 16
/// bytes then 16 zero bytes; any other id (a facility registered on chain only) has no staff
/// here. Empty when the facilities schema is not in this database.
pub(crate) async fn facility_staff(
    conn: &mut PgConnection,
    chain_id_hex: &str,
    roles: &[&str],
) -> Result<Vec<uuid::Uuid>, NotificationError> {
    let Some(uuid) = chain_id_hex
        .strip_suffix(&"0".repeat(32))
        .and_then(|h| uuid::Uuid::try_parse(h).ok())
    else {
        return Ok(Vec::new());
    };
    staff_with_roles(conn, uuid, roles).await
}

/// Active staff of facility `facility` linked to a user and holding any of `roles`.
pub(crate) async fn staff_with_roles(
    conn: &mut PgConnection,
    facility: uuid::Uuid,
    roles: &[&str],
) -> Result<Vec<uuid::Uuid>, NotificationError> {
    let present: bool = sqlx::query_scalar("SELECT to_regclass('facilities.staff') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !present {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(
        "SELECT user_id FROM facilities.staff
          WHERE facility_id = $1 AND active AND user_id IS NOT NULL AND roles && $2
          ORDER BY user_id",
    )
    .bind(facility)
    .bind(roles)
    .fetch_all(&mut *conn)
    .await?)
}
