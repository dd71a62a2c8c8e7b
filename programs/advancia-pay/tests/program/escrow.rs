use advancia_pay::UpdateConfigArgs;
use advancia_pay::client::{self, AdvanciaEvent};
use advancia_pay::error::AdvanciaError;
use advancia_pay::events::*;
use advancia_pay::state::{Escrow, NATIVE_SOL};
use anchor_lang::error::ErrorCode;
use anchor_lang::prelude::*;
use solana_keypair::Keypair;
use solana_signer::Signer;

use crate::harness::*;

const DAY: i64 = 86_400;

struct Opened {
    payer: Keypair,
    arbiter: Keypair,
    escrow: Pubkey,
    facility: Pubkey,
}

async fn open_sol(env: &mut Env, id: &str, amount: u64) -> Opened {
    let payer = env.wallet(10 * SOL).await;
    let arbiter = env.wallet(SOL).await;
    let now = env.now().await;
    let params = client::EscrowParams {
        payer: payer.pubkey(),
        facility_id: FACILITY_ID,
        escrow_id: id32(id),
        amount,
        expires_at: now + DAY,
        arbiter: arbiter.pubkey(),
        with_kyc: false,
    };
    env.send(&[client::open_escrow_sol(&params)], &[&payer])
        .await
        .unwrap();
    Opened {
        escrow: client::escrow_pda(&payer.pubkey(), &params.escrow_id),
        facility: client::facility_pda(&FACILITY_ID),
        payer,
        arbiter,
    }
}

impl Opened {
    fn release(
        &self,
        env: &Env,
        signer: &Pubkey,
        amount: u64,
    ) -> anchor_lang::solana_program::instruction::Instruction {
        client::release_escrow_sol(
            *signer,
            self.escrow,
            self.facility,
            env.payout.pubkey(),
            env.treasury.pubkey(),
            amount,
        )
    }
    fn refund(&self, signer: &Pubkey) -> anchor_lang::solana_program::instruction::Instruction {
        client::refund_escrow_sol(*signer, self.escrow, self.facility, self.payer.pubkey())
    }
}

