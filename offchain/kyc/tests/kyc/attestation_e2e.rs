//! Approval → attestation job → worker signs as the compliance authority → the program
//! lets the payment above the KYC threshold through. Against the real local Solana node
//! running `advancia-pay`.

use std::sync::Arc;
use std::time::Duration;

use advancia_chains::SolanaChain;
use advancia_kyc::attestation::{AttestationWorker, ComplianceKey, StepOutcome, WorkerConfig};
use advancia_kyc::{ApproveRequest, State};
use advancia_localnet::{Localnet, LocalnetConfig};
use advancia_pay::client::{self as pay, PayParams};
use advancia_pay::error::AdvanciaError;
use advancia_pay::state::NATIVE_SOL;
use advancia_test_support::solana::{funded, send};
use anchor_lang::prelude::Pubkey;
use base64::Engine;
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer;
use solana_transaction::Transaction;
use uuid::Uuid;

use super::{applicant, setup};

/// How the node reports the program's error `e` (custom error codes start at 6000).
fn program_error(e: AdvanciaError) -> String {
    format!("custom program error: {:#x}", u32::from(e))
}

const SOL: u64 = 1_000_000_000;
const THRESHOLD: u64 = 5 * SOL;
const FACILITY: [u8; 32] = [0x17; 32];

