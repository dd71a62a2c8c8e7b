//! Column-wise rows of a batch: every decoded event becomes one row of its table, held as
//! one vector per column so a whole batch goes to Postgres in one
//! `INSERT … SELECT … FROM unnest(…)` per table (or one `COPY`, in the benchmark).
//!
//! Extra (table-specific) columns travel as text and are cast in SQL (`::numeric`,
//! `::jsonb`, …): one bind type for every column keeps the statement builder generic, and
//! the cast costs far less than a round trip per row.

use std::fmt::Write as _;

use advancia_pay::client::{AdvanciaEvent, BridgeEvent};
use serde_json::json;

use crate::IndexerError;
use crate::sink::i64_of;
use crate::source::{ChainTransaction, DecodedEvent};

/// An event table: name and its table-specific columns with the SQL type each is cast to.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub cols: &'static [(&'static str, &'static str)],
}

pub const PAYMENTS: usize = 0;
pub const REFUNDS: usize = 1;
pub const ESCROWS: usize = 2;
pub const FACILITIES: usize = 3;
pub const ATTESTATIONS: usize = 4;
pub const SETTLEMENTS: usize = 5;
pub const ADMIN: usize = 6;
pub const BRIDGE: usize = 7;

/// Every event table, indexed by the constants above (same order as `sink::EVENT_TABLES`).
pub const TABLES: [Table; 8] = [
    Table {
        name: "payments",
        cols: &[
            ("payment", "text"),
            ("payer", "text"),
            ("facility", "text"),
            ("invoice_id", "text"),
            ("reference", "text"),
            ("mint", "text"),
            ("amount", "numeric"),
            ("fee", "numeric"),
            ("paid_at", "bigint"),
        ],
    },
    Table {
        name: "refunds",
        cols: &[
            ("payment", "text"),
            ("facility", "text"),
            ("payer", "text"),
            ("mint", "text"),
            ("amount", "numeric"),
            ("refunded_total", "numeric"),
        ],
    },
    Table {
        name: "escrows",
        cols: &[
            ("kind", "text"),
            ("escrow", "text"),
            ("actor", "text"),
            ("payer", "text"),
            ("facility", "text"),
            ("arbiter", "text"),
            ("mint", "text"),
            ("amount", "numeric"),
            ("fee", "numeric"),
            ("released_total", "numeric"),
            ("expires_at", "bigint"),
        ],
    },
    Table {
        name: "facilities",
        cols: &[
            ("kind", "text"),
            ("facility", "text"),
            ("facility_id", "text"),
            ("authority", "text"),
            ("payout_wallet", "text"),
        ],
    },
    Table {
        name: "attestations",
        cols: &[
            ("kind", "text"),
            ("wallet", "text"),
            ("level", "smallint"),
            ("expires_at", "bigint"),
        ],
    },
    Table {
        name: "settlement_commitments",
        cols: &[
            ("batch_number", "numeric"),
            ("root", "text"),
            ("entry_count", "numeric"),
            ("totals", "jsonb"),
        ],
    },
    Table {
        name: "admin_events",
        cols: &[("kind", "text"), ("body", "jsonb")],
    },
    Table {
        name: "bridge_messages",
        cols: &[
            ("direction", "text"),
            ("message_id", "text"),
            ("origin_domain", "bigint"),
            ("sequence", "numeric"),
            ("sender", "text"),
            ("destination_domain", "bigint"),
            ("recipient", "text"),
            ("asset", "text"),
            ("amount", "numeric"),
        ],
    },
];

/// Columns every event table starts with.
pub const KEY_COLUMNS: &str =
    "chain, signature, ix_index, inner_index, slot, commitment, block_time";

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

fn hex32(b: &[u8; 32]) -> String {
    hex::encode(b)
}

/// A 32-byte bridge word as the EVM source writes it: `0x` + lowercase hex.
fn word(b: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(b))
}

