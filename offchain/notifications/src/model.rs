//! Rows and requests.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::NotificationError;

/// How a notification reaches someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    InApp,
    Webhook,
    Email,
    Sms,
    Push,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 5] = [
        ChannelKind::InApp,
        ChannelKind::Webhook,
        ChannelKind::Email,
        ChannelKind::Sms,
        ChannelKind::Push,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::InApp => "in_app",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
            ChannelKind::Sms => "sms",
            ChannelKind::Push => "push",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Channels that interrupt a person and so wait out quiet hours (machines and the
    /// in-app inbox do not sleep).
    pub fn respects_quiet_hours(self) -> bool {
        matches!(
            self,
            ChannelKind::Email | ChannelKind::Sms | ChannelKind::Push
        )
    }
}

/// Event types producers use (free-form types are allowed too; these are the saga's).
pub struct EventType;

impl EventType {
    pub const PAYMENT_CONFIRMED: &'static str = "payment.confirmed";
    /// The payment can no longer be rolled back: the one to ship goods or close a bill on.
    pub const PAYMENT_FINALIZED: &'static str = "payment.finalized";
    pub const PAYMENT_REFUNDED: &'static str = "payment.refunded";
    pub const ESCROW_RELEASED: &'static str = "escrow.released";
    /// From the KYC service's outbox ([`crate::events`]).
    pub const KYC_DECIDED: &'static str = "kyc.decided";
    /// The facility-side view of the payment saga, for the facility's billing staff.
    pub const FACILITY_PAYMENT_RECEIVED: &'static str = "facility.payment_received";
    pub const FACILITY_PAYMENT_FINALIZED: &'static str = "facility.payment_finalized";
    pub const FACILITY_REFUND_ISSUED: &'static str = "facility.refund_issued";
    pub const FACILITY_ESCROW_RELEASED: &'static str = "facility.escrow_released";
    /// From the facilities service's outbox, for the facility's compliance staff.
    pub const CERTIFICATION_EXPIRING: &'static str = "facility.certification_expiring";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Normal,
    /// Delivered during quiet hours too (security alerts, failed payments).
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Template {
    pub key: String,
    pub description: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub version: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TemplateInput {
    pub key: String,
    #[serde(default)]
    pub description: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preferences {
    pub user_id: Uuid,
    pub channels: Vec<ChannelKind>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub push_token: Option<String>,
    /// IANA time zone name (`Europe/Paris`); quiet hours are wall-clock times there.
    pub time_zone: String,
    /// `HH:MM`, local; both or neither. The window may cross midnight (22:00–07:00).
    pub quiet_start: Option<String>,
    pub quiet_end: Option<String>,
}

impl Preferences {
    pub fn defaults(user_id: Uuid) -> Preferences {
        Preferences {
            user_id,
            channels: vec![ChannelKind::InApp, ChannelKind::Webhook],
            email: None,
            phone: None,
            push_token: None,
            time_zone: "UTC".into(),
            quiet_start: None,
            quiet_end: None,
        }
    }
}

/// A full replacement of a user's preferences (PUT semantics).
#[derive(Debug, Clone, Deserialize)]
pub struct PreferencesUpdate {
    pub channels: Vec<ChannelKind>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub push_token: Option<String>,
    pub time_zone: Option<String>,
    pub quiet_start: Option<String>,
    pub quiet_end: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Notification {
    pub id: Uuid,
    pub user_id: Uuid,
    pub event_type: String,
    pub template_key: Option<String>,
    pub priority: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub data: serde_json::Value,
    pub source_key: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub read_at: Option<OffsetDateTime>,
    pub created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

pub(crate) const NOTIFICATION_COLS: &str = "id, user_id, event_type, template_key, priority, subject, body_text, body_html, data, source_key, read_at, created_by, created_at";

/// What to send to whom.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SendRequest {
    pub user_id: Uuid,
    pub event_type: String,
    /// Template to render; default: the template keyed by `event_type`, if there is one.
    pub template: Option<String>,
    /// Literal subject and text when there is no template (not rendered).
    pub subject: Option<String>,
    pub body: Option<String>,
    /// Template variables; also the webhook payload's `data`.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Only these channels (still intersected with the user's preferences).
    pub channels: Option<Vec<ChannelKind>>,
    #[serde(default)]
    pub priority: Priority,
    /// One notification per key, however often the request is repeated.
    pub source_key: Option<String>,
    pub created_by: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub notification_id: Uuid,
    pub channel: String,
    pub destination: String,
    pub idempotency_key: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub dead_at: Option<OffsetDateTime>,
}

pub(crate) const DELIVERY_COLS: &str = "id, notification_id, channel, destination, idempotency_key, status, attempts, max_attempts, next_attempt_at, last_error, provider_id, delivered_at, dead_at";

/// A dead-lettered delivery with what it was about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub user_id: Uuid,
    pub event_type: String,
}

/// A notification and the deliveries it queued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sent {
    pub notification: Notification,
    pub deliveries: Vec<Delivery>,
    /// `false` when the source key had been used: this is the earlier notification.
    pub created: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub user_id: Uuid,
    pub url: String,
    /// Shown once, on creation; `None` in listings.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A page of a user's notifications, newest first.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub user_id: Uuid,
    pub unread_only: bool,
    /// `(created_at, id)` of the last item of the previous page.
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

pub(crate) fn parse_channels(v: &[String]) -> Result<Vec<ChannelKind>, NotificationError> {
    v.iter()
        .map(|s| {
            ChannelKind::parse(s)
                .ok_or_else(|| NotificationError::Corrupt(format!("unknown channel {s}")))
        })
        .collect()
}
