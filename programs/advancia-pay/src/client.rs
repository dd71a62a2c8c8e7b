//! Client side of the program, for the API (unsigned transactions for wallets) and the indexer:
//! PDA derivation, one instruction builder per instruction, account and event decoders.
//! Native only (`cfg(not(target_os = "solana"))`); types are anchor-lang's, i.e. the
//! solana-* 3.x crates, so callers can mix them with solana-sdk 3.x pieces.

use anchor_lang::prelude::*;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::{AccountDeserialize, Discriminator, InstructionData, ToAccountMetas};

pub use crate::bridge::{
    BridgeMessage, attestation_digest, domain_separator, eth_address, recover_signer, solana_digest,
};
use crate::events::*;
use crate::state::*;
use crate::{InitializeConfigArgs, UpdateConfigArgs, accounts as acc, instruction as ix};

// ---- PDAs -------------------------------------------------------------------------------

fn pda(seeds: &[&[u8]]) -> Pubkey {
    Pubkey::find_program_address(seeds, &crate::ID).0
}

pub fn config_pda() -> Pubkey {
    pda(&[CONFIG_SEED])
}
pub fn asset_pda(mint: &Pubkey) -> Pubkey {
    pda(&[ASSET_SEED, mint.as_ref()])
}
pub fn facility_pda(facility_id: &[u8; 32]) -> Pubkey {
    pda(&[FACILITY_SEED, facility_id])
}
pub fn payment_pda(payer: &Pubkey, invoice_id: &[u8; 32]) -> Pubkey {
    pda(&[PAYMENT_SEED, payer.as_ref(), invoice_id])
}
pub fn escrow_pda(payer: &Pubkey, escrow_id: &[u8; 32]) -> Pubkey {
    pda(&[ESCROW_SEED, payer.as_ref(), escrow_id])
}
pub fn vault_pda(escrow: &Pubkey) -> Pubkey {
    pda(&[VAULT_SEED, escrow.as_ref()])
}
pub fn kyc_pda(wallet: &Pubkey) -> Pubkey {
    pda(&[KYC_SEED, wallet.as_ref()])
}
pub fn batch_pda(batch_number: u64) -> Pubkey {
    pda(&[BATCH_SEED, &batch_number.to_le_bytes()])
}
/// The program's ProgramData account under the upgradeable loader (holds the ELF and the
/// upgrade authority that `initialize_config` checks).
pub fn program_data_address() -> Pubkey {
    anchor_lang::solana_program::bpf_loader_upgradeable::get_program_data_address(&crate::ID)
}
/// Signer of the `emit_cpi!` self-invocations.
pub fn event_authority() -> Pubkey {
    pda(&[b"__event_authority"])
}

fn build(accounts: impl ToAccountMetas, data: impl InstructionData) -> Instruction {
    Instruction {
        program_id: crate::ID,
        accounts: accounts.to_account_metas(None),
        data: data.data(),
    }
}

fn system() -> Pubkey {
    anchor_lang::system_program::ID
}

// ---- Config -----------------------------------------------------------------------------

