//! KYC decisions → `kyc.decided` notifications. The KYC service appends each decision to
//! `kyc.decision_events` in the transaction of the state change; this reader follows that
//! log by id behind its own cursor in `notifications.cursors` and writes the notifications
//! and the new cursor position in one transaction (exactly once per decision, like the
//! payment reader in [`crate::saga`]; the `kyc:<id>` source key makes an overlap harmless).

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::NotificationError;
use crate::model::{EventType, Priority, SendRequest};
use crate::service::NotificationService;

pub const CURSOR: &str = "kyc.decision_events";

#[derive(Clone)]
pub struct KycEvents {
    pool: PgPool,
    notifications: NotificationService,
}

#[derive(sqlx::FromRow)]
struct DecisionRow {
    id: i64,
    verification_id: Uuid,
    user_id: Uuid,
    decision: String,
    level: Option<i16>,
    reason: Option<String>,
    expires_at: Option<OffsetDateTime>,
    at: OffsetDateTime,
}

impl KycEvents {
    pub fn new(notifications: NotificationService) -> KycEvents {
        KycEvents {
            pool: notifications.pool().clone(),
            notifications,
        }
    }

    /// Handles up to `limit` decisions after the cursor; returns how many notifications it
    /// created.
    pub async fn step(&self, limit: u32) -> Result<usize, NotificationError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO notifications.cursors (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(CURSOR)
            .execute(&mut *tx)
            .await?;
        let position: i64 = sqlx::query_scalar(
            "SELECT position FROM notifications.cursors WHERE name = $1 FOR UPDATE",
        )
        .bind(CURSOR)
        .fetch_one(&mut *tx)
        .await?;
        let rows: Vec<DecisionRow> = sqlx::query_as(
            "SELECT id, verification_id, user_id, decision, level, reason, expires_at, at
               FROM kyc.decision_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(position)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(0);
        };
        let mut created = 0;
        for row in &rows {
            let req = SendRequest {
                user_id: row.user_id,
                event_type: EventType::KYC_DECIDED.to_owned(),
                data: json!({
                    "verification_id": row.verification_id,
                    "decision": row.decision,
                    "level": row.level,
                    "reason": row.reason,
                    "expires_at": row.expires_at.map(OffsetDateTime::unix_timestamp),
                    "at": row.at.unix_timestamp(),
                }),
                // A decision about one's identity is worth waking up for only when it
                // blocks payments; quiet hours apply otherwise.
                priority: Priority::Normal,
                source_key: Some(format!("kyc:{}", row.id)),
                ..SendRequest::default()
            };
            if self.notifications.send_in(&mut tx, &req).await?.created {
                created += 1;
            }
        }
        sqlx::query(
            "UPDATE notifications.cursors SET position = $2, updated_at = now() WHERE name = $1",
        )
        .bind(CURSOR)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Steps until caught up.
    pub async fn catch_up(&self, batch: u32) -> Result<usize, NotificationError> {
        let mut total = 0;
        loop {
            let before = self.position().await?;
            total += self.step(batch).await?;
            if self.position().await? == before {
                return Ok(total);
            }
        }
    }

    pub async fn position(&self) -> Result<i64, NotificationError> {
        Ok(
            sqlx::query_scalar("SELECT position FROM notifications.cursors WHERE name = $1")
                .bind(CURSOR)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }
}
