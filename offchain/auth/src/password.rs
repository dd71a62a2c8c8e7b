//! argon2id password hashing and the password policy.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::AuthError;
use crate::config::PasswordHashing;

/// Longest password accepted: bounds hashing work per request.
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub(crate) fn hasher(p: PasswordHashing) -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(p.m_cost, p.t_cost, p.p_cost, None)
        .map_err(|e| AuthError::Misconfigured(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub(crate) fn hash(p: PasswordHashing, password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher(p)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Internal(format!("password hashing failed: {e}")))
}

/// Verifies with the parameters stored in the hash. `Ok(needs_rehash)` on match.
pub(crate) fn verify(p: PasswordHashing, password: &str, phc: &str) -> Result<bool, AuthError> {
    let parsed = PasswordHash::new(phc)
        .map_err(|_| AuthError::Internal("stored password hash is malformed".into()))?;
    match hasher(p)?.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => {
            let current = Params::try_from(&parsed).ok();
            let wanted = (p.m_cost, p.t_cost, p.p_cost);
            let stale = parsed.algorithm.as_str() != "argon2id"
                || current.is_none_or(|c| (c.m_cost(), c.t_cost(), c.p_cost()) != wanted);
            Ok(stale)
        }
        Err(argon2::password_hash::Error::Password) => Err(AuthError::InvalidCredentials),
        Err(e) => Err(AuthError::Internal(format!(
            "password verification failed: {e}"
        ))),
    }
}

/// NIST SP 800-63B style: length over composition rules.
pub(crate) fn check_policy(
    password: &str,
    email: Option<&str>,
    min_len: usize,
) -> Result<(), AuthError> {
    if password.chars().count() < min_len {
        return Err(AuthError::WeakPassword("too short"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::WeakPassword("too long"));
    }
    if let Some(email) = email {
        let p = password.trim().to_lowercase();
        let local = email.split('@').next().unwrap_or_default();
        if p == email || (!local.is_empty() && p == local) {
            return Err(AuthError::WeakPassword("must not equal the email address"));
        }
    }
    let first = password.chars().next();
    if first.is_some() && password.chars().all(|c| Some(c) == first) {
        return Err(AuthError::WeakPassword(
            "must not be a single repeated character",
        ));
    }
    Ok(())
}

/// Trimmed, lower-cased, with a minimal shape check (full validation is the
/// confirmation mail's job).
pub(crate) fn normalize_email(email: &str) -> Result<String, AuthError> {
    let e = email.trim().to_lowercase();
    let bad = || AuthError::InvalidInput("invalid email address".into());
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(bad());
    }
    let labels_ok = domain.split('.').count() >= 2 && domain.split('.').all(|l| !l.is_empty());
    if !labels_ok {
        return Err(bad());
    }
    Ok(e)
}
