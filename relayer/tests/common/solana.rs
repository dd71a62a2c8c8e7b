//! The Solana side of the cross-chain tests: the local node's client helpers and the
//! program configured with a bridge for the given validators.

use std::time::{Duration, Instant};

use advancia_pay::client as pay;
use advancia_relayer::keys::SigningKey;
use anchor_lang::solana_program::instruction::Instruction;
use solana_keypair::Keypair;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer;
use solana_transaction::Transaction;

/// The program's bridge domain in these tests.
pub const SOLANA_DOMAIN: u32 = 1_399_811_149;
pub const SOL: u64 = 1_000_000_000;

/// Signs with `payer`, sends and waits for confirmation; returns the signature.
pub async fn send_sol(client: &RpcClient, payer: &Keypair, ixs: &[Instruction]) -> String {
    let blockhash = client.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &[payer], blockhash);
    client
        .send_and_confirm_transaction(&tx)
        .await
        .unwrap()
        .to_string()
}

/// A new keypair holding `lamports` (airdropped and confirmed).
pub async fn funded(client: &RpcClient, lamports: u64) -> Keypair {
    let kp = Keypair::new();
    let sig = client
        .request_airdrop(&kp.pubkey(), lamports)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client.confirm_transaction(&sig).await.unwrap() {
        assert!(Instant::now() < deadline, "airdrop never confirmed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    kp
}

/// Configures the program (no fee) and its bridge with `validators`' addresses and
/// `threshold`; returns the funded admin.
pub async fn configure_bridge(
    client: &RpcClient,
    validators: &[SigningKey],
    threshold: u8,
) -> Keypair {
    let admin = funded(client, 10 * SOL).await;
    let set: Vec<[u8; 20]> = validators
        .iter()
        .map(|k| k.address().into_array())
        .collect();
    send_sol(
        client,
        &admin,
        &[
            pay::initialize_config(
                admin.pubkey(),
                advancia_pay::InitializeConfigArgs {
                    treasury: admin.pubkey(),
                    settlement_authority: admin.pubkey(),
                    compliance_authority: admin.pubkey(),
                    fee_bps: 0,
                },
            ),
            pay::initialize_bridge(admin.pubkey(), SOLANA_DOMAIN, set, threshold),
        ],
    )
    .await;
    admin
}
