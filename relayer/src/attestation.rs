//! Signed attestations as validators publish them, and where relayers fetch them from.
//!
//! Like Hyperlane's checkpoint syncers: each validator writes its attestations, numbered
//! 1, 2, 3… in signing order, as `attestation_{n}.json` plus `latest_index.json` into a
//! location of its own (a directory, served read-only over HTTP by the validator), and signs an
//! `announcement.json` binding that location to its key. Any relayer reads them without
//! database access and checks every signature before use; nothing in a location is trusted
//! because of where it came from.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use serde::{Deserialize, Serialize};

use crate::keys::SigningKey;
use crate::message::{self, Message, SignatureError};

#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("{location}: {detail}")]
    Fetch { location: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {detail}")]
    Malformed { what: String, detail: String },
    #[error("attestation refused: {0}")]
    Invalid(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("location {0} is neither file:// nor http(s)://")]
    UnknownScheme(String),
}

/// The seven wire fields of a message, in a form that survives JSON (numbers as decimal
/// strings where they may exceed 2^53).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireMessage {
    pub origin_domain: u32,
    pub sequence: u64,
    pub sender: B256,
    pub destination_domain: u32,
    pub recipient: B256,
    pub asset: B256,
    pub amount: U256,
}

impl From<&Message> for WireMessage {
    fn from(m: &Message) -> Self {
        Self {
            origin_domain: m.originDomain,
            sequence: m.sequence,
            sender: m.sender,
            destination_domain: m.destinationDomain,
            recipient: m.recipient,
            asset: m.asset,
            amount: m.amount,
        }
    }
}

impl From<&WireMessage> for Message {
    fn from(m: &WireMessage) -> Self {
        Self {
            originDomain: m.origin_domain,
            sequence: m.sequence,
            sender: m.sender,
            destinationDomain: m.destination_domain,
            recipient: m.recipient,
            asset: m.asset,
            amount: m.amount,
        }
    }
}

/// One validator's signature over one message for one destination set version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    pub validator: Address,
    pub id: B256,
    pub message: WireMessage,
    /// Block (EVM) or slot (Solana) of the dispatch, as the validator saw it.
    pub origin_block: u64,
    /// Transaction hash (EVM) or signature (Solana) of the dispatch.
    pub origin_tx: Bytes,
    /// The EIP-712 salt: destination bridge (as a word) or program id.
    pub destination_contract: B256,
    pub set_version: u64,
    pub signature: Bytes,
}

impl Attestation {
    /// Checks everything a relayer relies on: the id is what the fields hash to, the
    /// attestation is for this destination, and the signature recovers to `validator`.
    pub fn verify(
        &self,
        destination_domain: u32,
        destination_contract: B256,
    ) -> Result<Message, AttestationError> {
        let message = Message::from(&self.message);
        if message::message_id(&message) != self.id {
            return Err(AttestationError::Invalid(format!(
                "id {} is not what the message fields hash to",
                self.id
            )));
        }
        if message.destinationDomain != destination_domain
            || self.destination_contract != destination_contract
        {
            return Err(AttestationError::Invalid(format!(
                "for destination {} / {}, not {destination_domain} / {destination_contract}",
                message.destinationDomain, self.destination_contract
            )));
        }
        let digest = message::attestation_digest(
            self.id,
            destination_domain,
            destination_contract,
            self.set_version,
        );
        let signer = message::recover(digest, &self.signature)?;
        if signer != self.validator {
            return Err(AttestationError::Invalid(format!(
                "signed by {signer}, claims {}",
                self.validator
            )));
        }
        Ok(message)
    }
}

const ANNOUNCEMENT_DOMAIN: &[u8] = b"advancia-bridge-announcement:";

fn announcement_digest(location: &str) -> B256 {
    let mut preimage = ANNOUNCEMENT_DOMAIN.to_vec();
    preimage.extend_from_slice(location.as_bytes());
    keccak256(preimage)
}

/// A validator's signed statement "my attestations are published at `location`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Announcement {
    pub validator: Address,
    pub location: String,
    pub signature: Bytes,
}

