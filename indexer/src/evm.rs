//! EVM source: the AdvanciaBridge contract's logs (`contracts/evm`), read over JSON-RPC with
//! alloy, written to the same tables as the Solana path: `Dispatch` and `Process` to
//! `bridge_messages`, every other bridge event to `admin_events`.
//!
//! Row keys: chain `evm:<chain id>`, signature = transaction hash, slot = block number,
//! `ix_index` = the log's index in its block, `inner_index` 0.
//!
//! Finality is a confirmation depth, as bridge validators use it: a row is `finalized` once
//! `depth` blocks are on top of its block, `confirmed` before. While rows are not final the
//! hashes of their blocks (and of the cursor's block) are kept in `indexer.evm_blocks`; each
//! step compares them with the chain, and from the first height whose hash changed (a
//! reorg) the rows are undone, recorded in `rollbacks` and the range re-read. Final rows are
//! never undone: a reorg deeper than the depth breaks the depth's promise, which is the
//! operator's choice of depth to prevent.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEventInterface;
use serde_json::json;
use sqlx::PgPool;

use crate::metrics::Metrics;
use crate::rows::{ADMIN, BRIDGE, EventRows};
use crate::sink::{self, i64_of};
use crate::{Commitment, IndexerError};

// Generated bindings: the event/constructor arity is the contract's, not ours to shorten.
mod bindings {
    #![allow(clippy::too_many_arguments)]
    alloy::sol!(
        #[derive(Debug)]
        AdvanciaBridge,
        "../contracts/evm/out/AdvanciaBridge.json"
    );
}
pub use bindings::AdvanciaBridge;

use AdvanciaBridge::AdvanciaBridgeEvents as BridgeEvent;

#[derive(Debug, Clone)]
pub struct EvmConfig {
    pub rpc_url: String,
    /// Address of the AdvanciaBridge contract.
    pub bridge: Address,
    /// Blocks on top of a block before its rows are final.
    pub depth: u64,
    /// First block read when there is no cursor yet (the contract's deployment block).
    pub start_block: u64,
    /// Blocks read per step (one `eth_getLogs` and one database transaction).
    pub max_blocks: u64,
}

impl EvmConfig {
    pub fn new(rpc_url: impl Into<String>, bridge: Address) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            bridge,
            depth: 12,
            start_block: 0,
            max_blocks: 2_000,
        }
    }
}

/// What one [`EvmIndexer::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvmStepReport {
    pub head: u64,
    pub blocks: u64,
    pub transactions: u64,
    pub events: u64,
    /// Transactions whose rows became final.
    pub finalized: u64,
    /// Transactions undone because their block was reorganised away.
    pub undone: u64,
    /// Last block read after the step.
    pub cursor: Option<u64>,
}

/// A decoded bridge log ready to become a row.
struct LogRow {
    tx: String,
    block: u64,
    block_hash: String,
    log_index: u64,
    block_time: Option<i64>,
    name: String,
    table: usize,
    values: Vec<Option<String>>,
}

fn rpc_err(method: &str) -> impl Fn(alloy::transports::TransportError) -> IndexerError + '_ {
    move |e| IndexerError::Rpc {
        method: method.to_owned(),
        message: e.to_string(),
    }
}

fn hex_of(bytes: impl AsRef<[u8]>) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// The row of one of our bridge's logs (`Ok(None)` for a log marked removed).
fn decode_log(log: &Log) -> Result<Option<LogRow>, IndexerError> {
    if log.removed {
        return Ok(None);
    }
    let tx = log
        .transaction_hash
        .ok_or_else(|| IndexerError::Malformed("bridge log without transaction hash".into()))?;
    let at = |what: &str| IndexerError::Malformed(format!("bridge log in {tx} without {what}"));
    let block = log.block_number.ok_or_else(|| at("block number"))?;
    let block_hash = log.block_hash.ok_or_else(|| at("block hash"))?;
    let log_index = log.log_index.ok_or_else(|| at("log index"))?;
    let event = BridgeEvent::decode_log(&log.inner)
        .map_err(|e| IndexerError::Malformed(format!("bridge log {tx}#{log_index}: {e}")))?
        .data;
    fn s(v: impl ToString) -> Option<String> {
        Some(v.to_string())
    }
    let (name, table, values) = match &event {
        BridgeEvent::Dispatch(d) => (
            "dispatch".to_owned(),
            BRIDGE,
            vec![
                s("dispatched"),
                s(hex_of(d.id)),
                s(d.originDomain),
                s(d.sequence),
                s(hex_of(d.sender)),
                s(d.destinationDomain),
                s(hex_of(d.recipient)),
                s(hex_of(d.asset)),
                s(d.amount),
            ],
        ),
        BridgeEvent::Process(p) => (
            "process".to_owned(),
            BRIDGE,
            vec![
                s("processed"),
                s(hex_of(p.id)),
                s(p.originDomain),
                s(p.sequence),
                None,
                None,
                s(hex_of(p.recipient)),
                s(hex_of(p.asset)),
                s(p.amount),
            ],
        ),
        other => {
            // Owner and liquidity events are kept whole: name and raw log.
            let debug = format!("{other:?}");
            let name = debug
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned();
            let body = json!({
                "event": name,
                "topics": log.topics().iter().map(hex_of).collect::<Vec<_>>(),
                "data": hex_of(&log.data().data),
            });
            (name.clone(), ADMIN, vec![s(name), s(body)])
        }
    };
    Ok(Some(LogRow {
        tx: tx.to_string(),
        block,
        block_hash: block_hash.to_string(),
        log_index,
        block_time: log.block_timestamp.and_then(|t| i64::try_from(t).ok()),
        name,
        table,
        values,
    }))
}

