//! Analytics over the chain and the payment intents (schema `analytics`, the only one its SQL
//! names): a rollup worker follows the indexer's event stream and the payment service's
//! outbox (ADR 0023) and keeps hourly and daily buckets per (chain, facility, mint) up to
//! date behind cursors of its own; requests read the buckets. User figures are the auth
//! service's (`advancia_auth::stats`). See docs/decisions/0018-analytics.md.

pub mod forecast;
pub mod query;
pub mod report;
pub mod rollup;

use advancia_db::{Migration, ServiceMigrations};

pub use query::{AnalyticsService, Granularity, Period};
pub use rollup::Rollup;

pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "analytics",
    migrations: &[
        Migration {
            version: 1,
            name: "analytics",
            sql: include_str!("../migrations/0001_analytics.sql"),
        },
        Migration {
            version: 2,
            name: "followers",
            sql: include_str!("../migrations/0002_followers.sql"),
        },
    ],
};

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// Malformed input: a value outside what the API documents.
    #[error("{0}")]
    Invalid(String),
    /// Well-formed input that cannot be answered as it stands: `to` not after `from`, a
    /// period too long for hourly figures, a report too large, too little history for the
    /// hold-out asked for.
    #[error("{0}")]
    Refused(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("stored data is not what analytics expects: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("indexed chain data: {0}")]
    Indexer(#[from] advancia_indexer_store::StoreError),
    #[error(transparent)]
    Follow(#[from] advancia_db::follow::FollowError),
}

/// Base units from Postgres `numeric::text` (integers only).
pub(crate) fn units(s: &str) -> Result<i128, AnalyticsError> {
    s.parse::<i128>()
        .map_err(|_| AnalyticsError::Corrupt(format!("amount `{s}` is not an integer")))
}
