//! Websocket subscriptions (Solana's PubSub): signature, account, logs and slot.
//! Each connection keeps its own subscriptions and reacts to the node's [`Event`]s.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use serde_json::{Value, json};
use solana_account::AccountSharedData;
use solana_account_decoder_client_types::{UiAccountEncoding, UiDataSliceConfig};
use solana_clock::Slot;
use solana_pubkey::Pubkey;
use solana_rpc_client_types::config::{
    RpcAccountInfoConfig, RpcProgramAccountsConfig, RpcSignatureSubscribeConfig,
    RpcTransactionLogsConfig, RpcTransactionLogsFilter,
};
use solana_rpc_client_types::filter::RpcFilterType;
use solana_rpc_client_types::response::{RpcLogsResponse, RpcResponseContext};
use solana_signature::Signature;
use tokio::sync::broadcast::error::RecvError;

use crate::Node;
use crate::chain::{Chain, Commitment, Event, TxRecord};
use crate::encode::encode_account;
use crate::rpc::{Params, RpcError, commitment_of, parse_pubkey, parse_signature};

struct ProgramSub {
    program: Pubkey,
    commitment: Commitment,
    encoding: UiAccountEncoding,
    filters: Vec<RpcFilterType>,
}

struct SignatureSub {
    signature: Signature,
    commitment: Commitment,
}

struct AccountSub {
    address: Pubkey,
    commitment: Commitment,
    encoding: UiAccountEncoding,
    slice: Option<UiDataSliceConfig>,
    last: Option<AccountSharedData>,
}

enum LogsFilter {
    All,
    Mentions(Pubkey),
}

struct LogsSub {
    filter: LogsFilter,
    commitment: Commitment,
}

#[derive(Default)]
struct Subscriptions {
    next_id: u64,
    signatures: HashMap<u64, SignatureSub>,
    accounts: HashMap<u64, AccountSub>,
    logs: HashMap<u64, LogsSub>,
    programs: HashMap<u64, ProgramSub>,
    slots: Vec<u64>,
}

fn notification(method: &str, subscription: u64, result: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": method,
        "params": { "result": result, "subscription": subscription },
    })
}

fn with_context(slot: Slot, value: impl serde::Serialize) -> Value {
    json!({ "context": RpcResponseContext::new(slot), "value": value })
}

fn signature_note(id: u64, record: &TxRecord, slot: Slot) -> Value {
    let err: Option<solana_transaction_status_client_types::UiTransactionError> =
        record.meta.status.clone().err().map(Into::into);
    notification(
        "signatureNotification",
        id,
        with_context(slot, json!({ "err": err })),
    )
}

fn mentions(record: &TxRecord, key: &Pubkey) -> bool {
    record
        .transaction
        .message
        .static_account_keys()
        .contains(key)
        || record.meta.loaded_addresses.writable.contains(key)
        || record.meta.loaded_addresses.readonly.contains(key)
}

impl Subscriptions {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Handles one request; returns the response and any immediate notifications.
    fn request(&mut self, node: &Node, request: &Value) -> Vec<Value> {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let method = request.get("method").and_then(Value::as_str).unwrap_or("");
        let params = match request.get("params") {
            Some(Value::Array(a)) => Params(a.clone()),
            _ => Params(Vec::new()),
        };
        let mut extra = Vec::new();
        let result = self.dispatch(node, method, &params, &mut extra);
        let mut out = vec![match result {
            Ok(v) => json!({ "jsonrpc": "2.0", "result": v, "id": id }),
            Err(e) => json!({ "jsonrpc": "2.0", "error": e.to_json(), "id": id }),
        }];
        out.extend(extra);
        out
    }

