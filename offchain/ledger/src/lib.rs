//! Advancia's double-entry ledger on Postgres (schema `ledger`).
//!
//! TigerBeetle's account/transfer model: client-chosen u128 ids with idempotent retries,
//! two-phase (pending → post/void/expiry) transfers, linked chains that commit all or
//! none, balance-limit flags, and one typed error per failed item. The transfer log is
//! the source of truth (hash-chained, append-only); balances are a projection that
//! [`Ledger::rebuild_balances`] recomputes. See `docs/decisions/0007-ledger-write-path.md`.

pub mod amount;
pub mod audit;
pub mod bench;
mod engine;
pub mod merkle;
pub mod projection;
pub mod rebuild;
pub mod reconcile;
pub mod reports;
pub mod settlement;
mod store;
pub mod types;
mod writer;

use std::time::Duration;

use advancia_db::{Migration, ServiceMigrations};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

pub use audit::{AuditBreak, AuditReport, BreakKind};
pub use engine::expiry_id;
pub use rebuild::RebuildReport;
pub use reconcile::{OnChainFact, ReconcileScope, ReconciliationReport};
pub use settlement::{SettlementBatch, SettlementProof};
pub use types::*;

use store::{ACCOUNT_COLS, AccountRow, TRANSFER_COLS, TransferRow, uuid};
use writer::{Job, Op, Reply};

pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "ledger",
    migrations: &[
        Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/0001_init.sql"),
        },
        Migration {
            version: 2,
            name: "write_path",
            sql: include_str!("../migrations/0002_write_path.sql"),
        },
        Migration {
            version: 3,
            name: "projection",
            sql: include_str!("../migrations/0003_projection.sql"),
        },
    ],
};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migration(#[from] advancia_db::DbError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Conflicts with what is stored: a ledger id or code already defined differently.
    #[error("{0}")]
    Conflict(String),
    #[error("the ledger writer has stopped")]
    WriterGone,
    #[error("account {0:#x} not found")]
    AccountNotFound(u128),
    #[error("account {0:#x} has pending amounts and cannot be closed")]
    AccountHasPendingBalance(u128),
    #[error("transfer failed: {0}")]
    Transfer(#[from] TransferError),
    #[error("report figure exceeds the 128-bit signed range")]
    Overflow,
    #[error(transparent)]
    Merkle(#[from] merkle::MerkleError),
}

/// How writes reach Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// One writer task merges concurrent requests into one transaction (default; faster).
    Batched,
    /// Every request runs its own transaction, locking head and accounts in fixed order.
    PerRequest,
}

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub mode: WriteMode,
    /// Upper bound of items (accounts + transfers) merged into one transaction.
    pub max_batch: usize,
    /// Queue depth of the writer; callers wait when it is full (back-pressure).
    pub queue: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            mode: WriteMode::Batched,
            max_batch: 8_192,
            queue: 1_024,
        }
    }
}

/// Handle to the ledger; cheap to clone. Reads go straight to the pool, writes through
/// the writer (batched mode) or their own transaction (per-request mode).
#[derive(Clone)]
pub struct Ledger {
    pool: PgPool,
    mode: WriteMode,
    tx: Option<mpsc::Sender<Job>>,
}

