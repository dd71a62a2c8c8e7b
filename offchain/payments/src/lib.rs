//! `advancia-payments`: payment intents for wallets that sign their own transactions.
//!
//! 1. [`PaymentService::initiate`] records an intent (facility, amount, asset, optional escrow
//!    terms) with a random invoice id and a random Solana Pay reference key.
//! 2. [`PaymentService::transaction_request`] builds the unsigned transaction for the wallet
//!    that asks (Solana Pay transaction request): the wallet is fee payer and signer; our
//!    program's `pay_*` or `open_escrow_*` instruction carries the reference key.
//! 3. The [`Lifecycle`] worker follows the indexer's stream and moves every intent by itself
//!    (pending → confirmed → finalized, back on a rollback, expired at its TTL), settling it
//!    only with an on-chain payment that matches it in every term and recording any other as
//!    a mismatch. It is the one writer of status; reads never change anything. Each change
//!    is a domain event in the outbox [`OUTBOX`] (ADR 0023).
//! 4. [`PaymentService::confirm`] checks the finalized event and the on-chain payment account
//!    against the intent and returns the ledger transfers its posting rules made.
//! 5. [`PaymentService::refund`] / [`PaymentService::release`] build the facility's refund or
//!    the escrow release/refund for the wallet entitled to sign it.
//!
//! No key is held here: every transaction leaves unsigned.

pub mod events;
mod lifecycle;
pub mod model;
pub mod reads;
mod service;
mod tx;

use advancia_chains::ChainError;
use advancia_db::{Migration, ServiceMigrations};
use advancia_indexer_store::StoreError;
use advancia_ledger::LedgerError;
use sqlx::PgConnection;
use uuid::Uuid;

pub use lifecycle::{Lifecycle, LifecycleConfig};
pub use model::{
    Amount, Confirmation, EscrowTerms, HistoryFilter, InitiateRequest, LedgerLeg, LedgerRecord,
    Mismatch, Payment, TransactionResponse,
};
pub use service::{AssetUnits, PaymentService, PaymentsConfig, format_units, short_key};

/// The payment service's outbox of `payment.*` events (see [`events`]).
pub const OUTBOX: advancia_outbox::Source = advancia_outbox::Source {
    name: "payments.events",
    table: "payments.events",
    subject_prefix: "events.payments",
};

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
        Migration {
            version: 3,
            name: "lifecycle",
            sql: include_str!("../migrations/0003_lifecycle.sql"),
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
    #[error("indexed chain data: {0}")]
    Indexer(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored payment is corrupt: {0}")]
    Corrupt(String),
}

/// Appends a row to the intent's status history (support and audit; the API's history).
pub(crate) async fn history(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    detail: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payments.payment_status_history (payment_id, status, detail, traceparent)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(status)
    .bind(detail)
    .bind(advancia_telemetry::current_traceparent())
    .execute(conn)
    .await?;
    Ok(())
}
