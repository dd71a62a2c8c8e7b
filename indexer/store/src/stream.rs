//! Live stream of indexed rows for partners (the API serves it as server-sent events).
//!
//! Every event row and every rollback carries `seq`, a position drawn from one sequence
//! when the row is written and again when its commitment or slot changes (so a row shows up
//! again at `finalized`). Writers draw positions under an advisory lock held to commit, so
//! positions become visible in order, and `pg_notify` in the same transaction wakes
//! listeners only for committed rows.
//!
//! [`subscribe`] listens first, then reads everything after the client's position from the
//! tables, then re-reads after its newest position on each wake-up: a client reconnecting
//! with the last position it saw (SSE `Last-Event-ID`) misses nothing and gets nothing twice.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use advancia_db::follow::{BoxError, LogSource};

use crate::NOTIFY_CHANNEL;
use crate::StoreError;

/// Which rows a subscriber wants. Rollbacks are sent whatever the facility/payer filter
/// (they name only the transaction undone).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamFilter {
    pub chain: Option<String>,
    /// Facility account (escrow events after `opened` match through their escrow).
    pub facility: Option<String>,
    /// Payer (payments, refunds, escrows) or attested wallet.
    pub payer: Option<String>,
}

/// One row of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct IndexedEvent {
    /// Stream position (SSE event id).
    pub seq: i64,
    /// Table the row lives in (`payments`, …, `rollbacks`).
    pub source: String,
    /// `payment_made`, `escrow_released`, …, or `rollback`.
    pub kind: String,
    pub chain: String,
    pub signature: String,
    pub ix_index: Option<i32>,
    pub inner_index: Option<i32>,
    pub slot: i64,
    /// `confirmed` or `finalized` (none for rollbacks).
    pub commitment: Option<String>,
    pub block_time: Option<i64>,
    /// The row's own columns (amounts as decimal strings).
    pub data: Value,
}

/// Columns holding u64 amounts: sent as strings (JSON numbers lose precision past 2^53).
const AMOUNT_KEYS: [&str; 6] = [
    "amount",
    "fee",
    "refunded_total",
    "released_total",
    "batch_number",
    "entry_count",
];

const KEY: &str = "chain, signature, ix_index, inner_index, slot, commitment, block_time";
const DROP: &str = "- 'seq' - 'ledgered' - 'chain' - 'signature' - 'ix_index' - 'inner_index' \
                    - 'slot' - 'commitment' - 'block_time'";

fn union_sql() -> String {
    format!(
        "SELECT * FROM (
           SELECT seq, 'payments' AS source, 'payment_made' AS kind, {KEY}, to_jsonb(t) {DROP} AS data,
                  facility AS f_facility, payer AS f_payer FROM indexer.payments t WHERE seq > $1
           UNION ALL
           SELECT seq, 'refunds', 'payment_refunded', {KEY}, to_jsonb(t) {DROP}, facility, payer
             FROM indexer.refunds t WHERE seq > $1
           UNION ALL
           -- Releases, refunds and closes name only their escrow: they carry the facility,
           -- payer and mint of its opening, so readers need no lookup of their own.
           SELECT t.seq, 'escrows', 'escrow_' || t.kind, t.chain, t.signature, t.ix_index,
                  t.inner_index, t.slot, t.commitment, t.block_time,
                  to_jsonb(t) {DROP} || jsonb_build_object(
                      'facility', coalesce(t.facility, o.facility),
                      'payer', coalesce(t.payer, o.payer),
                      'mint', coalesce(t.mint, o.mint)),
                  coalesce(t.facility, o.facility), coalesce(t.payer, o.payer)
             FROM indexer.escrows t
             LEFT JOIN LATERAL (SELECT o.facility, o.payer, o.mint FROM indexer.escrows o
                  WHERE o.chain = t.chain AND o.escrow = t.escrow AND o.kind = 'opened'
                  LIMIT 1) o ON t.kind <> 'opened'
            WHERE t.seq > $1
           UNION ALL
           SELECT seq, 'facilities', 'facility_' || kind, {KEY}, to_jsonb(t) {DROP}, facility, NULL
             FROM indexer.facilities t WHERE seq > $1
           UNION ALL
           SELECT seq, 'attestations', 'attestation_' || kind, {KEY}, to_jsonb(t) {DROP}, NULL, wallet
             FROM indexer.attestations t WHERE seq > $1
           UNION ALL
           SELECT seq, 'settlement_commitments', 'batch_committed', {KEY}, to_jsonb(t) {DROP}, NULL, NULL
             FROM indexer.settlement_commitments t WHERE seq > $1
           UNION ALL
           SELECT seq, 'admin_events', kind, {KEY}, to_jsonb(t) {DROP} - 'kind', NULL, NULL
             FROM indexer.admin_events t WHERE seq > $1
           UNION ALL
           SELECT seq, 'bridge_messages', 'bridge_' || direction, {KEY},
                  -- uint256 amounts as text here: past 2^64 a JSON number would be rounded.
                  to_jsonb(t) {DROP} - 'direction'
                    || jsonb_build_object('amount', t.amount::text, 'sequence', t.sequence::text),
                  NULL, NULL
             FROM indexer.bridge_messages t WHERE seq > $1
           UNION ALL
           SELECT seq, 'rollbacks', 'rollback', chain, signature, NULL::int, NULL::int, slot,
                  NULL::text, NULL::bigint, to_jsonb(r) - 'seq' - 'id' - 'chain' - 'signature' - 'slot',
                  NULL, NULL
             FROM indexer.rollbacks r WHERE seq > $1
         ) q
         WHERE ($2::text IS NULL OR chain = $2)
           AND (source = 'rollbacks' OR (
                ($3::text IS NULL OR f_facility = $3) AND ($4::text IS NULL OR f_payer = $4)))
         ORDER BY seq LIMIT $5"
    )
}

