use advancia_pay::client::{self, AdvanciaEvent};
use advancia_pay::error::AdvanciaError;
use advancia_pay::events::*;
use advancia_pay::state::{Config, MAX_FEE_BPS};
use advancia_pay::{InitializeConfigArgs, UpdateConfigArgs};
use anchor_lang::prelude::*;
use solana_signer::Signer;

use crate::harness::*;

#[tokio::test]
async fn initialize_sets_config_and_emits_event() {
    let mut env = Env::bare().await;
    let admin = env.admin.insecure_clone();
    let events = env
        .send_events(
            &[client::initialize_config(admin.pubkey(), env.init_args())],
            &[&admin],
        )
        .await
        .unwrap();
    let config: Config = env.account(&client::config_pda()).await;
    assert_eq!(config.admin, admin.pubkey());
    assert_eq!(config.treasury, env.treasury.pubkey());
    assert_eq!(config.settlement_authority, env.settlement.pubkey());
    assert_eq!(config.compliance_authority, env.compliance.pubkey());
    assert_eq!(config.fee_bps, FEE_BPS);
    assert!(!config.paused);
    assert_eq!(config.pending_admin, None);
    assert_eq!(
        events,
        vec![AdvanciaEvent::ConfigUpdated(ConfigUpdated {
            admin: admin.pubkey(),
            treasury: env.treasury.pubkey(),
            settlement_authority: env.settlement.pubkey(),
            compliance_authority: env.compliance.pubkey(),
            fee_bps: FEE_BPS,
            paused: false,
        })]
    );
}

#[tokio::test]
async fn initialize_rejects_fee_above_cap() {
    let mut env = Env::bare().await;
    let admin = env.admin.insecure_clone();
    let args = InitializeConfigArgs {
        fee_bps: MAX_FEE_BPS + 1,
        ..env.init_args()
    };
    let res = env
        .send(
            &[client::initialize_config(admin.pubkey(), args)],
            &[&admin],
        )
        .await;
    assert_program_err(res, AdvanciaError::FeeTooHigh);
}

#[tokio::test]
async fn reinitialize_fails() {
    let mut env = Env::new().await;
    let attacker = env.wallet(SOL).await;
    let res = env
        .send(
            &[client::initialize_config(
                attacker.pubkey(),
                env.init_args(),
            )],
            &[&attacker],
        )
        .await;
    assert_already_exists(res);
    let config: Config = env.account(&client::config_pda()).await;
    assert_eq!(config.admin, env.admin.pubkey());
}

#[tokio::test]
async fn update_config_by_admin() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let new_treasury = Pubkey::new_unique();
    let args = UpdateConfigArgs {
        treasury: Some(new_treasury),
        fee_bps: Some(MAX_FEE_BPS),
        paused: Some(true),
        ..Default::default()
    };
    let events = env
        .send_events(&[client::update_config(admin.pubkey(), args)], &[&admin])
        .await
        .unwrap();
    let config: Config = env.account(&client::config_pda()).await;
    assert_eq!(config.treasury, new_treasury);
    assert_eq!(config.fee_bps, MAX_FEE_BPS);
    assert!(config.paused);
    assert_eq!(
        config.settlement_authority,
        env.settlement.pubkey(),
        "unchanged"
    );
    assert!(
        matches!(&events[..], [AdvanciaEvent::ConfigUpdated(e)] if e.paused && e.treasury == new_treasury)
    );
}

#[tokio::test]
async fn update_config_fee_cap_and_stranger() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let args = UpdateConfigArgs {
        fee_bps: Some(MAX_FEE_BPS + 1),
        ..Default::default()
    };
    let res = env
        .send(&[client::update_config(admin.pubkey(), args)], &[&admin])
        .await;
    assert_program_err(res, AdvanciaError::FeeTooHigh);

    let stranger = env.wallet(SOL).await;
    let args = UpdateConfigArgs {
        paused: Some(true),
        ..Default::default()
    };
    let res = env
        .send(
            &[client::update_config(stranger.pubkey(), args)],
            &[&stranger],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);
}

#[tokio::test]
async fn update_config_missing_signer() {
    let mut env = Env::new().await;
    let args = UpdateConfigArgs {
        paused: Some(true),
        ..Default::default()
    };
    let mut ix = client::update_config(env.admin.pubkey(), args);
    ix.accounts[1].is_signer = false;
    let res = env.send(&[ix], &[]).await;
    assert_anchor_err(res, anchor_lang::error::ErrorCode::AccountNotSigner);
    let config: Config = env.account(&client::config_pda()).await;
    assert!(!config.paused);
}