/// The table a bridge event belongs to and its values (`Table::cols` order): messages to
/// `bridge_messages` in the EVM source's format (so one message id joins both sides),
/// configuration to `admin_events`.
pub fn bridge_event_values(event: &BridgeEvent) -> (usize, Vec<Option<String>>) {
    fn s(v: impl ToString) -> Option<String> {
        Some(v.to_string())
    }
    match event {
        BridgeEvent::BridgeDispatched(d) => (
            BRIDGE,
            vec![
                s("dispatched"),
                s(word(&d.id)),
                s(d.origin_domain),
                s(d.sequence),
                s(word(&d.sender)),
                s(d.destination_domain),
                s(word(&d.recipient)),
                s(word(&d.asset)),
                s(alloy::primitives::U256::from_be_bytes(d.amount)),
            ],
        ),
        BridgeEvent::BridgeProcessed(p) => (
            BRIDGE,
            vec![
                s("processed"),
                s(word(&p.id)),
                s(p.origin_domain),
                s(p.sequence),
                s(word(&p.sender)),
                None,
                s(word(&p.recipient.to_bytes())),
                s(word(&p.mint.to_bytes())),
                s(p.amount),
            ],
        ),
        BridgeEvent::BridgeConfigured(c) => (
            ADMIN,
            vec![
                s("bridge_configured"),
                s(json!({
                    "local_domain": c.local_domain,
                    "validators": c.validators.iter().map(|v| format!("0x{}", hex::encode(v))).collect::<Vec<_>>(),
                    "threshold": c.threshold,
                    "set_version": c.set_version.to_string(),
                    "paused": c.paused,
                })),
            ],
        ),
        BridgeEvent::BridgeRouteRegistered(r) => (
            ADMIN,
            vec![
                s("bridge_route_registered"),
                s(json!({
                    "local_mint": r.local_mint.to_string(),
                    "destination_domain": r.destination_domain,
                    "remote_asset": word(&r.remote_asset),
                    "local_decimals": r.local_decimals,
                    "remote_decimals": r.remote_decimals,
                })),
            ],
        ),
    }
}

