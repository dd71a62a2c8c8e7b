//! Partner query layer: indexed payments, refunds, escrow events, attestations, facility
//! events and settlement commitments filtered by facility, payer (or wallet) and slot
//! range, with keyset (cursor) pagination in (slot, signature, ix_index, inner_index) order.
//!
//! Each table's select exposes `f_facility` / `f_payer`, the columns the shared filter
//! matches (NULL where a table has no such notion, so that filter then matches nothing).

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::StoreError;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventFilter {
    pub chain: Option<String>,
    pub facility: Option<String>,
    pub payer: Option<String>,
    pub slot_from: Option<u64>,
    pub slot_to: Option<u64>,
    /// Only rows at `finalized` when true.
    pub finalized_only: bool,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub after: Option<String>,
    /// Page size, clamped to 1..=1000.
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PaymentRow {
    pub chain: String,
    pub signature: String,
    pub ix_index: i32,
    pub inner_index: i32,
    pub slot: i64,
    pub commitment: String,
    pub block_time: Option<i64>,
    pub payment: String,
    pub payer: String,
    pub facility: String,
    pub invoice_id: String,
    pub reference: String,
    pub mint: String,
    /// Base units, decimal string (u64 does not fit JSON numbers safely).
    pub amount: String,
    pub fee: String,
    pub paid_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RefundRow {
    pub chain: String,
    pub signature: String,
    pub ix_index: i32,
    pub inner_index: i32,
    pub slot: i64,
    pub commitment: String,
    pub block_time: Option<i64>,
    pub payment: String,
    pub facility: String,
    pub payer: String,
    pub mint: String,
    pub amount: String,
    pub refunded_total: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Position after which a page starts: `slot:signature:ix:inner`.
fn parse_cursor(s: &str) -> Result<(i64, String, i32, i32), StoreError> {
    let bad = || StoreError::BadCursor(s.to_string());
    let mut it = s.split(':');
    let slot = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let sig = it.next().filter(|v| !v.is_empty()).ok_or_else(bad)?;
    let ix = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let inner = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    if it.next().is_some() {
        return Err(bad());
    }
    Ok((slot, sig.to_string(), ix, inner))
}

fn cursor_of(slot: i64, sig: &str, ix: i32, inner: i32) -> String {
    format!("{slot}:{sig}:{ix}:{inner}")
}

fn slot_bound(v: Option<u64>) -> Result<Option<i64>, StoreError> {
    v.map(crate::i64_of).transpose()
}

const FILTER: &str = "($1::text IS NULL OR chain = $1)
    AND ($2::text IS NULL OR f_facility = $2)
    AND ($3::text IS NULL OR f_payer = $3)
    AND ($4::bigint IS NULL OR slot >= $4)
    AND ($5::bigint IS NULL OR slot <= $5)
    AND (NOT $6 OR commitment = 'finalized')
    AND ($7::bigint IS NULL OR (slot, signature, ix_index, inner_index) > ($7, $8, $9, $10))";

async fn page<T>(pool: &PgPool, select: &str, f: &EventFilter) -> Result<Vec<T>, StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let after = f.after.as_deref().map(parse_cursor).transpose()?;
    let limit = i64::from(f.limit.clamp(1, 1000));
    let sql = format!(
        "SELECT * FROM ({select}) q WHERE {FILTER}
         ORDER BY slot, signature, ix_index, inner_index LIMIT $11"
    );
    Ok(sqlx::query_as::<_, T>(&sql)
        .bind(&f.chain)
        .bind(&f.facility)
        .bind(&f.payer)
        .bind(slot_bound(f.slot_from)?)
        .bind(slot_bound(f.slot_to)?)
        .bind(f.finalized_only)
        .bind(after.as_ref().map(|a| a.0))
        .bind(after.as_ref().map(|a| a.1.clone()))
        .bind(after.as_ref().map(|a| a.2))
        .bind(after.as_ref().map(|a| a.3))
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

fn next<T>(items: &[T], limit: u32, key: impl Fn(&T) -> String) -> Option<String> {
    (items.len() == limit.clamp(1, 1000) as usize)
        .then(|| items.last().map(key))
        .flatten()
}

pub async fn payments(pool: &PgPool, f: &EventFilter) -> Result<Page<PaymentRow>, StoreError> {
    let items: Vec<PaymentRow> = page(
        pool,
        "SELECT chain, signature, ix_index, inner_index, slot, commitment, block_time, payment,
                payer, facility, invoice_id, reference, mint, amount::text AS amount,
                fee::text AS fee, paid_at, facility AS f_facility, payer AS f_payer
           FROM indexer.payments",
        f,
    )
    .await?;
    let next_cursor = next(&items, f.limit, |r| {
        cursor_of(r.slot, &r.signature, r.ix_index, r.inner_index)
    });
    Ok(Page { items, next_cursor })
}

pub async fn refunds(pool: &PgPool, f: &EventFilter) -> Result<Page<RefundRow>, StoreError> {
    let items: Vec<RefundRow> = page(
        pool,
        "SELECT chain, signature, ix_index, inner_index, slot, commitment, block_time, payment,
                facility, payer, mint, amount::text AS amount,
                refunded_total::text AS refunded_total, facility AS f_facility, payer AS f_payer
           FROM indexer.refunds",
        f,
    )
    .await?;
    let next_cursor = next(&items, f.limit, |r| {
        cursor_of(r.slot, &r.signature, r.ix_index, r.inner_index)
    });
    Ok(Page { items, next_cursor })
}

const PAYMENT_COLUMNS: &str = "chain, signature, ix_index, inner_index, slot, commitment,
    block_time, payment, payer, facility, invoice_id, reference, mint, amount::text AS amount,
    fee::text AS fee, paid_at";

/// The payment carrying Solana Pay `reference` (base58), on any chain, if indexed (the
/// oldest, should a reference have been reused). Rows at `confirmed` are included.
pub async fn payment_by_reference(
    pool: &PgPool,
    reference: &str,
) -> Result<Option<PaymentRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM indexer.payments WHERE reference = $1
         ORDER BY slot, signature, ix_index, inner_index LIMIT 1"
    ))
    .bind(reference)
    .fetch_optional(pool)
    .await?)
}

