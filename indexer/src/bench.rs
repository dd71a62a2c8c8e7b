//! Sink benchmark (`advancia-indexer bench`, `cargo xtask bench indexer`): ingest events/s
//! through the real sink code path ([`sink::write_batch`]: rows and cursor in one database
//! transaction per batch) from pre-decoded transactions, against plain `COPY`s (text, and
//! binary with the sink's own streams) of the same rows into identical tables in the same
//! run, interleaved with the sink in rounds, in a database of its own.
//!
//! The transactions are generated ([`synthetic_transactions`]) with the shapes the chain
//! produces (base58 signatures and keys, 1–4 events per transaction, the event mix of a
//! payment workload), so the figure isolates the sink from the RPC source.

use std::time::{Duration, Instant};

use advancia_db::DbConfig;
use advancia_pay::client::AdvanciaEvent;
use advancia_pay::events::*;
use advancia_pay::state::{AssetTotal, NATIVE_SOL};
use anchor_lang::prelude::Pubkey;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::copy::CopyBatch;
use crate::rows::{self, EventRows, TABLES, TransactionRows};
use crate::source::{ChainTransaction, DecodedEvent};
use crate::{Commitment, IndexerError, MIGRATIONS, SOLANA, sink};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Transactions written through the batched sink (≈2.5 events each).
    pub transactions: usize,
    /// Transactions per database transaction (the indexer's `--batch-size`).
    pub batch_size: usize,
    /// Transactions written through the per-row reference sink (slower; fewer).
    pub per_row_transactions: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            transactions: 40_000,
            batch_size: 100,
            per_row_transactions: 4_000,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub events: usize,
    pub transactions: usize,
    pub batch_size: usize,
    /// Batched sink: events/s (transactions rows, event rows and cursor per batch).
    pub sink_events_per_sec: f64,
    /// The first sink (one INSERT per row), same batch size, on a prefix of the data.
    pub per_row_events_per_sec: f64,
    /// Text `COPY` of the same transaction and event rows into clones of the tables.
    pub copy_events_per_sec: f64,
    /// Binary `COPY` of the same rows (the very streams the sink sends, one `COPY` per
    /// table for the whole run) into other clones.
    pub copy_binary_events_per_sec: f64,
}

impl BenchReport {
    pub fn summary(&self) -> String {
        format!(
            "indexer sink bench: {} events in {} transactions, batches of {}: \
             batched sink {:.0} events/s, per-row sink {:.0} events/s, COPY {:.0} events/s \
             (binary COPY {:.0}); batched/COPY {:.1}% (/binary COPY {:.1}%), \
             batched/per-row {:.1}x",
            self.events,
            self.transactions,
            self.batch_size,
            self.sink_events_per_sec,
            self.per_row_events_per_sec,
            self.copy_events_per_sec,
            self.copy_binary_events_per_sec,
            100.0 * self.sink_events_per_sec / self.copy_events_per_sec,
            100.0 * self.sink_events_per_sec / self.copy_binary_events_per_sec,
            self.sink_events_per_sec / self.per_row_events_per_sec,
        )
    }
}

/// Deterministic xorshift so runs are comparable without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        b
    }

    fn key(&mut self) -> Pubkey {
        Pubkey::new_from_array(self.bytes32())
    }
}

