//! JSON-RPC 2.0 over HTTP: request framing, Solana's error codes, and the method handlers.

use std::str::FromStr;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use solana_account::ReadableAccount;
use solana_account_decoder_client_types::UiAccountEncoding;
use solana_clock::{MAX_PROCESSING_AGE, Slot};
use solana_commitment_config::{CommitmentConfig, CommitmentLevel};
use solana_hash::Hash;
use solana_message::{SanitizedMessage, SanitizedVersionedMessage, VersionedMessage};
use solana_pubkey::Pubkey;
use solana_rpc_client_types::config::{
    RpcAccountInfoConfig, RpcBlockConfig, RpcContextConfig, RpcEncodingConfigWrapper,
    RpcProgramAccountsConfig, RpcRequestAirdropConfig, RpcSendTransactionConfig,
    RpcSignatureStatusConfig, RpcSignaturesForAddressConfig, RpcSimulateTransactionConfig,
    RpcTransactionConfig,
};
use solana_rpc_client_types::filter::RpcFilterType;
use solana_rpc_client_types::response::{
    RpcBlockhash, RpcConfirmedTransactionStatusWithSignature, RpcKeyedAccount,
    RpcPrioritizationFee, RpcResponseContext, RpcSimulateTransactionResult, RpcVersionInfo,
};
use solana_signature::Signature;
use solana_transaction::versioned::VersionedTransaction;
use solana_transaction_error::TransactionError;
use solana_transaction_status_client_types::{
    EncodedConfirmedTransactionWithStatusMeta, EncodedTransaction,
    EncodedTransactionWithStatusMeta, TransactionConfirmationStatus, TransactionDetails,
    TransactionStatus, UiAccountsList, UiConfirmedBlock, UiTransactionEncoding,
};

use crate::Node;
use crate::chain::{Chain, Commitment, ExecError, TxRecord};
use crate::encode::{encode_account, encode_with_meta, token_amount};

/// A JSON-RPC error object with Solana's codes and messages.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
    pub fn parse_error() -> Self {
        Self::new(-32700, "Parse error")
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(-32600, message)
    }
    pub fn method_not_found() -> Self {
        Self::new(-32601, "Method not found")
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(-32602, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(-32603, message)
    }
    fn signature_verification() -> Self {
        Self::new(-32003, "Transaction signature verification failure")
    }
    fn block_not_available(slot: Slot) -> Self {
        Self::new(-32004, format!("Block not available for slot {slot}"))
    }
    fn slot_skipped(slot: Slot) -> Self {
        Self::new(
            -32007,
            format!("Slot {slot} was skipped, or missing due to ledger jump to recent snapshot"),
        )
    }
    pub fn unsupported_version(version: u8) -> Self {
        Self::new(
            -32015,
            format!(
                "Transaction version ({version}) is not supported by the requesting client. \
                 Please try the request again with the following configuration parameter: \
                 \"maxSupportedTransactionVersion\": {version}"
            ),
        )
    }
    fn min_context_slot(context_slot: Slot) -> Self {
        Self {
            code: -32016,
            message: "Minimum context slot has not been reached".into(),
            data: Some(json!({ "contextSlot": context_slot })),
        }
    }
    fn below_confirmed() -> Self {
        Self::invalid_params("Method does not support commitment below `confirmed`")
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            v["data"] = data.clone();
        }
        v
    }
}

/// Handles one HTTP body: a request object or a batch array.
pub fn handle_body(node: &Node, body: &[u8]) -> Value {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return response(Value::Null, Err(RpcError::parse_error()));
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            Value::Array(items.into_iter().map(|r| handle_request(node, r)).collect())
        }
        other => handle_request(node, other),
    }
}

fn response(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(result) => json!({ "jsonrpc": "2.0", "result": result, "id": id }),
        Err(e) => json!({ "jsonrpc": "2.0", "error": e.to_json(), "id": id }),
    }
}

pub fn handle_request(node: &Node, request: Value) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return response(id, Err(RpcError::invalid_request("Invalid request")));
    };
    let params = match request.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return response(
                id,
                Err(RpcError::invalid_params(
                    "Invalid params: expected an array",
                )),
            );
        }
    };
    let result = call(node, method, &Params(params));
    if let Err(e) = &result {
        tracing::debug!(method, code = e.code, message = %e.message, "rpc error");
    }
    response(id, result)
}

/// Positional parameters.
pub struct Params(pub Vec<Value>);

impl Params {
    pub fn required<T: DeserializeOwned>(&self, index: usize) -> Result<T, RpcError> {
        let v = self
            .0
            .get(index)
            .ok_or_else(|| RpcError::invalid_params(format!("missing parameter {index}")))?;
        serde_json::from_value(v.clone())
            .map_err(|e| RpcError::invalid_params(format!("Invalid params: {e}.")))
    }
    pub fn optional<T: DeserializeOwned>(&self, index: usize) -> Result<Option<T>, RpcError> {
        match self.0.get(index) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| RpcError::invalid_params(format!("Invalid params: {e}."))),
        }
    }
    pub fn pubkey(&self, index: usize) -> Result<Pubkey, RpcError> {
        parse_pubkey(&self.required::<String>(index)?)
    }
    pub fn signature(&self, index: usize) -> Result<Signature, RpcError> {
        parse_signature(&self.required::<String>(index)?)
    }
}

