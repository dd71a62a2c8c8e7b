//! Signing keys from a file or an environment variable. The key never reaches a log: the
//! wrapper's Debug prints the address only.

use std::path::Path;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("key is not 32 hex-encoded bytes")]
    Format,
    #[error("key is not a valid secp256k1 scalar")]
    Invalid,
    #[error("no key given: pass a key file or set {0}")]
    NotGiven(String),
}

/// A secp256k1 signing key (validator attestations or relayer transactions).
#[derive(Clone)]
pub struct SigningKey {
    signer: PrivateKeySigner,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("address", &self.signer.address())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// Parses `0x`-optional hex of 32 bytes (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let trimmed = text.trim();
        let hex_part = trimmed.strip_prefix("0x").unwrap_or(trimmed);
        let bytes = Zeroizing::new(hex::decode(hex_part).map_err(|_| KeyError::Format)?);
        if bytes.len() != 32 {
            return Err(KeyError::Format);
        }
        let signer = PrivateKeySigner::from_slice(&bytes).map_err(|_| KeyError::Invalid)?;
        Ok(Self { signer })
    }

    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        Self::from_hex(&text)
    }

    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let text =
            Zeroizing::new(std::env::var(var).map_err(|_| KeyError::MissingEnv(var.to_owned()))?);
        Self::from_hex(&text)
    }

    /// The file if given, else the environment variable.
    pub fn load(file: Option<&Path>, env_var: &str) -> Result<Self, KeyError> {
        match file {
            Some(path) => Self::from_file(path),
            None if std::env::var_os(env_var).is_some() => Self::from_env(env_var),
            None => Err(KeyError::NotGiven(env_var.to_owned())),
        }
    }

    pub fn from_b256(key: &B256) -> Result<Self, KeyError> {
        let signer = PrivateKeySigner::from_bytes(key).map_err(|_| KeyError::Invalid)?;
        Ok(Self { signer })
    }

    pub fn address(&self) -> Address {
        self.signer.address()
    }

    pub fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }
}
