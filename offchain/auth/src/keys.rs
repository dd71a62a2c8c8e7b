//! Ed25519 signing keys with `kid`s: one active key signs, older keys keep
//! verifying until every token they signed has expired (rotation).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{AuthError, Secret};

/// DER of a PKCS#8 v1/v2 Ed25519 private key up to the 32-byte seed (RFC 8410).
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// From the algorithm identifier on: identical in v1 and v2.
const PKCS8_ALG_AND_SEED_HDR: [u8; 11] = [
    0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// One Ed25519 private key with its key id.
#[derive(Clone)]
pub struct Ed25519Key {
    kid: String,
    key: SigningKey,
}

impl std::fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Key")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Ed25519Key {
    /// The default `kid` is the RFC 7638 JWK thumbprint, so the same key
    /// always gets the same id without extra configuration.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let seed = Zeroizing::new(seed);
        let key = SigningKey::from_bytes(&seed);
        let kid = jwk_thumbprint(&key.verifying_key());
        Self { kid, key }
    }

    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        Self::from_seed(*seed)
    }

    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = kid.into();
        self
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8, as `openssl genpkey -algorithm ed25519` writes).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, AuthError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PRIVATE KEY-----")
            .collect();
        let der = Zeroizing::new(
            STANDARD
                .decode(body.as_bytes())
                .map_err(|_| bad_key("PEM body is not base64"))?,
        );
        Self::from_pkcs8_der(&der)
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, AuthError> {
        // SEQUENCE { INTEGER version(0|1), AlgorithmIdentifier(1.3.101.112), OCTET STRING { OCTET STRING seed } [, publicKey] }
        let ok_header = der.len() >= 48
            && der[0] == 0x30
            && der[2..4] == [0x02, 0x01]
            && (der[4] == 0 || der[4] == 1)
            && der[5..16] == PKCS8_ALG_AND_SEED_HDR;
        if !ok_header {
            return Err(bad_key("not a PKCS#8 Ed25519 private key"));
        }
        let seed: [u8; 32] = der[16..48].try_into().map_err(|_| bad_key("short key"))?;
        let key = Self::from_seed(seed);
        // v2 carries the public key ([1] BIT STRING); it must match the seed.
        if der.len() == 83
            && der[48..51] == [0x81, 0x21, 0x00]
            && der[51..83] != key.verifying_key().to_bytes()
        {
            return Err(bad_key("PKCS#8 public key does not match the private key"));
        }
        Ok(key)
    }

    pub fn to_pkcs8_pem(&self) -> Secret {
        let mut der = Zeroizing::new(PKCS8_V1_PREFIX.to_vec());
        der.extend_from_slice(self.key.as_bytes());
        let b64 = Zeroizing::new(STANDARD.encode(der.as_slice()));
        Secret::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            b64.as_str()
        ))
    }

    /// Text: PKCS#8 PEM, 64 hex characters or base64 of the 32-byte seed.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let t = text.trim();
        if t.starts_with("-----BEGIN") {
            return Self::from_pkcs8_pem(t);
        }
        let bytes = Zeroizing::new(
            if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex::decode(t).map_err(|_| bad_key("bad hex"))?
            } else {
                STANDARD
                    .decode(t)
                    .map_err(|_| bad_key("expected PEM, hex or base64 seed"))?
            },
        );
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| bad_key("seed must be 32 bytes"))?;
        Ok(Self::from_seed(seed))
    }

    /// A file holding PEM/hex/base64 text, or exactly 32 raw seed bytes.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
            AuthError::Misconfigured(format!("cannot read signing key {}: {e}", path.display()))
        })?);
        if let Ok(seed) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(Self::from_seed(seed));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| bad_key("key file is neither text nor a 32-byte seed"))?;
        Self::parse(text)
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

fn bad_key(why: &str) -> AuthError {
    AuthError::Misconfigured(format!("signing key: {why}"))
}

