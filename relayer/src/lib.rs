//! Advancia bridge nodes: the validator (follows a source chain's `Dispatch` events at a
//! confirmation depth and signs each message's EIP-712 attestation into Postgres) and the
//! relayer (gathers M-of-N signatures, simulates, submits and confirms `process` on the
//! destination, with persisted retry state). Wire format: docs/decisions/0012-bridge.md.

pub mod contract;
pub mod keys;
pub mod message;
pub mod metrics;
pub mod relayer;
pub mod solana;
pub mod source;
pub mod store;
pub mod validator;

use advancia_db::{Migration, ServiceMigrations};

/// Postgres schema `bridge`, shared by validators and relayers.
pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "bridge",
    migrations: &[Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    }],
};
