//! Advancia bridge nodes: the validator (follows a source chain's `Dispatch` events at a
//! confirmation depth and signs each message's EIP-712 attestation into Postgres) and the
//! relayer (gathers M-of-N signatures, simulates, submits and confirms `process` on the
//! destination, with persisted retry state). Wire format: docs/decisions/0012-bridge.md.

pub mod attestation;
pub mod contract;
pub mod gather;
pub mod journal;
pub mod keys;
pub mod message;
pub mod metrics;
pub mod relayer;
pub mod solana;
pub mod source;
pub mod store;
pub mod validator;
pub mod validator_http;

use advancia_db::{Migration, ServiceMigrations};

/// Postgres schema `bridge`: a validator's own store (claims, signatures, publication
/// indexes) or a relayer's (its copy of verified attestations, delivery queue). The same
/// schema serves both roles; two nodes never share one database (ADR 0028).
pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "bridge",
    migrations: &[
        Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/0001_init.sql"),
        },
        Migration {
            version: 2,
            name: "publication",
            sql: include_str!("../migrations/0002_publication.sql"),
        },
    ],
};
