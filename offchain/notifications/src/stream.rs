//! A user's in-app inbox as a live stream: rows after a position, then each new row as
//! its delivery commits, in order, never twice (the pattern of the indexer's stream).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::Stream;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::NotificationError;
use crate::channels::INBOX_CHANNEL;
use crate::model::{NOTIFICATION_COLS, Notification};

/// Re-read even without a notification (a lost NOTIFY, a reconnect).
const RECHECK: Duration = Duration::from_secs(15);
const PAGE: i64 = 100;

/// One inbox entry: its stream position and the notification.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InboxItem {
    pub seq: i64,
    pub notification: Notification,
}

/// Highest inbox position of `user` (0 when empty): where a live-only stream starts.
pub async fn head(pool: &PgPool, user: Uuid) -> Result<i64, NotificationError> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(max(seq), 0) FROM notifications.inbox WHERE user_id = $1",
    )
    .bind(user)
    .fetch_one(pool)
    .await?)
}

async fn page_after(
    pool: &PgPool,
    user: Uuid,
    after: i64,
) -> Result<Vec<InboxItem>, NotificationError> {
    let cols = NOTIFICATION_COLS
        .split(", ")
        .map(|c| format!("n.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<(i64, sqlx::types::Json<serde_json::Value>)> = sqlx::query_as(&format!(
        "SELECT i.seq, row_to_json(x) FROM notifications.inbox i
           JOIN LATERAL (SELECT {cols} FROM notifications.notifications n
                          WHERE n.id = i.notification_id) x ON true
          WHERE i.user_id = $1 AND i.seq > $2 ORDER BY i.seq LIMIT $3"
    ))
    .bind(user)
    .bind(after)
    .bind(PAGE)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(seq, json)| {
            serde_json::from_value(json.0)
                .map(|notification| InboxItem { seq, notification })
                .map_err(|e| NotificationError::Corrupt(format!("inbox row {seq}: {e}")))
        })
        .collect()
}

struct State {
    pool: PgPool,
    user: Uuid,
    listener: Option<PgListener>,
    position: i64,
    buf: VecDeque<InboxItem>,
    more: bool,
}

/// Entries of `user`'s inbox after position `after`, then live ones. Ends only on a
/// database error (the item is that error).
pub fn inbox(
    pool: PgPool,
    user: Uuid,
    after: i64,
) -> impl Stream<Item = Result<InboxItem, NotificationError>> + Send + 'static {
    let state = State {
        pool,
        user,
        listener: None,
        position: after,
        buf: VecDeque::new(),
        more: true,
    };
    futures_util::stream::try_unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.buf.pop_front() {
                return Ok(Some((item, st)));
            }
            match st.listener.as_mut() {
                None => {
                    // Listen before the first read: later commits are in it or wake us.
                    let mut l = PgListener::connect_with(&st.pool).await?;
                    l.listen(INBOX_CHANNEL).await?;
                    st.listener = Some(l);
                }
                Some(l) if !st.more => {
                    let user = st.user.to_string();
                    let deadline = tokio::time::Instant::now() + RECHECK;
                    // Wake for this user's rows only; others' notifications are skipped.
                    loop {
                        match tokio::time::timeout_at(deadline, l.try_recv()).await {
                            Ok(Ok(Some(n))) if n.payload() != user => continue,
                            Ok(r) => {
                                r?;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some(_) => {}
            }
            let page = page_after(&st.pool, st.user, st.position).await?;
            st.more = page.len() == PAGE as usize;
            if let Some(last) = page.last() {
                st.position = last.seq;
            }
            st.buf.extend(page);
        }
    })
}
