//! The rollup worker (ADRs 0018, 0023): two followers ([`advancia_db::follow`]) keep
//! `analytics.rollup_hourly` / `rollup_daily` current, each moving its cursor in
//! `analytics.cursors` in the transaction that applies its deltas (exactly once):
//!
//! - [`ChainEvents`] follows the indexer's stream ([`IndexerLog`]): finalized payments,
//!   refunds, escrow releases and escrow refunds, and rollbacks. What each counted event added
//!   is kept in `counted_events`; an event that shows up again (new slot or block time) first
//!   takes back its old contribution, and a rollback takes back everything its transaction
//!   added — so the buckets always equal an aggregate over the finalized indexed rows.
//! - [`IntentOutcomes`] follows the payment service's outbox ([`OutboxLog`] over
//!   `advancia_payments::OUTBOX`, handed in by the composition root): each
//!   `payment.status_changed` to a terminal status (finalized, failed, expired) replaces the
//!   intent's previous outcome in `intent_outcomes` and moves `attempts` / `succeeded`.
//!
//! Both logs are gap-safe, so neither follower can skip a late commit, and analytics names
//! no other service's tables: the entries are self-contained, and the one thing the stream
//! does not carry (when a transaction without a block time was indexed) comes from the
//! indexer store's typed read [`advancia_indexer_store::lookup::indexed_at`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use advancia_db::follow::{BoxError, Cursor, FollowConfig, Follower, Handler};
use advancia_indexer_store::stream::{IndexedEvent, IndexerLog, StreamFilter};
use advancia_outbox::{Event, OutboxLog};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{AnalyticsError, units};

/// The cursor table (the follower's shape, ADR 0023).
pub const CURSORS: &str = "analytics.cursors";
/// Cursor of [`ChainEvents`] (a position of the indexer's stream).
pub const CHAIN_CURSOR: &str = "chain-events";
/// Cursor of [`IntentOutcomes`] (a position of the payments outbox).
pub const INTENTS_CURSOR: &str = "payment-outcomes";

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

    async fn apply(&self, conn: &mut PgConnection) -> Result<(), AnalyticsError> {
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
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// The rollup rows of one granularity in the reference's shape (zero rows left out).
pub const ROLLUP_DAILY_SQL: &str = "
SELECT extract(epoch FROM bucket)::bigint AS bucket, chain, facility, mint, payments, releases,
       refunds, volume::text AS volume, fees::text AS fees, refunded::text AS refunded,
       attempts, succeeded
  FROM analytics.rollup_daily
 WHERE (payments, releases, refunds, attempts, succeeded) <> (0, 0, 0, 0, 0)
    OR (volume, fees, refunded) <> (0, 0, 0)
 ORDER BY 1, 2, 3, 4";

/// One counted event as `counted_events` keeps it.
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

/// The counting kind of a stream entry (`payment`, `refund`, `release`, `escrow_refund`),
/// `None` for entries that move no money in the rollups (escrow openings and closes,
/// facilities, attestations, …) and for rollbacks.
fn money_kind(e: &IndexedEvent) -> Option<&'static str> {
    match (e.source.as_str(), e.kind.as_str()) {
        ("payments", _) => Some("payment"),
        ("refunds", _) => Some("refund"),
        ("escrows", "escrow_released") => Some("release"),
        ("escrows", "escrow_refunded") => Some("escrow_refund"),
        _ => None,
    }
}

/// A money entry of the stream, keyed as the indexer keys its rows.
struct MoneyEntry<'a> {
    e: &'a IndexedEvent,
    kind: &'static str,
    ix_index: i32,
    inner_index: i32,
}

impl<'a> MoneyEntry<'a> {
    fn text(&self, key: &str) -> Option<&'a str> {
        self.e.data.get(key).and_then(Value::as_str)
    }

    /// Amount and fee in base units (decimal text); fees count for payments and releases
    /// only.
    fn amount_fee(&self) -> Option<(&'a str, &'a str)> {
        let amount = self.text("amount")?;
        let fee = match self.kind {
            "payment" | "release" => self.text("fee")?,
            _ => "0",
        };
        Some((amount, fee))
    }
}

