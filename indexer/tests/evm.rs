//! EVM source against a real node (anvil, from npm via `cargo xtask evm`) running the
//! committed AdvanciaBridge build, and real Postgres: bridge messages indexed with their
//! commitment, finalized at the depth, undone after a reorg (evm_snapshot / evm_revert).
#![allow(clippy::unwrap_used)]

use advancia_indexer::evm::{EvmConfig, EvmIndexer};
use advancia_test_support::TestDb;
use advancia_test_support::anvil::Anvil;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;

mod bindings {
    #![allow(clippy::too_many_arguments)]
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        Bridge,
        "../contracts/evm/out/AdvanciaBridge.json"
    );
}
use bindings::Bridge;

/// anvil's first dev account (funded): deployer, owner and sender.
const OWNER_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const CHAIN_ID: u64 = 31337;
const REMOTE_DOMAIN: u32 = 1_399_811_149;

/// Dispatches `wei` of the native coin; returns (message id, block number).
async fn dispatch(bridge: &Bridge::BridgeInstance<DynProvider>, wei: u64) -> (B256, u64) {
    let recipient = B256::left_padding_from(&[0xAB; 20]);
    let receipt = bridge
        .dispatch(Address::ZERO, U256::from(wei), REMOTE_DOMAIN, recipient)
        .value(U256::from(wei))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let id = receipt.decoded_log::<Bridge::Dispatch>().unwrap().data.id;
    (id, receipt.block_number.unwrap())
}

async fn rows(db: &TestDb, chain: &str) -> Vec<(String, String, String, String, i64)> {
    sqlx::query_as(
        "SELECT direction, message_id, amount::text, commitment, slot FROM indexer.bridge_messages
          WHERE chain = $1 ORDER BY slot, ix_index",
    )
    .bind(chain)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn bridge_messages_are_indexed_finalized_at_depth_and_undone_on_reorg() {
    let anvil = Anvil::start(CHAIN_ID).await;
    let db = TestDb::new(&[&advancia_indexer::MIGRATIONS]).await;
    let owner_key: PrivateKeySigner = OWNER_KEY.parse().unwrap();
    let owner_address = owner_key.address();
    let owner = anvil.wallet_provider(owner_key);
    let bridge = Bridge::deploy(
        owner.clone(),
        owner_address,
        vec![owner_address],
        U256::from(1),
    )
    .await
    .unwrap();
    let receipt = bridge
        .setRoute(Address::ZERO, REMOTE_DOMAIN, B256::ZERO, 18, 9)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());

    let indexer = EvmIndexer::connect(
        db.pool.clone(),
        EvmConfig {
            depth: 2,
            ..EvmConfig::new(&anvil.url, *bridge.address())
        },
    )
    .await
    .unwrap();
    let chain = format!("evm:{CHAIN_ID}");
    assert_eq!(indexer.chain(), chain);

    // 1 gwei (18 decimals) is 1 unit at 9 decimals on the destination.
    let (id1, block1) = dispatch(&bridge, 3_000_000_000).await;
    let r = indexer.step().await.unwrap();
    assert_eq!(r.cursor, Some(block1));
    assert_eq!(r.undone, 0);
    let got = rows(&db, &chain).await;
    assert_eq!(
        got,
        vec![(
            "dispatched".into(),
            id1.to_string(),
            "3".into(),
            "confirmed".into(),
            block1 as i64
        )]
    );
    // The deployment's owner, validator-set and route events went to admin_events.
    let admin: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM indexer.admin_events WHERE chain = $1 ORDER BY slot, ix_index",
    )
    .bind(&chain)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        admin,
        ["OwnershipTransferred", "ValidatorSetUpdated", "RouteSet"]
    );

    // Two blocks on top: final, and the block hashes are no longer kept.
    anvil.mine(2).await;
    let r = indexer.step().await.unwrap();
    assert_eq!(
        r.finalized, 2,
        "route and dispatch (the deployment was final when read)"
    );
    assert_eq!(rows(&db, &chain).await[0].3, "finalized");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM indexer.evm_blocks")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(kept, 1, "only the (non-final) cursor block");

    // A reorg before the depth: the dispatch seen at `confirmed` is replaced by another.
    let snapshot = anvil.snapshot().await;
    let (gone_id, gone_block) = dispatch(&bridge, 5_000_000_000).await;
    indexer.step().await.unwrap();
    assert_eq!(rows(&db, &chain).await.len(), 2);
    anvil.revert(snapshot).await;
    let (new_id, new_block) = dispatch(&bridge, 7_000_000_000).await;
    assert_eq!(new_block, gone_block, "same height, another block");
    assert_ne!(
        new_id, gone_id,
        "the sequence is reused but the amount differs"
    );
    let r = indexer.step().await.unwrap();
    assert_eq!(r.undone, 1);
    let got = rows(&db, &chain).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1, new_id.to_string());
    assert_eq!(got[1].2, "7");
    let rollbacks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM indexer.rollbacks WHERE chain = $1 AND slot = $2")
            .bind(&chain)
            .bind(gone_block as i64)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(rollbacks, 1);

    // Nothing twice; then final.
    let again = indexer.step().await.unwrap();
    assert_eq!((again.transactions, again.events, again.undone), (0, 0, 0));
    anvil.mine(2).await;
    indexer.step().await.unwrap();
    let got = rows(&db, &chain).await;
    assert!(got.iter().all(|r| r.3 == "finalized"), "{got:?}");
    assert_eq!(got.len(), 2);

    let text = indexer.metrics().render();
    assert!(
        text.contains("advancia_indexer_rollbacks_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("advancia_indexer_head_lag_slots 0\n"),
        "{text}"
    );
}
