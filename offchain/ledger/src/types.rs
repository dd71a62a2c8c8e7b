//! Accounts, transfers, flags and the per-item errors (TigerBeetle's model).

use serde::{Deserialize, Serialize};

/// Serialises u128 as a decimal string: JSON numbers lose precision past 2^53.
pub mod u128_str {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    /// The one amount grammar ([`crate::amount`]): digits only, no sign or spaces.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        crate::amount::parse_units(&s).map_err(serde::de::Error::custom)
    }
}

/// Same as [`u128_str`] for signed report figures.
pub mod i128_str {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An asset/currency: accounts and transfers of different ledgers never mix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerDef {
    pub id: u32,
    /// e.g. "USDC", "SOL", "USD".
    pub code: String,
    /// Decimal places of the base unit (USDC 6, SOL 9, USD 2).
    pub scale: u8,
}

/// Account type; fixes the natural sign of the balance in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Asset = 1,
    Liability = 2,
    Equity = 3,
    Revenue = 4,
    Expense = 5,
}

impl AccountKind {
    pub fn from_i16(v: i16) -> Option<Self> {
        Some(match v {
            1 => Self::Asset,
            2 => Self::Liability,
            3 => Self::Equity,
            4 => Self::Revenue,
            5 => Self::Expense,
            _ => return None,
        })
    }

    /// Assets and expenses grow with debits; the rest with credits.
    pub fn is_debit_normal(self) -> bool {
        matches!(self, Self::Asset | Self::Expense)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    Facility = 1,
    User = 2,
    Treasury = 3,
    ChainVault = 4,
}

impl OwnerKind {
    pub fn from_i16(v: i16) -> Option<Self> {
        Some(match v {
            1 => Self::Facility,
            2 => Self::User,
            3 => Self::Treasury,
            4 => Self::ChainVault,
            _ => return None,
        })
    }
}

/// Who the account belongs to (facility, user, treasury, chain vault) and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OwnerRef {
    pub kind: OwnerKind,
    pub id: String,
}

/// Account flags (bit set).
pub mod account_flags {
    /// Debits (pending + posted) may never exceed posted credits.
    pub const DEBITS_MUST_NOT_EXCEED_CREDITS: u32 = 1 << 1;
    /// Credits (pending + posted) may never exceed posted debits.
    pub const CREDITS_MUST_NOT_EXCEED_DEBITS: u32 = 1 << 2;
    /// Set by `close_account`; a closed account takes no new transfers.
    pub const CLOSED: u32 = 1 << 4;
    /// Flags a client may set at creation.
    pub const CLIENT: u32 = DEBITS_MUST_NOT_EXCEED_CREDITS | CREDITS_MUST_NOT_EXCEED_DEBITS;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    #[serde(with = "u128_str")]
    pub id: u128,
    pub ledger: u32,
    pub kind: AccountKind,
    pub owner: OwnerRef,
    pub flags: u32,
    /// Tax jurisdiction of a revenue account (fee revenue is taxed per jurisdiction).
    pub jurisdiction: Option<String>,
    #[serde(with = "u128_str")]
    pub user_data: u128,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    #[serde(with = "u128_str")]
    pub debits_pending: u128,
    #[serde(with = "u128_str")]
    pub debits_posted: u128,
    #[serde(with = "u128_str")]
    pub credits_pending: u128,
    #[serde(with = "u128_str")]
    pub credits_posted: u128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    #[serde(with = "u128_str")]
    pub id: u128,
    pub ledger: u32,
    pub kind: AccountKind,
    pub owner: OwnerRef,
    pub flags: u32,
    pub jurisdiction: Option<String>,
    #[serde(with = "u128_str")]
    pub user_data: u128,
    pub balance: Balance,
    /// Assigned by the ledger: nanoseconds since the Unix epoch, unique and increasing.
    pub timestamp: u64,
    pub seq: u64,
}

impl Account {
    pub fn is_closed(&self) -> bool {
        self.flags & account_flags::CLOSED != 0
    }

    /// The fields a creation request fixes, for idempotency comparison.
    pub(crate) fn same_body(&self, n: &NewAccount) -> bool {
        self.id == n.id
            && self.ledger == n.ledger
            && self.kind == n.kind
            && self.owner == n.owner
            && (self.flags & account_flags::CLIENT) == n.flags
            && self.jurisdiction == n.jurisdiction
            && self.user_data == n.user_data
    }
}

