//! Column-wise rows of a batch: every decoded event becomes one row of its table, held as
//! one vector per column so a whole batch goes to Postgres in one
//! `INSERT … SELECT … FROM unnest(…)` per table (or one `COPY`, in the benchmark).
//!
//! Extra (table-specific) columns travel as text and are cast in SQL (`::numeric`,
//! `::jsonb`, …): one bind type for every column keeps the statement builder generic, and
//! the cast costs far less than a round trip per row.

use std::fmt::Write as _;

use advancia_pay::client::{AdvanciaEvent, BridgeEvent};

use crate::IndexerError;
use crate::sink::i64_of;
use crate::source::{ChainTransaction, DecodedEvent};

// The tables and each event's values live in the I/O-free `advancia-indexer-rows` crate,
// shared with the Substreams module (ADR 0017).
pub use advancia_indexer_rows::{
    ADMIN, ATTESTATIONS, BRIDGE, ESCROWS, FACILITIES, KEY_COLUMNS, PAYMENTS, REFUNDS, SETTLEMENTS,
    TABLES, Table,
};

/// Rows of one table, column-wise.
#[derive(Debug, Default, Clone)]
pub struct TableRows {
    pub signature: Vec<String>,
    pub ix_index: Vec<i32>,
    pub inner_index: Vec<i32>,
    pub slot: Vec<i64>,
    pub commitment: Vec<&'static str>,
    pub block_time: Vec<Option<i64>>,
    /// Position of the row among all rows of the batch (chain order), from which its stream
    /// position is derived.
    pub ordinal: Vec<i64>,
    /// One vector per table-specific column, in `Table::cols` order.
    pub cols: Vec<Vec<Option<String>>>,
}

impl TableRows {
    pub fn len(&self) -> usize {
        self.signature.len()
    }

    pub fn is_empty(&self) -> bool {
        self.signature.is_empty()
    }
}

/// The event rows of a batch, one [`TableRows`] per entry of [`TABLES`].
#[derive(Debug, Clone)]
pub struct EventRows {
    pub tables: [TableRows; 8],
    len: i64,
}

/// The `transactions` rows of a batch, column-wise.
#[derive(Debug, Default, Clone)]
pub struct TransactionRows {
    pub signature: Vec<String>,
    pub slot: Vec<i64>,
    pub commitment: Vec<&'static str>,
    pub failed: Vec<bool>,
    pub block_time: Vec<Option<i64>>,
    pub event_count: Vec<i32>,
    /// Instruction names joined by `,` (one text per row: `unnest` flattens 2-D arrays).
    pub instructions: Vec<String>,
}

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl TransactionRows {
    pub fn of<'a>(
        batch: impl IntoIterator<Item = &'a ChainTransaction>,
    ) -> Result<Self, IndexerError> {
        let mut r = Self::default();
        for t in batch {
            r.signature.push(t.signature.clone());
            r.slot.push(i64_of(t.slot)?);
            r.commitment.push(t.commitment.as_str());
            r.failed.push(t.failed);
            r.block_time.push(t.block_time);
            r.event_count
                .push(i32::try_from(t.events.len() + t.bridge_events.len()).unwrap_or(i32::MAX));
            r.instructions.push(t.instructions.join(","));
        }
        Ok(r)
    }
}

fn rows_error(e: advancia_indexer_rows::DecodeError) -> IndexerError {
    IndexerError::Malformed(format!("event not decodable by advancia-indexer-rows: {e}"))
}

/// The table a bridge event belongs to and its values (`Table::cols` order): messages to
/// `bridge_messages` in the EVM source's format, configuration to `admin_events`.
pub fn bridge_event_values(
    event: &BridgeEvent,
) -> Result<(usize, Vec<Option<String>>), IndexerError> {
    let event = advancia_indexer_rows::Event::try_from(event).map_err(rows_error)?;
    Ok(advancia_indexer_rows::event_values(&event))
}

/// The table an event belongs to and its table-specific values (`Table::cols` order).
/// The event is re-encoded and decoded by `advancia-indexer-rows`, the decoder the
/// Substreams module runs, so both produce their values the same way.
pub fn event_values(event: &AdvanciaEvent) -> Result<(usize, Vec<Option<String>>), IndexerError> {
    let event = advancia_indexer_rows::Event::try_from(event).map_err(rows_error)?;
    Ok(advancia_indexer_rows::event_values(&event))
}

/// The event rows of one transaction in chain order ((instruction, inner index) across
/// both kinds of event): instruction, inner index, table (index into [`TABLES`]) and the
/// table-specific values.
pub type EventValues = (u32, u32, usize, Vec<Option<String>>);

