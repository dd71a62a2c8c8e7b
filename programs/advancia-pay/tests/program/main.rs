//! Program tests in solana-program-test's bank runtime. One binary (linking the runtime is the
//! slow part), one module per area.
#![allow(deprecated)] // solana-program-test 3.1 flags itself as "agave-unstable-api".
#![allow(clippy::unwrap_used)] // test harness: a failed setup step should abort the test.

mod harness;
mod idl;

mod bridge;
mod config;
mod cu;
mod escrow;
mod facility;
mod kyc;
mod pay;
mod refund;
mod settlement;
