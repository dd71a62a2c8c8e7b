//! The payment lifecycle worker (ADR 0023): the one writer of an intent's status.
//!
//! It follows the indexer's stream ([`IndexerLog`]) behind a cursor in `payments.cursors`,
//! pushed by the indexer's commit notifications. Every indexed payment, escrow event, refund
//! and rollback names the intents it may concern; each of those is then *settled*: its row is
//! locked, every on-chain candidate for it is read from the indexer (by reference, invoice
//! and the accounts of the wallets that asked for a transaction), and
//!
//! - the first candidate that matches the intent in every term (program's chain, facility,
//!   asset, amount, and invoice and reference for payments, arbiter and expiry for escrows)
//!   settles it: `pending` → `confirmed` → `finalized`, back to `pending` on a rollback;
//! - every other candidate is a *mismatch* (or a *duplicate* of a settled intent), recorded
//!   against the intent, refundable by the facility, and never blocking it;
//! - an unsettled intent expires at its TTL (a timer, not a reader, moves it) and shows the
//!   chain's error when a wallet's attempt failed (Solana Pay's reference lookup, run for the
//!   few minutes after a transaction request).
//!
//! Each change is written with its history row and its domain event (`payment.*`, the
//! outbox [`crate::OUTBOX`]) in the transaction that moves the cursor: exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use advancia_chains::SolanaChain;
use advancia_db::follow::{BoxError, Cursor, Follower, Handler};
use advancia_indexer_store::stream::{IndexedEvent, IndexerLog, StreamFilter};
use advancia_indexer_store::{SOLANA, lookup, query};
use advancia_pay::client as pay;
use anchor_lang::prelude::Pubkey;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PaymentError;
use crate::model::{PAYMENT_COLS, Payment, parse_u64};

/// How long after a transaction request the chain is asked about failed attempts.
const WATCH_WINDOW_SECS: f64 = 180.0;

/// An on-chain payment or escrow opening that may concern an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub chain: String,
    pub signature: String,
    pub ix_index: i32,
    pub inner_index: i32,
    pub slot: i64,
    pub commitment: String,
    /// `payment` or `escrow`.
    pub kind: &'static str,
    pub payer: String,
    /// The PaymentRecord or Escrow account.
    pub account: String,
    pub facility: String,
    pub mint: String,
    pub amount: String,
    pub fee: String,
    pub arbiter: Option<String>,
    pub expires_at: Option<i64>,
    pub invoice_id: Option<String>,
    pub reference: Option<String>,
}

impl Candidate {
    fn key(&self) -> (String, String, i32, i32) {
        (
            self.chain.clone(),
            self.signature.clone(),
            self.ix_index,
            self.inner_index,
        )
    }

    fn from_payment(r: query::PaymentRow) -> Candidate {
        Candidate {
            chain: r.chain,
            signature: r.signature,
            ix_index: r.ix_index,
            inner_index: r.inner_index,
            slot: r.slot,
            commitment: r.commitment,
            kind: "payment",
            payer: r.payer,
            account: r.payment,
            facility: r.facility,
            mint: r.mint,
            amount: r.amount,
            fee: r.fee,
            arbiter: None,
            expires_at: None,
            invoice_id: Some(r.invoice_id),
            reference: Some(r.reference),
        }
    }

    fn from_escrow(e: &lookup::EscrowEventRow) -> Candidate {
        Candidate {
            chain: e.chain.clone(),
            signature: e.signature.clone(),
            ix_index: e.ix_index,
            inner_index: e.inner_index,
            slot: e.slot,
            commitment: e.commitment.clone(),
            kind: "escrow",
            payer: e.payer.clone().unwrap_or_default(),
            account: e.escrow.clone(),
            facility: e.facility.clone().unwrap_or_default(),
            mint: e.mint.clone().unwrap_or_default(),
            amount: e.amount.clone(),
            fee: e.fee.clone(),
            arbiter: e.arbiter.clone(),
            expires_at: e.expires_at,
            invoice_id: None,
            reference: None,
        }
    }
}