/// Follows the indexer's stream: counts finalized money events, takes back re-streamed and
/// rolled-back ones (the handler of [`Rollup::chain_follower`]).
#[derive(Clone)]
pub struct ChainEvents {
    /// The indexer's database, for [`advancia_indexer_store::lookup::indexed_at`].
    indexer: PgPool,
}

impl ChainEvents {
    pub fn new(indexer: PgPool) -> ChainEvents {
        ChainEvents { indexer }
    }

    async fn count(
        &self,
        conn: &mut PgConnection,
        entries: &[IndexedEvent],
    ) -> Result<(), AnalyticsError> {
        let mut deltas = Deltas::default();
        // Rows read now still exist, so they come after any rollback of their transaction
        // in this batch: take rollbacks back first, then re-count the events.
        let rollbacks: Vec<&IndexedEvent> =
            entries.iter().filter(|e| e.source == "rollbacks").collect();
        if !rollbacks.is_empty() {
            let chains: Vec<&str> = rollbacks.iter().map(|e| e.chain.as_str()).collect();
            let sigs: Vec<&str> = rollbacks.iter().map(|e| e.signature.as_str()).collect();
            let gone: Vec<Contribution> = sqlx::query_as(
                "DELETE FROM analytics.counted_events c
                  USING unnest($1::text[], $2::text[]) AS u(chain, signature)
                  WHERE c.chain = u.chain AND c.signature = u.signature
                 RETURNING c.kind, extract(epoch FROM c.at)::bigint AS at, c.chain, c.facility,
                           c.mint, c.amount::text AS amount, c.fee::text AS fee",
            )
            .bind(&chains)
            .bind(&sigs)
            .fetch_all(&mut *conn)
            .await?;
            for c in gone {
                take_back(&mut deltas, c)?;
            }
        }
        let mut events = Vec::new();
        for e in entries {
            let Some(kind) = money_kind(e) else {
                continue;
            };
            let (Some(ix_index), Some(inner_index)) = (e.ix_index, e.inner_index) else {
                return Err(AnalyticsError::Corrupt(format!(
                    "stream entry {} ({} {}) has no instruction index",
                    e.seq, e.chain, e.signature
                )));
            };
            events.push(MoneyEntry {
                e,
                kind,
                ix_index,
                inner_index,
            });
        }
        if !events.is_empty() {
            // Whatever these rows added before (an earlier stream position) is taken back,
            // then the finalized ones are counted again as they are now.
            let chain: Vec<&str> = events.iter().map(|m| m.e.chain.as_str()).collect();
            let signature: Vec<&str> = events.iter().map(|m| m.e.signature.as_str()).collect();
            let ix: Vec<i32> = events.iter().map(|m| m.ix_index).collect();
            let inner: Vec<i32> = events.iter().map(|m| m.inner_index).collect();
            let old: Vec<Contribution> = sqlx::query_as(
                "DELETE FROM analytics.counted_events c
                  USING unnest($1::text[], $2::text[], $3::int4[], $4::int4[])
                        AS u(chain, signature, ix_index, inner_index)
                  WHERE (c.chain, c.signature, c.ix_index, c.inner_index)
                      = (u.chain, u.signature, u.ix_index, u.inner_index)
                 RETURNING c.kind, extract(epoch FROM c.at)::bigint AS at, c.chain, c.facility,
                           c.mint, c.amount::text AS amount, c.fee::text AS fee",
            )
            .bind(&chain)
            .bind(&signature)
            .bind(&ix)
            .bind(&inner)
            .fetch_all(&mut *conn)
            .await?;
            for c in old {
                take_back(&mut deltas, c)?;
            }
            let finalized: Vec<&MoneyEntry<'_>> = events
                .iter()
                .filter(|m| m.e.commitment.as_deref() == Some("finalized"))
                .collect();
            let indexed = self.indexed_at(&finalized).await?;
            let mut new = CountedRows::default();
            for m in finalized {
                let e = m.e;
                // Bucket time: the block time, else the payment's own clock, else when the
                // transaction was indexed.
                let at = e
                    .block_time
                    .or_else(|| match m.kind {
                        "payment" => e.data.get("paid_at").and_then(Value::as_i64),
                        _ => None,
                    })
                    .or_else(|| {
                        indexed
                            .get(&(e.chain.clone(), e.signature.clone()))
                            .copied()
                    });
                let (Some(at), Some(facility), Some(mint), Some((amount, fee))) =
                    (at, m.text("facility"), m.text("mint"), m.amount_fee())
                else {
                    // An escrow release or refund whose opening is unknown is not counted.
                    continue;
                };
                deltas.add(
                    at,
                    (e.chain.clone(), facility.to_owned(), mint.to_owned()),
                    Delta::of_event(m.kind, units(amount)?, units(fee)?, 1),
                );
                new.push(m, at, facility, mint, amount, fee);
            }
            new.insert(&mut *conn).await?;
        }
        deltas.apply(&mut *conn).await?;
        Ok(())
    }

