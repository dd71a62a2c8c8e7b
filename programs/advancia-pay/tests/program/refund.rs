use advancia_pay::UpdateConfigArgs;
use advancia_pay::client::{self, AdvanciaEvent};
use advancia_pay::error::AdvanciaError;
use advancia_pay::events::PaymentRefunded;
use advancia_pay::state::{NATIVE_SOL, PaymentRecord};
use anchor_lang::error::ErrorCode;
use anchor_lang::prelude::*;
use solana_keypair::Keypair;
use solana_signer::Signer;

use crate::harness::*;

async fn paid_sol(env: &mut Env, invoice: &str, amount: u64) -> (Keypair, [u8; 32]) {
    let payer = env.wallet(10 * SOL).await;
    let p = pay_params(&payer.pubkey(), invoice, amount);
    let (payout, treasury) = (env.payout.pubkey(), env.treasury.pubkey());
    env.send(&[client::pay_sol(&p, payout, treasury)], &[&payer])
        .await
        .unwrap();
    (payer, p.invoice_id)
}

#[tokio::test]
async fn refund_sol_partial_then_full_never_more() {
    let mut env = Env::new().await;
    let (payer, invoice) = paid_sol(&mut env, "r1", 2 * SOL).await;
    let auth = env.facility_authority.insecure_clone();
    let before = env.lamports(&payer.pubkey()).await;
    let auth_before = env.lamports(&auth.pubkey()).await;

    let events = env
        .send_events(
            &[client::refund_sol(
                auth.pubkey(),
                FACILITY_ID,
                payer.pubkey(),
                invoice,
                SOL / 2,
            )],
            &[&auth],
        )
        .await
        .unwrap();
    assert_eq!(env.lamports(&payer.pubkey()).await - before, SOL / 2);
    assert_eq!(auth_before - env.lamports(&auth.pubkey()).await, SOL / 2);
    let pda = client::payment_pda(&payer.pubkey(), &invoice);
    assert_eq!(
        events,
        vec![AdvanciaEvent::PaymentRefunded(PaymentRefunded {
            payment: pda,
            facility: client::facility_pda(&FACILITY_ID),
            payer: payer.pubkey(),
            mint: NATIVE_SOL,
            amount: SOL / 2,
            refunded_total: SOL / 2,
        })]
    );

    // More than what is left.
    let res = env
        .send(
            &[client::refund_sol(
                auth.pubkey(),
                FACILITY_ID,
                payer.pubkey(),
                invoice,
                3 * SOL / 2 + 1,
            )],
            &[&auth],
        )
        .await;
    assert_program_err(res, AdvanciaError::RefundExceedsPayment);

    // Overflow of the refunded total.
    let res = env
        .send(
            &[client::refund_sol(
                auth.pubkey(),
                FACILITY_ID,
                payer.pubkey(),
                invoice,
                u64::MAX,
            )],
            &[&auth],
        )
        .await;
    assert_program_err(res, AdvanciaError::MathOverflow);

    // Refunds are allowed while paused.
    let admin = env.admin.insecure_clone();
    let pause = UpdateConfigArgs {
        paused: Some(true),
        ..Default::default()
    };
    env.send(&[client::update_config(admin.pubkey(), pause)], &[&admin])
        .await
        .unwrap();
    env.send(
        &[client::refund_sol(
            auth.pubkey(),
            FACILITY_ID,
            payer.pubkey(),
            invoice,
            3 * SOL / 2,
        )],
        &[&auth],
    )
    .await
    .unwrap();
    let record: PaymentRecord = env.account(&pda).await;
    assert_eq!(record.refunded, 2 * SOL);
    assert_eq!(env.lamports(&payer.pubkey()).await - before, 2 * SOL);

    let res = env
        .send(
            &[client::refund_sol(
                auth.pubkey(),
                FACILITY_ID,
                payer.pubkey(),
                invoice,
                1,
            )],
            &[&auth],
        )
        .await;
    assert_program_err(res, AdvanciaError::RefundExceedsPayment);
}