pub fn parse_pubkey(s: &str) -> Result<Pubkey, RpcError> {
    Pubkey::from_str(s).map_err(|e| RpcError::invalid_params(format!("Invalid param: {e:?}")))
}

pub fn parse_signature(s: &str) -> Result<Signature, RpcError> {
    Signature::from_str(s).map_err(|e| RpcError::invalid_params(format!("Invalid param: {e:?}")))
}

pub fn commitment_of(config: Option<CommitmentConfig>) -> Commitment {
    match config.map(|c| c.commitment) {
        Some(CommitmentLevel::Processed) => Commitment::Processed,
        Some(CommitmentLevel::Confirmed) => Commitment::Confirmed,
        Some(CommitmentLevel::Finalized) | None => Commitment::Finalized,
    }
}

fn at_least_confirmed(config: Option<CommitmentConfig>) -> Result<Commitment, RpcError> {
    match commitment_of(config) {
        Commitment::Processed => Err(RpcError::below_confirmed()),
        c => Ok(c),
    }
}

fn check_min_context(chain: &Chain, c: Commitment, min: Option<Slot>) -> Result<Slot, RpcError> {
    let slot = chain.slot(c);
    match min {
        Some(min) if min > slot => Err(RpcError::min_context_slot(slot)),
        _ => Ok(slot),
    }
}

fn with_context(slot: Slot, value: impl serde::Serialize) -> Result<Value, RpcError> {
    to_value(json!({ "context": RpcResponseContext::new(slot), "value": value }))
}

fn to_value(v: impl serde::Serialize) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError::internal(format!("serialization: {e}")))
}

pub fn confirmation_status(c: Commitment) -> TransactionConfirmationStatus {
    match c {
        Commitment::Processed => TransactionConfirmationStatus::Processed,
        Commitment::Confirmed => TransactionConfirmationStatus::Confirmed,
        Commitment::Finalized => TransactionConfirmationStatus::Finalized,
    }
}

/// Decodes a wire transaction the way Agave does, with its size limits and messages.
fn decode_transaction(
    data: &str,
    encoding: UiTransactionEncoding,
) -> Result<VersionedTransaction, RpcError> {
    const PACKET: usize = 1232;
    const MAX_BASE58: usize = 1683;
    const MAX_BASE64: usize = 1644;
    let ty = "solana_transaction::versioned::VersionedTransaction";
    let bytes = match encoding {
        UiTransactionEncoding::Base58 | UiTransactionEncoding::Binary => {
            if data.len() > MAX_BASE58 {
                return Err(RpcError::invalid_params(format!(
                    "base58 encoded {ty} too large: {} bytes (max: encoded/raw {MAX_BASE58}/{PACKET})",
                    data.len()
                )));
            }
            bs58::decode(data)
                .into_vec()
                .map_err(|e| RpcError::invalid_params(format!("invalid base58 encoding: {e:?}")))?
        }
        UiTransactionEncoding::Base64 => {
            if data.len() > MAX_BASE64 {
                return Err(RpcError::invalid_params(format!(
                    "base64 encoded {ty} too large: {} bytes (max: encoded/raw {MAX_BASE64}/{PACKET})",
                    data.len()
                )));
            }
            BASE64_STANDARD
                .decode(data)
                .map_err(|e| RpcError::invalid_params(format!("invalid base64 encoding: {e:?}")))?
        }
        other => {
            return Err(RpcError::invalid_params(format!(
                "unsupported encoding: {other}. Supported encodings: base58, base64"
            )));
        }
    };
    if bytes.len() > PACKET {
        return Err(RpcError::invalid_params(format!(
            "decoded {ty} too large: {} bytes (max: {PACKET} bytes)",
            bytes.len()
        )));
    }
    bincode::deserialize(&bytes)
        .map_err(|e| RpcError::invalid_params(format!("failed to deserialize {ty}: {e}")))
}

fn rejected(e: TransactionError) -> RpcError {
    match e {
        TransactionError::SignatureFailure => RpcError::signature_verification(),
        other => RpcError::invalid_params(format!("invalid transaction: {other}")),
    }
}

