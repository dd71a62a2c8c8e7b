//! The facilities service's outbox (`facilities.events`) → notifications: each expiring
//! certification tells the facility's compliance staff, exactly once per outbox row.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::NotificationError;
use crate::feed::{Feed, FeedReader, staff_with_roles};
use crate::model::{EventType, Priority, SendRequest};
use crate::service::NotificationService;

/// Facility staff roles told about certifications.
pub const COMPLIANCE_ROLES: [&str; 3] = ["admin", "compliance", "manager"];

#[derive(sqlx::FromRow)]
pub struct EventRow {
    id: i64,
    facility_id: Uuid,
    kind: String,
    payload: Value,
}

#[derive(Clone, Copy, Default)]
pub struct FacilityFeed;

pub type FacilityEvents = FeedReader<FacilityFeed>;

impl FeedReader<FacilityFeed> {
    pub fn new(notifications: NotificationService) -> FacilityEvents {
        FeedReader::with(notifications, FacilityFeed)
    }
}

impl Feed for FacilityFeed {
    const CURSOR: &'static str = "facilities.events";
    const QUERY: &'static str = "SELECT id, facility_id, kind, payload FROM facilities.events
                                  WHERE id > $1 ORDER BY id LIMIT $2";
    type Row = EventRow;

    fn id(row: &EventRow) -> i64 {
        row.id
    }

    async fn requests(
        &self,
        conn: &mut PgConnection,
        row: &EventRow,
    ) -> Result<Vec<SendRequest>, NotificationError> {
        // The facilities service's kind name for it (its `event_kind` module).
        if row.kind != "facility.certification_expiring" {
            return Ok(Vec::new());
        }
        let Value::Object(_) = &row.payload else {
            return Err(NotificationError::Corrupt(format!(
                "facilities.events {}: payload is not an object",
                row.id
            )));
        };
        let staff = staff_with_roles(conn, row.facility_id, &COMPLIANCE_ROLES).await?;
        Ok(staff
            .into_iter()
            .map(|user| SendRequest {
                user_id: user,
                event_type: EventType::CERTIFICATION_EXPIRING.to_owned(),
                data: row.payload.clone(),
                // Interrupts quiet hours only when already lapsed.
                priority: if row.payload["days_left"].as_i64().is_some_and(|d| d < 0) {
                    Priority::High
                } else {
                    Priority::Normal
                },
                source_key: Some(format!("facilities.events:{}:{user}", row.id)),
                ..SendRequest::default()
            })
            .collect())
    }
}
