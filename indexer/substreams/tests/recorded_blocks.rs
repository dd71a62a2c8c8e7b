//! The module on blocks recorded from the local node (`getBlock` JSON, written by the
//! indexer's `substreams_module_emits_the_indexers_rows_from_the_same_blocks` test with
//! `ADVANCIA_RECORD_SUBSTREAMS_FIXTURES=1`) must emit exactly the rows the indexer wrote to
//! Postgres for the same transactions (recorded beside them), row by row.
#![allow(clippy::unwrap_used)]

use advancia_indexer_rows::TABLES;
use advancia_substreams::pb::advancia::indexer::v1::Rows;
use advancia_substreams::rpc_block::block_from_rpc_json;
use serde_json::{Value, json};
use substreams_solana::pb::sf::solana::r#type::v1::Block;

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn blocks() -> Vec<Block> {
    fixture("blocks.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|b| block_from_rpc_json(b["slot"].as_u64().unwrap(), &b["block"]).unwrap())
        .collect()
}

/// A module row in the recorded rows' JSON form (`jsonb` column values parsed).
fn as_recorded(rows: &Rows) -> Vec<Value> {
    rows.rows
        .iter()
        .map(|r| {
            let table = TABLES.iter().find(|t| t.name == r.table).unwrap();
            let columns: Vec<Value> = r
                .columns
                .iter()
                .zip(table.cols)
                .map(|(c, (name, ty))| {
                    assert_eq!(c.name, *name);
                    let value = match (&c.value, *ty) {
                        (None, _) => Value::Null,
                        (Some(v), "jsonb") => serde_json::from_str(v).unwrap(),
                        (Some(v), _) => Value::String(v.clone()),
                    };
                    json!({"name": c.name, "value": value})
                })
                .collect();
            json!({
                "table": r.table, "signature": r.signature, "ix_index": r.ix_index,
                "inner_index": r.inner_index, "slot": r.slot, "block_time": r.block_time,
                "columns": columns,
            })
        })
        .collect()
}

fn key(v: &Value) -> (String, u64, u64, String) {
    (
        v["signature"].as_str().unwrap().to_string(),
        v["ix_index"].as_u64().unwrap(),
        v["inner_index"].as_u64().unwrap(),
        v["table"].as_str().unwrap().to_string(),
    )
}

#[test]
fn module_emits_the_indexers_rows_for_the_recorded_blocks() {
    let mut got = Vec::new();
    for block in blocks() {
        let rows = advancia_substreams::map_events(block).unwrap();
        got.extend(as_recorded(&rows));
    }
    let mut expected: Vec<Value> = fixture("indexer_rows.json").as_array().unwrap().clone();
    got.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }
    // Every table is exercised.
    let tables: std::collections::BTreeSet<_> = got.iter().map(|r| key(r).3).collect();
    assert_eq!(tables.len(), TABLES.len(), "{tables:?}");
}