pub fn call(node: &Node, method: &str, p: &Params) -> Result<Value, RpcError> {
    match method {
        "getHealth" => Ok(json!("ok")),
        "getVersion" => to_value(RpcVersionInfo {
            solana_core: crate::SOLANA_CORE_VERSION.to_string(),
            feature_set: Some(node.feature_set_id),
        }),
        "getGenesisHash" => Ok(json!(node.chain().genesis_hash().to_string())),
        "getIdentity" => Ok(json!({ "identity": node.chain().identity().to_string() })),
        "getSlotLeader" => Ok(json!(node.chain().identity().to_string())),
        "getFirstAvailableBlock" | "minimumLedgerSlot" => Ok(json!(node.chain().first_slot())),
        "getSlot" | "getMaxRetransmitSlot" | "getMaxShredInsertSlot" => {
            let cfg: RpcContextConfig = p.optional(0)?.unwrap_or_default();
            let chain = node.chain();
            let slot =
                check_min_context(&chain, commitment_of(cfg.commitment), cfg.min_context_slot)?;
            Ok(json!(slot))
        }
        "getBlockHeight" => {
            let cfg: RpcContextConfig = p.optional(0)?.unwrap_or_default();
            let chain = node.chain();
            let c = commitment_of(cfg.commitment);
            check_min_context(&chain, c, cfg.min_context_slot)?;
            Ok(json!(chain.bank(c).block_height()))
        }
        "getTransactionCount" => Ok(json!(node.chain().transaction_count())),
        "getEpochInfo" => {
            let cfg: RpcContextConfig = p.optional(0)?.unwrap_or_default();
            let chain = node.chain();
            let bank = chain.bank(commitment_of(cfg.commitment));
            let (epoch, slot_index) = bank.get_epoch_and_slot_index(bank.slot());
            Ok(json!({
                "absoluteSlot": bank.slot(),
                "blockHeight": bank.block_height(),
                "epoch": epoch,
                "slotIndex": slot_index,
                "slotsInEpoch": bank.get_slots_in_epoch(epoch),
                "transactionCount": chain.transaction_count(),
            }))
        }
        "getLatestBlockhash" => {
            let cfg: RpcContextConfig = p.optional(0)?.unwrap_or_default();
            let chain = node.chain();
            let c = commitment_of(cfg.commitment);
            let slot = check_min_context(&chain, c, cfg.min_context_slot)?;
            let bank = chain.bank(c);
            let blockhash = bank.last_blockhash();
            let last_valid_block_height = bank
                .get_blockhash_last_valid_block_height(&blockhash)
                .unwrap_or(bank.block_height() + MAX_PROCESSING_AGE as u64);
            with_context(
                slot,
                RpcBlockhash {
                    blockhash: blockhash.to_string(),
                    last_valid_block_height,
                },
            )
        }
        "isBlockhashValid" => {
            let hash: String = p.required(0)?;
            let hash = Hash::from_str(&hash)
                .map_err(|e| RpcError::invalid_params(format!("Invalid param: {e:?}")))?;
            let cfg: RpcContextConfig = p.optional(1)?.unwrap_or_default();
            let chain = node.chain();
            let c = commitment_of(cfg.commitment);
            let slot = check_min_context(&chain, c, cfg.min_context_slot)?;
            with_context(
                slot,
                chain
                    .bank(c)
                    .is_hash_valid_for_age(&hash, MAX_PROCESSING_AGE),
            )
        }
        "getFeeForMessage" => {
            let data: String = p.required(0)?;
            let bytes = BASE64_STANDARD
                .decode(&data)
                .map_err(|e| RpcError::invalid_params(format!("invalid base64 encoding: {e:?}")))?;
            let message: VersionedMessage = bincode::deserialize(&bytes).map_err(|e| {
                RpcError::invalid_params(format!(
                    "failed to deserialize solana_message::versions::VersionedMessage: {e}"
                ))
            })?;
            let cfg: RpcContextConfig = p.optional(1)?.unwrap_or_default();
            let chain = node.chain();
            let c = commitment_of(cfg.commitment);
            let slot = check_min_context(&chain, c, cfg.min_context_slot)?;
            let bank = chain.bank(c);
            let sanitized = SanitizedVersionedMessage::try_new(message)
                .map_err(|e| RpcError::invalid_params(format!("invalid transaction message: {e}")))
                .and_then(|m| {
                    SanitizedMessage::try_new(m, &*bank, bank.get_reserved_account_keys()).map_err(
                        |e| RpcError::invalid_params(format!("invalid transaction message: {e}")),
                    )
                })?;
            with_context(slot, bank.get_fee_for_message(&sanitized))
        }
        "getMinimumBalanceForRentExemption" => {
            let len: usize = p.required(0)?;
            let cfg: Option<CommitmentConfig> = p.optional(1)?;
            Ok(json!(
                node.chain()
                    .bank(commitment_of(cfg))
                    .get_minimum_balance_for_rent_exemption(len)
            ))
        }
        "getBalance" => {
            let address = p.pubkey(0)?;
            let cfg: RpcContextConfig = p.optional(1)?.unwrap_or_default();
            let chain = node.chain();
            let c = commitment_of(cfg.commitment);
            let slot = check_min_context(&chain, c, cfg.min_context_slot)?;
            with_context(slot, chain.bank(c).get_balance(&address))
        }
        "getAccountInfo" => {
            let address = p.pubkey(0)?;
            let cfg: RpcAccountInfoConfig = p.optional(1)?.unwrap_or_default();
            let chain = node.chain();
            let c = commitment_of(cfg.commitment);
            let slot = check_min_context(&chain, c, cfg.min_context_slot)?;
            let encoding = cfg.encoding.unwrap_or(UiAccountEncoding::Binary);
            let bank = chain.bank(c);
            let account = bank
                .get_account(&address)
                .map(|a| encode_at(&bank, &a, encoding, cfg.data_slice))
                .transpose()?;
            with_context(slot, account)
        }
        "getMultipleAccounts" => {
            let keys: Vec<String> = p.required(0)?;
            if keys.len() > 100 {
                return Err(RpcError::invalid_params(
                    "Too many inputs provided; max 100",
                ));
            }
            let keys = keys
                .iter()
                .map(|k| parse_pubkey(k))
                .collect::<Result<Vec<_>, _>>()?;
            let cfg: RpcAccountInfoConfig = p.optional(1)?.unwrap_or_default();
            let chain = node.chain();
            let c = commitment_of(cfg.commitment);
            let slot = check_min_context(&chain, c, cfg.min_context_slot)?;
            let bank = chain.bank(c);
            let encoding = cfg.encoding.unwrap_or(UiAccountEncoding::Base64);
            let accounts = keys
                .iter()
                .map(|k| {
                    bank.get_account(k)
                        .map(|a| encode_at(&bank, &a, encoding, cfg.data_slice))
                        .transpose()
                })
                .collect::<Result<Vec<_>, _>>()?;
            with_context(slot, accounts)
        }
        "getTokenAccountBalance" => {
            let address = p.pubkey(0)?;
            let cfg: Option<CommitmentConfig> = p.optional(1)?;
            let chain = node.chain();
            let c = commitment_of(cfg);
            let bank = chain.bank(c);
            let account = bank
                .get_account(&address)
                .ok_or_else(|| RpcError::invalid_params("Invalid param: could not find account"))?;
            let (mint, amount) = crate::token::parse_token_account(&account)
                .ok_or_else(|| RpcError::invalid_params("Invalid param: not a Token account"))?;
            let decimals = bank
                .get_account(&mint)
                .and_then(|m| crate::token::mint_decimals(&m))
                .ok_or_else(|| RpcError::invalid_params("Invalid param: could not find mint"))?;
            with_context(bank.slot(), token_amount(amount, decimals))
        }
        "getProgramAccounts" => get_program_accounts(node, p),
        "getTokenAccountsByOwner" => token_accounts_by_owner(node, p),
        "requestAirdrop" => {
            let address = p.pubkey(0)?;
            let lamports: u64 = p.required(1)?;
            let _cfg: Option<RpcRequestAirdropConfig> = p.optional(2)?;
            let mut chain = node.chain();
            match chain.airdrop(&address, lamports) {
                Ok(sig) => Ok(json!(sig.to_string())),
                Err(e) => Err(RpcError::internal(format!("airdrop failed: {e}"))),
            }
        }
        "sendTransaction" => send_transaction(node, p),
        "simulateTransaction" => simulate_transaction(node, p),
        "getSignatureStatuses" => {
            let sigs: Vec<String> = p.required(0)?;
            if sigs.len() > 256 {
                return Err(RpcError::invalid_params(
                    "Too many inputs provided; max 256",
                ));
            }
            let sigs = sigs
                .iter()
                .map(|s| parse_signature(s))
                .collect::<Result<Vec<_>, _>>()?;
            let _cfg: Option<RpcSignatureStatusConfig> = p.optional(1)?;
            let chain = node.chain();
            let statuses: Vec<Option<TransactionStatus>> =
                sigs.iter().map(|s| signature_status(&chain, s)).collect();
            with_context(chain.slot(Commitment::Processed), statuses)
        }
        "getTransaction" => {
            let signature = p.signature(0)?;
            let cfg = p
                .optional::<RpcEncodingConfigWrapper<RpcTransactionConfig>>(1)?
                .map(|w| w.convert_to_current())
                .unwrap_or_default();
            let c = at_least_confirmed(cfg.commitment)?;
            let encoding = cfg.encoding.unwrap_or(UiTransactionEncoding::Json);
            let chain = node.chain();
            let Some(record) = chain.transaction(&signature) else {
                return Ok(Value::Null);
            };
            if record.slot > chain.slot(c) {
                return Ok(Value::Null);
            }
            let transaction =
                encode_with_meta(record, encoding, cfg.max_supported_transaction_version)?;
            to_value(EncodedConfirmedTransactionWithStatusMeta {
                slot: record.slot,
                transaction,
                block_time: Some(record.block_time),
            })
        }
        "getSignaturesForAddress" => signatures_for_address(node, p),
        "getBlock" => get_block(node, p),
        "getBlockTime" => {
            let slot: Slot = p.required(0)?;
            let chain = node.chain();
            match chain.block(slot) {
                Some(b) => Ok(json!(b.block_time)),
                None if chain.is_skipped(slot) => Err(RpcError::slot_skipped(slot)),
                None => Err(RpcError::block_not_available(slot)),
            }
        }
        "getBlocks" => {
            let start: Slot = p.required(0)?;
            let (end, cfg) = match p.0.get(1) {
                Some(Value::Number(_)) => {
                    (p.optional::<Slot>(1)?, p.optional::<RpcContextConfig>(2)?)
                }
                _ => (None, p.optional::<RpcContextConfig>(1)?),
            };
            let c = at_least_confirmed(cfg.unwrap_or_default().commitment)?;
            let chain = node.chain();
            let top = chain.slot(c);
            let end = end.unwrap_or(top).min(top);
            if end.saturating_sub(start) > 500_000 {
                return Err(RpcError::invalid_params("Slot range too large; max 500000"));
            }
            if start > end {
                return Ok(json!([]));
            }
            Ok(json!(chain.block_slots(start..=end)))
        }
        "getRecentPrioritizationFees" => {
            let keys: Vec<String> = p.optional(0)?.unwrap_or_default();
            if keys.len() > 128 {
                return Err(RpcError::invalid_params(
                    "Too many inputs provided; max 128",
                ));
            }
            let keys = keys
                .iter()
                .map(|k| parse_pubkey(k))
                .collect::<Result<Vec<_>, _>>()?;
            let chain = node.chain();
            let fees: Vec<RpcPrioritizationFee> = chain
                .recent_blocks(150)
                .into_iter()
                .map(|block| {
                    let fee = block
                        .signatures
                        .iter()
                        .filter_map(|s| chain.transaction(s))
                        .filter(|t| {
                            keys.is_empty() || t.writable_accounts.iter().any(|a| keys.contains(a))
                        })
                        .map(|t| t.compute_unit_price)
                        .min()
                        .unwrap_or(0);
                    RpcPrioritizationFee {
                        slot: block.slot,
                        prioritization_fee: fee,
                    }
                })
                .collect();
            to_value(fees)
        }
        "localnetDropTransaction" if node.config.enable_test_methods => {
            let signature = p.signature(0)?;
            let report = node
                .chain()
                .drop_transaction(&signature)
                .map_err(|e| RpcError::invalid_params(e.to_string()))?;
            Ok(json!({
                "abandonedSlots": report.abandoned_slots,
                "newSlot": report.new_slot,
                "replayed": report.replayed.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "lost": report.lost.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))
        }
        "localnetAdvanceSlot" if node.config.enable_test_methods => {
            let mut chain = node.chain();
            chain.advance_slot();
            Ok(json!(chain.slot(Commitment::Processed)))
        }
        _ => Err(RpcError::method_not_found()),
    }
}

/// Encodes an account for a read at `bank`; `jsonParsed` decodes token accounts and mints
/// (resolving a token account's decimals through its mint) and falls back to base64.
fn encode_at(
    bank: &solana_runtime::bank::Bank,
    account: &solana_account::AccountSharedData,
    encoding: UiAccountEncoding,
    slice: Option<solana_account_decoder_client_types::UiDataSliceConfig>,
) -> Result<solana_account_decoder_client_types::UiAccount, RpcError> {
    if encoding == UiAccountEncoding::JsonParsed && slice.is_none() {
        let decimals = |mint: &Pubkey| {
            bank.get_account(mint)
                .and_then(|m| crate::token::mint_decimals(&m))
        };
        if let Some(parsed) = crate::token::parse_json(account, decimals) {
            let mut ui = encode_account(account, UiAccountEncoding::Base64, None)?;
            ui.data = solana_account_decoder_client_types::UiAccountData::Json(parsed);
            return Ok(ui);
        }
    }
    encode_account(account, encoding, slice)
}

pub fn signature_status(chain: &Chain, signature: &Signature) -> Option<TransactionStatus> {
    let record = chain.transaction(signature)?;
    let c = chain.slot_commitment(record.slot)?;
    let confirmations = match c {
        Commitment::Finalized => None,
        Commitment::Processed => Some(0),
        Commitment::Confirmed => {
            Some(usize::try_from(chain.slot(Commitment::Confirmed) - record.slot + 1).unwrap_or(1))
        }
    };
    Some(TransactionStatus {
        slot: record.slot,
        confirmations,
        status: record.meta.status.clone(),
        err: record.meta.status.clone().err(),
        confirmation_status: Some(confirmation_status(c)),
    })
}

fn send_transaction(node: &Node, p: &Params) -> Result<Value, RpcError> {
    let data: String = p.required(0)?;
    let cfg: RpcSendTransactionConfig = p.optional(1)?.unwrap_or_default();
    let tx = decode_transaction(&data, cfg.encoding.unwrap_or(UiTransactionEncoding::Base58))?;
    let signature = tx.signatures.first().copied().unwrap_or_default();
    let mut chain = node.chain();
    if !cfg.skip_preflight {
        let c = commitment_of(
            cfg.preflight_commitment
                .map(|commitment| CommitmentConfig { commitment }),
        );
        check_min_context(&chain, c, cfg.min_context_slot)?;
        let (sim, _, _) = chain.simulate(c, tx.clone(), true).map_err(|e| match e {
            ExecError::Rejected(e) | ExecError::NotCommitted(e) => rejected(e),
        })?;
        if let Err(err) = &sim.result {
            let data = RpcSimulateTransactionResult {
                err: Some(err.clone().into()),
                logs: Some(crate::chain::normalize_logs(sim.logs.clone())),
                accounts: None,
                units_consumed: Some(sim.units_consumed),
                loaded_accounts_data_size: Some(sim.loaded_accounts_data_size),
                return_data: sim.return_data.clone().map(Into::into),
                inner_instructions: None,
                replacement_blockhash: None,
                fee: sim.fee,
                pre_balances: sim.pre_balances.clone(),
                post_balances: sim.post_balances.clone(),
                pre_token_balances: None,
                post_token_balances: None,
                loaded_addresses: None,
            };
            return Err(RpcError {
                code: -32002,
                message: format!("Transaction simulation failed: {err}"),
                data: Some(to_value(data)?),
            });
        }
    }
    // Preflight already verified the signatures of these exact bytes.
    match chain.execute_checked(tx, cfg.skip_preflight) {
        Ok(record) => Ok(json!(record.signature.to_string())),
        Err(ExecError::Rejected(e)) => Err(rejected(e)),
        // A validator accepts the transaction and silently never lands it; so do we.
        Err(ExecError::NotCommitted(e)) => {
            tracing::warn!(%signature, error = %e, "transaction not committed");
            Ok(json!(signature.to_string()))
        }
    }
}

fn simulate_transaction(node: &Node, p: &Params) -> Result<Value, RpcError> {
    let data: String = p.required(0)?;
    let cfg: RpcSimulateTransactionConfig = p.optional(1)?.unwrap_or_default();
    let mut tx = decode_transaction(&data, cfg.encoding.unwrap_or(UiTransactionEncoding::Base58))?;
    if cfg.sig_verify && cfg.replace_recent_blockhash {
        return Err(RpcError::invalid_params(
            "sigVerify may not be used with replaceRecentBlockhash",
        ));
    }
    let chain = node.chain();
    let c = commitment_of(cfg.commitment);
    check_min_context(&chain, c, cfg.min_context_slot)?;
    let bank = chain.bank(c);
    let replacement_blockhash = if cfg.replace_recent_blockhash {
        let blockhash = bank.last_blockhash();
        tx.message.set_recent_blockhash(blockhash);
        Some(RpcBlockhash {
            blockhash: blockhash.to_string(),
            last_valid_block_height: bank
                .get_blockhash_last_valid_block_height(&blockhash)
                .unwrap_or(bank.block_height() + MAX_PROCESSING_AGE as u64),
        })
    } else {
        None
    };
    let (sim, _keys, slot) = chain.simulate(c, tx, cfg.sig_verify).map_err(|e| match e {
        ExecError::Rejected(e) | ExecError::NotCommitted(e) => rejected(e),
    })?;
    let accounts = match &cfg.accounts {
        None => None,
        Some(acc) => {
            let encoding = acc.encoding.unwrap_or(UiAccountEncoding::Base64);
            let mut out = Vec::with_capacity(acc.addresses.len());
            for address in &acc.addresses {
                let key = parse_pubkey(address)?;
                let account = sim
                    .post_simulation_accounts
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, a)| a.clone())
                    .or_else(|| bank.get_account(&key));
                out.push(
                    account
                        .map(|a| encode_account(&a, encoding, None))
                        .transpose()?,
                );
            }
            Some(out)
        }
    };
    let inner_instructions = if cfg.inner_instructions {
        sim.inner_instructions.clone().map(|list| {
            crate::chain::map_inner_instructions(list)
                .into_iter()
                .map(Into::into)
                .collect()
        })
    } else {
        None
    };
    let token = |b: Option<Vec<solana_svm::transaction_balances::SvmTokenInfo>>| {
        b.map(|v| {
            crate::chain::map_token_balances(v)
                .into_iter()
                .map(Into::into)
                .collect()
        })
    };
    let value = RpcSimulateTransactionResult {
        err: sim.result.clone().err().map(Into::into),
        logs: Some(crate::chain::normalize_logs(sim.logs.clone())),
        accounts,
        units_consumed: Some(sim.units_consumed),
        loaded_accounts_data_size: Some(sim.loaded_accounts_data_size),
        return_data: sim.return_data.clone().map(Into::into),
        inner_instructions,
        replacement_blockhash,
        fee: sim.fee,
        pre_balances: sim.pre_balances.clone(),
        post_balances: sim.post_balances.clone(),
        pre_token_balances: token(sim.pre_token_balances.clone()),
        post_token_balances: token(sim.post_token_balances.clone()),
        loaded_addresses: None,
    };
    with_context(slot, value)
}

