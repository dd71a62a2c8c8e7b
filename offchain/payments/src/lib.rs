//! `advancia-payments`: payment intents for wallets that sign their own transactions.
//!
//! 1. [`PaymentService::initiate`] records an intent (facility, amount, asset, optional escrow
//!    terms) with a random invoice id and a random Solana Pay reference key.
//! 2. [`PaymentService::transaction_request`] builds the unsigned transaction for the wallet
//!    that asks (Solana Pay transaction request): the wallet is fee payer and signer; our
//!    program's `pay_*` or `open_escrow_*` instruction carries the reference key.
//! 3. [`PaymentService::refresh`] derives the status from the indexer's rows (confirmed,
//!    finalized), falling back to the chain for transactions it has not indexed (failed ones).
//! 4. [`PaymentService::confirm`] checks the finalized event and the on-chain payment account
//!    against the intent and returns the ledger transfer the indexer posted.
//! 5. [`PaymentService::refund`] / [`PaymentService::release`] build the facility's refund or
//!    the escrow release/refund for the wallet entitled to sign it.
//!
//! No key is held here: every transaction leaves unsigned.

pub mod model;
mod service;
mod tx;

use advancia_chains::ChainError;
use advancia_db::{Migration, ServiceMigrations};
use advancia_indexer::IndexerError;
use advancia_ledger::LedgerError;

pub use model::{
    Amount, Confirmation, EscrowTerms, HistoryFilter, InitiateRequest, LedgerLeg, LedgerRecord,
    Payment, TransactionResponse,
};
pub use service::{PaymentService, PaymentsConfig};

pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "payments",
    migrations: &[
        Migration {
            version: 1,
            name: "payments",
            sql: include_str!("../migrations/0001_payments.sql"),
        },
        Migration {
            version: 2,
            name: "traceparent",
            sql: include_str!("../migrations/0002_traceparent.sql"),
        },
    ],
};

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("{0}")]
    Invalid(String),
    #[error("payment not found")]
    NotFound,
    #[error("facility {0} is not registered on chain")]
    FacilityNotFound(String),
    #[error("facility {0} is deactivated")]
    FacilityInactive(String),
    #[error("asset {0} is not accepted by the program")]
    AssetNotAccepted(String),
    #[error("the program is paused by its admin")]
    Paused,
    #[error("the program is not initialized on this chain")]
    NotDeployed,
    #[error(
        "amounts above {threshold} base units need a valid KYC attestation for wallet {wallet}: {reason}"
    )]
    KycRequired {
        wallet: String,
        threshold: u64,
        reason: &'static str,
    },
    #[error("the payment request expired at {0}")]
    Expired(String),
    #[error("this invoice is already paid on chain")]
    AlreadyPaid,
    #[error("the payment is {0}, not finalized on chain")]
    NotFinalized(String),
    #[error("the on-chain payment does not match the request: {0}")]
    Mismatch(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("nothing to refund: {0}")]
    NothingToRefund(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Indexer(#[from] IndexerError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored payment is corrupt: {0}")]
    Corrupt(String),
}
