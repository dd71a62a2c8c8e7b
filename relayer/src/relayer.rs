//! The relayer node: gathers M-of-N attestations from the store, simulates `process` on the
//! destination, submits it and tracks the receipt to the confirmation depth. Queue and retry
//! state live in Postgres; the signed transaction is stored before it is broadcast, so a
//! restart rebroadcasts the same bytes, and the on-chain processed flag is checked before
//! anything new is sent: a message is delivered once whatever the crash point.

use std::future::Future;
use std::time::Duration;

use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;

use crate::contract::{AdvanciaBridge, bridge_error_name};
use crate::keys::SigningKey;
use crate::message::{self, Message};
use crate::store::{Delivery, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RelayerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("destination RPC: {0}")]
    Rpc(String),
}

fn rpc(e: impl std::fmt::Display) -> RelayerError {
    RelayerError::Rpc(e.to_string())
}

#[derive(Debug, Clone)]
pub struct RelayerConfig {
    /// Blocks on top of the delivering transaction's block before it counts as delivered.
    pub confirmations: u64,
    /// Retry delay after the n-th failure: min(base * 2^n, max).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How soon a submitted transaction or a message waiting for signatures is looked at again.
    pub poll: Duration,
    /// Deliveries handled per step.
    pub batch: i64,
    /// When several relayers serve one destination: this one's share of the messages.
    pub share: Option<Share>,
}

/// Relayer `index` of `count` delivers the messages whose id falls in its share at once, and
/// any other message only once it has waited `takeover_after` (its owner is down or slow).
/// Relayers racing over every message at once would both pass simulation and both pay for a
/// transaction, one of which reverts; with shares, a message another relayer delivered is
/// found processed (or fails simulation) before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub index: u32,
    pub count: u32,
    pub takeover_after: Duration,
}

impl Share {
    pub fn owns(&self, id: B256) -> bool {
        let head = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        self.count == 0 || head % self.count == self.index
    }
}

impl Default for RelayerConfig {
    fn default() -> Self {
        Self {
            confirmations: 1,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            poll: Duration::from_secs(1),
            batch: 100,
            share: None,
        }
    }
}

/// What happened to one delivery in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Another relayer (or an earlier run whose receipt we lost) delivered it.
    AlreadyDelivered,
    Submitted(B256),
    AwaitingConfirmations,
    /// Another relayer's share, not yet waited on for long enough.
    Deferred,
    AwaitingSignatures {
        have: usize,
        need: usize,
    },
    /// Failed with this reason (a bridge error name, "reverted", "rpc", ...); retried later.
    Failed(String),
    /// Failed for good (the message can never be processed as it is).
    Rejected(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    pub enqueued: u64,
    pub outcomes: Vec<(B256, Outcome)>,
}

impl StepReport {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.outcomes.iter().filter(|(_, o)| f(o)).count()
    }
}

/// The destination's validator set as read at the start of a step.
struct ValidatorSet {
    members: Vec<Address>,
    version: u64,
    threshold: usize,
}

/// Bridge errors that no retry can fix.
const PERMANENT: &[&str] = &["InvalidRecipient", "InvalidAsset", "WrongDestinationDomain"];

pub struct Relayer {
    store: Store,
    sync: Option<crate::gather::AttestationSync>,
    races_lost: std::sync::Arc<std::sync::atomic::AtomicU64>,
    provider: DynProvider,
    bridge: Address,
    domain: u32,
    chain_id: u64,
    key: SigningKey,
    wallet: EthereumWallet,
    config: RelayerConfig,
}

impl Relayer {
    /// Connects to the destination: reads its chain id and the bridge's local domain.
    pub async fn connect(
        store: Store,
        provider: DynProvider,
        bridge: Address,
        key: SigningKey,
        config: RelayerConfig,
    ) -> Result<Self, RelayerError> {
        let chain_id = provider.get_chain_id().await.map_err(rpc)?;
        let domain = AdvanciaBridge::new(bridge, provider.clone())
            .localDomain()
            .call()
            .await
            .map_err(rpc)?;
        let wallet = EthereumWallet::from(key.signer().clone());
        Ok(Self {
            store,
            sync: None,
            races_lost: std::sync::Arc::default(),
            provider,
            bridge,
            domain,
            chain_id,
            key,
            wallet,
            config,
        })
    }

    pub fn domain(&self) -> u32 {
        self.domain
    }

    /// Reads attestations from the validators' announced `locations` each step (instead of
    /// expecting them in this relayer's store).
    pub fn with_attestations_from(
        mut self,
        locations: &[String],
    ) -> Result<Self, crate::attestation::AttestationError> {
        self.sync = Some(crate::gather::AttestationSync::new(
            self.store.clone(),
            locations,
            self.domain,
            message::address_word(self.bridge),
        )?);
        Ok(self)
    }

    pub fn attestation_metrics(&self) -> Option<std::sync::Arc<crate::gather::GatherMetrics>> {
        self.sync.as_ref().map(|s| s.metrics())
    }