/// The terms in which `c` differs from intent `p` (empty: `c` pays `p`).
pub(crate) fn mismatch_reasons(p: &Payment, c: &Candidate) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |ok: bool, what: &'static str| {
        if !ok {
            out.push(what);
        }
    };
    check(c.chain == p.chain, "chain");
    check(c.kind == p.kind, "kind");
    check(c.facility == p.facility, "facility");
    check(c.mint == p.mint, "asset");
    check(c.amount == p.amount, "amount");
    if p.is_escrow() {
        check(c.arbiter == p.escrow_arbiter, "arbiter");
        check(c.expires_at == p.escrow_expires_at, "expiry");
    } else {
        check(
            c.invoice_id.as_deref() == Some(p.invoice_id.as_str()),
            "invoice",
        );
        check(
            c.reference.as_deref() == Some(p.reference.as_str()),
            "reference",
        );
    }
    out
}

/// A wallet's attempt the chain reports as failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub signature: String,
    pub slot: Option<i64>,
    pub error: String,
}

/// What the chain says of an intent.
#[derive(Debug, Default)]
struct Derived {
    status: &'static str,
    settlement: Option<Candidate>,
    fee: Option<String>,
    refunded: u64,
    released: u64,
    failure: Option<Failure>,
    /// Candidates that do not settle it, with their reasons and refunded/released totals.
    mismatches: Vec<(Candidate, Vec<&'static str>, u64, u64)>,
}

fn commitment_status(c: &str) -> &'static str {
    if c == "finalized" {
        "finalized"
    } else {
        "confirmed"
    }
}

/// The worker. Cheap to clone.
#[derive(Clone)]
pub struct Lifecycle {
    pool: PgPool,
    indexer: PgPool,
    chain: SolanaChain,
}

/// Timers of [`Lifecycle::run`].
#[derive(Debug, Clone, Copy)]
pub struct LifecycleConfig {
    /// How often due intents are expired (at most this late).
    pub expiry_every: Duration,
    /// How often recent attempts are looked up on chain for failures.
    pub watch_every: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            expiry_every: Duration::from_millis(500),
            watch_every: Duration::from_secs(2),
        }
    }
}

impl Lifecycle {
    /// `pool`: the payments database; `indexer`: the indexer's (the same one by default).
    pub fn new(pool: PgPool, indexer: PgPool, chain: SolanaChain) -> Lifecycle {
        Lifecycle {
            pool,
            indexer,
            chain,
        }
    }

    /// The follower of the indexer's Solana stream, with its cursor in `payments.cursors`.
    pub fn follower(&self) -> Follower<IndexerLog> {
        Follower::new(
            IndexerLog::new(
                self.indexer.clone(),
                StreamFilter {
                    chain: Some(SOLANA.into()),
                    ..StreamFilter::default()
                },
            ),
            Cursor::new(self.pool.clone(), "payments.cursors", "indexer:solana"),
        )
    }

    /// Follows the chain until `stop`: the stream, the expiry timer and the failed-attempt
    /// watcher, each in its own task.
    pub async fn run(self, config: LifecycleConfig, stop: impl Future<Output = ()> + Send) {
        let (tx, _) = tokio::sync::watch::channel(false);
        let stopped = |tx: &tokio::sync::watch::Sender<bool>| {
            let mut rx = tx.subscribe();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let follow = {
            let mut worker = self.clone();
            let until = stopped(&tx);
            tokio::spawn(async move {
                let follower = worker.follower();
                follower.run(&mut worker, until).await;
            })
        };
        let timers = {
            let worker = self.clone();
            let mut until = Box::pin(stopped(&tx));
            tokio::spawn(async move {
                let mut expiry = tokio::time::interval(config.expiry_every);
                let mut watch = tokio::time::interval(config.watch_every);
                expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = &mut until => return,
                        _ = expiry.tick() => {
                            if let Err(e) = worker.expire_due().await {
                                tracing::warn!(error = %e, "expiring payment intents failed");
                            }
                        }
                        _ = watch.tick() => {
                            if let Err(e) = worker.watch_attempts().await {
                                tracing::warn!(error = %e, "looking up payment attempts failed");
                            }
                        }
                    }
                }
            })
        };
        stop.await;
        let _ = tx.send(true);
        for t in [follow, timers] {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }

