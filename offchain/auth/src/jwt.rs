//! Compact JWS (RFC 7515) with EdDSA (RFC 8037), written on ed25519-dalek to
//! keep `ring` and its build out of the tree. Only `alg: EdDSA` is accepted:
//! the algorithm comes from our key, never from the token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AuthError, Role, SigningKeys};

/// Verified access-token claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    pub roles: Vec<Role>,
    /// Session (refresh-token family) the token was minted for; absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// Authentication methods (RFC 8176): `pwd`, `otp`, `wallet`.
    #[serde(default)]
    pub amr: Vec<String>,
    /// Header `kid` the token was verified with (not part of the payload).
    #[serde(skip)]
    pub kid: String,
}

impl Claims {
    pub fn has_any(&self, roles: &[Role]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// `Ok` if the caller holds one of `roles`, else `forbidden`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), AuthError> {
        if self.has_any(roles) {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }

    /// Whether the login used a second factor (`otp`) or a wallet signature.
    pub fn has_amr(&self, method: &str) -> bool {
        self.amr.iter().any(|m| m == method)
    }

    pub fn user_id(&self) -> Uuid {
        self.sub
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions we do not understand must be rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<serde_json::Value>,
}

pub(crate) fn sign(keys: &SigningKeys, claims: &Claims) -> Result<String, AuthError> {
    let key = keys.active();
    let header = Header {
        alg: "EdDSA".into(),
        typ: Some("JWT".into()),
        kid: Some(key.kid().to_owned()),
        crit: None,
    };
    let h = serde_json::to_vec(&header).map_err(|e| AuthError::Internal(e.to_string()))?;
    let p = serde_json::to_vec(claims).map_err(|e| AuthError::Internal(e.to_string()))?;
    let mut token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(h),
        URL_SAFE_NO_PAD.encode(p)
    );
    let sig = key.signing_key().sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
    Ok(token)
}

pub(crate) struct Expectations<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub leeway_secs: i64,
    pub now: OffsetDateTime,
}

pub(crate) fn verify(
    keys: &SigningKeys,
    token: &str,
    want: &Expectations<'_>,
) -> Result<Claims, AuthError> {
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::InvalidToken);
    };
    let header: Header = decode_json(h64)?;
    if header.alg != "EdDSA" || header.crit.is_some() {
        return Err(AuthError::InvalidToken);
    }
    let kid = header.kid.ok_or(AuthError::InvalidToken)?;
    let key = keys.verifying_key(&kid).ok_or(AuthError::InvalidToken)?;
    let sig_bytes = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| AuthError::InvalidToken)?;
    let sig = Signature::from_slice(&sig_bytes).map_err(|_| AuthError::InvalidToken)?;
    // Signed input is the exact ASCII of `header.payload` as received.
    let signed_len = h64.len() + 1 + p64.len();
    key.verify_strict(&token.as_bytes()[..signed_len], &sig)
        .map_err(|_| AuthError::InvalidToken)?;

    let mut claims: Claims = decode_json(p64)?;
    if claims.iss != want.issuer || claims.aud != want.audience {
        return Err(AuthError::InvalidToken);
    }
    let now = want.now.unix_timestamp();
    if claims.iat > now + want.leeway_secs {
        return Err(AuthError::InvalidToken);
    }
    if now >= claims.exp + want.leeway_secs {
        return Err(AuthError::TokenExpired);
    }
    claims.kid = kid;
    Ok(claims)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::InvalidToken)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::InvalidToken)
}
