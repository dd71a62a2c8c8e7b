//! EVM → Solana end to end on real components: ETH dispatched on anvil, signed by 2 of 3
//! validators for the program's inbox (salt = program id, set version read from the bridge
//! account), delivered by the Solana relayer into `bridge_process_sol` on the local node; the
//! recipient is paid once, and a replay is refused by the program. Validators keep their own
//! stores and serve their attestations over HTTP; the relayer reads them from there.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use advancia_localnet::{Localnet, LocalnetConfig};
use advancia_pay::client as pay;
use advancia_relayer::MIGRATIONS;
use advancia_relayer::contract::AdvanciaBridge;
use advancia_relayer::relayer::Outcome;
use advancia_relayer::solana::{SolanaDestination, SolanaRelayer};
use advancia_relayer::source::EvmSource;
use advancia_relayer::store::Store;
use advancia_test_support::TestDb;
use alloy::primitives::{Address, B256, U256};
use anchor_lang::prelude::Pubkey;
use common::solana::{SOL, SOLANA_DOMAIN, configure_bridge, funded, send_sol};
use common::{Anvil, OWNER_KEY, OwnValidator, USER_KEY, deploy_bridge, key, send, validator_keys};
use solana_commitment_config::CommitmentConfig;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer;

#[tokio::test]
async fn eth_dispatched_on_evm_is_released_once_as_sol_on_solana() {
    // Solana side: the program with the bridge (3 validators, 2 needed) and SOL liquidity.
    let node = Localnet::start(LocalnetConfig::for_tests()).await.unwrap();
    let client = Arc::new(RpcClient::new_with_commitment(
        node.rpc_url(),
        CommitmentConfig::confirmed(),
    ));
    let validators = validator_keys(3);
    let admin = configure_bridge(&client, &validators, 2).await;
    let relayer_payer = funded(&client, 10 * SOL).await;
    // Liquidity: lamports credited to the program-owned SOL vault.
    send_sol(
        &client,
        &admin,
        &[solana_system_interface::instruction::transfer(
            &admin.pubkey(),
            &pay::bridge_sol_vault_pda(),
            5 * SOL,
        )],
    )
    .await;

    // EVM side: ETH (18 decimals) routed to native SOL (9 decimals) on the Solana domain.
    let evm = Anvil::start(31337).await;
    let bridge = deploy_bridge(&evm, &validators, 2).await;
    let owner = AdvanciaBridge::new(*bridge.address(), evm.wallet_provider(&key(OWNER_KEY)));
    send(owner.setRoute(Address::ZERO, SOLANA_DOMAIN, B256::ZERO, 18, 9)).await;
    let recipient = Pubkey::new_unique();
    let user = AdvanciaBridge::new(*bridge.address(), evm.wallet_provider(&key(USER_KEY)));
    let wei = U256::from(2_000_000_000_000_000u64); // 2e15 wei = 2 000 000 lamports
    send(
        user.dispatch(
            Address::ZERO,
            wei,
            SOLANA_DOMAIN,
            B256::from(recipient.to_bytes()),
        )
        .value(wei),
    )
    .await;

    let db = TestDb::new(&[&MIGRATIONS]).await;
    let store = Store::new(db.pool.clone());
    let destination = SolanaDestination {
        domain: SOLANA_DOMAIN,
        rpc: client.clone(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for (i, k) in validators.iter().enumerate() {
        nodes.push(
            OwnValidator::start(
                tmp.path(),
                i,
                EvmSource::new(evm.provider(), *bridge.address(), evm.domain(), 0),
                vec![destination.clone()],
                k.clone(),
            )
            .await,
        );
    }
    let locations: Vec<String> = nodes.iter().map(|n| n.location.clone()).collect();
    let relayer = SolanaRelayer::new(store.clone(), client.clone(), relayer_payer, SOLANA_DOMAIN)
        .with_retry(Duration::from_millis(0))
        .with_attestations_from(&locations)
        .unwrap();

    // One validator is not enough.
    nodes[0].validator.step().await.unwrap();
    let r = relayer.step().await.unwrap();
    assert!(
        matches!(
            r.outcomes[..],
            [(_, Outcome::AwaitingSignatures { have: 1, need: 2 })]
        ),
        "{:?}",
        r.outcomes
    );
    assert_eq!(client.get_balance(&recipient).await.unwrap(), 0);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "not delivered in time");
        for v in &nodes {
            v.validator.step().await.unwrap();
        }
        let r = relayer.step().await.unwrap();
        if r.count(|o| matches!(o, Outcome::Delivered)) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.get_balance(&recipient).await.unwrap(), 2_000_000);

    // Nothing is delivered twice; a resend of the same message is refused by the program.
    for _ in 0..3 {
        for v in &nodes {
            assert_eq!(v.validator.step().await.unwrap().signed, 0);
        }
        assert!(relayer.step().await.unwrap().outcomes.is_empty());
    }
    assert_eq!(client.get_balance(&recipient).await.unwrap(), 2_000_000);
}
