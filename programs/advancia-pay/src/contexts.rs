//! Account validation for every instruction. Constraints here are the security boundary:
//! PDAs are re-derived from their seeds, stored relations are pinned with `has_one`/`address`,
//! token accounts are checked for mint, owner and token program.

use anchor_lang::prelude::*;
use anchor_spl::token_interface::{Mint, TokenAccount, TokenInterface};

use crate::error::AdvanciaError;
use crate::state::*;

/// `init_if_needed` hands over an account it just created with zeroed data (the discriminator
/// is written on exit); an account that existed already carries its type's discriminator.
/// Together they turn re-initialization into `AlreadyInitialized` instead of the runtime's
/// invalid-instruction error (issue #4).
pub fn created_now(info: &AccountInfo) -> bool {
    info.try_borrow_data().is_ok_and(|data| {
        data.get(..8)
            .is_some_and(|disc| disc.iter().all(|b| *b == 0))
    })
}

/// The native loader: owner of builtin programs, which is what this program is only in the
/// test runtime's native mode and the local node's fallback (never on a cluster).
const NATIVE_LOADER: Pubkey = pubkey!("NativeLoader1111111111111111111111111111111");
/// bincode tags of the upgradeable loader's `UpgradeableLoaderState::{Program, ProgramData}`.
const LOADER_STATE_PROGRAM: [u8; 4] = 2u32.to_le_bytes();
const LOADER_STATE_PROGRAM_DATA: [u8; 4] = 3u32.to_le_bytes();

/// Only the program's upgrade authority may initialize the config (ADR 0006, ADR 0025), so
/// nobody can front-run the deployer between deployment and initialization:
/// - deployed through the upgradeable loader: `program` must name `program_data` as its
///   ProgramData, and that ProgramData's upgrade authority must be `admin` (a program made
///   immutable, authority `None`, cannot be initialized any more);
/// - a builtin (native loader): there is no ProgramData, the signer is accepted;
/// - any other loader: refused.
///
/// The loader's state is read directly (tag, address, `Option<Pubkey>`), not deserialized.
pub fn check_upgrade_authority(
    program: &AccountInfo,
    program_data: &AccountInfo,
    admin: &Pubkey,
) -> Result<()> {
    require_keys_eq!(*program.key, crate::ID, AdvanciaError::NotUpgradeAuthority);
    if *program.owner == NATIVE_LOADER {
        return Ok(());
    }
    let loader = anchor_lang::solana_program::bpf_loader_upgradeable::ID;
    require!(
        *program.owner == loader && *program_data.owner == loader,
        AdvanciaError::NotUpgradeAuthority
    );
    let program_state = program.try_borrow_data()?;
    let data = program_data.try_borrow_data()?;
    let names_program_data = program_state.get(..4) == Some(&LOADER_STATE_PROGRAM[..])
        && program_state.get(4..36) == Some(program_data.key.as_ref());
    // ProgramData: tag (4), slot (8), Option tag (1), authority (32).
    let authority_is_admin = data.get(..4) == Some(&LOADER_STATE_PROGRAM_DATA[..])
        && data.get(12) == Some(&1)
        && data.get(13..45) == Some(admin.as_ref());
    require!(
        names_program_data && authority_is_admin,
        AdvanciaError::NotUpgradeAuthority
    );
    Ok(())
}

#[event_cpi]
#[derive(Accounts)]
pub struct InitializeConfig<'info> {
    #[account(init_if_needed, payer = admin, space = 8 + Config::INIT_SPACE, seeds = [CONFIG_SEED], bump,
        constraint = created_now(&config.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub config: Account<'info, Config>,
    /// The program's upgrade authority (see [`check_upgrade_authority`]).
    #[account(mut)]
    pub admin: Signer<'info>,
    pub system_program: Program<'info, System>,
    /// CHECK: the program's ProgramData account; read by [`check_upgrade_authority`] only
    /// when the program is deployed through the upgradeable loader, which also pins it.
    pub program_data: UncheckedAccount<'info>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct AdminOnly<'info> {
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump,
        has_one = admin @ AdvanciaError::Unauthorized)]
    pub config: Account<'info, Config>,
    pub admin: Signer<'info>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct AcceptAdmin<'info> {
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump,
        constraint = config.pending_admin == Some(new_admin.key()) @ AdvanciaError::NotPendingAdmin)]
    pub config: Account<'info, Config>,
    pub new_admin: Signer<'info>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(mint: Pubkey)]