    /// Messages another relayer delivered first (found processed before or in simulation:
    /// no fee spent), since start.
    pub fn races_lost(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.races_lost.clone()
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
        self.config
            .backoff_base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.config.backoff_max)
    }

    fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    /// Queues new messages for this destination, then works through the due deliveries.
    pub async fn step(&self) -> Result<StepReport, RelayerError> {
        if let Some(sync) = &self.sync {
            let members = AdvanciaBridge::new(self.bridge, self.provider.clone())
                .validators()
                .call()
                .await
                .map_err(rpc)?;
            sync.step(&members).await?;
        }
        let enqueued = self.store.enqueue(self.domain).await?;
        let due = self.store.due(self.domain, self.config.batch).await?;
        let mut report = StepReport {
            enqueued,
            outcomes: Vec::with_capacity(due.len()),
        };
        if due.is_empty() {
            return Ok(report);
        }
        let bridge = AdvanciaBridge::new(self.bridge, self.provider.clone());
        // Read once per step; a set change in between makes the simulation fail with
        // WrongSetVersion, which is retried with the new state next step.
        let set = ValidatorSet {
            members: bridge.validators().call().await.map_err(rpc)?,
            version: bridge.setVersion().call().await.map_err(rpc)?,
            threshold: usize::try_from(bridge.threshold().call().await.map_err(rpc)?)
                .unwrap_or(usize::MAX),
        };
        for delivery in due {
            let id = delivery.id;
            if let Some(share) = self.config.share
                && delivery.status != "submitted"
                && !share.owns(id)
                && delivery.age < share.takeover_after
            {
                let wait = share.takeover_after - delivery.age;
                self.store.recheck_later(id, Self::ms(wait)).await?;
                report.outcomes.push((id, Outcome::Deferred));
                continue;
            }
            let outcome = match self.handle(&bridge, &set, &delivery).await {
                Ok(outcome) => outcome,
                Err(RelayerError::Rpc(detail)) => {
                    let delay = self.backoff(delivery.attempts);
                    self.store
                        .retry_later(id, "rpc", &detail, Self::ms(delay), true, false)
                        .await?;
                    Outcome::Failed("rpc".into())
                }
                Err(e) => return Err(e),
            };
            match &outcome {
                Outcome::AlreadyDelivered => {
                    self.races_lost
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(id = %id, "already delivered by another relayer; nothing sent")
                }
                Outcome::Failed(reason) | Outcome::Rejected(reason) => {
                    tracing::warn!(id = %id, reason = %reason, "delivery failed")
                }
                Outcome::Delivered => tracing::info!(id = %id, "delivered"),
                _ => tracing::debug!(id = %id, outcome = ?outcome, "delivery step"),
            }
            report.outcomes.push((id, outcome));
        }
        Ok(report)
    }

    async fn handle(
        &self,
        bridge: &AdvanciaBridge::AdvanciaBridgeInstance<DynProvider>,
        set: &ValidatorSet,
        delivery: &Delivery,
    ) -> Result<Outcome, RelayerError> {
        let id = delivery.id;
        if delivery.status == "submitted"
            && let (Some(hash), Some(raw)) = (delivery.tx_hash, delivery.raw_tx.as_deref())
        {
            return self.track(bridge, delivery, hash, raw).await;
        }
        // Nothing of ours in flight: if the message landed anyway, there is nothing to send.
        if bridge.processed(id).call().await.map_err(rpc)? {
            self.store.mark_delivered(id, None, None).await?;
            return Ok(Outcome::AlreadyDelivered);
        }

        let (set_version, need) = (set.version, set.threshold);
        let digest = message::message_digest(
            &delivery.message,
            message::address_word(self.bridge),
            set_version,
        );
        // Only signatures that recover to their claimed, current member count.
        let usable: Vec<(Address, Vec<u8>)> = self
            .store
            .signatures(id, set_version)
            .await?
            .into_iter()
            .filter(|(validator, sig)| {
                set.members.contains(validator)
                    && message::recover(digest, sig).ok() == Some(*validator)
            })
            .collect();
        if usable.len() < need {
            let detail = format!(
                "{} of {need} signatures at set version {set_version}",
                usable.len()
            );
            self.store
                .retry_later(
                    id,
                    "awaiting_signatures",
                    &detail,
                    Self::ms(self.config.poll),
                    false,
                    false,
                )
                .await?;
            return Ok(Outcome::AwaitingSignatures {
                have: usable.len(),
                need,
            });
        }
        let signatures: Vec<Bytes> = message::ordered_for_submission(usable, need)
            .into_iter()
            .map(|(_, sig)| Bytes::from(sig))
            .collect();

        let call = bridge
            .process(delivery.message.clone(), set_version, signatures)
            .from(self.key.address());
        // Simulation: a revert here costs nothing and names the failed check.
        if let Err(e) = call.call().await {
            let Some(name) = e.as_revert_data().and_then(|data| bridge_error_name(&data)) else {
                return Err(rpc(e));
            };
            return self
                .simulation_failed(delivery, &name, &e.to_string())
                .await;
        }

        let from = self.key.address();
        let nonce = self
            .provider
            .get_transaction_count(from)
            .pending()
            .await
            .map_err(rpc)?;
        let fees = self.provider.estimate_eip1559_fees().await.map_err(rpc)?;
        let mut request = TransactionRequest::default()
            .with_from(from)
            .with_to(self.bridge)
            .with_input(call.calldata().clone())
            .with_chain_id(self.chain_id)
            .with_nonce(nonce)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let gas = self
            .provider
            .estimate_gas(request.clone())
            .await
            .map_err(rpc)?;
        // Headroom: the estimate is exact for the simulated state, storage may differ by then.
        request.set_gas_limit(gas.saturating_add(gas / 5));
        let envelope = request.build(&self.wallet).await.map_err(rpc)?;
        let hash = *envelope.tx_hash();
        let raw = envelope.encoded_2718();
        // Stored first: if we die after the broadcast, the restart finds and rebroadcasts it.
        self.store.mark_submitted(id, hash, &raw, nonce).await?;
        if let Err(e) = self.provider.send_raw_transaction(&raw).await {
            // The stored transaction is tracked (and rebroadcast) on the next step.
            tracing::warn!(id = %id, error = %e, "broadcast failed; will rebroadcast");
        }
        Ok(Outcome::Submitted(hash))
    }

    /// A transaction of ours is stored: find its receipt or rebroadcast it.
    async fn track(
        &self,
        bridge: &AdvanciaBridge::AdvanciaBridgeInstance<DynProvider>,
        delivery: &Delivery,
        hash: B256,
        raw: &[u8],
    ) -> Result<Outcome, RelayerError> {
        let id = delivery.id;
        match self
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(rpc)?
        {
            Some(receipt) => {
                let head = self.provider.get_block_number().await.map_err(rpc)?;
                let block = receipt.block_number.unwrap_or(head);
                if head.saturating_sub(block) + 1 < self.config.confirmations {
                    self.store
                        .recheck_later(id, Self::ms(self.config.poll))
                        .await?;
                    return Ok(Outcome::AwaitingConfirmations);
                }
                if receipt.status() {
                    self.store
                        .mark_delivered(id, Some(block), Some(receipt.gas_used))
                        .await?;
                    return Ok(Outcome::Delivered);
                }
                if bridge.processed(id).call().await.map_err(rpc)? {
                    self.store.mark_delivered(id, None, None).await?;
                    return Ok(Outcome::AlreadyDelivered);
                }
                let delay = self.backoff(delivery.attempts);
                self.store
                    .retry_later(
                        id,
                        "reverted",
                        &format!("transaction {hash} reverted"),
                        Self::ms(delay),
                        true,
                        false,
                    )
                    .await?;
                Ok(Outcome::Failed("reverted".into()))
            }
            None => {
                if bridge.processed(id).call().await.map_err(rpc)? {
                    // Delivered by a transaction that is not ours.
                    self.store.mark_delivered(id, None, None).await?;
                    return Ok(Outcome::AlreadyDelivered);
                }
                let account_nonce = self
                    .provider
                    .get_transaction_count(self.key.address())
                    .await
                    .map_err(rpc)?;
                if delivery.tx_nonce.is_some_and(|n| n < account_nonce) {
                    // Our nonce went to another transaction and ours never landed: build anew.
                    self.store
                        .retry_later(
                            id,
                            "replaced",
                            &format!("nonce of {hash} used by another transaction"),
                            0,
                            true,
                            false,
                        )
                        .await?;
                    return Ok(Outcome::Failed("replaced".into()));
                }
                // Same bytes, same hash: a no-op if the node already has it.
                if let Err(e) = self.provider.send_raw_transaction(raw).await {
                    tracing::debug!(id = %id, error = %e, "rebroadcast");
                }
                self.store
                    .recheck_later(id, Self::ms(self.config.poll))
                    .await?;
                Ok(Outcome::Submitted(hash))
            }
        }
    }

    async fn simulation_failed(
        &self,
        delivery: &Delivery,
        name: &str,
        detail: &str,
    ) -> Result<Outcome, RelayerError> {
        let id = delivery.id;
        if name == "AlreadyProcessed" {
            self.store.mark_delivered(id, None, None).await?;
            return Ok(Outcome::AlreadyDelivered);
        }
        let permanent = PERMANENT.contains(&name);
        let delay = self.backoff(delivery.attempts);
        self.store
            .retry_later(id, name, detail, Self::ms(delay), true, permanent)
            .await?;
        Ok(if permanent {
            Outcome::Rejected(name.to_owned())
        } else {
            Outcome::Failed(name.to_owned())
        })
    }

    /// Steps until `shutdown` resolves; a step with work in flight runs again right away.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let busy = match self.step().await {
                Ok(r) => r
                    .outcomes
                    .iter()
                    .any(|(_, o)| matches!(o, Outcome::Submitted(_))),
                Err(e) => {
                    tracing::warn!(error = %e, "relayer step failed");
                    false
                }
            };
            let pause = if busy {
                Duration::from_millis(20)
            } else {
                self.config.poll
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Messages are public data; kept here so callers need not import the contract module.
pub type BridgeMessage = Message;
