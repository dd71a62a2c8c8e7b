//! `advancia-kyc`: identity verification (a state machine over Postgres with a pluggable
//! provider; the default one checks what can be checked locally, MRZ check digits
//! included), content-addressed document storage, OFAC SDN sanctions screening of names
//! and wallet addresses, transparent risk scores, compliance reports, and the worker that
//! writes the compliance authority's KYC attestations on chain.

pub mod attestation;
pub mod documents;
pub mod model;
pub mod mrz;
pub mod provider;
pub mod reports;
pub mod risk;
pub mod s3;
pub mod sanctions;
mod service;

use advancia_db::{Migration, ServiceMigrations};

pub use model::*;
pub use service::{KycConfig, KycService};

/// Independent of other schemas (reads `chains.wallets`, `auth.wallets` and
/// `indexer.payments` at run time, never writes them).
pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "kyc",
    migrations: &[Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    }],
};

#[derive(Debug, thiserror::Error)]
pub enum KycError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The workflow does not allow this move.
    #[error("a verification cannot move from {from} to {to}")]
    IllegalTransition { from: String, to: String },
    /// The user already has a verification waiting for a decision.
    #[error("a verification is already open for this user")]
    AlreadyOpen,
    /// Approval of a verification with sanctions matches needs an explicit acknowledgement.
    #[error(
        "the applicant's name matches the sanctions list (best score {0}); approval must acknowledge it"
    )]
    SanctionsHit(f64),
    #[error(transparent)]
    Document(#[from] documents::DocumentError),
    #[error(transparent)]
    Chain(#[from] advancia_chains::ChainError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored KYC data is corrupt: {0}")]
    Corrupt(String),
}