pub struct AddAsset<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump,
        has_one = admin @ AdvanciaError::Unauthorized)]
    pub config: Account<'info, Config>,
    #[account(init_if_needed, payer = admin, space = 8 + Asset::INIT_SPACE,
        seeds = [ASSET_SEED, mint.as_ref()], bump,
        constraint = created_now(&asset.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub asset: Account<'info, Asset>,
    #[account(mut)]
    pub admin: Signer<'info>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct UpdateAsset<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump,
        has_one = admin @ AdvanciaError::Unauthorized)]
    pub config: Account<'info, Config>,
    #[account(mut, seeds = [ASSET_SEED, asset.mint.as_ref()], bump = asset.bump)]
    pub asset: Account<'info, Asset>,
    pub admin: Signer<'info>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(facility_id: [u8; 32])]
pub struct RegisterFacility<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump,
        has_one = admin @ AdvanciaError::Unauthorized)]
    pub config: Account<'info, Config>,
    #[account(init_if_needed, payer = admin, space = 8 + Facility::INIT_SPACE,
        seeds = [FACILITY_SEED, facility_id.as_ref()], bump,
        constraint = created_now(&facility.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub facility: Account<'info, Facility>,
    #[account(mut)]
    pub admin: Signer<'info>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct UpdateFacilityPayout<'info> {
    #[account(mut, seeds = [FACILITY_SEED, facility.facility_id.as_ref()], bump = facility.bump,
        has_one = authority @ AdvanciaError::Unauthorized)]
    pub facility: Account<'info, Facility>,
    pub authority: Signer<'info>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct DeactivateFacility<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Account<'info, Config>,
    #[account(mut, seeds = [FACILITY_SEED, facility.facility_id.as_ref()], bump = facility.bump,
        constraint = signer.key() == facility.authority || signer.key() == config.admin
            @ AdvanciaError::Unauthorized)]
    pub facility: Account<'info, Facility>,
    pub signer: Signer<'info>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(invoice_id: [u8; 32])]
pub struct PaySol<'info> {
    /// The program's only `Config` (owner and discriminator make it the config PDA).
    pub config: Box<Account<'info, Config>>,
    /// An `Asset` exists only at the PDA of its own mint, so the stored mint pins it.
    #[account(constraint = asset.mint == NATIVE_SOL @ anchor_lang::error::ErrorCode::ConstraintSeeds)]
    pub asset: Box<Account<'info, Asset>>,
    /// Any `Facility` of this program is a registered facility (created only at its PDA).
    pub facility: Box<Account<'info, Facility>>,
    #[account(init_if_needed, payer = payer, space = 8 + PaymentRecord::INIT_SPACE,
        seeds = [PAYMENT_SEED, payer.key().as_ref(), invoice_id.as_ref()], bump,
        constraint = created_now(&payment.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub payment: Box<Account<'info, PaymentRecord>>,
    #[account(mut)]
    pub payer: Signer<'info>,
    /// CHECK: only receives lamports; pinned to the facility's payout wallet.
    #[account(mut, address = facility.payout_wallet @ AdvanciaError::Unauthorized)]
    pub payout_wallet: UncheckedAccount<'info>,
    /// CHECK: only receives lamports; pinned to the configured treasury.
    #[account(mut, address = config.treasury @ AdvanciaError::Unauthorized)]
    pub treasury: UncheckedAccount<'info>,
    /// An attestation exists only at the PDA of its own wallet, so the stored wallet pins it.
    #[account(constraint = kyc.wallet == payer.key() @ anchor_lang::error::ErrorCode::ConstraintSeeds)]
    pub kyc: Option<Box<Account<'info, KycAttestation>>>,
    /// CHECK: Solana Pay reference key; only recorded, never read or written.
    pub reference: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(invoice_id: [u8; 32])]
