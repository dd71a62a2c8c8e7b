//! Payment-saga events → notifications. The payment service appends every status change,
//! refund and escrow release to `payments.payment_status_history`; this reader follows
//! that log by its id behind a cursor stored in `notifications.cursors`, and writes the
//! notifications and the new cursor position in one transaction, so each history row
//! produces its notification exactly once whatever crashes (the `payments:<id>` source key
//! makes a second reader's overlap harmless too).

use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use tracing::Instrument;
use uuid::Uuid;

use crate::NotificationError;
use crate::model::{EventType, Priority, SendRequest};
use crate::service::NotificationService;

pub const CURSOR: &str = "payments.payment_status_history";
/// Base58 of the all-zero key: the payment service's mint for native SOL.
const NATIVE_SOL: &str = "11111111111111111111111111111111";

#[derive(Clone)]
pub struct PaymentEvents {
    pool: PgPool,
    notifications: NotificationService,
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
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

impl PaymentEvents {
    pub fn new(notifications: NotificationService) -> PaymentEvents {
        PaymentEvents {
            pool: notifications.pool().clone(),
            notifications,
        }
    }

    /// Handles up to `limit` history rows after the cursor; returns how many notifications
    /// it created.
    pub async fn step(&self, limit: u32) -> Result<usize, NotificationError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO notifications.cursors (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(CURSOR)
            .execute(&mut *tx)
            .await?;
        // Row lock: two readers never process the same range concurrently.
        let position: i64 = sqlx::query_scalar(
            "SELECT position FROM notifications.cursors WHERE name = $1 FOR UPDATE",
        )
        .bind(CURSOR)
        .fetch_one(&mut *tx)
        .await?;
        let rows: Vec<HistoryRow> = sqlx::query_as(
            "SELECT h.id, h.payment_id, h.status, h.detail, h.at, p.created_by, p.kind,
                    p.facility_id, p.mint, p.amount::text AS amount, p.label, p.signature,
                    p.refunded::text AS refunded, p.released::text AS released,
                    h.traceparent
               FROM payments.payment_status_history h
               JOIN payments.payments p ON p.id = h.payment_id
              WHERE h.id > $1 ORDER BY h.id LIMIT $2",
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
            let Some(req) = event_of(row) else { continue };
            // The notification continues the trace of the request that changed the payment.
            let span = tracing::info_span!(
                "payment_event",
                history_id = row.id,
                payment_id = %row.payment_id,
                traceparent = tracing::field::Empty
            );
            if let Some(tp) = &row.traceparent {
                span.record("traceparent", tp.as_str());
            }
            if self
                .notifications
                .send_in(&mut tx, &req)
                .instrument(span)
                .await?
                .created
            {
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
                .bind(CURSOR)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }
}

/// The notification a history row calls for, if any: the first move out of `pending` into
/// confirmed or finalized (a payment seen straight as finalized skips `confirmed`), and the
/// refund and release entries.
fn event_of(row: &HistoryRow) -> Option<SendRequest> {
    let event = row.detail.get("event").and_then(Value::as_str);
    let from = row.detail.get("from").and_then(Value::as_str);
    let event_type = match (event, row.status.as_str(), from) {
        (Some("refunded"), _, _) => EventType::PAYMENT_REFUNDED,
        (Some("escrow_released"), _, _) => EventType::ESCROW_RELEASED,
        (None, "confirmed" | "finalized", Some("pending")) => EventType::PAYMENT_CONFIRMED,
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
    Some(SendRequest {
        user_id: row.created_by,
        event_type: event_type.to_owned(),
        data,
        priority: Priority::Normal,
        source_key: Some(format!("payments:{}", row.id)),
        ..SendRequest::default()
    })
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