    /// Expires the intents whose TTL passed unpaid; returns how many moved.
    pub async fn expire_due(&self) -> Result<usize, PaymentError> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM payments.payments
              WHERE status IN ('pending', 'failed') AND expires_at <= now()
              ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut moved = 0;
        for id in due {
            if self.settle(&mut tx, id, None).await? {
                moved += 1;
            }
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Looks up, on chain, the transactions carrying the reference of intents a wallet asked
    /// a transaction for in the last few minutes: a failed one (which emits no event, so the
    /// indexer has nothing of it) is shown on the intent. Returns how many intents moved.
    pub async fn watch_attempts(&self) -> Result<usize, PaymentError> {
        let watched: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT DISTINCT p.id, p.reference FROM payments.attempts a
               JOIN payments.payments p ON p.id = a.payment_id
              WHERE a.source = 'request'
                AND a.requested_at > now() - make_interval(secs => $1)
                AND p.status IN ('pending', 'failed')
              ORDER BY p.id",
        )
        .bind(WATCH_WINDOW_SECS)
        .fetch_all(&self.pool)
        .await?;
        let mut moved = 0;
        for (id, reference) in watched {
            let Ok(reference) = reference.parse::<Pubkey>() else {
                continue;
            };
            let sigs = self.chain.signatures_for(&reference, 20).await?;
            // A successful one is about to be indexed: the stream settles it.
            if sigs.iter().any(|s| s.error.is_none()) {
                continue;
            }
            let Some(failed) = sigs.first() else {
                continue;
            };
            let failure = Failure {
                signature: failed.signature.clone(),
                slot: i64::try_from(failed.slot).ok(),
                error: failed.error.clone().unwrap_or_default(),
            };
            let mut tx = self.pool.begin().await?;
            if self.settle(&mut tx, id, Some(failure)).await? {
                moved += 1;
            }
            tx.commit().await?;
        }
        Ok(moved)
    }

    /// The intents an indexed row may concern.
    async fn affected(
        &self,
        conn: &mut PgConnection,
        e: &IndexedEvent,
    ) -> Result<Vec<Uuid>, PaymentError> {
        let text = |k: &str| e.data.get(k).and_then(Value::as_str).map(str::to_owned);
        let by_account = "SELECT id FROM payments.payments WHERE account = $1
                          UNION SELECT payment_id FROM payments.attempts WHERE account = $1
                          UNION SELECT payment_id FROM payments.mismatches WHERE account = $1";
        Ok(match e.source.as_str() {
            "payments" => {
                sqlx::query_scalar(
                    "SELECT id FROM payments.payments WHERE reference = $1 OR invoice_id = $2",
                )
                .bind(text("reference"))
                .bind(text("invoice_id"))
                .fetch_all(&mut *conn)
                .await?
            }
            "refunds" => {
                sqlx::query_scalar(by_account)
                    .bind(text("payment"))
                    .fetch_all(&mut *conn)
                    .await?
            }
            "escrows" => {
                let escrow = text("escrow");
                let mut ids: Vec<Uuid> = sqlx::query_scalar(by_account)
                    .bind(&escrow)
                    .fetch_all(&mut *conn)
                    .await?;
                if ids.is_empty() && e.kind == "escrow_opened" {
                    ids.extend(self.escrow_by_derivation(conn, e).await?);
                }
                ids
            }
            "rollbacks" => {
                sqlx::query_scalar(
                    "SELECT id FROM payments.payments WHERE signature = $1
                     UNION SELECT payment_id FROM payments.mismatches WHERE signature = $1",
                )
                .bind(&e.signature)
                .fetch_all(&mut *conn)
                .await?
            }
            _ => Vec::new(),
        })
    }

