//! The payment service's `payment.*` events (its outbox, `payments.events`) become
//! notifications exactly once, through the gap-safe follower.

use std::sync::Arc;

use advancia_notifications::events::{self, Notify, StaffDirectory};
use advancia_notifications::{ChannelKind, NotificationFilter, NotificationService};
use advancia_test_support::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::prefs;

/// An intent, as the payment service's events describe it.
#[derive(Clone)]
pub struct Intent {
    pub id: Uuid,
    pub created_by: Uuid,
    pub kind: &'static str,
    pub amount: u64,
    pub facility_hex: String,
}

pub fn intent(created_by: Uuid, kind: &'static str, amount: u64, facility_hex: &str) -> Intent {
    Intent {
        id: Uuid::now_v7(),
        created_by,
        kind,
        amount,
        facility_hex: facility_hex.to_owned(),
    }
}

/// Appends `kind` about `i` to the payment service's outbox, with the payload fields its
/// `events::base` writes (the event contract) plus `extra`.
pub async fn event(pool: &PgPool, i: &Intent, kind: &str, status: &str, extra: Value) {
    let mut payload = json!({
        "payment_id": i.id,
        "payment_kind": i.kind,
        "status": status,
        "created_by": i.created_by,
        "chain": "solana",
        "facility_id": i.facility_hex,
        "facility": "FaciLity1111111111111111111111111111111111",
        "mint": "11111111111111111111111111111111",
        "amount": i.amount.to_string(),
        "label": "Cardiology visit",
        "payer": null,
        "signature": extra.get("signature").cloned().unwrap_or(Value::Null),
        "slot": extra.get("slot").cloned().unwrap_or(Value::Null),
        "refunded": "0",
        "released": "0",
        "expires_at": 4_000_000_000i64,
    });
    if let (Value::Object(m), Value::Object(x)) = (&mut payload, extra) {
        m.extend(x);
    }
    let mut conn = pool.acquire().await.unwrap();
    advancia_outbox::append(&mut conn, &advancia_payments::OUTBOX, kind, &payload)
        .await
        .unwrap();
}

/// Follows the payments outbox into `svc` (`staff` answers who works where).
pub struct Reader {
    follower: advancia_db::follow::Follower<advancia_outbox::OutboxLog>,
    notify: Notify,
}

impl Reader {
    pub fn new(svc: &NotificationService, staff: Arc<dyn StaffDirectory>) -> Reader {
        let log = advancia_outbox::OutboxLog::new(svc.pool().clone(), advancia_payments::OUTBOX);
        Reader {
            follower: events::follower(svc, log),
            notify: Notify::new(svc.clone(), staff),
        }
    }

    /// Notifications created by what was not yet followed.
    pub async fn catch_up(&mut self) -> u64 {
        events::catch_up(&self.follower, &mut self.notify)
            .await
            .unwrap()
    }
}

/// A facility (registry id `"cd" * 32`) that is not in the facilities service: no staff.
struct NoStaff;

impl StaffDirectory for NoStaff {
    fn staff_with_roles<'a>(
        &'a self,
        _facility: Uuid,
        _roles: &'a [&'static str],
    ) -> events::BoxFuture<'a, Result<Vec<Uuid>, advancia_db::follow::BoxError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[tokio::test]
async fn confirmations_finalizations_refunds_and_releases_notify_the_payer_exactly_once() {
    let db = TestDb::new(&[
        &advancia_payments::MIGRATIONS,
        &advancia_notifications::MIGRATIONS,
    ])
    .await;
    let svc = NotificationService::new(db.pool.clone());
    let payer = Uuid::now_v7();
    prefs(&svc, payer, &[ChannelKind::InApp, ChannelKind::Email]).await;
    let facility = "cd".repeat(32);
    let p1 = intent(payer, "payment", 1_500_000_000, &facility);
    let p2 = intent(payer, "escrow", 2_000_000_000, &facility);
    let pool = &db.pool;
    event(pool, &p1, "payment.initiated", "pending", json!({})).await;
    event(
        pool,
        &p1,
        "payment.status_changed",
        "confirmed",
        json!({ "from": "pending", "signature": "5igA", "slot": 9 }),
    )
    .await;
    event(
        pool,
        &p1,
        "payment.status_changed",
        "finalized",
        json!({ "from": "confirmed", "signature": "5igA", "slot": 9 }),
    )
    .await;
    event(pool, &p2, "payment.initiated", "pending", json!({})).await;
    // Seen straight as finalized: confirmed and final at once.
    event(
        pool,
        &p2,
        "payment.status_changed",
        "finalized",
        json!({ "from": "pending", "signature": "7xKp", "slot": 12 }),
    )
    .await;

    let mut reader = Reader::new(&svc, Arc::new(NoStaff));
    assert_eq!(reader.catch_up().await, 4);

    event(
        pool,
        &p1,
        "payment.refunded",
        "finalized",
        json!({ "signature": "5igA", "amount_delta": "500000000", "total": "500000000",
                "refunded": "500000000" }),
    )
    .await;
    event(
        pool,
        &p2,
        "payment.escrow_released",
        "finalized",
        json!({ "signature": "7xKp", "amount_delta": "2000000000", "total": "2000000000",
                "released": "2000000000" }),
    )
    .await;
    // Events that tell nobody.
    event(pool, &p1, "payment.verified", "finalized", json!({})).await;
    assert_eq!(reader.catch_up().await, 2);
    // Caught up: nothing more, however often it runs.
    assert_eq!(reader.catch_up().await, 0);
    // A reader whose cursor was lost replays the log without duplicates.
    sqlx::query("UPDATE notifications.cursors SET position = 0")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(reader.catch_up().await, 0);

    let list = svc
        .list(&NotificationFilter {
            user_id: payer,
            unread_only: false,
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    let mut by_type: Vec<(String, String)> = list
        .iter()
        .map(|n| (n.event_type.clone(), n.body_text.clone()))
        .collect();
    by_type.sort();
    assert_eq!(
        by_type,
        vec![
            (
                "escrow.released".into(),
                "2 SOL held in escrow for Cardiology visit was released to the facility.".into()
            ),
            (
                "payment.confirmed".into(),
                format!(
                    "Your payment of 1.5 SOL to facility {}… is confirmed on chain (transaction 5igA).",
                    "cd".repeat(4)
                )
            ),
            (
                "payment.confirmed".into(),
                format!(
                    "Your payment of 2 SOL to facility {}… is confirmed on chain (transaction 7xKp).",
                    "cd".repeat(4)
                )
            ),
            (
                "payment.finalized".into(),
                "The payment of 1.5 SOL for Cardiology visit is final on chain (transaction 5igA)."
                    .into()
            ),
            (
                "payment.finalized".into(),
                "The payment of 2 SOL for Cardiology visit is final on chain (transaction 7xKp)."
                    .into()
            ),
            (
                "payment.refunded".into(),
                "0.5 SOL of your payment of 1.5 SOL was refunded.".into()
            ),
        ]
    );
    // Each went to the outbox for the payer's channels.
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications.deliveries")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(queued, 12);
}
