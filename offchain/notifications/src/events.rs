//! Other services' domain events → notifications (ADR 0023).
//!
//! Each producer (payments, facilities, KYC) appends its events to its own outbox in the
//! transaction of the change; notifications follows each outbox with the one gap-safe
//! [`Follower`], pushed by the outbox's commit notification, and writes the notifications
//! of a batch in the transaction that moves its cursor (`notifications.cursors`): every
//! event is turned into notifications exactly once, whatever crashes. Nothing here reads a
//! table of another service: the events are self-contained, and who works at a facility
//! comes through the [`StaffDirectory`] port.
//!
//! What each event calls for (source keys `<outbox>:<event id>[:<user>]`):
//! - `payment.status_changed` out of `pending` into confirmed or finalized:
//!   `payment.confirmed` to the intent's creator, `facility.payment_received` to the
//!   facility's billing staff;
//! - `payment.status_changed` into `finalized`: `payment.finalized` to both (the webhook a
//!   facility's systems wait for);
//! - `payment.refunded` / `payment.escrow_released`: to both, as refund / release;
//! - `facility.certification_expiring`: to the facility's compliance staff;
//! - `kyc.decided`: to the verified user.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use advancia_db::follow::{BoxError, Cursor, Follower, Handler};
use advancia_outbox::{Event, OutboxLog};
use serde_json::{Value, json};
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

use crate::NotificationError;
use crate::model::{EventType, Priority, SendRequest};
use crate::service::NotificationService;

/// Where notifications keeps its position in each followed outbox.
pub const CURSORS: &str = "notifications.cursors";
/// Base58 of the all-zero key: the payment service's mint for native SOL.
const NATIVE_SOL: &str = "11111111111111111111111111111111";
/// Facility staff roles told about money reaching or leaving the facility.
pub const BILLING_ROLES: [&str; 4] = ["admin", "billing", "finance", "manager"];
/// Facility staff roles told about certifications.
pub const COMPLIANCE_ROLES: [&str; 3] = ["admin", "compliance", "manager"];

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who works at a facility: the facilities service answers (its typed read), so
/// notifications never reads the facilities schema and may live in another database.
pub trait StaffDirectory: Send + Sync {
    /// User ids of the active staff of `facility` linked to a user and holding any of
    /// `roles`, ordered; empty for a facility the directory does not know.
    fn staff_with_roles<'a>(
        &'a self,
        facility: Uuid,
        roles: &'a [&'static str],
    ) -> BoxFuture<'a, Result<Vec<Uuid>, BoxError>>;
}

/// The follower of one producer's outbox, its cursor in notifications' own database.
pub fn follower(svc: &NotificationService, log: OutboxLog) -> Follower<OutboxLog> {
    let name = log.source().name;
    Follower::new(log, Cursor::new(svc.pool().clone(), CURSORS, name))
}

/// Turns each followed event into its notifications, inside the cursor's transaction.
#[derive(Clone)]
pub struct Notify {
    svc: NotificationService,
    staff: Arc<dyn StaffDirectory>,
    /// Notifications created so far (repeats of a source key excluded).
    pub created: u64,
}

impl Notify {
    pub fn new(svc: NotificationService, staff: Arc<dyn StaffDirectory>) -> Notify {
        Notify {
            svc,
            staff,
            created: 0,
        }
    }

