//! Advancia Pay on Solana: facilities, payments (SOL and SPL Token / Token-2022), refunds,
//! two-phase escrow, KYC attestations and settlement-batch roots with Poseidon inclusion proofs.
//!
//! Every state change emits an event through `emit_cpi!`; see [`events`] and
//! [`client::decode_events`].

use anchor_lang::prelude::*;
use anchor_lang::system_program;
use anchor_spl::token_interface::{self, CloseAccount, TransferChecked};

pub mod bridge;
#[cfg(not(target_os = "solana"))]
pub mod client;
pub mod contexts;
pub mod error;
pub mod events;
pub mod merkle;
pub mod state;

use bridge::BridgeMessage;
pub use contexts::*;
use error::AdvanciaError;
use events::*;
use state::*;

// memcpy, memset, memcmp and friends for the upstream-LLVM SBF build (ADR 0025).
#[cfg(feature = "sbf")]
use solana_compiler_builtins as _;

declare_id!("FKE26Z8kY9E3bPUoDyV3wGWz7cNxtGFU3Zk3HgxaeC88");

#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct InitializeConfigArgs {
    pub treasury: Pubkey,
    pub settlement_authority: Pubkey,
    pub compliance_authority: Pubkey,
    pub fee_bps: u16,
}

/// `None` leaves a field unchanged.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateConfigArgs {
    pub treasury: Option<Pubkey>,
    pub settlement_authority: Option<Pubkey>,
    pub compliance_authority: Option<Pubkey>,
    pub fee_bps: Option<u16>,
    pub paused: Option<bool>,
}

#[program]
pub mod advancia_pay {
    use super::*;

    // ---- Config -------------------------------------------------------------------------

    /// Creates the singleton config; the signer becomes admin.
    pub fn initialize_config(
        ctx: Context<InitializeConfig>,
        args: InitializeConfigArgs,
    ) -> Result<()> {
        require!(args.fee_bps <= MAX_FEE_BPS, AdvanciaError::FeeTooHigh);
        check_upgrade_authority(
            &ctx.accounts.program,
            &ctx.accounts.program_data,
            ctx.accounts.admin.key,
        )?;
        let config = &mut ctx.accounts.config;
        config.set_inner(Config {
            admin: ctx.accounts.admin.key(),
            pending_admin: None,
            treasury: args.treasury,
            settlement_authority: args.settlement_authority,
            compliance_authority: args.compliance_authority,
            fee_bps: args.fee_bps,
            paused: false,
            last_batch_number: 0,
            bump: ctx.bumps.config,
        });
        let event = config_event(config);
        emit_cpi!(event);
        Ok(())
    }

    pub fn update_config(ctx: Context<AdminOnly>, args: UpdateConfigArgs) -> Result<()> {
        let config = &mut ctx.accounts.config;
        if let Some(fee_bps) = args.fee_bps {
            require!(fee_bps <= MAX_FEE_BPS, AdvanciaError::FeeTooHigh);
            config.fee_bps = fee_bps;
        }
        if let Some(treasury) = args.treasury {
            config.treasury = treasury;
        }
        if let Some(authority) = args.settlement_authority {
            config.settlement_authority = authority;
        }
        if let Some(authority) = args.compliance_authority {
            config.compliance_authority = authority;
        }
        if let Some(paused) = args.paused {
            config.paused = paused;
        }
        let event = config_event(config);
        emit_cpi!(event);
        Ok(())
    }

    /// Step one of the admin hand-over; nothing changes until the proposed key accepts.
    pub fn propose_admin(ctx: Context<AdminOnly>, new_admin: Pubkey) -> Result<()> {
        ctx.accounts.config.pending_admin = Some(new_admin);
        emit_cpi!(AdminProposed {
            admin: ctx.accounts.admin.key(),
            proposed: new_admin
        });
        Ok(())
    }

    pub fn accept_admin(ctx: Context<AcceptAdmin>) -> Result<()> {
        let config = &mut ctx.accounts.config;
        let previous = config.admin;
        config.admin = ctx.accounts.new_admin.key();
        config.pending_admin = None;
        emit_cpi!(AdminAccepted {
            previous,
            admin: ctx.accounts.new_admin.key()
        });
        Ok(())
    }

    /// Allows an asset (`NATIVE_SOL` for SOL) with its KYC threshold.
    pub fn add_asset(ctx: Context<AddAsset>, mint: Pubkey, kyc_threshold: u64) -> Result<()> {
        ctx.accounts.asset.set_inner(Asset {
            mint,
            kyc_threshold,
            enabled: true,
            bump: ctx.bumps.asset,
        });
        emit_cpi!(AssetSet {
            mint,
            kyc_threshold,
            enabled: true
        });
        Ok(())
    }

    pub fn update_asset(
        ctx: Context<UpdateAsset>,
        kyc_threshold: u64,
        enabled: bool,
    ) -> Result<()> {
        let asset = &mut ctx.accounts.asset;
        asset.kyc_threshold = kyc_threshold;
        asset.enabled = enabled;
        let mint = asset.mint;
        emit_cpi!(AssetSet {
            mint,
            kyc_threshold,
            enabled
        });
        Ok(())
    }

    // ---- Facilities ---------------------------------------------------------------------

    pub fn register_facility(
        ctx: Context<RegisterFacility>,
        facility_id: [u8; 32],
        authority: Pubkey,
        payout_wallet: Pubkey,
    ) -> Result<()> {
        ctx.accounts.facility.set_inner(Facility {
            facility_id,
            authority,
            payout_wallet,
            active: true,
            bump: ctx.bumps.facility,
        });
        emit_cpi!(FacilityRegistered {
            facility: ctx.accounts.facility.key(),
            facility_id,
            authority,
            payout_wallet,
        });
        Ok(())
    }

