//! Account layouts. Every account has a fixed size (`InitSpace`), so rent is known up front and
//! no account is ever reallocated.

use anchor_lang::prelude::*;

/// Hard cap on the platform fee: 10 %.
pub const MAX_FEE_BPS: u16 = 1_000;
pub const BPS_DENOMINATOR: u128 = 10_000;
/// Native SOL is configured and recorded as the all-zero mint.
pub const NATIVE_SOL: Pubkey = Pubkey::new_from_array([0; 32]);
/// Per-asset totals a settlement batch can carry.
pub const MAX_BATCH_ASSETS: usize = 4;
/// Deepest Merkle tree a batch can commit (2^32 entries).
pub const MAX_TREE_DEPTH: u8 = 32;

pub const CONFIG_SEED: &[u8] = b"config";
pub const ASSET_SEED: &[u8] = b"asset";
pub const FACILITY_SEED: &[u8] = b"facility";
pub const PAYMENT_SEED: &[u8] = b"payment";
pub const ESCROW_SEED: &[u8] = b"escrow";
pub const VAULT_SEED: &[u8] = b"vault";
pub const KYC_SEED: &[u8] = b"kyc";
pub const BATCH_SEED: &[u8] = b"batch";

#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct Config {
    pub admin: Pubkey,
    /// Set by `propose_admin`; the hand-over completes only when this key signs `accept_admin`.
    pub pending_admin: Option<Pubkey>,
    /// Wallet that receives fees (SOL directly; SPL into token accounts it owns).
    pub treasury: Pubkey,
    pub settlement_authority: Pubkey,
    pub compliance_authority: Pubkey,
    pub fee_bps: u16,
    pub paused: bool,
    /// Number of the last committed settlement batch (0 = none yet).
    pub last_batch_number: u64,
    pub bump: u8,
}

/// An allowed payment asset (SOL is `NATIVE_SOL`), with its KYC threshold in base units.
#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct Asset {
    pub mint: Pubkey,
    /// Payments strictly above this amount need a valid KYC attestation for the payer.
    pub kyc_threshold: u64,
    pub enabled: bool,
    pub bump: u8,
}

#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct Facility {
    pub facility_id: [u8; 32],
    /// Signs payout changes, refunds and escrow refunds for this facility.
    pub authority: Pubkey,
    pub payout_wallet: Pubkey,
    pub active: bool,
    pub bump: u8,
}

/// One per (payer, invoice): its existence is what makes a second payment impossible.
#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    pub payer: Pubkey,
    pub facility: Pubkey,
    pub invoice_id: [u8; 32],
    /// Solana Pay reference key, carried as a read-only account of the payment transaction.
    pub reference: Pubkey,
    pub mint: Pubkey,
    pub amount: u64,
    pub fee: u64,
    pub refunded: u64,
    pub paid_at: i64,
    pub bump: u8,
}

/// Two-phase payment: `amount` is pending until released (posted) or refunded (voided).
/// SOL escrows hold their funds as lamports of this account; token escrows in a vault PDA.
#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct Escrow {
    pub payer: Pubkey,
    pub facility: Pubkey,
    pub arbiter: Pubkey,
    pub mint: Pubkey,
    pub escrow_id: [u8; 32],
    pub amount: u64,
    pub released: u64,
    pub refunded: u64,
    pub expires_at: i64,
    pub bump: u8,
}

impl Escrow {
    pub fn remaining(&self) -> Option<u64> {
        self.amount
            .checked_sub(self.released)?
            .checked_sub(self.refunded)
    }
}

#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct KycAttestation {
    pub wallet: Pubkey,
    pub level: u8,
    pub issued_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
    pub bump: u8,
}

#[derive(AnchorSerialize, AnchorDeserialize, InitSpace, Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssetTotal {
    pub mint: Pubkey,
    pub amount: u128,
}

#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct SettlementBatch {
    pub batch_number: u64,
    pub root: [u8; 32],
    pub entry_count: u64,
    pub depth: u8,
    #[max_len(MAX_BATCH_ASSETS)]
    pub totals: Vec<AssetTotal>,
    pub committed_at: i64,
    pub bump: u8,
}

// ---- EVM bridge (ADR 0012) --------------------------------------------------------------

pub const BRIDGE_SEED: &[u8] = b"bridge";
/// Owner of the bridge's token vaults and signer of their releases; never holds data.
pub const BRIDGE_AUTHORITY_SEED: &[u8] = b"bridge-authority";
pub const BRIDGE_SOL_VAULT_SEED: &[u8] = b"bridge-sol-vault";
pub const BRIDGE_VAULT_SEED: &[u8] = b"bridge-vault";
pub const BRIDGE_ROUTE_SEED: &[u8] = b"bridge-route";
pub const BRIDGE_MESSAGE_SEED: &[u8] = b"bridge-msg";

#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct BridgeConfig {
    /// This chain's domain id in bridge messages.
    pub local_domain: u32,
    /// Ethereum addresses of the validators, strictly ascending; only the first
    /// `validator_count` entries are members.
    pub validators: [[u8; 20]; crate::bridge::MAX_VALIDATORS],
    pub validator_count: u8,
    /// Signatures (M) needed out of `validator_count` (N).
    pub threshold: u8,
    /// Bumped on every change of the set or threshold; signed into every attestation.
    pub set_version: u64,
    /// Sequence of the next outbound message (starts at 0).
    pub next_sequence: u64,
    pub paused: bool,
    pub bump: u8,
    pub authority_bump: u8,
    pub sol_vault_bump: u8,
}

impl BridgeConfig {
    pub fn validator_set(&self) -> &[[u8; 20]] {
        let count = usize::from(self.validator_count).min(self.validators.len());
        &self.validators[..count]
    }
}

/// Holds the SOL locked by outbound transfers (a program-owned account, so releases debit it
/// directly; it keeps its own rent).
#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct BridgeSolVault {
    pub bump: u8,
}

/// An outbound route: local asset (`NATIVE_SOL` for SOL) to `destination_domain`.
#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct BridgeRoute {
    pub local_mint: Pubkey,
    pub destination_domain: u32,
    /// The asset on the destination chain (ERC-20 address left-padded, zero = native coin).
    pub remote_asset: [u8; 32],
    pub local_decimals: u8,
    pub remote_decimals: u8,
    pub bump: u8,
}

/// One per processed inbound message (`["bridge-msg", id]`): its existence is the replay guard.
#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct ProcessedMessage {
    pub id: [u8; 32],
    pub origin_domain: u32,
    pub sequence: u64,
    pub processed_at: i64,
    pub bump: u8,
}