    fn dispatch(
        &mut self,
        node: &Node,
        method: &str,
        p: &Params,
        extra: &mut Vec<Value>,
    ) -> Result<Value, RpcError> {
        match method {
            "signatureSubscribe" => {
                let signature = parse_signature(&p.required::<String>(0)?)?;
                let cfg: RpcSignatureSubscribeConfig = p.optional(1)?.unwrap_or_default();
                let commitment = commitment_of(cfg.commitment);
                let id = self.id();
                // Already there at the requested commitment: notify right away.
                let chain = node.chain();
                let done = chain.transaction(&signature).and_then(|r| {
                    let reached = chain.slot_commitment(r.slot)?;
                    (reached >= commitment).then(|| signature_note(id, r, chain.slot(commitment)))
                });
                match done {
                    Some(note) => extra.push(note),
                    None => {
                        self.signatures.insert(
                            id,
                            SignatureSub {
                                signature,
                                commitment,
                            },
                        );
                    }
                }
                Ok(json!(id))
            }
            "accountSubscribe" => {
                let address = parse_pubkey(&p.required::<String>(0)?)?;
                let cfg: RpcAccountInfoConfig = p.optional(1)?.unwrap_or_default();
                let commitment = commitment_of(cfg.commitment);
                let encoding = cfg.encoding.unwrap_or(UiAccountEncoding::Binary);
                let last = node.chain().bank(commitment).get_account(&address);
                if let Some(a) = &last {
                    // Reject an unusable encoding now rather than at the first change.
                    encode_account(a, encoding, cfg.data_slice)?;
                }
                let id = self.id();
                self.accounts.insert(
                    id,
                    AccountSub {
                        address,
                        commitment,
                        encoding,
                        slice: cfg.data_slice,
                        last,
                    },
                );
                Ok(json!(id))
            }
            "logsSubscribe" => {
                let filter: RpcTransactionLogsFilter = p.required(0)?;
                let filter = match filter {
                    RpcTransactionLogsFilter::All | RpcTransactionLogsFilter::AllWithVotes => {
                        LogsFilter::All
                    }
                    RpcTransactionLogsFilter::Mentions(keys) => match keys.as_slice() {
                        [one] => LogsFilter::Mentions(parse_pubkey(one)?),
                        _ => {
                            return Err(RpcError::invalid_params(
                                "Invalid Request: Only 1 address supported",
                            ));
                        }
                    },
                };
                let cfg: Option<RpcTransactionLogsConfig> = p.optional(1)?;
                let commitment = commitment_of(cfg.and_then(|c| c.commitment));
                let id = self.id();
                self.logs.insert(id, LogsSub { filter, commitment });
                Ok(json!(id))
            }
            "programSubscribe" => {
                let program = parse_pubkey(&p.required::<String>(0)?)?;
                let cfg: RpcProgramAccountsConfig = p.optional(1)?.unwrap_or_default();
                let filters = cfg.filters.unwrap_or_default();
                for f in &filters {
                    f.verify()
                        .map_err(|e| RpcError::invalid_params(format!("Invalid param: {e:?}")))?;
                }
                let id = self.id();
                self.programs.insert(
                    id,
                    ProgramSub {
                        program,
                        commitment: commitment_of(cfg.account_config.commitment),
                        encoding: cfg
                            .account_config
                            .encoding
                            .unwrap_or(UiAccountEncoding::Binary),
                        filters,
                    },
                );
                Ok(json!(id))
            }
            "slotSubscribe" => {
                let id = self.id();
                self.slots.push(id);
                Ok(json!(id))
            }
            "signatureUnsubscribe"
            | "accountUnsubscribe"
            | "logsUnsubscribe"
            | "slotUnsubscribe" => {
                let id: u64 = p.required(0)?;
                let removed = match method {
                    "signatureUnsubscribe" => self.signatures.remove(&id).is_some(),
                    "accountUnsubscribe" => self.accounts.remove(&id).is_some(),
                    "logsUnsubscribe" => self.logs.remove(&id).is_some(),
                    "programUnsubscribe" => self.programs.remove(&id).is_some(),
                    _ => {
                        let before = self.slots.len();
                        self.slots.retain(|s| *s != id);
                        self.slots.len() != before
                    }
                };
                if removed {
                    Ok(json!(true))
                } else {
                    Err(RpcError::invalid_params("Invalid subscription id."))
                }
            }
            _ => Err(RpcError::method_not_found()),
        }
    }

    /// Notifications a node event triggers.
    fn on_event(&mut self, node: &Node, event: &Event) -> Vec<Value> {
        let chain = node.chain();
        let mut out = Vec::new();
        match event {
            Event::Slot { slot, parent, root } => {
                for id in &self.slots {
                    out.push(notification(
                        "slotNotification",
                        *id,
                        json!({ "parent": parent, "root": root, "slot": slot }),
                    ));
                }
                // A fork switch can change processed state without a transaction event.
                self.check_accounts(&chain, Commitment::Processed, &mut out);
            }
            Event::Transaction { signature, slot } => {
                if let Some(record) = chain.transaction(signature) {
                    self.on_transaction(record, *slot, Commitment::Processed, &mut out);
                    self.check_programs(&chain, record, Commitment::Processed, &mut out);
                }
                self.check_accounts(&chain, Commitment::Processed, &mut out);
            }
            Event::Confirmed(slot) | Event::Finalized(slot) => {
                let level = match event {
                    Event::Confirmed(_) => Commitment::Confirmed,
                    _ => Commitment::Finalized,
                };
                for record in chain.slot_transactions(*slot) {
                    self.on_transaction(record, *slot, level, &mut out);
                    self.check_programs(&chain, record, level, &mut out);
                }
                self.check_accounts(&chain, level, &mut out);
            }
        }
        out
    }

