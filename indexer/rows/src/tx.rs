//! A transaction's event rows from its account keys and inner instructions, in chain order
//! ((top-level instruction, inner index)) — the positions the indexer keys rows by.

use crate::events::{DecodeError, Event, decode_event_ix};
use crate::values::event_values;

/// One inner instruction as both sources see it.
#[derive(Debug, Clone, Copy)]
pub struct InnerInstruction<'a> {
    /// The top-level instruction it ran under (`innerInstructions[].index`).
    pub ix_index: u32,
    /// Its position in that instruction's flattened inner-instruction list.
    pub inner_index: u32,
    /// Index into the transaction's keys (static, then loaded writable, then loaded readonly).
    pub program_id_index: u32,
    pub data: &'a [u8],
}

/// One event of a transaction with its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub ix_index: u32,
    pub inner_index: u32,
    /// Index into [`crate::TABLES`].
    pub table: usize,
    /// Table-specific values in `Table::cols` order.
    pub values: Vec<Option<String>>,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("program index {0} out of range of the transaction's keys")]
    ProgramIndexOutOfRange(u32),
    #[error("event at instruction {ix_index}.{inner_index}: {source}")]
    Event {
        ix_index: u32,
        inner_index: u32,
        source: DecodeError,
    },
}

/// The event rows of a successful transaction (a failed one has no effects, hence no
/// events: the caller skips it). `keys` are the full key list, lookup-table keys included.
pub fn transaction_rows<'a, K: AsRef<[u8]>>(
    keys: &[K],
    program_id: &[u8; 32],
    inner: impl IntoIterator<Item = InnerInstruction<'a>>,
) -> Result<Vec<EventRow>, TxError> {
    let mut rows = Vec::new();
    for ix in inner {
        let key = usize::try_from(ix.program_id_index)
            .ok()
            .and_then(|i| keys.get(i))
            .ok_or(TxError::ProgramIndexOutOfRange(ix.program_id_index))?;
        if key.as_ref() != program_id {
            continue;
        }
        let event = decode_event_ix(ix.data).map_err(|source| TxError::Event {
            ix_index: ix.ix_index,
            inner_index: ix.inner_index,
            source,
        })?;
        if let Some(event) = event {
            let (table, values) = event_values(&event);
            rows.push(EventRow {
                ix_index: ix.ix_index,
                inner_index: ix.inner_index,
                table,
                values,
                event,
            });
        }
    }
    rows.sort_by_key(|r| (r.ix_index, r.inner_index));
    Ok(rows)
}
