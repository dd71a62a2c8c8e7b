use advancia_pay::client::{self, AdvanciaEvent};
use advancia_pay::error::AdvanciaError;
use advancia_pay::events::*;
use advancia_pay::state::Facility;
use anchor_lang::prelude::*;
use solana_signer::Signer;

use crate::harness::*;

#[tokio::test]
async fn register_update_deactivate() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let authority = env.wallet(SOL).await;
    let id = id32("clinic-42");
    let payout = Pubkey::new_unique();
    let events = env
        .send_events(
            &[client::register_facility(
                admin.pubkey(),
                id,
                authority.pubkey(),
                payout,
            )],
            &[&admin],
        )
        .await
        .unwrap();
    let pda = client::facility_pda(&id);
    assert_eq!(
        events,
        vec![AdvanciaEvent::FacilityRegistered(FacilityRegistered {
            facility: pda,
            facility_id: id,
            authority: authority.pubkey(),
            payout_wallet: payout,
        })]
    );
    let f: Facility = env.account(&pda).await;
    assert_eq!(
        (f.authority, f.payout_wallet, f.active),
        (authority.pubkey(), payout, true)
    );

    let new_payout = Pubkey::new_unique();
    let events = env
        .send_events(
            &[client::update_facility_payout(
                authority.pubkey(),
                id,
                new_payout,
            )],
            &[&authority],
        )
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::FacilityPayoutUpdated(
            FacilityPayoutUpdated {
                facility: pda,
                payout_wallet: new_payout
            }
        )]
    );
    let f: Facility = env.account(&pda).await;
    assert_eq!(f.payout_wallet, new_payout);

    let events = env
        .send_events(
            &[client::deactivate_facility(authority.pubkey(), id)],
            &[&authority],
        )
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::FacilityDeactivated(FacilityDeactivated {
            facility: pda
        })]
    );
    let f: Facility = env.account(&pda).await;
    assert!(!f.active);
}

#[tokio::test]
async fn register_requires_admin_and_unique_id() {
    let mut env = Env::new().await;
    let stranger = env.wallet(SOL).await;
    let res = env
        .send(
            &[client::register_facility(
                stranger.pubkey(),
                id32("x"),
                stranger.pubkey(),
                stranger.pubkey(),
            )],
            &[&stranger],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    // Re-registering an existing facility id (hijacking it) fails.
    let admin = env.admin.insecure_clone();
    let res = env
        .send(
            &[client::register_facility(
                admin.pubkey(),
                FACILITY_ID,
                stranger.pubkey(),
                stranger.pubkey(),
            )],
            &[&admin],
        )
        .await;
    assert_already_exists(res);
    let f: Facility = env.account(&client::facility_pda(&FACILITY_ID)).await;
    assert_eq!(f.authority, env.facility_authority.pubkey());
}

#[tokio::test]
async fn payout_update_by_stranger_or_other_facility_fails() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let stranger = env.wallet(SOL).await;
    let res = env
        .send(
            &[client::update_facility_payout(
                stranger.pubkey(),
                FACILITY_ID,
                stranger.pubkey(),
            )],
            &[&stranger],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    // The authority of another facility cannot touch this one.
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
    let res = env
        .send(
            &[client::update_facility_payout(
                other.pubkey(),
                FACILITY_ID,
                other.pubkey(),
            )],
            &[&other],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);
    let res = env
        .send(
            &[client::deactivate_facility(other.pubkey(), FACILITY_ID)],
            &[&other],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    // Missing signature of the real authority.
    let mut ix = client::update_facility_payout(
        env.facility_authority.pubkey(),
        FACILITY_ID,
        other.pubkey(),
    );
    ix.accounts[1].is_signer = false;
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::AccountNotSigner,
    );

    // The admin may deactivate.
    env.send(
        &[client::deactivate_facility(admin.pubkey(), FACILITY_ID)],
        &[&admin],
    )
    .await
    .unwrap();
    let f: Facility = env.account(&client::facility_pda(&FACILITY_ID)).await;
    assert!(!f.active);
    assert_eq!(f.payout_wallet, env.payout.pubkey());
}

#[tokio::test]
async fn spoofed_facility_account_is_rejected() {
    let mut env = Env::new().await;
    // A program-owned account of another type in the facility slot (the config PDA).
    let mut ix = client::update_facility_payout(
        env.facility_authority.pubkey(),
        FACILITY_ID,
        Pubkey::new_unique(),
    );
    ix.accounts[0].pubkey = client::config_pda();
    let auth = env.facility_authority.insecure_clone();
    assert_anchor_err(
        env.send(&[ix], &[&auth]).await,
        anchor_lang::error::ErrorCode::AccountDiscriminatorMismatch,
    );
    // An account not owned by the program.
    let mut ix = client::update_facility_payout(auth.pubkey(), FACILITY_ID, Pubkey::new_unique());
    ix.accounts[0].pubkey = auth.pubkey();
    assert_anchor_err(
        env.send(&[ix], &[&auth]).await,
        anchor_lang::error::ErrorCode::AccountOwnedByWrongProgram,
    );
}
