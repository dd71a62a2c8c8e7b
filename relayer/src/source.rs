//! Where validators read dispatched messages from: always the validator's own RPC endpoint,
//! never someone else's database (ADR 0028). EVM: the bridge's `Dispatch` logs at a
//! confirmation depth ([`EvmSource`]). Solana: the program's `BridgeDispatched` events in
//! finalized transactions ([`SolanaRpcSource`]).
//!
//! Both can also check one claimed dispatch ("message M was dispatched in transaction T")
//! against the chain ([`MessageSource::verify`]): the claim is signed only if the chain,
//! as this validator sees it, holds exactly that event at its finality rule.

use std::future::Future;

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};

use crate::contract::AdvanciaBridge;
use crate::message::{Message, message_id};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source RPC: {0}")]
    Rpc(String),
    #[error("event {tx}#{log_index}: {reason}")]
    InvalidEvent {
        tx: B256,
        log_index: u64,
        reason: String,
    },
}

/// A message as one validator saw it on the origin chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedMessage {
    pub message: Message,
    pub id: B256,
    /// Block (EVM) or slot (Solana) of the dispatch.
    pub origin_block: u64,
    /// Transaction hash (32 bytes) or Solana signature (64 bytes).
    pub origin_tx: Vec<u8>,
}

/// A batch of messages that reached the source's finality rule, and the next cursor.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub messages: Vec<ObservedMessage>,
    pub next_cursor: u64,
}

/// Why a claimed dispatch is not signed. Counted by reason in the validator's metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The transaction is unknown to this validator's node at its finality rule: never sent,
    /// dropped with its fork, or not final yet.
    #[error("transaction not found at the finality rule (dropped, forged or not final yet)")]
    NotFinal,
    #[error("the transaction failed on-chain")]
    FailedTransaction,
    #[error("the transaction holds no dispatch of sequence {0}")]
    NoDispatch(u64),
    #[error("the chain's dispatch differs from the claim in {0}")]
    Mismatch(String),
    #[error("malformed claim: {0}")]
    Malformed(String),
}

impl Refusal {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFinal => "not_final",
            Self::FailedTransaction => "failed_transaction",
            Self::NoDispatch(_) => "no_dispatch",
            Self::Mismatch(_) => "mismatch",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// The fields of `claimed` that differ from `actual`, for a refusal that says what was wrong.
pub fn differing_fields(claimed: &Message, actual: &Message) -> Vec<&'static str> {
    let mut out = Vec::new();
    if claimed.originDomain != actual.originDomain {
        out.push("origin");
    }
    if claimed.sequence != actual.sequence {
        out.push("sequence");
    }
    if claimed.sender != actual.sender {
        out.push("sender");
    }
    if claimed.destinationDomain != actual.destinationDomain {
        out.push("destination");
    }
    if claimed.recipient != actual.recipient {
        out.push("recipient");
    }
    if claimed.asset != actual.asset {
        out.push("asset");
    }
    if claimed.amount != actual.amount {
        out.push("amount");
    }
    out
}

/// Picks the dispatch of `claimed.sequence` among those a transaction holds and compares it
/// field by field with the claim (and the claimed id with what the fields hash to).
fn match_claim(
    found: Vec<ObservedMessage>,
    claimed: &Message,
    claimed_id: B256,
) -> Result<ObservedMessage, Refusal> {
    let Some(actual) = found
        .into_iter()
        .find(|o| o.message.sequence == claimed.sequence)
    else {
        return Err(Refusal::NoDispatch(claimed.sequence));
    };
    let mut differ = differing_fields(claimed, &actual.message);
    if claimed_id != actual.id && differ.is_empty() {
        differ.push("id");
    }
    if !differ.is_empty() {
        return Err(Refusal::Mismatch(differ.join(", ")));
    }
    Ok(actual)
}

/// A chain whose bridge endpoint emits dispatched messages.
pub trait MessageSource: Send + Sync {
    /// The origin domain every message of this source carries.
    fn domain(&self) -> u32;
    /// Names the source (e.g. the contract), so cursors of different sources do not mix.
    fn name(&self) -> String;
    /// Messages from `cursor` (a block or slot) up to the newest final one, and the cursor
    /// to continue from. Only messages that can no longer be reorganised away are returned.
    fn poll(&self, cursor: u64) -> impl Future<Output = Result<Batch, SourceError>> + Send;
    /// Checks a claimed dispatch against this validator's own node: `Ok(Ok(observed))`
    /// only when transaction `origin_tx` is final and emitted exactly `claimed` (id
    /// `claimed_id`); `Ok(Err(refusal))` says why not; `Err` is an RPC failure (try again).
    fn verify(
        &self,
        origin_tx: &[u8],
        claimed: &Message,
        claimed_id: B256,
    ) -> impl Future<Output = Result<Result<ObservedMessage, Refusal>, SourceError>> + Send;
}

/// `Dispatch` logs of one AdvanciaBridge, final once `confirmations` blocks are on top.
#[derive(Debug, Clone)]
pub struct EvmSource {
    provider: DynProvider,
    bridge: Address,
    domain: u32,
    confirmations: u64,
    max_blocks_per_poll: u64,
}

