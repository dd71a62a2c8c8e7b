//! Events, emitted with `emit_cpi!` so they appear as inner instructions of the transaction
//! (readable by the indexer from any RPC or test runtime, unlike truncatable logs).

use anchor_lang::prelude::*;

use crate::state::AssetTotal;

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigUpdated {
    pub admin: Pubkey,
    pub treasury: Pubkey,
    pub settlement_authority: Pubkey,
    pub compliance_authority: Pubkey,
    pub fee_bps: u16,
    pub paused: bool,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminProposed {
    pub admin: Pubkey,
    pub proposed: Pubkey,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminAccepted {
    pub previous: Pubkey,
    pub admin: Pubkey,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetSet {
    pub mint: Pubkey,
    pub kyc_threshold: u64,
    pub enabled: bool,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FacilityRegistered {
    pub facility: Pubkey,
    pub facility_id: [u8; 32],
    pub authority: Pubkey,
    pub payout_wallet: Pubkey,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FacilityPayoutUpdated {
    pub facility: Pubkey,
    pub payout_wallet: Pubkey,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FacilityDeactivated {
    pub facility: Pubkey,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentMade {
    pub payment: Pubkey,
    pub payer: Pubkey,
    pub facility: Pubkey,
    pub invoice_id: [u8; 32],
    pub reference: Pubkey,
    pub mint: Pubkey,
    pub amount: u64,
    pub fee: u64,
    pub paid_at: i64,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRefunded {
    pub payment: Pubkey,
    pub facility: Pubkey,
    pub payer: Pubkey,
    pub mint: Pubkey,
    pub amount: u64,
    pub refunded_total: u64,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscrowOpened {
    pub escrow: Pubkey,
    pub payer: Pubkey,
    pub facility: Pubkey,
    pub arbiter: Pubkey,
    pub mint: Pubkey,
    pub amount: u64,
    pub expires_at: i64,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscrowReleased {
    pub escrow: Pubkey,
    pub by: Pubkey,
    pub amount: u64,
    pub fee: u64,
    pub released_total: u64,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscrowRefunded {
    pub escrow: Pubkey,
    pub by: Pubkey,
    pub amount: u64,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscrowClosed {
    pub escrow: Pubkey,
    pub rent_to: Pubkey,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationWritten {
    pub wallet: Pubkey,
    pub level: u8,
    pub expires_at: i64,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationRevoked {
    pub wallet: Pubkey,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCommitted {
    pub batch_number: u64,
    pub root: [u8; 32],
    pub entry_count: u64,
    pub totals: Vec<AssetTotal>,
}

// ---- EVM bridge -------------------------------------------------------------------------

/// Bridge created or its validator set / threshold / pause changed.
#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeConfigured {
    pub local_domain: u32,
    pub validators: Vec<[u8; 20]>,
    pub threshold: u8,
    pub set_version: u64,
    pub paused: bool,
}

#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeRouteRegistered {
    pub local_mint: Pubkey,
    pub destination_domain: u32,
    pub remote_asset: [u8; 32],
    pub local_decimals: u8,
    pub remote_decimals: u8,
}

/// An outbound message: every wire field plus its id, and the locked local amount.
#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeDispatched {
    pub id: [u8; 32],
    pub origin_domain: u32,
    pub sequence: u64,
    pub sender: [u8; 32],
    pub destination_domain: u32,
    pub recipient: [u8; 32],
    pub asset: [u8; 32],
    /// Big-endian uint256 in the destination asset's base units.
    pub amount: [u8; 32],
    pub local_mint: Pubkey,
    pub local_amount: u64,
}

/// An inbound message released to its recipient.
#[event]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeProcessed {
    pub id: [u8; 32],
    pub origin_domain: u32,
    pub sequence: u64,
    pub sender: [u8; 32],
    pub recipient: Pubkey,
    pub mint: Pubkey,
    pub amount: u64,
    pub set_version: u64,
}
