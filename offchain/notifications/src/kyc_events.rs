//! KYC decisions → `kyc.decided` notifications. The KYC service appends each decision to
//! `kyc.decision_events` in the transaction of the state change; this [`Feed`] follows that
//! log (exactly once per decision, see [`crate::feed`]; `kyc:<id>` source keys).

use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::NotificationError;
use crate::feed::{Feed, FeedReader};
use crate::model::{EventType, Priority, SendRequest};
use crate::service::NotificationService;

pub const CURSOR: &str = "kyc.decision_events";

#[derive(sqlx::FromRow)]
pub struct DecisionRow {
    id: i64,
    verification_id: Uuid,
    user_id: Uuid,
    decision: String,
    level: Option<i16>,
    reason: Option<String>,
    expires_at: Option<OffsetDateTime>,
    at: OffsetDateTime,
}

#[derive(Clone, Copy, Default)]
pub struct KycFeed;

pub type KycEvents = FeedReader<KycFeed>;

impl FeedReader<KycFeed> {
    pub fn new(notifications: NotificationService) -> KycEvents {
        FeedReader::with(notifications, KycFeed)
    }
}

impl Feed for KycFeed {
    const CURSOR: &'static str = CURSOR;
    const QUERY: &'static str =
        "SELECT id, verification_id, user_id, decision, level, reason, expires_at, at
           FROM kyc.decision_events WHERE id > $1 ORDER BY id LIMIT $2";
    type Row = DecisionRow;

    fn id(row: &DecisionRow) -> i64 {
        row.id
    }

    async fn requests(
        &self,
        _conn: &mut PgConnection,
        row: &DecisionRow,
    ) -> Result<Vec<SendRequest>, NotificationError> {
        Ok(vec![SendRequest {
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
            // Quiet hours apply: a decision is not urgent enough to wake anyone.
            priority: Priority::Normal,
            source_key: Some(format!("kyc:{}", row.id)),
            ..SendRequest::default()
        }])
    }
}
