use advancia_pay::UpdateConfigArgs;
use advancia_pay::client::{self, AdvanciaEvent};
use advancia_pay::error::AdvanciaError;
use advancia_pay::events::PaymentMade;
use advancia_pay::state::{NATIVE_SOL, PaymentRecord};
use anchor_lang::error::ErrorCode;
use anchor_lang::prelude::*;
use solana_signer::Signer;

use crate::harness::*;

#[tokio::test]
async fn pay_sol_splits_fee_and_records_payment() {
    let mut env = Env::new().await;
    let payer = env.wallet(10 * SOL).await;
    let (payout, treasury) = (env.payout.pubkey(), env.treasury.pubkey());
    let (payout_before, treasury_before) =
        (env.lamports(&payout).await, env.lamports(&treasury).await);
    let amount = 2 * SOL;
    let p = pay_params(&payer.pubkey(), "inv-1", amount);
    let events = env
        .send_events(&[client::pay_sol(&p, payout, treasury)], &[&payer])
        .await
        .unwrap();

    assert_eq!(
        env.lamports(&payout).await - payout_before,
        amount - fee(amount)
    );
    assert_eq!(env.lamports(&treasury).await - treasury_before, fee(amount));
    let pda = client::payment_pda(&payer.pubkey(), &p.invoice_id);
    let rent = env.lamports(&pda).await;
    assert_eq!(
        env.lamports(&payer.pubkey()).await,
        10 * SOL - amount - rent
    );

    let record: PaymentRecord = env.account(&pda).await;
    let now = env.now().await;
    assert_eq!(record.payer, payer.pubkey());
    assert_eq!(record.facility, client::facility_pda(&FACILITY_ID));
    assert_eq!(record.invoice_id, p.invoice_id);
    assert_eq!(record.reference, p.reference);
    assert_eq!(record.mint, NATIVE_SOL);
    assert_eq!(
        (record.amount, record.fee, record.refunded),
        (amount, fee(amount), 0)
    );
    assert_eq!(
        events,
        vec![AdvanciaEvent::PaymentMade(PaymentMade {
            payment: pda,
            payer: payer.pubkey(),
            facility: client::facility_pda(&FACILITY_ID),
            invoice_id: p.invoice_id,
            reference: p.reference,
            mint: NATIVE_SOL,
            amount,
            fee: fee(amount),
            paid_at: now,
        })]
    );
}

#[tokio::test]
async fn pay_sol_carries_reference_as_account() {
    let env = Env::new().await;
    let p = pay_params(&Pubkey::new_unique(), "inv-ref", SOL);
    let ix = client::pay_sol(&p, env.payout.pubkey(), env.treasury.pubkey());
    assert!(
        ix.accounts
            .iter()
            .any(|m| m.pubkey == p.reference && !m.is_writable && !m.is_signer)
    );
}

#[tokio::test]
async fn double_payment_is_impossible() {
    let mut env = Env::new().await;
    let payer = env.wallet(10 * SOL).await;
    let (payout, treasury) = (env.payout.pubkey(), env.treasury.pubkey());
    let p = pay_params(&payer.pubkey(), "inv-dup", SOL);
    env.send(&[client::pay_sol(&p, payout, treasury)], &[&payer])
        .await
        .unwrap();
    let before = env.lamports(&payout).await;
    let res = env
        .send(&[client::pay_sol(&p, payout, treasury)], &[&payer])
        .await;
    assert_already_exists(res);
    assert_eq!(env.lamports(&payout).await, before);
}

#[tokio::test]
async fn pay_sol_rejects_substituted_accounts() {
    let mut env = Env::new().await;
    let payer = env.wallet(10 * SOL).await;
    let (payout, treasury) = (env.payout.pubkey(), env.treasury.pubkey());
    let thief = Pubkey::new_unique();
    let p = pay_params(&payer.pubkey(), "inv-sub", SOL);

    let res = env
        .send(&[client::pay_sol(&p, thief, treasury)], &[&payer])
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);
    let res = env
        .send(&[client::pay_sol(&p, payout, thief)], &[&payer])
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    // A payment record PDA for another invoice (wrong seeds).
    let mut ix = client::pay_sol(&p, payout, treasury);
    ix.accounts[3].pubkey = client::payment_pda(&payer.pubkey(), &id32("other"));
    assert_anchor_err(env.send(&[ix], &[&payer]).await, ErrorCode::ConstraintSeeds);

    // Another payer's payment record.
    let mut ix = client::pay_sol(&p, payout, treasury);
    ix.accounts[3].pubkey = client::payment_pda(&Pubkey::new_unique(), &p.invoice_id);
    assert_anchor_err(env.send(&[ix], &[&payer]).await, ErrorCode::ConstraintSeeds);

    // Missing payer signature.
    let mut ix = client::pay_sol(&p, payout, treasury);
    ix.accounts[4].is_signer = false;
    assert_anchor_err(env.send(&[ix], &[]).await, ErrorCode::AccountNotSigner);
    assert_eq!(env.lamports(&thief).await, 0);
}