    /// The notifications event `e` of outbox `source` calls for.
    pub async fn requests(
        &self,
        source: &str,
        e: &Event,
    ) -> Result<Vec<SendRequest>, NotificationError> {
        let key = format!("{source}:{}", e.id);
        let p = &e.payload;
        if !p.is_object() {
            return Err(NotificationError::Corrupt(format!(
                "{key}: payload is not an object"
            )));
        }
        let text = |k: &str| p.get(k).and_then(Value::as_str);
        match e.kind.as_str() {
            "payment.status_changed" | "payment.refunded" | "payment.escrow_released" => {
                let mut events = Vec::new();
                match (e.kind.as_str(), text("from"), text("status")) {
                    ("payment.refunded", _, _) => events.push((
                        EventType::PAYMENT_REFUNDED,
                        EventType::FACILITY_REFUND_ISSUED,
                    )),
                    ("payment.escrow_released", _, _) => events.push((
                        EventType::ESCROW_RELEASED,
                        EventType::FACILITY_ESCROW_RELEASED,
                    )),
                    (_, from, to) => {
                        // A payment seen straight as finalized is confirmed too.
                        if from == Some("pending") && matches!(to, Some("confirmed" | "finalized"))
                        {
                            events.push((
                                EventType::PAYMENT_CONFIRMED,
                                EventType::FACILITY_PAYMENT_RECEIVED,
                            ));
                        }
                        if to == Some("finalized") {
                            events.push((
                                EventType::PAYMENT_FINALIZED,
                                EventType::FACILITY_PAYMENT_FINALIZED,
                            ));
                        }
                    }
                }
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                let creator = uuid_at(p, "created_by", &key)?;
                let staff = match text("facility_id").and_then(facility_uuid) {
                    Some(f) => self.staff_of(f, &BILLING_ROLES).await?,
                    None => Vec::new(),
                };
                let data = payment_data(p);
                let mut out = Vec::new();
                for (payer_event, staff_event) in events {
                    out.push(SendRequest {
                        user_id: creator,
                        event_type: payer_event.to_owned(),
                        data: data.clone(),
                        priority: Priority::Normal,
                        source_key: Some(format!("{key}:{payer_event}")),
                        ..SendRequest::default()
                    });
                    out.extend(staff.iter().map(|user| SendRequest {
                        user_id: *user,
                        event_type: staff_event.to_owned(),
                        data: data.clone(),
                        priority: Priority::Normal,
                        source_key: Some(format!("{key}:{staff_event}:{user}")),
                        ..SendRequest::default()
                    }));
                }
                Ok(out)
            }
            "facility.certification_expiring" => {
                let facility = uuid_at(p, "facility_id", &key)?;
                let lapsed = p["days_left"].as_i64().is_some_and(|d| d < 0);
                Ok(self
                    .staff_of(facility, &COMPLIANCE_ROLES)
                    .await?
                    .into_iter()
                    .map(|user| SendRequest {
                        user_id: user,
                        event_type: EventType::CERTIFICATION_EXPIRING.to_owned(),
                        data: p.clone(),
                        // Interrupts quiet hours only when already lapsed.
                        priority: if lapsed {
                            Priority::High
                        } else {
                            Priority::Normal
                        },
                        source_key: Some(format!("{key}:{user}")),
                        ..SendRequest::default()
                    })
                    .collect())
            }
            "kyc.decided" => Ok(vec![SendRequest {
                user_id: uuid_at(p, "user_id", &key)?,
                event_type: EventType::KYC_DECIDED.to_owned(),
                data: p.clone(),
                // Quiet hours apply: a decision is not urgent enough to wake anyone.
                priority: Priority::Normal,
                source_key: Some(key),
                ..SendRequest::default()
            }]),
            // Other events (initiated, mismatches, facility changes) tell nobody yet.
            _ => Ok(Vec::new()),
        }
    }

    async fn staff_of(
        &self,
        facility: Uuid,
        roles: &'static [&'static str],
    ) -> Result<Vec<Uuid>, NotificationError> {
        self.staff
            .staff_with_roles(facility, roles)
            .await
            .map_err(|e| NotificationError::Unavailable(format!("staff directory: {e}")))
    }
}

/// The handler of one outbox's follower (the outbox's name goes into the source keys).
pub struct NotifyFrom<'a> {
    pub source: &'static str,
    pub notify: &'a mut Notify,
}