    /// When the transactions of finalized entries without a block time (other than payments,
    /// which carry their own clock) were indexed, by (chain, signature).
    async fn indexed_at(
        &self,
        finalized: &[&MoneyEntry<'_>],
    ) -> Result<HashMap<(String, String), i64>, AnalyticsError> {
        let wanted: Vec<&IndexedEvent> = finalized
            .iter()
            .filter(|m| m.e.block_time.is_none() && m.kind != "payment")
            .map(|m| m.e)
            .collect();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let chains: Vec<&str> = wanted.iter().map(|e| e.chain.as_str()).collect();
        let sigs: Vec<&str> = wanted.iter().map(|e| e.signature.as_str()).collect();
        let rows =
            advancia_indexer_store::lookup::indexed_at(&self.indexer, &chains, &sigs).await?;
        Ok(rows
            .into_iter()
            .map(|(chain, signature, at)| ((chain, signature), at))
            .collect())
    }
}

impl Handler<IndexedEvent> for ChainEvents {
    async fn handle(
        &mut self,
        conn: &mut PgConnection,
        entries: &[IndexedEvent],
    ) -> Result<(), BoxError> {
        Ok(self.count(conn, entries).await?)
    }
}

/// What analytics reads of a `payment.status_changed` event (its payload carries the
/// intent's fields, see `advancia_payments::events`).
#[derive(serde::Deserialize)]
struct StatusChanged {
    payment_id: Uuid,
    status: String,
    chain: String,
    facility: String,
    mint: String,
}

/// Follows the payments outbox: the latest terminal outcome of each intent (the handler of
/// [`Rollup::intents_follower`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct IntentOutcomes;

impl IntentOutcomes {
    async fn count(conn: &mut PgConnection, entries: &[Event]) -> Result<(), AnalyticsError> {
        let mut deltas = Deltas::default();
        for e in entries
            .iter()
            .filter(|e| e.kind == "payment.status_changed")
        {
            let r: StatusChanged = serde_json::from_value(e.payload.clone()).map_err(|err| {
                AnalyticsError::Corrupt(format!("payments event {} ({}): {err}", e.seq, e.id))
            })?;
            if !matches!(r.status.as_str(), "finalized" | "failed" | "expired") {
                continue;
            }
            // The change and its event commit together: the event's time is the change's.
            let at = e.created_at.unix_timestamp();
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
            .fetch_optional(&mut *conn)
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
            .bind(at)
            .bind(&r.chain)
            .bind(&r.facility)
            .bind(&r.mint)
            .execute(&mut *conn)
            .await?;
            deltas.add(
                at,
                (r.chain, r.facility, r.mint),
                Delta {
                    attempts: 1,
                    succeeded: i64::from(r.status == "finalized"),
                    ..Delta::default()
                },
            );
        }
        deltas.apply(conn).await
    }
}

impl Handler<Event> for IntentOutcomes {
    async fn handle(&mut self, conn: &mut PgConnection, entries: &[Event]) -> Result<(), BoxError> {
        Ok(Self::count(conn, entries).await?)
    }
}

/// Progress of one [`Rollup::step`] or [`Rollup::catch_up`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Stream entries handled (of every kind, rollbacks included).
    pub events: usize,
    /// Payments outbox entries handled (of every kind).
    pub intents: usize,
}

/// The rollup worker: its two followers and their handlers.
#[derive(Clone)]
pub struct Rollup {
    pool: PgPool,
    indexer: PgPool,
    payments: OutboxLog,
    config: FollowConfig,
}