    /// An escrow opened by a wallet that never asked us for a transaction: the escrow account
    /// is derived from the payer and the intent's invoice, so try the unpaid escrow intents
    /// of the same facility, and remember the payer of the one it derives from.
    async fn escrow_by_derivation(
        &self,
        conn: &mut PgConnection,
        e: &IndexedEvent,
    ) -> Result<Option<Uuid>, PaymentError> {
        let text = |k: &str| e.data.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(escrow), Some(payer), Some(facility)) =
            (text("escrow"), text("payer"), text("facility"))
        else {
            return Ok(None);
        };
        let Ok(payer_key) = payer.parse::<Pubkey>() else {
            return Ok(None);
        };
        let open: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, invoice_id FROM payments.payments
              WHERE kind = 'escrow' AND facility = $1 AND status IN ('pending', 'failed', 'expired')
              ORDER BY created_at DESC LIMIT 2000",
        )
        .bind(&facility)
        .fetch_all(&mut *conn)
        .await?;
        for (id, invoice) in open {
            let Some(invoice) = hex::decode(&invoice)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
            else {
                continue;
            };
            if pay::escrow_pda(&payer_key, &invoice).to_string() == escrow {
                sqlx::query(
                    "INSERT INTO payments.attempts (payment_id, payer, account, source)
                     VALUES ($1, $2, $3, 'chain') ON CONFLICT (payment_id, payer) DO NOTHING",
                )
                .bind(id)
                .bind(&payer)
                .bind(&escrow)
                .execute(&mut *conn)
                .await?;
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Every on-chain candidate for `p`, oldest first.
    async fn candidates(
        &self,
        p: &Payment,
        accounts: &[String],
    ) -> Result<Vec<Candidate>, PaymentError> {
        let mut out: BTreeMap<(i64, String, i32, i32), Candidate> = BTreeMap::new();
        let mut add = |c: Candidate| {
            out.insert((c.slot, c.signature.clone(), c.ix_index, c.inner_index), c);
        };
        if p.is_escrow() {
            for account in accounts {
                for e in lookup::escrow_events(&self.indexer, &p.chain, account).await? {
                    if e.kind == "opened" {
                        add(Candidate::from_escrow(&e));
                    }
                }
            }
        } else {
            for r in query::payments_by_reference(&self.indexer, &p.reference).await? {
                add(Candidate::from_payment(r));
            }
            for r in query::payments_by_invoice(&self.indexer, &p.facility, &p.invoice_id).await? {
                add(Candidate::from_payment(r));
            }
        }
        Ok(out.into_values().collect())
    }

    /// What has been refunded and released of the payment or escrow at `c`.
    async fn totals(&self, c: &Candidate) -> Result<(u64, u64), PaymentError> {
        if c.kind == "payment" {
            let refunded =
                lookup::refunded_total(&self.indexer, &c.chain, &c.account, false).await?;
            return Ok((refunded, 0));
        }
        let (mut refunded, mut released) = (0u64, 0u64);
        for e in lookup::escrow_events(&self.indexer, &c.chain, &c.account).await? {
            let amount = parse_u64(&e.amount, "escrow amount")?;
            match e.kind.as_str() {
                "released" => released = released.saturating_add(amount),
                "refunded" => refunded = refunded.saturating_add(amount),
                _ => {}
            }
        }
        Ok((refunded, released))
    }

    async fn derive(
        &self,
        p: &Payment,
        accounts: &[String],
        failure: Option<Failure>,
    ) -> Result<Derived, PaymentError> {
        let mut d = Derived::default();
        for c in self.candidates(p, accounts).await? {
            let mut reasons = mismatch_reasons(p, &c);
            if reasons.is_empty() && d.settlement.is_none() {
                d.settlement = Some(c);
                continue;
            }
            if reasons.is_empty() {
                reasons.push("duplicate");
            }
            let (refunded, released) = self.totals(&c).await?;
            d.mismatches.push((c, reasons, refunded, released));
        }
        match &d.settlement {
            Some(c) => {
                d.status = commitment_status(&c.commitment);
                (d.refunded, d.released) = self.totals(c).await?;
                if c.kind == "payment" {
                    d.fee = Some(c.fee.clone());
                }
            }
            None => {
                // The last failed attempt stays shown until the intent expires or is paid.
                let failure = failure.or_else(|| {
                    (p.status == "failed").then(|| Failure {
                        signature: p.signature.clone().unwrap_or_default(),
                        slot: p.slot,
                        error: p.failure.clone().unwrap_or_default(),
                    })
                });
                d.status = if OffsetDateTime::now_utc() >= p.expires_at {
                    "expired"
                } else if failure.is_some() {
                    "failed"
                } else {
                    "pending"
                };
                if d.status == "failed" {
                    d.failure = failure;
                }
            }
        }
        Ok(d)
    }

    /// Locks intent `id`, derives it from the chain and writes any change with its history
    /// and events, in `conn`'s transaction. Returns whether the status changed.
    pub(crate) async fn settle(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
        failure: Option<Failure>,
    ) -> Result<bool, PaymentError> {
        let Some(p): Option<Payment> = sqlx::query_as(&format!(
            "SELECT {PAYMENT_COLS} FROM payments.payments WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(false);
        };
        let accounts: Vec<String> =
            sqlx::query_scalar("SELECT account FROM payments.attempts WHERE payment_id = $1")
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
        let d = self.derive(&p, &accounts, failure).await?;
        let s = d.settlement.as_ref();
        let (signature, slot) = match (s, &d.failure) {
            (Some(c), _) => (Some(c.signature.clone()), Some(c.slot)),
            (None, Some(f)) => (Some(f.signature.clone()), f.slot),
            (None, None) => (None, None),
        };
        let next = Payment {
            status: d.status.to_owned(),
            signature,
            slot,
            account: s.map(|c| c.account.clone()),
            ix_index: s.map(|c| c.ix_index),
            inner_index: s.map(|c| c.inner_index),
            payer: s.map(|c| c.payer.clone()).or_else(|| p.payer.clone()),
            fee: d.fee.clone(),
            refunded: d.refunded.to_string(),
            released: d.released.to_string(),
            failure: d.failure.as_ref().map(|f| f.error.clone()),
            ..p.clone()
        };
        let changed = next.status != p.status
            || next.signature != p.signature
            || next.slot != p.slot
            || next.account != p.account
            || next.ix_index != p.ix_index
            || next.inner_index != p.inner_index
            || next.payer != p.payer
            || next.fee != p.fee
            || next.refunded != p.refunded
            || next.released != p.released
            || next.failure != p.failure;
        let mut updated = p.clone();
        if changed {
            updated = sqlx::query_as(&format!(
                "UPDATE payments.payments SET status = $2, signature = $3, slot = $4, account = $5,
                     ix_index = $6, inner_index = $7, payer = $8, fee = $9::numeric,
                     refunded = $10::numeric, released = $11::numeric, failure = $12,
                     updated_at = now()
                  WHERE id = $1 RETURNING {PAYMENT_COLS}"
            ))
            .bind(id)
            .bind(&next.status)
            .bind(&next.signature)
            .bind(next.slot)
            .bind(&next.account)
            .bind(next.ix_index)
            .bind(next.inner_index)
            .bind(&next.payer)
            .bind(&next.fee)
            .bind(&next.refunded)
            .bind(&next.released)
            .bind(&next.failure)
            .fetch_one(&mut *conn)
            .await?;
        }
        self.record_mismatches(conn, &updated, &d.mismatches)
            .await?;
        let status_changed = updated.status != p.status;
        if status_changed {
            let detail = json!({ "from": p.status, "signature": updated.signature,
                                 "slot": updated.slot, "failure": updated.failure });
            crate::history(conn, id, &updated.status, &detail).await?;
            crate::events::publish(
                conn,
                &updated,
                "payment.status_changed",
                json!({"from": p.status}),
            )
            .await?;
        }
        // Refunds and releases keep the status: events of their own.
        for (event, kind, before, after) in [
            (
                "refunded",
                "payment.refunded",
                p.refunded_u64()?,
                d.refunded,
            ),
            (
                "escrow_released",
                "payment.escrow_released",
                p.released_u64()?,
                d.released,
            ),
        ] {
            if after > before {
                let amount = (after - before).to_string();
                let detail =
                    json!({ "event": event, "amount": amount, "total": after.to_string() });
                crate::history(conn, id, &updated.status, &detail).await?;
                crate::events::publish(
                    conn,
                    &updated,
                    kind,
                    json!({"amount_delta": amount, "total": after.to_string()}),
                )
                .await?;
            }
        }
        Ok(status_changed)
    }

    /// Brings `payments.mismatches` of `p` in line with the candidates that do not settle
    /// it: new ones are recorded (history and `payment.mismatch_detected`), changed ones
    /// updated, rolled-back ones removed (history).
    async fn record_mismatches(
        &self,
        conn: &mut PgConnection,
        p: &Payment,
        current: &[(Candidate, Vec<&'static str>, u64, u64)],
    ) -> Result<(), PaymentError> {
        type Key = (String, String, i32, i32);
        let stored: Vec<(Uuid, String, String, i32, i32)> = sqlx::query_as(
            "SELECT id, chain, signature, ix_index, inner_index FROM payments.mismatches
              WHERE payment_id = $1",
        )
        .bind(p.id)
        .fetch_all(&mut *conn)
        .await?;
        let stored: BTreeMap<Key, Uuid> = stored
            .into_iter()
            .map(|(id, c, s, i, n)| ((c, s, i, n), id))
            .collect();
        let mut seen: BTreeSet<Key> = BTreeSet::new();
        for (c, reasons, refunded, released) in current {
            let key = c.key();
            seen.insert(key.clone());
            let reasons: Vec<String> = reasons.iter().map(|r| (*r).to_owned()).collect();
            match stored.get(&key) {
                Some(id) => {
                    sqlx::query(
                        "UPDATE payments.mismatches SET slot = $2, commitment = $3, reasons = $4,
                             refunded = $5::numeric, released = $6::numeric, updated_at = now()
                          WHERE id = $1 AND (slot, commitment, reasons, refunded, released)
                                IS DISTINCT FROM ($2, $3, $4, $5::numeric, $6::numeric)",
                    )
                    .bind(id)
                    .bind(c.slot)
                    .bind(&c.commitment)
                    .bind(&reasons)
                    .bind(refunded.to_string())
                    .bind(released.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                None => {
                    let id = Uuid::now_v7();
                    sqlx::query(
                        "INSERT INTO payments.mismatches (id, payment_id, chain, signature,
                             ix_index, inner_index, slot, commitment, kind, payer, account,
                             facility, mint, amount, fee, arbiter, expires_at, invoice_id,
                             reference, reasons, refunded, released)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                             $14::numeric, $15::numeric, $16, $17, $18, $19, $20, $21::numeric,
                             $22::numeric)",
                    )
                    .bind(id)
                    .bind(p.id)
                    .bind(&c.chain)
                    .bind(&c.signature)
                    .bind(c.ix_index)
                    .bind(c.inner_index)
                    .bind(c.slot)
                    .bind(&c.commitment)
                    .bind(c.kind)
                    .bind(&c.payer)
                    .bind(&c.account)
                    .bind(&c.facility)
                    .bind(&c.mint)
                    .bind(&c.amount)
                    .bind(&c.fee)
                    .bind(&c.arbiter)
                    .bind(c.expires_at)
                    .bind(&c.invoice_id)
                    .bind(&c.reference)
                    .bind(&reasons)
                    .bind(refunded.to_string())
                    .bind(released.to_string())
                    .execute(&mut *conn)
                    .await?;
                    let mismatch = json!({
                        "id": id, "signature": c.signature, "payer": c.payer,
                        "account": c.account, "facility": c.facility, "mint": c.mint,
                        "amount": c.amount, "reasons": reasons, "commitment": c.commitment,
                    });
                    let detail = json!({ "event": "mismatch_detected", "mismatch": mismatch });
                    crate::history(conn, p.id, &p.status, &detail).await?;
                    crate::events::publish(
                        conn,
                        p,
                        "payment.mismatch_detected",
                        json!({ "mismatch": mismatch }),
                    )
                    .await?;
                }
            }
        }
        for (key, id) in &stored {
            if !seen.contains(key) {
                sqlx::query("DELETE FROM payments.mismatches WHERE id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                let detail = json!({ "event": "mismatch_rolled_back", "mismatch_id": id,
                                     "signature": key.1 });
                crate::history(conn, p.id, &p.status, &detail).await?;
            }
        }
        Ok(())
    }
}

impl Handler<IndexedEvent> for Lifecycle {
    async fn handle(
        &mut self,
        conn: &mut PgConnection,
        entries: &[IndexedEvent],
    ) -> Result<(), BoxError> {
        // Locked in id order, like every other writer of several intents: no deadlocks.
        let mut ids = BTreeSet::new();
        for e in entries {
            ids.extend(self.affected(conn, e).await?);
        }
        for id in ids {
            self.settle(conn, id, None).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent() -> Payment {
        let now = OffsetDateTime::now_utc();
        Payment {
            id: Uuid::nil(),
            created_by: Uuid::nil(),
            chain: "solana".into(),
            kind: "payment".into(),
            facility_id: "00".repeat(32),
            facility: "F".into(),
            mint: "M".into(),
            amount: "1000".into(),
            escrow_arbiter: None,
            escrow_expires_at: None,
            invoice_id: "ab".repeat(32),
            reference: "R".into(),
            label: "l".into(),
            memo: None,
            payer: None,
            status: "pending".into(),
            signature: None,
            slot: None,
            account: None,
            ix_index: None,
            inner_index: None,
            fee: None,
            refunded: "0".into(),
            released: "0".into(),
            failure: None,
            verified_at: None,
            expires_at: now,
            created_at: now,
            updated_at: now,
        }
    }

    fn paying(p: &Payment) -> Candidate {
        Candidate {
            chain: p.chain.clone(),
            signature: "sig".into(),
            ix_index: 0,
            inner_index: 0,
            slot: 1,
            commitment: "confirmed".into(),
            kind: "payment",
            payer: "P".into(),
            account: "A".into(),
            facility: p.facility.clone(),
            mint: p.mint.clone(),
            amount: p.amount.clone(),
            fee: "0".into(),
            arbiter: None,
            expires_at: None,
            invoice_id: Some(p.invoice_id.clone()),
            reference: Some(p.reference.clone()),
        }
    }

    #[test]
    fn every_term_must_match() {
        let p = intent();
        assert!(mismatch_reasons(&p, &paying(&p)).is_empty());
        let under = Candidate {
            amount: "1".into(),
            ..paying(&p)
        };
        assert_eq!(mismatch_reasons(&p, &under), ["amount"]);
        let elsewhere = Candidate {
            facility: "G".into(),
            mint: "N".into(),
            reference: Some("S".into()),
            ..paying(&p)
        };
        assert_eq!(
            mismatch_reasons(&p, &elsewhere),
            ["facility", "asset", "reference"]
        );
        let escrow = Payment {
            kind: "escrow".into(),
            escrow_arbiter: Some("Arb".into()),
            escrow_expires_at: Some(99),
            ..intent()
        };
        let held = Candidate {
            kind: "escrow",
            arbiter: Some("Arb".into()),
            expires_at: Some(99),
            invoice_id: None,
            reference: None,
            ..paying(&escrow)
        };
        assert!(mismatch_reasons(&escrow, &held).is_empty());
        let other_terms = Candidate {
            arbiter: Some("Me".into()),
            expires_at: Some(100),
            ..held.clone()
        };
        assert_eq!(
            mismatch_reasons(&escrow, &other_terms),
            ["arbiter", "expiry"]
        );
        assert_eq!(
            mismatch_reasons(&p, &held),
            ["kind", "invoice", "reference"]
        );
    }
}