/// How many payments from `payer` the indexer saw at or after each of `since` (unix
/// seconds, block time), in the same order: the KYC service's velocity check.
pub async fn payer_counts<const N: usize>(
    pool: &PgPool,
    payer: &str,
    since: [i64; N],
) -> Result<[i64; N], StoreError> {
    let counts: Vec<i64> = sqlx::query_scalar(
        "SELECT count(p.paid_at) FROM unnest($2::bigint[]) WITH ORDINALITY AS u(since, i)
           LEFT JOIN indexer.payments p ON p.payer = $1 AND p.paid_at >= u.since
          GROUP BY u.i ORDER BY u.i",
    )
    .bind(payer)
    .bind(since.as_slice())
    .fetch_all(pool)
    .await?;
    let mut out = [0; N];
    for (o, c) in out.iter_mut().zip(counts) {
        *o = c;
    }
    Ok(out)
}

/// Every payment carrying Solana Pay `reference` (base58), oldest first: the intended one
/// and any other transaction that reused the reference (a payer who changed the amount, a
/// second payment). Rows at `confirmed` are included.
pub async fn payments_by_reference(
    pool: &PgPool,
    reference: &str,
) -> Result<Vec<PaymentRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM indexer.payments WHERE reference = $1
         ORDER BY slot, signature, ix_index, inner_index LIMIT 1000"
    ))
    .bind(reference)
    .fetch_all(pool)
    .await?)
}

/// Payments of invoice `invoice_id_hex` (hex of the 32-byte id) at `facility`, oldest first
/// (one per payer: the program keys payments by payer and invoice).
pub async fn payments_by_invoice(
    pool: &PgPool,
    facility: &str,
    invoice_id_hex: &str,
) -> Result<Vec<PaymentRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM indexer.payments WHERE facility = $1 AND invoice_id = $2
         ORDER BY slot, signature, ix_index, inner_index LIMIT 1000"
    ))
    .bind(facility)
    .bind(invoice_id_hex.to_ascii_lowercase())
    .fetch_all(pool)
    .await?)
}

/// An escrow lifecycle event; payer, facility, arbiter and mint are filled in from the
/// escrow's `opened` event for later events (which carry only the escrow address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EscrowRow {
    pub chain: String,
    pub signature: String,
    pub ix_index: i32,
    pub inner_index: i32,
    pub slot: i64,
    pub commitment: String,
    pub block_time: Option<i64>,
    /// `opened`, `released`, `refunded` or `closed`.
    pub kind: String,
    pub escrow: String,
    /// Who acted (payer on open, releaser, refund caller, rent receiver on close).
    pub actor: String,
    pub payer: Option<String>,
    pub facility: Option<String>,
    pub arbiter: Option<String>,
    pub mint: Option<String>,
    /// Base units, decimal strings.
    pub amount: String,
    pub fee: String,
    pub released_total: Option<String>,
    pub expires_at: Option<i64>,
}

