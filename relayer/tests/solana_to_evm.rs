//! Solana → EVM end to end on real components: the Anchor program on the local Solana node
//! dispatches SOL, each validator reads the finalized `BridgeDispatched` from the node itself
//! (no database but its own store), signs for the EVM bridge on anvil and publishes the
//! attestation; the relayer reads the attestations from the validators' locations and
//! delivers, and the recipient is paid once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use advancia_localnet::{Localnet, LocalnetConfig};
use advancia_pay::bridge::BridgeMessage;
use advancia_pay::client as pay;
use advancia_pay::state::NATIVE_SOL;
use advancia_relayer::MIGRATIONS;
use advancia_relayer::attestation::AttestationDir;
use advancia_relayer::contract::AdvanciaBridge;
use advancia_relayer::journal::JournalStore;
use advancia_relayer::relayer::Outcome;
use advancia_relayer::source::SolanaRpcSource;
use advancia_relayer::store::Store;
use advancia_relayer::validator::{EvmDestination, Validator};
use advancia_test_support::TestDb;
use alloy::primitives::{Address, B256, U256};
use common::solana::{SOL, SOLANA_DOMAIN, configure_bridge, funded, send_sol};
use common::{
    Anvil, LIQUIDITY_NATIVE, OWNER_KEY, deploy_bridge, key, native_balance, send, validator_keys,
};
use solana_commitment_config::CommitmentConfig;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer;

const EVM_CHAIN: u64 = 31338;

#[tokio::test]
async fn sol_dispatched_on_solana_is_released_once_on_the_evm_chain() {
    // EVM side: the bridge with 3 validators, 2 needed, and native liquidity.
    let evm = Anvil::start(EVM_CHAIN).await;
    let validators = validator_keys(3);
    let bridge = deploy_bridge(&evm, &validators, 2).await;
    let owner = AdvanciaBridge::new(*bridge.address(), evm.wallet_provider(&key(OWNER_KEY)));
    send(
        owner
            .addLiquidity(Address::ZERO, U256::from(LIQUIDITY_NATIVE))
            .value(U256::from(LIQUIDITY_NATIVE)),
    )
    .await;

    // Solana side: program configured, bridge with the same validator set, SOL route.
    let node = Localnet::start(LocalnetConfig::for_tests()).await.unwrap();
    let client = RpcClient::new_with_commitment(node.rpc_url(), CommitmentConfig::confirmed());
    let admin = configure_bridge(&client, &validators, 2).await;
    let sender = funded(&client, 100 * SOL).await;
    send_sol(
        &client,
        &admin,
        &[pay::register_bridge_route(
            admin.pubkey(),
            NATIVE_SOL,
            EVM_CHAIN as u32,
            [0; 32],
            9,
            18,
        )],
    )
    .await;
    let recipient = Address::repeat_byte(0x5A);
    let mut recipient_word = [0u8; 32];
    recipient_word[12..].copy_from_slice(recipient.as_slice());
    let lamports = 1_500_000u64;
    let before_sender = client.get_balance(&sender.pubkey()).await.unwrap();
    let dispatch_sig = send_sol(
        &client,
        &sender,
        &[pay::bridge_dispatch_sol(
            sender.pubkey(),
            EVM_CHAIN as u32,
            recipient_word,
            lamports,
        )],
    )
    .await;
    assert!(client.get_balance(&sender.pubkey()).await.unwrap() <= before_sender - lamports);
    let dispatch_slot = node
        .node()
        .chain()
        .transaction(&dispatch_sig.parse().unwrap())
        .unwrap()
        .slot;

    // Each validator: its own embedded store and publication directory; the relayer: its
    // own database. Nothing is shared but the chains.
    let tmp = tempfile::tempdir().unwrap();
    let mut locations = Vec::new();
    let nodes: Vec<_> = validators
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let dir =
                AttestationDir::create(tmp.path().join(format!("v{i}/attestations"))).unwrap();
            let location = format!("file://{}", dir.root().display());
            locations.push(location.clone());
            Validator::new(
                SolanaRpcSource::new(node.rpc_url(), SOLANA_DOMAIN),
                vec![EvmDestination {
                    domain: EVM_CHAIN as u32,
                    bridge: *bridge.address(),
                    provider: evm.provider(),
                }],
                k.clone(),
                JournalStore::open(tmp.path().join(format!("v{i}/store"))).unwrap(),
                0,
            )
            .publishing_to(dir, &location)
            .unwrap()
        })
        .collect();
    let db = TestDb::new(&[&MIGRATIONS]).await;
    let store = Store::new(db.pool.clone());
    let relayer = common::relayer_to(&evm, *bridge.address(), &store)
        .await
        .with_attestations_from(&locations)
        .unwrap();

    // Nothing is signed before the dispatch is final on Solana.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delivered = false;
    while !delivered {
        assert!(Instant::now() < deadline, "not delivered in time");
        let finalized = node.slot(advancia_localnet::Commitment::Finalized);
        for v in &nodes {
            let r = v.step().await.unwrap();
            if finalized < dispatch_slot {
                assert_eq!(r.signed, 0, "signed a message that is not final yet");
            }
        }
        let r = relayer.step().await.unwrap();
        delivered = r.count(|o| matches!(o, Outcome::Delivered)) == 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 1 500 000 lamports (9 decimals) are 1.5e15 wei (18 decimals).
    assert_eq!(
        native_balance(&evm, recipient).await,
        U256::from(1_500_000_000_000_000u64)
    );
    let mut amount = [0u8; 32];
    amount[24..].copy_from_slice(&1_500_000_000_000_000u64.to_be_bytes());
    let id = BridgeMessage {
        origin_domain: SOLANA_DOMAIN,
        sequence: 0,
        sender: sender.pubkey().to_bytes(),
        destination_domain: EVM_CHAIN as u32,
        recipient: recipient_word,
        asset: [0; 32],
        amount,
    }
    .id();
    assert!(bridge.processed(B256::from(id)).call().await.unwrap());

    // Further steps deliver nothing again.
    for _ in 0..3 {
        for v in &nodes {
            assert_eq!(v.step().await.unwrap().signed, 0);
        }
        let r = relayer.step().await.unwrap();
        assert_eq!(r.count(|o| matches!(o, Outcome::Delivered)), 0);
    }
    assert_eq!(
        native_balance(&evm, recipient).await,
        U256::from(1_500_000_000_000_000u64)
    );
}
