//! Messages, queries and their responses (the JSON schema in `schema/` is generated from
//! these). Amounts are `Uint128` base units, times are unix seconds, ids are short strings.

use cosmwasm_schema::{QueryResponses, cw_serde};
use cosmwasm_std::{Binary, HexBinary, Uint128};

use crate::cw20::Cw20ReceiveMsg;
// Response types are named by path in `#[returns]`: the derive is compiled out on wasm32.
use crate::state::{AssetInfo, AssetTotal};

#[cw_serde]
pub struct InstantiateMsg {
    /// Defaults to the sender.
    pub admin: Option<String>,
    pub treasury: String,
    pub fee_bps: u16,
    pub compliance_authority: String,
    pub settlement_authority: String,
    /// Accepted native denoms and cw20 contracts, each with its KYC threshold.
    pub assets: Vec<AssetConfig>,
    /// Bridge validators (compressed secp256k1 keys) and threshold; `None` = inbox closed
    /// until the admin sets one.
    pub bridge: Option<ValidatorSetInput>,
}

#[cw_serde]
pub struct AssetConfig {
    pub asset: AssetInfo,
    /// Payments strictly above this amount (base units) need a valid KYC attestation.
    pub kyc_threshold: Uint128,
    pub enabled: bool,
}

#[cw_serde]
pub struct ValidatorSetInput {
    /// 33-byte compressed secp256k1 public keys, unique.
    pub validators: Vec<HexBinary>,
    /// Signatures needed (1..=validators.len()).
    pub threshold: u32,
}

#[cw_serde]
pub enum ExecuteMsg {
    // ---- Config (admin) ----
    /// `None` leaves a field unchanged.
    UpdateConfig {
        treasury: Option<String>,
        compliance_authority: Option<String>,
        settlement_authority: Option<String>,
        fee_bps: Option<u16>,
        paused: Option<bool>,
    },
    /// Step one of the admin hand-over; nothing changes until `new_admin` accepts.
    ProposeAdmin {
        new_admin: String,
    },
    AcceptAdmin {},
    /// Adds or updates an accepted asset.
    SetAsset(AssetConfig),
    /// Replaces the bridge validator set; its version goes up by one.
    UpdateValidatorSet(ValidatorSetInput),

    // ---- Facilities ----
    RegisterFacility {
        facility_id: String,
        authority: String,
        payout: String,
    },
    /// Facility authority only.
    UpdateFacilityPayout {
        facility_id: String,
        payout: String,
    },
    /// Facility authority or admin.
    DeactivateFacility {
        facility_id: String,
    },

    // ---- Native-denom money (send exactly one coin) ----
    Pay {
        facility_id: String,
        invoice_id: String,
    },
    /// The facility authority returns (part of) a payment from its own funds.
    Refund {
        payer: String,
        invoice_id: String,
    },
    OpenEscrow {
        escrow_id: String,
        facility_id: String,
        arbiter: String,
        expires_at: u64,
    },
    /// Payer or arbiter posts (part of) the pending amount to the facility, minus the fee.
    ReleaseEscrow {
        payer: String,
        escrow_id: String,
        amount: Uint128,
    },
    /// Voids the remainder back to the payer: facility or arbiter any time, anyone after expiry.
    RefundEscrow {
        payer: String,
        escrow_id: String,
    },
    /// cw20 entry: `Pay`, `Refund` and `OpenEscrow` with tokens (see [`ReceiveMsg`]).
    Receive(Cw20ReceiveMsg),

    // ---- KYC (compliance authority) ----
    WriteAttestation {
        wallet: String,
        level: u8,
        expires_at: u64,
    },
    /// Also reinstates a revoked attestation.
    RenewAttestation {
        wallet: String,
        level: u8,
        expires_at: u64,
    },
    RevokeAttestation {
        wallet: String,
    },

    // ---- Settlement (settlement authority) ----
    CommitBatch {
        batch_number: u64,
        root: HexBinary,
        entry_count: u64,
        totals: Vec<AssetTotal>,
    },

