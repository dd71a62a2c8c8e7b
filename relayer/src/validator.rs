//! The validator node: observe final messages on a source, sign each one's attestation for
//! its destination's current validator set, publish to Postgres.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::providers::DynProvider;

use crate::contract::AdvanciaBridge;
use crate::keys::SigningKey;
use crate::message::{self, SignatureError};
use crate::source::{MessageSource, SourceError};
use crate::store::{Store, StoreError};

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
}

pub struct Validator<S, D> {
    source: S,
    destinations: HashMap<u32, D>,
    key: SigningKey,
    store: Store,
    start_cursor: u64,
}

impl<S: MessageSource, D: Destination> Validator<S, D> {
    /// `start_cursor`: where to begin when the store has no cursor for this validator+source.
    pub fn new(
        source: S,
        destinations: Vec<D>,
        key: SigningKey,
        store: Store,
        start_cursor: u64,
    ) -> Self {
        let destinations = destinations.into_iter().map(|d| (d.domain(), d)).collect();
        Self {
            source,
            destinations,
            key,
            store,
            start_cursor,
        }
    }

    pub fn address(&self) -> Address {
        self.key.address()
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
                batch.next_cursor,
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
                        Ok(()) => report.signed += 1,
                        // Never signs; loud, and the other messages still get signed.
                        Err(e @ StoreError::Equivocation { .. }) => {
                            tracing::error!(error = %e, "equivocation refused");
                            self.store.store_refusal(me, id).await?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
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
