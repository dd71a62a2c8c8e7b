//! `advancia-indexer`: streams advancia-pay events from a Solana JSON-RPC node into
//! Postgres (schema `indexer`) exactly once and follows them to finality (undoing
//! transactions the chain dropped). Readers follow its stream (`advancia-indexer-store`);
//! the ledger's posting rules are one of them (ADR 0023).
//!
//! One [`Indexer::step`] = ingest (signatures newer than the cursor, in batches; rows and
//! cursor in one database transaction), then finality (statuses of non-final rows). See
//! `docs/decisions/0008-indexer-exactly-once.md`.

pub mod bench;
pub mod copy;
pub mod cosmos;
pub mod evm;
pub mod instructions;
pub mod metrics;
pub mod rows;
pub mod sink;
pub mod source;

use anchor_lang::prelude::Pubkey;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use advancia_indexer_store::{
    MIGRATIONS, NOTIFY_CHANNEL, SOLANA, StoreError, lookup, query, stream,
};
pub use metrics::Metrics;

pub use sink::Cursor;
pub use source::{ChainTransaction, DecodedEvent, SignatureState, SolanaRpc};

/// Commitment of indexed rows (`processed` is never indexed: it can vanish without trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Commitment {
    Confirmed,
    Finalized,
}

impl Commitment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Finalized => "finalized",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("rpc transport error: {0}")]
    Http(#[from] reqwest::Error),
    #[error("rpc {method} failed: {message}")]
    Rpc { method: String, message: String },
    #[error("malformed rpc data: {0}")]
    Malformed(String),
    #[error("cannot parse rpc json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid pagination cursor {0:?}")]
    BadCursor(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

impl From<StoreError> for IndexerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(e) => IndexerError::Database(e),
            StoreError::Malformed(m) => IndexerError::Malformed(m),
            StoreError::BadCursor(c) => IndexerError::BadCursor(c),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IndexerConfig {
    pub rpc_url: String,
    pub program: Pubkey,
    /// Level at which transactions are ingested.
    pub commitment: Commitment,
    /// Transactions per database transaction.
    pub batch_size: usize,
    /// Cursor row name (one per source).
    pub source_name: String,
    /// Ingest batches per [`Indexer::step`] before finality and feed get their turn.
    pub batches_per_step: u64,
    /// `getTransaction` requests in flight at once.
    pub fetch_concurrency: usize,
}

impl IndexerConfig {
    pub fn new(rpc_url: impl Into<String>) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            program: advancia_pay::ID,
            commitment: Commitment::Confirmed,
            batch_size: 100,
            source_name: "solana:advancia-pay".into(),
            batches_per_step: 20,
            fetch_concurrency: 8,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    pub transactions: u64,
    pub events: u64,
    pub batches: u64,
    pub finalized: u64,
    pub undone: u64,
}

pub struct Indexer {
    pool: PgPool,
    rpc: SolanaRpc,
    config: IndexerConfig,
    metrics: Arc<Metrics>,
}

impl Indexer {
    pub fn new(pool: PgPool, config: IndexerConfig) -> Self {
        Self {
            rpc: SolanaRpc::new(config.rpc_url.clone(), config.program),
            pool,
            config,
            metrics: Metrics::new(),
        }
    }

    /// Counters and gauges of this indexer (serve them with [`metrics::serve`]).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn rpc(&self) -> &SolanaRpc {
        &self.rpc
    }

    pub async fn cursor(&self) -> Result<Cursor, IndexerError> {
        sink::load_cursor(&self.pool, &self.config.source_name).await
    }

    /// Ingests transactions newer than the cursor, at most `max_batches` batches (`None`:
    /// until caught up). Each batch commits its rows together with the cursor.
    pub async fn ingest(&self, max_batches: Option<u64>) -> Result<StepReport, IndexerError> {
        let cursor = self.cursor().await?;
        // Head before listing: once every listed signature is written, the indexer has
        // read the chain up to at least this slot.
        let head = self.rpc.slot(self.config.commitment).await?;
        let mut read_up_to = cursor.slot.unwrap_or(0);
        let mut caught_up = true;
        let sigs = self
            .rpc
            .signatures_since(cursor.signature.as_deref(), self.config.commitment)
            .await?;
        let mut report = StepReport::default();
        for chunk in sigs.chunks(self.config.batch_size.max(1)) {
            if max_batches.is_some_and(|m| report.batches >= m) {
                break;
            }
            // Fetch concurrently (the RPC round trip dominates), keep chain order.
            let fetched: Vec<Option<ChainTransaction>> = futures_util::stream::iter(chunk)
                .map(|sig| self.rpc.transaction(sig, self.config.commitment))
                .buffered(self.config.fetch_concurrency.max(1))
                .try_collect()
                .await?;
            // Listed but gone (dropped in between): stop before it; the cursor stays there
            // and the finality pass sorts out the fork.
            let batch: Vec<ChainTransaction> = fetched.into_iter().map_while(|t| t).collect();
            let complete = batch.len() == chunk.len();
            let by_kind =
                sink::write_batch_by_kind(&self.pool, SOLANA, &self.config.source_name, &batch)
                    .await?;
            let m = &self.metrics;
            for (counter, n) in m.events.iter().zip(by_kind) {
                counter.fetch_add(n, Ordering::Relaxed);
            }
            report.events += by_kind.iter().sum::<u64>();
            report.transactions += batch.len() as u64;
            report.batches += 1;
            m.transactions
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            m.batches.fetch_add(1, Ordering::Relaxed);
            if let Some(last) = batch.last() {
                read_up_to = read_up_to.max(last.slot);
                m.cursor_slot.store(last.slot, Ordering::Relaxed);
            }
            if !complete {
                caught_up = false;
                break;
            }
        }
        if report.transactions < sigs.len() as u64 {
            caught_up = false;
        }
        if caught_up {
            read_up_to = read_up_to.max(head);
        }
        let now = self.rpc.slot(self.config.commitment).await?;
        self.metrics.chain_head_slot.store(now, Ordering::Relaxed);
        self.metrics.head_lag_slots.store(
            i64::try_from(now).unwrap_or(i64::MAX) - i64::try_from(read_up_to).unwrap_or(0),
            Ordering::Relaxed,
        );
        Ok(report)
    }

    /// Checks non-final transactions against the chain: finalized ones are marked so (with
    /// the slot the chain reports), dropped ones are undone and the cursor rewound.
    pub async fn finalize(&self) -> Result<StepReport, IndexerError> {
        let mut report = StepReport::default();
        loop {
            let pending = sink::pending_signatures(&self.pool, SOLANA, 256).await?;
            if pending.is_empty() {
                break;
            }
            let states = self.rpc.statuses(&pending).await?;
            let mut progressed = false;
            let mut landed = Vec::new();
            for (sig, state) in pending.iter().zip(states) {
                match state {
                    SignatureState::Dropped => {
                        if sink::undo_transaction(&self.pool, SOLANA, &self.config.source_name, sig)
                            .await?
                        {
                            tracing::info!(signature = %sig, "dropped by the chain; rows undone");
                            report.undone += 1;
                            progressed = true;
                        }
                    }
                    SignatureState::Landed { slot, commitment } => {
                        if commitment == Commitment::Finalized {
                            report.finalized += 1;
                            progressed = true;
                        }
                        landed.push((sig.clone(), slot, commitment));
                    }
                }
            }
            sink::set_commitments(&self.pool, SOLANA, &landed).await?;
            if !progressed || pending.len() < 256 {
                break;
            }
        }
        let m = &self.metrics;
        m.finality_updates
            .fetch_add(report.finalized, Ordering::Relaxed);
        m.rollbacks.fetch_add(report.undone, Ordering::Relaxed);
        Ok(report)
    }

    /// One pass: ingest (at most `batches_per_step` batches), then finality.
    pub async fn step(&mut self) -> Result<StepReport, IndexerError> {
        let mut report = self
            .ingest(Some(self.config.batches_per_step.max(1)))
            .await?;
        let f = self.finalize().await?;
        report.finalized = f.finalized;
        report.undone = f.undone;
        if f.undone > 0 {
            // The cursor was rewound: re-read the fork's replacement now.
            let again = self
                .ingest(Some(self.config.batches_per_step.max(1)))
                .await?;
            report.transactions += again.transactions;
            report.events += again.events;
            report.batches += again.batches;
        }
        Ok(report)
    }
}