#[tokio::test]
async fn pay_rejected_when_paused_inactive_disabled_or_zero() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let payer = env.wallet(10 * SOL).await;
    let (payout, treasury) = (env.payout.pubkey(), env.treasury.pubkey());

    let res = env
        .send(
            &[client::pay_sol(
                &pay_params(&payer.pubkey(), "z", 0),
                payout,
                treasury,
            )],
            &[&payer],
        )
        .await;
    assert_program_err(res, AdvanciaError::InvalidAmount);

    let pause = UpdateConfigArgs {
        paused: Some(true),
        ..Default::default()
    };
    env.send(&[client::update_config(admin.pubkey(), pause)], &[&admin])
        .await
        .unwrap();
    let p = pay_params(&payer.pubkey(), "inv-p", SOL);
    let res = env
        .send(&[client::pay_sol(&p, payout, treasury)], &[&payer])
        .await;
    assert_program_err(res, AdvanciaError::Paused);
    let unpause = UpdateConfigArgs {
        paused: Some(false),
        ..Default::default()
    };
    env.send(&[client::update_config(admin.pubkey(), unpause)], &[&admin])
        .await
        .unwrap();

    env.send(
        &[client::update_asset(
            admin.pubkey(),
            NATIVE_SOL,
            SOL_KYC_THRESHOLD,
            false,
        )],
        &[&admin],
    )
    .await
    .unwrap();
    let res = env
        .send(&[client::pay_sol(&p, payout, treasury)], &[&payer])
        .await;
    assert_program_err(res, AdvanciaError::AssetDisabled);
    env.send(
        &[client::update_asset(
            admin.pubkey(),
            NATIVE_SOL,
            SOL_KYC_THRESHOLD,
            true,
        )],
        &[&admin],
    )
    .await
    .unwrap();

    env.send(
        &[client::deactivate_facility(admin.pubkey(), FACILITY_ID)],
        &[&admin],
    )
    .await
    .unwrap();
    let res = env
        .send(&[client::pay_sol(&p, payout, treasury)], &[&payer])
        .await;
    assert_program_err(res, AdvanciaError::FacilityInactive);
}

#[tokio::test]
async fn kyc_gating_above_threshold() {
    let mut env = Env::new().await;
    let payer = env.wallet(20 * SOL).await;
    let (payout, treasury) = (env.payout.pubkey(), env.treasury.pubkey());

    // At the threshold: no attestation needed.
    let p = pay_params(&payer.pubkey(), "k0", SOL_KYC_THRESHOLD);
    env.send(&[client::pay_sol(&p, payout, treasury)], &[&payer])
        .await
        .unwrap();

    // Above: required.
    let mut p = pay_params(&payer.pubkey(), "k1", SOL_KYC_THRESHOLD + 1);
    let res = env
        .send(&[client::pay_sol(&p, payout, treasury)], &[&payer])
        .await;
    assert_program_err(res, AdvanciaError::KycRequired);

    // Another wallet's attestation (wrong seeds for this payer).
    let other = Pubkey::new_unique();
    env.attest(&other, 3600).await;
    let mut ix = client::pay_sol(&with_kyc(p), payout, treasury);
    ix.accounts[7].pubkey = client::kyc_pda(&other);
    assert_anchor_err(env.send(&[ix], &[&payer]).await, ErrorCode::ConstraintSeeds);

    env.attest(&payer.pubkey(), 3600).await;
    p.with_kyc = true;
    let before = env.lamports(&payout).await;
    env.send(&[client::pay_sol(&p, payout, treasury)], &[&payer])
        .await
        .unwrap();
    assert_eq!(
        env.lamports(&payout).await - before,
        p.amount - fee(p.amount)
    );

    // Expired.
    env.warp(3601).await;
    let mut p2 = pay_params(&payer.pubkey(), "k2", SOL_KYC_THRESHOLD + 1);
    p2.with_kyc = true;
    let res = env
        .send(&[client::pay_sol(&p2, payout, treasury)], &[&payer])
        .await;
    assert_program_err(res, AdvanciaError::AttestationExpired);

    // Renewed, then revoked.
    let compliance = env.compliance.insecure_clone();
    let now = env.now().await;
    env.send(
        &[client::renew_attestation(
            compliance.pubkey(),
            payer.pubkey(),
            2,
            now + 3600,
        )],
        &[&compliance],
    )
    .await
    .unwrap();
    env.send(&[client::pay_sol(&p2, payout, treasury)], &[&payer])
        .await
        .unwrap();
    env.send(
        &[client::revoke_attestation(
            compliance.pubkey(),
            payer.pubkey(),
        )],
        &[&compliance],
    )
    .await
    .unwrap();
    let mut p3 = pay_params(&payer.pubkey(), "k3", SOL_KYC_THRESHOLD + 1);
    p3.with_kyc = true;
    let res = env
        .send(&[client::pay_sol(&p3, payout, treasury)], &[&payer])
        .await;
    assert_program_err(res, AdvanciaError::AttestationRevoked);
}

