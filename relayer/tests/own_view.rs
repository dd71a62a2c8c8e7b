//! Validators trust only their own view of the origin chain (ADR 0028).
//!
//! An attacker who can write the indexer's database (or lie through any other channel)
//! presents three false dispatches to every validator: a forged row naming a real
//! transaction that dispatched no such message, a real dispatch whose stored amount was
//! raised (with a matching recomputed id), and the message of a transaction that was dropped
//! with its fork before it was final. Every validator checks each claim against its own
//! Solana RPC at `finalized` and refuses all three, by reason, in its metrics; the relayer,
//! which only reads the validators' published attestations, delivers the two honest
//! dispatches with their real amounts and nothing else.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use advancia_indexer::{Indexer, IndexerConfig};
use advancia_localnet::{Commitment, Localnet, LocalnetConfig};
use advancia_pay::client as pay;
use advancia_pay::state::NATIVE_SOL;
use advancia_relayer::MIGRATIONS;
use advancia_relayer::attestation::WireMessage;
use advancia_relayer::contract::AdvanciaBridge;
use advancia_relayer::message::{Message, message_id};
use advancia_relayer::relayer::Outcome;
use advancia_relayer::source::SolanaRpcSource;
use advancia_relayer::store::Store;
use advancia_relayer::validator::EvmDestination;
use advancia_test_support::TestDb;
use alloy::primitives::{Address, B256, U256};
use common::solana::{SOL, SOLANA_DOMAIN, configure_bridge, funded, send_sol};
use common::{
    Anvil, LIQUIDITY_NATIVE, OWNER_KEY, OwnValidator, deploy_bridge, key, native_balance, send,
    validator_keys,
};
use solana_commitment_config::CommitmentConfig;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer;

const EVM_CHAIN: u64 = 31338;
/// 9 → 18 decimals: one lamport is 1e9 wei.
const WEI_PER_LAMPORT: u64 = 1_000_000_000;

/// A dispatch as the indexer stored it: what the attacker edits and presents as a claim.
#[derive(Debug, Clone)]
struct Row {
    signature: String,
    message: Message,
}

/// signature, origin, sequence, sender, destination, recipient, asset, amount.
type DispatchRow = (String, i64, String, String, i64, String, String, String);