impl EvmSource {
    /// `confirmations`: a log in block b is final once head - b >= confirmations
    /// (0 would sign the head block itself).
    pub fn new(provider: DynProvider, bridge: Address, domain: u32, confirmations: u64) -> Self {
        Self {
            provider,
            bridge,
            domain,
            confirmations,
            max_blocks_per_poll: 2_000,
        }
    }
}

fn rpc(e: impl std::fmt::Display) -> SourceError {
    SourceError::Rpc(e.to_string())
}

impl MessageSource for EvmSource {
    fn domain(&self) -> u32 {
        self.domain
    }

    fn name(&self) -> String {
        format!("evm:{}", self.bridge)
    }

    async fn poll(&self, cursor: u64) -> Result<Batch, SourceError> {
        let head = self.provider.get_block_number().await.map_err(rpc)?;
        let Some(final_head) = head.checked_sub(self.confirmations) else {
            return Ok(Batch {
                messages: Vec::new(),
                next_cursor: cursor,
            });
        };
        if final_head < cursor {
            return Ok(Batch {
                messages: Vec::new(),
                next_cursor: cursor,
            });
        }
        let to = final_head.min(cursor.saturating_add(self.max_blocks_per_poll - 1));
        let bridge = AdvanciaBridge::new(self.bridge, self.provider.clone());
        let logs = bridge
            .Dispatch_filter()
            .from_block(cursor)
            .to_block(to)
            .query()
            .await
            .map_err(rpc)?;
        Ok(Batch {
            messages: self.observe(logs)?,
            next_cursor: to + 1,
        })
    }

    async fn verify(
        &self,
        origin_tx: &[u8],
        claimed: &Message,
        claimed_id: B256,
    ) -> Result<Result<ObservedMessage, Refusal>, SourceError> {
        let Ok(hash) = B256::try_from(origin_tx) else {
            return Ok(Err(Refusal::Malformed(format!(
                "{} bytes where a 32-byte transaction hash belongs",
                origin_tx.len()
            ))));
        };
        let Some(receipt) = self
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(rpc)?
        else {
            return Ok(Err(Refusal::NotFinal));
        };
        let head = self.provider.get_block_number().await.map_err(rpc)?;
        let final_head = head.checked_sub(self.confirmations);
        if receipt
            .block_number
            .is_none_or(|b| final_head.is_none_or(|f| b > f))
        {
            return Ok(Err(Refusal::NotFinal));
        }
        if !receipt.status() {
            return Ok(Err(Refusal::FailedTransaction));
        }
        let logs = receipt
            .inner
            .logs()
            .iter()
            .filter(|log| log.address() == self.bridge)
            .filter_map(|log| {
                log.log_decode::<AdvanciaBridge::Dispatch>()
                    .ok()
                    .map(|decoded| (decoded.inner.data, log.clone()))
            })
            .collect::<Vec<_>>();
        Ok(match_claim(self.observe(logs)?, claimed, claimed_id))
    }
}

impl EvmSource {
    /// `Dispatch` logs of this bridge as observed messages; a log whose fields do not hash
    /// to its id, or of another origin, fails the whole batch (the node is lying or broken).
    fn observe(
        &self,
        logs: Vec<(AdvanciaBridge::Dispatch, alloy::rpc::types::Log)>,
    ) -> Result<Vec<ObservedMessage>, SourceError> {
        let mut messages = Vec::with_capacity(logs.len());
        for (event, log) in logs {
            let tx = log.transaction_hash.unwrap_or_default();
            let log_index = log.log_index.unwrap_or_default();
            let invalid = |reason: String| SourceError::InvalidEvent {
                tx,
                log_index,
                reason,
            };
            if log.address() != self.bridge {
                return Err(invalid(format!(
                    "emitted by {}, not the bridge",
                    log.address()
                )));
            }
            let message = Message {
                originDomain: event.originDomain,
                sequence: event.sequence,
                sender: event.sender,
                destinationDomain: event.destinationDomain,
                recipient: event.recipient,
                asset: event.asset,
                amount: event.amount,
            };
            if message.originDomain != self.domain {
                return Err(invalid(format!(
                    "origin domain {} is not {}",
                    message.originDomain, self.domain
                )));
            }
            // Validators sign what they recomputed, never an id they were handed.
            let id = message_id(&message);
            if id != event.id {
                return Err(invalid(format!(
                    "event id {} but the fields hash to {id}",
                    event.id
                )));
            }
            let origin_block = log
                .block_number
                .ok_or_else(|| invalid("log without block number".into()))?;
            messages.push(ObservedMessage {
                message,
                id,
                origin_block,
                origin_tx: tx.to_vec(),
            });
        }
        Ok(messages)
    }
}

/// The program's `BridgeDispatched` events in finalized transactions, read from this
/// validator's own Solana RPC endpoint. The cursor is a slot: every program transaction in
/// slots `cursor..=finalized` is fetched at `finalized` and its dispatches decoded from the
/// program's own event self-invocations (a failed transaction dispatched nothing).
pub struct SolanaRpcSource {
    rpc: advancia_indexer::source::SolanaRpc,
    domain: u32,
    max_transactions: usize,
}