/// A KYC attestation written or revoked (`payer` filter = wallet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AttestationRow {
    pub chain: String,
    pub signature: String,
    pub ix_index: i32,
    pub inner_index: i32,
    pub slot: i64,
    pub commitment: String,
    pub block_time: Option<i64>,
    /// `written` or `revoked`.
    pub kind: String,
    pub wallet: String,
    pub level: Option<i16>,
    pub expires_at: Option<i64>,
}

/// A facility registered, its payout wallet changed, or deactivated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FacilityRow {
    pub chain: String,
    pub signature: String,
    pub ix_index: i32,
    pub inner_index: i32,
    pub slot: i64,
    pub commitment: String,
    pub block_time: Option<i64>,
    /// `registered`, `payout_updated` or `deactivated`.
    pub kind: String,
    pub facility: String,
    /// Hex of the 32-byte facility id (on registration).
    pub facility_id: Option<String>,
    pub authority: Option<String>,
    pub payout_wallet: Option<String>,
}

/// A settlement batch commitment (Merkle root of the off-chain batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SettlementRow {
    pub chain: String,
    pub signature: String,
    pub ix_index: i32,
    pub inner_index: i32,
    pub slot: i64,
    pub commitment: String,
    pub block_time: Option<i64>,
    pub batch_number: String,
    /// Hex of the 32-byte root.
    pub root: String,
    pub entry_count: String,
    /// `[{mint, amount}]`, amounts as decimal strings (u128).
    pub totals: serde_json::Value,
}

macro_rules! paged {
    ($(#[$doc:meta])* $name:ident, $row:ty, $select:expr) => {
        $(#[$doc])*
        pub async fn $name(pool: &PgPool, f: &EventFilter) -> Result<Page<$row>, StoreError> {
            let items: Vec<$row> = page(pool, $select, f).await?;
            let next_cursor = next(&items, f.limit, |r| {
                cursor_of(r.slot, &r.signature, r.ix_index, r.inner_index)
            });
            Ok(Page { items, next_cursor })
        }
    };
}

paged!(
    /// Escrow events; the facility and payer filters also match events after `opened`.
    escrows,
    EscrowRow,
    "SELECT e.chain, e.signature, e.ix_index, e.inner_index, e.slot, e.commitment,
            e.block_time, e.kind, e.escrow, e.actor,
            coalesce(e.payer, o.payer) AS payer, coalesce(e.facility, o.facility) AS facility,
            coalesce(e.arbiter, o.arbiter) AS arbiter, coalesce(e.mint, o.mint) AS mint,
            e.amount::text AS amount, e.fee::text AS fee,
            e.released_total::text AS released_total, coalesce(e.expires_at, o.expires_at) AS expires_at,
            coalesce(e.facility, o.facility) AS f_facility, coalesce(e.payer, o.payer) AS f_payer
       FROM indexer.escrows e
       LEFT JOIN LATERAL (SELECT payer, facility, arbiter, mint, expires_at FROM indexer.escrows o
                           WHERE o.chain = e.chain AND o.escrow = e.escrow AND o.kind = 'opened'
                           LIMIT 1) o ON e.kind <> 'opened'"
);

paged!(
    /// Attestations; the payer filter matches the attested wallet, facility matches none.
    attestations,
    AttestationRow,
    "SELECT chain, signature, ix_index, inner_index, slot, commitment, block_time, kind,
            wallet, level, expires_at, NULL::text AS f_facility, wallet AS f_payer
       FROM indexer.attestations"
);

paged!(
    /// Facility events; a payer filter matches none.
    facilities,
    FacilityRow,
    "SELECT chain, signature, ix_index, inner_index, slot, commitment, block_time, kind,
            facility, facility_id, authority, payout_wallet,
            facility AS f_facility, NULL::text AS f_payer
       FROM indexer.facilities"
);

paged!(
    /// Settlement commitments; facility and payer filters match none.
    settlements,
    SettlementRow,
    "SELECT chain, signature, ix_index, inner_index, slot, commitment, block_time,
            batch_number::text AS batch_number, root, entry_count::text AS entry_count, totals,
            NULL::text AS f_facility, NULL::text AS f_payer
       FROM indexer.settlement_commitments"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = cursor_of(42, "5sig", 1, 3);
        assert_eq!(parse_cursor(&c).unwrap(), (42, "5sig".to_string(), 1, 3));
        for bad in [
            "",
            "1",
            "1:sig",
            "1:sig:2",
            "x:sig:1:2",
            "1::1:2",
            "1:sig:1:2:3",
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(StoreError::BadCursor(b)) if b == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn next_cursor_only_on_full_pages() {
        let rows = [1, 2, 3];
        assert_eq!(next(&rows, 3, |r| r.to_string()), Some("3".into()));
        assert_eq!(next(&rows, 4, |r| r.to_string()), None);
    }
}