#[tokio::test]
async fn sol_escrow_open_partial_release_refund_close() {
    let mut env = Env::new().await;
    let o = open_sol(&mut env, "e1", 3 * SOL).await;
    let rent = env
        .ctx
        .banks_client
        .get_rent()
        .await
        .unwrap()
        .minimum_balance(8 + Escrow::INIT_SPACE);
    assert_eq!(env.lamports(&o.escrow).await, rent + 3 * SOL);
    assert_eq!(
        env.lamports(&o.payer.pubkey()).await,
        10 * SOL - 3 * SOL - rent
    );
    let e: Escrow = env.account(&o.escrow).await;
    assert_eq!(
        (e.amount, e.released, e.refunded, e.mint),
        (3 * SOL, 0, 0, NATIVE_SOL)
    );

    let payout = env.payout.pubkey();
    let treasury = env.treasury.pubkey();
    let (payout0, treasury0) = (env.lamports(&payout).await, env.lamports(&treasury).await);

    // Partial release by the payer, then by the arbiter.
    let payer_key = o.payer.pubkey();
    let events = env
        .send_events(&[o.release(&env, &payer_key, SOL)], &[&o.payer])
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::EscrowReleased(EscrowReleased {
            escrow: o.escrow,
            by: payer_key,
            amount: SOL,
            fee: fee(SOL),
            released_total: SOL,
        })]
    );
    let arbiter_key = o.arbiter.pubkey();
    env.send(&[o.release(&env, &arbiter_key, SOL)], &[&o.arbiter])
        .await
        .unwrap();
    assert_eq!(env.lamports(&payout).await - payout0, 2 * (SOL - fee(SOL)));
    assert_eq!(env.lamports(&treasury).await - treasury0, 2 * fee(SOL));
    assert_eq!(env.lamports(&o.escrow).await, rent + SOL);

    // Releasing more than what is pending.
    let res = env
        .send(&[o.release(&env, &payer_key, SOL + 1)], &[&o.payer])
        .await;
    assert_program_err(res, AdvanciaError::ReleaseExceedsEscrow);

    // Closing while funds remain.
    let res = env
        .send(
            &[client::close_escrow(payer_key, o.escrow, payer_key, None)],
            &[&o.payer],
        )
        .await;
    assert_program_err(res, AdvanciaError::EscrowNotSettled);

    // The facility voids the remainder: it goes back to the payer.
    let auth = env.facility_authority.insecure_clone();
    let payer_before = env.lamports(&payer_key).await;
    let events = env
        .send_events(&[o.refund(&auth.pubkey())], &[&auth])
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::EscrowRefunded(EscrowRefunded {
            escrow: o.escrow,
            by: auth.pubkey(),
            amount: SOL
        })]
    );
    assert_eq!(env.lamports(&payer_key).await - payer_before, SOL);
    assert_eq!(env.lamports(&o.escrow).await, rent);

    // Release after refund, refund twice.
    let res = env
        .send(&[o.release(&env, &payer_key, 1)], &[&o.payer])
        .await;
    assert_program_err(res, AdvanciaError::EscrowSettled);
    let res = env.send(&[o.refund(&auth.pubkey())], &[&auth]).await;
    assert_program_err(res, AdvanciaError::EscrowSettled);

    // Close: rent back to the payer, whoever signs.
    let stranger = env.wallet(SOL).await;
    let payer_before = env.lamports(&payer_key).await;
    let events = env
        .send_events(
            &[client::close_escrow(
                stranger.pubkey(),
                o.escrow,
                payer_key,
                None,
            )],
            &[&stranger],
        )
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::EscrowClosed(EscrowClosed {
            escrow: o.escrow,
            rent_to: payer_key
        })]
    );
    assert_eq!(env.lamports(&payer_key).await - payer_before, rent);
    assert!(!env.exists(&o.escrow).await);

    // The closed escrow cannot be used again.
    let res = env
        .send(&[o.release(&env, &payer_key, 1)], &[&o.payer])
        .await;
    assert_anchor_err(res, ErrorCode::AccountNotInitialized);
}

#[tokio::test]
async fn closed_escrow_cannot_be_revived_in_the_same_transaction() {
    let mut env = Env::new().await;
    let o = open_sol(&mut env, "e5", SOL).await;
    let payer_key = o.payer.pubkey();
    env.send(&[o.release(&env, &payer_key, SOL)], &[&o.payer])
        .await
        .unwrap();
    // Close, send the rent straight back to the address, then try to use it again: the
    // closed account belongs to the system program now, so it is not an escrow any more.
    let rent = env.lamports(&o.escrow).await;
    let ixs = [
        client::close_escrow(payer_key, o.escrow, payer_key, None),
        anchor_lang::solana_program::system_instruction::transfer(&payer_key, &o.escrow, rent),
        o.release(&env, &payer_key, 1),
    ];
    let res = env.send(&ixs, &[&o.payer]).await;
    assert_anchor_err(res, ErrorCode::AccountOwnedByWrongProgram);
    // The whole transaction was rolled back: the settled escrow is still there.
    let e: Escrow = env.account(&o.escrow).await;
    assert_eq!(e.released, SOL);
}

#[tokio::test]
async fn sol_escrow_released_twice_and_refund_after_release() {
    let mut env = Env::new().await;
    let o = open_sol(&mut env, "e2", SOL).await;
    let payer_key = o.payer.pubkey();
    env.send(&[o.release(&env, &payer_key, SOL)], &[&o.payer])
        .await
        .unwrap();
    let res = env
        .send(&[o.release(&env, &payer_key, SOL)], &[&o.payer])
        .await;
    assert_program_err(res, AdvanciaError::EscrowSettled);
    let auth = env.facility_authority.insecure_clone();
    let res = env.send(&[o.refund(&auth.pubkey())], &[&auth]).await;
    assert_program_err(res, AdvanciaError::EscrowSettled);
    let e: Escrow = env.account(&o.escrow).await;
    assert_eq!((e.released, e.refunded), (SOL, 0));
}

