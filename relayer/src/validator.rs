//! The validator node: observe final messages on its own view of the origin chain, sign each
//! one's attestation for its destination's current validator set into its own store, and
//! publish the attestations to its own location (ADR 0028).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::providers::DynProvider;

use crate::attestation::{Attestation, AttestationDir, AttestationError, WireMessage};
use crate::contract::AdvanciaBridge;
use crate::keys::SigningKey;
use crate::message::{self, Message, SignatureError};
use crate::source::{MessageSource, Refusal, SourceError};
use crate::store::{Store, StoreError, ValidatorStore};

#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("destination {domain}: {detail}")]
    Destination { domain: u32, detail: String },
    #[error(transparent)]
    Publish(#[from] AttestationError),
}

/// A chain messages are delivered to: what its attestations commit to.
pub trait Destination: Send + Sync {
    fn domain(&self) -> u32;
    /// The EIP-712 salt: the destination bridge contract (or program id) as bytes32.
    fn contract(&self) -> B256;
    /// The destination's current validator set version.
    fn set_version(&self) -> impl Future<Output = Result<u64, ValidatorError>> + Send;
}

/// Either kind of destination, so one validator can sign for EVM bridges and the Solana
/// program alike.
#[derive(Clone)]
pub enum AnyDestination {
    Evm(EvmDestination),
    Solana(crate::solana::SolanaDestination),
}

impl Destination for AnyDestination {
    fn domain(&self) -> u32 {
        match self {
            Self::Evm(d) => d.domain(),
            Self::Solana(d) => d.domain(),
        }
    }

    fn contract(&self) -> B256 {
        match self {
            Self::Evm(d) => d.contract(),
            Self::Solana(d) => d.contract(),
        }
    }

    async fn set_version(&self) -> Result<u64, ValidatorError> {
        match self {
            Self::Evm(d) => d.set_version().await,
            Self::Solana(d) => d.set_version().await,
        }
    }
}

/// An AdvanciaBridge on an EVM chain.
#[derive(Debug, Clone)]
pub struct EvmDestination {
    pub domain: u32,
    pub bridge: Address,
    pub provider: DynProvider,
}

impl Destination for EvmDestination {
    fn domain(&self) -> u32 {
        self.domain
    }

    fn contract(&self) -> B256 {
        message::address_word(self.bridge)
    }

    async fn set_version(&self) -> Result<u64, ValidatorError> {
        AdvanciaBridge::new(self.bridge, self.provider.clone())
            .setVersion()
            .call()
            .await
            .map_err(|e| ValidatorError::Destination {
                domain: self.domain,
                detail: e.to_string(),
            })
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    pub observed: usize,
    pub signed: usize,
    /// Messages for a destination this validator has no configuration for.
    pub unroutable: usize,
    /// Attestations written to the publication location.
    pub published: usize,
}

/// The validator's counters, served as Prometheus text by its HTTP endpoint.
#[derive(Debug, Default)]
pub struct ValidatorMetrics {
    observed: AtomicU64,
    signed: AtomicU64,
    published: AtomicU64,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
}

impl ValidatorMetrics {
    pub fn refused(&self, reason: &'static str) {
        if let Ok(mut r) = self.refusals.lock() {
            *r.entry(reason).or_default() += 1;
        }
    }