/// Rows after position `after` (exclusive), oldest first, at most `limit` (1..=1000).
pub async fn events_after(
    pool: &PgPool,
    filter: &StreamFilter,
    after: i64,
    limit: u32,
) -> Result<Vec<IndexedEvent>, StoreError> {
    let mut rows: Vec<IndexedEvent> = sqlx::query_as(&union_sql())
        .bind(after)
        .bind(&filter.chain)
        .bind(&filter.facility)
        .bind(&filter.payer)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(pool)
        .await?;
    for r in &mut rows {
        if let Value::Object(m) = &mut r.data {
            for k in AMOUNT_KEYS {
                if let Some(v) = m.get_mut(k).filter(|v| v.is_number()) {
                    *v = Value::String(v.to_string());
                }
            }
        }
    }
    Ok(rows)
}

/// The newest position so far (0 when nothing was ever written): where a client that wants
/// only new rows starts.
pub async fn head_position(pool: &PgPool) -> Result<i64, StoreError> {
    let (last, called): (i64, bool) =
        sqlx::query_as("SELECT last_value, is_called FROM indexer.event_seq")
            .fetch_one(pool)
            .await?;
    Ok(if called { last } else { 0 })
}

/// Re-read even without a notification this often (a notification lost with a dropped
/// listener connection must not stall the stream).
const RECHECK: Duration = Duration::from_secs(5);
const PAGE: u32 = 500;

/// The stream as a followed log (ADR 0023): the payments worker, the ledger's projection
/// and the analytics rollups read it behind cursors of their own.
#[derive(Clone)]
pub struct IndexerLog {
    pool: PgPool,
    filter: StreamFilter,
}

impl IndexerLog {
    /// Rows of the indexer database `pool` matching `filter`.
    pub fn new(pool: PgPool, filter: StreamFilter) -> IndexerLog {
        IndexerLog { pool, filter }
    }
}

impl LogSource for IndexerLog {
    type Entry = IndexedEvent;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn channel(&self) -> &str {
        NOTIFY_CHANNEL
    }

    async fn read_after(&self, after: i64, limit: u32) -> Result<Vec<IndexedEvent>, BoxError> {
        Ok(events_after(&self.pool, &self.filter, after, limit).await?)
    }

    fn position(e: &IndexedEvent) -> i64 {
        e.seq
    }
}

struct State {
    pool: PgPool,
    filter: StreamFilter,
    listener: Option<PgListener>,
    position: i64,
    buf: VecDeque<IndexedEvent>,
    /// Read again at once (the last read filled a page).
    more: bool,
}

/// Rows after position `after`, then live rows as they commit, in position order, never
/// twice. Ends only on a database error (the item is that error).
pub fn subscribe(
    pool: PgPool,
    filter: StreamFilter,
    after: i64,
) -> impl Stream<Item = Result<IndexedEvent, StoreError>> + Send + 'static {
    let state = State {
        pool,
        filter,
        listener: None,
        position: after,
        buf: VecDeque::new(),
        more: true,
    };
    futures_util::stream::try_unfold(state, |mut st| async move {
        loop {
            if let Some(e) = st.buf.pop_front() {
                return Ok(Some((e, st)));
            }
            match st.listener.as_mut() {
                None => {
                    // Listen before the first read: whatever commits after this is either
                    // in that read or wakes us afterwards.
                    let mut l = PgListener::connect_with(&st.pool).await?;
                    l.listen(NOTIFY_CHANNEL).await?;
                    st.listener = Some(l);
                }
                Some(l) if !st.more => {
                    // A notification, a lost connection (`None`: it reconnects on the next
                    // call) or the recheck timeout: read the tables again either way.
                    if let Ok(r) = tokio::time::timeout(RECHECK, l.try_recv()).await {
                        r?;
                    }
                }
                Some(_) => {}
            }
            let page = events_after(&st.pool, &st.filter, st.position, PAGE).await?;
            st.more = page.len() == PAGE as usize;
            if let Some(last) = page.last() {
                st.position = last.seq;
            }
            st.buf.extend(page);
        }
    })
}
