//! The indexer's row shape without I/O: which table each `advancia-pay` event goes to and
//! its column values as text (cast in SQL by the indexer's sink), plus a borsh decoder for
//! the program's `emit_cpi!` event self-invocations that needs no anchor / solana-* crate.
//!
//! Shared by the indexer (`advancia-indexer`, which converts its anchor-typed events with
//! the `anchor` feature) and the Substreams module (`advancia-substreams`, which decodes
//! inner-instruction bytes straight from `sf.solana.type.v1.Block`s on wasm32). One mapping
//! for both is what makes their rows equal.

mod events;
mod tables;
mod tx;
mod u256;
mod values;

#[cfg(feature = "anchor")]
mod anchor;

pub use events::*;
pub use tables::*;
pub use tx::{EventRow, InnerInstruction, TxError, transaction_rows};
pub use u256::u256_be_decimal;
pub use values::event_values;

/// The `advancia-pay` program id (`FKE26Z8kY9E3bPUoDyV3wGWz7cNxtGFU3Zk3HgxaeC88`) as bytes;
/// the indexer's tests check it against `advancia_pay::ID`.
pub const PROGRAM_ID: [u8; 32] = [
    0xd4, 0xae, 0xca, 0xc3, 0x30, 0x65, 0xcc, 0x72, 0xb3, 0x4e, 0xcb, 0x87, 0x8a, 0x3c, 0xc4, 0x71,
    0x5a, 0xfe, 0xba, 0x32, 0x1d, 0xc7, 0x68, 0xcb, 0xe5, 0x20, 0x1e, 0xbc, 0xcb, 0x88, 0x4a, 0x21,
];