impl Handler<Event> for NotifyFrom<'_> {
    async fn handle(&mut self, conn: &mut PgConnection, entries: &[Event]) -> Result<(), BoxError> {
        for e in entries {
            let span = tracing::info_span!(
                "notify_event",
                source = self.source,
                kind = %e.kind,
                id = %e.id,
                traceparent = tracing::field::Empty
            );
            if let Some(tp) = &e.traceparent {
                span.record("traceparent", tp.as_str());
            }
            async {
                for req in self.notify.requests(self.source, e).await? {
                    if self.notify.svc.send_in(conn, &req).await?.created {
                        self.notify.created += 1;
                    }
                }
                Ok::<_, NotificationError>(())
            }
            .instrument(span)
            .await?;
        }
        Ok(())
    }
}

/// Follows `log` into notifications until `stop` resolves (pushed by its commits).
pub async fn follow(
    svc: NotificationService,
    staff: Arc<dyn StaffDirectory>,
    log: OutboxLog,
    stop: impl Future<Output = ()>,
) {
    let source = log.source().name;
    let follower = follower(&svc, log);
    let mut notify = Notify::new(svc, staff);
    follower
        .run(
            &mut NotifyFrom {
                source,
                notify: &mut notify,
            },
            stop,
        )
        .await;
}

/// Handles everything `follower` has not yet handled; returns the notifications created.
pub async fn catch_up(
    follower: &Follower<OutboxLog>,
    notify: &mut Notify,
) -> Result<u64, NotificationError> {
    let before = notify.created;
    let source = follower.source().source().name;
    follower
        .catch_up(&mut NotifyFrom { source, notify })
        .await
        .map_err(|e| NotificationError::Unavailable(e.to_string()))?;
    Ok(notify.created - before)
}

fn uuid_at(p: &Value, field: &str, key: &str) -> Result<Uuid, NotificationError> {
    p.get(field)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::try_parse(s).ok())
        .ok_or_else(|| NotificationError::Corrupt(format!("{key}: no {field} uuid")))
}

/// The facilities service's uuid of the facility whose 32-byte registry id is
/// `chain_id_hex` (the uuid's 16 bytes then 16 zero bytes); `None` for any other id (a
/// facility registered on chain only has no staff here).
pub fn facility_uuid(chain_id_hex: &str) -> Option<Uuid> {
    chain_id_hex
        .strip_suffix(&"0".repeat(32))
        .and_then(|h| Uuid::try_parse(h).ok())
}

/// Template data of a payment event: amounts in the asset's units where we know them.
fn payment_data(p: &Value) -> Value {
    let text = |k: &str| {
        p.get(k)
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
            .unwrap_or_default()
    };
    let mint = text("mint");
    let (asset, decimals) = if mint == NATIVE_SOL {
        ("SOL".to_owned(), Some(9))
    } else {
        (format!("base units of {mint}"), None)
    };
    let shown = |base: String| match decimals {
        Some(d) => base
            .parse::<u64>()
            .map_or_else(|_| base.clone(), |v| format_units(v, d)),
        None => base,
    };
    // A refund or release event's own amount, else the running total.
    let delta = |total: &str| {
        let d = text("amount_delta");
        if d.is_empty() { text(total) } else { d }
    };
    json!({
        "payment_id": text("payment_id"),
        "kind": text("payment_kind"),
        "status": text("status"),
        "facility_id": text("facility_id"),
        "label": text("label"),
        "asset": asset,
        "mint": mint,
        "amount": shown(text("amount")),
        "amount_base_units": text("amount"),
        "signature": text("signature"),
        "refunded": shown(delta("refunded")),
        "released": shown(delta("released")),
        "slot": p.get("slot").cloned().unwrap_or(Value::Null),
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

    #[test]
    fn facility_ids() {
        let u = Uuid::now_v7();
        assert_eq!(
            facility_uuid(&format!("{}{}", u.simple(), "0".repeat(32))),
            Some(u)
        );
        assert_eq!(facility_uuid(&"cd".repeat(32)), None);
    }
}