impl Announcement {
    pub fn sign(key: &SigningKey, location: &str) -> Result<Self, SignatureError> {
        let signature = message::sign(key, announcement_digest(location))?;
        Ok(Self {
            validator: key.address(),
            location: location.to_owned(),
            signature: Bytes::from(signature.to_vec()),
        })
    }

    /// The validator this announcement binds to `location`, if its signature holds.
    pub fn verify(&self) -> Result<Address, AttestationError> {
        let signer = message::recover(announcement_digest(&self.location), &self.signature)?;
        if signer != self.validator {
            return Err(AttestationError::Invalid(format!(
                "announcement signed by {signer}, claims {}",
                self.validator
            )));
        }
        Ok(signer)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct LatestIndex {
    index: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AttestationError + '_ {
    move |source| AttestationError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A validator's publication directory. Files are written to a temporary name, synced and
/// renamed, so a reader (or a crash) never sees half a file; `latest_index.json` moves only
/// after the attestation it names is in place.
#[derive(Debug, Clone)]
pub struct AttestationDir {
    root: PathBuf,
}

impl AttestationDir {
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, AttestationError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<(), AttestationError> {
        let path = self.root.join(name);
        let tmp = self.root.join(format!(".{name}.tmp"));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.root))
    }

    fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, AttestationError> {
        let path = self.root.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| AttestationError::Malformed {
                        what: path.display().to_string(),
                        detail: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, AttestationError> {
        serde_json::to_vec_pretty(value).map_err(|e| AttestationError::Malformed {
            what: "attestation".into(),
            detail: e.to_string(),
        })
    }

    pub fn announce(&self, announcement: &Announcement) -> Result<(), AttestationError> {
        self.write_atomically("announcement.json", &Self::to_json(announcement)?)
    }

    /// Writes attestation `index`; the latest index moves forward only (a republished older
    /// one after a crash leaves it alone).
    pub fn publish(&self, index: u64, attestation: &Attestation) -> Result<(), AttestationError> {
        self.write_atomically(
            &format!("attestation_{index}.json"),
            &Self::to_json(attestation)?,
        )?;
        if self.latest()?.is_none_or(|latest| latest < index) {
            self.write_atomically("latest_index.json", &Self::to_json(&LatestIndex { index })?)?;
        }
        Ok(())
    }

    pub fn latest(&self) -> Result<Option<u64>, AttestationError> {
        Ok(self
            .read_json::<LatestIndex>("latest_index.json")?
            .map(|l| l.index))
    }

    pub fn attestation(&self, index: u64) -> Result<Option<Attestation>, AttestationError> {
        self.read_json(&format!("attestation_{index}.json"))
    }

    pub fn announcement(&self) -> Result<Option<Announcement>, AttestationError> {
        self.read_json("announcement.json")
    }
}

/// Where a relayer reads one validator's attestations: `file:///dir` or the validator's
/// `http(s)://host:port` endpoint (`/v1/announcement`, `/v1/attestations/latest`,
/// `/v1/attestations/{n}`).
#[derive(Debug, Clone)]
pub enum Location {
    Dir(AttestationDir),
    Http { base: String, http: reqwest::Client },
}

impl Location {
    pub fn parse(location: &str) -> Result<Self, AttestationError> {
        if let Some(path) = location.strip_prefix("file://") {
            return Ok(Self::Dir(AttestationDir {
                root: PathBuf::from(path),
            }));
        }
        if location.starts_with("http://") || location.starts_with("https://") {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| AttestationError::Fetch {
                    location: location.to_owned(),
                    detail: e.to_string(),
                })?;
            return Ok(Self::Http {
                base: location.trim_end_matches('/').to_owned(),
                http,
            });
        }
        Err(AttestationError::UnknownScheme(location.to_owned()))
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        base: &str,
        http: &reqwest::Client,
        path: &str,
    ) -> Result<Option<T>, AttestationError> {
        let url = format!("{base}{path}");
        let fetch = |detail: String| AttestationError::Fetch {
            location: url.clone(),
            detail,
        };
        let response = http
            .get(&url)
            .send()
            .await
            .map_err(|e| fetch(e.to_string()))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(fetch(format!("HTTP {}", response.status())));
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| fetch(e.to_string()))
    }

    pub async fn announcement(&self) -> Result<Option<Announcement>, AttestationError> {
        match self {
            Self::Dir(dir) => dir.announcement(),
            Self::Http { base, http } => Self::get_json(base, http, "/v1/announcement").await,
        }
    }

    pub async fn latest(&self) -> Result<Option<u64>, AttestationError> {
        match self {
            Self::Dir(dir) => dir.latest(),
            Self::Http { base, http } => {
                Ok(
                    Self::get_json::<LatestIndex>(base, http, "/v1/attestations/latest")
                        .await?
                        .map(|l| l.index),
                )
            }
        }
    }

    pub async fn attestation(&self, index: u64) -> Result<Option<Attestation>, AttestationError> {
        match self {
            Self::Dir(dir) => dir.attestation(index),
            Self::Http { base, http } => {
                Self::get_json(base, http, &format!("/v1/attestations/{index}")).await
            }
        }
    }
}

/// Body of `GET /v1/attestations/latest`.
pub fn latest_body(index: u64) -> serde_json::Value {
    serde_json::json!({ "index": index })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_b256(&B256::repeat_byte(byte)).unwrap()
    }

