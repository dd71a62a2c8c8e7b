use anchor_lang::prelude::*;

#[error_code]
pub enum AdvanciaError {
    #[msg("signer is not allowed to do this")]
    Unauthorized,
    #[msg("signer is not the proposed admin")]
    NotPendingAdmin,
    #[msg("fee exceeds the hard cap")]
    FeeTooHigh,
    #[msg("program is paused")]
    Paused,
    #[msg("asset is not enabled for payments")]
    AssetDisabled,
    #[msg("facility is deactivated")]
    FacilityInactive,
    #[msg("amount must be greater than zero")]
    InvalidAmount,
    #[msg("arithmetic overflow")]
    MathOverflow,
    #[msg("payment above the KYC threshold needs an attestation")]
    KycRequired,
    #[msg("KYC attestation is revoked")]
    AttestationRevoked,
    #[msg("KYC attestation is expired")]
    AttestationExpired,
    #[msg("KYC level must be at least 1")]
    InvalidKycLevel,
    #[msg("expiry must be in the future")]
    InvalidExpiry,
    #[msg("refund exceeds what was paid")]
    RefundExceedsPayment,
    #[msg("release exceeds the escrowed remainder")]
    ReleaseExceedsEscrow,
    #[msg("escrow has nothing left to release or refund")]
    EscrowSettled,
    #[msg("escrow is expired; it can only be refunded")]
    EscrowExpired,
    #[msg("only the facility or the arbiter may refund before expiry")]
    EarlyRefund,
    #[msg("escrow still holds funds")]
    EscrowNotSettled,
    #[msg("token vault and token program are required for a token escrow")]
    MissingTokenAccounts,
    #[msg("account does not match the mint of this payment")]
    WrongMint,
    #[msg("settlement batch number is not the next in sequence")]
    BatchOutOfSequence,
    #[msg("a settlement batch needs at least one entry")]
    EmptyBatch,
    #[msg("too many per-asset totals")]
    TooManyAssetTotals,
    #[msg("leaf index is outside the batch")]
    IndexOutOfRange,
    #[msg("proof length differs from the batch tree depth")]
    ProofLengthMismatch,
    #[msg("value is not a BN254 field element")]
    InvalidFieldElement,
    #[msg("proof does not lead to the committed root")]
    ProofMismatch,
    // ---- EVM bridge (ADR 0012); appended so earlier codes never move ----
    #[msg("validator set must have 1..=19 members")]
    InvalidValidatorSetSize,
    #[msg("validators must be strictly ascending (sorted, no duplicates) and non-zero")]
    ValidatorsNotSorted,
    #[msg("threshold must be between 1 and the number of validators")]
    InvalidThreshold,
    #[msg("decimals differ by more than 18 or do not match the mint")]
    InvalidDecimals,
    #[msg("a route cannot point at the local domain")]
    InvalidRoute,
    #[msg("amount does not convert exactly to the remote decimals")]
    InexactConversion,
    #[msg("bridge is paused")]
    BridgePaused,
    #[msg("message is not addressed to this domain")]
    WrongDestinationDomain,
    #[msg("attestation is for another validator set version")]
    WrongSetVersion,
    #[msg("processed-message account is not the PDA of this message id")]
    ProcessedAccountMismatch,
    #[msg("message was already processed")]
    MessageAlreadyProcessed,
    #[msg("fewer signatures than the threshold")]
    BelowThreshold,
    #[msg("signature s is in the upper half of the curve order")]
    SignatureHighS,
    #[msg("signature does not recover a signer")]
    InvalidSignature,
    #[msg("signers must be strictly ascending (no duplicates)")]
    SignersNotAscending,
    #[msg("signer is not in the validator set")]
    NotAValidator,
    #[msg("message asset does not match the accounts")]
    AssetMismatch,
    #[msg("recipient account does not match the message")]
    RecipientMismatch,
    #[msg("recipient token account is not the recipient's associated token account")]
    NotAssociatedTokenAccount,
    #[msg("amount does not fit in u64")]
    AmountTooLarge,
    #[msg("bridge vault holds less than the amount")]
    InsufficientVaultBalance,
    // ---- Issue #4 ----
    #[msg("account is already initialized")]
    AlreadyInitialized,
    // ---- Issue #23 ----
    #[msg("only the program's upgrade authority may initialize the config")]
    NotUpgradeAuthority,
}
