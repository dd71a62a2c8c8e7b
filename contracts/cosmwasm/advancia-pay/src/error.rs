//! Every failure the contract reports. Meanings (and names, where one exists) follow the Solana
//! program's `AdvanciaError`, so both chains tell clients the same thing.

use cosmwasm_std::StdError;
use thiserror::Error;

#[derive(Error, Debug)]
pub enum ContractError {
    #[error("{0}")]
    Std(#[from] StdError),

    // ---- Authorization and config ---------------------------------------------------------
    #[error("unauthorized: {sender} may not {action}")]
    Unauthorized { sender: String, action: String },
    #[error("sender is not the proposed admin")]
    NotPendingAdmin,
    #[error("fee of {fee_bps} bps exceeds the hard cap of {max} bps")]
    FeeTooHigh { fee_bps: u16, max: u16 },
    #[error("contract is paused")]
    Paused,
    #[error("invalid id {id:?}: 1 to 64 characters from [A-Za-z0-9_.:-]")]
    InvalidId { id: String },

    // ---- Assets and funds -----------------------------------------------------------------
    #[error("asset {asset} is not accepted")]
    AssetNotAccepted { asset: String },
    #[error("asset {asset} is disabled")]
    AssetDisabled { asset: String },
    #[error("cw20 token {token} is not an accepted token contract")]
    UnknownToken { token: String },
    #[error("wrong funds: {reason}")]
    WrongFunds { reason: String },
    #[error("amount must be greater than zero")]
    InvalidAmount,
    #[error("arithmetic overflow")]
    MathOverflow,

    // ---- Facilities -----------------------------------------------------------------------
    #[error("facility {facility_id} already exists")]
    FacilityExists { facility_id: String },
    #[error("facility {facility_id} not found")]
    FacilityNotFound { facility_id: String },
    #[error("facility {facility_id} is deactivated")]
    FacilityInactive { facility_id: String },

    // ---- Payments and refunds -------------------------------------------------------------
    #[error("invoice {invoice_id} is already paid by {payer}")]
    AlreadyPaid { payer: String, invoice_id: String },
    #[error("no payment of invoice {invoice_id} by {payer}")]
    PaymentNotFound { payer: String, invoice_id: String },
    #[error("refund of {requested} exceeds what is left of the payment ({refundable})")]
    RefundExceedsPayment {
        requested: String,
        refundable: String,
    },

    // ---- KYC ------------------------------------------------------------------------------
    #[error("payment above the KYC threshold of {threshold} needs an attestation")]
    KycRequired { threshold: String },
    #[error("KYC attestation is revoked")]
    AttestationRevoked,
    #[error("KYC attestation is expired")]
    AttestationExpired,
    #[error("KYC attestation for {wallet} already exists (renew it instead)")]
    AttestationExists { wallet: String },
    #[error("no KYC attestation for {wallet}")]
    AttestationNotFound { wallet: String },
    #[error("KYC level must be at least 1")]
    InvalidKycLevel,
    #[error("expiry must be in the future")]
    InvalidExpiry,

    // ---- Escrow ---------------------------------------------------------------------------
    #[error("escrow {escrow_id} of {payer} already exists")]
    EscrowExists { payer: String, escrow_id: String },
    #[error("escrow {escrow_id} of {payer} not found")]
    EscrowNotFound { payer: String, escrow_id: String },
    #[error("release of {requested} exceeds the escrowed remainder ({remaining})")]
    ReleaseExceedsEscrow {
        requested: String,
        remaining: String,
    },
    #[error("escrow has nothing left to release or refund")]
    EscrowSettled,
    #[error("escrow is expired; it can only be refunded")]
    EscrowExpired,
    #[error("only the facility or the arbiter may refund before expiry")]
    EarlyRefund,

    // ---- Settlement -----------------------------------------------------------------------
    #[error("settlement batch {got} is not the next in sequence (expected {expected})")]
    BatchOutOfSequence { expected: u64, got: u64 },
    #[error("a settlement batch needs at least one entry")]
    EmptyBatch,
    #[error("too many per-asset totals ({got}, at most {max})")]
    TooManyAssetTotals { got: usize, max: usize },
    #[error("entry count {entry_count} needs a tree deeper than {max_depth}")]
    TreeTooDeep { entry_count: u64, max_depth: u8 },
    #[error("settlement root must be 32 bytes, got {len}")]
    InvalidRoot { len: usize },

    // ---- Bridge inbox ---------------------------------------------------------------------
    #[error("invalid validator set: {reason}")]
    InvalidValidatorSet { reason: String },
    #[error("no validator set is configured for the bridge inbox")]
    BridgeNotConfigured,
    #[error("message signed for validator set {got}, current set is {expected}")]
    WrongSetVersion { expected: u64, got: u64 },
    #[error("bridge message {id} was already received")]
    MessageReplayed { id: String },
    #[error("{got} valid signer(s), the threshold is {threshold}")]
    BelowThreshold { got: usize, threshold: u32 },
    #[error("signer {pubkey} appears more than once")]
    DuplicateSigner { pubkey: String },
    #[error("signers must be sorted by public key, ascending")]
    SignersNotSorted,
    #[error("signer {pubkey} is not in the validator set")]
    UnknownSigner { pubkey: String },
    #[error("signature of {pubkey} does not verify")]
    InvalidSignature { pubkey: String },
    #[error("bridge payload of {len} bytes exceeds {max}")]
    PayloadTooLarge { len: usize, max: usize },
}

impl ContractError {
    pub fn unauthorized(sender: impl Into<String>, action: &str) -> Self {
        ContractError::Unauthorized {
            sender: sender.into(),
            action: action.to_owned(),
        }
    }
}