/// RFC 7638 thumbprint of an OKP key: SHA-256 over the canonical JWK members.
pub fn jwk_thumbprint(key: &VerifyingKey) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(key.as_bytes())
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The active signing key plus retired keys that still verify.
#[derive(Clone)]
pub struct SigningKeys {
    active: Ed25519Key,
    verify_only: Vec<(String, VerifyingKey)>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("active_kid", &self.active.kid)
            .field(
                "verify_only_kids",
                &self
                    .verify_only
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl SigningKeys {
    pub fn new(active: Ed25519Key) -> Self {
        Self {
            active,
            verify_only: Vec::new(),
        }
    }

    /// A fresh random key: dev and tests.
    pub fn generate() -> Self {
        Self::new(Ed25519Key::generate())
    }

    /// Makes `new_active` the signing key; the previous one keeps verifying.
    pub fn rotate(mut self, new_active: Ed25519Key) -> Self {
        let old = std::mem::replace(&mut self.active, new_active);
        self.verify_only.retain(|(k, _)| *k != old.kid);
        self.verify_only
            .push((old.kid.clone(), old.verifying_key()));
        self
    }

    /// Adds a retired public key (its private half may already be destroyed).
    pub fn with_verification_key(mut self, kid: impl Into<String>, key: VerifyingKey) -> Self {
        let kid = kid.into();
        self.verify_only.retain(|(k, _)| *k != kid);
        self.verify_only.push((kid, key));
        self
    }

    /// Drops a retired key once no unexpired token can carry its `kid`.
    pub fn without_key(mut self, kid: &str) -> Self {
        self.verify_only.retain(|(k, _)| k != kid);
        self
    }

    /// From the environment:
    /// - `AUTH_SIGNING_KEY_FILE` (PEM, hex/base64 seed text or a raw 32-byte seed) or
    ///   `AUTH_SIGNING_KEY` (the same text inline); optional `AUTH_SIGNING_KID`;
    /// - `AUTH_RETIRED_PUBLIC_KEYS`: comma-separated `kid:x` pairs, `x` being the
    ///   base64url public key as published in the JWKS.
    pub fn from_env() -> Result<Self, AuthError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any variable source (a map in tests, a secrets store).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, AuthError> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let active = if let Some(path) = var("AUTH_SIGNING_KEY_FILE") {
            Ed25519Key::from_file(Path::new(&path))?
        } else if let Some(text) = var("AUTH_SIGNING_KEY").map(Zeroizing::new) {
            Ed25519Key::parse(&text)?
        } else {
            return Err(AuthError::Misconfigured(
                "set AUTH_SIGNING_KEY_FILE or AUTH_SIGNING_KEY".into(),
            ));
        };
        let active = match var("AUTH_SIGNING_KID") {
            Some(kid) => active.with_kid(kid),
            None => active,
        };
        let mut keys = Self::new(active);
        if let Some(list) = var("AUTH_RETIRED_PUBLIC_KEYS") {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (kid, x) = item
                    .split_once(':')
                    .ok_or_else(|| bad_key("AUTH_RETIRED_PUBLIC_KEYS entries are kid:x"))?;
                keys = keys.with_verification_key(kid, parse_public_key(x)?);
            }
        }
        Ok(keys)
    }

    pub fn active_kid(&self) -> &str {
        &self.active.kid
    }

    pub(crate) fn active(&self) -> &Ed25519Key {
        &self.active
    }

    pub(crate) fn verifying_key(&self, kid: &str) -> Option<VerifyingKey> {
        if self.active.kid == kid {
            return Some(self.active.verifying_key());
        }
        self.verify_only
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, v)| *v)
    }

    /// JWKS (RFC 7517) with RFC 8037 OKP keys; active key first.
    pub fn jwks(&self) -> serde_json::Value {
        let jwk = |kid: &str, key: &VerifyingKey| {
            serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
                "kid": kid,
                "alg": "EdDSA",
                "use": "sig",
            })
        };
        let mut keys = vec![jwk(&self.active.kid, &self.active.verifying_key())];
        keys.extend(self.verify_only.iter().map(|(k, v)| jwk(k, v)));
        serde_json::json!({ "keys": keys })
    }
}

fn parse_public_key(x: &str) -> Result<VerifyingKey, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(x.trim())
        .map_err(|_| bad_key("public key is not base64url"))?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| bad_key("public key must be 32 bytes"))?;
    VerifyingKey::from_bytes(&arr).map_err(|_| bad_key("not an Ed25519 public key"))
}