#[tokio::test]
async fn sol_escrow_refund_rules_and_expiry() {
    let mut env = Env::new().await;
    let o = open_sol(&mut env, "e3", 2 * SOL).await;
    let payer_key = o.payer.pubkey();
    let stranger = env.wallet(SOL).await;

    // Early refund by a stranger, or by the payer.
    let res = env
        .send(&[o.refund(&stranger.pubkey())], &[&stranger])
        .await;
    assert_program_err(res, AdvanciaError::EarlyRefund);
    let res = env.send(&[o.refund(&payer_key)], &[&o.payer]).await;
    assert_program_err(res, AdvanciaError::EarlyRefund);

    // Release by a stranger or the facility is not allowed.
    let res = env
        .send(&[o.release(&env, &stranger.pubkey(), 1)], &[&stranger])
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    // Refund redirected to the stranger.
    let mut ix = o.refund(&o.arbiter.pubkey());
    ix.accounts[3].pubkey = stranger.pubkey();
    assert_program_err(
        env.send(&[ix], &[&o.arbiter]).await,
        AdvanciaError::Unauthorized,
    );

    // Release into another facility's payout wallet.
    let admin = env.admin.insecure_clone();
    let other = env.wallet(SOL).await;
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
    let ix = client::release_escrow_sol(
        payer_key,
        o.escrow,
        client::facility_pda(&id32("other")),
        other.pubkey(),
        env.treasury.pubkey(),
        1,
    );
    assert_program_err(
        env.send(&[ix], &[&o.payer]).await,
        AdvanciaError::Unauthorized,
    );
    let ix = client::release_escrow_sol(
        payer_key,
        o.escrow,
        o.facility,
        other.pubkey(),
        env.treasury.pubkey(),
        1,
    );
    assert_program_err(
        env.send(&[ix], &[&o.payer]).await,
        AdvanciaError::Unauthorized,
    );

    // Paused: no release.
    let pause = UpdateConfigArgs {
        paused: Some(true),
        ..Default::default()
    };
    env.send(&[client::update_config(admin.pubkey(), pause)], &[&admin])
        .await
        .unwrap();
    let res = env
        .send(&[o.release(&env, &payer_key, 1)], &[&o.payer])
        .await;
    assert_program_err(res, AdvanciaError::Paused);
    let unpause = UpdateConfigArgs {
        paused: Some(false),
        ..Default::default()
    };
    env.send(&[client::update_config(admin.pubkey(), unpause)], &[&admin])
        .await
        .unwrap();

    // Overflowing release amount.
    env.send(&[o.release(&env, &payer_key, SOL)], &[&o.payer])
        .await
        .unwrap();
    let res = env
        .send(&[o.release(&env, &payer_key, u64::MAX)], &[&o.payer])
        .await;
    assert_program_err(res, AdvanciaError::ReleaseExceedsEscrow);

    // After expiry: no release, but anyone may refund, and only to the payer.
    env.warp(DAY).await;
    let res = env
        .send(&[o.release(&env, &payer_key, 1)], &[&o.payer])
        .await;
    assert_program_err(res, AdvanciaError::EscrowExpired);
    let before = env.lamports(&payer_key).await;
    let stranger_before = env.lamports(&stranger.pubkey()).await;
    env.send(&[o.refund(&stranger.pubkey())], &[&stranger])
        .await
        .unwrap();
    assert_eq!(env.lamports(&payer_key).await - before, SOL);
    assert_eq!(env.lamports(&stranger.pubkey()).await, stranger_before);
}

