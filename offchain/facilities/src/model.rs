//! Request and response shapes.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::FacilityError;

// Dates as `YYYY-MM-DD` in JSON (time's default serde form is a tuple).
time::serde::format_description!(pub iso_date, Date, "[year]-[month]-[day]");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FacilityStatus {
    Active,
    Suspended,
    Deactivated,
}

impl FacilityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deactivated => "deactivated",
        }
    }

    pub fn parse(s: &str) -> Result<Self, FacilityError> {
        Ok(match s {
            "active" => Self::Active,
            "suspended" => Self::Suspended,
            "deactivated" => Self::Deactivated,
            _ => return Err(FacilityError::Corrupt(format!("status `{s}`"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Address {
    #[serde(default)]
    pub street: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// WGS84 degrees. Doubles: geo is not money.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// e.g. "phone", "email", "web".
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutWallet {
    /// "solana", "ethereum", "cosmos", ...
    pub chain: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    #[serde(default)]
    pub id: Option<Uuid>,
    pub name: String,
    pub issuer: String,
    #[serde(default)]
    pub number: String,
    #[serde(default, with = "iso_date::option")]
    pub issued_on: Option<Date>,
    #[serde(with = "iso_date")]
    pub expires_on: Date,
}

/// Everything a client sets on a facility (create, and full replacement on update).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacilityInput {
    pub name: String,
    pub facility_type: String,
    #[serde(default)]
    pub services: Vec<String>,
    pub address: Address,
    pub location: GeoPoint,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// "chain:asset" pairs, e.g. "solana:USDC".
    #[serde(default)]
    pub accepted_assets: Vec<String>,
    #[serde(default)]
    pub payout_wallets: Vec<PayoutWallet>,
    #[serde(default)]
    pub certifications: Vec<Certification>,
    pub status: FacilityStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facility {
    pub id: Uuid,
    #[serde(flatten)]
    pub profile: FacilityInput,
    /// The ETag: incremented by every update.
    pub version: i64,
    /// The 32-byte id of this facility in the on-chain registry (hex): the uuid's bytes
    /// followed by 16 zero bytes, the same mapping payments use for uuid facility ids.
    pub chain_facility_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchQuery {
    /// Full-text query (web search syntax: words, "phrases", -exclusions, or).
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub facility_type: Option<String>,
    /// Name of a certification the facility holds unexpired (case-insensitive).
    #[serde(default)]
    pub certification: Option<String>,
    /// "chain:asset".
    #[serde(default)]
    pub accepted_asset: Option<String>,
    #[serde(default)]
    pub near_lat: Option<f64>,
    #[serde(default)]
    pub near_lon: Option<f64>,
    /// Radius around (near_lat, near_lon), km.
    #[serde(default)]
    pub radius_km: Option<f64>,
    #[serde(default)]
    pub include_inactive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub facility: Facility,
    /// ts_rank of the text query (0 without one).
    pub rank: f32,
    /// Great-circle distance from the query point, km (None without one).
    pub distance_km: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    pub kind: String,
    pub number: String,
    pub issuer: String,
    #[serde(default, with = "iso_date::option")]
    pub expires_on: Option<Date>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffInput {
    /// The auth user this staff member logs in as, if any.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    pub display_name: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub licences: Vec<Licence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Staff {
    pub id: Uuid,
    pub facility_id: Uuid,
    #[serde(flatten)]
    pub profile: StaffInput,
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceState {
    Operational,
    MaintenanceDue,
    UnderMaintenance,
    OutOfService,
}

impl MaintenanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operational => "operational",
            Self::MaintenanceDue => "maintenance_due",
            Self::UnderMaintenance => "under_maintenance",
            Self::OutOfService => "out_of_service",
        }
    }

    pub fn parse(s: &str) -> Result<Self, FacilityError> {
        Ok(match s {
            "operational" => Self::Operational,
            "maintenance_due" => Self::MaintenanceDue,
            "under_maintenance" => Self::UnderMaintenance,
            "out_of_service" => Self::OutOfService,
            _ => return Err(FacilityError::Corrupt(format!("maintenance state `{s}`"))),
        })
    }

    /// Whether the resource can be booked.
    pub fn bookable(self) -> bool {
        matches!(self, Self::Operational | Self::MaintenanceDue)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInput {
    pub name: String,
    pub kind: String,
    pub maintenance_state: MaintenanceState,
    #[serde(default, with = "iso_date::option")]
    pub last_maintained_on: Option<Date>,
    #[serde(default, with = "iso_date::option")]
    pub next_maintenance_on: Option<Date>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    pub id: Uuid,
    pub facility_id: Uuid,
    #[serde(flatten)]
    pub profile: ResourceInput,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingInput {
    #[serde(default)]
    pub staff_id: Option<Uuid>,
    #[serde(default)]
    pub resource_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// The user the appointment is for.
    #[serde(default)]
    pub booked_for: Option<Uuid>,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appointment {
    pub id: Uuid,
    pub facility_id: Uuid,
    pub staff_id: Option<Uuid>,
    pub resource_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    pub booked_for: Option<Uuid>,
    pub note: String,
    /// "booked" or "cancelled".
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiringCertification {
    pub facility_id: Uuid,
    pub facility_name: String,
    pub certification: Certification,
    /// Negative when already expired.
    pub days_left: i64,
}

/// A row of the `facilities.events` outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FacilityEvent {
    pub id: i64,
    pub facility_id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Event kinds written to the outbox.
pub mod event_kind {
    pub const CERTIFICATION_EXPIRING: &str = "facility.certification_expiring";
    pub const FACILITY_CREATED: &str = "facility.created";
    pub const FACILITY_UPDATED: &str = "facility.updated";
}