pub struct EvmIndexer {
    pool: PgPool,
    provider: DynProvider,
    config: EvmConfig,
    chain: String,
    source: String,
    metrics: Arc<Metrics>,
}

impl EvmIndexer {
    /// Asks the node for its chain id (part of the row chain name and cursor name).
    pub async fn connect(pool: PgPool, config: EvmConfig) -> Result<Self, IndexerError> {
        let url = config
            .rpc_url
            .parse()
            .map_err(|e| IndexerError::InvalidConfig(format!("EVM RPC URL: {e}")))?;
        let provider = ProviderBuilder::new().connect_http(url).erased();
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(rpc_err("eth_chainId"))?;
        let chain = format!("evm:{chain_id}");
        let source = format!("{chain}:{:#x}", config.bridge);
        Ok(Self {
            pool,
            provider,
            config,
            chain,
            source,
            metrics: Metrics::new(),
        })
    }

    /// Row chain name, `evm:<chain id>`.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Cursor name, `evm:<chain id>:<bridge address>`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Counters and gauges of this source; blocks play the role of slots.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The last block fully read.
    pub async fn cursor(&self) -> Result<Option<u64>, IndexerError> {
        Ok(sink::load_cursor(&self.pool, &self.source).await?.slot)
    }

    /// Reorg check, then the blocks after the cursor up to the head (at most `max_blocks`),
    /// then finality for rows `depth` deep.
    pub async fn step(&self) -> Result<EvmStepReport, IndexerError> {
        let head = self
            .provider
            .get_block_number()
            .await
            .map_err(rpc_err("eth_blockNumber"))?;
        let final_head = head.checked_sub(self.config.depth);
        let mut report = EvmStepReport {
            head,
            undone: self.undo_reorged().await?,
            ..Default::default()
        };
        let cursor = self.cursor().await?;
        let from = cursor.map_or(self.config.start_block, |c| c + 1);
        if from <= head {
            let to = head.min(from.saturating_add(self.config.max_blocks.max(1) - 1));
            let (txs, events) = self.ingest(from, to, final_head).await?;
            report.blocks = to - from + 1;
            report.transactions = txs;
            report.events = events;
        }
        report.finalized = self.finalize(final_head).await?;
        report.cursor = self.cursor().await?;
        let m = &self.metrics;
        m.chain_head_slot.store(head, Ordering::Relaxed);
        let read = report.cursor.unwrap_or(0);
        m.cursor_slot.store(read, Ordering::Relaxed);
        m.head_lag_slots.store(
            i64::try_from(head.saturating_sub(read)).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        m.transactions
            .fetch_add(report.transactions, Ordering::Relaxed);
        m.finality_updates
            .fetch_add(report.finalized, Ordering::Relaxed);
        m.rollbacks.fetch_add(report.undone, Ordering::Relaxed);
        Ok(report)
    }

    /// The block hash the chain has now at `number` (`None`: the chain is shorter).
    async fn chain_hash(&self, number: u64) -> Result<Option<String>, IndexerError> {
        let block = self
            .provider
            .get_block_by_number(number.into())
            .await
            .map_err(rpc_err("eth_getBlockByNumber"))?;
        Ok(block.map(|b| b.header.hash.to_string()))
    }

    /// Compares the stored hashes of non-final blocks with the chain; from the first that
    /// differs, undoes the rows, records the rollbacks and rewinds the cursor. Returns the
    /// transactions undone.
    async fn undo_reorged(&self) -> Result<u64, IndexerError> {
        let stored: Vec<(i64, String)> = sqlx::query_as(
            "SELECT number, hash FROM indexer.evm_blocks WHERE chain = $1 ORDER BY number",
        )
        .bind(&self.chain)
        .fetch_all(&self.pool)
        .await?;
        let mut fork = None;
        for (number, hash) in stored {
            let n = u64::try_from(number).unwrap_or_default();
            if self.chain_hash(n).await?.as_deref() != Some(hash.as_str()) {
                fork = Some(number);
                break;
            }
        }
        let Some(fork) = fork else {
            return Ok(0);
        };
        let mut db = self.pool.begin().await?;
        sink::lock_event_seq(&mut db).await?;
        let undone: Vec<String> = sqlx::query_scalar(&format!(
            "WITH gone AS (
               DELETE FROM indexer.transactions
                WHERE chain = $1 AND slot >= $2 AND commitment <> 'finalized'
               RETURNING signature, slot, event_count){}
             INSERT INTO indexer.rollbacks (chain, signature, slot, events_removed)
             SELECT $1, signature, slot, event_count FROM gone ORDER BY slot, signature
             RETURNING signature",
            sink::delete_event_rows_of_gone()
        ))
        .bind(&self.chain)
        .bind(fork)
        .fetch_all(&mut *db)
        .await?;
        sqlx::query("DELETE FROM indexer.evm_blocks WHERE chain = $1 AND number >= $2")
            .bind(&self.chain)
            .bind(fork)
            .execute(&mut *db)
            .await?;
        let rewound = u64::try_from(fork - 1).ok();
        sink::save_cursor(&mut db, &self.source, None, rewound).await?;
        sink::notify(&mut db, &self.chain).await?;
        db.commit().await?;
        tracing::warn!(chain = %self.chain, fork, undone = undone.len(), "reorg: rows undone, range re-read");
        Ok(undone.len() as u64)
    }