pub fn initialize_config(admin: Pubkey, args: InitializeConfigArgs) -> Instruction {
    build(
        acc::InitializeConfig {
            config: config_pda(),
            admin,
            system_program: system(),
            program_data: program_data_address(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::InitializeConfig { args },
    )
}

fn admin_only(admin: Pubkey) -> acc::AdminOnly {
    acc::AdminOnly {
        config: config_pda(),
        admin,
        event_authority: event_authority(),
        program: crate::ID,
    }
}

pub fn update_config(admin: Pubkey, args: UpdateConfigArgs) -> Instruction {
    build(admin_only(admin), ix::UpdateConfig { args })
}

pub fn propose_admin(admin: Pubkey, new_admin: Pubkey) -> Instruction {
    build(admin_only(admin), ix::ProposeAdmin { new_admin })
}

pub fn accept_admin(new_admin: Pubkey) -> Instruction {
    build(
        acc::AcceptAdmin {
            config: config_pda(),
            new_admin,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::AcceptAdmin {},
    )
}

/// `mint` is `NATIVE_SOL` for SOL.
pub fn add_asset(admin: Pubkey, mint: Pubkey, kyc_threshold: u64) -> Instruction {
    build(
        acc::AddAsset {
            config: config_pda(),
            asset: asset_pda(&mint),
            admin,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::AddAsset {
            mint,
            kyc_threshold,
        },
    )
}

pub fn update_asset(admin: Pubkey, mint: Pubkey, kyc_threshold: u64, enabled: bool) -> Instruction {
    build(
        acc::UpdateAsset {
            config: config_pda(),
            asset: asset_pda(&mint),
            admin,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::UpdateAsset {
            kyc_threshold,
            enabled,
        },
    )
}

// ---- Facilities -------------------------------------------------------------------------

pub fn register_facility(
    admin: Pubkey,
    facility_id: [u8; 32],
    authority: Pubkey,
    payout_wallet: Pubkey,
) -> Instruction {
    build(
        acc::RegisterFacility {
            config: config_pda(),
            facility: facility_pda(&facility_id),
            admin,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::RegisterFacility {
            facility_id,
            authority,
            payout_wallet,
        },
    )
}

pub fn update_facility_payout(
    authority: Pubkey,
    facility_id: [u8; 32],
    payout_wallet: Pubkey,
) -> Instruction {
    build(
        acc::UpdateFacilityPayout {
            facility: facility_pda(&facility_id),
            authority,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::UpdateFacilityPayout { payout_wallet },
    )
}

/// `signer` is the facility authority or the admin.
pub fn deactivate_facility(signer: Pubkey, facility_id: [u8; 32]) -> Instruction {
    build(
        acc::DeactivateFacility {
            config: config_pda(),
            facility: facility_pda(&facility_id),
            signer,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::DeactivateFacility {},
    )
}

// ---- Payments ---------------------------------------------------------------------------

/// What a payment needs besides the token accounts. `with_kyc` passes the payer's attestation
/// PDA (needed above the asset's KYC threshold).
#[derive(Clone, Copy, Debug)]
pub struct PayParams {
    pub payer: Pubkey,
    pub facility_id: [u8; 32],
    pub invoice_id: [u8; 32],
    pub amount: u64,
    pub reference: Pubkey,
    pub with_kyc: bool,
}

impl PayParams {
    fn kyc(&self) -> Option<Pubkey> {
        self.with_kyc.then(|| kyc_pda(&self.payer))
    }
}

pub fn pay_sol(p: &PayParams, payout_wallet: Pubkey, treasury: Pubkey) -> Instruction {
    build(
        acc::PaySol {
            config: config_pda(),
            asset: asset_pda(&NATIVE_SOL),
            facility: facility_pda(&p.facility_id),
            payment: payment_pda(&p.payer, &p.invoice_id),
            payer: p.payer,
            payout_wallet,
            treasury,
            kyc: p.kyc(),
            reference: p.reference,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::PaySol {
            invoice_id: p.invoice_id,
            amount: p.amount,
        },
    )
}

/// Token accounts involved in a token payment or escrow release.
#[derive(Clone, Copy, Debug)]
pub struct TokenAccounts {
    pub mint: Pubkey,
    pub token_program: Pubkey,
    pub source: Pubkey,
    pub payout: Pubkey,
    pub treasury: Pubkey,
}

pub fn pay_token(p: &PayParams, t: &TokenAccounts) -> Instruction {
    build(
        acc::PayToken {
            config: config_pda(),
            asset: asset_pda(&t.mint),
            facility: facility_pda(&p.facility_id),
            payment: payment_pda(&p.payer, &p.invoice_id),
            payer: p.payer,
            mint: t.mint,
            payer_token: t.source,
            payout_token: t.payout,
            treasury_token: t.treasury,
            kyc: p.kyc(),
            reference: p.reference,
            token_program: t.token_program,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::PayToken {
            invoice_id: p.invoice_id,
            amount: p.amount,
        },
    )
}

pub fn refund_sol(
    authority: Pubkey,
    facility_id: [u8; 32],
    payer: Pubkey,
    invoice_id: [u8; 32],
    amount: u64,
) -> Instruction {
    build(
        acc::RefundSol {
            facility: facility_pda(&facility_id),
            payment: payment_pda(&payer, &invoice_id),
            authority,
            payer,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::RefundSol { amount },
    )
}

/// `source` is the facility authority's token account, `destination` the payer's.
#[allow(clippy::too_many_arguments)]
pub fn refund_token(
    authority: Pubkey,
    facility_id: [u8; 32],
    payer: Pubkey,
    invoice_id: [u8; 32],
    mint: Pubkey,
    token_program: Pubkey,
    source: Pubkey,
    destination: Pubkey,
    amount: u64,
) -> Instruction {
    build(
        acc::RefundToken {
            facility: facility_pda(&facility_id),
            payment: payment_pda(&payer, &invoice_id),
            authority,
            mint,
            authority_token: source,
            payer_token: destination,
            token_program,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::RefundToken { amount },
    )
}

// ---- Escrow -----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
pub struct EscrowParams {
    pub payer: Pubkey,
    pub facility_id: [u8; 32],
    pub escrow_id: [u8; 32],
    pub amount: u64,
    pub expires_at: i64,
    pub arbiter: Pubkey,
    pub with_kyc: bool,
}

pub fn open_escrow_sol(p: &EscrowParams) -> Instruction {
    build(
        acc::OpenEscrowSol {
            config: config_pda(),
            asset: asset_pda(&NATIVE_SOL),
            facility: facility_pda(&p.facility_id),
            escrow: escrow_pda(&p.payer, &p.escrow_id),
            payer: p.payer,
            kyc: p.with_kyc.then(|| kyc_pda(&p.payer)),
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::OpenEscrowSol {
            escrow_id: p.escrow_id,
            amount: p.amount,
            expires_at: p.expires_at,
            arbiter: p.arbiter,
        },
    )
}

pub fn open_escrow_token(
    p: &EscrowParams,
    mint: Pubkey,
    token_program: Pubkey,
    payer_token: Pubkey,
) -> Instruction {
    let escrow = escrow_pda(&p.payer, &p.escrow_id);
    build(
        acc::OpenEscrowToken {
            config: config_pda(),
            asset: asset_pda(&mint),
            facility: facility_pda(&p.facility_id),
            escrow,
            vault: vault_pda(&escrow),
            payer: p.payer,
            mint,
            payer_token,
            kyc: p.with_kyc.then(|| kyc_pda(&p.payer)),
            token_program,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::OpenEscrowToken {
            escrow_id: p.escrow_id,
            amount: p.amount,
            expires_at: p.expires_at,
            arbiter: p.arbiter,
        },
    )
}

/// `signer` is the escrow's payer or arbiter.
pub fn release_escrow_sol(
    signer: Pubkey,
    escrow: Pubkey,
    facility: Pubkey,
    payout_wallet: Pubkey,
    treasury: Pubkey,
    amount: u64,
) -> Instruction {
    build(
        acc::ReleaseEscrowSol {
            config: config_pda(),
            facility,
            escrow,
            signer,
            payout_wallet,
            treasury,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::ReleaseEscrowSol { amount },
    )
}

/// `t.source` is ignored (the vault is derived from the escrow).
pub fn release_escrow_token(
    signer: Pubkey,
    escrow: Pubkey,
    facility: Pubkey,
    t: &TokenAccounts,
    amount: u64,
) -> Instruction {
    build(
        acc::ReleaseEscrowToken {
            config: config_pda(),
            facility,
            escrow,
            signer,
            vault: vault_pda(&escrow),
            mint: t.mint,
            payout_token: t.payout,
            treasury_token: t.treasury,
            token_program: t.token_program,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::ReleaseEscrowToken { amount },
    )
}

pub fn refund_escrow_sol(
    signer: Pubkey,
    escrow: Pubkey,
    facility: Pubkey,
    payer: Pubkey,
) -> Instruction {
    build(
        acc::RefundEscrowSol {
            facility,
            escrow,
            signer,
            payer,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::RefundEscrowSol {},
    )
}

pub fn refund_escrow_token(
    signer: Pubkey,
    escrow: Pubkey,
    facility: Pubkey,
    mint: Pubkey,
    token_program: Pubkey,
    payer_token: Pubkey,
) -> Instruction {
    build(
        acc::RefundEscrowToken {
            facility,
            escrow,
            signer,
            vault: vault_pda(&escrow),
            mint,
            payer_token,
            token_program,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::RefundEscrowToken {},
    )
}

/// `token_program` is `Some` for token escrows (the vault is closed too).
pub fn close_escrow(
    signer: Pubkey,
    escrow: Pubkey,
    payer: Pubkey,
    token_program: Option<Pubkey>,
) -> Instruction {
    build(
        acc::CloseEscrow {
            escrow,
            payer,
            signer,
            vault: token_program.map(|_| vault_pda(&escrow)),
            token_program,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::CloseEscrow {},
    )
}

// ---- KYC --------------------------------------------------------------------------------

pub fn write_attestation(
    compliance: Pubkey,
    wallet: Pubkey,
    level: u8,
    expires_at: i64,
) -> Instruction {
    build(
        acc::WriteAttestation {
            config: config_pda(),
            attestation: kyc_pda(&wallet),
            compliance_authority: compliance,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::WriteAttestation {
            wallet,
            level,
            expires_at,
        },
    )
}

fn update_attestation(compliance: Pubkey, wallet: Pubkey) -> acc::UpdateAttestation {
    acc::UpdateAttestation {
        config: config_pda(),
        attestation: kyc_pda(&wallet),
        compliance_authority: compliance,
        event_authority: event_authority(),
        program: crate::ID,
    }
}

pub fn renew_attestation(
    compliance: Pubkey,
    wallet: Pubkey,
    level: u8,
    expires_at: i64,
) -> Instruction {
    build(
        update_attestation(compliance, wallet),
        ix::RenewAttestation { level, expires_at },
    )
}

pub fn revoke_attestation(compliance: Pubkey, wallet: Pubkey) -> Instruction {
    build(
        update_attestation(compliance, wallet),
        ix::RevokeAttestation {},
    )
}

// ---- Settlement -------------------------------------------------------------------------

pub fn commit_batch(
    settlement_authority: Pubkey,
    batch_number: u64,
    root: [u8; 32],
    entry_count: u64,
    totals: Vec<AssetTotal>,
) -> Instruction {
    build(
        acc::CommitBatch {
            config: config_pda(),
            batch: batch_pda(batch_number),
            settlement_authority,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::CommitBatch {
            batch_number,
            root,
            entry_count,
            totals,
        },
    )
}

pub fn verify_inclusion(
    batch_number: u64,
    leaf: [u8; 32],
    index: u64,
    proof: Vec<[u8; 32]>,
) -> Instruction {
    build(
        acc::VerifyInclusion {
            batch: batch_pda(batch_number),
        },
        ix::VerifyInclusion { leaf, index, proof },
    )
}

// ---- EVM bridge (ADR 0012) --------------------------------------------------------------

pub fn bridge_pda() -> Pubkey {
    pda(&[BRIDGE_SEED])
}
pub fn bridge_authority_pda() -> Pubkey {
    pda(&[BRIDGE_AUTHORITY_SEED])
}
pub fn bridge_sol_vault_pda() -> Pubkey {
    pda(&[BRIDGE_SOL_VAULT_SEED])
}
/// Token vault of `mint`, owned by [`bridge_authority_pda`].
pub fn bridge_vault_pda(mint: &Pubkey) -> Pubkey {
    pda(&[BRIDGE_VAULT_SEED, mint.as_ref()])
}
/// `local_mint` is `NATIVE_SOL` for SOL.
pub fn bridge_route_pda(local_mint: &Pubkey, destination_domain: u32) -> Pubkey {
    pda(&[
        BRIDGE_ROUTE_SEED,
        local_mint.as_ref(),
        &destination_domain.to_le_bytes(),
    ])
}
/// Replay guard of an inbound message: exists once `id` was processed.
pub fn bridge_message_pda(id: &[u8; 32]) -> Pubkey {
    pda(&[BRIDGE_MESSAGE_SEED, id])
}
/// The associated token account inbound tokens are released to.
pub fn associated_token_address(owner: &Pubkey, token_program: &Pubkey, mint: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(
        &[owner.as_ref(), token_program.as_ref(), mint.as_ref()],
        &crate::ASSOCIATED_TOKEN_PROGRAM,
    )
    .0
}

/// The wire message a `BridgeDispatched` event describes (what validators attest).
pub fn dispatched_message(event: &BridgeDispatched) -> BridgeMessage {
    BridgeMessage {
        origin_domain: event.origin_domain,
        sequence: event.sequence,
        sender: event.sender,
        destination_domain: event.destination_domain,
        recipient: event.recipient,
        asset: event.asset,
        amount: event.amount,
    }
}

pub fn initialize_bridge(
    admin: Pubkey,
    local_domain: u32,
    validators: Vec<[u8; 20]>,
    threshold: u8,
) -> Instruction {
    build(
        acc::InitializeBridge {
            config: config_pda(),
            bridge: bridge_pda(),
            sol_vault: bridge_sol_vault_pda(),
            admin,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::InitializeBridge {
            local_domain,
            validators,
            threshold,
        },
    )
}

fn bridge_admin(admin: Pubkey) -> acc::BridgeAdmin {
    acc::BridgeAdmin {
        config: config_pda(),
        bridge: bridge_pda(),
        admin,
        event_authority: event_authority(),
        program: crate::ID,
    }
}

/// `validators` strictly ascending; bumps the set version.
pub fn set_validators(admin: Pubkey, validators: Vec<[u8; 20]>, threshold: u8) -> Instruction {
    build(
        bridge_admin(admin),
        ix::SetValidators {
            validators,
            threshold,
        },
    )
}

pub fn set_bridge_paused(admin: Pubkey, paused: bool) -> Instruction {
    build(bridge_admin(admin), ix::SetBridgePaused { paused })
}

pub fn register_bridge_route(
    admin: Pubkey,
    local_mint: Pubkey,
    destination_domain: u32,
    remote_asset: [u8; 32],
    local_decimals: u8,
    remote_decimals: u8,
) -> Instruction {
    build(
        acc::RegisterBridgeRoute {
            config: config_pda(),
            bridge: bridge_pda(),
            route: bridge_route_pda(&local_mint, destination_domain),
            admin,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::RegisterBridgeRoute {
            local_mint,
            destination_domain,
            remote_asset,
            local_decimals,
            remote_decimals,
        },
    )
}

pub fn create_bridge_vault(admin: Pubkey, mint: Pubkey, token_program: Pubkey) -> Instruction {
    build(
        acc::CreateBridgeVault {
            config: config_pda(),
            bridge: bridge_pda(),
            authority: bridge_authority_pda(),
            mint,
            vault: bridge_vault_pda(&mint),
            admin,
            token_program,
            system_program: system(),
        },
        ix::CreateBridgeVault {},
    )
}

pub fn bridge_dispatch_sol(
    sender: Pubkey,
    destination_domain: u32,
    recipient: [u8; 32],
    amount: u64,
) -> Instruction {
    build(
        acc::BridgeDispatchSol {
            bridge: bridge_pda(),
            route: bridge_route_pda(&NATIVE_SOL, destination_domain),
            sol_vault: bridge_sol_vault_pda(),
            sender,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::BridgeDispatchSol {
            destination_domain,
            recipient,
            amount,
        },
    )
}

/// Outbound token transfer: `sender_token` is the sender's token account of `mint`.
pub fn bridge_dispatch_token(
    sender: Pubkey,
    mint: Pubkey,
    token_program: Pubkey,
    sender_token: Pubkey,
    destination_domain: u32,
    recipient: [u8; 32],
    amount: u64,
) -> Instruction {
    build(
        acc::BridgeDispatchToken {
            bridge: bridge_pda(),
            route: bridge_route_pda(&mint, destination_domain),
            mint,
            sender,
            sender_token,
            vault: bridge_vault_pda(&mint),
            token_program,
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::BridgeDispatchToken {
            destination_domain,
            recipient,
            amount,
        },
    )
}

/// Inbound SOL (`message.asset` all zero): released to `message.recipient`; `payer` (the
/// relayer) pays the processed-message rent. Signatures sorted by signer address.
pub fn bridge_process_sol(
    payer: Pubkey,
    message: BridgeMessage,
    set_version: u64,
    signatures: Vec<[u8; 65]>,
) -> Instruction {
    build(
        acc::BridgeProcessSol {
            bridge: bridge_pda(),
            sol_vault: bridge_sol_vault_pda(),
            processed: bridge_message_pda(&message.id()),
            recipient: Pubkey::new_from_array(message.recipient),
            payer,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::BridgeProcessSol {
            message,
            set_version,
            signatures,
        },
    )
}

/// Inbound token (`message.asset` = the mint): released to the recipient's associated token
/// account, which must exist (the relayer may prepend an idempotent ATA creation).
pub fn bridge_process_token(
    payer: Pubkey,
    message: BridgeMessage,
    token_program: Pubkey,
    set_version: u64,
    signatures: Vec<[u8; 65]>,
) -> Instruction {
    let mint = Pubkey::new_from_array(message.asset);
    let recipient = Pubkey::new_from_array(message.recipient);
    build(
        acc::BridgeProcessToken {
            bridge: bridge_pda(),
            authority: bridge_authority_pda(),
            mint,
            vault: bridge_vault_pda(&mint),
            processed: bridge_message_pda(&message.id()),
            recipient,
            recipient_token: associated_token_address(&recipient, &token_program, &mint),
            payer,
            token_program,
            system_program: system(),
            event_authority: event_authority(),
            program: crate::ID,
        },
        ix::BridgeProcessToken {
            message,
            set_version,
            signatures,
        },
    )
}

/// Either process instruction, by the message's asset (all zero = SOL); `token_program` is
/// only used for tokens.
pub fn bridge_process(
    payer: Pubkey,
    message: BridgeMessage,
    token_program: Pubkey,
    set_version: u64,
    signatures: Vec<[u8; 65]>,
) -> Instruction {
    if message.asset == [0u8; 32] {
        bridge_process_sol(payer, message, set_version, signatures)
    } else {
        bridge_process_token(payer, message, token_program, set_version, signatures)
    }
}

// ---- Decoders ---------------------------------------------------------------------------

/// Decodes any of the program's accounts (checks the 8-byte discriminator).
pub fn decode_account<T: AccountDeserialize>(data: &[u8]) -> Result<T> {
    T::try_deserialize(&mut &data[..])
}

#[derive(Debug, ::thiserror::Error, PartialEq, Eq)]
pub enum EventDecodeError {
    #[error("event data too short")]
    Truncated,
    #[error("unknown event discriminator {0:?}")]
    UnknownDiscriminator([u8; 8]),
    #[error("malformed event body: {0}")]
    Body(String),
}

macro_rules! events {
    ($(#[$doc:meta])* $enum:ident, $decode:ident: $($name:ident),* $(,)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $enum { $($name($name)),* }

        /// `None` when the discriminator is not one of this enum's events.
        fn $decode(disc: &[u8], body: &[u8]) -> Option<std::result::Result<$enum, EventDecodeError>> {
            $(
                if disc == $name::DISCRIMINATOR {
                    return Some(AnchorDeserialize::try_from_slice(body)
                        .map($enum::$name)
                        .map_err(|e| EventDecodeError::Body(e.to_string())));
                }
            )*
            None
        }
    };
}

events!(
    /// Every payments-ledger event the program emits (what the indexer stores).
    AdvanciaEvent, decode_ledger_body:
    ConfigUpdated,
    AdminProposed,
    AdminAccepted,
    AssetSet,
    FacilityRegistered,
    FacilityPayoutUpdated,
    FacilityDeactivated,
    PaymentMade,
    PaymentRefunded,
    EscrowOpened,
    EscrowReleased,
    EscrowRefunded,
    EscrowClosed,
    AttestationWritten,
    AttestationRevoked,
    BatchCommitted,
);

events!(
    /// The EVM bridge's events (ADR 0012), decoded by [`decode_bridge_event`]; the relayer
    /// reads these. Kept apart from [`AdvanciaEvent`] so ledger consumers skip them.
    BridgeEvent, decode_bridge_body:
    BridgeConfigured,
    BridgeRouteRegistered,
    BridgeDispatched,
    BridgeProcessed,
);

/// An event's 8-byte discriminator and its borsh body.
type EventParts<'a> = (&'a [u8], &'a [u8]);

/// Splits an inner instruction into (discriminator, body) when it is one of this program's
/// `emit_cpi!` self-invocations (data = `EVENT_IX_TAG` LE, 8-byte discriminator, borsh body).
fn event_parts<'a>(
    program_id: &Pubkey,
    data: &'a [u8],
) -> std::result::Result<Option<EventParts<'a>>, EventDecodeError> {
    if *program_id != crate::ID {
        return Ok(None);
    }
    let Some(rest) = data.strip_prefix(anchor_lang::event::EVENT_IX_TAG_LE) else {
        return Ok(None);
    };
    if rest.len() < 8 {
        return Err(EventDecodeError::Truncated);
    }
    Ok(Some(rest.split_at(8)))
}

fn unknown(disc: &[u8]) -> EventDecodeError {
    let mut unknown = [0u8; 8];
    unknown.copy_from_slice(&disc[..8]);
    EventDecodeError::UnknownDiscriminator(unknown)
}

/// Decodes an inner instruction as a ledger event: `Ok(None)` when it is not one of this
/// program's event self-invocations, or is a bridge event (see [`decode_bridge_event`]).
pub fn decode_event(
    program_id: &Pubkey,
    data: &[u8],
) -> std::result::Result<Option<AdvanciaEvent>, EventDecodeError> {
    let Some((disc, body)) = event_parts(program_id, data)? else {
        return Ok(None);
    };
    match decode_ledger_body(disc, body) {
        Some(event) => event.map(Some),
        None if decode_bridge_body(disc, body).is_some() => Ok(None),
        None => Err(unknown(disc)),
    }
}

/// Decodes an inner instruction as a bridge event: `Ok(None)` when it is not one of this
/// program's event self-invocations, or is a ledger event.
pub fn decode_bridge_event(
    program_id: &Pubkey,
    data: &[u8],
) -> std::result::Result<Option<BridgeEvent>, EventDecodeError> {
    let Some((disc, body)) = event_parts(program_id, data)? else {
        return Ok(None);
    };
    match decode_bridge_body(disc, body) {
        Some(event) => event.map(Some),
        None if decode_ledger_body(disc, body).is_some() => Ok(None),
        None => Err(unknown(disc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anchor_lang::Event;

    fn event_ix_data(event: &impl Event) -> Vec<u8> {
        let mut data = anchor_lang::event::EVENT_IX_TAG_LE.to_vec();
        data.extend(event.data());
        data
    }

    #[test]
    fn decodes_event_self_invocations() {
        let event = EscrowRefunded {
            escrow: Pubkey::new_unique(),
            by: Pubkey::new_unique(),
            amount: 7,
        };
        let data = event_ix_data(&event);
        assert_eq!(
            decode_event(&crate::ID, &data),
            Ok(Some(AdvanciaEvent::EscrowRefunded(event)))
        );
        // Another program's instruction, or one of ours that is not an event.
        assert_eq!(decode_event(&Pubkey::new_unique(), &data), Ok(None));
        assert_eq!(decode_event(&crate::ID, &data[8..]), Ok(None));
    }

    #[test]
    fn bridge_and_ledger_events_are_decoded_apart() {
        let event = BridgeProcessed {
            id: [1; 32],
            origin_domain: 31337,
            sequence: 4,
            sender: [2; 32],
            recipient: Pubkey::new_unique(),
            mint: NATIVE_SOL,
            amount: 5,
            set_version: 1,
        };
        let data = event_ix_data(&event);
        assert_eq!(decode_event(&crate::ID, &data), Ok(None));
        assert_eq!(
            decode_bridge_event(&crate::ID, &data),
            Ok(Some(BridgeEvent::BridgeProcessed(event)))
        );
        let ledger = event_ix_data(&FacilityDeactivated {
            facility: Pubkey::new_unique(),
        });
        assert_eq!(decode_bridge_event(&crate::ID, &ledger), Ok(None));
        let mut unknown = anchor_lang::event::EVENT_IX_TAG_LE.to_vec();
        unknown.extend([9; 8]);
        assert_eq!(
            decode_bridge_event(&crate::ID, &unknown),
            Err(EventDecodeError::UnknownDiscriminator([9; 8]))
        );
    }

    #[test]
    fn rejects_malformed_events() {
        let tag = anchor_lang::event::EVENT_IX_TAG_LE;
        assert_eq!(
            decode_event(&crate::ID, tag),
            Err(EventDecodeError::Truncated)
        );
        let mut unknown = tag.to_vec();
        unknown.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            decode_event(&crate::ID, &unknown),
            Err(EventDecodeError::UnknownDiscriminator([
                1, 2, 3, 4, 5, 6, 7, 8
            ]))
        );
        let event = FacilityDeactivated {
            facility: Pubkey::new_unique(),
        };
        let mut cut = event_ix_data(&event);
        cut.truncate(cut.len() - 1);
        assert!(matches!(
            decode_event(&crate::ID, &cut),
            Err(EventDecodeError::Body(_))
        ));
    }

    #[test]
    fn builders_target_the_program_and_derive_pdas() {
        let payer = Pubkey::new_unique();
        let invoice = [9u8; 32];
        let p = PayParams {
            payer,
            facility_id: [1; 32],
            invoice_id: invoice,
            amount: 5,
            reference: Pubkey::new_unique(),
            with_kyc: false,
        };
        let ix = pay_sol(&p, Pubkey::new_unique(), Pubkey::new_unique());
        assert_eq!(ix.program_id, crate::ID);
        assert_eq!(ix.accounts[3].pubkey, payment_pda(&payer, &invoice));
        assert!(ix.accounts[4].is_signer && ix.accounts[4].is_writable);
        // No attestation: the optional account slot carries the program id.
        assert_eq!(ix.accounts[7].pubkey, crate::ID);
        assert_eq!(ix.accounts[10].pubkey, event_authority());
        // Discriminator + 32-byte invoice + u64 amount.
        assert_eq!(ix.data.len(), 8 + 32 + 8);
    }

    #[test]
    fn account_decoder_checks_the_discriminator() {
        let facility = Facility {
            facility_id: [3; 32],
            authority: Pubkey::new_unique(),
            payout_wallet: Pubkey::new_unique(),
            active: true,
            bump: 254,
        };
        let mut data = Vec::new();
        facility.try_serialize(&mut data).unwrap();
        assert_eq!(decode_account::<Facility>(&data).unwrap(), facility);
        assert!(decode_account::<Escrow>(&data).is_err());
    }
}