pub struct PayToken<'info> {
    /// The program's only `Config` (owner and discriminator make it the config PDA).
    pub config: Box<Account<'info, Config>>,
    /// An `Asset` exists only at the PDA of its own mint, so the stored mint pins it.
    #[account(constraint = asset.mint == mint.key() @ anchor_lang::error::ErrorCode::ConstraintSeeds)]
    pub asset: Box<Account<'info, Asset>>,
    /// Any `Facility` of this program is a registered facility (created only at its PDA).
    pub facility: Box<Account<'info, Facility>>,
    #[account(init_if_needed, payer = payer, space = 8 + PaymentRecord::INIT_SPACE,
        seeds = [PAYMENT_SEED, payer.key().as_ref(), invoice_id.as_ref()], bump,
        constraint = created_now(&payment.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub payment: Box<Account<'info, PaymentRecord>>,
    #[account(mut)]
    pub payer: Signer<'info>,
    #[account(mint::token_program = token_program)]
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    #[account(mut, token::mint = mint, token::authority = payer,
        token::token_program = token_program)]
    pub payer_token: Box<InterfaceAccount<'info, TokenAccount>>,
    #[account(mut, token::mint = mint, token::authority = facility.payout_wallet,
        token::token_program = token_program)]
    pub payout_token: Box<InterfaceAccount<'info, TokenAccount>>,
    #[account(mut, token::mint = mint, token::authority = config.treasury,
        token::token_program = token_program)]
    pub treasury_token: Box<InterfaceAccount<'info, TokenAccount>>,
    /// An attestation exists only at the PDA of its own wallet, so the stored wallet pins it.
    #[account(constraint = kyc.wallet == payer.key() @ anchor_lang::error::ErrorCode::ConstraintSeeds)]
    pub kyc: Option<Box<Account<'info, KycAttestation>>>,
    /// CHECK: Solana Pay reference key; only recorded, never read or written.
    pub reference: UncheckedAccount<'info>,
    pub token_program: Interface<'info, TokenInterface>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct RefundSol<'info> {
    #[account(seeds = [FACILITY_SEED, facility.facility_id.as_ref()], bump = facility.bump,
        has_one = authority @ AdvanciaError::Unauthorized)]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, seeds = [PAYMENT_SEED, payment.payer.as_ref(), payment.invoice_id.as_ref()],
        bump = payment.bump,
        has_one = facility @ AdvanciaError::Unauthorized,
        has_one = payer @ AdvanciaError::Unauthorized,
        constraint = payment.mint == NATIVE_SOL @ AdvanciaError::WrongMint)]
    pub payment: Box<Account<'info, PaymentRecord>>,
    /// Funds the refund from its own wallet.
    #[account(mut)]
    pub authority: Signer<'info>,
    /// CHECK: pinned to the payment's payer by `has_one`.
    #[account(mut)]
    pub payer: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct RefundToken<'info> {
    #[account(seeds = [FACILITY_SEED, facility.facility_id.as_ref()], bump = facility.bump,
        has_one = authority @ AdvanciaError::Unauthorized)]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, seeds = [PAYMENT_SEED, payment.payer.as_ref(), payment.invoice_id.as_ref()],
        bump = payment.bump,
        has_one = facility @ AdvanciaError::Unauthorized,
        has_one = mint @ AdvanciaError::WrongMint)]
    pub payment: Box<Account<'info, PaymentRecord>>,
    pub authority: Signer<'info>,
    #[account(mint::token_program = token_program)]
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    #[account(mut, token::mint = mint, token::authority = authority,
        token::token_program = token_program)]
    pub authority_token: Box<InterfaceAccount<'info, TokenAccount>>,
    #[account(mut, token::mint = mint, token::authority = payment.payer,
        token::token_program = token_program)]
    pub payer_token: Box<InterfaceAccount<'info, TokenAccount>>,
    pub token_program: Interface<'info, TokenInterface>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(escrow_id: [u8; 32])]