fn with_kyc(mut p: client::PayParams) -> client::PayParams {
    p.with_kyc = true;
    p
}

async fn pay_token_case(program: Pubkey) {
    let mut env = Env::new().await;
    let payer = env.wallet(SOL).await;
    let t = TokenSetup::new(&mut env, program, &payer.pubkey()).await;
    let amount = 400_000;
    let p = pay_params(&payer.pubkey(), "tok-1", amount);
    let events = env
        .send_events(&[client::pay_token(&p, &t.accounts())], &[&payer])
        .await
        .unwrap();
    assert_eq!(env.token_balance(&t.payer_token).await, 1_000_000 - amount);
    assert_eq!(
        env.token_balance(&t.payout_token).await,
        amount - fee(amount)
    );
    assert_eq!(env.token_balance(&t.treasury_token).await, fee(amount));
    let record: PaymentRecord = env
        .account(&client::payment_pda(&payer.pubkey(), &p.invoice_id))
        .await;
    assert_eq!(
        (record.mint, record.amount, record.fee),
        (t.mint, amount, fee(amount))
    );
    assert!(
        matches!(&events[..], [AdvanciaEvent::PaymentMade(e)] if e.mint == t.mint && e.amount == amount)
    );

    // Twice: impossible.
    let res = env
        .send(&[client::pay_token(&p, &t.accounts())], &[&payer])
        .await;
    assert_already_exists(res);
    assert_eq!(env.token_balance(&t.payer_token).await, 1_000_000 - amount);

    // Above the token threshold without KYC.
    let p = pay_params(&payer.pubkey(), "tok-2", TOKEN_KYC_THRESHOLD + 1);
    let res = env
        .send(&[client::pay_token(&p, &t.accounts())], &[&payer])
        .await;
    assert_program_err(res, AdvanciaError::KycRequired);
}

#[tokio::test]
async fn pay_token_classic() {
    pay_token_case(TOKEN).await;
}

#[tokio::test]
async fn pay_token_2022() {
    pay_token_case(TOKEN_2022).await;
}

#[tokio::test]
async fn pay_token_rejects_wrong_mint_program_and_accounts() {
    let mut env = Env::new().await;
    let payer = env.wallet(SOL).await;
    let t = TokenSetup::new(&mut env, TOKEN, &payer.pubkey()).await;
    let p = pay_params(&payer.pubkey(), "tok-x", 1_000);

    // A mint that is not an allowed asset (its asset PDA does not exist).
    let rogue = env.create_mint(TOKEN, TOKEN_DECIMALS).await;
    let rogue_payer = env.token_account(TOKEN, &rogue, &payer.pubkey()).await;
    let rogue_payout = env.token_account(TOKEN, &rogue, &env.payout.pubkey()).await;
    let rogue_treasury = env
        .token_account(TOKEN, &rogue, &env.treasury.pubkey())
        .await;
    let accts = client::TokenAccounts {
        mint: rogue,
        token_program: TOKEN,
        source: rogue_payer,
        payout: rogue_payout,
        treasury: rogue_treasury,
    };
    let res = env.send(&[client::pay_token(&p, &accts)], &[&payer]).await;
    assert_anchor_err(res, ErrorCode::AccountNotInitialized);

    // Allowed mint, but a source account of another mint.
    let accts = client::TokenAccounts {
        source: rogue_payer,
        ..t.accounts()
    };
    let res = env.send(&[client::pay_token(&p, &accts)], &[&payer]).await;
    assert_anchor_err(res, ErrorCode::ConstraintTokenMint);

    // Wrong token program for the mint.
    let accts = client::TokenAccounts {
        token_program: TOKEN_2022,
        ..t.accounts()
    };
    let res = env.send(&[client::pay_token(&p, &accts)], &[&payer]).await;
    assert_anchor_err(res, ErrorCode::ConstraintMintTokenProgram);

    // A token account owned by someone else as the payout destination.
    let accts = client::TokenAccounts {
        payout: t.authority_token,
        ..t.accounts()
    };
    let res = env.send(&[client::pay_token(&p, &accts)], &[&payer]).await;
    assert_anchor_err(res, ErrorCode::ConstraintTokenOwner);

    // Paying from someone else's token account.
    let accts = client::TokenAccounts {
        source: t.authority_token,
        ..t.accounts()
    };
    let res = env.send(&[client::pay_token(&p, &accts)], &[&payer]).await;
    assert_anchor_err(res, ErrorCode::ConstraintTokenOwner);

    assert_eq!(env.token_balance(&t.payer_token).await, 1_000_000);
    assert_eq!(env.token_balance(&t.authority_token).await, 1_000_000);
    assert_eq!(env.token_balance(&t.payout_token).await, 0);
}
