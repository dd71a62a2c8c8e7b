//! Helpers for the VM tests: where the optimized wasm is, and the CometBFT `block_results`
//! shape the recorded events are written in (the indexer's future Cosmos source reads it).

use std::path::{Path, PathBuf};

use cosmwasm_std::{Attribute, Event};
use serde_json::{Value, json};

/// Set by `cargo xtask wasm` / `cargo xtask test` for the test run.
pub const WASM_ENV: &str = "ADVANCIA_COSMWASM_WASM";
pub const WASM_FILE: &str = "advancia_pay_cosmwasm.wasm";

pub fn workspace_root() -> PathBuf {
    // <root>/contracts/cosmwasm/vm-tests
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `$ADVANCIA_COSMWASM_WASM`, else `<target dir>/wasm/advancia_pay_cosmwasm.wasm` where
/// `cargo xtask wasm` writes it.
pub fn wasm_path() -> PathBuf {
    if let Some(p) = std::env::var_os(WASM_ENV) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("wasm").join(WASM_FILE)
}

/// The optimized contract, or an error that says how to build it.
pub fn load_wasm() -> Result<Vec<u8>, String> {
    let path = wasm_path();
    std::fs::read(&path).map_err(|e| {
        format!(
            "cannot read the optimized contract at {} ({e}): run `cargo xtask wasm` first \
             (or set {WASM_ENV})",
            path.display()
        )
    })
}

pub fn fixture_path() -> PathBuf {
    workspace_root().join("contracts/cosmwasm/advancia-pay/testdata/vm_block_results.json")
}

/// One message as wasmd reports it: the `message` event naming the sender, the `execute` (or
/// `instantiate`) event and the contract's `wasm` event (both led by `_contract_address`).
pub struct RecordedTx {
    /// `MsgInstantiateContract` (event `instantiate`) instead of `MsgExecuteContract`.
    pub instantiate: bool,
    pub sender: String,
    pub contract: String,
    pub attributes: Vec<Attribute>,
    pub events: Vec<Event>,
}

fn attr(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": value, "index": true })
}

fn tx_result(tx: &RecordedTx) -> Value {
    let mut wasm = vec![attr("_contract_address", &tx.contract)];
    wasm.extend(tx.attributes.iter().map(|a| attr(&a.key, &a.value)));
    let (msg_type, event_type) = if tx.instantiate {
        ("/cosmwasm.wasm.v1.MsgInstantiateContract", "instantiate")
    } else {
        ("/cosmwasm.wasm.v1.MsgExecuteContract", "execute")
    };
    let mut events = vec![
        json!({ "type": "message", "attributes": [
            attr("action", msg_type),
            attr("sender", &tx.sender),
            attr("module", "wasm"),
        ]}),
        json!({ "type": event_type, "attributes": [attr("_contract_address", &tx.contract)] }),
        json!({ "type": "wasm", "attributes": wasm }),
    ];
    // Custom events become `wasm-<type>` events, also led by the contract address.
    for e in &tx.events {
        let mut attributes = vec![attr("_contract_address", &tx.contract)];
        attributes.extend(e.attributes.iter().map(|a| attr(&a.key, &a.value)));
        events.push(json!({ "type": format!("wasm-{}", e.ty), "attributes": attributes }));
    }
    json!({
        "code": 0,
        "data": null,
        "log": "",
        "info": "",
        "events": events,
        "codespace": "",
    })
}

/// A JSON array of `block_results` JSON-RPC responses, one block per transaction starting at
/// `first_height` (CometBFT 0.38: attributes as plain strings with an `index` flag).
pub fn block_results(first_height: u64, txs: &[RecordedTx]) -> Value {
    Value::Array(
        txs.iter()
            .zip(first_height..)
            .map(|(tx, height)| {
                json!({
                    "jsonrpc": "2.0",
                    "id": -1,
                    "result": {
                        "height": height.to_string(),
                        "txs_results": [tx_result(tx)],
                        "finalize_block_events": [],
                        "validator_updates": [],
                        "consensus_param_updates": null,
                    }
                })
            })
            .collect(),
    )
}
