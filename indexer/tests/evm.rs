//! EVM source against a real node (anvil, from npm via `cargo xtask evm`) running the
//! committed AdvanciaBridge build, and real Postgres: bridge messages indexed with their
//! commitment, finalized at the depth, undone after a reorg (evm_snapshot / evm_revert).
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use advancia_indexer::evm::{EvmConfig, EvmIndexer};
use advancia_test_support::TestDb;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
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

fn anvil_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ADVANCIA_ANVIL") {
        return PathBuf::from(p);
    }
    let rel = "npm/evm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";
    let mut candidates = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join(rel));
    }
    candidates.push(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(rel),
    );
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("anvil not found: run `cargo xtask evm` or set ADVANCIA_ANVIL"))
}

struct Anvil {
    child: Child,
    url: String,
}

impl Anvil {
    async fn start() -> Anvil {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(anvil_binary())
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--chain-id", &CHAIN_ID.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut anvil = Anvil {
                child,
                url: format!("http://127.0.0.1:{port}"),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if anvil.provider().get_chain_id().await.is_ok() {
                    return anvil;
                }
                if anvil.child.try_wait().unwrap().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = anvil.child.kill();
        }
        panic!("anvil did not start");
    }

    fn provider(&self) -> DynProvider {
        ProviderBuilder::new()
            .connect_http(self.url.parse().unwrap())
            .erased()
    }

    fn owner(&self) -> DynProvider {
        let signer: PrivateKeySigner = OWNER_KEY.parse().unwrap();
        ProviderBuilder::new()
            .with_simple_nonce_management()
            .wallet(EthereumWallet::from(signer))
            .connect_http(self.url.parse().unwrap())
            .erased()
    }

    async fn rpc<
        T: serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + Unpin + 'static,
    >(
        &self,
        method: &'static str,
        params: Vec<U256>,
    ) -> T {
        self.provider()
            .raw_request(method.into(), params)
            .await
            .unwrap()
    }

    async fn mine(&self, blocks: u64) {
        let _: serde_json::Value = self.rpc("anvil_mine", vec![U256::from(blocks)]).await;
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let anvil = Anvil::start().await;
    let db = TestDb::new(&[&advancia_indexer::MIGRATIONS]).await;
    let owner = anvil.owner();
    let owner_address = OWNER_KEY.parse::<PrivateKeySigner>().unwrap().address();
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
    let snapshot: U256 = anvil.rpc("evm_snapshot", vec![]).await;
    let (gone_id, gone_block) = dispatch(&bridge, 5_000_000_000).await;
    indexer.step().await.unwrap();
    assert_eq!(rows(&db, &chain).await.len(), 2);
    let reverted: bool = anvil.rpc("evm_revert", vec![snapshot]).await;
    assert!(reverted);
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
