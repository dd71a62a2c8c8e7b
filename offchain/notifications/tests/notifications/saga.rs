//! Payment-saga events from `payments.payment_status_history` become notifications once.

use advancia_notifications::saga::PaymentEvents;
use advancia_notifications::{ChannelKind, NotificationFilter, NotificationService};
use advancia_test_support::TestDb;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::prefs;

async fn payment(pool: &PgPool, created_by: Uuid, kind: &str, amount: u64) -> Uuid {
    payment_to(pool, created_by, kind, amount, &"cd".repeat(32)).await
}

/// A payment row to the facility whose registry id is `facility_hex`.
pub async fn payment_to(
    pool: &PgPool,
    created_by: Uuid,
    kind: &str,
    amount: u64,
    facility_hex: &str,
) -> Uuid {
    let id = Uuid::now_v7();
    let escrow = kind == "escrow";
    sqlx::query(
        "INSERT INTO payments.payments (id, created_by, kind, facility_id, facility, mint, amount,
             escrow_arbiter, escrow_expires_at, invoice_id, reference, label, status, expires_at)
         VALUES ($1, $2, $3, $4, 'FaciLity1111111111111111111111111111111111', '11111111111111111111111111111111',
                 $5::numeric, $6, $7, $8, $9, 'Cardiology visit', 'pending', now() + interval '1 hour')",
    )
    .bind(id)
    .bind(created_by)
    .bind(kind)
    .bind(facility_hex)
    .bind(amount.to_string())
    .bind(escrow.then_some("Arbiter111111111111111111111111111111111111"))
    .bind(escrow.then_some(4_000_000_000i64))
    .bind(hex_of(id))
    .bind(format!("Ref{}", id.simple()))
    .execute(pool)
    .await
    .unwrap();
    id
}

fn hex_of(id: Uuid) -> String {
    format!("{}{}", id.simple(), id.simple())
}

/// What the payment service's `history` writes.
pub async fn history(pool: &PgPool, payment: Uuid, status: &str, detail: serde_json::Value) {
    sqlx::query(
        "INSERT INTO payments.payment_status_history (payment_id, status, detail) VALUES ($1, $2, $3)",
    )
    .bind(payment)
    .bind(status)
    .bind(detail)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn confirmations_refunds_and_releases_notify_the_payer_exactly_once() {
    let db = TestDb::new(&[
        &advancia_payments::MIGRATIONS,
        &advancia_notifications::MIGRATIONS,
    ])
    .await;
    let svc = NotificationService::new(db.pool.clone());
    let payer = Uuid::now_v7();
    prefs(&svc, payer, &[ChannelKind::InApp, ChannelKind::Email]).await;
    let p1 = payment(&db.pool, payer, "payment", 1_500_000_000).await;
    let p2 = payment(&db.pool, payer, "escrow", 2_000_000_000).await;
    history(&db.pool, p1, "pending", json!({ "event": "initiated" })).await;
    history(
        &db.pool,
        p1,
        "pending",
        json!({ "event": "transaction_requested", "account": "W" }),
    )
    .await;
    history(
        &db.pool,
        p1,
        "confirmed",
        json!({ "from": "pending", "signature": "5igA", "slot": 9 }),
    )
    .await;
    history(
        &db.pool,
        p1,
        "finalized",
        json!({ "from": "confirmed", "signature": "5igA", "slot": 9 }),
    )
    .await;
    history(&db.pool, p2, "pending", json!({ "event": "initiated" })).await;
    // Seen straight as finalized: still one confirmation.
    history(
        &db.pool,
        p2,
        "finalized",
        json!({ "from": "pending", "signature": "7xKp", "slot": 12 }),
    )
    .await;

    let events = PaymentEvents::new(svc.clone());
    assert_eq!(
        events.step(2).await.unwrap(),
        0,
        "initiated, requested: nothing to say"
    );
    assert_eq!(events.position().await.unwrap(), 2);
    assert_eq!(events.catch_up(100).await.unwrap(), 2);

    history(
        &db.pool,
        p1,
        "finalized",
        json!({ "event": "refunded", "amount": "500000000", "total": "500000000" }),
    )
    .await;
    history(
        &db.pool,
        p2,
        "finalized",
        json!({ "event": "escrow_released", "amount": "2000000000", "total": "2000000000" }),
    )
    .await;
    assert_eq!(events.catch_up(100).await.unwrap(), 2);
    // Caught up: nothing more, however often it runs.
    assert_eq!(events.catch_up(100).await.unwrap(), 0);
    // A reader whose cursor was lost replays the log without duplicates.
    sqlx::query("UPDATE notifications.cursors SET position = 0")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(events.catch_up(100).await.unwrap(), 0);

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
    assert_eq!(queued, 8);
}