pub struct OpenEscrowSol<'info> {
    /// The program's only `Config` (owner and discriminator make it the config PDA).
    pub config: Box<Account<'info, Config>>,
    /// An `Asset` exists only at the PDA of its own mint, so the stored mint pins it.
    #[account(constraint = asset.mint == NATIVE_SOL @ anchor_lang::error::ErrorCode::ConstraintSeeds)]
    pub asset: Box<Account<'info, Asset>>,
    /// Any `Facility` of this program is a registered facility (created only at its PDA).
    pub facility: Box<Account<'info, Facility>>,
    #[account(init_if_needed, payer = payer, space = 8 + Escrow::INIT_SPACE,
        seeds = [ESCROW_SEED, payer.key().as_ref(), escrow_id.as_ref()], bump,
        constraint = created_now(&escrow.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub escrow: Box<Account<'info, Escrow>>,
    #[account(mut)]
    pub payer: Signer<'info>,
    /// An attestation exists only at the PDA of its own wallet, so the stored wallet pins it.
    #[account(constraint = kyc.wallet == payer.key() @ anchor_lang::error::ErrorCode::ConstraintSeeds)]
    pub kyc: Option<Box<Account<'info, KycAttestation>>>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(escrow_id: [u8; 32])]
pub struct OpenEscrowToken<'info> {
    /// The program's only `Config` (owner and discriminator make it the config PDA).
    pub config: Box<Account<'info, Config>>,
    /// An `Asset` exists only at the PDA of its own mint, so the stored mint pins it.
    #[account(constraint = asset.mint == mint.key() @ anchor_lang::error::ErrorCode::ConstraintSeeds)]
    pub asset: Box<Account<'info, Asset>>,
    /// Any `Facility` of this program is a registered facility (created only at its PDA).
    pub facility: Box<Account<'info, Facility>>,
    #[account(init_if_needed, payer = payer, space = 8 + Escrow::INIT_SPACE,
        seeds = [ESCROW_SEED, payer.key().as_ref(), escrow_id.as_ref()], bump,
        constraint = created_now(&escrow.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub escrow: Box<Account<'info, Escrow>>,
    #[account(init, payer = payer, seeds = [VAULT_SEED, escrow.key().as_ref()], bump,
        token::mint = mint, token::authority = escrow, token::token_program = token_program)]
    pub vault: Box<InterfaceAccount<'info, TokenAccount>>,
    #[account(mut)]
    pub payer: Signer<'info>,
    #[account(mint::token_program = token_program)]
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    #[account(mut, token::mint = mint, token::authority = payer,
        token::token_program = token_program)]
    pub payer_token: Box<InterfaceAccount<'info, TokenAccount>>,
    /// An attestation exists only at the PDA of its own wallet, so the stored wallet pins it.
    #[account(constraint = kyc.wallet == payer.key() @ anchor_lang::error::ErrorCode::ConstraintSeeds)]
    pub kyc: Option<Box<Account<'info, KycAttestation>>>,
    pub token_program: Interface<'info, TokenInterface>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct ReleaseEscrowSol<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,
    #[account(address = escrow.facility @ AdvanciaError::Unauthorized)]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, seeds = [ESCROW_SEED, escrow.payer.as_ref(), escrow.escrow_id.as_ref()],
        bump = escrow.bump,
        constraint = escrow.mint == NATIVE_SOL @ AdvanciaError::WrongMint,
        constraint = signer.key() == escrow.payer || signer.key() == escrow.arbiter
            @ AdvanciaError::Unauthorized)]
    pub escrow: Box<Account<'info, Escrow>>,
    pub signer: Signer<'info>,
    /// CHECK: only receives lamports; pinned to the facility's payout wallet.
    #[account(mut, address = facility.payout_wallet @ AdvanciaError::Unauthorized)]
    pub payout_wallet: UncheckedAccount<'info>,
    /// CHECK: only receives lamports; pinned to the configured treasury.
    #[account(mut, address = config.treasury @ AdvanciaError::Unauthorized)]
    pub treasury: UncheckedAccount<'info>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct ReleaseEscrowToken<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,
    #[account(address = escrow.facility @ AdvanciaError::Unauthorized)]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, seeds = [ESCROW_SEED, escrow.payer.as_ref(), escrow.escrow_id.as_ref()],
        bump = escrow.bump,
        has_one = mint @ AdvanciaError::WrongMint,
        constraint = signer.key() == escrow.payer || signer.key() == escrow.arbiter
            @ AdvanciaError::Unauthorized)]
    pub escrow: Box<Account<'info, Escrow>>,
    pub signer: Signer<'info>,
    #[account(mut, seeds = [VAULT_SEED, escrow.key().as_ref()], bump,
        token::token_program = token_program)]
    pub vault: Box<InterfaceAccount<'info, TokenAccount>>,
    #[account(mint::token_program = token_program)]
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    #[account(mut, token::mint = mint, token::authority = facility.payout_wallet,
        token::token_program = token_program)]
    pub payout_token: Box<InterfaceAccount<'info, TokenAccount>>,
    #[account(mut, token::mint = mint, token::authority = config.treasury,
        token::token_program = token_program)]
    pub treasury_token: Box<InterfaceAccount<'info, TokenAccount>>,
    pub token_program: Interface<'info, TokenInterface>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct RefundEscrowSol<'info> {
    #[account(address = escrow.facility @ AdvanciaError::Unauthorized)]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, seeds = [ESCROW_SEED, escrow.payer.as_ref(), escrow.escrow_id.as_ref()],
        bump = escrow.bump, has_one = payer @ AdvanciaError::Unauthorized,
        constraint = escrow.mint == NATIVE_SOL @ AdvanciaError::WrongMint)]
    pub escrow: Box<Account<'info, Escrow>>,
    pub signer: Signer<'info>,
    /// CHECK: refunds only ever go to the escrow's payer (`has_one`).
    #[account(mut)]
    pub payer: UncheckedAccount<'info>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct RefundEscrowToken<'info> {
    #[account(address = escrow.facility @ AdvanciaError::Unauthorized)]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, seeds = [ESCROW_SEED, escrow.payer.as_ref(), escrow.escrow_id.as_ref()],
        bump = escrow.bump, has_one = mint @ AdvanciaError::WrongMint)]
    pub escrow: Box<Account<'info, Escrow>>,
    pub signer: Signer<'info>,
    #[account(mut, seeds = [VAULT_SEED, escrow.key().as_ref()], bump,
        token::token_program = token_program)]
    pub vault: Box<InterfaceAccount<'info, TokenAccount>>,
    #[account(mint::token_program = token_program)]
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    /// Refunds only ever go to a token account of the escrow's payer.
    #[account(mut, token::mint = mint, token::authority = escrow.payer,
        token::token_program = token_program)]
    pub payer_token: Box<InterfaceAccount<'info, TokenAccount>>,
    pub token_program: Interface<'info, TokenInterface>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct CloseEscrow<'info> {
    #[account(mut, seeds = [ESCROW_SEED, escrow.payer.as_ref(), escrow.escrow_id.as_ref()],
        bump = escrow.bump, has_one = payer @ AdvanciaError::Unauthorized, close = payer)]
    pub escrow: Box<Account<'info, Escrow>>,
    /// CHECK: the escrow's payer paid its rent and gets it back (`has_one`).
    #[account(mut)]
    pub payer: UncheckedAccount<'info>,
    pub signer: Signer<'info>,
    /// Required for token escrows: the vault is closed with the escrow.
    #[account(mut, seeds = [VAULT_SEED, escrow.key().as_ref()], bump)]
    pub vault: Option<Box<InterfaceAccount<'info, TokenAccount>>>,
    pub token_program: Option<Interface<'info, TokenInterface>>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(wallet: Pubkey)]