    fn on_transaction(
        &mut self,
        record: &TxRecord,
        slot: Slot,
        level: Commitment,
        out: &mut Vec<Value>,
    ) {
        let done: Vec<u64> = self
            .signatures
            .iter()
            .filter(|(_, s)| s.commitment == level && s.signature == record.signature)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.signatures.remove(&id);
            out.push(signature_note(id, record, slot));
        }
        for (id, sub) in &self.logs {
            let matches = match &sub.filter {
                LogsFilter::All => true,
                LogsFilter::Mentions(key) => mentions(record, key),
            };
            if sub.commitment == level && matches {
                let value = RpcLogsResponse {
                    signature: record.signature.to_string(),
                    err: record.meta.status.clone().err().map(Into::into),
                    logs: record.meta.log_messages.clone().unwrap_or_default(),
                };
                out.push(notification(
                    "logsNotification",
                    *id,
                    with_context(slot, value),
                ));
            }
        }
    }

    /// Accounts a transaction wrote that now belong to a subscribed program.
    fn check_programs(
        &self,
        chain: &Chain,
        record: &TxRecord,
        level: Commitment,
        out: &mut Vec<Value>,
    ) {
        if !self.programs.values().any(|s| s.commitment == level) {
            return;
        }
        let bank = chain.bank(level);
        for address in &record.writable_accounts {
            let Some(account) = bank.get_account(address) else {
                continue;
            };
            for (id, sub) in self.programs.iter().filter(|(_, s)| s.commitment == level) {
                if solana_account::ReadableAccount::owner(&account) != &sub.program {
                    continue;
                }
                let data = solana_account::ReadableAccount::data(&account);
                let keep = sub.filters.iter().all(|f| match f {
                    RpcFilterType::DataSize(n) => data.len() as u64 == *n,
                    RpcFilterType::Memcmp(m) => m.bytes_match(data),
                    RpcFilterType::TokenAccountState => {
                        crate::token::parse_token_account(&account).is_some()
                    }
                });
                if !keep {
                    continue;
                }
                if let Ok(ui) = encode_account(&account, sub.encoding, None) {
                    out.push(notification(
                        "programNotification",
                        *id,
                        with_context(
                            bank.slot(),
                            json!({ "pubkey": address.to_string(), "account": ui }),
                        ),
                    ));
                }
            }
        }
    }

    fn check_accounts(&mut self, chain: &Chain, level: Commitment, out: &mut Vec<Value>) {
        if !self.accounts.values().any(|s| s.commitment == level) {
            return;
        }
        let bank = chain.bank(level);
        for (id, sub) in self
            .accounts
            .iter_mut()
            .filter(|(_, s)| s.commitment == level)
        {
            let now = bank.get_account(&sub.address);
            if now == sub.last {
                continue;
            }
            // A closed account reads as an empty system account, as on a validator.
            let shown = now.clone().unwrap_or_else(|| {
                AccountSharedData::new(0, 0, &solana_sdk_ids::system_program::ID)
            });
            if let Ok(ui) = encode_account(&shown, sub.encoding, sub.slice) {
                out.push(notification(
                    "accountNotification",
                    *id,
                    with_context(bank.slot(), ui),
                ));
            }
            sub.last = now;
        }
    }
}

/// Serves one websocket connection until it closes.
pub async fn serve(node: Arc<Node>, mut socket: WebSocket) {
    let mut events = node.subscribe();
    let mut subs = Subscriptions::default();
    loop {
        let outgoing = tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<Value>(&text) {
                    Ok(request) => {
                        let node = node.clone();
                        let mut taken = std::mem::take(&mut subs);
                        let (replies, back) = match tokio::task::spawn_blocking(move || {
                            let replies = taken.request(&node, &request);
                            (replies, taken)
                        })
                        .await
                        {
                            Ok(r) => r,
                            Err(_) => return,
                        };
                        subs = back;
                        replies
                    }
                    Err(_) => vec![json!({
                        "jsonrpc": "2.0",
                        "error": RpcError::parse_error().to_json(),
                        "id": Value::Null,
                    })],
                },
                Some(Ok(Message::Ping(payload))) => {
                    if socket.send(Message::Pong(payload)).await.is_err() {
                        return;
                    }
                    Vec::new()
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => Vec::new(),
            },
            event = events.recv() => match event {
                Ok(event) => {
                    let node = node.clone();
                    let mut taken = std::mem::take(&mut subs);
                    match tokio::task::spawn_blocking(move || {
                        let notes = taken.on_event(&node, &event);
                        (notes, taken)
                    })
                    .await
                    {
                        Ok((notes, back)) => {
                            subs = back;
                            notes
                        }
                        Err(_) => return,
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "websocket subscriber lagged behind node events");
                    Vec::new()
                }
                Err(RecvError::Closed) => return,
            },
        };
        for message in outgoing {
            if socket
                .send(Message::Text(message.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
