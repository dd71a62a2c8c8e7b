//! Payment intents as stored and returned, and the inputs that create them.

use anchor_lang::prelude::Pubkey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PaymentError;

/// A payment intent and what the chain says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Payment {
    pub id: Uuid,
    pub created_by: Uuid,
    pub chain: String,
    /// `payment` (direct) or `escrow` (two-phase: held, then released or refunded).
    pub kind: String,
    /// Hex of the 32-byte on-chain facility id.
    pub facility_id: String,
    /// The facility's on-chain account.
    pub facility: String,
    /// Mint in base58; `11111111111111111111111111111111` is native SOL.
    pub mint: String,
    /// Base units, decimal string.
    pub amount: String,
    pub escrow_arbiter: Option<String>,
    pub escrow_expires_at: Option<i64>,
    pub invoice_id: String,
    /// Solana Pay reference key: the transaction carries it, so it can be found on chain.
    pub reference: String,
    pub label: String,
    pub memo: Option<String>,
    /// Wallet the last transaction request was built for (the chain's word once paid).
    pub payer: Option<String>,
    /// `pending` → `confirmed` → `finalized`, or `failed` / `expired`.
    pub status: String,
    /// The settling transaction (or, while `failed`, the failed attempt).
    pub signature: Option<String>,
    pub slot: Option<i64>,
    /// The on-chain PaymentRecord or Escrow account of the settling payment.
    pub account: Option<String>,
    /// Position of the settling event in its transaction.
    pub ix_index: Option<i32>,
    pub inner_index: Option<i32>,
    pub fee: Option<String>,
    pub refunded: String,
    pub released: String,
    pub failure: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

pub(crate) const PAYMENT_COLS: &str = "id, created_by, chain, kind, facility_id, facility, mint,
    amount::text AS amount, escrow_arbiter, escrow_expires_at, invoice_id, reference, label, memo,
    payer, status, signature, slot, account, ix_index, inner_index, fee::text AS fee,
    refunded::text AS refunded,
    released::text AS released, failure, verified_at, expires_at, created_at, updated_at";

impl Payment {
    pub fn amount_u64(&self) -> Result<u64, PaymentError> {
        parse_u64(&self.amount, "amount")
    }

    pub fn refunded_u64(&self) -> Result<u64, PaymentError> {
        parse_u64(&self.refunded, "refunded")
    }

    pub fn released_u64(&self) -> Result<u64, PaymentError> {
        parse_u64(&self.released, "released")
    }

    pub fn is_escrow(&self) -> bool {
        self.kind == "escrow"
    }

    pub fn invoice_bytes(&self) -> Result<[u8; 32], PaymentError> {
        hex32(&self.invoice_id)
            .ok_or_else(|| PaymentError::Corrupt(format!("invoice id {}", self.invoice_id)))
    }

    pub fn facility_id_bytes(&self) -> Result<[u8; 32], PaymentError> {
        hex32(&self.facility_id)
            .ok_or_else(|| PaymentError::Corrupt(format!("facility id {}", self.facility_id)))
    }

    pub fn mint_key(&self) -> Result<Pubkey, PaymentError> {
        self.mint
            .parse()
            .map_err(|_| PaymentError::Corrupt(format!("mint {}", self.mint)))
    }

    pub fn reference_key(&self) -> Result<Pubkey, PaymentError> {
        self.reference
            .parse()
            .map_err(|_| PaymentError::Corrupt(format!("reference {}", self.reference)))
    }

    pub fn payer_key(&self) -> Result<Option<Pubkey>, PaymentError> {
        self.payer
            .as_deref()
            .map(|p| {
                p.parse()
                    .map_err(|_| PaymentError::Corrupt(format!("payer {p}")))
            })
            .transpose()
    }

    pub fn is_native(&self) -> bool {
        self.mint == advancia_pay::state::NATIVE_SOL.to_string()
    }
}

pub(crate) fn parse_u64(s: &str, what: &str) -> Result<u64, PaymentError> {
    s.parse()
        .map_err(|_| PaymentError::Corrupt(format!("{what} `{s}` is not a u64")))
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

/// A base-unit amount given as a JSON string (exact for any u64) or a JSON integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub u64);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(v) => Ok(Amount(v)),
            // The one amount grammar (advancia_ledger::amount): no sign, no spaces.
            Raw::Str(s) => advancia_ledger::amount::parse_units(&s)
                .ok()
                .and_then(|v| u64::try_from(v).ok())
                .map(Amount)
                .ok_or_else(|| {
                    serde::de::Error::custom(
                        "amount: a whole number of base units, digits only (0 to 18446744073709551615)",
                    )
                }),
        }
    }
}

/// Escrow terms: the payer's funds are held until released (by payer or arbiter) or
/// refunded (by facility or arbiter; by anyone to the payer after `expires_at`).
#[derive(Debug, Clone, Deserialize)]
pub struct EscrowTerms {
    /// Arbiter wallet (base58).
    pub arbiter: String,
    /// Unix seconds after which anyone may refund the payer.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InitiateRequest {
    /// The facility's on-chain id: 64 hex characters, or a facility UUID (its 16 bytes
    /// followed by 16 zero bytes).
    pub facility_id: String,
    pub amount: Amount,
    /// `SOL`, or an SPL mint address (Token or Token-2022) the program accepts.
    pub asset: String,
    /// Shown to the payer's wallet (Solana Pay `label`); defaults to the service label.
    pub label: Option<String>,
    /// Free text for the payer and the facility (not sent on chain).
    pub memo: Option<String>,
    pub escrow: Option<EscrowTerms>,
}