pub struct WriteAttestation<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump,
        has_one = compliance_authority @ AdvanciaError::Unauthorized)]
    pub config: Account<'info, Config>,
    #[account(init_if_needed, payer = compliance_authority, space = 8 + KycAttestation::INIT_SPACE,
        seeds = [KYC_SEED, wallet.as_ref()], bump,
        constraint = created_now(&attestation.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub attestation: Account<'info, KycAttestation>,
    #[account(mut)]
    pub compliance_authority: Signer<'info>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct UpdateAttestation<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump,
        has_one = compliance_authority @ AdvanciaError::Unauthorized)]
    pub config: Account<'info, Config>,
    #[account(mut, seeds = [KYC_SEED, attestation.wallet.as_ref()], bump = attestation.bump)]
    pub attestation: Account<'info, KycAttestation>,
    pub compliance_authority: Signer<'info>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(batch_number: u64)]
pub struct CommitBatch<'info> {
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump,
        has_one = settlement_authority @ AdvanciaError::Unauthorized)]
    pub config: Account<'info, Config>,
    #[account(init_if_needed, payer = settlement_authority, space = 8 + SettlementBatch::INIT_SPACE,
        seeds = [BATCH_SEED, batch_number.to_le_bytes().as_ref()], bump,
        constraint = created_now(&batch.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub batch: Account<'info, SettlementBatch>,
    #[account(mut)]
    pub settlement_authority: Signer<'info>,
    pub system_program: Program<'info, System>,
}

