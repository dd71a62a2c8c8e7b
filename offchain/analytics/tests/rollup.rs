//! The rollups after incremental steps equal a from-scratch aggregate over the raw tables
//! (`REFERENCE_DAILY_SQL`, and its hourly variant), through finality changes, re-streamed
//! rows, rollbacks and payment-intent outcomes that change. Indexer rows are written by the
//! indexer's own sink functions (`write_batch`, `set_commitments`, `undo_transaction`);
//! intent outcomes as the payment service records them (row, history and
//! `payment.status_changed` in its outbox, in one transaction).
#![allow(clippy::unwrap_used)]

use advancia_analytics::rollup::{CHAIN_CURSOR, INTENTS_CURSOR, ROLLUP_DAILY_SQL};
use advancia_analytics::{MIGRATIONS, Rollup};
use advancia_indexer::bench::synthetic_transactions;
use advancia_indexer::sink::{set_commitments, undo_transaction, write_batch};
use advancia_indexer::{ChainTransaction, Commitment, DecodedEvent};
use advancia_outbox::OutboxLog;
use advancia_pay::client::AdvanciaEvent;
use advancia_pay::events::{EscrowOpened, EscrowRefunded, EscrowReleased, PaymentMade};
use advancia_test_support::TestDb;
use advancia_test_support::sqlx::{self, PgPool};
use anchor_lang::prelude::Pubkey;
use uuid::Uuid;

const SOURCE: &str = "solana:advancia-pay";
const DAY0: i64 = 1_760_000_000 - 1_760_000_000 % 86_400;

type Row = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    i64,
);