/// Transfer flags (bit set, TigerBeetle's values where they exist).
pub mod transfer_flags {
    /// Chains this transfer to the next: the chain commits all or none.
    pub const LINKED: u32 = 1 << 0;
    /// Reserves the amount (pending balances) until posted, voided or expired.
    pub const PENDING: u32 = 1 << 1;
    /// Posts the pending transfer `pending_id` (full or partial amount).
    pub const POST_PENDING: u32 = 1 << 2;
    /// Voids the pending transfer `pending_id`.
    pub const VOID_PENDING: u32 = 1 << 3;
    /// Set by the ledger only: this void was produced by the pending transfer's timeout.
    pub const EXPIRED: u32 = 1 << 8;
    pub const CLIENT: u32 = LINKED | PENDING | POST_PENDING | VOID_PENDING;
}

/// Where a transfer came from on-chain; unique per instruction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExternalRef {
    pub chain: String,
    pub signature: String,
    pub ix_index: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTransfer {
    #[serde(with = "u128_str")]
    pub id: u128,
    /// For post/void: 0 (inherit from the pending transfer) or the same account.
    #[serde(with = "u128_str")]
    pub debit_account_id: u128,
    #[serde(with = "u128_str")]
    pub credit_account_id: u128,
    /// For a post: 0 posts the full pending amount, else at most the pending amount.
    /// For a void: 0 or the pending amount.
    #[serde(with = "u128_str")]
    pub amount: u128,
    /// The pending transfer a post/void resolves; 0 otherwise.
    #[serde(with = "u128_str")]
    pub pending_id: u128,
    /// For post/void: 0 (inherit) or the pending transfer's ledger.
    pub ledger: u32,
    /// User-defined reason code, non-zero (post/void: 0 inherits).
    pub code: u16,
    pub flags: u32,
    /// Seconds until a pending transfer expires (0 = never); only with `PENDING`.
    pub timeout: u32,
    #[serde(with = "u128_str")]
    pub user_data: u128,
    pub external_ref: Option<ExternalRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    #[serde(with = "u128_str")]
    pub id: u128,
    #[serde(with = "u128_str")]
    pub debit_account_id: u128,
    #[serde(with = "u128_str")]
    pub credit_account_id: u128,
    #[serde(with = "u128_str")]
    pub amount: u128,
    #[serde(with = "u128_str")]
    pub pending_id: u128,
    pub ledger: u32,
    pub code: u16,
    pub flags: u32,
    pub timeout: u32,
    /// For pending transfers with a timeout: when the reservation lapses (ns).
    pub expires_at: Option<u64>,
    #[serde(with = "u128_str")]
    pub user_data: u128,
    pub external_ref: Option<ExternalRef>,
    pub timestamp: u64,
    pub seq: u64,
}

impl Transfer {
    pub fn is_pending(&self) -> bool {
        self.flags & transfer_flags::PENDING != 0
    }

    /// Moves posted balances: single-phase transfers and posts (not pending, not void).
    pub fn is_posting(&self) -> bool {
        self.flags & (transfer_flags::PENDING | transfer_flags::VOID_PENDING) == 0
    }

    /// Idempotency: does a retried request describe this stored transfer?
    /// Zero-valued inherit fields of post/void requests match what was inherited.
    pub(crate) fn same_body(&self, n: &NewTransfer) -> bool {
        let resolving =
            n.flags & (transfer_flags::POST_PENDING | transfer_flags::VOID_PENDING) != 0;
        let eq128 = |req: u128, stored: u128| req == stored || (resolving && req == 0);
        self.id == n.id
            && eq128(n.debit_account_id, self.debit_account_id)
            && eq128(n.credit_account_id, self.credit_account_id)
            && eq128(n.amount, self.amount)
            && self.pending_id == n.pending_id
            && (n.ledger == self.ledger || (resolving && n.ledger == 0))
            && (n.code == self.code || (resolving && n.code == 0))
            && (self.flags & transfer_flags::CLIENT) == n.flags
            && self.timeout == n.timeout
            && self.user_data == n.user_data
            && self.external_ref == n.external_ref
    }
}

