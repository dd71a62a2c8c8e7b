//! Roles for RBAC. The serde names are part of the token and the API contract.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Patient,
    Provider,
    FacilityAdmin,
    ComplianceOfficer,
    Partner,
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Patient,
        Role::Provider,
        Role::FacilityAdmin,
        Role::ComplianceOfficer,
        Role::Partner,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Provider => "provider",
            Role::FacilityAdmin => "facility_admin",
            Role::ComplianceOfficer => "compliance_officer",
            Role::Partner => "partner",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = crate::AuthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or_else(|| crate::AuthError::InvalidInput(format!("unknown role {s:?}")))
    }
}

/// Database rows hold role names; unknown names (a newer schema) are skipped
/// rather than granting anything.
pub(crate) fn roles_from_db(names: &[String]) -> Vec<Role> {
    let mut v: Vec<Role> = names.iter().filter_map(|n| Role::parse(n)).collect();
    v.sort();
    v.dedup();
    v
}

pub(crate) fn roles_to_db(roles: &[Role]) -> Vec<String> {
    let mut v = roles.to_vec();
    v.sort();
    v.dedup();
    v.into_iter().map(|r| r.as_str().to_owned()).collect()
}
