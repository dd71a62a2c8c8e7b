//! Types of the KYC service's API.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::KycError;
use crate::sanctions::NameMatch;

time::serde::format_description!(pub iso_date, Date, "[year]-[month]-[day]");

/// Workflow states: submitted → in_review → approved | rejected, approvals expire (or are
/// revoked); open verifications that nobody decides expire too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Submitted,
    InReview,
    Approved,
    Rejected,
    Expired,
    Revoked,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Submitted => "submitted",
            State::InReview => "in_review",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Expired => "expired",
            State::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "submitted" => State::Submitted,
            "in_review" => State::InReview,
            "approved" => State::Approved,
            "rejected" => State::Rejected,
            "expired" => State::Expired,
            "revoked" => State::Revoked,
            _ => return None,
        })
    }

    /// The moves the workflow allows (the same table is enforced by a trigger in SQL).
    pub fn can_move_to(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Submitted, InReview | Rejected | Expired)
                | (InReview, Approved | Rejected | Expired)
                | (Approved, Expired | Revoked)
        )
    }

    /// States that produce a decision event (and a `kyc.decided` notification).
    pub fn is_decision(self) -> bool {
        matches!(
            self,
            State::Approved | State::Rejected | State::Expired | State::Revoked
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Passport,
    IdCard,
    DrivingLicence,
    ProofOfAddress,
    Selfie,
    Other,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Passport => "passport",
            DocumentKind::IdCard => "id_card",
            DocumentKind::DrivingLicence => "driving_licence",
            DocumentKind::ProofOfAddress => "proof_of_address",
            DocumentKind::Selfie => "selfie",
            DocumentKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<DocumentKind> {
        Some(match s {
            "passport" => DocumentKind::Passport,
            "id_card" => DocumentKind::IdCard,
            "driving_licence" => DocumentKind::DrivingLicence,
            "proof_of_address" => DocumentKind::ProofOfAddress,
            "selfie" => DocumentKind::Selfie,
            "other" => DocumentKind::Other,
            _ => return None,
        })
    }
}

/// A stored document (metadata only; the bytes are in the object store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Document {
    pub id: Uuid,
    pub sha256: String,
    pub mime: String,
    pub size_bytes: i64,
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub uploaded_at: OffsetDateTime,
    /// `false` when this user had already uploaded the same content.
    pub created: bool,
}

/// Identity document presented for verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdDocumentType {
    Passport,
    IdCard,
    DrivingLicence,
}

impl IdDocumentType {
    pub fn as_str(self) -> &'static str {
        match self {
            IdDocumentType::Passport => "passport",
            IdDocumentType::IdCard => "id_card",
            IdDocumentType::DrivingLicence => "driving_licence",
        }
    }
}

/// `POST /kyc/verify`.
#[derive(Clone, Deserialize)]
pub struct SubmitRequest {
    pub full_name: String,
    #[serde(with = "iso_date")]
    pub birth_date: Date,
    /// ISO 3166-1 alpha-2 country of residence.
    pub country: String,
    pub document_type: IdDocumentType,
    pub document_number: String,
    #[serde(default, with = "iso_date::option")]
    pub document_expiry: Option<Date>,
    /// The passport's two MRZ lines (required for passports).
    #[serde(default)]
    pub mrz: Option<String>,
    /// SHA-256 content addresses of documents this user uploaded.
    pub documents: Vec<String>,
    /// Solana wallet to attest on approval; must be one of the user's linked wallets.
    pub wallet: String,
}

// Personal data: never printed by `{:?}`.
impl std::fmt::Debug for SubmitRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmitRequest")
            .field("document_type", &self.document_type)
            .field("documents", &self.documents.len())
            .finish_non_exhaustive()
    }
}

/// One provider check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub check: String,
    pub passed: bool,
    pub detail: String,
}

/// A verification as compliance officers see it.
#[derive(Clone, Serialize)]
pub struct Verification {
    pub id: Uuid,
    pub user_id: Uuid,
    pub state: State,
    pub full_name: String,
    #[serde(with = "iso_date")]
    pub birth_date: Date,
    pub country: String,
    pub document_type: String,
    pub document_number: String,
    #[serde(with = "iso_date::option")]
    pub document_expiry: Option<Date>,
    pub documents: Vec<String>,
    pub wallet: String,
    pub provider: String,
    pub checks: Vec<Check>,
    pub sanctions: Vec<NameMatch>,
    pub level: Option<u8>,
    pub reason: Option<String>,
    pub reviewer: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub submitted_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verification")
            .field("id", &self.id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What a user sees of their own verification (no reviewer, no sanctions details).
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub user_id: Uuid,
    /// `none` when the user never submitted.
    pub state: String,
    pub verification_id: Option<Uuid>,
    pub level: Option<u8>,
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub submitted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub wallet: Option<String>,
    /// `pending`, `done` or `failed` once an approval queued the on-chain write.
    pub attestation: Option<AttestationView>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttestationView {
    pub action: String,
    pub state: String,
    pub signature: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub from: Option<String>,
    pub to: String,
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A compliance officer's decision on a verification in review.
#[derive(Debug, Clone, Deserialize)]
pub struct ApproveRequest {
    /// KYC level written on chain (1 basic … 255); default: the provider's suggestion.
    #[serde(default)]
    pub level: Option<u8>,
    /// Required when the applicant's name matched the sanctions list.
    #[serde(default)]
    pub acknowledge_sanctions: bool,
}

pub(crate) fn parse_state(s: &str) -> Result<State, KycError> {
    State::parse(s).ok_or_else(|| KycError::Corrupt(format!("unknown state `{s}`")))
}