/// Why one account in a `create_accounts` call was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountError {
    #[error("account id must not be zero")]
    IdMustNotBeZero,
    #[error("account id must not be 2^128-1")]
    IdMustNotBeIntMax,
    #[error("reserved or ledger-only flag set")]
    ReservedFlag,
    #[error(
        "debits_must_not_exceed_credits and credits_must_not_exceed_debits are mutually exclusive"
    )]
    FlagsAreMutuallyExclusive,
    #[error("ledger must not be zero")]
    LedgerMustNotBeZero,
    #[error("ledger (asset) is not defined")]
    LedgerNotFound,
    #[error("owner id must not be empty")]
    OwnerIdMustNotBeEmpty,
    #[error("an account with this id exists with different fields")]
    ExistsWithDifferentFields,
}

/// Why one transfer in a `create_transfers` call was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferError {
    #[error("another transfer in the linked chain failed")]
    LinkedEventFailed,
    #[error("the batch ends inside a linked chain (last transfer has the linked flag)")]
    LinkedEventChainOpen,
    #[error("transfer id must not be zero")]
    IdMustNotBeZero,
    #[error("transfer id must not be 2^128-1")]
    IdMustNotBeIntMax,
    #[error("reserved or ledger-only flag set")]
    ReservedFlag,
    #[error("pending, post_pending and void_pending are mutually exclusive")]
    FlagsAreMutuallyExclusive,
    #[error("debit account id must not be zero")]
    DebitAccountIdMustNotBeZero,
    #[error("credit account id must not be zero")]
    CreditAccountIdMustNotBeZero,
    #[error("debit and credit account must differ")]
    AccountsMustBeDifferent,
    #[error("pending_id must be zero unless posting or voiding")]
    PendingIdMustBeZero,
    #[error("pending_id must not be zero when posting or voiding")]
    PendingIdMustNotBeZero,
    #[error("pending_id must differ from the transfer id")]
    PendingIdMustBeDifferent,
    #[error("timeout is only allowed on pending transfers")]
    TimeoutReservedForPendingTransfer,
    #[error("amount must not be zero")]
    AmountMustNotBeZero,
    #[error("ledger must not be zero")]
    LedgerMustNotBeZero,
    #[error("code must not be zero")]
    CodeMustNotBeZero,
    #[error("external reference chain and signature must not be empty")]
    ExternalRefInvalid,
    #[error("a transfer with this id exists with different fields")]
    ExistsWithDifferentFields,
    #[error("a transfer with this external reference already exists")]
    ExternalRefExists,
    #[error("debit account not found")]
    DebitAccountNotFound,
    #[error("credit account not found")]
    CreditAccountNotFound,
    #[error("debit and credit accounts are on different ledgers")]
    AccountsMustHaveTheSameLedger,
    #[error("transfer ledger differs from the accounts' ledger")]
    TransferMustHaveTheSameLedgerAsAccounts,
    #[error("debit account is closed")]
    DebitAccountClosed,
    #[error("credit account is closed")]
    CreditAccountClosed,
    #[error("pending transfer not found")]
    PendingTransferNotFound,
    #[error("referenced transfer is not pending")]
    PendingTransferNotPending,
    #[error("debit account differs from the pending transfer's")]
    PendingTransferHasDifferentDebitAccountId,
    #[error("credit account differs from the pending transfer's")]
    PendingTransferHasDifferentCreditAccountId,
    #[error("ledger differs from the pending transfer's")]
    PendingTransferHasDifferentLedger,
    #[error("code differs from the pending transfer's")]
    PendingTransferHasDifferentCode,
    #[error("post amount exceeds the pending amount")]
    ExceedsPendingTransferAmount,
    #[error("void amount differs from the pending amount")]
    PendingTransferHasDifferentAmount,
    #[error("pending transfer already posted")]
    PendingTransferAlreadyPosted,
    #[error("pending transfer already voided")]
    PendingTransferAlreadyVoided,
    #[error("pending transfer expired")]
    PendingTransferExpired,
    #[error("debits_pending would overflow")]
    OverflowsDebitsPending,
    #[error("credits_pending would overflow")]
    OverflowsCreditsPending,
    #[error("debits_posted would overflow")]
    OverflowsDebitsPosted,
    #[error("credits_posted would overflow")]
    OverflowsCreditsPosted,
    #[error("debit account's debits would exceed its credits")]
    ExceedsCredits,
    #[error("credit account's credits would exceed its debits")]
    ExceedsDebits,
}