/// Parses an on-chain facility id: 64 hex characters, or a UUID (16 bytes + 16 zero bytes).
pub fn parse_facility_id(s: &str) -> Result<[u8; 32], PaymentError> {
    let s = s.trim();
    if let Some(b) = hex32(s) {
        return Ok(b);
    }
    if let Ok(u) = Uuid::try_parse(s) {
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(u.as_bytes());
        return Ok(b);
    }
    Err(PaymentError::Invalid(format!(
        "facility_id `{s}` is neither 64 hex characters nor a UUID"
    )))
}

/// `SOL` or a base58 mint.
pub fn parse_asset(s: &str) -> Result<Pubkey, PaymentError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("sol") {
        return Ok(advancia_pay::state::NATIVE_SOL);
    }
    s.parse().map_err(|_| {
        PaymentError::Invalid(format!("asset `{s}` is neither SOL nor a mint address"))
    })
}

pub fn parse_wallet(s: &str, what: &str) -> Result<Pubkey, PaymentError> {
    s.trim()
        .parse()
        .map_err(|_| PaymentError::Invalid(format!("{what} `{s}` is not a Solana address")))
}

/// Filters of the payment history.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Only intents this user created (`None`: everyone's — operators).
    pub created_by: Option<Uuid>,
    pub facility: Option<String>,
    pub payer: Option<String>,
    pub status: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Keyset position: (created_at, id) of the last item of the previous page.
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// Unsigned transaction for a wallet, as the Solana Pay transaction-request POST answers.
#[derive(Debug, Clone, Serialize)]
pub struct TransactionResponse {
    /// Base64 of the serialized transaction, signatures empty.
    pub transaction: String,
    pub message: String,
    pub blockhash: String,
    pub last_valid_block_height: u64,
}

/// One leg of the ledger's linked transfers for a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerLeg {
    pub transfer_id: String,
    pub debit_account_id: String,
    pub credit_account_id: String,
    pub amount: String,
}

/// The ledger's record of a confirmed payment: its linked transfers (net to the facility's
/// payable, fee to revenue; or the escrow hold) and their total, which equals the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerRecord {
    pub amount: String,
    pub legs: Vec<LedgerLeg>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    pub payment: Payment,
    /// Checks made against the finalized on-chain event and account.
    pub verified: Vec<&'static str>,
    /// `None` until the ledger's posting rules have posted the payment.
    pub ledger: Option<LedgerRecord>,
}

/// An on-chain payment recorded against an intent that does not settle it (another amount,
/// asset, facility, invoice, reference, arbiter or expiry; or a second payment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Mismatch {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub chain: String,
    pub signature: String,
    pub ix_index: i32,
    pub inner_index: i32,
    pub slot: i64,
    pub commitment: String,
    /// `payment` or `escrow`.
    pub kind: String,
    pub payer: String,
    /// The on-chain PaymentRecord or Escrow account (the facility refunds from it).
    pub account: String,
    pub facility: String,
    pub mint: String,
    pub amount: String,
    pub fee: String,
    pub arbiter: Option<String>,
    pub expires_at: Option<i64>,
    pub invoice_id: Option<String>,
    pub reference: Option<String>,
    /// The terms that differ (`amount`, `asset`, …), or `duplicate`.
    pub reasons: Vec<String>,
    pub refunded: String,
    pub released: String,
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
}

pub(crate) const MISMATCH_COLS: &str = "id, payment_id, chain, signature, ix_index,
    inner_index, slot, commitment, kind, payer, account, facility, mint, amount::text AS amount,
    fee::text AS fee, arbiter, expires_at, invoice_id, reference, reasons,
    refunded::text AS refunded, released::text AS released, detected_at";

impl Mismatch {
    pub fn invoice_bytes(&self) -> Option<[u8; 32]> {
        self.invoice_id.as_deref().and_then(hex32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_from_strings_or_integers() {
        let a: Amount = serde_json::from_str("\"18446744073709551615\"").unwrap_or(Amount(0));
        assert_eq!(a, Amount(u64::MAX));
        assert_eq!(serde_json::from_str::<Amount>("42").ok(), Some(Amount(42)));
        for bad in [
            "\"-1\"",
            "\"1.5\"",
            "1.5",
            "\"18446744073709551616\"",
            "\"\"",
            "-3",
        ] {
            assert!(serde_json::from_str::<Amount>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn facility_ids() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_facility_id(&hex).ok(), Some([0xab; 32]));
        let u = Uuid::from_u128(0x0102);
        let b = parse_facility_id(&u.to_string()).unwrap_or_default();
        assert_eq!(&b[..16], u.as_bytes());
        assert_eq!(&b[16..], &[0u8; 16]);
        assert!(parse_facility_id("abc").is_err());
        assert!(parse_asset("sol").is_ok_and(|m| m == advancia_pay::state::NATIVE_SOL));
        assert!(parse_asset("not-a-mint").is_err());
    }
}