#[tokio::test]
async fn refund_sol_attacks() {
    let mut env = Env::new().await;
    let (payer, invoice) = paid_sol(&mut env, "r2", SOL).await;
    let auth = env.facility_authority.insecure_clone();
    let admin = env.admin.insecure_clone();

    // A stranger cannot refund.
    let stranger = env.wallet(5 * SOL).await;
    let res = env
        .send(
            &[client::refund_sol(
                stranger.pubkey(),
                FACILITY_ID,
                payer.pubkey(),
                invoice,
                1,
            )],
            &[&stranger],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    // Another facility cannot refund (or redirect) this facility's payment.
    let other = env.wallet(5 * SOL).await;
    env.send(
        &[client::register_facility(
            admin.pubkey(),
            id32("other"),
            other.pubkey(),
            other.pubkey(),
        )],
        &[&admin],
    )
    .await
    .unwrap();
    let res = env
        .send(
            &[client::refund_sol(
                other.pubkey(),
                id32("other"),
                payer.pubkey(),
                invoice,
                1,
            )],
            &[&other],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    // Refund sent to someone other than the payer.
    let mut ix = client::refund_sol(auth.pubkey(), FACILITY_ID, payer.pubkey(), invoice, 1);
    ix.accounts[3].pubkey = stranger.pubkey();
    assert_program_err(env.send(&[ix], &[&auth]).await, AdvanciaError::Unauthorized);

    // Another payer's payment record under this payer's key.
    let (payer2, invoice2) = paid_sol(&mut env, "r3", SOL).await;
    let mut ix = client::refund_sol(auth.pubkey(), FACILITY_ID, payer.pubkey(), invoice, 1);
    ix.accounts[1].pubkey = client::payment_pda(&payer2.pubkey(), &invoice2);
    assert_program_err(env.send(&[ix], &[&auth]).await, AdvanciaError::Unauthorized);

    // Missing signature of the facility authority.
    let mut ix = client::refund_sol(auth.pubkey(), FACILITY_ID, payer.pubkey(), invoice, 1);
    ix.accounts[2].is_signer = false;
    assert_anchor_err(env.send(&[ix], &[]).await, ErrorCode::AccountNotSigner);

    let record: PaymentRecord = env
        .account(&client::payment_pda(&payer.pubkey(), &invoice))
        .await;
    assert_eq!(record.refunded, 0);
}

async fn refund_token_case(program: Pubkey) {
    let mut env = Env::new().await;
    let payer = env.wallet(SOL).await;
    let t = TokenSetup::new(&mut env, program, &payer.pubkey()).await;
    let p = pay_params(&payer.pubkey(), "rt", 300_000);
    env.send(&[client::pay_token(&p, &t.accounts())], &[&payer])
        .await
        .unwrap();
    let auth = env.facility_authority.insecure_clone();
    let refund = |amount| {
        client::refund_token(
            auth.pubkey(),
            FACILITY_ID,
            payer.pubkey(),
            p.invoice_id,
            t.mint,
            program,
            t.authority_token,
            t.payer_token,
            amount,
        )
    };
    let events = env.send_events(&[refund(100_000)], &[&auth]).await.unwrap();
    assert!(
        matches!(&events[..], [AdvanciaEvent::PaymentRefunded(e)] if e.amount == 100_000 && e.mint == t.mint)
    );
    assert_eq!(
        env.token_balance(&t.payer_token).await,
        1_000_000 - 300_000 + 100_000
    );
    assert_eq!(
        env.token_balance(&t.authority_token).await,
        1_000_000 - 100_000
    );
    env.send(&[refund(200_000)], &[&auth]).await.unwrap();
    assert_program_err(
        env.send(&[refund(1)], &[&auth]).await,
        AdvanciaError::RefundExceedsPayment,
    );
    assert_eq!(env.token_balance(&t.payer_token).await, 1_000_000);

    // Refund into a token account that is not the payer's.
    let p2 = pay_params(&payer.pubkey(), "rt2", 1_000);
    env.send(&[client::pay_token(&p2, &t.accounts())], &[&payer])
        .await
        .unwrap();
    let ix = client::refund_token(
        auth.pubkey(),
        FACILITY_ID,
        payer.pubkey(),
        p2.invoice_id,
        t.mint,
        program,
        t.authority_token,
        t.treasury_token,
        1_000,
    );
    assert_anchor_err(
        env.send(&[ix], &[&auth]).await,
        ErrorCode::ConstraintTokenOwner,
    );
}

#[tokio::test]
async fn refund_token_classic() {
    refund_token_case(TOKEN).await;
}

#[tokio::test]
async fn refund_token_2022() {
    refund_token_case(TOKEN_2022).await;
}

#[tokio::test]
async fn refund_sol_payment_with_token_instruction_fails() {
    let mut env = Env::new().await;
    let (payer, invoice) = paid_sol(&mut env, "r4", SOL).await;
    let t = TokenSetup::new(&mut env, TOKEN, &payer.pubkey()).await;
    let auth = env.facility_authority.insecure_clone();
    let ix = client::refund_token(
        auth.pubkey(),
        FACILITY_ID,
        payer.pubkey(),
        invoice,
        t.mint,
        TOKEN,
        t.authority_token,
        t.payer_token,
        1,
    );
    assert_program_err(env.send(&[ix], &[&auth]).await, AdvanciaError::WrongMint);
}
