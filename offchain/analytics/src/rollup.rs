//! The rollup worker: follows the indexer's event stream (`seq`, ADR 0010) and the payment
//! intents' status log, and keeps `analytics.rollup_hourly` / `rollup_daily` current.
//!
//! Exactly once: each step reads after its cursor, applies the deltas and moves the cursor
//! in one transaction (the cursor row is locked, so concurrent workers serialize).
//! Only finalized events count. What each counted event added is kept in
//! `counted_events`; an event that shows up again (new slot or block time) first takes
//! back its old contribution, and a rollback row takes back everything its transaction
//! added — so the buckets always equal an aggregate over the finalized raw rows.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{AnalyticsError, units};

pub const INDEXER_CURSOR: &str = "indexer.event_seq";
pub const INTENTS_CURSOR: &str = "payments.payment_status_history";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    pub payments: i64,
    pub releases: i64,
    pub refunds: i64,
    pub volume: i128,
    pub fees: i128,
    pub refunded: i128,
    pub attempts: i64,
    pub succeeded: i64,
}

impl Delta {
    fn is_zero(&self) -> bool {
        *self == Delta::default()
    }

    /// One counted event's contribution (`sign` = 1 to add, -1 to take back).
    fn of_event(kind: &str, amount: i128, fee: i128, sign: i64) -> Delta {
        let s = i128::from(sign);
        match kind {
            "payment" => Delta {
                payments: sign,
                volume: s * amount,
                fees: s * fee,
                ..Delta::default()
            },
            "release" => Delta {
                releases: sign,
                volume: s * amount,
                fees: s * fee,
                ..Delta::default()
            },
            // refund | escrow_refund
            _ => Delta {
                refunds: sign,
                refunded: s * amount,
                ..Delta::default()
            },
        }
    }

    fn add(&mut self, o: &Delta) {
        self.payments += o.payments;
        self.releases += o.releases;
        self.refunds += o.refunds;
        self.volume += o.volume;
        self.fees += o.fees;
        self.refunded += o.refunded;
        self.attempts += o.attempts;
        self.succeeded += o.succeeded;
    }
}

/// (chain, facility, mint).
type Key = (String, String, String);

/// Deltas per bucket, both granularities; sorted keys keep lock order stable across
/// concurrent writers (no deadlocks between the two cursors' steps).
#[derive(Default)]
struct Deltas {
    hourly: BTreeMap<(i64, Key), Delta>,
    daily: BTreeMap<(i64, Key), Delta>,
}

impl Deltas {
    fn add(&mut self, at_unix: i64, key: Key, d: Delta) {
        let hour = at_unix - at_unix.rem_euclid(3600);
        let day = at_unix - at_unix.rem_euclid(86_400);
        self.hourly.entry((hour, key.clone())).or_default().add(&d);
        self.daily.entry((day, key)).or_default().add(&d);
    }