    // ---- Bridge inbox (anyone may relay; the signatures authorize) ----
    ReceiveBridgeMessage {
        message: BridgeMessage,
        /// Sorted by public key, ascending, no duplicates.
        signatures: Vec<ValidatorSignature>,
    },
}

/// The hook message inside a cw20 `Send`.
#[cw_serde]
pub enum ReceiveMsg {
    Pay {
        facility_id: String,
        invoice_id: String,
    },
    Refund {
        payer: String,
        invoice_id: String,
    },
    OpenEscrow {
        escrow_id: String,
        facility_id: String,
        arbiter: String,
        expires_at: u64,
    },
}

#[cw_serde]
pub struct BridgeMessage {
    /// Unique per message; a second delivery is refused.
    pub id: String,
    pub source_chain: String,
    /// Version of the validator set that signed it.
    pub set_version: u64,
    pub payload: Binary,
}

#[cw_serde]
pub struct ValidatorSignature {
    /// 33-byte compressed secp256k1 public key of a validator in the current set.
    pub pubkey: HexBinary,
    /// 64-byte `r || s` signature over [`crate::bridge::signing_digest`].
    pub signature: HexBinary,
}

#[cw_serde]
#[derive(QueryResponses)]
pub enum QueryMsg {
    #[returns(ConfigResponse)]
    Config {},
    #[returns(Option<AssetConfig>)]
    Asset { asset: AssetInfo },
    /// Ordered by asset key (`native:<denom>` / `cw20:<address>`).
    #[returns(Vec<AssetConfig>)]
    Assets {
        start_after: Option<String>,
        limit: Option<u32>,
    },
    #[returns(Option<crate::state::Facility>)]
    Facility { facility_id: String },
    #[returns(Vec<crate::state::Facility>)]
    Facilities {
        start_after: Option<String>,
        limit: Option<u32>,
    },
    #[returns(Option<crate::state::Payment>)]
    Payment { payer: String, invoice_id: String },
    /// Payments of one payer, ordered by invoice id.
    #[returns(Vec<crate::state::Payment>)]
    Payments {
        payer: String,
        start_after: Option<String>,
        limit: Option<u32>,
    },
    #[returns(Option<crate::state::Escrow>)]
    Escrow { payer: String, escrow_id: String },
    #[returns(Vec<crate::state::Escrow>)]
    Escrows {
        payer: String,
        start_after: Option<String>,
        limit: Option<u32>,
    },
    #[returns(Option<crate::state::Attestation>)]
    Attestation { wallet: String },
    #[returns(Vec<crate::state::Attestation>)]
    Attestations {
        start_after: Option<String>,
        limit: Option<u32>,
    },
    #[returns(Option<crate::state::SettlementBatch>)]
    Batch { batch_number: u64 },
    #[returns(Vec<crate::state::SettlementBatch>)]
    Batches {
        start_after: Option<u64>,
        limit: Option<u32>,
    },
    #[returns(ValidatorSetResponse)]
    ValidatorSet {},
    #[returns(Option<crate::state::InboxMessage>)]
    BridgeMessage { id: String },
    #[returns(Vec<crate::state::InboxMessage>)]
    BridgeMessages {
        start_after: Option<String>,
        limit: Option<u32>,
    },
    /// The 32-byte digest validators sign for `message` on this chain and contract.
    #[returns(HexBinary)]
    BridgeDigest { message: BridgeMessage },
}

#[cw_serde]
pub struct ConfigResponse {
    pub admin: String,
    pub pending_admin: Option<String>,
    pub treasury: String,
    pub compliance_authority: String,
    pub settlement_authority: String,
    pub fee_bps: u16,
    pub paused: bool,
    pub last_batch_number: u64,
}

#[cw_serde]
pub struct ValidatorSetResponse {
    /// 0 = no set configured yet.
    pub version: u64,
    pub validators: Vec<HexBinary>,
    pub threshold: u32,
}