#[derive(Accounts)]
pub struct VerifyInclusion<'info> {
    #[account(seeds = [BATCH_SEED, batch.batch_number.to_le_bytes().as_ref()], bump = batch.bump)]
    pub batch: Account<'info, SettlementBatch>,
}

// ---- EVM bridge (ADR 0012) --------------------------------------------------------------

#[event_cpi]
#[derive(Accounts)]
pub struct InitializeBridge<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump,
        has_one = admin @ AdvanciaError::Unauthorized)]
    pub config: Box<Account<'info, Config>>,
    #[account(init_if_needed, payer = admin, space = 8 + BridgeConfig::INIT_SPACE,
        seeds = [BRIDGE_SEED], bump,
        constraint = created_now(&bridge.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub bridge: Box<Account<'info, BridgeConfig>>,
    #[account(init_if_needed, payer = admin, space = 8 + BridgeSolVault::INIT_SPACE,
        seeds = [BRIDGE_SOL_VAULT_SEED], bump,
        constraint = created_now(&sol_vault.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub sol_vault: Box<Account<'info, BridgeSolVault>>,
    #[account(mut)]
    pub admin: Signer<'info>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct BridgeAdmin<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump,
        has_one = admin @ AdvanciaError::Unauthorized)]
    pub config: Box<Account<'info, Config>>,
    #[account(mut, seeds = [BRIDGE_SEED], bump = bridge.bump)]
    pub bridge: Box<Account<'info, BridgeConfig>>,
    pub admin: Signer<'info>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(local_mint: Pubkey, destination_domain: u32)]
pub struct RegisterBridgeRoute<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump,
        has_one = admin @ AdvanciaError::Unauthorized)]
    pub config: Box<Account<'info, Config>>,
    #[account(seeds = [BRIDGE_SEED], bump = bridge.bump)]
    pub bridge: Box<Account<'info, BridgeConfig>>,
    #[account(init_if_needed, payer = admin, space = 8 + BridgeRoute::INIT_SPACE,
        seeds = [BRIDGE_ROUTE_SEED, local_mint.as_ref(), destination_domain.to_le_bytes().as_ref()],
        bump,
        constraint = created_now(&route.to_account_info()) @ AdvanciaError::AlreadyInitialized)]
    pub route: Box<Account<'info, BridgeRoute>>,
    #[account(mut)]
    pub admin: Signer<'info>,
    pub system_program: Program<'info, System>,
}

#[derive(Accounts)]
pub struct CreateBridgeVault<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump,
        has_one = admin @ AdvanciaError::Unauthorized)]
    pub config: Box<Account<'info, Config>>,
    #[account(seeds = [BRIDGE_SEED], bump = bridge.bump)]
    pub bridge: Box<Account<'info, BridgeConfig>>,
    /// CHECK: signer-only PDA that owns the token vaults; holds no data.
    #[account(seeds = [BRIDGE_AUTHORITY_SEED], bump = bridge.authority_bump)]
    pub authority: UncheckedAccount<'info>,
    #[account(mint::token_program = token_program)]
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    #[account(init, payer = admin, seeds = [BRIDGE_VAULT_SEED, mint.key().as_ref()], bump,
        token::mint = mint, token::authority = authority, token::token_program = token_program)]
    pub vault: Box<InterfaceAccount<'info, TokenAccount>>,
    #[account(mut)]
    pub admin: Signer<'info>,
    pub token_program: Interface<'info, TokenInterface>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(destination_domain: u32)]