    fn attestation(signer: &SigningKey) -> Attestation {
        let message = Message {
            originDomain: 7,
            sequence: 3,
            sender: B256::repeat_byte(1),
            destinationDomain: 9,
            recipient: B256::repeat_byte(2),
            asset: B256::ZERO,
            amount: U256::from(1_500u64),
        };
        let id = message::message_id(&message);
        let contract = B256::repeat_byte(0xCC);
        let sig = message::sign(signer, message::attestation_digest(id, 9, contract, 4)).unwrap();
        Attestation {
            validator: signer.address(),
            id,
            message: WireMessage::from(&message),
            origin_block: 10,
            origin_tx: Bytes::from(vec![0xAB; 64]),
            destination_contract: contract,
            set_version: 4,
            signature: Bytes::from(sig.to_vec()),
        }
    }

    #[test]
    fn a_published_attestation_round_trips_and_verifies() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AttestationDir::create(tmp.path()).unwrap();
        assert_eq!(dir.latest().unwrap(), None);
        let a = attestation(&key(0x11));
        dir.publish(1, &a).unwrap();
        dir.publish(2, &a).unwrap();
        // Republishing an older index after a crash does not move latest back.
        dir.publish(1, &a).unwrap();
        assert_eq!(dir.latest().unwrap(), Some(2));
        let back = dir.attestation(1).unwrap().unwrap();
        assert_eq!(back, a);
        assert_eq!(
            back.verify(9, B256::repeat_byte(0xCC)).unwrap().amount,
            U256::from(1_500u64)
        );
    }

    #[test]
    fn tampered_attestations_are_refused() {
        let a = attestation(&key(0x11));
        let contract = B256::repeat_byte(0xCC);
        // Amount raised: the id no longer matches the fields.
        let mut more = a.clone();
        more.message.amount = U256::from(1_000_000u64);
        assert!(matches!(
            more.verify(9, contract),
            Err(AttestationError::Invalid(_))
        ));
        // Someone else's signature under this validator's name.
        let mut forged = a.clone();
        forged.signature = attestation(&key(0x22)).signature;
        assert!(matches!(
            forged.verify(9, contract),
            Err(AttestationError::Invalid(_))
        ));
        // For another destination contract.
        assert!(a.verify(9, B256::repeat_byte(0xDD)).is_err());
        // Another set version than the one signed.
        let mut other_set = a;
        other_set.set_version = 5;
        assert!(other_set.verify(9, contract).is_err());
    }

    #[test]
    fn announcements_bind_a_location_to_a_key() {
        let k = key(0x11);
        let a = Announcement::sign(&k, "http://validator-1:9300").unwrap();
        assert_eq!(a.verify().unwrap(), k.address());
        let mut moved = a.clone();
        moved.location = "http://attacker:9300".into();
        assert!(moved.verify().is_err());
        let mut claimed = a;
        claimed.validator = key(0x22).address();
        assert!(claimed.verify().is_err());
    }
}