impl Rollup {
    /// Rollups and cursors in analytics' database `pool`; the indexer's stream read from
    /// the indexer's database `indexer`; the payment service's outbox `payments`
    /// (`OutboxLog::new(payments_pool, advancia_payments::OUTBOX)`, built by the
    /// composition root so analytics names no table of theirs). Each may be a database of
    /// its own.
    pub fn new(pool: PgPool, indexer: PgPool, payments: OutboxLog) -> Rollup {
        Rollup {
            pool,
            indexer,
            payments,
            config: FollowConfig::default(),
        }
    }

    /// Entries per batch of each follower.
    pub fn with_batch(mut self, batch: u32) -> Rollup {
        self.config.batch = batch.max(1);
        self
    }

    pub fn with_config(mut self, config: FollowConfig) -> Rollup {
        self.config = config;
        self
    }

    /// The follower of the indexer's stream (every chain).
    pub fn chain_follower(&self) -> Follower<IndexerLog> {
        Follower::new(
            IndexerLog::new(self.indexer.clone(), StreamFilter::default()),
            Cursor::new(self.pool.clone(), CURSORS, CHAIN_CURSOR),
        )
        .with_config(self.config)
    }

    /// The follower of the payments outbox.
    pub fn intents_follower(&self) -> Follower<OutboxLog> {
        Follower::new(
            self.payments.clone(),
            Cursor::new(self.pool.clone(), CURSORS, INTENTS_CURSOR),
        )
        .with_config(self.config)
    }

    pub fn chain_handler(&self) -> ChainEvents {
        ChainEvents::new(self.indexer.clone())
    }

    /// One batch from each log.
    pub async fn step(&self) -> Result<StepReport, AnalyticsError> {
        Ok(StepReport {
            events: self
                .chain_follower()
                .step(&mut self.chain_handler())
                .await?,
            intents: self.intents_follower().step(&mut IntentOutcomes).await?,
        })
    }

    /// Steps each follower until it is caught up.
    pub async fn catch_up(&self) -> Result<StepReport, AnalyticsError> {
        Ok(StepReport {
            events: self
                .chain_follower()
                .catch_up(&mut self.chain_handler())
                .await?,
            intents: self
                .intents_follower()
                .catch_up(&mut IntentOutcomes)
                .await?,
        })
    }

    /// Follows both logs as their entries commit (pushed by their notifications) until
    /// `stop` resolves; errors are logged and retried by the followers.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let chain = self.chain_follower();
        let intents = self.intents_follower();
        let mut counts = self.chain_handler();
        let mut outcomes = IntentOutcomes;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::join!(
            chain.run(&mut counts, stopped(rx.clone())),
            intents.run(&mut outcomes, stopped(rx)),
            async move {
                stop.await;
                let _ = tx.send(true);
            },
        );
    }

    /// Where the follower `name` ([`CHAIN_CURSOR`], [`INTENTS_CURSOR`]) is.
    pub async fn position(&self, name: &str) -> Result<i64, AnalyticsError> {
        Ok(Cursor::new(self.pool.clone(), CURSORS, name)
            .position()
            .await?)
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
        m: &MoneyEntry<'a>,
        at: i64,
        facility: &'a str,
        mint: &'a str,
        amount: &'a str,
        fee: &'a str,
    ) {
        self.chain.push(&m.e.chain);
        self.signature.push(&m.e.signature);
        self.ix_index.push(m.ix_index);
        self.inner_index.push(m.inner_index);
        self.kind.push(m.kind);
        self.at.push(at);
        self.facility.push(facility);
        self.mint.push(mint);
        self.amount.push(amount);
        self.fee.push(fee);
    }

    async fn insert(&self, conn: &mut PgConnection) -> Result<(), AnalyticsError> {
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
        .execute(conn)
        .await?;
        Ok(())
    }
}

fn take_back(deltas: &mut Deltas, c: Contribution) -> Result<(), AnalyticsError> {
    let d = Delta::of_event(&c.kind, units(&c.amount)?, units(&c.fee)?, -1);
    deltas.add(c.at, (c.chain, c.facility, c.mint), d);
    Ok(())
}
