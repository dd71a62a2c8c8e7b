//! Service configuration with production defaults.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::AuthError;

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordHashing {
    /// Memory in KiB.
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl PasswordHashing {
    /// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 lane.
    pub const OWASP: Self = Self {
        m_cost: 19_456,
        t_cost: 2,
        p_cost: 1,
    };
    /// Cheap parameters so test suites stay fast. Never use in production.
    pub const INSECURE_FAST: Self = Self {
        m_cost: 256,
        t_cost: 1,
        p_cost: 1,
    };
}

impl Default for PasswordHashing {
    fn default() -> Self {
        Self::OWASP
    }
}

/// After `max_failures` consecutive failed password attempts the account is
/// locked for `duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub duration: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            duration: Duration::from_secs(15 * 60),
        }
    }
}

/// 32-byte key encrypting TOTP secrets at rest, so a database dump alone does
/// not reveal them. `Debug` never prints it; zeroed on drop.
#[derive(Clone)]
pub struct TotpEncryptionKey(pub(crate) Zeroizing<[u8; 32]>);

impl TotpEncryptionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A random key: dev and tests only (secrets become unreadable on restart).
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// Accepts 64 hex characters or standard base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let text = text.trim();
        let bytes = Zeroizing::new(if text.len() == 64 {
            hex::decode(text).map_err(|_| bad_key())?
        } else {
            STANDARD.decode(text).map_err(|_| bad_key())?
        });
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad_key())?;
        Ok(Self::from_bytes(arr))
    }
}

fn bad_key() -> AuthError {
    AuthError::Misconfigured("TOTP encryption key must be 32 bytes as hex or base64".into())
}

impl std::fmt::Debug for TotpEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEncryptionKey([redacted])")
    }
}

/// Sign-In With Solana settings: what the message must name.
#[derive(Clone, Debug)]
pub struct SiwsConfig {
    /// RFC 3986 authority the wallet shows the user; signed messages for any
    /// other domain are rejected (phishing protection).
    pub domain: String,
    pub uri: String,
    pub statement: String,
    /// `mainnet`, `devnet`, `testnet` or `localnet`.
    pub chain_id: String,
    pub challenge_ttl: Duration,
}

impl Default for SiwsConfig {
    fn default() -> Self {
        Self {
            domain: "localhost:8080".into(),
            uri: "http://localhost:8080".into(),
            statement: "Sign in to Advancia Pay Ledger.".into(),
            chain_id: "localnet".into(),
            challenge_ttl: Duration::from_secs(5 * 60),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// JWT `iss`; verification rejects any other.
    pub issuer: String,
    /// JWT `aud`; verification rejects any other.
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Tolerated clock difference when checking `exp`/`iat`.
    pub leeway: Duration,
    /// Issuer label in authenticator apps.
    pub totp_issuer: String,
    pub totp_key: TotpEncryptionKey,
    /// Consecutive wrong second-factor codes before the account locks.
    pub max_2fa_failures: u32,
    pub lockout: LockoutPolicy,
    pub two_factor_challenge_ttl: Duration,
    /// Lifetime of password-reset tokens (mailed links).
    pub password_reset_ttl: Duration,
    /// Lifetime of email-verification tokens.
    pub email_verification_ttl: Duration,
    pub password_hashing: PasswordHashing,
    pub min_password_length: usize,
    pub siws: SiwsConfig,
}

impl Default for AuthConfig {
    /// Production parameters, except `totp_key`, which is random: set a stable
    /// key (see [`AuthConfig::from_env`]) anywhere data must survive restarts.
    fn default() -> Self {
        Self {
            issuer: "advancia".into(),
            audience: "advancia-api".into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            leeway: Duration::from_secs(30),
            totp_issuer: "Advancia".into(),
            totp_key: TotpEncryptionKey::generate(),
            max_2fa_failures: 5,
            lockout: LockoutPolicy::default(),
            two_factor_challenge_ttl: Duration::from_secs(5 * 60),
            password_reset_ttl: Duration::from_secs(30 * 60),
            email_verification_ttl: Duration::from_secs(48 * 3600),
            password_hashing: PasswordHashing::OWASP,
            min_password_length: 12,
            siws: SiwsConfig::default(),
        }
    }
}

impl AuthConfig {
    /// Defaults overridden by `AUTH_ISSUER`, `AUTH_AUDIENCE`, `AUTH_TOTP_ISSUER`,
    /// `AUTH_SIWS_DOMAIN`, `AUTH_SIWS_URI`, `AUTH_SIWS_CHAIN_ID`; requires
    /// `AUTH_TOTP_ENCRYPTION_KEY` (32 bytes, hex or base64).
    pub fn from_env() -> Result<Self, AuthError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any variable source.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, AuthError> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let key = var("AUTH_TOTP_ENCRYPTION_KEY").ok_or_else(|| {
            AuthError::Misconfigured("AUTH_TOTP_ENCRYPTION_KEY is not set".into())
        })?;
        let mut c = Self {
            totp_key: TotpEncryptionKey::parse(&key)?,
            ..Self::default()
        };
        if let Some(v) = var("AUTH_ISSUER") {
            c.issuer = v;
        }
        if let Some(v) = var("AUTH_AUDIENCE") {
            c.audience = v;
        }
        if let Some(v) = var("AUTH_TOTP_ISSUER") {
            c.totp_issuer = v;
        }
        if let Some(v) = var("AUTH_SIWS_DOMAIN") {
            c.siws.domain = v;
        }
        if let Some(v) = var("AUTH_SIWS_URI") {
            c.siws.uri = v;
        }
        if let Some(v) = var("AUTH_SIWS_CHAIN_ID") {
            c.siws.chain_id = v;
        }
        Ok(c)
    }
}