/// One bridge event of every kind (for equivalence tests), keyed by `n`.
pub fn every_bridge_event(n: u64) -> Vec<advancia_pay::client::BridgeEvent> {
    use advancia_pay::client::BridgeEvent as B;
    let mut r = Rng(n.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let mut amount = [0u8; 32];
    amount[8..].copy_from_slice(&r.bytes32()[8..]); // beyond u64: a uint256 on the wire
    vec![
        B::BridgeConfigured(BridgeConfigured {
            local_domain: 1_399_811_149,
            validators: vec![[1; 20], [2; 20]],
            threshold: 2,
            set_version: n,
            paused: false,
        }),
        B::BridgeRouteRegistered(BridgeRouteRegistered {
            local_mint: NATIVE_SOL,
            destination_domain: 31337,
            remote_asset: [0; 32],
            local_decimals: 9,
            remote_decimals: 18,
        }),
        B::BridgeDispatched(BridgeDispatched {
            id: r.bytes32(),
            origin_domain: 1_399_811_149,
            sequence: n,
            sender: r.bytes32(),
            destination_domain: 31337,
            recipient: r.bytes32(),
            asset: [0; 32],
            amount,
            local_mint: NATIVE_SOL,
            local_amount: r.next(),
        }),
        B::BridgeProcessed(BridgeProcessed {
            id: r.bytes32(),
            origin_domain: 31337,
            sequence: n,
            sender: r.bytes32(),
            recipient: r.key(),
            mint: NATIVE_SOL,
            amount: r.next(),
            set_version: 1,
        }),
    ]
}

/// One event of every kind the program emits (for equivalence tests), keyed by `n`.
pub fn every_event_kind(n: u64) -> Vec<AdvanciaEvent> {
    let mut r = Rng(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    vec![
        AdvanciaEvent::ConfigUpdated(ConfigUpdated {
            admin: r.key(),
            treasury: r.key(),
            settlement_authority: r.key(),
            compliance_authority: r.key(),
            fee_bps: 250,
            paused: n.is_multiple_of(2),
        }),
        AdvanciaEvent::AdminProposed(AdminProposed {
            admin: r.key(),
            proposed: r.key(),
        }),
        AdvanciaEvent::AdminAccepted(AdminAccepted {
            previous: r.key(),
            admin: r.key(),
        }),
        AdvanciaEvent::AssetSet(AssetSet {
            mint: r.key(),
            kyc_threshold: u64::MAX - n,
            enabled: true,
        }),
        AdvanciaEvent::FacilityRegistered(FacilityRegistered {
            facility: r.key(),
            facility_id: r.bytes32(),
            authority: r.key(),
            payout_wallet: r.key(),
        }),
        AdvanciaEvent::FacilityPayoutUpdated(FacilityPayoutUpdated {
            facility: r.key(),
            payout_wallet: r.key(),
        }),
        AdvanciaEvent::FacilityDeactivated(FacilityDeactivated { facility: r.key() }),
        payment(&mut r, u64::MAX - 1),
        AdvanciaEvent::PaymentRefunded(PaymentRefunded {
            payment: r.key(),
            facility: r.key(),
            payer: r.key(),
            mint: r.key(),
            amount: u64::MAX,
            refunded_total: u64::MAX,
        }),
        AdvanciaEvent::EscrowOpened(EscrowOpened {
            escrow: r.key(),
            payer: r.key(),
            facility: r.key(),
            arbiter: r.key(),
            mint: NATIVE_SOL,
            amount: 5,
            expires_at: -1,
        }),
        AdvanciaEvent::EscrowReleased(EscrowReleased {
            escrow: r.key(),
            by: r.key(),
            amount: 3,
            fee: 1,
            released_total: 3,
        }),
        AdvanciaEvent::EscrowRefunded(EscrowRefunded {
            escrow: r.key(),
            by: r.key(),
            amount: 2,
        }),
        AdvanciaEvent::EscrowClosed(EscrowClosed {
            escrow: r.key(),
            rent_to: r.key(),
        }),
        AdvanciaEvent::AttestationWritten(AttestationWritten {
            wallet: r.key(),
            level: u8::MAX,
            expires_at: i64::MAX,
        }),
        AdvanciaEvent::AttestationRevoked(AttestationRevoked { wallet: r.key() }),
        AdvanciaEvent::BatchCommitted(BatchCommitted {
            batch_number: n,
            root: r.bytes32(),
            entry_count: u64::MAX,
            totals: vec![
                AssetTotal {
                    mint: NATIVE_SOL,
                    amount: u128::MAX,
                },
                AssetTotal {
                    mint: r.key(),
                    amount: 0,
                },
            ],
        }),
    ]
}

fn payment(r: &mut Rng, amount: u64) -> AdvanciaEvent {
    AdvanciaEvent::PaymentMade(PaymentMade {
        payment: r.key(),
        payer: r.key(),
        facility: r.key(),
        invoice_id: r.bytes32(),
        reference: r.key(),
        mint: NATIVE_SOL,
        amount,
        fee: amount / 40,
        paid_at: 1_760_000_000 + (r.next() % 1_000_000) as i64,
    })
}

/// `count` transactions shaped like the chain's: base58 64-byte signatures, slots rising,
/// 1–4 events each; ~70% payments, the rest refunds, escrow and attestation events.
pub fn synthetic_transactions(seed: u64, count: usize) -> Vec<ChainTransaction> {
    let mut r = Rng(seed | 1);
    let facilities: Vec<Pubkey> = (0..20).map(|_| r.key()).collect();
    let mut slot = 1_000u64;
    (0..count)
        .map(|_| {
            slot += 1 + r.next() % 2;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r.bytes32());
            sig[32..].copy_from_slice(&r.bytes32());
            let n = 1 + (r.next() % 4) as usize;
            let events = (0..n)
                .map(|i| {
                    let roll = r.next() % 100;
                    let amount = 1_000 + r.next() % 1_000_000_000;
                    let event = match roll {
                        0..70 => {
                            let mut p = payment(&mut r, amount);
                            if let AdvanciaEvent::PaymentMade(p) = &mut p {
                                p.facility = facilities[(roll % 20) as usize];
                            }
                            p
                        }
                        70..80 => AdvanciaEvent::PaymentRefunded(PaymentRefunded {
                            payment: r.key(),
                            facility: facilities[(roll % 20) as usize],
                            payer: r.key(),
                            mint: NATIVE_SOL,
                            amount,
                            refunded_total: amount,
                        }),
                        80..88 => AdvanciaEvent::EscrowOpened(EscrowOpened {
                            escrow: r.key(),
                            payer: r.key(),
                            facility: facilities[(roll % 20) as usize],
                            arbiter: r.key(),
                            mint: NATIVE_SOL,
                            amount,
                            expires_at: 1_760_000_000,
                        }),
                        88..95 => AdvanciaEvent::EscrowReleased(EscrowReleased {
                            escrow: r.key(),
                            by: r.key(),
                            amount,
                            fee: amount / 40,
                            released_total: amount,
                        }),
                        _ => AdvanciaEvent::AttestationWritten(AttestationWritten {
                            wallet: r.key(),
                            level: 2,
                            expires_at: 1_770_000_000,
                        }),
                    };
                    DecodedEvent {
                        ix_index: i as u32,
                        inner_index: 1,
                        event,
                    }
                })
                .collect();
            ChainTransaction {
                signature: bs58::encode(sig).into_string(),
                slot,
                block_time: Some(1_760_000_000 + slot as i64 / 2),
                failed: false,
                commitment: Commitment::Confirmed,
                events,
                bridge_events: Vec::new(),
                instructions: vec!["pay_sol".to_string(); n],
            }
        })
        .collect()
}

fn events_in(txs: &[ChainTransaction]) -> usize {
    txs.iter().map(|t| t.events.len()).sum()
}

/// Creates `advancia_indexer_bench_<pid>`, runs everything, drops it.
pub async fn run(o: &BenchOptions) -> Result<BenchReport, IndexerError> {
    let admin_url = DbConfig::from_env().url;
    let name = format!("advancia_indexer_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(&admin_url).await?;
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await?;
    let url = advancia_db::with_database(&admin_url, &name);
    let result = async {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await?;
        advancia_db::migrate(&pool, &[&MIGRATIONS])
            .await
            .map_err(|e| IndexerError::Malformed(format!("migrate: {e}")))?;
        let report = run_in(&pool, o).await;
        pool.close().await;
        report
    }
    .await;
    let _ = admin
        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await;
    let _ = admin.close().await;
    result
}

/// The run is split into this many rounds: each writes its share of the transactions
/// through the sink, then `COPY`s the same rows into the clones (text, then binary), so the
/// sink and its references see the same load on a machine shared with other work.
const ROUNDS: usize = 8;

async fn run_in(pool: &PgPool, o: &BenchOptions) -> Result<BenchReport, IndexerError> {
    let txs = synthetic_transactions(42, o.transactions);
    let events = events_in(&txs);
    let batch = o.batch_size.max(1);

    // Same rows again by COPY into clones (same columns, indexes and defaults).
    let mut conn = pool.acquire().await?;
    clone_tables(&mut conn, "bench").await?;
    clone_tables(&mut conn, "bench_binary").await?;
    let per_round = (txs.len().div_ceil(ROUNDS).div_ceil(batch) * batch).max(1);
    let (mut sink_time, mut text_time, mut binary_time) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut written = 0;
    let mut next_seq = 1;
    for round in txs.chunks(per_round) {
        let start = Instant::now();
        for chunk in round.chunks(batch) {
            written += sink::write_batch(pool, SOLANA, "bench", chunk).await?;
        }
        sink_time += start.elapsed();
        text_time += copy_text(&mut conn, round).await?;
        let (time, rows) = copy_binary(&mut conn, round, next_seq).await?;
        binary_time += time;
        next_seq += rows;
    }
    drop(conn);
    if written as usize != events {
        return Err(IndexerError::Malformed(format!(
            "sink wrote {written} of {events} events"
        )));
    }
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    let (sink_rate, copy_rate, copy_binary) = (rate(sink_time), rate(text_time), rate(binary_time));
    eprintln!("batched sink: {sink_rate:.0} events/s ({events} events)");
    eprintln!("COPY: {copy_rate:.0} events/s");
    eprintln!("binary COPY: {copy_binary:.0} events/s");

    // The per-row reference sink on other transactions (fresh rows, same shapes).
    let reference = synthetic_transactions(7, o.per_row_transactions);
    let start = Instant::now();
    let mut written = 0;
    for chunk in reference.chunks(batch) {
        written += sink::write_batch_per_row(pool, SOLANA, "bench-per-row", chunk).await?;
    }
    let per_row = written as f64 / start.elapsed().as_secs_f64();
    eprintln!("per-row sink: {per_row:.0} events/s ({written} events)");

    Ok(BenchReport {
        events,
        transactions: txs.len(),
        batch_size: batch,
        sink_events_per_sec: sink_rate,
        per_row_events_per_sec: per_row,
        copy_events_per_sec: copy_rate,
        copy_binary_events_per_sec: copy_binary,
    })
}

/// Creates `<schema>.*` clones of the indexer's tables (`LIKE … INCLUDING ALL`: same
/// indexes, defaults, checks; no foreign keys, as the indexer's own since migration 0006).
async fn clone_tables(conn: &mut PgConnection, schema: &str) -> Result<(), IndexerError> {
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await?;
    for t in std::iter::once("transactions").chain(sink::EVENT_TABLES) {
        conn.execute(
            format!("CREATE TABLE {schema}.{t} (LIKE indexer.{t} INCLUDING ALL)").as_str(),
        )
        .await?;
    }
    Ok(())
}

/// Binary `COPY` of the rows of `txs` into the `bench_binary.*` clones: the streams the
/// sink builds ([`CopyBatch`], stream positions from `first_seq` included), encoded before
/// the clock starts and sent as one `COPY` per table in one transaction. Returns the time
/// taken and the event rows.
async fn copy_binary(
    conn: &mut PgConnection,
    txs: &[ChainTransaction],
    first_seq: i64,
) -> Result<(Duration, i64), IndexerError> {
    let mut rows = CopyBatch::of(SOLANA, txs)?;
    rows.set_first_seq(first_seq);
    let events = i64::try_from(rows.events()).unwrap_or(i64::MAX);
    let start = Instant::now();
    let mut tx = conn.begin().await?;
    rows.copy_in(&mut tx, "bench_binary").await?;
    tx.commit().await?;
    Ok((start.elapsed(), events))
}

/// Text `COPY` of the transaction and event rows of `txs` into the `bench.*` clones, timed
/// from the first `COPY` to the last.
async fn copy_text(
    conn: &mut PgConnection,
    txs: &[ChainTransaction],
) -> Result<Duration, IndexerError> {
    let tx_rows = TransactionRows::of(txs)?;
    let ev_rows = EventRows::of(txs)?;
    // Text is built before the clock starts (the sink's clock includes its encoding).
    let mut copies = vec![(
        "COPY bench.transactions (chain, signature, slot, commitment, failed, block_time, \
         event_count, instructions) FROM STDIN"
            .to_string(),
        rows::transactions_copy_text(SOLANA, &tx_rows),
    )];
    for (table, r) in TABLES.iter().zip(&ev_rows.tables) {
        if r.is_empty() {
            continue;
        }
        let cols: Vec<&str> = table.cols.iter().map(|c| c.0).collect();
        copies.push((
            format!(
                "COPY bench.{} ({}, {}) FROM STDIN",
                table.name,
                rows::KEY_COLUMNS,
                cols.join(", ")
            ),
            rows::copy_text(SOLANA, r),
        ));
    }
    let start = Instant::now();
    for (statement, data) in copies {
        let mut copy = conn.copy_in_raw(&statement).await?;
        copy.send(data.into_bytes()).await?;
        copy.finish().await?;
    }
    Ok(start.elapsed())
}
