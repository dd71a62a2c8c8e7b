use advancia_pay::client::{self, AdvanciaEvent};
use advancia_pay::error::AdvanciaError;
use advancia_pay::events::*;
use advancia_pay::state::KycAttestation;
use anchor_lang::error::ErrorCode;
use anchor_lang::prelude::*;
use solana_signer::Signer;

use crate::harness::*;

#[tokio::test]
async fn write_renew_revoke() {
    let mut env = Env::new().await;
    let compliance = env.compliance.insecure_clone();
    let wallet = Pubkey::new_unique();
    let now = env.now().await;
    let events = env
        .send_events(
            &[client::write_attestation(
                compliance.pubkey(),
                wallet,
                2,
                now + 100,
            )],
            &[&compliance],
        )
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::AttestationWritten(AttestationWritten {
            wallet,
            level: 2,
            expires_at: now + 100
        })]
    );
    let a: KycAttestation = env.account(&client::kyc_pda(&wallet)).await;
    assert_eq!(
        (a.wallet, a.level, a.expires_at, a.revoked, a.issued_at),
        (wallet, 2, now + 100, false, now)
    );

    // Writing twice fails (renew instead).
    let res = env
        .send(
            &[client::write_attestation(
                compliance.pubkey(),
                wallet,
                2,
                now + 100,
            )],
            &[&compliance],
        )
        .await;
    assert_already_exists(res);

    let events = env
        .send_events(
            &[client::revoke_attestation(compliance.pubkey(), wallet)],
            &[&compliance],
        )
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::AttestationRevoked(AttestationRevoked {
            wallet
        })]
    );
    let a: KycAttestation = env.account(&client::kyc_pda(&wallet)).await;
    assert!(a.revoked);

    env.send(
        &[client::renew_attestation(
            compliance.pubkey(),
            wallet,
            3,
            now + 500,
        )],
        &[&compliance],
    )
    .await
    .unwrap();
    let a: KycAttestation = env.account(&client::kyc_pda(&wallet)).await;
    assert_eq!((a.level, a.expires_at, a.revoked), (3, now + 500, false));
}

#[tokio::test]
async fn attestation_validation_and_authority() {
    let mut env = Env::new().await;
    let compliance = env.compliance.insecure_clone();
    let wallet = Pubkey::new_unique();
    let now = env.now().await;
    let res = env
        .send(
            &[client::write_attestation(
                compliance.pubkey(),
                wallet,
                0,
                now + 100,
            )],
            &[&compliance],
        )
        .await;
    assert_program_err(res, AdvanciaError::InvalidKycLevel);
    let res = env
        .send(
            &[client::write_attestation(
                compliance.pubkey(),
                wallet,
                1,
                now,
            )],
            &[&compliance],
        )
        .await;
    assert_program_err(res, AdvanciaError::InvalidExpiry);

    // Only the compliance authority (not even the admin) writes, renews and revokes.
    let admin = env.admin.insecure_clone();
    let res = env
        .send(
            &[client::write_attestation(
                admin.pubkey(),
                wallet,
                1,
                now + 100,
            )],
            &[&admin],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);
    // A wallet cannot attest itself.
    let me = env.wallet(SOL).await;
    let res = env
        .send(
            &[client::write_attestation(
                me.pubkey(),
                me.pubkey(),
                1,
                now + 100,
            )],
            &[&me],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    env.attest(&wallet, 100).await;
    let res = env
        .send(
            &[client::renew_attestation(
                me.pubkey(),
                wallet,
                1,
                now + 1000,
            )],
            &[&me],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);
    let res = env
        .send(&[client::revoke_attestation(me.pubkey(), wallet)], &[&me])
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);
    let res = env
        .send(
            &[client::renew_attestation(
                compliance.pubkey(),
                wallet,
                1,
                now - 1,
            )],
            &[&compliance],
        )
        .await;
    assert_program_err(res, AdvanciaError::InvalidExpiry);

    // Missing signature of the compliance authority.
    let mut ix = client::revoke_attestation(compliance.pubkey(), wallet);
    ix.accounts[2].is_signer = false;
    assert_anchor_err(env.send(&[ix], &[]).await, ErrorCode::AccountNotSigner);
    let a: KycAttestation = env.account(&client::kyc_pda(&wallet)).await;
    assert!(!a.revoked);

    // Writing an attestation at a PDA of another wallet (wrong seeds).
    let mut ix = client::write_attestation(compliance.pubkey(), Pubkey::new_unique(), 1, now + 100);
    ix.accounts[1].pubkey = client::kyc_pda(&me.pubkey());
    assert_anchor_err(
        env.send(&[ix], &[&compliance]).await,
        ErrorCode::ConstraintSeeds,
    );
}