async fn dispatched_rows(pool: &sqlx::PgPool) -> Vec<Row> {
    let rows: Vec<DispatchRow> = sqlx::query_as(
        "SELECT signature, origin_domain, sequence::text, sender, destination_domain, recipient,
                asset, amount::text
           FROM indexer.bridge_messages WHERE direction = 'dispatched' ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(
            |(signature, origin, sequence, sender, dest, recipient, asset, amount)| Row {
                signature,
                message: Message {
                    originDomain: origin as u32,
                    sequence: sequence.parse().unwrap(),
                    sender: sender.parse().unwrap(),
                    destinationDomain: dest as u32,
                    recipient: recipient.parse().unwrap(),
                    asset: asset.parse().unwrap(),
                    amount: amount.parse().unwrap(),
                },
            },
        )
        .collect()
}

/// POSTs a claim to a validator's `/v1/observations`; returns (status, reason).
async fn claim(location: &str, row: &Row) -> (u16, Option<String>) {
    let body = serde_json::json!({
        "originTx": format!("0x{}", hex::encode(bs58::decode(&row.signature).into_vec().unwrap())),
        "message": WireMessage::from(&row.message),
    });
    let response = reqwest::Client::new()
        .post(format!("{location}/v1/observations"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json: serde_json::Value = response.json().await.unwrap();
    (status, json["reason"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn forged_altered_and_dropped_dispatches_are_refused_by_every_validator() {
    // EVM side: 3 validators, 2 needed, native liquidity.
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

    // Solana side, finalizing 40 slots (2 s) behind the tip so a confirmed transaction can
    // still be dropped with its fork.
    let node = Localnet::start(LocalnetConfig {
        finalization_lag: 40,
        ..LocalnetConfig::for_tests()
    })
    .await
    .unwrap();
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
    let dispatch = |lamports: u64| {
        pay::bridge_dispatch_sol(sender.pubkey(), EVM_CHAIN as u32, recipient_word, lamports)
    };
    let a_sig = send_sol(&client, &sender, &[dispatch(1_500_000)]).await;
    let b_sig = send_sol(&client, &sender, &[dispatch(2_500_000)]).await;
    let c_sig = send_sol(&client, &sender, &[dispatch(7_000_000)]).await;

    // The indexer (its own database) stores all three while C is still only confirmed.
    let idx = TestDb::new(&[&advancia_indexer::MIGRATIONS]).await;
    let mut indexer = Indexer::new(idx.pool.clone(), IndexerConfig::new(node.rpc_url()));
    indexer.step().await.unwrap();
    let rows = dispatched_rows(&idx.pool).await;
    let c_row = rows
        .iter()
        .find(|r| r.signature == c_sig)
        .cloned()
        .expect("C indexed at confirmed");
    // C's fork is abandoned: the transaction never becomes final.
    node.drop_transaction(&c_sig.parse().unwrap()).unwrap();
    // B final (so "not final" below can only mean dropped or forged); the indexer has
    // finalized A and B and rolled C back.
    let b_slot = node
        .node()
        .chain()
        .transaction(&b_sig.parse().unwrap())
        .unwrap()
        .slot;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "B never finalized in the indexer"
        );
        indexer.step().await.unwrap();
        let (finalized, c_rows): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE commitment = 'finalized'),
                    count(*) FILTER (WHERE signature = $1)
               FROM indexer.bridge_messages WHERE direction = 'dispatched'",
        )
        .bind(&c_sig)
        .fetch_one(&idx.pool)
        .await
        .unwrap();
        if node.slot(Commitment::Finalized) > b_slot && finalized == 2 && c_rows == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The attacker's edits: a forged message "in" transaction A (sequence 99, 1000 SOL), and
    // B's amount multiplied by 1000 with the id recomputed so the row is self-consistent.
    let rows = dispatched_rows(&idx.pool).await;
    let a_row = rows.iter().find(|r| r.signature == a_sig).unwrap().clone();
    let mut forged = a_row.clone();
    forged.message.sequence = 99;
    forged.message.amount = U256::from(1_000 * SOL) * U256::from(WEI_PER_LAMPORT);
    let mut altered = rows.iter().find(|r| r.signature == b_sig).unwrap().clone();
    let honest_b = altered.message.clone();
    altered.message.amount *= U256::from(1000u64);
    sqlx::query(
        "INSERT INTO indexer.bridge_messages (chain, signature, ix_index, inner_index, slot,
             commitment, direction, message_id, origin_domain, sequence, sender,
             destination_domain, recipient, asset, amount)
         SELECT chain, signature, 99, 0, slot, 'finalized', 'dispatched', $2, origin_domain, 99,
                sender, destination_domain, recipient, asset, $3::numeric
           FROM indexer.bridge_messages WHERE signature = $1 AND direction = 'dispatched'",
    )
    .bind(&a_sig)
    .bind(message_id(&forged.message).to_string())
    .bind(forged.message.amount.to_string())
    .execute(&idx.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE indexer.bridge_messages SET amount = $2::numeric, message_id = $3
          WHERE signature = $1 AND direction = 'dispatched'",
    )
    .bind(&b_sig)
    .bind(altered.message.amount.to_string())
    .bind(message_id(&altered.message).to_string())
    .execute(&idx.pool)
    .await
    .unwrap();

    // Validators: own embedded store, own publication, own view of Solana (its RPC).
    let tmp = tempfile::tempdir().unwrap();
    let destination = EvmDestination {
        domain: EVM_CHAIN as u32,
        bridge: *bridge.address(),
        provider: evm.provider(),
    };
    let mut nodes = Vec::new();
    for (i, k) in validators.iter().enumerate() {
        nodes.push(
            OwnValidator::start(
                tmp.path(),
                i,
                SolanaRpcSource::new(node.rpc_url(), SOLANA_DOMAIN),
                vec![destination.clone()],
                k.clone(),
            )
            .await,
        );
    }
    // Every row the indexer holds now, plus C's, is presented to every validator.
    let stored = dispatched_rows(&idx.pool).await;
    assert_eq!(
        stored.len(),
        3,
        "A, forged, altered B (C was rolled back): {stored:?}"
    );
    for n in &nodes {
        for row in &stored {
            let (status, reason) = claim(&n.location, row).await;
            let expected = if row.message == a_row.message {
                (202, None)
            } else if row.message == forged.message {
                (422, Some("no_dispatch".to_owned()))
            } else {
                assert_eq!(row.message, altered.message);
                (422, Some("mismatch".to_owned()))
            };
            assert_eq!((status, reason), expected, "{row:?}");
        }
        assert_eq!(
            claim(&n.location, &c_row).await,
            (422, Some("not_final".to_owned()))
        );
        let metrics = n.metrics().await;
        for reason in ["no_dispatch", "mismatch", "not_final"] {
            assert!(
                metrics.contains(&format!("reason=\"{reason}\"}} 1")),
                "{reason} not counted once:\n{metrics}"
            );
        }
        assert_eq!(n.validator.metrics().refusals("no_dispatch"), 1);
    }

    // The relayer (its own database) reads the validators' attestations over HTTP.
    let db = TestDb::new(&[&MIGRATIONS]).await;
    let store = Store::new(db.pool.clone());
    let locations: Vec<String> = nodes.iter().map(|n| n.location.clone()).collect();
    let relayer = common::relayer_to(&evm, *bridge.address(), &store)
        .await
        .with_attestations_from(&locations)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delivered = 0;
    while delivered < 2 {
        assert!(Instant::now() < deadline, "honest dispatches not delivered");
        for n in &nodes {
            n.validator.step().await.unwrap();
        }
        let r = relayer.step().await.unwrap();
        delivered += r.count(|o| matches!(o, Outcome::Delivered));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A few more rounds: nothing else is signed, published or delivered.
    for _ in 0..5 {
        for n in &nodes {
            assert_eq!(n.validator.step().await.unwrap().signed, 0);
        }
        let r = relayer.step().await.unwrap();
        assert_eq!(r.count(|o| matches!(o, Outcome::Delivered)), 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Paid the real amounts of A and B, once each.
    assert_eq!(
        native_balance(&evm, recipient).await,
        U256::from((1_500_000 + 2_500_000) * WEI_PER_LAMPORT)
    );
    for m in [&a_row.message, &honest_b] {
        assert!(bridge.processed(message_id(m)).call().await.unwrap());
    }
    for m in [&forged.message, &altered.message, &c_row.message] {
        assert!(!bridge.processed(message_id(m)).call().await.unwrap());
    }
    // Each validator published exactly the two honest attestations.
    for n in &nodes {
        assert_eq!(n.dir.latest().unwrap(), Some(2));
        let published: Vec<B256> = (1..=2)
            .map(|i| n.dir.attestation(i).unwrap().unwrap().id)
            .collect();
        assert!(published.contains(&message_id(&a_row.message)));
        assert!(published.contains(&message_id(&honest_b)));
    }
    // The relayer learned of nothing else.
    let known: i64 = sqlx::query_scalar("SELECT count(*) FROM bridge.messages")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(known, 2);
}