impl SolanaRpcSource {
    /// `domain`: the program's bridge `local_domain`.
    pub fn new(rpc_url: impl Into<String>, domain: u32) -> Self {
        Self {
            rpc: advancia_indexer::source::SolanaRpc::new(rpc_url, advancia_pay::ID),
            domain,
            max_transactions: 500,
        }
    }

    fn dispatches(
        &self,
        tx: &advancia_indexer::source::ChainTransaction,
    ) -> Result<Vec<ObservedMessage>, SourceError> {
        let origin_tx = bs58::decode(&tx.signature)
            .into_vec()
            .map_err(|e| SourceError::Rpc(format!("signature {}: {e}", tx.signature)))?;
        let mut out = Vec::new();
        for e in &tx.bridge_events {
            let advancia_pay::client::BridgeEvent::BridgeDispatched(d) = &e.event else {
                continue;
            };
            let wire = advancia_pay::client::dispatched_message(d);
            let message = Message {
                originDomain: wire.origin_domain,
                sequence: wire.sequence,
                sender: B256::from(wire.sender),
                destinationDomain: wire.destination_domain,
                recipient: B256::from(wire.recipient),
                asset: B256::from(wire.asset),
                amount: alloy::primitives::U256::from_be_bytes(wire.amount),
            };
            let invalid = |reason: String| SourceError::InvalidEvent {
                tx: B256::ZERO,
                log_index: u64::from(e.ix_index),
                reason: format!("{}: {reason}", tx.signature),
            };
            if message.originDomain != self.domain {
                return Err(invalid(format!(
                    "origin domain {} is not {}",
                    message.originDomain, self.domain
                )));
            }
            // Sign what the fields hash to, never an id handed over.
            let id = message_id(&message);
            if id.0 != d.id {
                return Err(invalid(format!(
                    "event id {} but the fields hash to {id}",
                    B256::from(d.id)
                )));
            }
            out.push(ObservedMessage {
                message,
                id,
                origin_block: tx.slot,
                origin_tx: origin_tx.clone(),
            });
        }
        Ok(out)
    }
}

impl MessageSource for SolanaRpcSource {
    fn domain(&self) -> u32 {
        self.domain
    }

    fn name(&self) -> String {
        format!("solana:{}", advancia_pay::ID)
    }

    async fn poll(&self, cursor: u64) -> Result<Batch, SourceError> {
        use advancia_indexer::Commitment::Finalized;
        let finalized = self.rpc.slot(Finalized).await.map_err(rpc)?;
        if finalized < cursor {
            return Ok(Batch {
                messages: Vec::new(),
                next_cursor: cursor,
            });
        }
        let mut sigs = self
            .rpc
            .signatures_in_slots(cursor, finalized, Finalized)
            .await
            .map_err(rpc)?;
        // A long backlog is taken in pieces that end on a slot boundary, so the next poll
        // starts at the first slot not read in full (re-reading it is harmless).
        let mut next_cursor = finalized + 1;
        if sigs.len() > self.max_transactions {
            let stop = sigs[self.max_transactions].slot;
            sigs.retain(|s| s.slot < stop);
            next_cursor = stop.max(cursor + 1);
            if sigs.is_empty() {
                // One slot with more transactions than the limit: read it whole.
                sigs = self
                    .rpc
                    .signatures_in_slots(cursor, cursor, Finalized)
                    .await
                    .map_err(rpc)?;
            }
        }
        let mut messages = Vec::new();
        for sig in &sigs {
            let tx = self
                .rpc
                .transaction(sig, Finalized)
                .await
                .map_err(rpc)?
                .ok_or_else(|| {
                    SourceError::Rpc(format!(
                        "finalized signature {} without a transaction",
                        sig.signature
                    ))
                })?;
            if tx.failed {
                continue;
            }
            messages.extend(self.dispatches(&tx)?);
        }
        Ok(Batch {
            messages,
            next_cursor,
        })
    }

    async fn verify(
        &self,
        origin_tx: &[u8],
        claimed: &Message,
        claimed_id: B256,
    ) -> Result<Result<ObservedMessage, Refusal>, SourceError> {
        if origin_tx.len() != 64 {
            return Ok(Err(Refusal::Malformed(format!(
                "{} bytes where a 64-byte Solana signature belongs",
                origin_tx.len()
            ))));
        }
        let info = advancia_indexer::source::SignatureInfo {
            signature: bs58::encode(origin_tx).into_string(),
            slot: 0,
            confirmation_status: None,
        };
        let Some(tx) = self
            .rpc
            .transaction(&info, advancia_indexer::Commitment::Finalized)
            .await
            .map_err(rpc)?
        else {
            return Ok(Err(Refusal::NotFinal));
        };
        if tx.failed {
            return Ok(Err(Refusal::FailedTransaction));
        }
        Ok(match_claim(self.dispatches(&tx)?, claimed, claimed_id))
    }
}