    /// Reads blocks `from..=to` and writes their rows, the hashes of non-final blocks and
    /// the cursor in one database transaction. Returns (transactions, events) written.
    async fn ingest(
        &self,
        from: u64,
        to: u64,
        final_head: Option<u64>,
    ) -> Result<(u64, u64), IndexerError> {
        let filter = Filter::new()
            .address(self.config.bridge)
            .from_block(from)
            .to_block(to);
        let logs = self
            .provider
            .get_logs(&filter)
            .await
            .map_err(rpc_err("eth_getLogs"))?;
        // The cursor block's hash is read after the logs: if the chain reorganised in
        // between, the next step sees a different hash at `to` and re-reads.
        let to_hash = self.chain_hash(to).await?.ok_or_else(|| {
            IndexerError::Malformed(format!("block {to} vanished while it was read"))
        })?;
        let mut rows: Vec<LogRow> = Vec::with_capacity(logs.len());
        for log in &logs {
            if log.address() != self.config.bridge {
                return Err(IndexerError::Malformed(format!(
                    "log of {} in a filter for {}",
                    log.address(),
                    self.config.bridge
                )));
            }
            rows.extend(decode_log(log)?);
        }
        rows.sort_by_key(|r| (r.block, r.log_index));
        let is_final = |block: u64| final_head.is_some_and(|f| block <= f);
        let commitment = |block: u64| {
            if is_final(block) {
                Commitment::Finalized
            } else {
                Commitment::Confirmed
            }
        };

        // Transactions in chain order, each with its events.
        let mut txs: Vec<(&LogRow, Vec<&LogRow>)> = Vec::new();
        for r in &rows {
            match txs.last_mut() {
                Some((first, events)) if first.tx == r.tx => events.push(r),
                _ => txs.push((r, vec![r])),
            }
        }
        let mut db = self.pool.begin().await?;
        sink::lock_event_seq(&mut db).await?;
        let mut sigs = Vec::new();
        let mut slots = Vec::new();
        let mut commitments = Vec::new();
        let mut times = Vec::new();
        let mut counts = Vec::new();
        let mut names = Vec::new();
        for (first, events) in &txs {
            sigs.push(first.tx.clone());
            slots.push(i64_of(first.block)?);
            commitments.push(commitment(first.block).as_str());
            times.push(first.block_time);
            counts.push(i32::try_from(events.len()).unwrap_or(i32::MAX));
            names.push(
                events
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        let fresh: Vec<String> = sqlx::query_scalar(
            "INSERT INTO indexer.transactions
                 (chain, signature, slot, commitment, failed, block_time, event_count, instructions)
             SELECT $1, s, sl, c, false, bt, n, string_to_array(ins, ',')
               FROM unnest($2::text[], $3::int8[], $4::text[], $5::int8[], $6::int4[], $7::text[])
                 AS u(s, sl, c, bt, n, ins)
             ON CONFLICT DO NOTHING RETURNING signature",
        )
        .bind(&self.chain)
        .bind(&sigs)
        .bind(&slots)
        .bind(&commitments)
        .bind(&times)
        .bind(&counts)
        .bind(&names)
        .fetch_all(&mut *db)
        .await?;
        let fresh: std::collections::HashSet<String> = fresh.into_iter().collect();
        let mut event_rows = EventRows::new();
        let mut ordinal = 0i64;
        for (first, events) in txs.iter().filter(|(f, _)| fresh.contains(&f.tx)) {
            for e in events {
                let t = &mut event_rows.tables[e.table];
                t.signature.push(first.tx.clone());
                t.ix_index
                    .push(i32::try_from(e.log_index).unwrap_or(i32::MAX));
                t.inner_index.push(0);
                t.slot.push(i64_of(e.block)?);
                t.commitment.push(commitment(e.block).as_str());
                t.block_time.push(e.block_time);
                t.ordinal.push(ordinal);
                ordinal += 1;
                for (col, v) in t.cols.iter_mut().zip(&e.values) {
                    col.push(v.clone());
                }
            }
        }
        let first_seq = sink::reserve_seq(&mut db, ordinal).await?;
        let inserted =
            sink::insert_event_rows(&mut db, "indexer", &self.chain, &event_rows, first_seq)
                .await?;
        // Hashes of the non-final blocks rows came from, and of the cursor block.
        let mut blocks: Vec<(i64, String)> = Vec::new();
        for r in rows.iter().filter(|r| !is_final(r.block)) {
            blocks.push((i64_of(r.block)?, r.block_hash.clone()));
        }
        if !is_final(to) {
            blocks.push((i64_of(to)?, to_hash.clone()));
        }
        blocks.dedup();
        let (numbers, hashes): (Vec<i64>, Vec<String>) = blocks.into_iter().unzip();
        sqlx::query(
            "INSERT INTO indexer.evm_blocks (chain, number, hash)
             SELECT $1, n, h FROM unnest($2::int8[], $3::text[]) AS u(n, h)
             ON CONFLICT (chain, number) DO UPDATE SET hash = EXCLUDED.hash",
        )
        .bind(&self.chain)
        .bind(&numbers)
        .bind(&hashes)
        .execute(&mut *db)
        .await?;
        sink::save_cursor(&mut db, &self.source, Some(&to_hash), Some(to)).await?;
        if inserted > 0 {
            sink::notify(&mut db, &self.chain).await?;
        }
        db.commit().await?;
        self.metrics.batches.fetch_add(1, Ordering::Relaxed);
        Ok((fresh.len() as u64, inserted))
    }

    /// Marks rows of blocks at or below `final_head` finalized (new stream positions, so
    /// followers see the change) and forgets those blocks' hashes.
    async fn finalize(&self, final_head: Option<u64>) -> Result<u64, IndexerError> {
        let Some(final_head) = final_head else {
            return Ok(0);
        };
        let final_head = i64_of(final_head)?;
        let pending: Vec<(String, i64)> = sqlx::query_as(
            "SELECT signature, slot FROM indexer.transactions
              WHERE chain = $1 AND commitment <> 'finalized' AND slot <= $2",
        )
        .bind(&self.chain)
        .bind(final_head)
        .fetch_all(&self.pool)
        .await?;
        let updates: Vec<(String, u64, Commitment)> = pending
            .into_iter()
            .map(|(sig, slot)| {
                (
                    sig,
                    u64::try_from(slot).unwrap_or_default(),
                    Commitment::Finalized,
                )
            })
            .collect();
        sink::set_commitments(&self.pool, &self.chain, &updates).await?;
        sqlx::query("DELETE FROM indexer.evm_blocks WHERE chain = $1 AND number <= $2")
            .bind(&self.chain)
            .bind(final_head)
            .execute(&self.pool)
            .await?;
        Ok(updates.len() as u64)
    }
}
