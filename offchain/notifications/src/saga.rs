//! Payment-saga events → notifications. The payment service appends every status change,
//! refund and escrow release to `payments.payment_status_history`; this [`Feed`] follows
//! that log (exactly once, see [`crate::feed`]) and notifies the payer and the facility's
//! billing staff (`payments:<id>` and `payments:<id>:staff:<user>` source keys).

use serde_json::{Value, json};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::NotificationError;
use crate::feed::{Feed, FeedReader, facility_staff};
use crate::model::{EventType, Priority, SendRequest};
use crate::service::NotificationService;

pub const CURSOR: &str = "payments.payment_status_history";
/// Base58 of the all-zero key: the payment service's mint for native SOL.
const NATIVE_SOL: &str = "11111111111111111111111111111111";
/// Facility staff roles told about money reaching or leaving the facility.
pub const BILLING_ROLES: [&str; 4] = ["admin", "billing", "finance", "manager"];

#[derive(sqlx::FromRow)]
pub struct HistoryRow {
    id: i64,
    payment_id: Uuid,
    status: String,
    detail: Value,
    at: OffsetDateTime,
    created_by: Uuid,
    kind: String,
    facility_id: String,
    mint: String,
    amount: String,
    label: String,
    signature: Option<String>,
    refunded: String,
    released: String,
    traceparent: Option<String>,
}

/// The payment status history as a [`Feed`].
#[derive(Clone, Copy, Default)]
pub struct PaymentFeed;

pub type PaymentEvents = FeedReader<PaymentFeed>;

impl FeedReader<PaymentFeed> {
    pub fn new(notifications: NotificationService) -> PaymentEvents {
        FeedReader::with(notifications, PaymentFeed)
    }
}

impl Feed for PaymentFeed {
    const CURSOR: &'static str = CURSOR;
    const QUERY: &'static str =
        "SELECT h.id, h.payment_id, h.status, h.detail, h.at, p.created_by, p.kind,
                p.facility_id, p.mint, p.amount::text AS amount, p.label, p.signature,
                p.refunded::text AS refunded, p.released::text AS released,
                h.traceparent
           FROM payments.payment_status_history h
           JOIN payments.payments p ON p.id = h.payment_id
          WHERE h.id > $1 ORDER BY h.id LIMIT $2";
    type Row = HistoryRow;

    fn id(row: &HistoryRow) -> i64 {
        row.id
    }

    fn traceparent(row: &HistoryRow) -> Option<&str> {
        row.traceparent.as_deref()
    }

    async fn requests(
        &self,
        conn: &mut PgConnection,
        row: &HistoryRow,
    ) -> Result<Vec<SendRequest>, NotificationError> {
        let Some((payer_event, staff_event, data)) = event_of(row) else {
            return Ok(Vec::new());
        };
        let mut out = vec![SendRequest {
            user_id: row.created_by,
            event_type: payer_event.to_owned(),
            data: data.clone(),
            priority: Priority::Normal,
            source_key: Some(format!("payments:{}", row.id)),
            ..SendRequest::default()
        }];
        for user in facility_staff(conn, &row.facility_id, &BILLING_ROLES).await? {
            out.push(SendRequest {
                user_id: user,
                event_type: staff_event.to_owned(),
                data: data.clone(),
                priority: Priority::Normal,
                source_key: Some(format!("payments:{}:staff:{user}", row.id)),
                ..SendRequest::default()
            });
        }
        Ok(out)
    }
}

/// The event types (payer's, staff's) and template data a history row calls for, if any:
/// the first move out of `pending` into confirmed or finalized (a payment seen straight as
/// finalized skips `confirmed`), and the refund and release entries.
fn event_of(row: &HistoryRow) -> Option<(&'static str, &'static str, Value)> {
    let event = row.detail.get("event").and_then(Value::as_str);
    let from = row.detail.get("from").and_then(Value::as_str);
    let (payer_event, staff_event) = match (event, row.status.as_str(), from) {
        (Some("refunded"), _, _) => (
            EventType::PAYMENT_REFUNDED,
            EventType::FACILITY_REFUND_ISSUED,
        ),
        (Some("escrow_released"), _, _) => (
            EventType::ESCROW_RELEASED,
            EventType::FACILITY_ESCROW_RELEASED,
        ),
        (None, "confirmed" | "finalized", Some("pending")) => (
            EventType::PAYMENT_CONFIRMED,
            EventType::FACILITY_PAYMENT_RECEIVED,
        ),
        _ => return None,
    };
    let (asset, decimals) = if row.mint == NATIVE_SOL {
        ("SOL".to_owned(), Some(9))
    } else {
        (format!("base units of {}", row.mint), None)
    };
    let shown = |base: &str| match decimals {
        Some(d) => base
            .parse::<u64>()
            .map_or_else(|_| base.to_owned(), |v| format_units(v, d)),
        None => base.to_owned(),
    };
    let amount_in = |key: &str, fallback: &str| {
        row.detail
            .get(key)
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
            .unwrap_or_else(|| fallback.to_owned())
    };
    let data = json!({
        "payment_id": row.payment_id,
        "kind": row.kind,
        "status": row.status,
        "facility_id": row.facility_id,
        "label": row.label,
        "asset": asset,
        "mint": row.mint,
        "amount": shown(&row.amount),
        "amount_base_units": row.amount,
        "signature": row.detail.get("signature").and_then(Value::as_str)
            .or(row.signature.as_deref()).unwrap_or(""),
        "refunded": shown(&amount_in("amount", &row.refunded)),
        "released": shown(&amount_in("amount", &row.released)),
        "at": row.at.unix_timestamp(),
    });
    Some((payer_event, staff_event, data))
}

/// Base units as a decimal with `decimals` places, trailing zeros trimmed.
pub fn format_units(amount: u64, decimals: u8) -> String {
    let scale = 10u128.pow(u32::from(decimals));
    let (whole, frac) = (u128::from(amount) / scale, u128::from(amount) % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = usize::from(decimals));
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(format_units(1_500_000_000, 9), "1.5");
        assert_eq!(format_units(2_000_000_000, 9), "2");
        assert_eq!(format_units(1, 9), "0.000000001");
        assert_eq!(format_units(u64::MAX, 0), u64::MAX.to_string());
    }
}