fn get_program_accounts(node: &Node, p: &Params) -> Result<Value, RpcError> {
    let program = p.pubkey(0)?;
    let cfg: RpcProgramAccountsConfig = p.optional(1)?.unwrap_or_default();
    let filters = cfg.filters.unwrap_or_default();
    if filters.len() > 4 {
        return Err(RpcError::invalid_params("Too many filters provided; max 4"));
    }
    for f in &filters {
        f.verify()
            .map_err(|e| RpcError::invalid_params(format!("Invalid param: {e:?}")))?;
    }
    let chain = node.chain();
    let c = commitment_of(cfg.account_config.commitment);
    let slot = check_min_context(&chain, c, cfg.account_config.min_context_slot)?;
    let bank = chain.bank(c);
    let encoding = cfg
        .account_config
        .encoding
        .unwrap_or(UiAccountEncoding::Binary);
    let accounts = bank
        .get_program_accounts(&program, &Default::default())
        .map_err(|e| RpcError::internal(format!("scan failed: {e}")))?;
    let mut out = Vec::new();
    for (key, account) in accounts {
        let data = account.data();
        let keep = filters.iter().all(|f| match f {
            RpcFilterType::DataSize(n) => data.len() as u64 == *n,
            RpcFilterType::Memcmp(m) => m.bytes_match(data),
            RpcFilterType::TokenAccountState => {
                crate::token::parse_token_account(&account).is_some()
            }
        });
        if keep {
            out.push(RpcKeyedAccount {
                pubkey: key.to_string(),
                account: encode_at(&bank, &account, encoding, cfg.account_config.data_slice)?,
            });
        }
    }
    if cfg.sort_results.unwrap_or(true) {
        out.sort_by(|a, b| a.pubkey.cmp(&b.pubkey));
    }
    if cfg.with_context.unwrap_or(false) {
        with_context(slot, out)
    } else {
        to_value(out)
    }
}

