//! The bridge on anvil: contract checks, validators and relayer in process.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use advancia_relayer::MIGRATIONS;
use advancia_relayer::contract::{AdvanciaBridge, bridge_error_name};
use advancia_relayer::message::{self, Message};
use advancia_relayer::relayer::Outcome;
use advancia_relayer::store::{Store, StoreError, ValidatorStore};
use advancia_test_support::TestDb;
use alloy::primitives::{Address, B256, Bytes, U256};
use common::*;

async fn store() -> (TestDb, Store) {
    let db = TestDb::new(&[&MIGRATIONS]).await;
    let store = Store::new(db.pool.clone());
    (db, store)
}

/// The bridge error a `process` call reverts with (simulated with eth_call).
async fn process_error(bridge: &Bridge, m: &Message, set_version: u64, sigs: Vec<Bytes>) -> String {
    let err = bridge
        .process(m.clone(), set_version, sigs)
        .call()
        .await
        .expect_err("process should revert");
    let data = err.as_revert_data().expect("revert data");
    bridge_error_name(&data).unwrap_or_else(|| panic!("not a bridge error: {data}"))
}

/// Runs validators and relayer steps until nothing is undelivered or `timeout` passes.
async fn drive(
    chains: &TwoChains,
    store: &Store,
    validators: &[advancia_relayer::validator::Validator<
        advancia_relayer::source::EvmSource,
        advancia_relayer::validator::EvmDestination,
    >],
    relayer: &advancia_relayer::relayer::Relayer,
    expect_delivered: usize,
    timeout: Duration,
) -> Vec<(B256, Outcome)> {
    let deadline = Instant::now() + timeout;
    let mut all = Vec::new();
    loop {
        for v in validators {
            v.step().await.unwrap();
        }
        let report = relayer.step().await.unwrap();
        all.extend(report.outcomes);
        let delivered: i64 = advancia_test_support::sqlx::query_scalar(
            "SELECT count(*) FROM bridge.deliveries WHERE status = 'delivered'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        if delivered as usize >= expect_delivered {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "only {delivered} of {expect_delivered} delivered"
        );
        let _ = chains;
    }
}

#[tokio::test]
async fn message_id_and_digest_agree_with_the_contract() {
    let chain = Anvil::start(31337).await;
    let bridge = deploy_bridge(&chain, &validator_keys(3), 2).await;
    let messages = [
        Message {
            originDomain: 31337,
            sequence: 0,
            sender: B256::repeat_byte(0x11),
            destinationDomain: 31337,
            recipient: message::address_word(Address::repeat_byte(0x22)),
            asset: B256::ZERO,
            amount: U256::from(1u8),
        },
        Message {
            originDomain: 1_399_811_149,
            sequence: u64::MAX,
            sender: B256::repeat_byte(0xfe),
            destinationDomain: 31338,
            recipient: B256::repeat_byte(0x01),
            asset: B256::repeat_byte(0x33),
            amount: U256::MAX,
        },
    ];
    for m in &messages {
        assert_eq!(
            bridge.messageId(m.clone()).call().await.unwrap(),
            message::message_id(m)
        );
        for set_version in [1u64, 7] {
            let onchain = bridge.digest(m.clone(), set_version).call().await.unwrap();
            let local =
                message::message_digest(m, message::address_word(*bridge.address()), set_version);
            assert_eq!(onchain, local);
        }
    }
    assert_eq!(
        bridge.domainSeparator().call().await.unwrap(),
        message::domain_separator(31337, message::address_word(*bridge.address()))
    );

    // ADR 0012's Solana -> EVM vector targets anvil's first deployment address: this bridge.
    assert_eq!(
        *bridge.address(),
        "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            .parse::<Address>()
            .unwrap()
    );
    let vector = Message {
        originDomain: 1_399_811_149,
        sequence: 0,
        sender: B256::repeat_byte(0x33),
        destinationDomain: 31337,
        recipient: message::address_word(
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
                .parse()
                .unwrap(),
        ),
        asset: message::address_word(
            "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
                .parse()
                .unwrap(),
        ),
        amount: U256::from(1_500_000_000_000_000_000u128),
    };
    assert_eq!(
        bridge.messageId(vector.clone()).call().await.unwrap(),
        "0xedf83a61ba7bd2789dc75ccb7df5c4e45109ab1094fb4634ad774f3c7a6da2bd"
            .parse::<B256>()
            .unwrap()
    );
    assert_eq!(
        bridge.digest(vector, 1).call().await.unwrap(),
        "0xaa38753fd158b1928a30b76a98228ce21bac0f9e2a527bda9fd052148b3b2a49"
            .parse::<B256>()
            .unwrap()
    );
}