/// The reference: the same figures aggregated from scratch over the raw tables (finalized
/// rows only), per day. The rollups must equal it. Test code only: it reads the indexer's and the payment
/// service's tables, which analytics itself never names.
const REFERENCE_DAILY_SQL: &str = "
WITH ev AS (
  SELECT 'payment' AS kind, p.chain, COALESCE(p.block_time, p.paid_at) AS at, p.facility, p.mint,
         p.amount, p.fee
    FROM indexer.payments p WHERE p.commitment = 'finalized'
  UNION ALL
  SELECT 'refund', r.chain, COALESCE(r.block_time, floor(extract(epoch FROM t.indexed_at))::bigint),
         r.facility, r.mint, r.amount, 0
    FROM indexer.refunds r JOIN indexer.transactions t USING (chain, signature)
   WHERE r.commitment = 'finalized'
  UNION ALL
  SELECT CASE e.kind WHEN 'released' THEN 'release' ELSE 'escrow_refund' END, e.chain,
         COALESCE(e.block_time, floor(extract(epoch FROM t.indexed_at))::bigint), o.facility, o.mint,
         e.amount, CASE e.kind WHEN 'released' THEN e.fee ELSE 0 END
    FROM indexer.escrows e JOIN indexer.transactions t USING (chain, signature)
    JOIN LATERAL (SELECT o.facility, o.mint FROM indexer.escrows o
                   WHERE o.escrow = e.escrow AND o.chain = e.chain AND o.kind = 'opened'
                   ORDER BY o.slot LIMIT 1) o ON true
   WHERE e.commitment = 'finalized' AND e.kind IN ('released', 'refunded')
), money AS (
  SELECT date_trunc('day', to_timestamp(at) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket,
         chain, facility, mint,
         count(*) FILTER (WHERE kind = 'payment') AS payments,
         count(*) FILTER (WHERE kind = 'release') AS releases,
         count(*) FILTER (WHERE kind IN ('refund', 'escrow_refund')) AS refunds,
         COALESCE(sum(amount) FILTER (WHERE kind IN ('payment', 'release')), 0) AS volume,
         COALESCE(sum(fee) FILTER (WHERE kind IN ('payment', 'release')), 0) AS fees,
         COALESCE(sum(amount) FILTER (WHERE kind IN ('refund', 'escrow_refund')), 0) AS refunded
    FROM ev GROUP BY 1, 2, 3, 4
), last_terminal AS (
  SELECT DISTINCT ON (h.payment_id) h.payment_id, h.status, h.at
    FROM payments.payment_status_history h
   WHERE h.status IN ('finalized', 'failed', 'expired')
   ORDER BY h.payment_id, h.id DESC
), outcomes AS (
  SELECT date_trunc('day', l.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket,
         p.chain, p.facility, p.mint,
         count(*) AS attempts, count(*) FILTER (WHERE l.status = 'finalized') AS succeeded
    FROM last_terminal l JOIN payments.payments p ON p.id = l.payment_id
   GROUP BY 1, 2, 3, 4
)
SELECT extract(epoch FROM COALESCE(m.bucket, o.bucket))::bigint AS bucket,
       COALESCE(m.chain, o.chain) AS chain, COALESCE(m.facility, o.facility) AS facility,
       COALESCE(m.mint, o.mint) AS mint,
       COALESCE(m.payments, 0) AS payments, COALESCE(m.releases, 0) AS releases,
       COALESCE(m.refunds, 0) AS refunds, COALESCE(m.volume, 0)::text AS volume,
       COALESCE(m.fees, 0)::text AS fees, COALESCE(m.refunded, 0)::text AS refunded,
       COALESCE(o.attempts, 0) AS attempts, COALESCE(o.succeeded, 0) AS succeeded
  FROM money m FULL JOIN outcomes o
    ON (m.bucket, m.chain, m.facility, m.mint) = (o.bucket, o.chain, o.facility, o.mint)
 ORDER BY 1, 2, 3, 4";

/// The rollup worker with every log in the test database.
fn rollup(pool: &PgPool) -> Rollup {
    Rollup::new(
        pool.clone(),
        pool.clone(),
        OutboxLog::new(pool.clone(), advancia_payments::OUTBOX),
    )
}

async fn db() -> TestDb {
    TestDb::new(&[
        &advancia_indexer::MIGRATIONS,
        &advancia_payments::MIGRATIONS,
        &MIGRATIONS,
    ])
    .await
}

/// How the rollups differ from the reference, if they do.
async fn difference(pool: &PgPool) -> Option<String> {
    for (gran, reference, rollup) in [
        (
            "daily",
            REFERENCE_DAILY_SQL.to_owned(),
            ROLLUP_DAILY_SQL.to_owned(),
        ),
        (
            "hourly",
            REFERENCE_DAILY_SQL.replace("'day'", "'hour'"),
            ROLLUP_DAILY_SQL.replace("rollup_daily", "rollup_hourly"),
        ),
    ] {
        let want: Vec<Row> = sqlx::query_as(&reference).fetch_all(pool).await.unwrap();
        let got: Vec<Row> = sqlx::query_as(&rollup).fetch_all(pool).await.unwrap();
        let extra: Vec<&Row> = got.iter().filter(|r| !want.contains(r)).collect();
        let missing: Vec<&Row> = want.iter().filter(|r| !got.contains(r)).collect();
        if !(extra.is_empty() && missing.is_empty() && got.len() == want.len()) {
            return Some(format!(
                "{gran} rollup differs from the reference:\nonly in the rollup: {extra:?}\nonly in the reference: {missing:?}"
            ));
        }
    }
    None
}

async fn assert_matches_reference(pool: &PgPool, when: &str) {
    if let Some(d) = difference(pool).await {
        panic!("{when}: {d}");
    }
}

fn key(seed: u8) -> Pubkey {
    Pubkey::new_from_array([seed; 32])
}

fn sig(n: u64) -> String {
    let mut b = [7u8; 64];
    b[..8].copy_from_slice(&n.to_le_bytes());
    bs58::encode(b).into_string()
}

fn tx(n: u64, slot: u64, block_time: i64, events: Vec<AdvanciaEvent>) -> ChainTransaction {
    ChainTransaction {
        signature: sig(n),
        slot,
        block_time: Some(block_time),
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

/// Synthetic chain-shaped transactions spread over ten days (two hours apart), plus
/// escrows and payments in a second mint.
fn chain_data() -> Vec<ChainTransaction> {
    let mut txs = synthetic_transactions(11, 120);
    for (i, t) in txs.iter_mut().enumerate() {
        t.block_time = Some(DAY0 + i as i64 * 7_200);
    }
    let usdc = key(200);
    let mut slot = txs.last().unwrap().slot;
    let mut extra = Vec::new();
    for i in 0..6u64 {
        let escrow = key(100 + i as u8);
        let facility = key(50 + (i % 2) as u8);
        let t0 = DAY0 + 86_400 + i as i64 * 50_000;
        slot += 3;
        extra.push(tx(
            1_000 + i * 10,
            slot,
            t0,
            vec![
                AdvanciaEvent::EscrowOpened(EscrowOpened {
                    escrow,
                    payer: key(9),
                    facility,
                    arbiter: key(8),
                    mint: usdc,
                    amount: 1_000_000 * (i + 1),
                    expires_at: t0 + 86_400,
                }),
                AdvanciaEvent::PaymentMade(PaymentMade {
                    payment: key(30 + i as u8),
                    payer: key(9),
                    facility,
                    invoice_id: [i as u8; 32],
                    reference: key(40 + i as u8),
                    mint: usdc,
                    amount: 7_000 + i,
                    fee: 70,
                    paid_at: t0,
                }),
            ],
        ));
        slot += 3;
        let second = if i % 2 == 0 {
            AdvanciaEvent::EscrowReleased(EscrowReleased {
                escrow,
                by: key(8),
                amount: 900_000 * (i + 1),
                fee: 9_000 * (i + 1),
                released_total: 900_000 * (i + 1),
            })
        } else {
            AdvanciaEvent::EscrowRefunded(EscrowRefunded {
                escrow,
                by: key(8),
                amount: 1_000_000 * (i + 1),
            })
        };
        extra.push(tx(1_001 + i * 10, slot, t0 + 3_600 * 30, vec![second]));
    }
    txs.extend(extra);
    txs
}

async fn finalize(pool: &PgPool, txs: &[&ChainTransaction], slot_shift: u64) {
    let updates: Vec<(String, u64, Commitment)> = txs
        .iter()
        .map(|t| {
            (
                t.signature.clone(),
                t.slot + slot_shift,
                Commitment::Finalized,
            )
        })
        .collect();
    set_commitments(pool, "solana", &updates).await.unwrap();
}

#[tokio::test]
async fn incremental_rollups_equal_the_reference_through_finality_and_rollbacks() {
    let db = db().await;
    let pool = &db.pool;
    let rollup = rollup(pool).with_batch(37);
    let txs = chain_data();

    // Written at `confirmed` in a few batches, steps in between: nothing counts yet.
    for chunk in txs.chunks(40) {
        write_batch(pool, "solana", SOURCE, chunk).await.unwrap();
        rollup.step().await.unwrap();
    }
    rollup.catch_up().await.unwrap();
    assert_matches_reference(pool, "with nothing finalized").await;
    let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics.counted_events")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(counted, 0);

    // Two thirds finalized (stream positions renewed), a step or two at a time.
    let (to_finalize, rest): (Vec<_>, Vec<_>) =
        txs.iter().enumerate().partition(|(i, _)| i % 3 != 2);
    let to_finalize: Vec<&ChainTransaction> = to_finalize.into_iter().map(|(_, t)| t).collect();
    for part in to_finalize.chunks(25) {
        finalize(pool, part, 0).await;
        rollup.step().await.unwrap();
    }
    rollup.catch_up().await.unwrap();
    assert_matches_reference(pool, "after finalization").await;
    let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics.counted_events")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(counted > 100, "only {counted} events counted");

    // Half of the rest are dropped by the chain (rollback rows), the others finalized.
    // An escrow's `opened` transaction is never dropped once its release may finalize
    // (on a chain the release could not exist without it).
    let opens_escrow = |t: &ChainTransaction| {
        t.events
            .iter()
            .any(|e| matches!(e.event, AdvanciaEvent::EscrowOpened(_)))
    };
    for (k, (_, t)) in rest.iter().enumerate() {
        if k % 2 == 0 && !opens_escrow(t) {
            assert!(
                undo_transaction(pool, "solana", SOURCE, &t.signature)
                    .await
                    .unwrap()
            );
        } else {
            finalize(pool, &[t], 0).await;
        }
        if k % 5 == 0 {
            rollup.step().await.unwrap();
        }
    }
    rollup.catch_up().await.unwrap();
    assert_matches_reference(pool, "after rollbacks").await;

    // A counted row streamed again with a new slot (a replay moved it) is not counted twice.
    finalize(pool, &to_finalize[..10], 5).await;
    rollup.catch_up().await.unwrap();
    assert_matches_reference(pool, "after re-streamed finalized rows").await;

    // A rollback of rows already counted (deeper than the finality promise; the indexer
    // never does this, the rollup must still stay exact): demote, then undo.
    let victim = &to_finalize[3].signature;
    sqlx::query("UPDATE indexer.transactions SET commitment = 'confirmed' WHERE signature = $1")
        .bind(victim)
        .execute(pool)
        .await
        .unwrap();
    assert!(
        undo_transaction(pool, "solana", SOURCE, victim)
            .await
            .unwrap()
    );
    rollup.catch_up().await.unwrap();
    assert_matches_reference(pool, "after a rollback of counted rows").await;

    // Re-running from a caught-up cursor changes nothing.
    let before = rollup.position(CHAIN_CURSOR).await.unwrap();
    assert_eq!(rollup.catch_up().await.unwrap().events, 0);
    assert_eq!(rollup.position(CHAIN_CURSOR).await.unwrap(), before);
    assert_matches_reference(pool, "after an idle step").await;
}

async fn intent(pool: &PgPool, facility: &str, mint: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO payments.payments (id, created_by, kind, facility_id, facility, mint, amount,
             invoice_id, reference, label, status, expires_at)
         VALUES ($1, $2, 'payment', 'ab', $3, $4, 100, $5, $6, 'x', 'pending', now() + interval '1 hour')",
    )
    .bind(id)
    .bind(Uuid::new_v4())
    .bind(facility)
    .bind(mint)
    .bind(id.simple().to_string())
    .bind(format!("ref-{id}"))
    .execute(pool)
    .await
    .unwrap();
    history(pool, id, "pending", 0).await;
    id
}

/// A status change as the payment service records it: row, history and outbox event in one
/// transaction, the event appended last (the history row and the event carry the same time).
async fn history(pool: &PgPool, id: Uuid, status: &str, day: i64) {
    let mut tx = pool.begin().await.unwrap();
    status_change(&mut tx, id, status, day).await;
    tx.commit().await.unwrap();
}

async fn status_change(conn: &mut sqlx::PgConnection, id: Uuid, status: &str, day: i64) {
    let (from, chain, facility, mint): (String, String, String, String) = sqlx::query_as(
        "SELECT status, chain, facility, mint FROM payments.payments WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    sqlx::query("UPDATE payments.payments SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(&mut *conn)
        .await
        .unwrap();
    let at = DAY0 + day * 86_400 + 3_600;
    sqlx::query(
        "INSERT INTO payments.payment_status_history (payment_id, status, detail, at)
         VALUES ($1, $2, '{}', to_timestamp($3))",
    )
    .bind(id)
    .bind(status)
    .bind(at)
    .execute(&mut *conn)
    .await
    .unwrap();
    let (kind, extra) = if from == status {
        ("payment.initiated", serde_json::json!({}))
    } else {
        (
            "payment.status_changed",
            serde_json::json!({ "from": from }),
        )
    };
    let mut payload = serde_json::json!({
        "payment_id": id, "payment_kind": "payment", "status": status, "chain": chain,
        "facility": facility, "mint": mint, "amount": "100",
    });
    if let (Some(p), Some(x)) = (payload.as_object_mut(), extra.as_object()) {
        p.extend(x.clone());
    }
    sqlx::query(
        "INSERT INTO payments.events (id, kind, payload, created_at)
         VALUES ($1, $2, $3, to_timestamp($4))",
    )
    .bind(Uuid::now_v7())
    .bind(kind)
    .bind(&payload)
    .bind(at)
    .execute(&mut *conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn success_rate_counts_latest_terminal_outcome_per_intent() {
    let db = db().await;
    let pool = &db.pool;
    let rollup = rollup(pool).with_batch(4);
    let mut ids = Vec::new();
    for i in 0..12 {
        let facility = if i % 2 == 0 { "FacA" } else { "FacB" };
        ids.push(
            intent(
                pool,
                facility,
                "So11111111111111111111111111111111111111112",
            )
            .await,
        );
    }
    for (i, id) in ids.iter().enumerate() {
        history(pool, *id, "confirmed", 0).await;
        let end = match i % 4 {
            0 | 1 => "finalized",
            2 => "failed",
            _ => "expired",
        };
        history(pool, *id, end, (i % 3) as i64).await;
        if i % 5 == 0 {
            rollup.step().await.unwrap();
        }
    }
    rollup.catch_up().await.unwrap();
    assert_matches_reference(pool, "after intents ended").await;

    // A failed intent later seen finalized (status refreshed from chain) moves its count.
    history(pool, ids[2], "finalized", 4).await;
    rollup.catch_up().await.unwrap();
    assert_matches_reference(pool, "after an outcome changed").await;
    let (attempts, succeeded): (i64, i64) = sqlx::query_as(
        "SELECT sum(attempts)::bigint, sum(succeeded)::bigint FROM analytics.rollup_daily",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((attempts, succeeded), (12, 7));
}

#[tokio::test]
async fn intents_cursor_never_passes_an_uncommitted_smaller_position() {
    let db = db().await;
    let pool = &db.pool;
    let rollup = rollup(pool);
    let a = intent(pool, "FacA", "M").await;
    let b = intent(pool, "FacA", "M").await;
    rollup.catch_up().await.unwrap();
    let before = rollup.position(INTENTS_CURSOR).await.unwrap();

    // Writer A appends its event (the smaller position) and stays open; writer B, started
    // after it, tries to append and commit first.
    let mut slow = pool.begin().await.unwrap();
    status_change(&mut slow, a, "finalized", 0).await;
    let fast = {
        let pool = pool.clone();
        tokio::spawn(async move { history(&pool, b, "failed", 0).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The outbox is gap-safe: B cannot commit before A.
    assert!(
        !fast.is_finished(),
        "B committed ahead of A's smaller position"
    );

    // With A in flight a reader finds nothing new and its cursor stays.
    assert_eq!(rollup.step().await.unwrap().intents, 0);
    assert_eq!(rollup.position(INTENTS_CURSOR).await.unwrap(), before);
    slow.commit().await.unwrap();
    fast.await.unwrap();

    // Both are counted, neither skipped nor repeated.
    assert_eq!(rollup.catch_up().await.unwrap().intents, 2);
    assert_matches_reference(pool, "after an out-of-order commit").await;
    let (attempts, succeeded): (i64, i64) = sqlx::query_as(
        "SELECT sum(attempts)::bigint, sum(succeeded)::bigint FROM analytics.rollup_daily",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((attempts, succeeded), (2, 1));
    assert_eq!(rollup.catch_up().await.unwrap().intents, 0);
}

/// `run` is pushed: with the recheck timer out of reach, rows committed after it started
/// reach the rollups within a second, by their commit notifications alone.
#[tokio::test]
async fn run_counts_commits_as_they_are_notified() {
    let db = db().await;
    let pool = &db.pool;
    let config = advancia_db::follow::FollowConfig {
        recheck: std::time::Duration::from_secs(600),
        ..Default::default()
    };
    let worker = rollup(pool).with_config(config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let txs = chain_data();
    let first: Vec<&ChainTransaction> = txs.iter().take(6).collect();
    let owned: Vec<ChainTransaction> = first.iter().map(|t| (*t).clone()).collect();
    write_batch(pool, "solana", SOURCE, &owned).await.unwrap();
    finalize(pool, &first, 0).await;
    let a = intent(pool, "FacA", "M").await;
    history(pool, a, "finalized", 0).await;
    let start = std::time::Instant::now();
    loop {
        let counted: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(payments + attempts), 0)::bigint FROM analytics.rollup_daily",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if counted > 1 && difference(pool).await.is_none() {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(3),
            "not pushed: {:?}",
            difference(pool).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