fn memo_of(record: &TxRecord) -> Option<String> {
    const MEMO_V1: Pubkey = Pubkey::from_str_const("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo");
    const MEMO_V3: Pubkey = Pubkey::from_str_const("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");
    let msg = &record.transaction.message;
    let keys = msg.static_account_keys();
    let memos: Vec<String> = msg
        .instructions()
        .iter()
        .filter(|ix| {
            matches!(keys.get(usize::from(ix.program_id_index)), Some(k) if *k == MEMO_V1 || *k == MEMO_V3)
        })
        .map(|ix| {
            format!(
                "[{}] {}",
                ix.data.len(),
                String::from_utf8_lossy(&ix.data)
            )
        })
        .collect();
    (!memos.is_empty()).then(|| memos.join("; "))
}

fn signatures_for_address(node: &Node, p: &Params) -> Result<Value, RpcError> {
    let address = p.pubkey(0)?;
    let cfg: RpcSignaturesForAddressConfig = p.optional(1)?.unwrap_or_default();
    let limit = cfg.limit.unwrap_or(1000);
    if limit == 0 || limit > 1000 {
        return Err(RpcError::invalid_params("Invalid limit; max 1000"));
    }
    let before = cfg.before.as_deref().map(parse_signature).transpose()?;
    let until = cfg.until.as_deref().map(parse_signature).transpose()?;
    let c = at_least_confirmed(cfg.commitment)?;
    let chain = node.chain();
    check_min_context(&chain, c, cfg.min_context_slot)?;
    let all = chain.signatures_for_address(&address, c);
    let start = match before {
        Some(b) => all
            .iter()
            .position(|t| t.signature == b)
            .map(|i| i + 1)
            .unwrap_or(all.len()),
        None => 0,
    };
    let mut out = Vec::new();
    for t in all.into_iter().skip(start) {
        if Some(t.signature) == until || out.len() >= limit {
            break;
        }
        out.push(RpcConfirmedTransactionStatusWithSignature {
            signature: t.signature.to_string(),
            slot: t.slot,
            err: t.meta.status.clone().err().map(Into::into),
            memo: memo_of(t),
            block_time: Some(t.block_time),
            confirmation_status: chain.slot_commitment(t.slot).map(confirmation_status),
        });
    }
    to_value(out)
}

