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
