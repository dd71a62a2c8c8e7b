//! In-app: the notification enters the user's inbox (idempotent on the notification id)
//! and listeners of [`INBOX_CHANNEL`] wake up (the notify fires at commit).

use sqlx::PgPool;

use super::{BoxFuture, Channel, DeliveryError, Outgoing, Receipt};
use crate::model::ChannelKind;

/// Postgres NOTIFY channel of new inbox rows; the payload is the user id.
pub const INBOX_CHANNEL: &str = "notifications_inbox";

#[derive(Clone)]
pub struct InAppChannel {
    pool: PgPool,
}

impl InAppChannel {
    pub fn new(pool: PgPool) -> InAppChannel {
        InAppChannel { pool }
    }

    async fn store(&self, msg: &Outgoing) -> Result<Receipt, DeliveryError> {
        let n = &msg.notification;
        let fail = |e: sqlx::Error| DeliveryError::Retry(format!("inbox: {e}"));
        let mut tx = self.pool.begin().await.map_err(fail)?;
        sqlx::query(
            "INSERT INTO notifications.inbox (notification_id, user_id) VALUES ($1, $2)
             ON CONFLICT (notification_id) DO NOTHING",
        )
        .bind(n.id)
        .bind(n.user_id)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(INBOX_CHANNEL)
            .bind(n.user_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(Receipt::default())
    }
}

impl Channel for InAppChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::InApp
    }

    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, Result<Receipt, DeliveryError>> {
        Box::pin(self.store(msg))
    }
}
