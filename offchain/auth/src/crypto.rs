//! Small crypto helpers: random tokens, token hashing, TOTP-secret sealing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::AuthError;
use crate::config::TotpEncryptionKey;

/// Format version of sealed TOTP secrets (leaves room for key rotation).
const SEAL_V1: u8 = 1;

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// 256-bit random token, base64url.
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Tokens are 256-bit random, so a plain SHA-256 is enough at rest: no
/// dictionary to attack, and lookups stay a single index probe.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub(crate) fn seal_totp_secret(
    key: &TotpEncryptionKey,
    user: Uuid,
    secret: &[u8],
) -> Result<Vec<u8>, AuthError> {
    let cipher = ChaCha20Poly1305::new(key.0.as_ref().into());
    let nonce = random_bytes::<12>();
    // AAD binds the ciphertext to its user: it cannot be copied onto another row.
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: user.as_bytes(),
            },
        )
        .map_err(|_| AuthError::Internal("TOTP secret encryption failed".into()))?;
    let mut out = Vec::with_capacity(1 + 12 + ct.len());
    out.push(SEAL_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

pub(crate) fn open_totp_secret(
    key: &TotpEncryptionKey,
    user: Uuid,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AuthError> {
    if sealed.len() < 1 + 12 + 16 || sealed[0] != SEAL_V1 {
        return Err(AuthError::Internal(
            "stored TOTP secret has an unknown format".into(),
        ));
    }
    let cipher = ChaCha20Poly1305::new(key.0.as_ref().into());
    cipher
        .decrypt(
            Nonce::from_slice(&sealed[1..13]),
            Payload {
                msg: &sealed[13..],
                aad: user.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        // Wrong key in config, or a tampered row.
        .map_err(|_| {
            AuthError::Misconfigured("TOTP secret does not decrypt with the configured key".into())
        })
}
