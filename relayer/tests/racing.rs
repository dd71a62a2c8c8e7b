//! Anyone may relay: two relayers with their own databases and their own gas accounts read
//! the same validators' published attestations and go over the same messages. Exactly-once
//! stays on-chain (the bridge's processed map). Each relayer has a share (0/2, 1/2) and takes
//! the other's messages over after 2 s: each message is delivered once, and the loser of
//! every message finds it processed (or fails its simulation) before it sends anything, so
//! neither relayer pays for a transaction that does not deliver. With one relayer stopped,
//! the other delivers everything after the takeover delay.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use advancia_relayer::MIGRATIONS;
use advancia_relayer::message;
use advancia_relayer::relayer::{Outcome, Relayer, RelayerConfig, Share};
use advancia_relayer::store::Store;
use advancia_test_support::TestDb;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use common::*;

/// anvil's fourth dev account: the second relayer's gas.
const RELAYER_2_KEY: &str = "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

const TAKEOVER: Duration = Duration::from_secs(2);

async fn relayer(
    chains: &TwoChains,
    db: &TestDb,
    gas_key: &str,
    locations: &[String],
    index: u32,
) -> Relayer {
    Relayer::connect(
        Store::new(db.pool.clone()),
        chains.b.provider(),
        *chains.bridge_b.address(),
        key(gas_key),
        RelayerConfig {
            confirmations: 1,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(100),
            poll: Duration::from_millis(0),
            batch: 500,
            share: Some(Share {
                index,
                count: 2,
                takeover_after: TAKEOVER,
            }),
        },
    )
    .await
    .unwrap()
    .with_attestations_from(locations)
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relayers_racing_deliver_each_message_once_and_the_losers_spend_no_fee() {
    const N: usize = 20;
    let chains = TwoChains::start(3, 2).await;
    let tmp = tempfile::tempdir().unwrap();
    let validators = chains.own_validators(tmp.path(), 1).await;
    let locations: Vec<String> = validators.iter().map(|v| v.location.clone()).collect();
    let (db1, db2) = (
        TestDb::new(&[&MIGRATIONS]).await,
        TestDb::new(&[&MIGRATIONS]).await,
    );
    let r1 = relayer(&chains, &db1, RELAYER_KEY, &locations, 0).await;
    let r2 = relayer(&chains, &db2, RELAYER_2_KEY, &locations, 1).await;

    let recipients: Vec<Address> = (0..N)
        .map(|i| Address::left_padding_from(&[0xe0, i as u8]))
        .collect();
    let mut ids = Vec::new();
    for (i, r) in recipients.iter().enumerate() {
        ids.push(message::message_id(
            &chains.dispatch_native(*r, 5_000 + i as u128).await,
        ));
    }
    chains.a.mine(1).await;
    for v in &validators {
        assert_eq!(v.validator.step().await.unwrap().signed, N);
    }

    let b = chains.b.provider();
    let nonce = async |k: &str| b.get_transaction_count(key(k).address()).await.unwrap();
    let (sent1_before, sent2_before) = (nonce(RELAYER_KEY).await, nonce(RELAYER_2_KEY).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut won1, mut won2) = (0, 0);
    while won1 + won2 < N {
        assert!(Instant::now() < deadline, "not delivered in time");
        let (a, b) = tokio::join!(r1.step(), r2.step());
        won1 += a.unwrap().count(|o| matches!(o, Outcome::Delivered));
        won2 += b.unwrap().count(|o| matches!(o, Outcome::Delivered));
    }
    // After the takeover delay both relayers go over the other's messages: all found done.
    tokio::time::sleep(TAKEOVER).await;
    for _ in 0..3 {
        let (a, b) = tokio::join!(r1.step(), r2.step());
        assert_eq!(a.unwrap().count(|o| matches!(o, Outcome::Delivered)), 0);
        assert_eq!(b.unwrap().count(|o| matches!(o, Outcome::Delivered)), 0);
    }

    // Exactly once on-chain.
    let events = chains
        .bridge_b
        .Process_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    let mut seen: Vec<_> = events.iter().map(|(e, _)| e.id).collect();
    seen.sort();
    seen.dedup();
    assert_eq!((events.len(), seen.len()), (N, N));
    for (i, (id, r)) in ids.iter().zip(&recipients).enumerate() {
        assert!(chains.bridge_b.processed(*id).call().await.unwrap());
        assert_eq!(
            native_balance(&chains.b, *r).await,
            U256::from(5_000 + i as u64)
        );
    }
    // Each relayer sent exactly the transactions that won: none reverted, none wasted.
    let sent1 = nonce(RELAYER_KEY).await - sent1_before;
    let sent2 = nonce(RELAYER_2_KEY).await - sent2_before;
    let lost = r1.races_lost().load(Ordering::Relaxed) + r2.races_lost().load(Ordering::Relaxed);
    println!(
        "relayer 1 delivered {won1} ({sent1} sent), relayer 2 delivered {won2} ({sent2} sent), races lost without a fee: {lost}"
    );
    assert_eq!((sent1, sent2), (won1 as u64, won2 as u64));
    for db in [&db1, &db2] {
        let reverted: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bridge.delivery_failures WHERE reason = 'reverted'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(reverted, 0);
    }
    assert_eq!(
        lost, N as u64,
        "every message was lost by exactly one of the two"
    );
}