    pub fn update_facility_payout(
        ctx: Context<UpdateFacilityPayout>,
        payout_wallet: Pubkey,
    ) -> Result<()> {
        ctx.accounts.facility.payout_wallet = payout_wallet;
        emit_cpi!(FacilityPayoutUpdated {
            facility: ctx.accounts.facility.key(),
            payout_wallet
        });
        Ok(())
    }

    pub fn deactivate_facility(ctx: Context<DeactivateFacility>) -> Result<()> {
        ctx.accounts.facility.active = false;
        emit_cpi!(FacilityDeactivated {
            facility: ctx.accounts.facility.key()
        });
        Ok(())
    }

    // ---- Payments -----------------------------------------------------------------------

    pub fn pay_sol(ctx: Context<PaySol>, invoice_id: [u8; 32], amount: u64) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        let a = &ctx.accounts;
        check_payable(
            &a.config,
            &a.asset,
            &a.facility,
            a.kyc.as_deref(),
            amount,
            now,
        )?;
        let fee = fee_for(amount, a.config.fee_bps)?;
        let net = amount.checked_sub(fee).ok_or(AdvanciaError::MathOverflow)?;
        let system = a.system_program.key();
        for (to, lamports) in [(&a.payout_wallet, net), (&a.treasury, fee)] {
            if lamports > 0 {
                system_program::transfer(
                    CpiContext::new(
                        system,
                        system_program::Transfer {
                            from: a.payer.to_account_info(),
                            to: to.to_account_info(),
                        },
                    ),
                    lamports,
                )?;
            }
        }
        let event = record_payment(
            &mut ctx.accounts.payment,
            ctx.accounts.payer.key(),
            ctx.accounts.facility.key(),
            invoice_id,
            ctx.accounts.reference.key(),
            NATIVE_SOL,
            amount,
            fee,
            now,
            ctx.bumps.payment,
        );
        emit_cpi!(event);
        Ok(())
    }

    pub fn pay_token(ctx: Context<PayToken>, invoice_id: [u8; 32], amount: u64) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        let a = &ctx.accounts;
        check_payable(
            &a.config,
            &a.asset,
            &a.facility,
            a.kyc.as_deref(),
            amount,
            now,
        )?;
        let fee = fee_for(amount, a.config.fee_bps)?;
        let net = amount.checked_sub(fee).ok_or(AdvanciaError::MathOverflow)?;
        for (to, value) in [(&a.payout_token, net), (&a.treasury_token, fee)] {
            if value > 0 {
                token_interface::transfer_checked(
                    CpiContext::new(
                        a.token_program.key(),
                        TransferChecked {
                            from: a.payer_token.to_account_info(),
                            mint: a.mint.to_account_info(),
                            to: to.to_account_info(),
                            authority: a.payer.to_account_info(),
                        },
                    ),
                    value,
                    a.mint.decimals,
                )?;
            }
        }
        let event = record_payment(
            &mut ctx.accounts.payment,
            ctx.accounts.payer.key(),
            ctx.accounts.facility.key(),
            invoice_id,
            ctx.accounts.reference.key(),
            ctx.accounts.mint.key(),
            amount,
            fee,
            now,
            ctx.bumps.payment,
        );
        emit_cpi!(event);
        Ok(())
    }

    /// The facility refunds (part of) a payment from its own wallet; the platform fee is not
    /// returned. Allowed while paused: returning money is never blocked.
    pub fn refund_sol(ctx: Context<RefundSol>, amount: u64) -> Result<()> {
        let refunded_total = add_refund(&mut ctx.accounts.payment, amount)?;
        system_program::transfer(
            CpiContext::new(
                ctx.accounts.system_program.key(),
                system_program::Transfer {
                    from: ctx.accounts.authority.to_account_info(),
                    to: ctx.accounts.payer.to_account_info(),
                },
            ),
            amount,
        )?;
        emit_cpi!(PaymentRefunded {
            payment: ctx.accounts.payment.key(),
            facility: ctx.accounts.facility.key(),
            payer: ctx.accounts.payer.key(),
            mint: NATIVE_SOL,
            amount,
            refunded_total,
        });
        Ok(())
    }

    pub fn refund_token(ctx: Context<RefundToken>, amount: u64) -> Result<()> {
        let refunded_total = add_refund(&mut ctx.accounts.payment, amount)?;
        let a = &ctx.accounts;
        token_interface::transfer_checked(
            CpiContext::new(
                a.token_program.key(),
                TransferChecked {
                    from: a.authority_token.to_account_info(),
                    mint: a.mint.to_account_info(),
                    to: a.payer_token.to_account_info(),
                    authority: a.authority.to_account_info(),
                },
            ),
            amount,
            a.mint.decimals,
        )?;
        emit_cpi!(PaymentRefunded {
            payment: ctx.accounts.payment.key(),
            facility: ctx.accounts.facility.key(),
            payer: ctx.accounts.payment.payer,
            mint: ctx.accounts.mint.key(),
            amount,
            refunded_total,
        });
        Ok(())
    }

    // ---- Escrow (pending / post / void) ------------------------------------------------

    pub fn open_escrow_sol(
        ctx: Context<OpenEscrowSol>,
        escrow_id: [u8; 32],
        amount: u64,
        expires_at: i64,
        arbiter: Pubkey,
    ) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        let a = &ctx.accounts;
        check_payable(
            &a.config,
            &a.asset,
            &a.facility,
            a.kyc.as_deref(),
            amount,
            now,
        )?;
        require!(expires_at > now, AdvanciaError::InvalidExpiry);
        system_program::transfer(
            CpiContext::new(
                a.system_program.key(),
                system_program::Transfer {
                    from: a.payer.to_account_info(),
                    to: a.escrow.to_account_info(),
                },
            ),
            amount,
        )?;
        let event = record_escrow(
            &mut ctx.accounts.escrow,
            ctx.accounts.payer.key(),
            ctx.accounts.facility.key(),
            arbiter,
            NATIVE_SOL,
            escrow_id,
            amount,
            expires_at,
            ctx.bumps.escrow,
        );
        emit_cpi!(event);
        Ok(())
    }

    pub fn open_escrow_token(
        ctx: Context<OpenEscrowToken>,
        escrow_id: [u8; 32],
        amount: u64,
        expires_at: i64,
        arbiter: Pubkey,
    ) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        let a = &ctx.accounts;
        check_payable(
            &a.config,
            &a.asset,
            &a.facility,
            a.kyc.as_deref(),
            amount,
            now,
        )?;
        require!(expires_at > now, AdvanciaError::InvalidExpiry);
        token_interface::transfer_checked(
            CpiContext::new(
                a.token_program.key(),
                TransferChecked {
                    from: a.payer_token.to_account_info(),
                    mint: a.mint.to_account_info(),
                    to: a.vault.to_account_info(),
                    authority: a.payer.to_account_info(),
                },
            ),
            amount,
            a.mint.decimals,
        )?;
        let event = record_escrow(
            &mut ctx.accounts.escrow,
            ctx.accounts.payer.key(),
            ctx.accounts.facility.key(),
            arbiter,
            ctx.accounts.mint.key(),
            escrow_id,
            amount,
            expires_at,
            ctx.bumps.escrow,
        );
        emit_cpi!(event);
        Ok(())
    }

    /// Posts (part of) the pending amount to the facility, minus the fee.
    pub fn release_escrow_sol(ctx: Context<ReleaseEscrowSol>, amount: u64) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        let (net, fee) = take_release(
            &ctx.accounts.config,
            &ctx.accounts.facility,
            &mut ctx.accounts.escrow,
            amount,
            now,
        )?;
        // The escrow account is owned by this program, so it can debit lamports directly.
        let escrow_info = ctx.accounts.escrow.to_account_info();
        move_lamports(
            &escrow_info,
            &ctx.accounts.payout_wallet.to_account_info(),
            net,
        )?;
        move_lamports(&escrow_info, &ctx.accounts.treasury.to_account_info(), fee)?;
        let escrow = &ctx.accounts.escrow;
        emit_cpi!(EscrowReleased {
            escrow: escrow.key(),
            by: ctx.accounts.signer.key(),
            amount,
            fee,
            released_total: escrow.released,
        });
        Ok(())
    }

    pub fn release_escrow_token(ctx: Context<ReleaseEscrowToken>, amount: u64) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        let (net, fee) = take_release(
            &ctx.accounts.config,
            &ctx.accounts.facility,
            &mut ctx.accounts.escrow,
            amount,
            now,
        )?;
        let a = &ctx.accounts;
        let escrow = &a.escrow;
        let bump = [escrow.bump];
        let seeds: &[&[u8]] = &[
            ESCROW_SEED,
            escrow.payer.as_ref(),
            escrow.escrow_id.as_ref(),
            &bump,
        ];
        for (to, value) in [(&a.payout_token, net), (&a.treasury_token, fee)] {
            if value > 0 {
                token_interface::transfer_checked(
                    CpiContext::new_with_signer(
                        a.token_program.key(),
                        TransferChecked {
                            from: a.vault.to_account_info(),
                            mint: a.mint.to_account_info(),
                            to: to.to_account_info(),
                            authority: escrow.to_account_info(),
                        },
                        &[seeds],
                    ),
                    value,
                    a.mint.decimals,
                )?;
            }
        }
        emit_cpi!(EscrowReleased {
            escrow: escrow.key(),
            by: a.signer.key(),
            amount,
            fee,
            released_total: escrow.released,
        });
        Ok(())
    }

    /// Voids the whole remainder back to the payer: by the facility or arbiter at any time,
    /// by anyone once expired.
    pub fn refund_escrow_sol(ctx: Context<RefundEscrowSol>) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        let amount = take_refund(
            &ctx.accounts.facility,
            &mut ctx.accounts.escrow,
            ctx.accounts.signer.key(),
            now,
        )?;
        move_lamports(
            &ctx.accounts.escrow.to_account_info(),
            &ctx.accounts.payer.to_account_info(),
            amount,
        )?;
        emit_cpi!(EscrowRefunded {
            escrow: ctx.accounts.escrow.key(),
            by: ctx.accounts.signer.key(),
            amount,
        });
        Ok(())
    }

    pub fn refund_escrow_token(ctx: Context<RefundEscrowToken>) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        let amount = take_refund(
            &ctx.accounts.facility,
            &mut ctx.accounts.escrow,
            ctx.accounts.signer.key(),
            now,
        )?;
        let a = &ctx.accounts;
        let escrow = &a.escrow;
        let bump = [escrow.bump];
        let seeds: &[&[u8]] = &[
            ESCROW_SEED,
            escrow.payer.as_ref(),
            escrow.escrow_id.as_ref(),
            &bump,
        ];
        token_interface::transfer_checked(
            CpiContext::new_with_signer(
                a.token_program.key(),
                TransferChecked {
                    from: a.vault.to_account_info(),
                    mint: a.mint.to_account_info(),
                    to: a.payer_token.to_account_info(),
                    authority: escrow.to_account_info(),
                },
                &[seeds],
            ),
            amount,
            a.mint.decimals,
        )?;
        emit_cpi!(EscrowRefunded {
            escrow: escrow.key(),
            by: a.signer.key(),
            amount
        });
        Ok(())
    }

    /// Closes a fully released/refunded escrow (and its token vault), returning all rent to
    /// the payer, who paid it.
    pub fn close_escrow(ctx: Context<CloseEscrow>) -> Result<()> {
        let escrow = &ctx.accounts.escrow;
        require!(
            escrow.remaining() == Some(0),
            AdvanciaError::EscrowNotSettled
        );
        if escrow.mint != NATIVE_SOL {
            let (Some(vault), Some(token_program)) = (
                ctx.accounts.vault.as_ref(),
                ctx.accounts.token_program.as_ref(),
            ) else {
                return err!(AdvanciaError::MissingTokenAccounts);
            };
            let bump = [escrow.bump];
            let seeds: &[&[u8]] = &[
                ESCROW_SEED,
                escrow.payer.as_ref(),
                escrow.escrow_id.as_ref(),
                &bump,
            ];
            token_interface::close_account(CpiContext::new_with_signer(
                token_program.key(),
                CloseAccount {
                    account: vault.to_account_info(),
                    destination: ctx.accounts.payer.to_account_info(),
                    authority: escrow.to_account_info(),
                },
                &[seeds],
            ))?;
        }
        emit_cpi!(EscrowClosed {
            escrow: escrow.key(),
            rent_to: ctx.accounts.payer.key()
        });
        Ok(())
    }

    // ---- KYC attestations ---------------------------------------------------------------

    pub fn write_attestation(
        ctx: Context<WriteAttestation>,
        wallet: Pubkey,
        level: u8,
        expires_at: i64,
    ) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        require!(level >= 1, AdvanciaError::InvalidKycLevel);
        require!(expires_at > now, AdvanciaError::InvalidExpiry);
        ctx.accounts.attestation.set_inner(KycAttestation {
            wallet,
            level,
            issued_at: now,
            expires_at,
            revoked: false,
            bump: ctx.bumps.attestation,
        });
        emit_cpi!(AttestationWritten {
            wallet,
            level,
            expires_at
        });
        Ok(())
    }

    /// Renews (or reinstates a revoked) attestation with a new level and expiry.
    pub fn renew_attestation(
        ctx: Context<UpdateAttestation>,
        level: u8,
        expires_at: i64,
    ) -> Result<()> {
        let now = Clock::get()?.unix_timestamp;
        require!(level >= 1, AdvanciaError::InvalidKycLevel);
        require!(expires_at > now, AdvanciaError::InvalidExpiry);
        let attestation = &mut ctx.accounts.attestation;
        attestation.level = level;
        attestation.issued_at = now;
        attestation.expires_at = expires_at;
        attestation.revoked = false;
        let wallet = attestation.wallet;
        emit_cpi!(AttestationWritten {
            wallet,
            level,
            expires_at
        });
        Ok(())
    }

    pub fn revoke_attestation(ctx: Context<UpdateAttestation>) -> Result<()> {
        ctx.accounts.attestation.revoked = true;
        let wallet = ctx.accounts.attestation.wallet;
        emit_cpi!(AttestationRevoked { wallet });
        Ok(())
    }

    // ---- Settlement ---------------------------------------------------------------------

    /// Commits ledger batch `batch_number`, which must directly follow the last one.
    pub fn commit_batch(
        ctx: Context<CommitBatch>,
        batch_number: u64,
        root: [u8; 32],
        entry_count: u64,
        totals: Vec<AssetTotal>,
    ) -> Result<()> {
        let config = &mut ctx.accounts.config;
        let expected = config
            .last_batch_number
            .checked_add(1)
            .ok_or(AdvanciaError::MathOverflow)?;
        require!(batch_number == expected, AdvanciaError::BatchOutOfSequence);
        require!(entry_count > 0, AdvanciaError::EmptyBatch);
        require!(
            totals.len() <= MAX_BATCH_ASSETS,
            AdvanciaError::TooManyAssetTotals
        );
        let depth = merkle::tree_depth(entry_count);
        require!(depth <= MAX_TREE_DEPTH, AdvanciaError::IndexOutOfRange);
        config.last_batch_number = batch_number;
        ctx.accounts.batch.set_inner(SettlementBatch {
            batch_number,
            root,
            entry_count,
            depth,
            totals: totals.clone(),
            committed_at: Clock::get()?.unix_timestamp,
            bump: ctx.bumps.batch,
        });
        emit_cpi!(BatchCommitted {
            batch_number,
            root,
            entry_count,
            totals
        });
        Ok(())
    }

    /// Succeeds only if `leaf` at `index` is included in the committed batch root.
    pub fn verify_inclusion(
        ctx: Context<VerifyInclusion>,
        leaf: [u8; 32],
        index: u64,
        proof: Vec<[u8; 32]>,
    ) -> Result<()> {
        let batch = &ctx.accounts.batch;
        let root =
            merkle::compute_root(&leaf, index, batch.entry_count, &proof).map_err(|e| match e {
                merkle::MerkleError::IndexOutOfRange => AdvanciaError::IndexOutOfRange,
                merkle::MerkleError::ProofLengthMismatch => AdvanciaError::ProofLengthMismatch,
                merkle::MerkleError::InvalidFieldElement => AdvanciaError::InvalidFieldElement,
            })?;
        require!(root == batch.root, AdvanciaError::ProofMismatch);
        Ok(())
    }

    // ---- EVM bridge (ADR 0012) ----------------------------------------------------------

    /// Creates the bridge config (set version 1, sequence 0) and its SOL vault; admin only.
    pub fn initialize_bridge(
        ctx: Context<InitializeBridge>,
        local_domain: u32,
        validators: Vec<[u8; 20]>,
        threshold: u8,
    ) -> Result<()> {
        check_validator_set(&validators, threshold)?;
        let bridge = &mut ctx.accounts.bridge;
        bridge.set_inner(BridgeConfig {
            local_domain,
            validators: [[0; 20]; bridge::MAX_VALIDATORS],
            validator_count: 0,
            threshold,
            set_version: 1,
            next_sequence: 0,
            paused: false,
            bump: ctx.bumps.bridge,
            authority_bump: Pubkey::find_program_address(&[BRIDGE_AUTHORITY_SEED], &crate::ID).1,
            sol_vault_bump: ctx.bumps.sol_vault,
        });
        store_validators(bridge, &validators)?;
        ctx.accounts.sol_vault.bump = ctx.bumps.sol_vault;
        let event = bridge_event(bridge);
        emit_cpi!(event);
        Ok(())
    }

    /// Replaces the validator set and threshold; bumps the set version, so attestations
    /// signed for the previous set stop verifying.
    pub fn set_validators(
        ctx: Context<BridgeAdmin>,
        validators: Vec<[u8; 20]>,
        threshold: u8,
    ) -> Result<()> {
        check_validator_set(&validators, threshold)?;
        let bridge = &mut ctx.accounts.bridge;
        store_validators(bridge, &validators)?;
        bridge.threshold = threshold;
        bridge.set_version = bridge
            .set_version
            .checked_add(1)
            .ok_or(AdvanciaError::MathOverflow)?;
        let event = bridge_event(bridge);
        emit_cpi!(event);
        Ok(())
    }

    pub fn set_bridge_paused(ctx: Context<BridgeAdmin>, paused: bool) -> Result<()> {
        ctx.accounts.bridge.paused = paused;
        let event = bridge_event(&ctx.accounts.bridge);
        emit_cpi!(event);
        Ok(())
    }

    /// Registers the route of a local asset (`NATIVE_SOL` for SOL) to `destination_domain`.
    pub fn register_bridge_route(
        ctx: Context<RegisterBridgeRoute>,
        local_mint: Pubkey,
        destination_domain: u32,
        remote_asset: [u8; 32],
        local_decimals: u8,
        remote_decimals: u8,
    ) -> Result<()> {
        require!(
            destination_domain != ctx.accounts.bridge.local_domain,
            AdvanciaError::InvalidRoute
        );
        require!(
            local_decimals.abs_diff(remote_decimals) <= bridge::MAX_DECIMALS_DIFF
                && (local_mint != NATIVE_SOL || local_decimals == SOL_DECIMALS),
            AdvanciaError::InvalidDecimals
        );
        ctx.accounts.route.set_inner(BridgeRoute {
            local_mint,
            destination_domain,
            remote_asset,
            local_decimals,
            remote_decimals,
            bump: ctx.bumps.route,
        });
        emit_cpi!(BridgeRouteRegistered {
            local_mint,
            destination_domain,
            remote_asset,
            local_decimals,
            remote_decimals,
        });
        Ok(())
    }

    /// Creates the token vault of `mint` (owned by the bridge authority PDA); admin only.
    pub fn create_bridge_vault(_ctx: Context<CreateBridgeVault>) -> Result<()> {
        Ok(())
    }

    /// Locks `amount` lamports in the SOL vault and emits the outbound message.
    pub fn bridge_dispatch_sol(
        ctx: Context<BridgeDispatchSol>,
        destination_domain: u32,
        recipient: [u8; 32],
        amount: u64,
    ) -> Result<()> {
        let event = next_dispatch(
            &mut ctx.accounts.bridge,
            &ctx.accounts.route,
            ctx.accounts.sender.key(),
            destination_domain,
            recipient,
            amount,
        )?;
        system_program::transfer(
            CpiContext::new(
                ctx.accounts.system_program.key(),
                system_program::Transfer {
                    from: ctx.accounts.sender.to_account_info(),
                    to: ctx.accounts.sol_vault.to_account_info(),
                },
            ),
            amount,
        )?;
        emit_cpi!(event);
        Ok(())
    }

    /// Locks `amount` of an SPL Token / Token-2022 mint in its vault and emits the message.
    pub fn bridge_dispatch_token(
        ctx: Context<BridgeDispatchToken>,
        destination_domain: u32,
        recipient: [u8; 32],
        amount: u64,
    ) -> Result<()> {
        let event = next_dispatch(
            &mut ctx.accounts.bridge,
            &ctx.accounts.route,
            ctx.accounts.sender.key(),
            destination_domain,
            recipient,
            amount,
        )?;
        let a = &ctx.accounts;
        token_interface::transfer_checked(
            CpiContext::new(
                a.token_program.key(),
                TransferChecked {
                    from: a.sender_token.to_account_info(),
                    mint: a.mint.to_account_info(),
                    to: a.vault.to_account_info(),
                    authority: a.sender.to_account_info(),
                },
            ),
            amount,
            a.mint.decimals,
        )?;
        emit_cpi!(event);
        Ok(())
    }

    /// Releases an attested inbound SOL transfer from the vault to `message.recipient`.
    pub fn bridge_process_sol(
        ctx: Context<BridgeProcessSol>,
        message: BridgeMessage,
        set_version: u64,
        signatures: Vec<[u8; 65]>,
    ) -> Result<()> {
        let a = &ctx.accounts;
        let (id, bump) =
            verify_inbound(&a.bridge, &a.processed, &message, set_version, &signatures)?;
        require!(message.asset == [0u8; 32], AdvanciaError::AssetMismatch);
        require!(
            a.recipient.key().to_bytes() == message.recipient,
            AdvanciaError::RecipientMismatch
        );
        let amount = release_amount(&message)?;
        let vault = a.sol_vault.to_account_info();
        let keep = Rent::get()?.minimum_balance(vault.data_len());
        require!(
            vault.lamports().saturating_sub(keep) >= amount,
            AdvanciaError::InsufficientVaultBalance
        );
        mark_processed(
            &a.payer,
            &a.processed,
            &a.system_program,
            &message,
            id,
            bump,
        )?;
        move_lamports(&vault, &a.recipient.to_account_info(), amount)?;
        emit_cpi!(BridgeProcessed {
            id,
            origin_domain: message.origin_domain,
            sequence: message.sequence,
            sender: message.sender,
            recipient: ctx.accounts.recipient.key(),
            mint: NATIVE_SOL,
            amount,
            set_version,
        });
        Ok(())
    }

    /// Releases an attested inbound token transfer from the mint's vault to the recipient's
    /// associated token account.
    pub fn bridge_process_token(
        ctx: Context<BridgeProcessToken>,
        message: BridgeMessage,
        set_version: u64,
        signatures: Vec<[u8; 65]>,
    ) -> Result<()> {
        let a = &ctx.accounts;
        let (id, bump) =
            verify_inbound(&a.bridge, &a.processed, &message, set_version, &signatures)?;
        require!(
            a.mint.key().to_bytes() == message.asset,
            AdvanciaError::AssetMismatch
        );
        require!(
            a.recipient.key().to_bytes() == message.recipient,
            AdvanciaError::RecipientMismatch
        );
        let associated = Pubkey::find_program_address(
            &[
                a.recipient.key().as_ref(),
                a.token_program.key().as_ref(),
                a.mint.key().as_ref(),
            ],
            &ASSOCIATED_TOKEN_PROGRAM,
        )
        .0;
        require!(
            a.recipient_token.key() == associated,
            AdvanciaError::NotAssociatedTokenAccount
        );
        let amount = release_amount(&message)?;
        require!(
            a.vault.amount >= amount,
            AdvanciaError::InsufficientVaultBalance
        );
        mark_processed(
            &a.payer,
            &a.processed,
            &a.system_program,
            &message,
            id,
            bump,
        )?;
        let authority_bump = [a.bridge.authority_bump];
        let seeds: &[&[u8]] = &[BRIDGE_AUTHORITY_SEED, &authority_bump];
        token_interface::transfer_checked(
            CpiContext::new_with_signer(
                a.token_program.key(),
                TransferChecked {
                    from: a.vault.to_account_info(),
                    mint: a.mint.to_account_info(),
                    to: a.recipient_token.to_account_info(),
                    authority: a.authority.to_account_info(),
                },
                &[seeds],
            ),
            amount,
            a.mint.decimals,
        )?;
        emit_cpi!(BridgeProcessed {
            id,
            origin_domain: message.origin_domain,
            sequence: message.sequence,
            sender: message.sender,
            recipient: ctx.accounts.recipient.key(),
            mint: ctx.accounts.mint.key(),
            amount,
            set_version,
        });
        Ok(())
    }
}

