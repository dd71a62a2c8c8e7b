//! Integration tests against real Postgres (one database per test).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod audit;
mod common;
mod concurrency;
mod metrics;
mod props;
mod reconcile;
mod reports;
mod semantics;
mod settlement;
mod two_phase;