    /// Refusals counted for `reason` so far.
    pub fn refusals(&self, reason: &str) -> u64 {
        self.refusals
            .lock()
            .map(|r| r.get(reason).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn render(&self, validator: Address) -> String {
        use std::fmt::Write as _;
        let v = validator;
        let mut out = String::new();
        for (name, help, value) in [
            (
                "advancia_bridge_validator_observed_total",
                "Dispatches this validator observed on its own view of the origin chain.",
                &self.observed,
            ),
            (
                "advancia_bridge_validator_signed_total",
                "Attestations this validator signed.",
                &self.signed,
            ),
            (
                "advancia_bridge_validator_published_total",
                "Attestations written to this validator's publication location.",
                &self.published,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(
                out,
                "{name}{{validator=\"{v}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let name = "advancia_bridge_validator_refusals_total";
        let _ = writeln!(
            out,
            "# HELP {name} Claims and messages this validator refused to sign, by reason."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        if let Ok(r) = self.refusals.lock() {
            for (reason, n) in r.iter() {
                let _ = writeln!(out, "{name}{{validator=\"{v}\",reason=\"{reason}\"}} {n}");
            }
        }
        out
    }
}

pub struct Validator<S, D, St = Store> {
    source: S,
    destinations: HashMap<u32, D>,
    key: SigningKey,
    store: St,
    start_cursor: u64,
    publication: Option<AttestationDir>,
    metrics: std::sync::Arc<ValidatorMetrics>,
}

impl<S: MessageSource, D: Destination, St: ValidatorStore> Validator<S, D, St> {
    /// `start_cursor`: where to begin when the store has no cursor for this validator+source.
    pub fn new(
        source: S,
        destinations: Vec<D>,
        key: SigningKey,
        store: St,
        start_cursor: u64,
    ) -> Self {
        let destinations = destinations.into_iter().map(|d| (d.domain(), d)).collect();
        Self {
            source,
            destinations,
            key,
            store,
            start_cursor,
            publication: None,
            metrics: std::sync::Arc::default(),
        }
    }

    /// Publishes every attestation to `dir` (`attestation_{n}.json`, `latest_index.json`),
    /// with a signed announcement binding `location` (where relayers fetch from) to this key.
    pub fn publishing_to(
        mut self,
        dir: AttestationDir,
        location: &str,
    ) -> Result<Self, ValidatorError> {
        dir.announce(&crate::attestation::Announcement::sign(
            &self.key, location,
        )?)?;
        self.publication = Some(dir);
        Ok(self)
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    pub fn metrics(&self) -> std::sync::Arc<ValidatorMetrics> {
        self.metrics.clone()
    }

    /// Checks a claimed dispatch ("`claimed` was dispatched in `origin_tx`") against this
    /// validator's own node. A true claim is recorded as an observation (signed on the next
    /// step, like one the validator found itself); a false one is refused, counted by
    /// reason and logged. A claim alone never causes a signature.
    pub async fn observe_claim(
        &self,
        origin_tx: &[u8],
        claimed: &Message,
    ) -> Result<Result<B256, Refusal>, ValidatorError> {
        let claimed_id = message::message_id(claimed);
        let verdict = if claimed.originDomain != self.source.domain() {
            Err(Refusal::Malformed(format!(
                "origin {} is not this validator's origin {}",
                claimed.originDomain,
                self.source.domain()
            )))
        } else {
            self.source.verify(origin_tx, claimed, claimed_id).await?
        };
        match verdict {
            Ok(observed) => {
                self.store
                    .record_batch(
                        self.key.address(),
                        self.source.domain(),
                        &self.source.name(),
                        std::slice::from_ref(&observed),
                        None,
                    )
                    .await?;
                self.metrics.observed.fetch_add(1, Ordering::Relaxed);
                Ok(Ok(observed.id))
            }
            Err(refusal) => {
                self.metrics.refused(refusal.reason());
                tracing::warn!(
                    validator = %self.key.address(),
                    id = %claimed_id,
                    origin = claimed.originDomain,
                    sequence = claimed.sequence,
                    reason = refusal.reason(),
                    detail = %refusal,
                    "claimed dispatch refused"
                );
                Ok(Err(refusal))
            }
        }
    }

    /// Writes every signature above the location's latest index. Signing and publishing are
    /// separate steps: after a crash between them this republishes what is missing.
    async fn publish(&self) -> Result<usize, ValidatorError> {
        let Some(dir) = &self.publication else {
            return Ok(0);
        };
        let me = self.key.address();
        let mut published = 0;
        loop {
            let after = dir.latest()?.unwrap_or(0);
            let batch = self.store.unpublished(me, after, 500).await?;
            if batch.is_empty() {
                return Ok(published);
            }
            for s in batch {
                let Some(destination) = self.destinations.get(&s.message.destinationDomain) else {
                    continue;
                };
                let attestation = Attestation {
                    validator: me,
                    id: s.id,
                    message: WireMessage::from(&s.message),
                    origin_block: s.origin_block,
                    origin_tx: s.origin_tx.into(),
                    destination_contract: destination.contract(),
                    set_version: s.set_version,
                    signature: s.signature.into(),
                };
                dir.publish(s.publication, &attestation)?;
                published += 1;
                self.metrics.published.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Observes what became final since the cursor, then signs everything observed and not
    /// yet signed for each destination's current set version.
    pub async fn step(&self) -> Result<StepReport, ValidatorError> {
        let me = self.key.address();
        let source_name = self.source.name();
        let cursor = self
            .store
            .cursor(me, self.source.domain(), &source_name)
            .await?
            .unwrap_or(self.start_cursor);
        let batch = self.source.poll(cursor).await?;
        let mut report = StepReport {
            observed: batch.messages.len(),
            ..StepReport::default()
        };
        self.metrics
            .observed
            .fetch_add(batch.messages.len() as u64, Ordering::Relaxed);
        report.unroutable = batch
            .messages
            .iter()
            .filter(|m| !self.destinations.contains_key(&m.message.destinationDomain))
            .count();
        self.store
            .record_batch(
                me,
                self.source.domain(),
                &source_name,
                &batch.messages,
                Some(batch.next_cursor),
            )
            .await?;

        for destination in self.destinations.values() {
            let set_version = destination.set_version().await?;
            loop {
                let pending = self
                    .store
                    .messages_to_sign(me, destination.domain(), set_version, 500)
                    .await?;
                if pending.is_empty() {
                    break;
                }
                for (id, msg) in pending {
                    let digest = message::attestation_digest(
                        id,
                        msg.destinationDomain,
                        destination.contract(),
                        set_version,
                    );
                    let signature = message::sign(&self.key, digest)?;
                    match self
                        .store
                        .store_signature(me, id, &msg, set_version, &signature)
                        .await
                    {
                        Ok(()) => {
                            report.signed += 1;
                            self.metrics.signed.fetch_add(1, Ordering::Relaxed);
                        }
                        // Never signs; loud, and the other messages still get signed.
                        Err(e @ StoreError::Equivocation { .. }) => {
                            tracing::error!(error = %e, "equivocation refused");
                            self.metrics.refused("equivocation");
                            self.store.store_refusal(me, id).await?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        report.published = self.publish().await?;
        Ok(report)
    }

    /// Steps every `interval` until `shutdown` resolves; errors are logged and retried.
    pub async fn run(&self, interval: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.step().await {
                Ok(r) if r.observed > 0 || r.signed > 0 => {
                    tracing::info!(
                        observed = r.observed,
                        signed = r.signed,
                        unroutable = r.unroutable,
                        "validator step"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "validator step failed"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}