#[tokio::test]
async fn escrow_open_checks() {
    let mut env = Env::new().await;
    let payer = env.wallet(20 * SOL).await;
    let now = env.now().await;
    let mut params = client::EscrowParams {
        payer: payer.pubkey(),
        facility_id: FACILITY_ID,
        escrow_id: id32("e4"),
        amount: SOL,
        expires_at: now,
        arbiter: Pubkey::new_unique(),
        with_kyc: false,
    };
    assert_program_err(
        env.send(&[client::open_escrow_sol(&params)], &[&payer])
            .await,
        AdvanciaError::InvalidExpiry,
    );
    params.expires_at = now + DAY;
    params.amount = SOL_KYC_THRESHOLD + 1;
    assert_program_err(
        env.send(&[client::open_escrow_sol(&params)], &[&payer])
            .await,
        AdvanciaError::KycRequired,
    );
    params.amount = SOL;
    let events = env
        .send_events(&[client::open_escrow_sol(&params)], &[&payer])
        .await
        .unwrap();
    let escrow = client::escrow_pda(&payer.pubkey(), &params.escrow_id);
    assert_eq!(
        events,
        vec![AdvanciaEvent::EscrowOpened(EscrowOpened {
            escrow,
            payer: payer.pubkey(),
            facility: client::facility_pda(&FACILITY_ID),
            arbiter: params.arbiter,
            mint: NATIVE_SOL,
            amount: SOL,
            expires_at: now + DAY,
        })]
    );
    // Same escrow id again: the account exists.
    assert_already_exists(
        env.send(&[client::open_escrow_sol(&params)], &[&payer])
            .await,
    );
}

async fn token_escrow_case(program: Pubkey) {
    let mut env = Env::new().await;
    let payer = env.wallet(SOL).await;
    let t = TokenSetup::new(&mut env, program, &payer.pubkey()).await;
    let arbiter = env.wallet(SOL).await;
    let now = env.now().await;
    let params = client::EscrowParams {
        payer: payer.pubkey(),
        facility_id: FACILITY_ID,
        escrow_id: id32("te"),
        amount: 400_000,
        expires_at: now + DAY,
        arbiter: arbiter.pubkey(),
        with_kyc: false,
    };
    env.send(
        &[client::open_escrow_token(
            &params,
            t.mint,
            program,
            t.payer_token,
        )],
        &[&payer],
    )
    .await
    .unwrap();
    let escrow = client::escrow_pda(&payer.pubkey(), &params.escrow_id);
    let vault = client::vault_pda(&escrow);
    assert_eq!(env.token_balance(&vault).await, 400_000);
    assert_eq!(env.token_balance(&t.payer_token).await, 600_000);

    let facility = client::facility_pda(&FACILITY_ID);
    env.send(
        &[client::release_escrow_token(
            arbiter.pubkey(),
            escrow,
            facility,
            &t.accounts(),
            100_000,
        )],
        &[&arbiter],
    )
    .await
    .unwrap();
    assert_eq!(env.token_balance(&vault).await, 300_000);
    assert_eq!(
        env.token_balance(&t.payout_token).await,
        100_000 - fee(100_000)
    );
    assert_eq!(env.token_balance(&t.treasury_token).await, fee(100_000));

    // Release into a token account the facility does not own.
    let bad = client::TokenAccounts {
        payout: t.authority_token,
        ..t.accounts()
    };
    let res = env
        .send(
            &[client::release_escrow_token(
                payer.pubkey(),
                escrow,
                facility,
                &bad,
                1,
            )],
            &[&payer],
        )
        .await;
    assert_anchor_err(res, ErrorCode::ConstraintTokenOwner);

    // Another escrow's vault.
    let p2 = client::EscrowParams {
        escrow_id: id32("te2"),
        amount: 1_000,
        ..params
    };
    env.send(
        &[client::open_escrow_token(
            &p2,
            t.mint,
            program,
            t.payer_token,
        )],
        &[&payer],
    )
    .await
    .unwrap();
    let escrow2 = client::escrow_pda(&payer.pubkey(), &p2.escrow_id);
    let mut ix = client::release_escrow_token(payer.pubkey(), escrow, facility, &t.accounts(), 1);
    ix.accounts[4].pubkey = client::vault_pda(&escrow2);
    assert_anchor_err(env.send(&[ix], &[&payer]).await, ErrorCode::ConstraintSeeds);

    // Refund of the remainder, after expiry, by a stranger, into the payer's account only.
    env.warp(DAY).await;
    let stranger = env.wallet(SOL).await;
    let ix = client::refund_escrow_token(
        stranger.pubkey(),
        escrow,
        facility,
        t.mint,
        program,
        t.treasury_token,
    );
    assert_anchor_err(
        env.send(&[ix], &[&stranger]).await,
        ErrorCode::ConstraintTokenOwner,
    );
    let ix = client::refund_escrow_token(
        stranger.pubkey(),
        escrow,
        facility,
        t.mint,
        program,
        t.payer_token,
    );
    env.send(&[ix], &[&stranger]).await.unwrap();
    assert_eq!(
        env.token_balance(&t.payer_token).await,
        600_000 - 1_000 + 300_000
    );
    assert_eq!(env.token_balance(&vault).await, 0);

    // Close without the vault fails; with it, both accounts go and rent returns to the payer.
    let res = env
        .send(
            &[client::close_escrow(
                payer.pubkey(),
                escrow,
                payer.pubkey(),
                None,
            )],
            &[&payer],
        )
        .await;
    assert_program_err(res, AdvanciaError::MissingTokenAccounts);
    let rent = env.lamports(&escrow).await + env.lamports(&vault).await;
    let before = env.lamports(&payer.pubkey()).await;
    env.send(
        &[client::close_escrow(
            stranger.pubkey(),
            escrow,
            payer.pubkey(),
            Some(program),
        )],
        &[&stranger],
    )
    .await
    .unwrap();
    assert_eq!(env.lamports(&payer.pubkey()).await - before, rent);
    assert!(!env.exists(&escrow).await);
    assert!(!env.exists(&vault).await);
}

