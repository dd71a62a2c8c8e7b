//! `advancia-kyc`: identity verification (a state machine over Postgres with a pluggable
//! provider; the default one checks what can be checked locally, MRZ check digits
//! included), content-addressed document storage, OFAC SDN sanctions screening of names
//! and wallet addresses, transparent risk scores, compliance reports, and the worker that
//! writes the compliance authority's KYC attestations on chain.

pub mod attestation;
pub mod directory;
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

pub use directory::{Directory, KycDirectory};
pub use model::*;
pub use service::{KycConfig, KycService};

/// The KYC service's outbox of `kyc.*` events (`kyc.decided`), in the transaction of the
/// decision; notifications and the event bus follow it.
pub const OUTBOX: advancia_outbox::Source = advancia_outbox::Source {
    name: "kyc.events",
    table: "kyc.events",
    subject_prefix: "events.kyc",
};

/// Independent of other schemas: what KYC needs of other services comes through its
/// [`KycDirectory`].
pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "kyc",
    migrations: &[
        Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/0001_init.sql"),
        },
        Migration {
            version: 2,
            name: "outbox",
            sql: include_str!("../migrations/0002_outbox.sql"),
        },
    ],
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
    /// A service KYC asks through its [`KycDirectory`] failed.
    #[error("{0} is unavailable")]
    Unavailable(String),
}