#[tokio::test]
async fn admin_handover_two_steps() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let next = env.wallet(SOL).await;
    let stranger = env.wallet(SOL).await;

    // Accepting without a proposal fails.
    let res = env
        .send(&[client::accept_admin(next.pubkey())], &[&next])
        .await;
    assert_program_err(res, AdvanciaError::NotPendingAdmin);

    // Only the admin can propose.
    let res = env
        .send(
            &[client::propose_admin(stranger.pubkey(), stranger.pubkey())],
            &[&stranger],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    let events = env
        .send_events(
            &[client::propose_admin(admin.pubkey(), next.pubkey())],
            &[&admin],
        )
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::AdminProposed(AdminProposed {
            admin: admin.pubkey(),
            proposed: next.pubkey()
        })]
    );
    let config: Config = env.account(&client::config_pda()).await;
    assert_eq!(
        config.admin,
        admin.pubkey(),
        "proposal alone changes nothing"
    );
    assert_eq!(config.pending_admin, Some(next.pubkey()));

    // Someone else cannot take the proposal.
    let res = env
        .send(&[client::accept_admin(stranger.pubkey())], &[&stranger])
        .await;
    assert_program_err(res, AdvanciaError::NotPendingAdmin);

    let events = env
        .send_events(&[client::accept_admin(next.pubkey())], &[&next])
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::AdminAccepted(AdminAccepted {
            previous: admin.pubkey(),
            admin: next.pubkey()
        })]
    );
    let config: Config = env.account(&client::config_pda()).await;
    assert_eq!(config.admin, next.pubkey());
    assert_eq!(config.pending_admin, None);

    // The old admin lost its rights.
    let args = UpdateConfigArgs {
        paused: Some(true),
        ..Default::default()
    };
    let res = env
        .send(&[client::update_config(admin.pubkey(), args)], &[&admin])
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);
}

#[tokio::test]
async fn assets_added_and_updated_by_admin_only() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let mint = env.create_mint(TOKEN, 6).await;
    let stranger = env.wallet(SOL).await;
    let res = env
        .send(
            &[client::add_asset(stranger.pubkey(), mint, 1)],
            &[&stranger],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    let events = env
        .send_events(&[client::add_asset(admin.pubkey(), mint, 1_000)], &[&admin])
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::AssetSet(AssetSet {
            mint,
            kyc_threshold: 1_000,
            enabled: true
        })]
    );
    env.send(
        &[client::update_asset(admin.pubkey(), mint, 7, false)],
        &[&admin],
    )
    .await
    .unwrap();
    let asset: advancia_pay::state::Asset = env.account(&client::asset_pda(&mint)).await;
    assert_eq!((asset.kyc_threshold, asset.enabled), (7, false));

    let res = env
        .send(
            &[client::update_asset(stranger.pubkey(), mint, 7, true)],
            &[&stranger],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);
}

#[tokio::test]
async fn initialize_and_accept_need_signatures() {
    let mut env = Env::bare().await;
    let mut ix = client::initialize_config(env.admin.pubkey(), env.init_args());
    ix.accounts[1].is_signer = false;
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::AccountNotSigner,
    );
    assert!(!env.exists(&client::config_pda()).await);

    let admin = env.admin.insecure_clone();
    env.send(
        &[client::initialize_config(admin.pubkey(), env.init_args())],
        &[&admin],
    )
    .await
    .unwrap();
    let next = Pubkey::new_unique();
    env.send(&[client::propose_admin(admin.pubkey(), next)], &[&admin])
        .await
        .unwrap();
    // The proposed key must sign the acceptance itself.
    let mut ix = client::accept_admin(next);
    ix.accounts[1].is_signer = false;
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::AccountNotSigner,
    );
    let config: Config = env.account(&client::config_pda()).await;
    assert_eq!(config.admin, admin.pubkey());
}

/// ADR 0025: on the SBF build the program is deployed through the upgradeable loader with the
/// admin as upgrade authority; natively it is a builtin. Guards that the SBF run really runs
/// the ELF and not the native code.
#[tokio::test]
async fn program_is_deployed_as_the_mode_says() {
    let env = Env::bare().await;
    let program = env
        .ctx
        .banks_client
        .get_account(advancia_pay::ID)
        .await
        .unwrap()
        .expect("program account");
    let expected = if sbf_mode() {
        anchor_lang::solana_program::bpf_loader_upgradeable::ID
    } else {
        pubkey!("NativeLoader1111111111111111111111111111111")
    };
    assert_eq!(program.owner, expected);
    assert!(program.executable);
}

/// Front-running the deployer: a stranger's `initialize_config` is refused on the
/// upgradeable deployment, and the real upgrade authority can still initialize afterwards.
/// Natively (a builtin, no ProgramData) the signer is accepted, as ADR 0025 records.
#[tokio::test]
async fn initialize_by_a_stranger_is_refused_when_deployed_upgradeable() {
    let mut env = Env::bare().await;
    let stranger = env.wallet(SOL).await;
    let res = env
        .send(
            &[client::initialize_config(
                stranger.pubkey(),
                env.init_args(),
            )],
            &[&stranger],
        )
        .await;
    if !sbf_mode() {
        res.unwrap();
        let config: Config = env.account(&client::config_pda()).await;
        assert_eq!(config.admin, stranger.pubkey());
        return;
    }
    assert_program_err(res, AdvanciaError::NotUpgradeAuthority);
    assert!(!env.exists(&client::config_pda()).await);

    // Another account passed as ProgramData (here the stranger's own wallet) is refused too.
    let mut ix = client::initialize_config(stranger.pubkey(), env.init_args());
    ix.accounts[3].pubkey = stranger.pubkey();
    assert_program_err(
        env.send(&[ix], &[&stranger]).await,
        AdvanciaError::NotUpgradeAuthority,
    );

    let admin = env.admin.insecure_clone();
    env.send(
        &[client::initialize_config(admin.pubkey(), env.init_args())],
        &[&admin],
    )
    .await
    .unwrap();
    let config: Config = env.account(&client::config_pda()).await;
    assert_eq!(config.admin, admin.pubkey());
}