fn get_block(node: &Node, p: &Params) -> Result<Value, RpcError> {
    let slot: Slot = p.required(0)?;
    let cfg = p
        .optional::<RpcEncodingConfigWrapper<RpcBlockConfig>>(1)?
        .map(|w| w.convert_to_current())
        .unwrap_or_default();
    let c = at_least_confirmed(cfg.commitment)?;
    let chain = node.chain();
    let Some(block) = chain.block(slot) else {
        return Err(if chain.is_skipped(slot) {
            RpcError::slot_skipped(slot)
        } else {
            RpcError::block_not_available(slot)
        });
    };
    if slot > chain.slot(c) {
        return Err(RpcError::block_not_available(slot));
    }
    let encoding = cfg.encoding.unwrap_or(UiTransactionEncoding::Json);
    let details = cfg.transaction_details.unwrap_or(TransactionDetails::Full);
    let records = chain.slot_transactions(slot);
    let (transactions, signatures) = match details {
        TransactionDetails::Full => (
            Some(
                records
                    .iter()
                    .map(|r| encode_with_meta(r, encoding, cfg.max_supported_transaction_version))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None,
        ),
        TransactionDetails::Signatures => (
            None,
            Some(records.iter().map(|r| r.signature.to_string()).collect()),
        ),
        TransactionDetails::None => (None, None),
        TransactionDetails::Accounts => (
            Some(
                records
                    .iter()
                    .map(|r| {
                        let full =
                            encode_with_meta(r, UiTransactionEncoding::JsonParsed, cfg.max_supported_transaction_version)?;
                        let account_keys = match full.transaction {
                            EncodedTransaction::Json(t) => match t.message {
                                solana_transaction_status_client_types::UiMessage::Parsed(m) => {
                                    m.account_keys
                                }
                                solana_transaction_status_client_types::UiMessage::Raw(_) => {
                                    Vec::new()
                                }
                            },
                            _ => Vec::new(),
                        };
                        let mut meta = full.meta;
                        if let Some(m) = meta.as_mut() {
                            use solana_transaction_status_client_types::option_serializer::OptionSerializer;
                            m.inner_instructions = OptionSerializer::Skip;
                            m.log_messages = OptionSerializer::Skip;
                            m.return_data = OptionSerializer::Skip;
                            m.compute_units_consumed = OptionSerializer::Skip;
                        }
                        Ok(EncodedTransactionWithStatusMeta {
                            transaction: EncodedTransaction::Accounts(UiAccountsList {
                                signatures: r
                                    .transaction
                                    .signatures
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect(),
                                account_keys,
                            }),
                            meta,
                            version: full.version,
                        })
                    })
                    .collect::<Result<Vec<_>, RpcError>>()?,
            ),
            None,
        ),
    };
    to_value(UiConfirmedBlock {
        previous_blockhash: block.previous_blockhash.to_string(),
        blockhash: block.blockhash.to_string(),
        parent_slot: block.parent_slot,
        transactions,
        signatures,
        rewards: cfg.rewards.unwrap_or(true).then(Vec::new),
        num_reward_partitions: None,
        block_time: Some(block.block_time),
        block_height: Some(block.block_height),
    })
}

fn token_accounts_by_owner(node: &Node, p: &Params) -> Result<Value, RpcError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Filter {
        mint: Option<String>,
        program_id: Option<String>,
    }
    let owner = p.pubkey(0)?;
    let filter: Filter = p.required(1)?;
    let cfg: RpcAccountInfoConfig = p.optional(2)?.unwrap_or_default();
    let chain = node.chain();
    let c = commitment_of(cfg.commitment);
    let slot = check_min_context(&chain, c, cfg.min_context_slot)?;
    let bank = chain.bank(c);
    let (program, mint) = match (filter.mint, filter.program_id) {
        (Some(mint), None) => {
            let mint = parse_pubkey(&mint)?;
            let account = bank
                .get_account(&mint)
                .ok_or_else(|| RpcError::invalid_params("Invalid param: could not find mint"))?;
            (*account.owner(), Some(mint))
        }
        (None, Some(program)) => (parse_pubkey(&program)?, None),
        _ => {
            return Err(RpcError::invalid_params(
                "Invalid params: expected exactly one of `mint` or `programId`",
            ));
        }
    };
    if !crate::token::is_token_program_id(&program) {
        return Err(RpcError::invalid_params(
            "Invalid param: unrecognized Token program id",
        ));
    }
    let encoding = cfg.encoding.unwrap_or(UiAccountEncoding::Binary);
    let accounts = bank
        .get_program_accounts(&program, &Default::default())
        .map_err(|e| RpcError::internal(format!("scan failed: {e}")))?;
    let mut out = Vec::new();
    for (key, account) in accounts {
        let Some((account_mint, _)) = crate::token::parse_token_account(&account) else {
            continue;
        };
        if crate::token::token_account_owner(&account) != Some(owner)
            || mint.is_some_and(|m| m != account_mint)
        {
            continue;
        }
        out.push(RpcKeyedAccount {
            pubkey: key.to_string(),
            account: encode_at(&bank, &account, encoding, cfg.data_slice)?,
        });
    }
    out.sort_by(|a, b| a.pubkey.cmp(&b.pubkey));
    with_context(slot, out)
}
