//! Solana source over the real JSON-RPC API: `getSignaturesForAddress` for the program, then
//! `getTransaction` (JSON encoding, v0 messages, inner instructions), and
//! `getSignatureStatuses` for finality. Plain reqwest + serde keeps the dependency light.

use std::sync::atomic::{AtomicU64, Ordering};

use advancia_pay::client::{AdvanciaEvent, BridgeEvent, decode_bridge_event, decode_event};
use anchor_lang::prelude::Pubkey;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Commitment, IndexerError};

/// One signature from `getSignaturesForAddress`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureInfo {
    pub signature: String,
    pub slot: u64,
    #[serde(default)]
    pub confirmation_status: Option<String>,
}

/// A decoded event with its position in the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEvent {
    /// Top-level instruction that emitted it.
    pub ix_index: u32,
    /// Position among that instruction's inner instructions.
    pub inner_index: u32,
    pub event: AdvanciaEvent,
}

/// A decoded bridge event (ADR 0012) with its position in the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBridgeEvent {
    pub ix_index: u32,
    pub inner_index: u32,
    pub event: BridgeEvent,
}

/// A program transaction as the sink stores it.
#[derive(Debug, Clone)]
pub struct ChainTransaction {
    pub signature: String,
    pub slot: u64,
    pub block_time: Option<i64>,
    pub failed: bool,
    pub commitment: Commitment,
    pub events: Vec<DecodedEvent>,
    /// The bridge's events (kept apart: they move no ledger money on this chain's books).
    pub bridge_events: Vec<DecodedBridgeEvent>,
    /// Names of our program's top-level instructions, in order (`unknown` for data that
    /// matches no instruction of the program).
    pub instructions: Vec<String>,
}