/// Ledger clock: nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Ledger {
    /// Starts the writer (batched mode) on the current tokio runtime. The schema must be
    /// migrated ([`MIGRATIONS`]).
    pub fn new(pool: PgPool, config: LedgerConfig) -> Self {
        let tx = match config.mode {
            WriteMode::Batched => {
                let (tx, rx) = mpsc::channel(config.queue.max(1));
                tokio::spawn(writer::run(pool.clone(), rx, config.max_batch.max(1)));
                Some(tx)
            }
            WriteMode::PerRequest => None,
        };
        Self {
            pool,
            mode: config.mode,
            tx,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn mode(&self) -> WriteMode {
        self.mode
    }

    async fn submit(&self, op: Op) -> Result<Reply, LedgerError> {
        match &self.tx {
            Some(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.send(Job { op, reply })
                    .await
                    .map_err(|_| LedgerError::WriterGone)?;
                rx.await.map_err(|_| LedgerError::WriterGone)?
            }
            None => writer::execute(&self.pool, std::slice::from_ref(&op))
                .await?
                .pop()
                .ok_or(LedgerError::WriterGone),
        }
    }

    /// Defines an asset (currency) ledger; idempotent for identical definitions.
    pub async fn create_ledger(&self, def: &LedgerDef) -> Result<(), LedgerError> {
        if def.id == 0 || def.code.is_empty() || def.scale > 38 {
            return Err(LedgerError::InvalidInput(
                "ledger id must be non-zero, code non-empty, scale at most 38".into(),
            ));
        }
        let stored: Option<(String, i16)> = sqlx::query_as(
            "INSERT INTO ledger.ledgers (id, code, scale) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id RETURNING code, scale",
        )
        .bind(i64::from(def.id))
        .bind(&def.code)
        .bind(i16::from(def.scale))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| match &e {
            // Another ledger has this code (it was a 500).
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                LedgerError::Conflict(format!("code {} belongs to another ledger", def.code))
            }
            _ => LedgerError::from(e),
        })?;
        match stored {
            Some((code, scale)) if code == def.code && scale == i16::from(def.scale) => Ok(()),
            _ => Err(LedgerError::Conflict(format!(
                "ledger {} already defined differently",
                def.id
            ))),
        }
    }

    pub async fn ledgers(&self) -> Result<Vec<LedgerDef>, LedgerError> {
        let rows: Vec<(i64, String, i16)> =
            sqlx::query_as("SELECT id, code, scale FROM ledger.ledgers ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(id, code, scale)| {
                Ok(LedgerDef {
                    id: u32::try_from(id).map_err(|_| LedgerError::Corrupt("ledger id".into()))?,
                    code,
                    scale: u8::try_from(scale)
                        .map_err(|_| LedgerError::Corrupt("ledger scale".into()))?,
                })
            })
            .collect()
    }

    /// Creates accounts; one result per input, in order. Existing id with the same body
    /// returns the stored account.
    pub async fn create_accounts(
        &self,
        accounts: &[NewAccount],
    ) -> Result<Vec<Result<Account, AccountError>>, LedgerError> {
        match self.submit(Op::Accounts(accounts.to_vec())).await? {
            Reply::Accounts(r) => Ok(r),
            _ => Err(LedgerError::WriterGone),
        }
    }

    /// Applies transfers in order; one result per input. Linked chains commit all or none.
    pub async fn create_transfers(
        &self,
        transfers: &[NewTransfer],
    ) -> Result<Vec<Result<Transfer, TransferError>>, LedgerError> {
        if transfers.is_empty() {
            return Ok(Vec::new());
        }
        match self.submit(Op::Transfers(transfers.to_vec())).await? {
            Reply::Transfers(r) => Ok(r),
            _ => Err(LedgerError::WriterGone),
        }
    }

    /// One transfer; its error becomes [`LedgerError::Transfer`].
    pub async fn create_transfer(&self, t: &NewTransfer) -> Result<Transfer, LedgerError> {
        self.create_transfers(std::slice::from_ref(t))
            .await?
            .pop()
            .ok_or(LedgerError::WriterGone)?
            .map_err(LedgerError::Transfer)
    }

    /// Posts `amount` of pending transfer `pending_id` (`None`: the full amount).
    pub async fn post_pending(
        &self,
        id: u128,
        pending_id: u128,
        amount: Option<u128>,
    ) -> Result<Transfer, LedgerError> {
        self.create_transfer(&NewTransfer {
            id,
            pending_id,
            amount: amount.unwrap_or(0),
            flags: transfer_flags::POST_PENDING,
            ..NewTransfer::default()
        })
        .await
    }

    /// Voids pending transfer `pending_id`, releasing its reservation.
    pub async fn void_pending(&self, id: u128, pending_id: u128) -> Result<Transfer, LedgerError> {
        self.create_transfer(&NewTransfer {
            id,
            pending_id,
            flags: transfer_flags::VOID_PENDING,
            ..NewTransfer::default()
        })
        .await
    }

    /// Voids every pending transfer whose timeout has passed on the ledger clock (at most
    /// `limit`); returns the expiry voids written. Posting or voiding an expired transfer
    /// fails with [`TransferError::PendingTransferExpired`] even before this runs.
    pub async fn expire_pending(&self, limit: u32) -> Result<Vec<Transfer>, LedgerError> {
        match self
            .submit(Op::Expire {
                limit: i64::from(limit.max(1)),
            })
            .await?
        {
            Reply::Expired(v) => Ok(v),
            _ => Err(LedgerError::WriterGone),
        }
    }

    /// Background expiry: runs [`Self::expire_pending`] every `interval` until the
    /// returned handle is aborted.
    pub fn spawn_expiry_task(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let ledger = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                match ledger.expire_pending(10_000).await {
                    Ok(v) if !v.is_empty() => {
                        tracing::info!(expired = v.len(), "pending transfers expired")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "expiry run failed"),
                }
            }
        })
    }

    /// Closes an account (no pending amounts allowed); it then rejects new transfers.
    pub async fn close_account(&self, id: u128) -> Result<Account, LedgerError> {
        match self.submit(Op::Close(id)).await? {
            Reply::Closed(r) => r,
            _ => Err(LedgerError::WriterGone),
        }
    }

    pub async fn account(&self, id: u128) -> Result<Option<Account>, LedgerError> {
        let row: Option<AccountRow> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLS} FROM ledger.accounts WHERE id = $1"
        ))
        .bind(uuid(id))
        .fetch_optional(&self.pool)
        .await?;
        row.map(AccountRow::into_account).transpose()
    }

    pub async fn balance(&self, id: u128) -> Result<Option<Balance>, LedgerError> {
        Ok(self.account(id).await?.map(|a| a.balance))
    }

    pub async fn transfer(&self, id: u128) -> Result<Option<Transfer>, LedgerError> {
        let row: Option<TransferRow> = sqlx::query_as(&format!(
            "SELECT {TRANSFER_COLS} FROM ledger.transfers WHERE id = $1"
        ))
        .bind(uuid(id))
        .fetch_optional(&self.pool)
        .await?;
        row.map(TransferRow::into_transfer).transpose()
    }

    pub async fn lookup_by_external_ref(
        &self,
        chain: &str,
        signature: &str,
        ix_index: u32,
    ) -> Result<Option<Transfer>, LedgerError> {
        let row: Option<TransferRow> = sqlx::query_as(&format!(
            "SELECT {TRANSFER_COLS} FROM ledger.transfers
             WHERE ext_chain = $1 AND ext_signature = $2 AND ext_ix_index = $3"
        ))
        .bind(chain)
        .bind(signature)
        .bind(i64::from(ix_index))
        .fetch_optional(&self.pool)
        .await?;
        row.map(TransferRow::into_transfer).transpose()
    }

    /// Transfers touching `account` (either side), oldest first, after seq `after`.
    pub async fn account_transfers(
        &self,
        account: u128,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Transfer>, LedgerError> {
        let rows: Vec<TransferRow> = sqlx::query_as(&format!(
            "SELECT {TRANSFER_COLS} FROM ledger.transfers
             WHERE (debit_account_id = $1 OR credit_account_id = $1) AND seq > $2
             ORDER BY seq LIMIT $3"
        ))
        .bind(uuid(account))
        .bind(store::to_i64(after)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TransferRow::into_transfer).collect()
    }

    /// Walks the audit chain; the report names the first broken seq and how it broke.
    pub async fn verify_audit_chain(&self) -> Result<AuditReport, LedgerError> {
        audit::verify(&self.pool).await
    }

    /// Recomputes balances from the transfer log and compares (and with `apply`, fixes).
    pub async fn rebuild_balances(&self, apply: bool) -> Result<RebuildReport, LedgerError> {
        rebuild::rebuild(&self.pool, apply).await
    }
}