/// A SOL payment above the threshold, relayed like a wallet's: `Err` carries the program's
/// refusal (preflight logs).
async fn pay_above_threshold(
    chain: &SolanaChain,
    rpc: &RpcClient,
    payer: &Keypair,
    payout: Pubkey,
    treasury: Pubkey,
    with_kyc: bool,
) -> Result<String, String> {
    let params = PayParams {
        payer: payer.pubkey(),
        facility_id: FACILITY,
        invoice_id: *Uuid::new_v4()
            .as_bytes()
            .repeat(2)
            .first_chunk::<32>()
            .unwrap(),
        amount: THRESHOLD + 1,
        reference: Pubkey::new_unique(),
        with_kyc,
    };
    let blockhash = rpc.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(
        &[pay::pay_sol(&params, payout, treasury)],
        Some(&payer.pubkey()),
        &[payer],
        blockhash,
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(bincode::serialize(&tx).unwrap());
    chain.send(&b64).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn approval_writes_attestation_on_chain_and_unblocks_payments() {
    let s = setup().await;
    let node = Localnet::start(LocalnetConfig::for_tests()).await.unwrap();
    let rpc = RpcClient::new_with_commitment(node.rpc_url(), CommitmentConfig::confirmed());
    let chain = SolanaChain::new(node.rpc_url());

    // Program set-up: a separate compliance authority (the worker's key) from the admin.
    let admin = funded(&rpc, 10 * SOL).await;
    let compliance = funded(&rpc, 2 * SOL).await;
    let treasury = funded(&rpc, SOL).await.pubkey();
    let payout = funded(&rpc, SOL).await.pubkey();
    send(
        &rpc,
        &admin,
        &[pay::initialize_config(
            admin.pubkey(),
            advancia_pay::InitializeConfigArgs {
                treasury,
                settlement_authority: admin.pubkey(),
                compliance_authority: compliance.pubkey(),
                fee_bps: 100,
            },
        )],
    )
    .await;
    send(
        &rpc,
        &admin,
        &[pay::add_asset(admin.pubkey(), NATIVE_SOL, THRESHOLD)],
    )
    .await;
    send(
        &rpc,
        &admin,
        &[pay::register_facility(
            admin.pubkey(),
            FACILITY,
            admin.pubkey(),
            payout,
        )],
    )
    .await;

    let patient = funded(&rpc, 20 * SOL).await;
    let wallet = patient.pubkey().to_string();

    // Before approval: the program refuses the payment for want of an attestation.
    let refused = pay_above_threshold(&chain, &rpc, &patient, payout, treasury, false)
        .await
        .unwrap_err();
    assert!(
        refused.contains(&program_error(AdvanciaError::KycRequired)),
        "{refused}"
    );

    // The compliance authority's key as an operator would provide it: a keypair file.
    let key_path = s.dir.with_extension("compliance.json");
    std::fs::write(&key_path, format!("{:?}", compliance.to_bytes().to_vec())).unwrap();
    let key = Arc::new(ComplianceKey::from_file(&key_path).unwrap());
    std::fs::remove_file(&key_path).unwrap();
    assert_eq!(key.pubkey(), compliance.pubkey());
    assert!(!format!("{key:?}").contains(&format!("{:?}", compliance.to_bytes())));
    let worker = AttestationWorker::new(
        s.db.pool.clone(),
        chain.clone(),
        key,
        WorkerConfig {
            base_backoff: Duration::from_millis(10),
            ..WorkerConfig::default()
        },
    );
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Idle);

    let (user, req) = applicant(&s, "Paula Payer", &wallet).await;
    let v = s.svc.submit(user, req).await.unwrap();
    assert_eq!(v.state, State::InReview, "{:?}", v.checks);
    let approved = s
        .svc
        .approve(
            v.id,
            Uuid::now_v7(),
            &ApproveRequest {
                level: None,
                acknowledge_sanctions: false,
            },
        )
        .await
        .unwrap();
    let expires_at = approved.expires_at.unwrap().unix_timestamp();

    // Two workers race for the job: one writes the attestation, the other finds nothing
    // claimable; a later run finds nothing to do either.
    let rival = worker.clone();
    let (a, b) = tokio::join!(worker.step(), rival.step());
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, StepOutcome::Idle));
    let [
        StepOutcome::Done {
            signature: Some(sig),
            ..
        },
        StepOutcome::Idle,
    ] = outcomes
    else {
        panic!("expected one write and one idle worker: {outcomes:?}");
    };
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Idle);
    let att = chain.attestation(&patient.pubkey()).await.unwrap().unwrap();
    assert_eq!(att.wallet, patient.pubkey());
    assert_eq!(att.level, 2);
    assert_eq!(att.expires_at, expires_at);
    assert!(!att.revoked);
    let status = s.svc.status(user).await.unwrap();
    let job = status.attestation.unwrap();
    assert_eq!(
        (job.state.as_str(), job.signature.as_deref()),
        ("done", Some(sig.as_str()))
    );
    assert!(chain.status(&sig).await.unwrap().unwrap().error.is_none());

    // The same payment now goes through.
    pay_above_threshold(&chain, &rpc, &patient, payout, treasury, true)
        .await
        .unwrap();

    // A job whose effect is already on chain (the worker died after sending) is completed
    // without a second transaction.
    sqlx::query(
        "UPDATE kyc.attestation_jobs SET state = 'pending', signature = NULL, done_at = NULL",
    )
    .execute(&s.db.pool)
    .await
    .unwrap();
    assert!(matches!(
        worker.step().await.unwrap(),
        StepOutcome::Done {
            signature: None,
            ..
        }
    ));

    // Revocation follows on chain, and payments above the threshold stop again.
    s.svc
        .revoke(v.id, Uuid::now_v7(), "document reported stolen")
        .await
        .unwrap();
    assert!(matches!(
        worker.step().await.unwrap(),
        StepOutcome::Done {
            signature: Some(_),
            ..
        }
    ));
    assert!(
        chain
            .attestation(&patient.pubkey())
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    let refused = pay_above_threshold(&chain, &rpc, &patient, payout, treasury, true)
        .await
        .unwrap_err();
    assert!(
        refused.contains(&program_error(AdvanciaError::AttestationRevoked)),
        "{refused}"
    );

    // A worker holding the wrong key fails, backs off and records the error.
    let (user2, req2) = applicant(
        &s,
        "Quentin Second",
        &funded(&rpc, SOL).await.pubkey().to_string(),
    )
    .await;
    let v2 = s.svc.submit(user2, req2).await.unwrap();
    s.svc
        .approve(
            v2.id,
            Uuid::now_v7(),
            &ApproveRequest {
                level: Some(1),
                acknowledge_sanctions: false,
            },
        )
        .await
        .unwrap();
    let impostor = funded(&rpc, SOL).await;
    let wrong = AttestationWorker::new(
        s.db.pool.clone(),
        chain.clone(),
        Arc::new(ComplianceKey::new(impostor)),
        WorkerConfig::default(),
    );
    let StepOutcome::Retry { gave_up: false, .. } = wrong.step().await.unwrap() else {
        panic!("a wrong key must not succeed");
    };
    let (attempts, error): (i32, Option<String>) = sqlx::query_as(
        "SELECT attempts, last_error FROM kyc.attestation_jobs WHERE verification_id = $1",
    )
    .bind(v2.id)
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.is_some());
    drop(node);
}