#[tokio::test]
async fn token_escrow_classic() {
    token_escrow_case(TOKEN).await;
}

#[tokio::test]
async fn token_escrow_2022() {
    token_escrow_case(TOKEN_2022).await;
}

#[tokio::test]
async fn escrow_wrong_mint_and_rent_destination() {
    let mut env = Env::new().await;
    let payer = env.wallet(SOL).await;
    let t = TokenSetup::new(&mut env, TOKEN, &payer.pubkey()).await;
    let other = TokenSetup::new(&mut env, TOKEN, &payer.pubkey()).await;
    let now = env.now().await;
    let params = client::EscrowParams {
        payer: payer.pubkey(),
        facility_id: FACILITY_ID,
        escrow_id: id32("wm"),
        amount: 10_000,
        expires_at: now + DAY,
        arbiter: Pubkey::new_unique(),
        with_kyc: false,
    };
    env.send(
        &[client::open_escrow_token(
            &params,
            t.mint,
            TOKEN,
            t.payer_token,
        )],
        &[&payer],
    )
    .await
    .unwrap();
    let escrow = client::escrow_pda(&payer.pubkey(), &params.escrow_id);
    let facility = client::facility_pda(&FACILITY_ID);

    // Releasing "in another mint" (with that mint's payout accounts).
    let ix = client::release_escrow_token(payer.pubkey(), escrow, facility, &other.accounts(), 1);
    assert_program_err(env.send(&[ix], &[&payer]).await, AdvanciaError::WrongMint);
    // A token escrow through the SOL instruction.
    let ix = client::release_escrow_sol(
        payer.pubkey(),
        escrow,
        facility,
        env.payout.pubkey(),
        env.treasury.pubkey(),
        1,
    );
    assert_program_err(env.send(&[ix], &[&payer]).await, AdvanciaError::WrongMint);

    // Settle it, then try to send the rent to someone other than the payer.
    env.send(
        &[client::release_escrow_token(
            payer.pubkey(),
            escrow,
            facility,
            &t.accounts(),
            10_000,
        )],
        &[&payer],
    )
    .await
    .unwrap();
    let thief = env.wallet(SOL).await;
    let ix = client::close_escrow(thief.pubkey(), escrow, thief.pubkey(), Some(TOKEN));
    assert_program_err(
        env.send(&[ix], &[&thief]).await,
        AdvanciaError::Unauthorized,
    );
    assert!(env.exists(&escrow).await);
    assert_eq!(
        env.token_balance(&t.payout_token).await,
        10_000 - fee(10_000)
    );
}