/// Finality status of one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureState {
    /// Unknown to the chain: dropped (its fork was abandoned).
    Dropped,
    Landed {
        slot: u64,
        commitment: Commitment,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcTx {
    slot: u64,
    block_time: Option<i64>,
    meta: Option<RpcMeta>,
    transaction: RpcTxBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcMeta {
    err: Option<Value>,
    #[serde(default)]
    inner_instructions: Option<Vec<RpcInner>>,
    #[serde(default)]
    loaded_addresses: Option<RpcLoaded>,
}

#[derive(Deserialize)]
struct RpcLoaded {
    writable: Vec<String>,
    readonly: Vec<String>,
}

#[derive(Deserialize)]
struct RpcInner {
    index: u32,
    instructions: Vec<RpcCompiled>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcCompiled {
    program_id_index: usize,
    data: String,
}

#[derive(Deserialize)]
struct RpcTxBody {
    message: RpcMessage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcMessage {
    account_keys: Vec<String>,
    #[serde(default)]
    instructions: Vec<RpcCompiled>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcStatus {
    slot: u64,
    confirmation_status: Option<String>,
}

/// JSON-RPC client for one Solana endpoint and our program.
pub struct SolanaRpc {
    http: reqwest::Client,
    url: String,
    program: Pubkey,
    next_id: AtomicU64,
}

fn parse_commitment(s: Option<&str>) -> Commitment {
    match s {
        Some("finalized") => Commitment::Finalized,
        _ => Commitment::Confirmed,
    }
}

impl SolanaRpc {
    pub fn new(url: impl Into<String>, program: Pubkey) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.into(),
            program,
            next_id: AtomicU64::new(1),
        }
    }

    pub fn program(&self) -> &Pubkey {
        &self.program
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, IndexerError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if let Some(err) = response.get("error") {
            return Err(IndexerError::Rpc {
                method: method.to_string(),
                message: err.to_string(),
            });
        }
        Ok(response.get("result").cloned().unwrap_or(Value::Null))
    }

    /// Signatures of the program newer than `until` (all when `None`), oldest first.
    pub async fn signatures_since(
        &self,
        until: Option<&str>,
        commitment: Commitment,
    ) -> Result<Vec<SignatureInfo>, IndexerError> {
        let mut out: Vec<SignatureInfo> = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut cfg = json!({"limit": 1000, "commitment": commitment.as_str()});
            if let Some(u) = until {
                cfg["until"] = json!(u);
            }
            if let Some(b) = &before {
                cfg["before"] = json!(b);
            }
            let page: Vec<SignatureInfo> = serde_json::from_value(
                self.call(
                    "getSignaturesForAddress",
                    json!([self.program.to_string(), cfg]),
                )
                .await?,
            )?;
            let full = page.len() == 1000;
            before = page.last().map(|s| s.signature.clone());
            out.extend(page);
            if !full {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Signatures of the program in slots `from_slot..=to_slot`, oldest first (pages back
    /// from the newest until a page reaches below `from_slot`). For followers that keep a
    /// slot cursor instead of a signature, such as the bridge validators.
    pub async fn signatures_in_slots(
        &self,
        from_slot: u64,
        to_slot: u64,
        commitment: Commitment,
    ) -> Result<Vec<SignatureInfo>, IndexerError> {
        let mut out: Vec<SignatureInfo> = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut cfg = json!({"limit": 1000, "commitment": commitment.as_str()});
            if let Some(b) = &before {
                cfg["before"] = json!(b);
            }
            let page: Vec<SignatureInfo> = serde_json::from_value(
                self.call(
                    "getSignaturesForAddress",
                    json!([self.program.to_string(), cfg]),
                )
                .await?,
            )?;
            let full = page.len() == 1000;
            let reached_start = page.last().is_some_and(|s| s.slot < from_slot);
            before = page.last().map(|s| s.signature.clone());
            out.extend(
                page.into_iter()
                    .filter(|s| (from_slot..=to_slot).contains(&s.slot)),
            );
            if !full || reached_start {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Fetches and decodes one transaction; `None` if the node no longer has it.
    pub async fn transaction(
        &self,
        sig: &SignatureInfo,
        commitment: Commitment,
    ) -> Result<Option<ChainTransaction>, IndexerError> {
        let value = self
            .call(
                "getTransaction",
                json!([sig.signature, {
                    "encoding": "json",
                    "commitment": commitment.as_str(),
                    "maxSupportedTransactionVersion": 0,
                }]),
            )
            .await?;
        if value.is_null() {
            return Ok(None);
        }
        let tx: RpcTx = serde_json::from_value(value)?;
        let (events, bridge_events) = decode_transaction(&tx, &self.program, &sig.signature)?;
        let instructions = decode_instructions(&tx, &self.program, &sig.signature)?;
        let failed = tx.meta.as_ref().is_none_or(|m| m.err.is_some());
        Ok(Some(ChainTransaction {
            signature: sig.signature.clone(),
            slot: tx.slot,
            block_time: tx.block_time,
            failed,
            commitment: parse_commitment(sig.confirmation_status.as_deref()).max(commitment),
            events,
            bridge_events,
            instructions,
        }))
    }

    /// `getSignatureStatuses` with history search, for at most 256 signatures.
    pub async fn statuses(&self, sigs: &[String]) -> Result<Vec<SignatureState>, IndexerError> {
        let value = self
            .call(
                "getSignatureStatuses",
                json!([sigs, {"searchTransactionHistory": true}]),
            )
            .await?;
        let list: Vec<Option<RpcStatus>> = serde_json::from_value(
            value
                .get("value")
                .cloned()
                .ok_or_else(|| IndexerError::Malformed("statuses without value".into()))?,
        )?;
        if list.len() != sigs.len() {
            return Err(IndexerError::Malformed(format!(
                "{} statuses for {} signatures",
                list.len(),
                sigs.len()
            )));
        }
        Ok(list
            .into_iter()
            .map(|s| match s {
                None => SignatureState::Dropped,
                Some(s) => SignatureState::Landed {
                    slot: s.slot,
                    commitment: parse_commitment(s.confirmation_status.as_deref()),
                },
            })
            .collect())
    }

    /// `getSlot`: the newest slot at `commitment`.
    pub async fn slot(&self, commitment: Commitment) -> Result<u64, IndexerError> {
        let v = self
            .call("getSlot", json!([{"commitment": commitment.as_str()}]))
            .await?;
        v.as_u64()
            .ok_or_else(|| IndexerError::Malformed(format!("getSlot returned {v}")))
    }

    /// Base-unit decimals of a token mint (SPL mint layout: `decimals` at byte 44).
    pub async fn mint_decimals(&self, mint: &Pubkey) -> Result<u8, IndexerError> {
        if *mint == advancia_pay::state::NATIVE_SOL {
            return Ok(9);
        }
        let value = self
            .call(
                "getAccountInfo",
                json!([mint.to_string(), {"encoding": "base64"}]),
            )
            .await?;
        let data = value
            .pointer("/value/data/0")
            .and_then(Value::as_str)
            .ok_or_else(|| IndexerError::Malformed(format!("mint {mint} not found")))?;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| IndexerError::Malformed(format!("mint {mint}: {e}")))?;
        bytes
            .get(44)
            .copied()
            .ok_or_else(|| IndexerError::Malformed(format!("mint {mint} too short")))
    }
}

/// Names of the top-level instructions of `program` in `tx` (static account keys only: a
/// top-level program id cannot come from a lookup table).
fn decode_instructions(
    tx: &RpcTx,
    program: &Pubkey,
    signature: &str,
) -> Result<Vec<String>, IndexerError> {
    let keys = &tx.transaction.message.account_keys;
    let program_str = program.to_string();
    let mut names = Vec::new();
    for ix in &tx.transaction.message.instructions {
        if keys.get(ix.program_id_index) != Some(&program_str) {
            continue;
        }
        let data = bs58::decode(&ix.data)
            .into_vec()
            .map_err(|e| IndexerError::Malformed(format!("{signature}: {e}")))?;
        // Never an error: the chain already ran (or rejected) it; record what it was.
        names.push(crate::instructions::decode(&data).label());
    }
    Ok(names)
}

/// Our events in a transaction: inner instructions whose program is ours and whose data is
/// an `emit_cpi!` event. Failed transactions have no effects, so they yield no events.
fn decode_transaction(
    tx: &RpcTx,
    program: &Pubkey,
    signature: &str,
) -> Result<(Vec<DecodedEvent>, Vec<DecodedBridgeEvent>), IndexerError> {
    let Some(meta) = &tx.meta else {
        return Ok((Vec::new(), Vec::new()));
    };
    if meta.err.is_some() {
        return Ok((Vec::new(), Vec::new()));
    }
    // v0 messages: static keys, then loaded writable, then loaded readonly.
    let mut keys: Vec<&str> = tx
        .transaction
        .message
        .account_keys
        .iter()
        .map(String::as_str)
        .collect();
    if let Some(l) = &meta.loaded_addresses {
        keys.extend(l.writable.iter().map(String::as_str));
        keys.extend(l.readonly.iter().map(String::as_str));
    }
    let program_str = program.to_string();
    let mut events = Vec::new();
    let mut bridge = Vec::new();
    for group in meta.inner_instructions.iter().flatten() {
        for (inner_index, ix) in group.instructions.iter().enumerate() {
            let Some(key) = keys.get(ix.program_id_index) else {
                return Err(IndexerError::Malformed(format!(
                    "{signature}: program index {} out of range",
                    ix.program_id_index
                )));
            };
            if *key != program_str {
                continue;
            }
            let data = bs58::decode(&ix.data)
                .into_vec()
                .map_err(|e| IndexerError::Malformed(format!("{signature}: {e}")))?;
            let failed =
                |e| IndexerError::Malformed(format!("{signature}: event decode failed: {e}"));
            let inner_index = u32::try_from(inner_index).unwrap_or(u32::MAX);
            if let Some(event) = decode_event(&advancia_pay::ID, &data).map_err(failed)? {
                events.push(DecodedEvent {
                    ix_index: group.index,
                    inner_index,
                    event,
                });
            } else if let Some(event) =
                decode_bridge_event(&advancia_pay::ID, &data).map_err(failed)?
            {
                bridge.push(DecodedBridgeEvent {
                    ix_index: group.index,
                    inner_index,
                    event,
                });
            }
        }
    }
    Ok((events, bridge))
}
