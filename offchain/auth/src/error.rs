//! One error type for the whole service. Each variant maps to an HTTP status
//! and a stable slug, so the gateway can render RFC 9457 problems without
//! knowing auth internals.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown email or wrong password: deliberately indistinguishable.
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("this email address is already registered")]
    EmailTaken,
    #[error("password rejected: {0}")]
    WeakPassword(&'static str),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Malformed, tampered, unknown-key, wrong-issuer or unknown opaque token.
    #[error("invalid token")]
    InvalidToken,
    #[error("token expired")]
    TokenExpired,
    /// A rotated refresh token came back: the whole session was revoked.
    #[error("refresh token was already used; the session has been revoked")]
    TokenReused,
    #[error("token revoked")]
    TokenRevoked,
    #[error("two-factor authentication required")]
    TwoFactorRequired,
    #[error("invalid two-factor code")]
    InvalidTwoFactorCode,
    #[error("two-factor authentication is not enabled")]
    TwoFactorNotEnabled,
    #[error("two-factor authentication is already enabled")]
    TwoFactorAlreadyEnabled,
    #[error("account temporarily locked after repeated failures")]
    LockedOut { retry_after: Duration },
    #[error("forbidden")]
    Forbidden,
    #[error("account disabled")]
    AccountDisabled,
    #[error("not found")]
    NotFound,
    #[error("invalid API key")]
    InvalidApiKey,
    #[error("signature does not verify")]
    InvalidSignature,
    /// Sign-in nonce unknown, already used, or issued for another address.
    #[error("sign-in nonce is unknown or already used")]
    InvalidNonce,
    #[error("sign-in challenge expired")]
    ChallengeExpired,
    /// A sign-in message that is not one we could have issued (it does not parse, names
    /// an unusable address, or is not valid yet): the sign-in fails like a bad signature.
    #[error("{0}")]
    InvalidMessage(String),
    /// A well-formed base58 address (the documented syntax) that is no wallet's key: not
    /// 32 bytes, or not a point of the curve (a PDA).
    #[error("{0}")]
    InvalidAddress(String),
    /// Well-formed, and refused as it stands (an admin removing their own admin role).
    #[error("{0}")]
    Refused(String),
    #[error("sign-in message is for domain {got:?}, expected {expected:?}")]
    DomainMismatch { expected: String, got: String },
    #[error("auth misconfigured: {0}")]
    Misconfigured(String),
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    pub fn status_code(&self) -> u16 {
        use AuthError::*;
        match self {
            InvalidCredentials
            | InvalidToken
            | TokenExpired
            | TokenReused
            | TokenRevoked
            | TwoFactorRequired
            | InvalidTwoFactorCode
            | InvalidApiKey
            | InvalidSignature
            | InvalidNonce
            | ChallengeExpired
            | InvalidMessage(_)
            | DomainMismatch { .. } => 401,
            EmailTaken | TwoFactorNotEnabled | TwoFactorAlreadyEnabled => 409,
            WeakPassword(_) | InvalidAddress(_) | Refused(_) => 422,
            InvalidInput(_) => 400,
            LockedOut { .. } => 429,
            Forbidden | AccountDisabled => 403,
            NotFound => 404,
            Unavailable(_) => 503,
            Misconfigured(_) | Database(_) | Internal(_) => 500,
        }
    }

    /// Stable machine-readable slug (becomes the problem `type` URI suffix).
    pub fn kind(&self) -> &'static str {
        use AuthError::*;
        match self {
            InvalidCredentials => "invalid-credentials",
            EmailTaken => "email-taken",
            WeakPassword(_) => "weak-password",
            InvalidInput(_) => "invalid-input",
            InvalidToken => "invalid-token",
            TokenExpired => "token-expired",
            TokenReused => "token-reused",
            TokenRevoked => "token-revoked",
            TwoFactorRequired => "two-factor-required",
            InvalidTwoFactorCode => "invalid-2fa-code",
            TwoFactorNotEnabled => "two-factor-not-enabled",
            TwoFactorAlreadyEnabled => "two-factor-already-enabled",
            LockedOut { .. } => "locked-out",
            Forbidden => "forbidden",
            AccountDisabled => "account-disabled",
            NotFound => "not-found",
            InvalidApiKey => "invalid-api-key",
            InvalidSignature => "invalid-signature",
            InvalidNonce => "invalid-nonce",
            ChallengeExpired => "challenge-expired",
            InvalidMessage(_) => "invalid-message",
            InvalidAddress(_) => "invalid-address",
            Refused(_) => "input-refused",
            DomainMismatch { .. } => "domain-mismatch",
            Misconfigured(_) => "misconfigured",
            Unavailable(_) => "unavailable",
            Database(_) | Internal(_) => "internal",
        }
    }

    /// For `Retry-After` on lockouts.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::LockedOut { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Server-side failures whose detail must not reach clients.
    pub fn is_internal(&self) -> bool {
        self.status_code() >= 500
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                AuthError::Unavailable(e)
            }
            other => AuthError::Database(other),
        }
    }
}