/// The table an event belongs to and its table-specific values (`Table::cols` order).
pub fn event_values(event: &AdvanciaEvent) -> (usize, Vec<Option<String>>) {
    use AdvanciaEvent as E;
    fn s(v: impl ToString) -> Option<String> {
        Some(v.to_string())
    }
    let zero = || s(0);
    match event {
        E::PaymentMade(p) => (
            PAYMENTS,
            vec![
                s(p.payment),
                s(p.payer),
                s(p.facility),
                s(hex32(&p.invoice_id)),
                s(p.reference),
                s(p.mint),
                s(p.amount),
                s(p.fee),
                s(p.paid_at),
            ],
        ),
        E::PaymentRefunded(r) => (
            REFUNDS,
            vec![
                s(r.payment),
                s(r.facility),
                s(r.payer),
                s(r.mint),
                s(r.amount),
                s(r.refunded_total),
            ],
        ),
        // Escrow columns: kind, escrow, actor, payer, facility, arbiter, mint, amount, fee,
        // released_total, expires_at. amount and fee default to 0 in the schema.
        E::EscrowOpened(o) => (
            ESCROWS,
            vec![
                s("opened"),
                s(o.escrow),
                s(o.payer),
                s(o.payer),
                s(o.facility),
                s(o.arbiter),
                s(o.mint),
                s(o.amount),
                zero(),
                None,
                s(o.expires_at),
            ],
        ),
        E::EscrowReleased(r) => (
            ESCROWS,
            vec![
                s("released"),
                s(r.escrow),
                s(r.by),
                None,
                None,
                None,
                None,
                s(r.amount),
                s(r.fee),
                s(r.released_total),
                None,
            ],
        ),
        E::EscrowRefunded(r) => (
            ESCROWS,
            vec![
                s("refunded"),
                s(r.escrow),
                s(r.by),
                None,
                None,
                None,
                None,
                s(r.amount),
                zero(),
                None,
                None,
            ],
        ),
        E::EscrowClosed(c) => (
            ESCROWS,
            vec![
                s("closed"),
                s(c.escrow),
                s(c.rent_to),
                None,
                None,
                None,
                None,
                zero(),
                zero(),
                None,
                None,
            ],
        ),
        E::FacilityRegistered(f) => (
            FACILITIES,
            vec![
                s("registered"),
                s(f.facility),
                s(hex32(&f.facility_id)),
                s(f.authority),
                s(f.payout_wallet),
            ],
        ),
        E::FacilityPayoutUpdated(f) => (
            FACILITIES,
            vec![
                s("payout_updated"),
                s(f.facility),
                None,
                None,
                s(f.payout_wallet),
            ],
        ),
        E::FacilityDeactivated(f) => (
            FACILITIES,
            vec![s("deactivated"), s(f.facility), None, None, None],
        ),
        E::AttestationWritten(a) => (
            ATTESTATIONS,
            vec![s("written"), s(a.wallet), s(a.level), s(a.expires_at)],
        ),
        E::AttestationRevoked(a) => (ATTESTATIONS, vec![s("revoked"), s(a.wallet), None, None]),
        E::BatchCommitted(b) => {
            let totals: Vec<_> = b
                .totals
                .iter()
                .map(|t| json!({"mint": t.mint.to_string(), "amount": t.amount.to_string()}))
                .collect();
            (
                SETTLEMENTS,
                vec![
                    s(b.batch_number),
                    s(hex32(&b.root)),
                    s(b.entry_count),
                    s(serde_json::Value::Array(totals)),
                ],
            )
        }
        E::ConfigUpdated(c) => (
            ADMIN,
            vec![
                s("config_updated"),
                s(json!({
                    "admin": c.admin.to_string(), "treasury": c.treasury.to_string(),
                    "settlement_authority": c.settlement_authority.to_string(),
                    "compliance_authority": c.compliance_authority.to_string(),
                    "fee_bps": c.fee_bps, "paused": c.paused,
                })),
            ],
        ),
        E::AdminProposed(a) => (
            ADMIN,
            vec![
                s("admin_proposed"),
                s(json!({"admin": a.admin.to_string(), "proposed": a.proposed.to_string()})),
            ],
        ),
        E::AdminAccepted(a) => (
            ADMIN,
            vec![
                s("admin_accepted"),
                s(json!({"previous": a.previous.to_string(), "admin": a.admin.to_string()})),
            ],
        ),
        E::AssetSet(a) => (
            ADMIN,
            vec![
                s("asset_set"),
                s(
                    json!({"mint": a.mint.to_string(), "kyc_threshold": a.kyc_threshold.to_string(), "enabled": a.enabled}),
                ),
            ],
        ),
    }
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
            // Chain order (instruction, inner index) across both kinds of event.
            let mut all: Vec<(u32, u32, usize, Vec<Option<String>>)> = t
                .events
                .iter()
                .map(|e| {
                    let (table, values) = event_values(&e.event);
                    (e.ix_index, e.inner_index, table, values)
                })
                .chain(t.bridge_events.iter().map(|e| {
                    let (table, values) = bridge_event_values(&e.event);
                    (e.ix_index, e.inner_index, table, values)
                }))
                .collect();
            if !t.bridge_events.is_empty() {
                all.sort_by_key(|e| (e.0, e.1));
            }
            for (ix, inner, table, values) in all {
                rows.push_values(t, ix, inner, table, values)?;
            }
        }
        Ok(rows)
    }

    pub fn push(&mut self, t: &ChainTransaction, e: &DecodedEvent) -> Result<(), IndexerError> {
        let (table, values) = event_values(&e.event);
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

    #[test]
    fn copy_fields_are_escaped() {
        let mut b = String::new();
        copy_field(&mut b, Some("a\tb\\c\nd"));
        copy_field(&mut b, None);
        assert_eq!(b, "a\\tb\\\\c\\nd\\N");
    }
}