#[tokio::test]
async fn native_and_erc20_delivered_end_to_end() {
    let chains = TwoChains::start(3, 2).await;
    let (_db, store) = store().await;
    let alice = Address::repeat_byte(0xa1);
    let bob = Address::repeat_byte(0xb0);

    let locked_before = native_balance(&chains.a, *chains.bridge_a.address()).await;
    let native = chains
        .dispatch_native(alice, 1_500_000_000_000_000_000)
        .await;
    // 2.5 tokens at 6 decimals on A arrive as 2.5 at 18 decimals on B.
    let token = chains.dispatch_token(bob, 2_500_000).await;
    assert_eq!((native.sequence, token.sequence), (0, 1));
    assert_eq!(token.amount, U256::from(2_500_000_000_000_000_000u128));
    assert_eq!(
        token.asset,
        message::address_word(*chains.token_b.address())
    );
    assert_eq!(
        native_balance(&chains.a, *chains.bridge_a.address()).await - locked_before,
        U256::from(1_500_000_000_000_000_000u128)
    );
    assert_eq!(
        chains
            .token_a
            .balanceOf(*chains.bridge_a.address())
            .call()
            .await
            .unwrap(),
        U256::from(2_500_000u64)
    );

    // A zero amount is refused (inexact conversions: `inexact_decimal_conversion_is_refused`).
    let bridge = chains.user_bridge_a();
    let err = bridge
        .dispatch(
            Address::ZERO,
            U256::ZERO,
            chains.b.domain(),
            message::address_word(alice),
        )
        .call()
        .await
        .unwrap_err();
    assert_eq!(
        bridge_error_name(&err.as_revert_data().unwrap()).as_deref(),
        Some("ZeroAmount")
    );

    chains.a.mine(2).await;
    let validators = chains.validators_for(&store, 2);
    let relayer = chains.relayer(&store).await;
    let outcomes = drive(
        &chains,
        &store,
        &validators,
        &relayer,
        2,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        outcomes
            .iter()
            .filter(|(_, o)| *o == Outcome::Delivered)
            .count()
            == 2,
        "{outcomes:?}"
    );

    assert_eq!(
        native_balance(&chains.b, alice).await,
        U256::from(1_500_000_000_000_000_000u128)
    );
    assert_eq!(
        chains.token_b.balanceOf(bob).call().await.unwrap(),
        U256::from(2_500_000_000_000_000_000u128)
    );
    assert_eq!(
        chains
            .token_b
            .balanceOf(*chains.bridge_b.address())
            .call()
            .await
            .unwrap(),
        U256::from(LIQUIDITY_TOKEN - 2_500_000_000_000_000_000u128)
    );
    for m in [&native, &token] {
        assert!(
            chains
                .bridge_b
                .processed(message::message_id(m))
                .call()
                .await
                .unwrap()
        );
    }
    // Each validator signed each message once, at set version 1.
    let sigs: i64 = advancia_test_support::sqlx::query_scalar(
        "SELECT count(*) FROM bridge.signatures WHERE set_version = 1",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(sigs, 6);

    // Replay of a delivered message is rejected.
    let sigs = chains.sign(&native, &[&chains.validators[0], &chains.validators[1]], 1);
    assert_eq!(
        process_error(&chains.bridge_b, &native, 1, sigs).await,
        "AlreadyProcessed"
    );
}

#[tokio::test]
async fn inexact_decimal_conversion_is_refused() {
    let chain = Anvil::start(31337).await;
    let bridge = deploy_bridge(&chain, &validator_keys(1), 1).await;
    let owner = AdvanciaBridge::new(*bridge.address(), chain.wallet_provider(&key(OWNER_KEY)));
    // Native 18 decimals to a 9-decimal asset elsewhere (e.g. SOL lamports).
    send(owner.setRoute(Address::ZERO, 1_399_811_149, B256::ZERO, 18, 9)).await;
    let err = owner
        .dispatch(
            Address::ZERO,
            U256::from(1_000_000_001u64),
            1_399_811_149,
            B256::repeat_byte(1),
        )
        .value(U256::from(1_000_000_001u64))
        .call()
        .await
        .unwrap_err();
    assert_eq!(
        bridge_error_name(&err.as_revert_data().unwrap()).as_deref(),
        Some("InexactConversion")
    );
    let receipt = owner
        .dispatch(
            Address::ZERO,
            U256::from(3_000_000_000u64),
            1_399_811_149,
            B256::repeat_byte(1),
        )
        .value(U256::from(3_000_000_000u64))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let event = receipt.inner.logs()[0]
        .log_decode::<AdvanciaBridge::Dispatch>()
        .unwrap()
        .inner
        .data;
    assert_eq!(event.amount, U256::from(3u8));
    assert_eq!(event.localAmount, U256::from(3_000_000_000u64));
    // No route: refused.
    let err = owner
        .dispatch(Address::ZERO, U256::from(1u8), 5, B256::repeat_byte(1))
        .value(U256::from(1u8))
        .call()
        .await
        .unwrap_err();
    assert_eq!(
        bridge_error_name(&err.as_revert_data().unwrap()).as_deref(),
        Some("RouteNotFound")
    );
}

#[tokio::test]
async fn process_rejects_bad_attestations_with_named_errors() {
    let chains = TwoChains::start(3, 2).await;
    let recipient = Address::repeat_byte(0xc3);
    let m = chains.dispatch_native(recipient, 1_000).await;
    let [v0, v1, v2] = [
        &chains.validators[0],
        &chains.validators[1],
        &chains.validators[2],
    ];
    let b = &chains.bridge_b;

    // Below threshold.
    assert_eq!(
        process_error(b, &m, 1, chains.sign(&m, &[v0], 1)).await,
        "BelowThreshold"
    );
    // Duplicate signer (and unsorted) fail the strict ascending order.
    assert_eq!(
        process_error(b, &m, 1, chains.sign(&m, &[v0, v0], 1)).await,
        "SignersNotAscending"
    );
    assert_eq!(
        process_error(b, &m, 1, chains.sign(&m, &[v1, v0], 1)).await,
        "SignersNotAscending"
    );
    // Wrong set version: both claiming another version and signing for another version.
    assert_eq!(
        process_error(b, &m, 2, chains.sign(&m, &[v0, v1], 2)).await,
        "WrongSetVersion"
    );
    let stale = chains.sign(&m, &[v0, v1], 2);
    let name = process_error(b, &m, 1, stale).await;
    assert!(
        name == "NotValidator" || name == "SignersNotAscending",
        "{name}"
    );
    // Forged: a key outside the set.
    let forger = advancia_relayer::keys::SigningKey::from_b256(&B256::repeat_byte(0x77)).unwrap();
    let mut signers = vec![v0, &forger];
    signers.sort_by_key(|k| k.address());
    assert_eq!(
        process_error(b, &m, 1, chains.sign(&m, &signers, 1)).await,
        "NotValidator"
    );
    // Tampered message: signatures recover to strangers.
    let mut tampered = m.clone();
    tampered.amount = U256::from(1_000_000u64);
    let name = process_error(b, &tampered, 1, chains.sign(&m, &[v0, v1], 1)).await;
    assert!(
        name == "NotValidator" || name == "SignersNotAscending",
        "{name}"
    );
    // High-s twin of a valid signature.
    let mut sigs = chains.sign(&m, &[v0, v1], 1);
    let twin: [u8; 65] = sigs[1].as_ref().try_into().unwrap();
    sigs[1] = Bytes::from(message::malleate(&twin).to_vec());
    assert_eq!(process_error(b, &m, 1, sigs).await, "SignatureHighS");
    // Malformed.
    let mut sigs = chains.sign(&m, &[v0, v1], 1);
    sigs[0] = Bytes::from(vec![0u8; 64]);
    assert_eq!(process_error(b, &m, 1, sigs).await, "SignatureMalformed");
    // Wrong destination: the message for B delivered to A.
    assert_eq!(
        process_error(&chains.bridge_a, &m, 1, chains.sign(&m, &[v0, v1], 1)).await,
        "WrongDestinationDomain"
    );

    // Paused.
    let owner_b = AdvanciaBridge::new(*b.address(), chains.b.wallet_provider(&key(OWNER_KEY)));
    send(owner_b.pause()).await;
    assert_eq!(
        process_error(b, &m, 1, chains.sign(&m, &[v0, v1], 1)).await,
        "BridgePaused"
    );
    send(owner_b.unpause()).await;

    // Valid with all three, then the set changes: version 2 needs fresh signatures.
    let relayer_b = AdvanciaBridge::new(*b.address(), chains.b.wallet_provider(&key(RELAYER_KEY)));
    send(owner_b.setThreshold(U256::from(3u8))).await;
    assert_eq!(b.setVersion().call().await.unwrap(), 2);
    assert_eq!(
        process_error(b, &m, 1, chains.sign(&m, &[v0, v1, v2], 1)).await,
        "WrongSetVersion"
    );
    assert_eq!(
        process_error(b, &m, 2, chains.sign(&m, &[v0, v1], 2)).await,
        "BelowThreshold"
    );
    let gas = send(relayer_b.process(m.clone(), 2, chains.sign(&m, &[v0, v1, v2], 2))).await;
    assert!(gas > 21_000);
    assert_eq!(
        native_balance(&chains.b, recipient).await,
        U256::from(1_000u64)
    );
    // Replay.
    assert_eq!(
        process_error(b, &m, 2, chains.sign(&m, &[v0, v1, v2], 2)).await,
        "AlreadyProcessed"
    );
    // Owner-only administration.
    let err = relayer_b.pause().call().await.unwrap_err();
    assert_eq!(
        bridge_error_name(&err.as_revert_data().unwrap()).as_deref(),
        Some("NotOwner")
    );
}

#[tokio::test]
async fn reorg_before_confirmation_depth_is_never_signed() {
    let chains = TwoChains::start(1, 1).await;
    let (_db, store) = store().await;
    let validators = chains.validators_for(&store, 3);
    let validator = &validators[0];

    let snapshot = chains.a.snapshot().await;
    let orphan = chains
        .dispatch_native(Address::repeat_byte(0x01), 1_000)
        .await;
    chains.a.mine(1).await; // 1 confirmation on top: still under the depth of 3
    let r = validator.step().await.unwrap();
    assert_eq!((r.observed, r.signed), (0, 0));

    // The dispatch is reorganised away; another message takes sequence 0.
    chains.a.revert(snapshot).await;
    let canonical = chains
        .dispatch_native(Address::repeat_byte(0x02), 2_000)
        .await;
    assert_eq!((orphan.sequence, canonical.sequence), (0, 0));
    assert_ne!(
        message::message_id(&orphan),
        message::message_id(&canonical)
    );
    chains.a.mine(3).await;
    let r = validator.step().await.unwrap();
    assert_eq!((r.observed, r.signed), (1, 1));

    let signed: Vec<Vec<u8>> =
        advancia_test_support::sqlx::query_scalar("SELECT message_id FROM bridge.signatures")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(signed, vec![message::message_id(&canonical).to_vec()]);

    // Had the orphan been seen, the claim on (origin, sequence) refuses to sign it too.
    let orphan_id = message::message_id(&orphan);
    advancia_test_support::sqlx::query(
        "INSERT INTO bridge.messages (id, origin_domain, sequence, sender, destination_domain, recipient, asset, amount)
         VALUES ($1, $2, 0, $3, $4, $5, $6, 1000)",
    )
    .bind(orphan_id.as_slice())
    .bind(i64::from(orphan.originDomain))
    .bind(orphan.sender.as_slice())
    .bind(i64::from(orphan.destinationDomain))
    .bind(orphan.recipient.as_slice())
    .bind(orphan.asset.as_slice())
    .execute(store.pool())
    .await
    .unwrap();
    let digest = message::message_digest(
        &orphan,
        message::address_word(*chains.bridge_b.address()),
        1,
    );
    let sig = message::sign(&chains.validators[0], digest).unwrap();
    let err = store
        .store_signature(chains.validators[0].address(), orphan_id, &orphan, 1, &sig)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Equivocation { sequence: 0, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn set_change_gets_resigned_and_delivered() {
    let chains = TwoChains::start(3, 2).await;
    let (_db, store) = store().await;
    let m = chains
        .dispatch_native(Address::repeat_byte(0x44), 5_000)
        .await;
    chains.a.mine(1).await;
    // Two validators sign at version 1 ...
    let validators = chains.validators_for(&store, 1);
    validators[0].step().await.unwrap();
    validators[1].step().await.unwrap();
    // ... then the owner raises the threshold to 3 (version 2) before delivery.
    let owner_b = AdvanciaBridge::new(
        *chains.bridge_b.address(),
        chains.b.wallet_provider(&key(OWNER_KEY)),
    );
    send(owner_b.setThreshold(U256::from(3u8))).await;
    let relayer = chains.relayer(&store).await;
    let report = relayer.step().await.unwrap();
    assert_eq!(
        report.outcomes[0].1,
        Outcome::AwaitingSignatures { have: 0, need: 3 }
    );
    let outcomes = drive(
        &chains,
        &store,
        &validators,
        &relayer,
        1,
        Duration::from_secs(30),
    )
    .await;
    assert!(outcomes.iter().any(|(_, o)| *o == Outcome::Delivered));
    assert!(
        chains
            .bridge_b
            .processed(message::message_id(&m))
            .call()
            .await
            .unwrap()
    );
    let v2: i64 = advancia_test_support::sqlx::query_scalar(
        "SELECT count(*) FROM bridge.signatures WHERE set_version = 2",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(v2, 3);
}

#[tokio::test]
async fn relayer_records_failures_and_stuck_lists_them() {
    let chains = TwoChains::start(2, 2).await;
    let (_db, store) = store().await;
    // A recipient contract that rejects the native coin: the TestToken (no receive function).
    let m = chains
        .dispatch_native(*chains.token_b.address(), 1_000)
        .await;
    chains.a.mine(1).await;
    let validators = chains.validators_for(&store, 1);
    // Only one of two validators is up.
    validators[0].step().await.unwrap();
    let relayer = chains.relayer(&store).await;
    let report = relayer.step().await.unwrap();
    assert_eq!(
        report.outcomes[0].1,
        Outcome::AwaitingSignatures { have: 1, need: 2 }
    );
    let stuck = store.stuck(None, 0.0).await.unwrap();
    assert_eq!(stuck.len(), 1);
    assert_eq!(stuck[0].last_reason.as_deref(), Some("awaiting_signatures"));

    validators[1].step().await.unwrap();
    let report = relayer.step().await.unwrap();
    assert_eq!(
        report.outcomes[0].1,
        Outcome::Failed("NativeTransferFailed".into())
    );
    let stuck = store.stuck(Some(chains.b.domain()), 0.0).await.unwrap();
    assert_eq!(stuck[0].id, message::message_id(&m));
    assert_eq!(
        stuck[0].last_reason.as_deref(),
        Some("NativeTransferFailed")
    );
    assert_eq!(stuck[0].signatures, 2);
    let metrics = advancia_relayer::metrics::render(&store, chains.b.domain())
        .await
        .unwrap();
    assert!(metrics.contains("advancia_bridge_delivery_failures_total{destination=\"31338\",reason=\"NativeTransferFailed\"} 1"), "{metrics}");
    assert!(
        metrics.contains("advancia_bridge_backlog{destination=\"31338\",status=\"pending\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn stored_transaction_is_rebroadcast_or_replaced_never_duplicated() {
    use alloy::network::TransactionBuilder;
    use alloy::providers::Provider;
    use alloy::rpc::types::TransactionRequest;

    let chains = TwoChains::start(2, 2).await;
    let (_db, store) = store().await;
    let first = chains
        .dispatch_native(Address::repeat_byte(0x51), 1_000)
        .await;
    let second = chains
        .dispatch_native(Address::repeat_byte(0x52), 2_000)
        .await;
    chains.a.mine(1).await;
    for v in chains.validators_for(&store, 1) {
        v.step().await.unwrap();
    }
    let b = chains.b.provider();
    let _: serde_json::Value = b
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .unwrap();
    let relayer = chains.relayer(&store).await;
    let relayer_address = key(RELAYER_KEY).address();

    // Both submitted (nonces 0 and 1), then lost from the mempool as if never broadcast.
    let report = relayer.step().await.unwrap();
    let hashes: Vec<B256> = report
        .outcomes
        .iter()
        .map(|(_, o)| match o {
            Outcome::Submitted(h) => *h,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(hashes.len(), 2);
    for h in &hashes {
        let _: serde_json::Value = b
            .raw_request("anvil_dropTransaction".into(), (*h,))
            .await
            .unwrap();
    }
    // Nonce 0 is then taken by an unrelated transfer of the relayer account.
    let transfer = TransactionRequest::default()
        .with_to(relayer_address)
        .with_nonce(0)
        .with_value(U256::ZERO);
    let _pending = chains
        .b
        .wallet_provider(&key(RELAYER_KEY))
        .send_transaction(transfer)
        .await
        .unwrap();
    let _: serde_json::Value = b.raw_request("evm_mine".into(), ()).await.unwrap();

    // Nonce 0 consumed: the first message's transaction can never land and is replaced by a
    // new one; the second's (nonce 1) is rebroadcast byte-identical.
    let report = relayer.step().await.unwrap();
    let (id0, id1) = (message::message_id(&first), message::message_id(&second));
    assert_eq!(
        report.outcomes,
        vec![
            (id0, Outcome::Failed("replaced".into())),
            (id1, Outcome::Submitted(hashes[1]))
        ]
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _: serde_json::Value = b.raw_request("evm_mine".into(), ()).await.unwrap();
        relayer.step().await.unwrap();
        if chains.bridge_b.processed(id0).call().await.unwrap()
            && chains.bridge_b.processed(id1).call().await.unwrap()
        {
            relayer.step().await.unwrap();
            break;
        }
        assert!(Instant::now() < deadline);
    }
    // Three transactions from the relayer account: two deliveries and the transfer.
    assert_eq!(b.get_transaction_count(relayer_address).await.unwrap(), 3);
    let events = chains
        .bridge_b
        .Process_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(store.stuck(None, 0.0).await.unwrap().is_empty());
}