#[test]
fn converter_keeps_what_the_rpc_returned() {
    let raw = fixture("blocks.json");
    let first = &raw[0];
    let block = block_from_rpc_json(first["slot"].as_u64().unwrap(), &first["block"]).unwrap();
    let rpc = &first["block"];
    assert_eq!(block.blockhash, rpc["blockhash"].as_str().unwrap());
    assert_eq!(
        block.previous_blockhash,
        rpc["previousBlockhash"].as_str().unwrap()
    );
    assert_eq!(block.parent_slot, rpc["parentSlot"].as_u64().unwrap());
    assert_eq!(
        block.block_time.as_option().map(|t| t.timestamp),
        rpc["blockTime"].as_i64()
    );
    let txs = rpc["transactions"].as_array().unwrap();
    assert_eq!(block.transactions.len(), txs.len());
    for (tx, rpc_tx) in block.transactions.iter().zip(txs) {
        let t = tx.transaction.as_option().unwrap();
        let m = t.message.as_option().unwrap();
        let rpc_m = &rpc_tx["transaction"]["message"];
        assert_eq!(
            bs58::encode(&t.signatures[0]).into_string(),
            rpc_tx["transaction"]["signatures"][0].as_str().unwrap()
        );
        let keys: Vec<String> = m
            .account_keys
            .iter()
            .map(|k| bs58::encode(k).into_string())
            .collect();
        let rpc_keys: Vec<&str> = rpc_m["accountKeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(keys, rpc_keys);
        assert_eq!(
            m.instructions.len(),
            rpc_m["instructions"].as_array().unwrap().len()
        );
        let meta = tx.meta.as_option().unwrap();
        assert_eq!(meta.fee, rpc_tx["meta"]["fee"].as_u64().unwrap());
        assert_eq!(meta.err.is_set(), !rpc_tx["meta"]["err"].is_null());
        assert_eq!(
            meta.log_messages.len(),
            rpc_tx["meta"]["logMessages"].as_array().unwrap().len()
        );
        let inner: usize = meta
            .inner_instructions
            .iter()
            .map(|g| g.instructions.len())
            .sum();
        let rpc_inner: usize = rpc_tx["meta"]["innerInstructions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["instructions"].as_array().unwrap().len())
            .sum();
        assert_eq!(inner, rpc_inner);
        assert!(
            inner > 0,
            "our transactions emit events as inner instructions"
        );
    }
}

#[test]
fn converter_rejects_malformed_input() {
    let raw = fixture("blocks.json");
    let mut bad = raw[0]["block"].clone();
    bad["transactions"][0]["transaction"]["message"]["accountKeys"][0] = json!("0OIl");
    assert!(matches!(
        block_from_rpc_json(1, &bad),
        Err(advancia_substreams::rpc_block::ConvertError::Base58 {
            field: "accountKeys",
            ..
        })
    ));
    assert!(matches!(
        block_from_rpc_json(1, &json!({"blockhash": 3})),
        Err(advancia_substreams::rpc_block::ConvertError::Json(_))
    ));
}

#[test]
fn failed_and_foreign_transactions_have_no_rows() {
    let mut block = blocks().remove(0);
    assert!(
        !advancia_substreams::block_rows(&block)
            .unwrap()
            .rows
            .is_empty()
    );
    // The same transactions marked failed: no effects, no rows.
    let mut failed = block.clone();
    for tx in &mut failed.transactions {
        let mut meta = tx.meta.as_option().unwrap().clone();
        meta.err = substreams_solana::pb::sf::solana::r#type::v1::TransactionError {
            err: b"{\"InstructionError\":[0,\"Custom\"]}".to_vec(),
        }
        .into();
        tx.meta = meta.into();
    }
    assert!(
        advancia_substreams::block_rows(&failed)
            .unwrap()
            .rows
            .is_empty()
    );
    // Our program id replaced by another: nothing of ours in the block.
    for tx in &mut block.transactions {
        let mut t = tx.transaction.as_option().unwrap().clone();
        let mut m = t.message.as_option().unwrap().clone();
        for k in &mut m.account_keys {
            if k[..] == advancia_indexer_rows::PROGRAM_ID[..] {
                *k = vec![9; 32];
            }
        }
        t.message = m.into();
        tx.transaction = t.into();
    }
    assert!(
        advancia_substreams::block_rows(&block)
            .unwrap()
            .rows
            .is_empty()
    );
}

#[test]
fn output_round_trips_through_protobuf() {
    use buffa::Message as _;
    let mut all = Rows::default();
    for block in blocks() {
        all.rows
            .extend(advancia_substreams::map_events(block).unwrap().rows);
    }
    // NULL columns (unset) and empty strings must stay distinct on the wire.
    assert!(
        all.rows
            .iter()
            .any(|r| r.columns.iter().any(|c| c.value.is_none()))
    );
    let bytes = all.encode_to_vec();
    let back = Rows::decode_from_slice(&bytes).unwrap();
    assert_eq!(back, all);
}
