//! Binary `COPY` of a batch's rows (ADR 0010, "binary COPY sink"): the `transactions` rows
//! and each event table's rows encoded in Postgres' binary `COPY` format, as the ledger
//! writes its transfers. Binary spares the server parsing text arrays and casting every
//! extra column (`::numeric`, `::jsonb`, …); the field layout is each type's `*_send`
//! format, documented with `COPY` in the Postgres reference.

use sqlx::{PgConnection, Postgres, Transaction};

use crate::IndexerError;
use crate::rows::{KEY_COLUMNS, TABLES};
use crate::source::ChainTransaction;

/// `text`'s type oid, for the element type of a `text[]` field.
const TEXT_OID: i32 = 25;

fn malformed(what: impl std::fmt::Display) -> IndexerError {
    IndexerError::Malformed(format!("COPY encoding: {what}"))
}

/// One `COPY … FROM STDIN (FORMAT binary)` stream being built.
#[derive(Debug)]
pub struct BinaryCopy {
    buf: Vec<u8>,
    rows: usize,
}

impl BinaryCopy {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + 21);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { buf, rows: 0 }
    }

    /// Starts a row of `fields` fields.
    pub fn row(&mut self, fields: i16) {
        self.rows += 1;
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    fn len_prefix(&mut self, len: usize) -> Result<(), IndexerError> {
        let len = i32::try_from(len).map_err(|_| malformed("field over 2 GiB"))?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        Ok(())
    }

    pub fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub fn text(&mut self, s: &str) -> Result<(), IndexerError> {
        self.len_prefix(s.len())?;
        self.buf.extend_from_slice(s.as_bytes());
        Ok(())
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.extend_from_slice(&1i32.to_be_bytes());
        self.buf.push(u8::from(v));
    }

    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&2i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&4i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes an `int8` and returns the offset of its value (see [`Self::patch_i64`]).
    pub fn i64(&mut self, v: i64) -> usize {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        let at = self.buf.len();
        self.buf.extend_from_slice(&v.to_be_bytes());
        at
    }

    pub fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.i64(v);
            }
            None => self.null(),
        }
    }

    /// Overwrites the `int8` value written at `at` by [`Self::i64`].
    pub fn patch_i64(&mut self, at: usize, v: i64) {
        if let Some(field) = self.buf.get_mut(at..at + 8) {
            field.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// A one-dimensional `text[]` without nulls (`array_send`: dimensions, null flag,
    /// element type, then per dimension its length and lower bound, then the elements).
    pub fn text_array(&mut self, items: &[String]) -> Result<(), IndexerError> {
        let len = if items.is_empty() {
            12
        } else {
            20 + items.iter().map(|s| 4 + s.len()).sum::<usize>()
        };
        self.len_prefix(len)?;
        let dims: i32 = if items.is_empty() { 0 } else { 1 };
        self.buf.extend_from_slice(&dims.to_be_bytes());
        self.buf.extend_from_slice(&0i32.to_be_bytes()); // no nulls
        self.buf.extend_from_slice(&TEXT_OID.to_be_bytes());
        if !items.is_empty() {
            let n = i32::try_from(items.len()).map_err(|_| malformed("array too long"))?;
            self.buf.extend_from_slice(&n.to_be_bytes());
            self.buf.extend_from_slice(&1i32.to_be_bytes()); // lower bound
            for s in items {
                self.text(s)?;
            }
        }
        Ok(())
    }

    /// A decimal integer (`[-]digits`) as `numeric` (`numeric_send`: ndigits, weight, sign,
    /// dscale, then base-10000 digits, most significant first; trailing zero digits are
    /// implied by the weight).
    pub fn numeric(&mut self, s: &str) -> Result<(), IndexerError> {
        let (negative, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(format!("{s:?} is not a decimal integer")));
        }
        let digits = digits.trim_start_matches('0').as_bytes();
        // Base-10000 groups from the most significant; the first may be short.
        let groups = digits.len().div_ceil(4);
        let first = digits.len() - groups.saturating_sub(1) * 4;
        let mut base: Vec<i16> = Vec::with_capacity(groups);
        let mut start = 0;
        for g in 0..groups {
            let end = if g == 0 { first } else { start + 4 };
            let value = digits[start..end]
                .iter()
                .fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0'));
            base.push(value);
            start = end;
        }
        while base.last() == Some(&0) {
            base.pop();
        }
        let weight = if base.is_empty() {
            0
        } else {
            i16::try_from(groups - 1).map_err(|_| malformed("numeric too large"))?
        };
        let ndigits = i16::try_from(base.len()).map_err(|_| malformed("numeric too large"))?;
        let sign: u16 = if negative && !base.is_empty() {
            0x4000
        } else {
            0
        };
        self.len_prefix(8 + 2 * base.len())?;
        self.buf.extend_from_slice(&ndigits.to_be_bytes());
        self.buf.extend_from_slice(&weight.to_be_bytes());
        self.buf.extend_from_slice(&sign.to_be_bytes());
        self.buf.extend_from_slice(&0u16.to_be_bytes()); // scale 0
        for d in base {
            self.buf.extend_from_slice(&d.to_be_bytes());
        }
        Ok(())
    }

    /// `jsonb_send`: a version byte (1), then the JSON text.
    pub fn jsonb(&mut self, json: &str) -> Result<(), IndexerError> {
        self.len_prefix(1 + json.len())?;
        self.buf.push(1);
        self.buf.extend_from_slice(json.as_bytes());
        Ok(())
    }

    /// One of `rows::TABLES`' extra columns: its text value as the column's SQL type.
    pub fn typed(&mut self, ty: &str, v: Option<&str>) -> Result<(), IndexerError> {
        let Some(v) = v else {
            self.null();
            return Ok(());
        };
        let bad = |e: std::num::ParseIntError| malformed(format!("{v:?} as {ty}: {e}"));
        match ty {
            "text" => self.text(v)?,
            "numeric" => self.numeric(v)?,
            "bigint" => {
                self.i64(v.parse().map_err(bad)?);
            }
            "smallint" => self.i16(v.parse().map_err(bad)?),
            "jsonb" => self.jsonb(v)?,
            other => return Err(malformed(format!("no binary encoding for {other}"))),
        }
        Ok(())
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

/// Columns of the `transactions` rows in [`CopyBatch::transactions`].
pub const TRANSACTION_COLUMNS: &str =
    "chain, signature, slot, commitment, failed, block_time, event_count, instructions";

/// A batch of transactions and their event rows, encoded for binary `COPY`: one stream for
/// `transactions`, one per event table (columns [`KEY_COLUMNS`], `seq`, then
/// `Table::cols`). Rows are encoded before stream positions are drawn; each row's `seq` is
/// written as its ordinal (chain order across tables) and moved to `first + ordinal` by
/// [`CopyBatch::set_first_seq`].
#[derive(Debug)]
pub struct CopyBatch {
    pub transactions: BinaryCopy,
    pub tables: [BinaryCopy; 8],
    /// (table, offset of the `seq` value) of every event row, by ordinal.
    seq_fields: Vec<(usize, usize)>,
}

impl CopyBatch {
    /// Rows of `txs` (oldest first) on `chain`.
    pub fn of<'a>(
        chain: &str,
        txs: impl IntoIterator<Item = &'a ChainTransaction>,
    ) -> Result<Self, IndexerError> {
        let mut b = Self {
            transactions: BinaryCopy::with_capacity(16 * 1024),
            tables: std::array::from_fn(|_| BinaryCopy::with_capacity(4 * 1024)),
            seq_fields: Vec::new(),
        };
        for t in txs {
            let slot = crate::sink::i64_of(t.slot)?;
            let commitment = t.commitment.as_str();
            let out = &mut b.transactions;
            out.row(8);
            out.text(chain)?;
            out.text(&t.signature)?;
            out.i64(slot);
            out.text(commitment)?;
            out.bool(t.failed);
            out.opt_i64(t.block_time);
            out.i32(i32::try_from(t.events.len() + t.bridge_events.len()).unwrap_or(i32::MAX));
            out.text_array(&t.instructions)?;
            for (ix, inner, table, values) in crate::rows::transaction_event_values(t)? {
                let spec = TABLES
                    .get(table)
                    .ok_or_else(|| malformed(format!("no event table {table}")))?;
                let fields = i16::try_from(8 + spec.cols.len())
                    .map_err(|_| malformed("too many columns"))?;
                let ordinal = i64::try_from(b.seq_fields.len()).unwrap_or(i64::MAX);
                let out = &mut b.tables[table];
                out.row(fields);
                out.text(chain)?;
                out.text(&t.signature)?;
                out.i32(i32::try_from(ix).unwrap_or(i32::MAX));
                out.i32(i32::try_from(inner).unwrap_or(i32::MAX));
                out.i64(slot);
                out.text(commitment)?;
                out.opt_i64(t.block_time);
                let seq_at = out.i64(ordinal);
                for ((_, ty), v) in spec.cols.iter().zip(&values) {
                    out.typed(ty, v.as_deref())?;
                }
                b.seq_fields.push((table, seq_at));
            }
        }
        Ok(b)
    }

    /// Event rows in the batch.
    pub fn events(&self) -> usize {
        self.seq_fields.len()
    }

    /// Gives event row `i` (chain order) stream position `first + i`.
    pub fn set_first_seq(&mut self, first: i64) {
        for (ordinal, &(table, at)) in self.seq_fields.iter().enumerate() {
            let seq = first.saturating_add(i64::try_from(ordinal).unwrap_or(i64::MAX));
            self.tables[table].patch_i64(at, seq);
        }
    }

    /// `COPY`s every non-empty stream into `<schema>`'s tables, `transactions` first (the
    /// event rows reference it). Returns the event rows written.
    pub async fn copy_in(
        self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<u64, IndexerError> {
        let conn = &mut **tx;
        if self.transactions.rows() > 0 {
            copy_in(
                conn,
                &format!(
                    "COPY {schema}.transactions ({TRANSACTION_COLUMNS}) FROM STDIN (FORMAT binary)"
                ),
                self.transactions.finish(),
            )
            .await?;
        }
        let mut written = 0;
        for (spec, rows) in TABLES.iter().zip(self.tables) {
            if rows.rows() == 0 {
                continue;
            }
            written += rows.rows() as u64;
            let cols: Vec<&str> = spec.cols.iter().map(|c| c.0).collect();
            copy_in(
                conn,
                &format!(
                    "COPY {schema}.{} ({KEY_COLUMNS}, seq, {}) FROM STDIN (FORMAT binary)",
                    spec.name,
                    cols.join(", ")
                ),
                rows.finish(),
            )
            .await?;
        }
        Ok(written)
    }
}

async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    data: Vec<u8>,
) -> Result<(), IndexerError> {
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(data).await?;
    copy.finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(s: &str) -> Vec<u8> {
        let mut c = BinaryCopy::with_capacity(0);
        let header = c.buf.len();
        c.numeric(s).expect("a decimal");
        c.buf[header..].to_vec()
    }

    fn words(v: &[i16]) -> Vec<u8> {
        v.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn numeric_is_base_10000_with_implied_trailing_zeros() {
        // length, then ndigits, weight, sign, dscale, digits.
        let mut zero = 8i32.to_be_bytes().to_vec();
        zero.extend(words(&[0, 0, 0, 0]));
        assert_eq!(numeric_bytes("0"), zero);
        assert_eq!(numeric_bytes("000"), zero);
        assert_eq!(numeric_bytes("-0"), zero);
        let mut v = 12i32.to_be_bytes().to_vec();
        v.extend(words(&[2, 1, 0, 0, 12, 3456]));
        assert_eq!(numeric_bytes("123456"), v);
        // 10^8: one digit 1 at weight 2, the two zero groups implied.
        let mut v = 10i32.to_be_bytes().to_vec();
        v.extend(words(&[1, 2, 0, 0, 1]));
        assert_eq!(numeric_bytes("100000000"), v);
        let mut v = 10i32.to_be_bytes().to_vec();
        v.extend(words(&[1, 0, 0x4000, 0, 7]));
        assert_eq!(numeric_bytes("-7"), v);
        for bad in ["", "-", "1.5", "1e3", "x"] {
            let mut c = BinaryCopy::with_capacity(0);
            assert!(c.numeric(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_arrays_and_patched_integers() {
        let mut c = BinaryCopy::with_capacity(0);
        let header = c.buf.len();
        c.text_array(&[]).expect("empty");
        let mut empty = 12i32.to_be_bytes().to_vec();
        for w in [0i32, 0, TEXT_OID] {
            empty.extend(w.to_be_bytes());
        }
        assert_eq!(c.buf[header..], empty[..]);
        let mut c = BinaryCopy::with_capacity(0);
        c.text_array(&["ab".to_string(), String::new()])
            .expect("two");
        let mut two = Vec::new();
        for w in [30i32, 1, 0, TEXT_OID, 2, 1, 2] {
            two.extend(w.to_be_bytes());
        }
        two.extend(b"ab");
        two.extend(0i32.to_be_bytes());
        assert_eq!(c.buf[header..], two[..]);
        let at = c.i64(5);
        c.patch_i64(at, -2);
        assert_eq!(c.buf[at..], (-2i64).to_be_bytes());
    }
}
