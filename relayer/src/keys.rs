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

impl From<&SigningKey> for alloy::network::EthereumWallet {
    fn from(key: &SigningKey) -> Self {
        Self::from(key.signer.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HEX: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

    #[test]
    fn debug_shows_the_address_never_the_key() {
        let key = SigningKey::from_hex(&format!("0x{HEX}\n")).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.to_lowercase().contains(&HEX[..16]));
        assert_eq!(
            key.address(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse::<Address>()
                .unwrap()
        );
    }

    #[test]
    fn file_env_and_malformed_keys() {
        let path = std::env::temp_dir().join(format!("advancia-key-test-{}", std::process::id()));
        std::fs::write(&path, HEX).unwrap();
        let from_file = SigningKey::load(Some(&path), "ADVANCIA_TEST_KEY_UNSET").unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            from_file.address(),
            SigningKey::from_hex(HEX).unwrap().address()
        );
        assert!(matches!(
            SigningKey::load(None, "ADVANCIA_TEST_KEY_UNSET"),
            Err(KeyError::NotGiven(_))
        ));
        assert!(matches!(
            SigningKey::from_hex("0x1234"),
            Err(KeyError::Format)
        ));
        assert!(matches!(
            SigningKey::from_hex(&"zz".repeat(32)),
            Err(KeyError::Format)
        ));
        // Zero is not a valid secp256k1 scalar.
        assert!(matches!(
            SigningKey::from_hex(&"00".repeat(32)),
            Err(KeyError::Invalid)
        ));
        // Error messages never echo the input.
        let err = SigningKey::from_hex(&format!("{HEX}00"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(&HEX[..16]));
    }
}
