//! Where validators read dispatched messages from. EVM: the bridge's `Dispatch` logs at a
//! confirmation depth. Solana: the program's `BridgeDispatched` events as the indexer stored
//! them, once finalized ([`IndexedSolanaSource`]).

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

/// A chain whose bridge endpoint emits dispatched messages.
pub trait MessageSource: Send + Sync {
    /// The origin domain every message of this source carries.
    fn domain(&self) -> u32;
    /// Names the source (e.g. the contract), so cursors of different sources do not mix.
    fn name(&self) -> String;
    /// Messages from `cursor` (a block or slot) up to the newest final one, and the cursor
    /// to continue from. Only messages that can no longer be reorganised away are returned.
    fn poll(&self, cursor: u64) -> impl Future<Output = Result<Batch, SourceError>> + Send;
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
        Ok(Batch {
            messages,
            next_cursor: to + 1,
        })
    }
}

/// The program's `BridgeDispatched` events from the indexer's `bridge_messages` table (same
/// Postgres, schema `indexer`), once `finalized`. The cursor is the indexer's stream position
/// (`seq`): a row gets a new, higher one when it becomes final, so `seq >= cursor` never
/// misses a message that finalizes after later ones were read.
#[derive(Debug, Clone)]
pub struct IndexedSolanaSource {
    pool: sqlx::PgPool,
    domain: u32,
    chain: String,
    max_rows: i64,
}

impl IndexedSolanaSource {
    /// `chain`: the indexer's chain name for the Solana cluster (`solana`); `domain`: the
    /// program's `local_domain`.
    pub fn new(pool: sqlx::PgPool, chain: impl Into<String>, domain: u32) -> Self {
        Self {
            pool,
            domain,
            chain: chain.into(),
            max_rows: 500,
        }
    }
}

type DispatchRow = (
    i64,
    String,
    i64,
    String,
    String,
    i64,
    String,
    String,
    String,
    i64,
    String,
);

fn word(hex_word: &str, what: &str) -> Result<B256, SourceError> {
    hex_word
        .parse::<B256>()
        .map_err(|e| SourceError::Rpc(format!("indexed {what} {hex_word:?}: {e}")))
}

impl MessageSource for IndexedSolanaSource {
    fn domain(&self) -> u32 {
        self.domain
    }

    fn name(&self) -> String {
        format!("indexer:{}", self.chain)
    }

    async fn poll(&self, cursor: u64) -> Result<Batch, SourceError> {
        let from = i64::try_from(cursor).map_err(rpc)?;
        let rows: Vec<DispatchRow> = sqlx::query_as(
            "SELECT seq, message_id, origin_domain, sequence::text, sender, destination_domain,
                    recipient, asset, amount::text, slot, signature
               FROM indexer.bridge_messages
              WHERE chain = $1 AND direction = 'dispatched' AND commitment = 'finalized'
                AND seq >= $2
              ORDER BY seq LIMIT $3",
        )
        .bind(&self.chain)
        .bind(from)
        .bind(self.max_rows)
        .fetch_all(&self.pool)
        .await
        .map_err(rpc)?;
        let mut next_cursor = cursor;
        let mut messages = Vec::with_capacity(rows.len());
        for (seq, id, origin, sequence, sender, destination, recipient, asset, amount, slot, sig) in
            rows
        {
            next_cursor = next_cursor.max(u64::try_from(seq).map_err(rpc)? + 1);
            let invalid =
                |reason: String| SourceError::Rpc(format!("indexed dispatch {sig}: {reason}"));
            let message = Message {
                originDomain: u32::try_from(origin).map_err(|e| invalid(e.to_string()))?,
                sequence: sequence
                    .parse()
                    .map_err(|e| invalid(format!("sequence: {e}")))?,
                sender: word(&sender, "sender")?,
                destinationDomain: u32::try_from(destination)
                    .map_err(|e| invalid(e.to_string()))?,
                recipient: word(&recipient, "recipient")?,
                asset: word(&asset, "asset")?,
                amount: amount
                    .parse::<alloy::primitives::U256>()
                    .map_err(|e| invalid(format!("amount: {e}")))?,
            };
            if message.originDomain != self.domain {
                return Err(invalid(format!(
                    "origin domain {} is not {}",
                    message.originDomain, self.domain
                )));
            }
            // As for EVM logs: sign what the fields hash to, never a stored id.
            let recomputed = message_id(&message);
            if recomputed != word(&id, "message id")? {
                return Err(invalid(format!(
                    "stored id {id} but the fields hash to {recomputed}"
                )));
            }
            messages.push(ObservedMessage {
                message,
                id: recomputed,
                origin_block: u64::try_from(slot).map_err(rpc)?,
                origin_tx: bs58::decode(&sig)
                    .into_vec()
                    .map_err(|e| invalid(format!("signature: {e}")))?,
            });
        }
        Ok(Batch {
            messages,
            next_cursor,
        })
    }
}
