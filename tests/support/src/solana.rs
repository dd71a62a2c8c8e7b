//! A Solana JSON-RPC node in tests (the local node, `advancia-localnet`): fund a new key and
//! send confirmed transactions.

use std::time::Duration;

use solana_instruction::Instruction;
use solana_keypair::Keypair;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer;
use solana_transaction::Transaction;

/// A new keypair holding `lamports`: airdropped, then polled until confirmed (10 s at most).
pub async fn funded(rpc: &RpcClient, lamports: u64) -> Keypair {
    let kp = Keypair::new();
    let sig = rpc
        .request_airdrop(&kp.pubkey(), lamports)
        .await
        .unwrap_or_else(|e| panic!("airdrop request: {e}"));
    for _ in 0..400 {
        let confirmed = rpc
            .confirm_transaction(&sig)
            .await
            .unwrap_or_else(|e| panic!("airdrop confirmation: {e}"));
        if confirmed {
            return kp;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("airdrop never confirmed");
}

/// Sends `ixs` paid and signed by `payer`, waits for confirmation; returns the signature.
pub async fn send(rpc: &RpcClient, payer: &Keypair, ixs: &[Instruction]) -> String {
    let blockhash = rpc
        .get_latest_blockhash()
        .await
        .unwrap_or_else(|e| panic!("latest blockhash: {e}"));
    let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &[payer], blockhash);
    rpc.send_and_confirm_transaction(&tx)
        .await
        .unwrap_or_else(|e| panic!("transaction failed: {e}"))
        .to_string()
}