    async fn apply(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), AnalyticsError> {
        for (table, map) in [
            ("rollup_hourly", &self.hourly),
            ("rollup_daily", &self.daily),
        ] {
            let rows: Vec<_> = map.iter().filter(|(_, d)| !d.is_zero()).collect();
            if rows.is_empty() {
                continue;
            }
            let col = |f: fn(&Delta) -> String| rows.iter().map(|(_, d)| f(d)).collect::<Vec<_>>();
            let bucket: Vec<i64> = rows.iter().map(|((b, _), _)| *b).collect();
            let chain: Vec<&str> = rows.iter().map(|((_, k), _)| k.0.as_str()).collect();
            let facility: Vec<&str> = rows.iter().map(|((_, k), _)| k.1.as_str()).collect();
            let mint: Vec<&str> = rows.iter().map(|((_, k), _)| k.2.as_str()).collect();
            // Counts and amounts travel as text (i128 has no Postgres type), cast in SQL.
            sqlx::query(&format!(
                "INSERT INTO analytics.{table} AS r
                    (bucket, chain, facility, mint, payments, releases, refunds, volume, fees,
                     refunded, attempts, succeeded)
                 SELECT to_timestamp(b), c, f, m, p::bigint, rl::bigint, rf::bigint, v::numeric,
                        fe::numeric, rd::numeric, a::bigint, s::bigint
                   FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[],
                               $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                               $11::text[], $12::text[])
                        AS u(b, c, f, m, p, rl, rf, v, fe, rd, a, s)
                 ON CONFLICT (bucket, chain, facility, mint) DO UPDATE SET
                    payments = r.payments + EXCLUDED.payments,
                    releases = r.releases + EXCLUDED.releases,
                    refunds = r.refunds + EXCLUDED.refunds,
                    volume = r.volume + EXCLUDED.volume,
                    fees = r.fees + EXCLUDED.fees,
                    refunded = r.refunded + EXCLUDED.refunded,
                    attempts = r.attempts + EXCLUDED.attempts,
                    succeeded = r.succeeded + EXCLUDED.succeeded"
            ))
            .bind(&bucket)
            .bind(&chain)
            .bind(&facility)
            .bind(&mint)
            .bind(col(|d| d.payments.to_string()))
            .bind(col(|d| d.releases.to_string()))
            .bind(col(|d| d.refunds.to_string()))
            .bind(col(|d| d.volume.to_string()))
            .bind(col(|d| d.fees.to_string()))
            .bind(col(|d| d.refunded.to_string()))
            .bind(col(|d| d.attempts.to_string()))
            .bind(col(|d| d.succeeded.to_string()))
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct StreamRow {
    seq: i64,
    kind: String,
    chain: String,
    signature: String,
    ix_index: i32,
    inner_index: i32,
    commitment: String,
    at: Option<i64>,
    facility: Option<String>,
    mint: Option<String>,
    amount: Option<String>,
    fee: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Contribution {
    kind: String,
    at: i64,
    chain: String,
    facility: String,
    mint: String,
    amount: String,
    fee: String,
}

/// Money events after `seq`, in stream order. Each branch is an index range on `seq`.
/// Escrow releases and refunds carry only the escrow: facility and mint come from its
/// `opened` row (a release whose `opened` row is unknown is not counted). Bucket time is
/// the block time, else the payment's own clock, else when the row was indexed.
const STREAM_SQL: &str = "
SELECT * FROM (
  (SELECT p.seq, 'payment' AS kind, p.chain, p.signature, p.ix_index, p.inner_index,
          p.commitment, COALESCE(p.block_time, p.paid_at) AS at, p.facility, p.mint,
          p.amount::text AS amount, p.fee::text AS fee
     FROM indexer.payments p WHERE p.seq > $1 ORDER BY p.seq LIMIT $2)
  UNION ALL
  (SELECT r.seq, 'refund', r.chain, r.signature, r.ix_index, r.inner_index, r.commitment,
          COALESCE(r.block_time, floor(extract(epoch FROM t.indexed_at))::bigint), r.facility, r.mint,
          r.amount::text, '0'
     FROM indexer.refunds r JOIN indexer.transactions t USING (chain, signature)
    WHERE r.seq > $1 ORDER BY r.seq LIMIT $2)
  UNION ALL
  (SELECT e.seq, CASE e.kind WHEN 'released' THEN 'release' ELSE 'escrow_refund' END,
          e.chain, e.signature, e.ix_index, e.inner_index, e.commitment,
          COALESCE(e.block_time, floor(extract(epoch FROM t.indexed_at))::bigint), o.facility, o.mint,
          e.amount::text, CASE e.kind WHEN 'released' THEN e.fee::text ELSE '0' END
     FROM indexer.escrows e JOIN indexer.transactions t USING (chain, signature)
     LEFT JOIN LATERAL (SELECT o.facility, o.mint FROM indexer.escrows o
                         WHERE o.escrow = e.escrow AND o.chain = e.chain AND o.kind = 'opened'
                         ORDER BY o.slot LIMIT 1) o ON true
    WHERE e.seq > $1 AND e.kind IN ('released', 'refunded') ORDER BY e.seq LIMIT $2)
  UNION ALL
  (SELECT b.seq, 'rollback', b.chain, b.signature, 0, 0, '', NULL::bigint, NULL, NULL, NULL, NULL
     FROM indexer.rollbacks b WHERE b.seq > $1 ORDER BY b.seq LIMIT $2)
) s ORDER BY seq LIMIT $2";

/// The reference: the same figures aggregated from scratch over the raw tables (finalized
/// rows only), per day. Tests compare the rollups with it; it is not used by requests.
pub const REFERENCE_DAILY_SQL: &str = "
WITH ev AS (
  SELECT 'payment' AS kind, p.chain, COALESCE(p.block_time, p.paid_at) AS at, p.facility, p.mint,
         p.amount, p.fee
    FROM indexer.payments p WHERE p.commitment = 'finalized'
  UNION ALL
  SELECT 'refund', r.chain, COALESCE(r.block_time, floor(extract(epoch FROM t.indexed_at))::bigint),
         r.facility, r.mint, r.amount, 0
    FROM indexer.refunds r JOIN indexer.transactions t USING (chain, signature)
   WHERE r.commitment = 'finalized'
  UNION ALL
  SELECT CASE e.kind WHEN 'released' THEN 'release' ELSE 'escrow_refund' END, e.chain,
         COALESCE(e.block_time, floor(extract(epoch FROM t.indexed_at))::bigint), o.facility, o.mint,
         e.amount, CASE e.kind WHEN 'released' THEN e.fee ELSE 0 END
    FROM indexer.escrows e JOIN indexer.transactions t USING (chain, signature)
    JOIN LATERAL (SELECT o.facility, o.mint FROM indexer.escrows o
                   WHERE o.escrow = e.escrow AND o.chain = e.chain AND o.kind = 'opened'
                   ORDER BY o.slot LIMIT 1) o ON true
   WHERE e.commitment = 'finalized' AND e.kind IN ('released', 'refunded')
), money AS (
  SELECT date_trunc('day', to_timestamp(at) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket,
         chain, facility, mint,
         count(*) FILTER (WHERE kind = 'payment') AS payments,
         count(*) FILTER (WHERE kind = 'release') AS releases,
         count(*) FILTER (WHERE kind IN ('refund', 'escrow_refund')) AS refunds,
         COALESCE(sum(amount) FILTER (WHERE kind IN ('payment', 'release')), 0) AS volume,
         COALESCE(sum(fee) FILTER (WHERE kind IN ('payment', 'release')), 0) AS fees,
         COALESCE(sum(amount) FILTER (WHERE kind IN ('refund', 'escrow_refund')), 0) AS refunded
    FROM ev GROUP BY 1, 2, 3, 4
), last_terminal AS (
  SELECT DISTINCT ON (h.payment_id) h.payment_id, h.status, h.at
    FROM payments.payment_status_history h
   WHERE h.status IN ('finalized', 'failed', 'expired')
   ORDER BY h.payment_id, h.id DESC
), outcomes AS (
  SELECT date_trunc('day', l.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket,
         p.chain, p.facility, p.mint,
         count(*) AS attempts, count(*) FILTER (WHERE l.status = 'finalized') AS succeeded
    FROM last_terminal l JOIN payments.payments p ON p.id = l.payment_id
   GROUP BY 1, 2, 3, 4
)
SELECT extract(epoch FROM COALESCE(m.bucket, o.bucket))::bigint AS bucket,
       COALESCE(m.chain, o.chain) AS chain, COALESCE(m.facility, o.facility) AS facility,
       COALESCE(m.mint, o.mint) AS mint,
       COALESCE(m.payments, 0) AS payments, COALESCE(m.releases, 0) AS releases,
       COALESCE(m.refunds, 0) AS refunds, COALESCE(m.volume, 0)::text AS volume,
       COALESCE(m.fees, 0)::text AS fees, COALESCE(m.refunded, 0)::text AS refunded,
       COALESCE(o.attempts, 0) AS attempts, COALESCE(o.succeeded, 0) AS succeeded
  FROM money m FULL JOIN outcomes o
    ON (m.bucket, m.chain, m.facility, m.mint) = (o.bucket, o.chain, o.facility, o.mint)
 ORDER BY 1, 2, 3, 4";

/// The rollup rows of one granularity in the reference's shape (zero rows left out).
pub const ROLLUP_DAILY_SQL: &str = "
SELECT extract(epoch FROM bucket)::bigint AS bucket, chain, facility, mint, payments, releases,
       refunds, volume::text AS volume, fees::text AS fees, refunded::text AS refunded,
       attempts, succeeded
  FROM analytics.rollup_daily
 WHERE (payments, releases, refunds, attempts, succeeded) <> (0, 0, 0, 0, 0)
    OR (volume, fees, refunded) <> (0, 0, 0)
 ORDER BY 1, 2, 3, 4";

/// Progress of one [`Rollup::step`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Stream rows read (events and rollbacks) after the indexer cursor.
    pub events: usize,
    /// Status-log rows read after the intents cursor.
    pub intents: usize,
}

/// The rollup worker.
#[derive(Clone)]
pub struct Rollup {
    pool: PgPool,
    batch: i64,
}

impl Rollup {
    pub fn new(pool: PgPool) -> Rollup {
        Rollup { pool, batch: 2_000 }
    }

    pub fn with_batch(mut self, batch: u32) -> Rollup {
        self.batch = i64::from(batch.max(1));
        self
    }

    /// One batch from each source.
    pub async fn step(&self) -> Result<StepReport, AnalyticsError> {
        Ok(StepReport {
            events: self.step_events().await?,
            intents: self.step_intents().await?,
        })
    }

    /// Steps until both cursors are caught up.
    pub async fn catch_up(&self) -> Result<StepReport, AnalyticsError> {
        let mut total = StepReport::default();
        loop {
            let r = self.step().await?;
            total.events += r.events;
            total.intents += r.intents;
            if r == StepReport::default() {
                return Ok(total);
            }
        }
    }

    /// Catches up every `every` until `shutdown` resolves; errors are logged and retried.
    pub async fn run(self, every: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "analytics rollup step failed");
            }
        }
    }

    async fn lock_cursor(
        tx: &mut Transaction<'_, Postgres>,
        name: &str,
    ) -> Result<i64, AnalyticsError> {
        sqlx::query("INSERT INTO analytics.cursors (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(name)
            .execute(&mut **tx)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT position FROM analytics.cursors WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_one(&mut **tx)
                .await?,
        )
    }

    async fn save_cursor(
        tx: &mut Transaction<'_, Postgres>,
        name: &str,
        position: i64,
    ) -> Result<(), AnalyticsError> {
        sqlx::query(
            "UPDATE analytics.cursors SET position = $2, updated_at = now() WHERE name = $1",
        )
        .bind(name)
        .bind(position)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn position(&self, name: &str) -> Result<i64, AnalyticsError> {
        Ok(
            sqlx::query_scalar("SELECT position FROM analytics.cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    async fn step_events(&self) -> Result<usize, AnalyticsError> {
        let mut tx = self.pool.begin().await?;
        let position = Self::lock_cursor(&mut tx, INDEXER_CURSOR).await?;
        let rows: Vec<StreamRow> = sqlx::query_as(STREAM_SQL)
            .bind(position)
            .bind(self.batch)
            .fetch_all(&mut *tx)
            .await?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            return Ok(0);
        };
        let mut deltas = Deltas::default();
        // Rows read now still exist, so they come after any rollback of their transaction
        // in this batch: take rollbacks back first, then re-count the events.
        let (rollbacks, events): (Vec<&StreamRow>, Vec<&StreamRow>) =
            rows.iter().partition(|r| r.kind == "rollback");
        if !rollbacks.is_empty() {
            let chains: Vec<&str> = rollbacks.iter().map(|r| r.chain.as_str()).collect();
            let sigs: Vec<&str> = rollbacks.iter().map(|r| r.signature.as_str()).collect();
            let gone: Vec<Contribution> = sqlx::query_as(
                "DELETE FROM analytics.counted_events c
                  USING unnest($1::text[], $2::text[]) AS u(chain, signature)
                  WHERE c.chain = u.chain AND c.signature = u.signature
                 RETURNING c.kind, extract(epoch FROM c.at)::bigint AS at, c.chain, c.facility,
                           c.mint, c.amount::text AS amount, c.fee::text AS fee",
            )
            .bind(&chains)
            .bind(&sigs)
            .fetch_all(&mut *tx)
            .await?;
            for c in gone {
                take_back(&mut deltas, c)?;
            }
        }
        if !events.is_empty() {
            // Whatever these rows added before (an earlier stream position) is taken back,
            // then the finalized ones are counted again as they are now.
            let col = |f: fn(&StreamRow) -> &str| events.iter().map(|r| f(r)).collect::<Vec<_>>();
            let ix: Vec<i32> = events.iter().map(|r| r.ix_index).collect();
            let inner: Vec<i32> = events.iter().map(|r| r.inner_index).collect();
            let old: Vec<Contribution> = sqlx::query_as(
                "DELETE FROM analytics.counted_events c
                  USING unnest($1::text[], $2::text[], $3::int4[], $4::int4[])
                        AS u(chain, signature, ix_index, inner_index)
                  WHERE (c.chain, c.signature, c.ix_index, c.inner_index)
                      = (u.chain, u.signature, u.ix_index, u.inner_index)
                 RETURNING c.kind, extract(epoch FROM c.at)::bigint AS at, c.chain, c.facility,
                           c.mint, c.amount::text AS amount, c.fee::text AS fee",
            )
            .bind(col(|r| &r.chain))
            .bind(col(|r| &r.signature))
            .bind(&ix)
            .bind(&inner)
            .fetch_all(&mut *tx)
            .await?;
            for c in old {
                take_back(&mut deltas, c)?;
            }
            let mut new = CountedRows::default();
            for r in &events {
                let (Some(at), Some(facility), Some(mint), Some(amount), Some(fee)) =
                    (r.at, &r.facility, &r.mint, &r.amount, &r.fee)
                else {
                    continue;
                };
                if r.commitment != "finalized" {
                    continue;
                }
                deltas.add(
                    at,
                    (r.chain.clone(), facility.clone(), mint.clone()),
                    Delta::of_event(&r.kind, units(amount)?, units(fee)?, 1),
                );
                new.push(r, at, facility, mint, amount, fee);
            }
            new.insert(&mut tx).await?;
        }
        deltas.apply(&mut tx).await?;
        Self::save_cursor(&mut tx, INDEXER_CURSOR, last).await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// The newest status-log id below which every row is committed. The log's ids come
    /// from a sequence, so a row with a smaller id can commit after a larger one is
    /// visible; a brief SHARE lock waits out in-flight writers and reads `max(id)` with
    /// none running (writers wait at most `lock_timeout`, then we simply try next time).
    async fn intents_horizon(&self) -> Result<Option<i64>, AnalyticsError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '250ms'")
            .execute(&mut *tx)
            .await?;
        let locked = sqlx::query("LOCK TABLE payments.payment_status_history IN SHARE MODE")
            .execute(&mut *tx)
            .await;
        match locked {
            Ok(_) => {}
            // lock_not_available: busy now, not an error.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        let max: Option<i64> =
            sqlx::query_scalar("SELECT max(id) FROM payments.payment_status_history")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(Some(max.unwrap_or(0)))
    }

    async fn step_intents(&self) -> Result<usize, AnalyticsError> {
        let Some(horizon) = self.intents_horizon().await? else {
            return Ok(0);
        };
        let mut tx = self.pool.begin().await?;
        let position = Self::lock_cursor(&mut tx, INTENTS_CURSOR).await?;
        if position >= horizon {
            return Ok(0);
        }
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            payment_id: Uuid,
            status: String,
            at: i64,
            chain: String,
            facility: String,
            mint: String,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT h.id, h.payment_id, h.status, floor(extract(epoch FROM h.at))::bigint AS at,
                    p.chain, p.facility, p.mint
               FROM payments.payment_status_history h
               JOIN payments.payments p ON p.id = h.payment_id
              WHERE h.id > $1 AND h.id <= $2 ORDER BY h.id LIMIT $3",
        )
        .bind(position)
        .bind(horizon)
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        let last = if (rows.len() as i64) < self.batch {
            horizon
        } else {
            rows.last().map_or(horizon, |r| r.id)
        };
        let mut deltas = Deltas::default();
        for r in rows
            .iter()
            .filter(|r| matches!(r.status.as_str(), "finalized" | "failed" | "expired"))
        {
            #[derive(sqlx::FromRow)]
            struct Old {
                outcome: String,
                at: i64,
                chain: String,
                facility: String,
                mint: String,
            }
            let old: Option<Old> = sqlx::query_as(
                "SELECT outcome, extract(epoch FROM at)::bigint AS at, chain, facility, mint
                   FROM analytics.intent_outcomes WHERE payment_id = $1",
            )
            .bind(r.payment_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(o) = old {
                deltas.add(
                    o.at,
                    (o.chain, o.facility, o.mint),
                    Delta {
                        attempts: -1,
                        succeeded: -i64::from(o.outcome == "finalized"),
                        ..Delta::default()
                    },
                );
            }
            sqlx::query(
                "INSERT INTO analytics.intent_outcomes (payment_id, outcome, at, chain, facility, mint)
                 VALUES ($1, $2, to_timestamp($3), $4, $5, $6)
                 ON CONFLICT (payment_id) DO UPDATE SET outcome = EXCLUDED.outcome,
                    at = EXCLUDED.at, chain = EXCLUDED.chain, facility = EXCLUDED.facility,
                    mint = EXCLUDED.mint",
            )
            .bind(r.payment_id)
            .bind(&r.status)
            .bind(r.at)
            .bind(&r.chain)
            .bind(&r.facility)
            .bind(&r.mint)
            .execute(&mut *tx)
            .await?;
            deltas.add(
                r.at,
                (r.chain.clone(), r.facility.clone(), r.mint.clone()),
                Delta {
                    attempts: 1,
                    succeeded: i64::from(r.status == "finalized"),
                    ..Delta::default()
                },
            );
        }
        deltas.apply(&mut tx).await?;
        Self::save_cursor(&mut tx, INTENTS_CURSOR, last).await?;
        tx.commit().await?;
        // The cursor moved (possibly over a gap of ids with no rows): report progress so
        // `catch_up` looks again.
        Ok(rows.len().max(1))
    }
}

/// Newly counted events, inserted with one statement.
#[derive(Default)]
struct CountedRows<'a> {
    chain: Vec<&'a str>,
    signature: Vec<&'a str>,
    ix_index: Vec<i32>,
    inner_index: Vec<i32>,
    kind: Vec<&'a str>,
    at: Vec<i64>,
    facility: Vec<&'a str>,
    mint: Vec<&'a str>,
    amount: Vec<&'a str>,
    fee: Vec<&'a str>,
}

impl<'a> CountedRows<'a> {
    fn push(
        &mut self,
        r: &'a StreamRow,
        at: i64,
        facility: &'a str,
        mint: &'a str,
        amount: &'a str,
        fee: &'a str,
    ) {
        self.chain.push(&r.chain);
        self.signature.push(&r.signature);
        self.ix_index.push(r.ix_index);
        self.inner_index.push(r.inner_index);
        self.kind.push(&r.kind);
        self.at.push(at);
        self.facility.push(facility);
        self.mint.push(mint);
        self.amount.push(amount);
        self.fee.push(fee);
    }

    async fn insert(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), AnalyticsError> {
        if self.chain.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO analytics.counted_events
                (chain, signature, ix_index, inner_index, kind, at, facility, mint, amount, fee)
             SELECT c, s, i, n, k, to_timestamp(a), f, m, am::numeric, fe::numeric
               FROM unnest($1::text[], $2::text[], $3::int4[], $4::int4[], $5::text[],
                           $6::int8[], $7::text[], $8::text[], $9::text[], $10::text[])
                    AS u(c, s, i, n, k, a, f, m, am, fe)",
        )
        .bind(&self.chain)
        .bind(&self.signature)
        .bind(&self.ix_index)
        .bind(&self.inner_index)
        .bind(&self.kind)
        .bind(&self.at)
        .bind(&self.facility)
        .bind(&self.mint)
        .bind(&self.amount)
        .bind(&self.fee)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

fn take_back(deltas: &mut Deltas, c: Contribution) -> Result<(), AnalyticsError> {
    let d = Delta::of_event(&c.kind, units(&c.amount)?, units(&c.fee)?, -1);
    deltas.add(c.at, (c.chain, c.facility, c.mint), d);
    Ok(())
}
