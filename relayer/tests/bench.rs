//! Throughput through validators + relayer and gas per `process`, on automining anvil.
//! Prints the figures (`cargo nextest run -p advancia-relayer bench --no-capture`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use advancia_relayer::MIGRATIONS;
use advancia_relayer::store::Store;
use advancia_test_support::{TestDb, sqlx};
use alloy::primitives::Address;
use common::*;

async fn run(m: u64, n: usize) -> (f64, i64, i64) {
    let chains = TwoChains::start(3, m).await;
    let db = TestDb::new(&[&MIGRATIONS]).await;
    let store = Store::new(db.pool.clone());
    for i in 0..n {
        chains
            .dispatch_native(Address::left_padding_from(&[0xe0, i as u8]), 1_000)
            .await;
    }
    chains.a.mine(1).await;
    let validators = chains.validators_for(&store, 1);
    let relayer = chains.relayer(&store).await;

    let started = Instant::now();
    loop {
        for v in &validators {
            v.step().await.unwrap();
        }
        relayer.step().await.unwrap();
        let delivered: i64 =
            sqlx::query_scalar("SELECT count(*) FROM bridge.deliveries WHERE status = 'delivered'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        if delivered == n as i64 {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "{delivered} of {n} delivered"
        );
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let (min, max): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT min(gas_used), max(gas_used) FROM bridge.deliveries")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    (rate, min.unwrap(), max.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_throughput_and_gas_per_process() {
    const N: usize = 60;
    for m in [2u64, 3] {
        let (rate, gas_min, gas_max) = run(m, N).await;
        eprintln!(
            "bench M={m} of 3: {N} messages through 3 validators + relayer at {rate:.1} msg/s; gas per process {gas_min}..{gas_max}"
        );
        assert!(gas_min > 21_000 && gas_max >= gas_min);
    }
}