// ---- Shared checks and bookkeeping -----------------------------------------------------

fn config_event(config: &Config) -> ConfigUpdated {
    ConfigUpdated {
        admin: config.admin,
        treasury: config.treasury,
        settlement_authority: config.settlement_authority,
        compliance_authority: config.compliance_authority,
        fee_bps: config.fee_bps,
        paused: config.paused,
    }
}

/// Fee in base units, rounded down; `fee_bps <= MAX_FEE_BPS` so it never exceeds `amount`.
pub fn fee_for(amount: u64, fee_bps: u16) -> Result<u64> {
    let fee = u128::from(amount) * u128::from(fee_bps) / BPS_DENOMINATOR;
    u64::try_from(fee).map_err(|_| error!(AdvanciaError::MathOverflow))
}

/// Checks that apply to every inflow: not paused, asset enabled, facility active, amount
/// positive, and a valid attestation above the asset's KYC threshold.
fn check_payable(
    config: &Config,
    asset: &Asset,
    facility: &Facility,
    kyc: Option<&Account<KycAttestation>>,
    amount: u64,
    now: i64,
) -> Result<()> {
    require!(!config.paused, AdvanciaError::Paused);
    require!(asset.enabled, AdvanciaError::AssetDisabled);
    require!(facility.active, AdvanciaError::FacilityInactive);
    require!(amount > 0, AdvanciaError::InvalidAmount);
    if amount > asset.kyc_threshold {
        let kyc = kyc.ok_or(AdvanciaError::KycRequired)?;
        require!(!kyc.revoked, AdvanciaError::AttestationRevoked);
        require!(kyc.expires_at > now, AdvanciaError::AttestationExpired);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn record_payment(
    payment: &mut Account<PaymentRecord>,
    payer: Pubkey,
    facility: Pubkey,
    invoice_id: [u8; 32],
    reference: Pubkey,
    mint: Pubkey,
    amount: u64,
    fee: u64,
    now: i64,
    bump: u8,
) -> PaymentMade {
    payment.set_inner(PaymentRecord {
        payer,
        facility,
        invoice_id,
        reference,
        mint,
        amount,
        fee,
        refunded: 0,
        paid_at: now,
        bump,
    });
    PaymentMade {
        payment: payment.key(),
        payer,
        facility,
        invoice_id,
        reference,
        mint,
        amount,
        fee,
        paid_at: now,
    }
}

fn add_refund(payment: &mut PaymentRecord, amount: u64) -> Result<u64> {
    require!(amount > 0, AdvanciaError::InvalidAmount);
    let total = payment
        .refunded
        .checked_add(amount)
        .ok_or(AdvanciaError::MathOverflow)?;
    require!(total <= payment.amount, AdvanciaError::RefundExceedsPayment);
    payment.refunded = total;
    Ok(total)
}

#[allow(clippy::too_many_arguments)]
fn record_escrow(
    escrow: &mut Account<Escrow>,
    payer: Pubkey,
    facility: Pubkey,
    arbiter: Pubkey,
    mint: Pubkey,
    escrow_id: [u8; 32],
    amount: u64,
    expires_at: i64,
    bump: u8,
) -> EscrowOpened {
    escrow.set_inner(Escrow {
        payer,
        facility,
        arbiter,
        mint,
        escrow_id,
        amount,
        released: 0,
        refunded: 0,
        expires_at,
        bump,
    });
    EscrowOpened {
        escrow: escrow.key(),
        payer,
        facility,
        arbiter,
        mint,
        amount,
        expires_at,
    }
}

/// Books a release and returns `(net to facility, fee)`.
fn take_release(
    config: &Config,
    facility: &Facility,
    escrow: &mut Escrow,
    amount: u64,
    now: i64,
) -> Result<(u64, u64)> {
    require!(!config.paused, AdvanciaError::Paused);
    require!(facility.active, AdvanciaError::FacilityInactive);
    require!(amount > 0, AdvanciaError::InvalidAmount);
    let remaining = escrow.remaining().ok_or(AdvanciaError::MathOverflow)?;
    require!(remaining > 0, AdvanciaError::EscrowSettled);
    require!(now < escrow.expires_at, AdvanciaError::EscrowExpired);
    require!(amount <= remaining, AdvanciaError::ReleaseExceedsEscrow);
    escrow.released = escrow
        .released
        .checked_add(amount)
        .ok_or(AdvanciaError::MathOverflow)?;
    let fee = fee_for(amount, config.fee_bps)?;
    let net = amount.checked_sub(fee).ok_or(AdvanciaError::MathOverflow)?;
    Ok((net, fee))
}

/// Books the refund of the whole remainder and returns it.
fn take_refund(facility: &Facility, escrow: &mut Escrow, signer: Pubkey, now: i64) -> Result<u64> {
    let privileged = signer == facility.authority || signer == escrow.arbiter;
    require!(
        privileged || now >= escrow.expires_at,
        AdvanciaError::EarlyRefund
    );
    let remaining = escrow.remaining().ok_or(AdvanciaError::MathOverflow)?;
    require!(remaining > 0, AdvanciaError::EscrowSettled);
    escrow.refunded = escrow
        .refunded
        .checked_add(remaining)
        .ok_or(AdvanciaError::MathOverflow)?;
    Ok(remaining)
}

fn move_lamports(from: &AccountInfo, to: &AccountInfo, lamports: u64) -> Result<()> {
    if lamports == 0 {
        return Ok(());
    }
    let mut from_lamports = from.try_borrow_mut_lamports()?;
    **from_lamports = from_lamports
        .checked_sub(lamports)
        .ok_or(AdvanciaError::MathOverflow)?;
    let mut to_lamports = to.try_borrow_mut_lamports()?;
    **to_lamports = to_lamports
        .checked_add(lamports)
        .ok_or(AdvanciaError::MathOverflow)?;
    Ok(())
}

// ---- Bridge helpers ---------------------------------------------------------------------

/// Decimals of native SOL (lamports).
pub const SOL_DECIMALS: u8 = 9;
/// The SPL associated-token-account program: inbound tokens go to the recipient's ATA.
pub const ASSOCIATED_TOKEN_PROGRAM: Pubkey =
    anchor_lang::pubkey!("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL");

fn check_validator_set(validators: &[[u8; 20]], threshold: u8) -> Result<()> {
    bridge::check_validator_set(validators, threshold).map_err(|e| {
        error!(match e {
            bridge::ValidatorSetError::Size => AdvanciaError::InvalidValidatorSetSize,
            bridge::ValidatorSetError::NotSorted => AdvanciaError::ValidatorsNotSorted,
            bridge::ValidatorSetError::Threshold => AdvanciaError::InvalidThreshold,
        })
    })
}

fn store_validators(bridge: &mut BridgeConfig, validators: &[[u8; 20]]) -> Result<()> {
    bridge.validators = [[0; 20]; bridge::MAX_VALIDATORS];
    bridge
        .validators
        .get_mut(..validators.len())
        .ok_or(AdvanciaError::InvalidValidatorSetSize)?
        .copy_from_slice(validators);
    bridge.validator_count =
        u8::try_from(validators.len()).map_err(|_| AdvanciaError::InvalidValidatorSetSize)?;
    Ok(())
}

fn bridge_event(bridge: &BridgeConfig) -> BridgeConfigured {
    BridgeConfigured {
        local_domain: bridge.local_domain,
        validators: bridge.validator_set().to_vec(),
        threshold: bridge.threshold,
        set_version: bridge.set_version,
        paused: bridge.paused,
    }
}

/// Outbound checks and bookkeeping shared by SOL and tokens: not paused, positive amount that
/// converts exactly; takes the next sequence number.
fn next_dispatch(
    bridge: &mut BridgeConfig,
    route: &BridgeRoute,
    sender: Pubkey,
    destination_domain: u32,
    recipient: [u8; 32],
    amount: u64,
) -> Result<BridgeDispatched> {
    require!(!bridge.paused, AdvanciaError::BridgePaused);
    require!(amount > 0, AdvanciaError::InvalidAmount);
    let remote = bridge::to_remote_amount(amount, route.local_decimals, route.remote_decimals)
        .ok_or(AdvanciaError::InexactConversion)?;
    require!(remote > 0, AdvanciaError::InexactConversion);
    let message = BridgeMessage {
        origin_domain: bridge.local_domain,
        sequence: bridge.next_sequence,
        sender: sender.to_bytes(),
        destination_domain,
        recipient,
        asset: route.remote_asset,
        amount: bridge::word_u128(remote),
    };
    bridge.next_sequence = bridge
        .next_sequence
        .checked_add(1)
        .ok_or(AdvanciaError::MathOverflow)?;
    Ok(BridgeDispatched {
        id: message.id(),
        origin_domain: message.origin_domain,
        sequence: message.sequence,
        sender: message.sender,
        destination_domain,
        recipient,
        asset: message.asset,
        amount: message.amount,
        local_mint: route.local_mint,
        local_amount: amount,
    })
}

/// The destination checks of ADR 0012 in its order (cheapest first); returns the message id
/// and the bump of its processed-message PDA.
fn verify_inbound(
    bridge: &BridgeConfig,
    processed: &AccountInfo,
    message: &BridgeMessage,
    set_version: u64,
    signatures: &[[u8; 65]],
) -> Result<([u8; 32], u8)> {
    require!(!bridge.paused, AdvanciaError::BridgePaused);
    require!(
        message.destination_domain == bridge.local_domain,
        AdvanciaError::WrongDestinationDomain
    );
    require!(
        set_version == bridge.set_version,
        AdvanciaError::WrongSetVersion
    );
    let id = message.id();
    let (address, bump) = Pubkey::find_program_address(&[BRIDGE_MESSAGE_SEED, &id], &crate::ID);
    require!(
        processed.key() == address,
        AdvanciaError::ProcessedAccountMismatch
    );
    // Only this program can allocate or assign its PDA, so data or our ownership means done.
    require!(
        processed.data_is_empty() && *processed.owner != crate::ID,
        AdvanciaError::MessageAlreadyProcessed
    );
    let digest = bridge::solana_digest(bridge.local_domain, &id, set_version);
    bridge::verify_attestations(
        &digest,
        signatures,
        bridge.validator_set(),
        bridge.threshold,
    )
    .map_err(|e| {
        error!(match e {
            bridge::AttestationError::BelowThreshold => AdvanciaError::BelowThreshold,
            bridge::AttestationError::HighS(_) => AdvanciaError::SignatureHighS,
            bridge::AttestationError::InvalidSignature(_) => AdvanciaError::InvalidSignature,
            bridge::AttestationError::NotAscending(_) => AdvanciaError::SignersNotAscending,
            bridge::AttestationError::NotValidator(_) => AdvanciaError::NotAValidator,
        })
    })?;
    Ok((id, bump))
}

fn release_amount(message: &BridgeMessage) -> Result<u64> {
    let amount = message.amount_u64().ok_or(AdvanciaError::AmountTooLarge)?;
    require!(amount > 0, AdvanciaError::InvalidAmount);
    Ok(amount)
}

/// Creates and writes the processed-message PDA.
fn mark_processed<'info>(
    payer: &Signer<'info>,
    processed: &UncheckedAccount<'info>,
    system: &Program<'info, System>,
    message: &BridgeMessage,
    id: [u8; 32],
    bump: u8,
) -> Result<()> {
    let bump_seed = [bump];
    let seeds: &[&[u8]] = &[BRIDGE_MESSAGE_SEED, &id, &bump_seed];
    let info = processed.to_account_info();
    create_pda(
        &payer.to_account_info(),
        &info,
        system,
        seeds,
        8 + ProcessedMessage::INIT_SPACE,
    )?;
    let record = ProcessedMessage {
        id,
        origin_domain: message.origin_domain,
        sequence: message.sequence,
        processed_at: Clock::get()?.unix_timestamp,
        bump,
    };
    let mut data = info.try_borrow_mut_data()?;
    record.try_serialize(&mut &mut data[..])?;
    Ok(())
}

/// Creates a program-owned PDA of `space` bytes, also when someone already sent lamports to
/// its address (then top-up + allocate + assign, which every runtime supports; Anchor's `init`
/// uses `CreateAccountAllowPrefund` there, see ADR 0006).
fn create_pda<'info>(
    payer: &AccountInfo<'info>,
    target: &AccountInfo<'info>,
    system: &Program<'info, System>,
    seeds: &[&[u8]],
    space: usize,
) -> Result<()> {
    let rent = Rent::get()?.minimum_balance(space);
    let signer = &[seeds];
    let current = target.lamports();
    if current == 0 {
        return system_program::create_account(
            CpiContext::new_with_signer(
                system.key(),
                system_program::CreateAccount {
                    from: payer.clone(),
                    to: target.clone(),
                },
                signer,
            ),
            rent,
            space as u64,
            &crate::ID,
        );
    }
    if current < rent {
        system_program::transfer(
            CpiContext::new(
                system.key(),
                system_program::Transfer {
                    from: payer.clone(),
                    to: target.clone(),
                },
            ),
            rent - current,
        )?;
    }
    system_program::allocate(
        CpiContext::new_with_signer(
            system.key(),
            system_program::Allocate {
                account_to_allocate: target.clone(),
            },
            signer,
        ),
        space as u64,
    )?;
    system_program::assign(
        CpiContext::new_with_signer(
            system.key(),
            system_program::Assign {
                account_to_assign: target.clone(),
            },
            signer,
        ),
        &crate::ID,
    )
}