pub struct BridgeDispatchSol<'info> {
    #[account(mut, seeds = [BRIDGE_SEED], bump = bridge.bump)]
    pub bridge: Box<Account<'info, BridgeConfig>>,
    #[account(seeds = [BRIDGE_ROUTE_SEED, NATIVE_SOL.as_ref(), destination_domain.to_le_bytes().as_ref()],
        bump = route.bump)]
    pub route: Box<Account<'info, BridgeRoute>>,
    #[account(mut, seeds = [BRIDGE_SOL_VAULT_SEED], bump = bridge.sol_vault_bump)]
    pub sol_vault: Box<Account<'info, BridgeSolVault>>,
    #[account(mut)]
    pub sender: Signer<'info>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(destination_domain: u32)]
pub struct BridgeDispatchToken<'info> {
    #[account(mut, seeds = [BRIDGE_SEED], bump = bridge.bump)]
    pub bridge: Box<Account<'info, BridgeConfig>>,
    #[account(seeds = [BRIDGE_ROUTE_SEED, mint.key().as_ref(), destination_domain.to_le_bytes().as_ref()],
        bump = route.bump,
        constraint = route.local_decimals == mint.decimals @ AdvanciaError::InvalidDecimals)]
    pub route: Box<Account<'info, BridgeRoute>>,
    #[account(mint::token_program = token_program)]
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    pub sender: Signer<'info>,
    #[account(mut, token::mint = mint, token::authority = sender,
        token::token_program = token_program)]
    pub sender_token: Box<InterfaceAccount<'info, TokenAccount>>,
    #[account(mut, seeds = [BRIDGE_VAULT_SEED, mint.key().as_ref()], bump,
        token::mint = mint, token::token_program = token_program)]
    pub vault: Box<InterfaceAccount<'info, TokenAccount>>,
    pub token_program: Interface<'info, TokenInterface>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct BridgeProcessSol<'info> {
    #[account(seeds = [BRIDGE_SEED], bump = bridge.bump)]
    pub bridge: Box<Account<'info, BridgeConfig>>,
    #[account(mut, seeds = [BRIDGE_SOL_VAULT_SEED], bump = bridge.sol_vault_bump)]
    pub sol_vault: Box<Account<'info, BridgeSolVault>>,
    /// CHECK: the `["bridge-msg", id]` PDA, checked and created by the handler (a named
    /// replay error instead of the system program's "already in use").
    #[account(mut)]
    pub processed: UncheckedAccount<'info>,
    /// CHECK: must be the message's recipient (checked by the handler); only receives lamports.
    #[account(mut)]
    pub recipient: UncheckedAccount<'info>,
    /// Relayer: pays the processed-message rent.
    #[account(mut)]
    pub payer: Signer<'info>,
    pub system_program: Program<'info, System>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct BridgeProcessToken<'info> {
    #[account(seeds = [BRIDGE_SEED], bump = bridge.bump)]
    pub bridge: Box<Account<'info, BridgeConfig>>,
    /// CHECK: signer-only PDA that owns the token vaults.
    #[account(seeds = [BRIDGE_AUTHORITY_SEED], bump = bridge.authority_bump)]
    pub authority: UncheckedAccount<'info>,
    #[account(mint::token_program = token_program)]
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    #[account(mut, seeds = [BRIDGE_VAULT_SEED, mint.key().as_ref()], bump,
        token::mint = mint, token::authority = authority, token::token_program = token_program)]
    pub vault: Box<InterfaceAccount<'info, TokenAccount>>,
    /// CHECK: the `["bridge-msg", id]` PDA, checked and created by the handler.
    #[account(mut)]
    pub processed: UncheckedAccount<'info>,
    /// CHECK: must be the message's recipient (checked by the handler); owner of `recipient_token`.
    pub recipient: UncheckedAccount<'info>,
    /// The recipient's associated token account for `mint` (checked by the handler).
    #[account(mut, token::mint = mint, token::authority = recipient,
        token::token_program = token_program)]
    pub recipient_token: Box<InterfaceAccount<'info, TokenAccount>>,
    #[account(mut)]
    pub payer: Signer<'info>,
    pub token_program: Interface<'info, TokenInterface>,
    pub system_program: Program<'info, System>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use anchor_lang::solana_program::bpf_loader_upgradeable::{
        ID as LOADER, get_program_data_address,
    };

    fn program_state(program_data: &Pubkey) -> Vec<u8> {
        let mut v = LOADER_STATE_PROGRAM.to_vec();
        v.extend_from_slice(program_data.as_ref());
        v
    }

    fn program_data_state(authority: Option<&Pubkey>) -> Vec<u8> {
        let mut v = LOADER_STATE_PROGRAM_DATA.to_vec();
        v.extend_from_slice(&42u64.to_le_bytes());
        match authority {
            Some(a) => {
                v.push(1);
                v.extend_from_slice(a.as_ref());
            }
            None => v.push(0),
        }
        v.extend_from_slice(b"\x7fELF rest of the program");
        v
    }

    /// `check_upgrade_authority` over accounts as the runtime would pass them.
    fn check(
        program_owner: Pubkey,
        program_data_key: Pubkey,
        program_data_owner: Pubkey,
        program_data: Vec<u8>,
        admin: Pubkey,
    ) -> Result<()> {
        let key = crate::ID;
        let real_program_data = get_program_data_address(&crate::ID);
        let (mut l1, mut l2) = (1u64, 1u64);
        let mut state = program_state(&real_program_data);
        let mut data = program_data;
        let program = AccountInfo::new(
            &key,
            false,
            false,
            &mut l1,
            &mut state,
            &program_owner,
            true,
        );
        let pd = AccountInfo::new(
            &program_data_key,
            false,
            false,
            &mut l2,
            &mut data,
            &program_data_owner,
            false,
        );
        check_upgrade_authority(&program, &pd, &admin)
    }

    fn refused(res: Result<()>) -> bool {
        res.is_err_and(|e| e == anchor_lang::error::Error::from(AdvanciaError::NotUpgradeAuthority))
    }

    #[test]
    fn only_the_upgrade_authority_passes() {
        let authority = Pubkey::new_unique();
        let stranger = Pubkey::new_unique();
        let pd = get_program_data_address(&crate::ID);
        let state = || program_data_state(Some(&authority));
        assert!(check(LOADER, pd, LOADER, state(), authority).is_ok());
        assert!(refused(check(LOADER, pd, LOADER, state(), stranger)));
        // Immutable program: nobody is the upgrade authority.
        assert!(refused(check(
            LOADER,
            pd,
            LOADER,
            program_data_state(None),
            authority
        )));
        // Another ProgramData (e.g. of a program the stranger controls) is not this program's.
        let other = Pubkey::new_unique();
        assert!(refused(check(LOADER, other, LOADER, state(), authority)));
        // Look-alike data in an account the loader does not own.
        assert!(refused(check(
            LOADER,
            pd,
            Pubkey::new_unique(),
            state(),
            authority
        )));
        // A buffer account (tag 1) or truncated data is not ProgramData.
        let mut buffer = state();
        buffer[0] = 1;
        assert!(refused(check(LOADER, pd, LOADER, buffer, authority)));
        assert!(refused(check(
            LOADER,
            pd,
            LOADER,
            state()[..30].to_vec(),
            authority
        )));
        // Another loader (e.g. the non-upgradeable one) is refused.
        let loader_v2 = pubkey!("BPFLoader2111111111111111111111111111111111");
        assert!(refused(check(loader_v2, pd, LOADER, state(), authority)));
    }

    #[test]
    fn a_builtin_has_no_program_data_and_accepts_the_signer() {
        let anyone = Pubkey::new_unique();
        let pd = get_program_data_address(&crate::ID);
        assert!(
            check(
                NATIVE_LOADER,
                pd,
                pubkey!("11111111111111111111111111111111"),
                vec![],
                anyone
            )
            .is_ok()
        );
    }
}
