#![allow(clippy::unwrap_used, clippy::expect_used)]
//! cw-multi-test suite: the contract runs against multi-test's bank and wasm modules, next to
//! a cw20 token contract (`token.rs`), with real secp256k1 signatures for the bridge inbox.

mod bridge;
mod config;
mod escrow;
mod facility;
mod harness;
mod kyc;
mod pay;
mod refund;
mod schema;
mod settlement;
mod token;
