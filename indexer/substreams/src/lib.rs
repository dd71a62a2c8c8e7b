//! Substreams map module for the scale-out indexing path (issue #7, ADR 0017):
//! `map_events` reads `sf.solana.type.v1.Block`s and emits `advancia-pay`'s events in the
//! indexer's row shape (`advancia.indexer.v1.Rows`), with the same decoder and value
//! mapping as `advancia-indexer` (both from `advancia-indexer-rows`).
//!
//! `block_rows` is the pure function behind the handler, callable natively; `rpc_block`
//! converts JSON-RPC `getBlock` output into the Firehose block, for running the module on
//! blocks recorded from an RPC node.

pub mod pb;
pub mod rpc_block;

use advancia_indexer_rows::{InnerInstruction, PROGRAM_ID, TABLES, TxError, transaction_rows};
use substreams_solana::pb::sf::solana::r#type::v1::{Block, ConfirmedTransaction};

pub use pb::advancia::indexer::v1::{Column, Row, Rows};

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("slot {slot}: transaction {index} has no signature")]
    Unsigned { slot: u64, index: usize },
    #[error("transaction {signature}: {source}")]
    Transaction {
        signature: String,
        #[source]
        source: TxError,
    },
}

/// The rows of every event of our program in `block`, in chain order. Failed transactions
/// (and ones without status meta) had no effects, so they have no events.
pub fn block_rows(block: &Block) -> Result<Rows, ModuleError> {
    let block_time = block.block_time.as_option().map(|t| t.timestamp);
    let mut rows = Vec::new();
    for (index, tx) in block.transactions.iter().enumerate() {
        let Some(meta) = tx.meta.as_option() else {
            continue;
        };
        if meta.err.is_set() || !mentions_program(tx) {
            continue;
        }
        let Some(message) = tx
            .transaction
            .as_option()
            .and_then(|t| t.message.as_option())
        else {
            continue;
        };
        let signature = tx
            .transaction
            .as_option()
            .and_then(|t| t.signatures.first())
            .map(|s| bs58::encode(s).into_string())
            .ok_or(ModuleError::Unsigned {
                slot: block.slot,
                index,
            })?;
        // v0 messages: static keys, then the lookup tables' writable, then readonly keys.
        let keys: Vec<&[u8]> = message
            .account_keys
            .iter()
            .chain(&meta.loaded_writable_addresses)
            .chain(&meta.loaded_readonly_addresses)
            .map(Vec::as_slice)
            .collect();
        let inner = meta.inner_instructions.iter().flat_map(|group| {
            group
                .instructions
                .iter()
                .enumerate()
                .map(|(i, ix)| InnerInstruction {
                    ix_index: group.index,
                    inner_index: u32::try_from(i).unwrap_or(u32::MAX),
                    program_id_index: ix.program_id_index,
                    data: &ix.data,
                })
        });
        let events = transaction_rows(&keys, &PROGRAM_ID, inner).map_err(|source| {
            ModuleError::Transaction {
                signature: signature.clone(),
                source,
            }
        })?;
        for e in events {
            let table = &TABLES[e.table];
            rows.push(Row {
                table: table.name.to_string(),
                signature: signature.clone(),
                ix_index: e.ix_index,
                inner_index: e.inner_index,
                slot: block.slot,
                block_time,
                columns: table
                    .cols
                    .iter()
                    .zip(e.values)
                    .map(|((name, _), value)| Column {
                        name: (*name).to_string(),
                        value,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
        }
    }
    Ok(Rows {
        rows,
        ..Default::default()
    })
}

/// Cheap pre-filter: our program is among the transaction's keys (an inner instruction of
/// ours needs its id in the key list).
fn mentions_program(tx: &ConfirmedTransaction) -> bool {
    let in_message = tx
        .transaction
        .as_option()
        .and_then(|t| t.message.as_option())
        .is_some_and(|m| m.account_keys.iter().any(|k| k[..] == PROGRAM_ID[..]));
    in_message
        || tx.meta.as_option().is_some_and(|m| {
            m.loaded_readonly_addresses
                .iter()
                .chain(&m.loaded_writable_addresses)
                .any(|k| k[..] == PROGRAM_ID[..])
        })
}

/// The wasm export. The macro generates `#[no_mangle] extern "C" fn map_events(ptr, len)`
/// (decode the block, call `__impl_map_events`, hand the encoded output to the runtime) and
/// `__impl_map_events(block)` with the original signature, which native tests call.
#[allow(unsafe_code)]
mod handler {
    use super::{Block, Rows, block_rows};

    #[substreams::handlers::map]
    fn map_events(block: Block) -> Result<Rows, substreams::errors::Error> {
        Ok(block_rows(&block)?)
    }
}

pub use handler::__impl_map_events as map_events;
