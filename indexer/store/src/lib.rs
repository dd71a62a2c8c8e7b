//! `advancia-indexer-store`: the indexer's Postgres schema (`indexer`) and every read of
//! it: partner queries ([`query`]), point lookups ([`lookup`]), the cursors' progress
//! ([`progress`]) and the live stream by position ([`stream`]), which other components
//! follow through [`advancia_db::follow::Follower`] with [`stream::IndexerLog`].
//!
//! The indexer (`advancia-indexer`) is the only writer. Readers depend on this crate, not
//! on the indexer with its chain clients, so following the chain costs them no Solana
//! dependencies.

pub mod lookup;
pub mod progress;
pub mod query;
pub mod stream;

use advancia_db::{Migration, ServiceMigrations};

pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "indexer",
    migrations: &[
        Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/0001_init.sql"),
        },
        Migration {
            version: 2,
            name: "lookup_indexes",
            sql: include_str!("../migrations/0002_lookup_indexes.sql"),
        },
        Migration {
            version: 3,
            name: "stream",
            sql: include_str!("../migrations/0003_stream.sql"),
        },
        Migration {
            version: 4,
            name: "invoice_index",
            sql: include_str!("../migrations/0004_invoice_index.sql"),
        },
        Migration {
            version: 5,
            name: "bridge",
            sql: include_str!("../migrations/0005_bridge.sql"),
        },
        Migration {
            version: 6,
            name: "copy_sink",
            sql: include_str!("../migrations/0006_copy_sink.sql"),
        },
    ],
};

/// Chain name used in rows and ledger external references.
pub const SOLANA: &str = "solana";

/// Channel the indexer's writers notify on commit (see [`stream`]).
pub const NOTIFY_CHANNEL: &str = "indexer_events";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("malformed indexed data: {0}")]
    Malformed(String),
    #[error("invalid pagination cursor {0:?}")]
    BadCursor(String),
}

pub(crate) fn i64_of(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Malformed(format!("{v} exceeds i64")))
}
