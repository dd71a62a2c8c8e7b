//! Postgres sink: event rows and the source cursor in one transaction; finality updates and
//! undo of dropped transactions.

use advancia_pay::client::AdvanciaEvent;
use std::collections::HashSet;

use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};

use crate::copy::CopyBatch;
use crate::rows::{EventRows, TABLES, insert_sql};

use crate::source::{ChainTransaction, DecodedEvent};
use crate::{Commitment, IndexerError};

/// Tables holding per-event rows (all cascade from `transactions`), in `rows::TABLES` order.
pub const EVENT_TABLES: [&str; 8] = [
    "payments",
    "refunds",
    "escrows",
    "facilities",
    "attestations",
    "settlement_commitments",
    "admin_events",
    "bridge_messages",
];

/// The stored cursor of a source: the newest transaction fully written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub signature: Option<String>,
    pub slot: Option<u64>,
}

pub(crate) fn i64_of(v: u64) -> Result<i64, IndexerError> {
    i64::try_from(v).map_err(|_| IndexerError::Malformed(format!("{v} exceeds i64")))
}

pub async fn load_cursor(pool: &PgPool, source: &str) -> Result<Cursor, IndexerError> {
    let row: Option<(Option<String>, Option<i64>)> =
        sqlx::query_as("SELECT signature, slot FROM indexer.cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(pool)
            .await?;
    let (signature, slot) = row.unwrap_or((None, None));
    Ok(Cursor {
        signature,
        slot: slot.and_then(|s| u64::try_from(s).ok()),
    })
}

pub(crate) async fn save_cursor(
    tx: &mut Transaction<'_, Postgres>,
    source: &str,
    signature: Option<&str>,
    slot: Option<u64>,
) -> Result<(), IndexerError> {
    sqlx::query(
        "INSERT INTO indexer.cursors (source, signature, slot) VALUES ($1, $2, $3)
         ON CONFLICT (source) DO UPDATE SET signature = EXCLUDED.signature,
             slot = EXCLUDED.slot, updated_at = now()",
    )
    .bind(source)
    .bind(signature)
    .bind(slot.map(i64_of).transpose()?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes a batch of transactions (oldest first) and moves the cursor to the last one, in
/// one database transaction: a crash leaves either all of it or none. Transactions already
/// stored are skipped, so re-running a range changes nothing. Returns the events inserted.
///
/// Binary `COPY` straight into the tables (ADR 0010): rows are encoded before the
/// transaction begins; under the stream lock one statement says which signatures are
/// stored already and draws the stream positions of the rest; then one `COPY` for the new
/// `transactions` rows and one per event table, and one statement for cursor and NOTIFY.
pub async fn write_batch(
    pool: &PgPool,
    chain: &str,
    source: &str,
    batch: &[ChainTransaction],
) -> Result<u64, IndexerError> {
    Ok(write_batch_by_kind(pool, chain, source, batch)
        .await?
        .iter()
        .sum())
}

/// Under [`lock_event_seq`]: which of `$2` (signatures, unique) are stored on chain `$1`,
/// and the first of a block of stream positions for the event rows (`$3`, per signature)
/// of the others (0 when they have none). Each signature is probed on the primary key in a
/// `LATERAL … LIMIT 1` subquery (the `LIMIT` keeps it from being flattened into a join):
/// an `= ANY($2)` filter or a join leaves the planner free to scan all the chain's rows
/// instead, which it does with a plan cached while the table was small (seen in the bench).
const CLAIM_SQL: &str = "WITH stored AS (
        SELECT u.s AS signature FROM unnest($2::text[]) AS u(s)
         CROSS JOIN LATERAL (SELECT 1 FROM indexer.transactions t
                              WHERE t.chain = $1 AND t.signature = u.s LIMIT 1) AS hit
    ), fresh AS (
        SELECT coalesce(sum(u.n), 0)::int8 AS n FROM unnest($2::text[], $3::int8[]) AS u(s, n)
         WHERE u.s NOT IN (SELECT signature FROM stored)
    )
    SELECT ARRAY(SELECT signature FROM stored),
           CASE WHEN n > 0
                THEN setval('indexer.event_seq', nextval('indexer.event_seq') + n - 1) - n + 1
                ELSE 0 END
      FROM fresh";

/// [`write_batch`], returning the events inserted per kind (`metrics::EVENT_KINDS` order).
///
/// Exactly once: every writer of `indexer.transactions` holds [`lock_event_seq`] to commit,
/// so the signatures the claim finds missing stay missing until this commit; were one
/// inserted anyway, its primary key fails the `COPY` and the whole batch (cursor
/// included) rolls back, to be read again. Nothing is written twice or skipped.
pub async fn write_batch_by_kind(
    pool: &PgPool,
    chain: &str,
    source: &str,
    batch: &[ChainTransaction],
) -> Result<[u64; crate::metrics::EVENT_KINDS.len()], IndexerError> {
    let mut by_kind = [0u64; crate::metrics::EVENT_KINDS.len()];
    let Some(last) = batch.last() else {
        return Ok(by_kind);
    };
    // A signature listed twice is one transaction: its first occurrence stands.
    let mut seen = HashSet::with_capacity(batch.len());
    let unique: Vec<&ChainTransaction> = batch
        .iter()
        .filter(|t| seen.insert(t.signature.as_str()))
        .collect();
    let signatures: Vec<&str> = unique.iter().map(|t| t.signature.as_str()).collect();
    let counts: Vec<i64> = unique
        .iter()
        .map(|t| i64::try_from(t.events.len() + t.bridge_events.len()).unwrap_or(i64::MAX))
        .collect();
    // Encoded outside the transaction: the lock is held for the database's work only.
    let mut rows = CopyBatch::of(chain, unique.iter().copied())?;
    let mut tx = pool.begin().await?;
    lock_event_seq(&mut tx).await?;
    let (stored, first_seq): (Vec<String>, i64) = sqlx::query_as(CLAIM_SQL)
        .bind(chain)
        .bind(&signatures)
        .bind(&counts)
        .fetch_one(&mut *tx)
        .await?;
    let fresh = if stored.is_empty() {
        unique
    } else {
        // A re-read range: encode the new transactions alone (their rows' ordinals change).
        let stored: HashSet<&str> = stored.iter().map(String::as_str).collect();
        let fresh: Vec<&ChainTransaction> = unique
            .into_iter()
            .filter(|t| !stored.contains(t.signature.as_str()))
            .collect();
        rows = CopyBatch::of(chain, fresh.iter().copied())?;
        fresh
    };
    let expected: i64 = fresh
        .iter()
        .map(|t| i64::try_from(t.events.len() + t.bridge_events.len()).unwrap_or(i64::MAX))
        .sum();
    if i64::try_from(rows.events()).ok() != Some(expected) {
        return Err(IndexerError::Malformed(format!(
            "{} event rows for {expected} events",
            rows.events()
        )));
    }
    rows.set_first_seq(first_seq);
    let inserted = rows.copy_in(&mut tx, "indexer").await?;
    for t in &fresh {
        for e in &t.events {
            by_kind[crate::metrics::event_kind_index(&e.event)] += 1;
        }
        for e in &t.bridge_events {
            by_kind[crate::metrics::bridge_kind_index(&e.event)] += 1;
        }
    }
    // Cursor and wake-up in one statement (the notification only when rows were added).
    sqlx::query(
        "WITH cursor AS (
             INSERT INTO indexer.cursors (source, signature, slot) VALUES ($1, $2, $3)
             ON CONFLICT (source) DO UPDATE SET signature = EXCLUDED.signature,
                 slot = EXCLUDED.slot, updated_at = now()
         )
         SELECT pg_notify($4, json_build_object('chain', $5::text,
                    'seq', (SELECT last_value FROM indexer.event_seq))::text)
          WHERE $6",
    )
    .bind(source)
    .bind(&last.signature)
    .bind(i64_of(last.slot)?)
    .bind(NOTIFY_CHANNEL)
    .bind(chain)
    .bind(inserted > 0)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(by_kind)
}

pub use advancia_indexer_store::NOTIFY_CHANNEL;

/// Serializes writers that draw `indexer.event_seq` numbers until commit, so a stream
/// reader that saw number N never later finds a smaller one committed.
pub(crate) async fn lock_event_seq(tx: &mut Transaction<'_, Postgres>) -> Result<(), IndexerError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('indexer.event_seq'))")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Draws `n` consecutive stream positions (caller holds [`lock_event_seq`]); returns the
/// first (0 when `n` is 0).
pub(crate) async fn reserve_seq(
    tx: &mut Transaction<'_, Postgres>,
    n: i64,
) -> Result<i64, IndexerError> {
    if n == 0 {
        return Ok(0);
    }
    let last: i64 = sqlx::query_scalar(
        "SELECT setval('indexer.event_seq', nextval('indexer.event_seq') + $1 - 1)",
    )
    .bind(n)
    .fetch_one(&mut **tx)
    .await?;
    Ok(last - n + 1)
}

/// `pg_notify` inside the writing transaction: delivered only if it commits, so listeners
/// never hear of rows they cannot read. The payload is a hint (chain, newest position); a
/// listener re-reads the tables from its own position anyway.
pub(crate) async fn notify(
    tx: &mut Transaction<'_, Postgres>,
    chain: &str,
) -> Result<(), IndexerError> {
    sqlx::query(
        "SELECT pg_notify($1, json_build_object('chain', $2::text,
                'seq', (SELECT last_value FROM indexer.event_seq))::text)",
    )
    .bind(NOTIFY_CHANNEL)
    .bind(chain)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts `rows` into `<schema>.<event tables>` (one statement per non-empty table), row
/// `i` of the batch at stream position `first_seq + i`. Returns the rows inserted.
pub async fn insert_event_rows(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
    chain: &str,
    rows: &EventRows,
    first_seq: i64,
) -> Result<u64, IndexerError> {
    let mut inserted = 0;
    for (table, r) in TABLES.iter().zip(&rows.tables) {
        if r.is_empty() {
            continue;
        }
        let sql = insert_sql(schema, table);
        let mut q = sqlx::query(&sql)
            .bind(chain)
            .bind(first_seq)
            .bind(&r.signature)
            .bind(&r.ix_index)
            .bind(&r.inner_index)
            .bind(&r.slot)
            .bind(&r.commitment)
            .bind(&r.block_time)
            .bind(&r.ordinal);
        for col in &r.cols {
            q = q.bind(col);
        }
        inserted += q.execute(&mut **tx).await?.rows_affected();
    }
    Ok(inserted)
}

/// The sink as it was first written: one `INSERT` per row. Kept as the reference the
/// batched [`write_batch`] is tested against (same rows) and measured against (bench).
pub async fn write_batch_per_row(
    pool: &PgPool,
    chain: &str,
    source: &str,
    batch: &[ChainTransaction],
) -> Result<u64, IndexerError> {
    let Some(last) = batch.last() else {
        return Ok(0);
    };
    let mut tx = pool.begin().await?;
    let mut inserted = 0u64;
    for t in batch {
        let fresh = sqlx::query(
            "INSERT INTO indexer.transactions
                 (chain, signature, slot, commitment, failed, block_time, event_count,
                  instructions)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(chain)
        .bind(&t.signature)
        .bind(i64_of(t.slot)?)
        .bind(t.commitment.as_str())
        .bind(t.failed)
        .bind(t.block_time)
        .bind(i32::try_from(t.events.len() + t.bridge_events.len()).unwrap_or(i32::MAX))
        .bind(&t.instructions)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            continue;
        }
        for e in &t.events {
            insert_event(&mut tx, chain, t, e).await?;
            inserted += 1;
        }
        for e in &t.bridge_events {
            insert_bridge_event(&mut tx, chain, t, e).await?;
            inserted += 1;
        }
    }
    save_cursor(&mut tx, source, Some(&last.signature), Some(last.slot)).await?;
    tx.commit().await?;
    Ok(inserted)
}

fn hex32(b: &[u8; 32]) -> String {
    hex::encode(b)
}

/// One bridge event row (per-row reference path), its values from
/// [`crate::rows::bridge_event_values`] cast per the table's column types.
async fn insert_bridge_event(
    tx: &mut Transaction<'_, Postgres>,
    chain: &str,
    t: &ChainTransaction,
    e: &crate::source::DecodedBridgeEvent,
) -> Result<(), IndexerError> {
    let (table, values) = crate::rows::bridge_event_values(&e.event)?;
    let spec = &TABLES[table];
    let cols: Vec<&str> = spec.cols.iter().map(|c| c.0).collect();
    let params: Vec<String> = spec
        .cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 8, c.1))
        .collect();
    let sql = format!(
        "INSERT INTO indexer.{} (chain, signature, ix_index, inner_index, slot, commitment,
             block_time, {}) VALUES ($1, $2, $3, $4, $5, $6, $7, {})",
        spec.name,
        cols.join(", "),
        params.join(", ")
    );
    let mut q = sqlx::query(&sql)
        .bind(chain)
        .bind(&t.signature)
        .bind(i32::try_from(e.ix_index).unwrap_or(i32::MAX))
        .bind(i32::try_from(e.inner_index).unwrap_or(i32::MAX))
        .bind(i64_of(t.slot)?)
        .bind(t.commitment.as_str())
        .bind(t.block_time);
    for v in values {
        q = q.bind(v);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_event(
    tx: &mut Transaction<'_, Postgres>,
    chain: &str,
    t: &ChainTransaction,
    e: &DecodedEvent,
) -> Result<(), IndexerError> {
    use AdvanciaEvent as E;
    // Common leading columns of every event table.
    const KEY: &str = "chain, signature, ix_index, inner_index, slot, commitment, block_time";
    const KEYV: &str = "$1, $2, $3, $4, $5, $6, $7";
    let ix = i32::try_from(e.ix_index).unwrap_or(i32::MAX);
    let inner = i32::try_from(e.inner_index).unwrap_or(i32::MAX);
    let slot = i64_of(t.slot)?;
    let base = |table: &str, cols: &str, vals: &str| {
        format!(
            "INSERT INTO indexer.{table} ({KEY}, {cols}) VALUES ({KEYV}, {vals}) ON CONFLICT DO NOTHING"
        )
    };
    macro_rules! run {
        ($sql:expr $(, $v:expr)*) => {{
            let sql: String = $sql;
            sqlx::query(&sql)
                .bind(chain)
                .bind(&t.signature)
                .bind(ix)
                .bind(inner)
                .bind(slot)
                .bind(t.commitment.as_str())
                .bind(t.block_time)
                $(.bind($v))*
                .execute(&mut **tx)
                .await?;
        }};
    }
    match &e.event {
        E::PaymentMade(p) => run!(
            base(
                "payments",
                "payment, payer, facility, invoice_id, reference, mint, amount, fee, paid_at",
                "$8, $9, $10, $11, $12, $13, $14::numeric, $15::numeric, $16"
            ),
            p.payment.to_string(),
            p.payer.to_string(),
            p.facility.to_string(),
            hex32(&p.invoice_id),
            p.reference.to_string(),
            p.mint.to_string(),
            p.amount.to_string(),
            p.fee.to_string(),
            p.paid_at
        ),
        E::PaymentRefunded(r) => run!(
            base(
                "refunds",
                "payment, facility, payer, mint, amount, refunded_total",
                "$8, $9, $10, $11, $12::numeric, $13::numeric"
            ),
            r.payment.to_string(),
            r.facility.to_string(),
            r.payer.to_string(),
            r.mint.to_string(),
            r.amount.to_string(),
            r.refunded_total.to_string()
        ),
        E::EscrowOpened(o) => run!(
            base(
                "escrows",
                "kind, escrow, actor, payer, facility, arbiter, mint, amount, expires_at",
                "'opened', $8, $9, $9, $10, $11, $12, $13::numeric, $14"
            ),
            o.escrow.to_string(),
            o.payer.to_string(),
            o.facility.to_string(),
            o.arbiter.to_string(),
            o.mint.to_string(),
            o.amount.to_string(),
            o.expires_at
        ),
        E::EscrowReleased(r) => run!(
            base(
                "escrows",
                "kind, escrow, actor, amount, fee, released_total",
                "'released', $8, $9, $10::numeric, $11::numeric, $12::numeric"
            ),
            r.escrow.to_string(),
            r.by.to_string(),
            r.amount.to_string(),
            r.fee.to_string(),
            r.released_total.to_string()
        ),
        E::EscrowRefunded(r) => run!(
            base(
                "escrows",
                "kind, escrow, actor, amount",
                "'refunded', $8, $9, $10::numeric"
            ),
            r.escrow.to_string(),
            r.by.to_string(),
            r.amount.to_string()
        ),
        E::EscrowClosed(c) => run!(
            base("escrows", "kind, escrow, actor", "'closed', $8, $9"),
            c.escrow.to_string(),
            c.rent_to.to_string()
        ),
        E::FacilityRegistered(f) => run!(
            base(
                "facilities",
                "kind, facility, facility_id, authority, payout_wallet",
                "'registered', $8, $9, $10, $11"
            ),
            f.facility.to_string(),
            hex32(&f.facility_id),
            f.authority.to_string(),
            f.payout_wallet.to_string()
        ),
        E::FacilityPayoutUpdated(f) => run!(
            base(
                "facilities",
                "kind, facility, payout_wallet",
                "'payout_updated', $8, $9"
            ),
            f.facility.to_string(),
            f.payout_wallet.to_string()
        ),
        E::FacilityDeactivated(f) => run!(
            base("facilities", "kind, facility", "'deactivated', $8"),
            f.facility.to_string()
        ),
        E::AttestationWritten(a) => run!(
            base(
                "attestations",
                "kind, wallet, level, expires_at",
                "'written', $8, $9, $10"
            ),
            a.wallet.to_string(),
            i16::from(a.level),
            a.expires_at
        ),
        E::AttestationRevoked(a) => run!(
            base("attestations", "kind, wallet", "'revoked', $8"),
            a.wallet.to_string()
        ),
        E::BatchCommitted(b) => {
            let totals: Vec<_> = b
                .totals
                .iter()
                .map(|t| json!({"mint": t.mint.to_string(), "amount": t.amount.to_string()}))
                .collect();
            run!(
                base(
                    "settlement_commitments",
                    "batch_number, root, entry_count, totals",
                    "$8::numeric, $9, $10::numeric, $11"
                ),
                b.batch_number.to_string(),
                hex32(&b.root),
                b.entry_count.to_string(),
                serde_json::Value::Array(totals)
            )
        }
        E::ConfigUpdated(c) => run!(
            base("admin_events", "kind, body", "'config_updated', $8"),
            json!({
                "admin": c.admin.to_string(), "treasury": c.treasury.to_string(),
                "settlement_authority": c.settlement_authority.to_string(),
                "compliance_authority": c.compliance_authority.to_string(),
                "fee_bps": c.fee_bps, "paused": c.paused,
            })
        ),
        E::AdminProposed(a) => run!(
            base("admin_events", "kind, body", "'admin_proposed', $8"),
            json!({"admin": a.admin.to_string(), "proposed": a.proposed.to_string()})
        ),
        E::AdminAccepted(a) => run!(
            base("admin_events", "kind, body", "'admin_accepted', $8"),
            json!({"previous": a.previous.to_string(), "admin": a.admin.to_string()})
        ),
        E::AssetSet(a) => run!(
            base("admin_events", "kind, body", "'asset_set', $8"),
            json!({"mint": a.mint.to_string(), "kyc_threshold": a.kyc_threshold.to_string(), "enabled": a.enabled})
        ),
    }
    Ok(())
}

/// Transactions not yet final, oldest first.
pub async fn pending_signatures(
    pool: &PgPool,
    chain: &str,
    limit: i64,
) -> Result<Vec<String>, IndexerError> {
    Ok(sqlx::query_scalar(
        "SELECT signature FROM indexer.transactions
         WHERE chain = $1 AND commitment <> 'finalized' ORDER BY slot, signature LIMIT $2",
    )
    .bind(chain)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Sets the commitment and slot of transactions' rows (a transaction replayed on a new
/// fork keeps its signature but not its slot), one statement per table for the whole list.
pub async fn set_commitments(
    pool: &PgPool,
    chain: &str,
    updates: &[(String, u64, Commitment)],
) -> Result<(), IndexerError> {
    if updates.is_empty() {
        return Ok(());
    }
    let sigs: Vec<&str> = updates.iter().map(|u| u.0.as_str()).collect();
    let slots = updates
        .iter()
        .map(|u| i64_of(u.1))
        .collect::<Result<Vec<_>, _>>()?;
    let levels: Vec<&str> = updates.iter().map(|u| u.2.as_str()).collect();
    let mut tx = pool.begin().await?;
    lock_event_seq(&mut tx).await?;
    let mut changed = 0;
    for table in std::iter::once("transactions").chain(EVENT_TABLES) {
        // An event row whose commitment or slot changes gets a new stream position, so
        // stream clients see it again (e.g. at `finalized`).
        let seq = if table == "transactions" {
            ""
        } else {
            ", seq = nextval('indexer.event_seq')"
        };
        changed += sqlx::query(&format!(
            "UPDATE indexer.{table} t SET commitment = u.commitment, slot = u.slot{seq}
             FROM unnest($2::text[], $3::bigint[], $4::text[]) AS u(signature, slot, commitment)
             WHERE t.chain = $1 AND t.signature = u.signature
               AND (t.commitment, t.slot) IS DISTINCT FROM (u.commitment, u.slot)"
        ))
        .bind(chain)
        .bind(&sigs)
        .bind(&slots)
        .bind(&levels)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    if changed > 0 {
        notify(&mut tx, chain).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// CTEs to follow a `gone` CTE (chain `$1`) that deletes `transactions` rows returning
/// their `signature`: one `DELETE` of their rows per event table. The event tables have no
/// foreign key to `transactions` (migration 0006: its per-row check cost the `COPY` sink a
/// fifth of its database time), so whoever deletes a transaction deletes its events with it.
pub(crate) fn delete_event_rows_of_gone() -> String {
    EVENT_TABLES
        .iter()
        .map(|t| {
            format!(
                ", gone_{t} AS (DELETE FROM indexer.{t} e USING gone
                     WHERE e.chain = $1 AND e.signature = gone.signature)"
            )
        })
        .collect()
}

/// Undoes a dropped transaction: deletes its rows (event rows too), records the rollback, and
/// rewinds the cursor to the newest finalized transaction so the range is re-read. Never
/// applies to finalized rows, and so never to rows already fed to the ledger.
pub async fn undo_transaction(
    pool: &PgPool,
    chain: &str,
    source: &str,
    signature: &str,
) -> Result<bool, IndexerError> {
    let mut tx = pool.begin().await?;
    lock_event_seq(&mut tx).await?;
    let removed: Option<(i64, i32)> = sqlx::query_as(&format!(
        "WITH gone AS (
             DELETE FROM indexer.transactions
              WHERE chain = $1 AND signature = $2 AND commitment <> 'finalized'
             RETURNING signature, slot, event_count){}
         SELECT slot, event_count FROM gone",
        delete_event_rows_of_gone()
    ))
    .bind(chain)
    .bind(signature)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((slot, events)) = removed else {
        return Ok(false);
    };
    sqlx::query(
        "INSERT INTO indexer.rollbacks (chain, signature, slot, events_removed)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(chain)
    .bind(signature)
    .bind(slot)
    .bind(events)
    .execute(&mut *tx)
    .await?;
    let newest_final: Option<(String, i64)> = sqlx::query_as(
        "SELECT signature, slot FROM indexer.transactions
         WHERE chain = $1 AND commitment = 'finalized'
         ORDER BY slot DESC, indexed_at DESC LIMIT 1",
    )
    .bind(chain)
    .fetch_optional(&mut *tx)
    .await?;
    let (sig, slot) = match newest_final {
        Some((s, slot)) => (Some(s), u64::try_from(slot).ok()),
        None => (None, None),
    };
    save_cursor(&mut tx, source, sig.as_deref(), slot).await?;
    notify(&mut tx, chain).await?;
    tx.commit().await?;
    Ok(true)
}
