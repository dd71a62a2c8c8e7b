//! Storage layout. Keys mirror the Solana program's PDA seeds (ADR 0006): a payment per
//! (payer, invoice), an escrow per (payer, escrow id), an attestation per wallet, a batch per
//! number, and one entry per accepted asset.

use cosmwasm_schema::cw_serde;
use cosmwasm_std::{Addr, Binary, HexBinary, Uint128};
use cw_storage_plus::{Item, Map};

use crate::msg::AssetConfig;

/// Hard cap on the platform fee: 10 % (same as the Solana program).
pub const MAX_FEE_BPS: u16 = 1_000;
pub const BPS_DENOMINATOR: u128 = 10_000;
/// Per-asset totals a settlement batch can carry.
pub const MAX_BATCH_ASSETS: usize = 4;
/// Deepest Merkle tree a batch can commit (2^32 entries).
pub const MAX_TREE_DEPTH: u8 = 32;
/// Validators a bridge set can hold (bounds the gas of one inbox message).
pub const MAX_VALIDATORS: usize = 32;
/// Largest bridge payload stored.
pub const MAX_PAYLOAD_BYTES: usize = 4_096;

#[cw_serde]
pub struct Config {
    pub admin: Addr,
    /// Set by `ProposeAdmin`; the hand-over completes only when this address accepts.
    pub pending_admin: Option<Addr>,
    pub treasury: Addr,
    pub compliance_authority: Addr,
    pub settlement_authority: Addr,
    pub fee_bps: u16,
    pub paused: bool,
    /// Number of the last committed settlement batch (0 = none yet).
    pub last_batch_number: u64,
}

/// A payment asset: a bank denom or a cw20 token contract (address validated on input).
#[cw_serde]
#[derive(Eq, PartialOrd, Ord, Hash)]
pub enum AssetInfo {
    Native { denom: String },
    Cw20 { contract: String },
}

impl AssetInfo {
    /// Storage key and the `asset` event attribute: `native:<denom>` or `cw20:<address>`.
    pub fn key(&self) -> String {
        match self {
            AssetInfo::Native { denom } => format!("native:{denom}"),
            AssetInfo::Cw20 { contract } => format!("cw20:{contract}"),
        }
    }
}

#[cw_serde]
pub struct Facility {
    pub facility_id: String,
    /// Changes the payout, refunds payments, refunds escrows of this facility.
    pub authority: Addr,
    pub payout: Addr,
    pub active: bool,
}

/// One per (payer, invoice): its existence is what makes a second payment impossible.
#[cw_serde]
pub struct Payment {
    pub payer: Addr,
    pub facility_id: String,
    pub invoice_id: String,
    pub asset: AssetInfo,
    pub amount: Uint128,
    pub fee: Uint128,
    pub refunded: Uint128,
    pub paid_at: u64,
}

/// Two-phase payment: `amount` is pending until released (posted) or refunded (voided).
/// The contract holds the funds.
#[cw_serde]
pub struct Escrow {
    pub payer: Addr,
    pub escrow_id: String,
    pub facility_id: String,
    pub arbiter: Addr,
    pub asset: AssetInfo,
    pub amount: Uint128,
    pub released: Uint128,
    pub refunded: Uint128,
    pub expires_at: u64,
}

impl Escrow {
    pub fn remaining(&self) -> Option<Uint128> {
        self.amount
            .checked_sub(self.released)
            .ok()?
            .checked_sub(self.refunded)
            .ok()
    }
}

#[cw_serde]
pub struct Attestation {
    pub wallet: Addr,
    pub level: u8,
    pub issued_at: u64,
    pub expires_at: u64,
    pub revoked: bool,
}

#[cw_serde]
pub struct AssetTotal {
    pub asset: AssetInfo,
    pub amount: Uint128,
}

#[cw_serde]
pub struct SettlementBatch {
    pub batch_number: u64,
    pub root: HexBinary,
    pub entry_count: u64,
    pub depth: u8,
    pub totals: Vec<AssetTotal>,
    pub committed_at: u64,
}

#[cw_serde]
pub struct ValidatorSet {
    pub version: u64,
    /// Compressed secp256k1 keys, sorted ascending (signers are matched in this order).
    pub validators: Vec<HexBinary>,
    pub threshold: u32,
}

#[cw_serde]
pub struct InboxMessage {
    pub id: String,
    pub source_chain: String,
    pub set_version: u64,
    pub payload: Binary,
    pub signers: Vec<HexBinary>,
    pub received_at: u64,
}

pub const CONFIG: Item<Config> = Item::new("config");
pub const ASSETS: Map<&str, AssetConfig> = Map::new("assets");
pub const FACILITIES: Map<&str, Facility> = Map::new("facilities");
pub const PAYMENTS: Map<(&Addr, &str), Payment> = Map::new("payments");
pub const ESCROWS: Map<(&Addr, &str), Escrow> = Map::new("escrows");
pub const ATTESTATIONS: Map<&Addr, Attestation> = Map::new("attestations");
pub const BATCHES: Map<u64, SettlementBatch> = Map::new("batches");
pub const VALIDATOR_SET: Item<ValidatorSet> = Item::new("validator_set");
pub const INBOX: Map<&str, InboxMessage> = Map::new("inbox");
