//! Seeded chain data for the analytics API and dashboard tests, written through the
//! indexer's own sink (write, finalize, undo), with payment-intent outcomes as the payment
//! service's outbox carries them, then rolled up by the analytics worker.
#![allow(dead_code, clippy::unwrap_used)]

use advancia_indexer::sink::{set_commitments, undo_transaction, write_batch};
use advancia_indexer::{ChainTransaction, Commitment, DecodedEvent};
use advancia_pay::client::AdvanciaEvent;
use advancia_pay::events::{EscrowOpened, EscrowReleased, PaymentMade, PaymentRefunded};
use anchor_lang::prelude::Pubkey;
use sqlx::PgPool;
use uuid::Uuid;

const SOURCE: &str = "solana:advancia-pay";
pub const SOL: &str = "11111111111111111111111111111111";
pub const DAYS: i64 = 63;

pub fn key(seed: u8) -> Pubkey {
    Pubkey::new_from_array([seed; 32])
}

pub fn facility_a() -> String {
    key(1).to_string()
}

pub fn facility_b() -> String {
    key(2).to_string()
}

pub fn usdc() -> String {
    key(3).to_string()
}

pub fn midnight_today() -> i64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    now - now.rem_euclid(86_400)
}

/// Facility A's SOL payment on day `d` before today: a weekly pattern plus a trend.
pub fn amount_a(d: i64) -> u64 {
    1_000_000
        + [0, 300_000, 500_000, 200_000, 100_000, 900_000, 700_000][(d % 7) as usize]
        + (DAYS - d) as u64 * 10_000
}

fn payment(facility: Pubkey, mint: Pubkey, amount: u64, n: u64, at: i64) -> AdvanciaEvent {
    AdvanciaEvent::PaymentMade(PaymentMade {
        payment: key((n % 250) as u8),
        payer: key(9),
        facility,
        invoice_id: [(n % 250) as u8; 32],
        reference: key(((n + 7) % 250) as u8),
        mint,
        amount,
        fee: amount / 100,
        paid_at: at,
    })
}

fn tx(n: u64, at: i64, events: Vec<AdvanciaEvent>) -> ChainTransaction {
    let mut sig = [5u8; 64];
    sig[..8].copy_from_slice(&n.to_le_bytes());
    ChainTransaction {
        signature: bs58::encode(sig).into_string(),
        slot: 1_000 + n,
        block_time: Some(at),
        failed: false,
        commitment: Commitment::Confirmed,
        instructions: vec!["x".into(); events.len()],
        events: events
            .into_iter()
            .enumerate()
            .map(|(i, event)| DecodedEvent {
                ix_index: i as u32,
                inner_index: 1,
                event,
            })
            .collect(),
        bridge_events: Vec::new(),
    }
}

/// Writes the chain data (all finalized except one confirmed and one rolled back),
/// some payment-intent outcomes, and runs the rollup to the end.
pub async fn seed(pool: &PgPool) {
    seed_with(pool, key(1)).await;
}

/// [`seed`] with facility A at `facility_a` (e.g. the account of a named facility).
pub async fn seed_with(pool: &PgPool, facility_a: Pubkey) {
    let today = midnight_today();
    let sol = Pubkey::default();
    let usdc = key(3);
    let mut txs = Vec::new();
    let mut n = 0u64;
    for d in (1..=DAYS).rev() {
        let at = today - d * 86_400 + 10 * 3_600;
        n += 1;
        let mut events = vec![payment(facility_a, sol, amount_a(d), n, at)];
        if d % 3 == 0 {
            events.push(payment(key(2), usdc, 5_000_000 + d as u64, n + 10_000, at));
        }
        txs.push(tx(n, at, events));
    }
    // Today: an escrow opened and released at facility B (USDC), a refund at A.
    let at = today + 60;
    n += 1;
    txs.push(tx(
        n,
        at,
        vec![
            AdvanciaEvent::EscrowOpened(EscrowOpened {
                escrow: key(20),
                payer: key(9),
                facility: key(2),
                arbiter: key(8),
                mint: usdc,
                amount: 2_000_000,
                expires_at: at + 86_400,
            }),
            AdvanciaEvent::EscrowReleased(EscrowReleased {
                escrow: key(20),
                by: key(8),
                amount: 2_000_000,
                fee: 20_000,
                released_total: 2_000_000,
            }),
            AdvanciaEvent::PaymentRefunded(PaymentRefunded {
                payment: key(21),
                facility: facility_a,
                payer: key(9),
                mint: sol,
                amount: 250_000,
                refunded_total: 250_000,
            }),
        ],
    ));
    // Not final (never counted) and dropped (rolled back).
    let pending = tx(
        n + 1,
        at,
        vec![payment(facility_a, sol, 77_777_777, n + 1, at)],
    );
    let dropped = tx(
        n + 2,
        at,
        vec![payment(key(2), usdc, 88_888_888, n + 2, at)],
    );
    txs.push(pending);
    txs.push(dropped.clone());
    write_batch(pool, "solana", SOURCE, &txs).await.unwrap();
    let finals: Vec<(String, u64, Commitment)> = txs[..txs.len() - 2]
        .iter()
        .map(|t| (t.signature.clone(), t.slot, Commitment::Finalized))
        .collect();
    set_commitments(pool, "solana", &finals).await.unwrap();
    assert!(
        undo_transaction(pool, "solana", SOURCE, &dropped.signature)
            .await
            .unwrap()
    );

    // Payment intents at facility A today: 3 finalized, 1 failed → 75 %.
    for (i, status) in ["finalized", "finalized", "finalized", "failed"]
        .iter()
        .enumerate()
    {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO payments.payments (id, created_by, kind, facility_id, facility, mint, amount,
                 invoice_id, reference, label, status, expires_at)
             VALUES ($1, $2, 'payment', 'ab', $3, $4, 100, $5, $6, 'x', $7, now() + interval '1 hour')",
        )
        .bind(id)
        .bind(Uuid::new_v4())
        .bind(facility_a.to_string())
        .bind(SOL)
        .bind(format!("inv-{i}-{id}"))
        .bind(format!("ref-{i}-{id}"))
        .bind(status)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO payments.payment_status_history (payment_id, status, at)
             VALUES ($1, $2, to_timestamp($3))",
        )
        .bind(id)
        .bind(status)
        .bind(today + 120)
        .execute(pool)
        .await
        .unwrap();
        // The payment service's event of the change (what analytics follows).
        sqlx::query(
            "INSERT INTO payments.events (id, kind, payload, created_at)
             VALUES ($1, 'payment.status_changed', $2, to_timestamp($3))",
        )
        .bind(Uuid::now_v7())
        .bind(serde_json::json!({
            "payment_id": id, "payment_kind": "payment", "status": status, "from": "pending",
            "chain": "solana", "facility": facility_a.to_string(), "mint": SOL, "amount": "100",
        }))
        .bind(today + 120)
        .execute(pool)
        .await
        .unwrap();
    }
    advancia_analytics::Rollup::new(
        pool.clone(),
        pool.clone(),
        advancia_outbox::OutboxLog::new(pool.clone(), advancia_payments::OUTBOX),
    )
    .catch_up()
    .await
    .unwrap();
}

/// Expected 30-day figures (today and the 29 days before it) for facility A in SOL.
pub fn expected_a_30d() -> (i64, u128, u128) {
    let mut payments = 0;
    let mut volume = 0u128;
    let mut fees = 0u128;
    for d in 1..=29 {
        payments += 1;
        volume += u128::from(amount_a(d));
        fees += u128::from(amount_a(d) / 100);
    }
    (payments, volume, fees)
}
