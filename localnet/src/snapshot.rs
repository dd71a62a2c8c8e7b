//! Snapshot file: the accounts a fresh genesis does not recreate, the faucet key and the slot,
//! so a restarted demo node resumes where it stopped. Transaction history is not kept.

use std::path::Path;

use serde::{Deserialize, Serialize};
use solana_account::Account;
use solana_clock::Slot;
use solana_pubkey::Pubkey;

const MAGIC: &[u8; 8] = b"ADVLNET1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub slot: Slot,
    pub faucet_secret: [u8; 32],
    pub accounts: Vec<(Pubkey, Account)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot i/o on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not an advancia-localnet snapshot")]
    BadMagic(String),
    #[error("snapshot {path} is corrupt: {source}")]
    Decode {
        path: String,
        source: bincode::Error,
    },
}

impl Snapshot {
    /// Reads a snapshot; `Ok(None)` when the file does not exist yet.
    pub fn load(path: &Path) -> Result<Option<Self>, SnapshotError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SnapshotError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| SnapshotError::BadMagic(path.display().to_string()))?;
        bincode::deserialize(body)
            .map(Some)
            .map_err(|source| SnapshotError::Decode {
                path: path.display().to_string(),
                source,
            })
    }

    /// Writes atomically (temp file + rename) so a crash never leaves half a snapshot.
    pub fn save(&self, path: &Path) -> Result<(), SnapshotError> {
        let io = |source| SnapshotError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut bytes = MAGIC.to_vec();
        bincode::serialize_into(&mut bytes, self).map_err(|source| SnapshotError::Decode {
            path: path.display().to_string(),
            source,
        })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}
