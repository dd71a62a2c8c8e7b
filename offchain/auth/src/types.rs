//! Request and response types of the public API.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Role, Secret};

#[derive(Clone, Deserialize)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

impl std::fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// Where a request came from; recorded on sessions and audit events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: Uuid,
    /// `None` for accounts created by wallet sign-in.
    pub email: Option<String>,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub two_factor_enabled: bool,
    /// Whether the current email was proven by `verify_email`.
    pub email_verified: bool,
    /// Deactivated by an admin: no sign-in, refresh or API-key use.
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct UpdateUser {
    pub display_name: Option<String>,
    pub email: Option<String>,
}

/// OAuth 2.0 style token response.
#[derive(Clone, Debug, Serialize)]
pub struct TokenPair {
    pub access_token: Secret,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
    pub refresh_token: Secret,
    pub refresh_expires_in: u64,
    /// Refresh-token family (login session) id; also the access token's `sid`.
    pub session_id: Uuid,
}

#[derive(Clone, Debug)]
pub enum LoginOutcome {
    Tokens(TokenPair),
    /// Password accepted; call `verify_2fa` with this token and a code.
    TwoFactorRequired {
        challenge_token: Secret,
    },
}

impl LoginOutcome {
    /// The tokens, or `two-factor-required`.
    pub fn into_tokens(self) -> Result<TokenPair, crate::AuthError> {
        match self {
            LoginOutcome::Tokens(t) => Ok(t),
            LoginOutcome::TwoFactorRequired { .. } => Err(crate::AuthError::TwoFactorRequired),
        }
    }
}

/// Shown once at enrollment; the secret is stored encrypted, codes hashed.
#[derive(Clone, Debug, Serialize)]
pub struct TotpEnrollment {
    pub secret_base32: Secret,
    pub otpauth_uri: Secret,
    pub recovery_codes: Vec<Secret>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKeyId(pub Uuid);

impl std::fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl std::str::FromStr for ApiKeyId {
    type Err = crate::AuthError;
    /// Simple (32 hex) or hyphenated UUID form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s.trim())
            .map(ApiKeyId)
            .map_err(|_| crate::AuthError::InvalidInput("API key id must be a UUID".into()))
    }
}

/// An audit event (never holds secrets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthEvent {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub user_id: Option<Uuid>,
    /// e.g. `login`, `login_failed`, `locked`, `2fa_enabled`, `refresh_reuse_detected`.
    pub kind: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: serde_json::Value,
}

/// Who is calling with a verified API key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKeyPrincipal {
    pub key_id: ApiKeyId,
    pub owner: Uuid,
    pub scopes: Vec<String>,
}

impl ApiKeyPrincipal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// API key metadata (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    pub id: ApiKeyId,
    pub owner: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A live login session (refresh-token family).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub amr: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SiwsChallenge {
    /// The exact text the wallet must sign.
    pub message: String,
    pub nonce: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}