pub fn transaction_event_values(t: &ChainTransaction) -> Result<Vec<EventValues>, IndexerError> {
    let mut all: Vec<EventValues> = t
        .events
        .iter()
        .map(|e| {
            let (table, values) = event_values(&e.event)?;
            Ok((e.ix_index, e.inner_index, table, values))
        })
        .chain(t.bridge_events.iter().map(|e| {
            let (table, values) = bridge_event_values(&e.event)?;
            Ok((e.ix_index, e.inner_index, table, values))
        }))
        .collect::<Result<_, IndexerError>>()?;
    if !t.bridge_events.is_empty() {
        all.sort_by_key(|e| (e.0, e.1));
    }
    Ok(all)
}

impl EventRows {
    pub fn new() -> Self {
        Self {
            tables: std::array::from_fn(|i| TableRows {
                cols: vec![Vec::new(); TABLES[i].cols.len()],
                ..TableRows::default()
            }),
            len: 0,
        }
    }

    /// Rows of every event of `batch`.
    pub fn of<'a>(
        batch: impl IntoIterator<Item = &'a ChainTransaction>,
    ) -> Result<Self, IndexerError> {
        let mut rows = Self::new();
        for t in batch {
            for (ix, inner, table, values) in transaction_event_values(t)? {
                rows.push_values(t, ix, inner, table, values)?;
            }
        }
        Ok(rows)
    }

    pub fn push(&mut self, t: &ChainTransaction, e: &DecodedEvent) -> Result<(), IndexerError> {
        let (table, values) = event_values(&e.event)?;
        self.push_values(t, e.ix_index, e.inner_index, table, values)
    }

    fn push_values(
        &mut self,
        t: &ChainTransaction,
        ix_index: u32,
        inner_index: u32,
        table: usize,
        values: Vec<Option<String>>,
    ) -> Result<(), IndexerError> {
        let r = &mut self.tables[table];
        r.signature.push(t.signature.clone());
        r.ix_index.push(i32_of(ix_index));
        r.inner_index.push(i32_of(inner_index));
        r.slot.push(i64_of(t.slot)?);
        r.commitment.push(t.commitment.as_str());
        r.block_time.push(t.block_time);
        r.ordinal.push(self.len);
        self.len += 1;
        for (col, v) in r.cols.iter_mut().zip(values) {
            col.push(v);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.tables.iter().map(TableRows::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for EventRows {
    fn default() -> Self {
        Self::new()
    }
}

/// `INSERT INTO <schema>.<table> (…) SELECT … FROM unnest($3…) ON CONFLICT DO NOTHING` with
/// `$1` the chain, `$2` the stream position of ordinal 0, then signature, ix, inner, slot,
/// commitment, block time, ordinal and the extra columns as text arrays.
pub fn insert_sql(schema: &str, t: &Table) -> String {
    let names: Vec<&str> = t.cols.iter().map(|c| c.0).collect();
    let mut select = String::from("$1, u.s, u.ix, u.inn, u.sl, u.cm, u.bt, $2 + u.ord");
    let mut args = String::from(
        "$3::text[], $4::int4[], $5::int4[], $6::int8[], $7::text[], $8::int8[], $9::int8[]",
    );
    let mut alias = String::from("s, ix, inn, sl, cm, bt, ord");
    for (i, (_, ty)) in t.cols.iter().enumerate() {
        let _ = write!(select, ", u.c{i}::{ty}");
        let _ = write!(args, ", ${}::text[]", i + 10);
        let _ = write!(alias, ", c{i}");
    }
    format!(
        "INSERT INTO {schema}.{} ({KEY_COLUMNS}, seq, {}) SELECT {select} FROM unnest({args}) AS u({alias})
         ON CONFLICT DO NOTHING",
        t.name,
        names.join(", ")
    )
}

/// Appends one `COPY … FROM STDIN` (text format) field.
fn copy_field(buf: &mut String, v: Option<&str>) {
    match v {
        None => buf.push_str("\\N"),
        Some(v) => {
            for c in v.chars() {
                match c {
                    '\\' => buf.push_str("\\\\"),
                    '\t' => buf.push_str("\\t"),
                    '\n' => buf.push_str("\\n"),
                    '\r' => buf.push_str("\\r"),
                    c => buf.push(c),
                }
            }
        }
    }
}

/// The rows of `t` as `COPY` text (columns: [`KEY_COLUMNS`], then `Table::cols`).
pub fn copy_text(chain: &str, rows: &TableRows) -> String {
    let mut buf = String::with_capacity(rows.len() * 400);
    for i in 0..rows.len() {
        copy_field(&mut buf, Some(chain));
        buf.push('\t');
        copy_field(&mut buf, Some(&rows.signature[i]));
        let _ = write!(
            buf,
            "\t{}\t{}\t{}\t{}\t",
            rows.ix_index[i], rows.inner_index[i], rows.slot[i], rows.commitment[i]
        );
        match rows.block_time[i] {
            Some(b) => {
                let _ = write!(buf, "{b}");
            }
            None => buf.push_str("\\N"),
        }
        for col in &rows.cols {
            buf.push('\t');
            copy_field(&mut buf, col[i].as_deref());
        }
        buf.push('\n');
    }
    buf
}

/// The `transactions` rows as `COPY` text (chain, signature, slot, commitment, failed,
/// block_time, event_count, instructions).
pub fn transactions_copy_text(chain: &str, rows: &TransactionRows) -> String {
    let mut buf = String::with_capacity(rows.signature.len() * 160);
    for i in 0..rows.signature.len() {
        copy_field(&mut buf, Some(chain));
        buf.push('\t');
        copy_field(&mut buf, Some(&rows.signature[i]));
        let _ = write!(
            buf,
            "\t{}\t{}\t{}\t",
            rows.slot[i],
            rows.commitment[i],
            if rows.failed[i] { 't' } else { 'f' }
        );
        match rows.block_time[i] {
            Some(b) => {
                let _ = write!(buf, "{b}");
            }
            None => buf.push_str("\\N"),
        }
        let _ = writeln!(
            buf,
            "\t{}\t{{{}}}",
            rows.event_count[i], rows.instructions[i]
        );
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_casts_each_extra_column() {
        let sql = insert_sql("indexer", &TABLES[ATTESTATIONS]);
        assert!(sql.contains("u.c2::smallint"), "{sql}");
        assert!(sql.contains("$13::text[]"), "{sql}");
        assert!(!sql.contains("$14"), "{sql}");
        assert!(sql.contains("(chain, signature, ix_index, inner_index, slot, commitment, block_time, seq, kind, wallet, level, expires_at)"), "{sql}");
    }

    /// anchor's encoding of an event (8-byte discriminator + borsh body).
    fn anchor_data(e: &AdvanciaEvent) -> Vec<u8> {
        use AdvanciaEvent as E;
        use anchor_lang::Event as _;
        match e {
            E::ConfigUpdated(v) => v.data(),
            E::AdminProposed(v) => v.data(),
            E::AdminAccepted(v) => v.data(),
            E::AssetSet(v) => v.data(),
            E::FacilityRegistered(v) => v.data(),
            E::FacilityPayoutUpdated(v) => v.data(),
            E::FacilityDeactivated(v) => v.data(),
            E::PaymentMade(v) => v.data(),
            E::PaymentRefunded(v) => v.data(),
            E::EscrowOpened(v) => v.data(),
            E::EscrowReleased(v) => v.data(),
            E::EscrowRefunded(v) => v.data(),
            E::EscrowClosed(v) => v.data(),
            E::AttestationWritten(v) => v.data(),
            E::AttestationRevoked(v) => v.data(),
            E::BatchCommitted(v) => v.data(),
        }
    }

    #[test]
    fn rows_crate_decodes_what_the_program_emits() {
        use advancia_indexer_rows as r;
        assert_eq!(r::PROGRAM_ID, advancia_pay::ID.to_bytes());
        assert_eq!(&r::EVENT_IX_TAG_LE[..], anchor_lang::event::EVENT_IX_TAG_LE);
        let mut seen = std::collections::HashSet::new();
        for n in 0..3 {
            // Every ledger kind as the program emits it (tag + discriminator + borsh body):
            // the rows crate's discriminator table and decoder agree with anchor's.
            for e in crate::bench::every_event_kind(n) {
                let data = anchor_data(&e);
                let mut ix = r::EVENT_IX_TAG_LE.to_vec();
                ix.extend(&data);
                let decoded = r::decode_event_ix(&ix).expect("decodes").expect("an event");
                let i = r::EVENT_NAMES
                    .iter()
                    .position(|n| *n == decoded.name())
                    .expect("named");
                assert_eq!(
                    &data[..8],
                    &r::discriminators()[i][..],
                    "{}",
                    decoded.name()
                );
                assert_eq!(r::Event::try_from(&e), Ok(decoded.clone()));
                assert!(!decoded.is_bridge());
                seen.insert(decoded.name());
            }
            for e in crate::bench::every_bridge_event(n) {
                let converted = r::Event::try_from(&e).expect("converts");
                assert!(converted.is_bridge());
                seen.insert(converted.name());
            }
        }
        assert_eq!(seen.len(), r::EVENT_NAMES.len());
    }

    #[test]
    fn copy_fields_are_escaped() {
        let mut b = String::new();
        copy_field(&mut b, Some("a\tb\\c\nd"));
        copy_field(&mut b, None);
        assert_eq!(b, "a\\tb\\\\c\\nd\\N");
    }
}
