//! Reads for the API. Money figures come from the rollup tables only (never the raw event
//! tables), per (chain, mint) — amounts of different mints are never added together.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AnalyticsError;
use crate::forecast::{self, ForecastResult};

/// Half-open time range `[from, to)`.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

impl Period {
    pub fn new(from: OffsetDateTime, to: OffsetDateTime) -> Result<Period, AnalyticsError> {
        if to <= from {
            return Err(AnalyticsError::Refused("`to` must be after `from`".into()));
        }
        Ok(Period { from, to })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    #[default]
    Day,
}

impl Granularity {
    fn table(self) -> &'static str {
        match self {
            Granularity::Hour => "analytics.rollup_hourly",
            Granularity::Day => "analytics.rollup_daily",
        }
    }
}

/// Optional narrowing of every query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    pub chain: Option<String>,
    pub facility: Option<String>,
    pub mint: Option<String>,
}

/// Figures of one group. Amounts are base units of `mint`, as decimal strings.
#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct Figures {
    pub chain: String,
    /// Empty in per-(chain, mint) totals.
    pub facility: String,
    pub mint: String,
    pub payments: i64,
    pub releases: i64,
    pub refunds: i64,
    pub volume: String,
    pub fees: String,
    pub refunded: String,
    /// Payment intents that reached a terminal state, and those that were finalized.
    pub attempts: i64,
    pub succeeded: i64,
}

impl Figures {
    /// succeeded / attempts (None without attempts): a ratio of counts.
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.succeeded as f64 / self.attempts as f64)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FiguresOut {
    #[serde(flatten)]
    pub figures: Figures,
    pub success_rate: Option<f64>,
}

impl From<Figures> for FiguresOut {
    fn from(f: Figures) -> Self {
        FiguresOut {
            success_rate: f.success_rate(),
            figures: f,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// Per (chain, mint), all facilities.
    pub totals: Vec<FiguresOut>,
    /// Per (chain, facility, mint).
    pub facilities: Vec<FiguresOut>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TrendPoint {
    #[serde(with = "time::serde::rfc3339")]
    pub bucket: OffsetDateTime,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub figures: Figures,
}

/// A saved dashboard: which figures to show for which filter and period length.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DashboardDefinition {
    #[serde(default)]
    pub chain: Option<String>,
    #[serde(default)]
    pub facility: Option<String>,
    #[serde(default)]
    pub mint: Option<String>,
    /// Days back from now that the dashboard covers (1–366; hourly: at most 93).
    #[schema(minimum = 1, maximum = 366)]
    pub days: u16,
    #[serde(default)]
    pub granularity: Granularity,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub id: Uuid,
    pub name: String,
    pub definition: DashboardDefinition,
    pub created_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Which daily series to forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    #[default]
    Fees,
    Volume,
}

#[derive(Debug, Clone, Serialize)]
pub struct Forecast {
    pub chain: String,
    pub mint: String,
    pub facility: Option<String>,
    pub metric: Metric,
    #[serde(with = "time::serde::rfc3339")]
    pub history_from: OffsetDateTime,
    pub history_days: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub forecast_from: OffsetDateTime,
    #[serde(flatten)]
    pub result: ForecastResult,
}

const FIGURE_SUMS: &str = "sum(payments)::bigint AS payments, sum(releases)::bigint AS releases,
    sum(refunds)::bigint AS refunds, sum(volume)::text AS volume, sum(fees)::text AS fees,
    sum(refunded)::text AS refunded, sum(attempts)::bigint AS attempts,
    sum(succeeded)::bigint AS succeeded";

const FILTER: &str = "bucket >= $1 AND bucket < $2 AND ($3::text IS NULL OR chain = $3)
    AND ($4::text IS NULL OR facility = $4) AND ($5::text IS NULL OR mint = $5)";

/// Largest report [`AnalyticsService::report_rows`] produces.
pub const MAX_REPORT_ROWS: usize = 100_000;

#[derive(Clone)]
pub struct AnalyticsService {
    pool: PgPool,
}

impl AnalyticsService {
    pub fn new(pool: PgPool) -> AnalyticsService {
        AnalyticsService { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Totals per (chain, mint) and per (chain, facility, mint) over the buckets starting
    /// in the period: the daily rollup when both ends are midnights UTC, else the hourly.
    pub async fn summary(&self, p: Period, f: &Filter) -> Result<Summary, AnalyticsError> {
        let table = if aligned(p.from, 86_400) && aligned(p.to, 86_400) {
            Granularity::Day.table()
        } else {
            Granularity::Hour.table()
        };
        let facilities: Vec<Figures> = sqlx::query_as(&format!(
            "SELECT chain, facility, mint, {FIGURE_SUMS} FROM {table} WHERE {FILTER}
              GROUP BY chain, facility, mint ORDER BY chain, facility, mint"
        ))
        .bind(p.from)
        .bind(p.to)
        .bind(&f.chain)
        .bind(&f.facility)
        .bind(&f.mint)
        .fetch_all(&self.pool)
        .await?;
        let totals: Vec<Figures> = sqlx::query_as(&format!(
            "SELECT chain, '' AS facility, mint, {FIGURE_SUMS} FROM {table} WHERE {FILTER}
              GROUP BY chain, mint ORDER BY chain, mint"
        ))
        .bind(p.from)
        .bind(p.to)
        .bind(&f.chain)
        .bind(&f.facility)
        .bind(&f.mint)
        .fetch_all(&self.pool)
        .await?;
        Ok(Summary {
            from: p.from,
            to: p.to,
            totals: totals.into_iter().map(Into::into).collect(),
            facilities: facilities.into_iter().map(Into::into).collect(),
        })
    }

    /// Per bucket and (chain, mint), all matching facilities together.
    pub async fn trends(
        &self,
        g: Granularity,
        p: Period,
        f: &Filter,
    ) -> Result<Vec<TrendPoint>, AnalyticsError> {
        if g == Granularity::Hour && p.to - p.from > time::Duration::days(93) {
            return Err(AnalyticsError::Refused(
                "hourly trends cover at most 93 days".into(),
            ));
        }
        Ok(sqlx::query_as(&format!(
            "SELECT bucket, chain, '' AS facility, mint, {FIGURE_SUMS} FROM {} WHERE {FILTER}
              GROUP BY bucket, chain, mint ORDER BY bucket, chain, mint",
            g.table()
        ))
        .bind(p.from)
        .bind(p.to)
        .bind(&f.chain)
        .bind(&f.facility)
        .bind(&f.mint)
        .fetch_all(&self.pool)
        .await?)
    }

    /// All fees (platform revenue) of one (chain, mint) ever counted, in base units — the
    /// figure the ledger's fee-revenue account must match once its feed has caught up.
    pub async fn fees_all_time(&self, chain: &str, mint: &str) -> Result<i128, AnalyticsError> {
        let v: String = sqlx::query_scalar(
            "SELECT COALESCE(sum(fees), 0)::text FROM analytics.rollup_daily
              WHERE chain = $1 AND mint = $2",
        )
        .bind(chain)
        .bind(mint)
        .fetch_one(&self.pool)
        .await?;
        crate::units(&v)
    }

    /// Per bucket and (chain, facility, mint) — the rows of a report (at most
    /// [`MAX_REPORT_ROWS`]; a larger period or finer granularity is refused, not cut).
    pub async fn report_rows(
        &self,
        g: Granularity,
        p: Period,
        f: &Filter,
    ) -> Result<Vec<TrendPoint>, AnalyticsError> {
        let rows: Vec<TrendPoint> = sqlx::query_as(&format!(
            "SELECT bucket, chain, facility, mint, {FIGURE_SUMS} FROM {} WHERE {FILTER}
              GROUP BY bucket, chain, facility, mint ORDER BY bucket, chain, facility, mint
              LIMIT {}",
            g.table(),
            MAX_REPORT_ROWS + 1
        ))
        .bind(p.from)
        .bind(p.to)
        .bind(&f.chain)
        .bind(&f.facility)
        .bind(&f.mint)
        .fetch_all(&self.pool)
        .await?;
        if rows.len() > MAX_REPORT_ROWS {
            return Err(AnalyticsError::Refused(format!(
                "the report would exceed {MAX_REPORT_ROWS} rows: narrow the period, use daily \
                 granularity or filter by facility"
            )));
        }
        Ok(rows)
    }

    /// The daily series of `metric` for one (chain, mint) — optionally one facility —
    /// over `days` whole UTC days ending before `today`, missing days as 0.
    pub async fn daily_series(
        &self,
        metric: Metric,
        chain: &str,
        mint: &str,
        facility: Option<&str>,
        today: OffsetDateTime,
        days: u16,
    ) -> Result<(OffsetDateTime, Vec<f64>), AnalyticsError> {
        let end = floor_day(today);
        let start = end - time::Duration::days(i64::from(days));
        let col = match metric {
            Metric::Fees => "fees",
            Metric::Volume => "volume",
        };
        let rows: Vec<(OffsetDateTime, String)> = sqlx::query_as(&format!(
            "SELECT bucket, sum({col})::text FROM analytics.rollup_daily
              WHERE bucket >= $1 AND bucket < $2 AND chain = $3 AND mint = $4
                AND ($5::text IS NULL OR facility = $5)
              GROUP BY bucket ORDER BY bucket"
        ))
        .bind(start)
        .bind(end)
        .bind(chain)
        .bind(mint)
        .bind(facility)
        .fetch_all(&self.pool)
        .await?;
        let mut y = vec![0.0; usize::from(days)];
        for (bucket, v) in rows {
            let i = (bucket - start).whole_days();
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| y.get_mut(i)) {
                // Base units as f64: exact below 2^53, an estimate's input above.
                *slot = crate::units(&v)? as f64;
            }
        }
        Ok((start, y))
    }

    /// Holt-Winters forecast of a daily series (see [`forecast::evaluate`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn forecast(
        &self,
        metric: Metric,
        chain: &str,
        mint: &str,
        facility: Option<&str>,
        history_days: u16,
        holdout: usize,
        horizon: usize,
        today: OffsetDateTime,
    ) -> Result<Forecast, AnalyticsError> {
        if !(21..=730).contains(&history_days) || !(1..=90).contains(&horizon) {
            return Err(AnalyticsError::Invalid(
                "history_days must be 21–730 and horizon 1–90".into(),
            ));
        }
        let (start, y) = self
            .daily_series(metric, chain, mint, facility, today, history_days)
            .await?;
        let result = forecast::evaluate(&y, 7, holdout, horizon)?;
        Ok(Forecast {
            chain: chain.to_owned(),
            mint: mint.to_owned(),
            facility: facility.map(str::to_owned),
            metric,
            history_from: start,
            history_days: y.len(),
            forecast_from: floor_day(today),
            result,
        })
    }

    pub async fn create_dashboard(
        &self,
        name: &str,
        definition: &DashboardDefinition,
        by: Uuid,
    ) -> Result<Dashboard, AnalyticsError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AnalyticsError::Invalid(
                "name must be 1–200 characters".into(),
            ));
        }
        if !(1..=366).contains(&definition.days) {
            return Err(AnalyticsError::Invalid("days must be 1–366".into()));
        }
        if definition.granularity == Granularity::Hour && definition.days > 93 {
            return Err(AnalyticsError::Refused(
                "hourly dashboards cover at most 93 days".into(),
            ));
        }
        let id = Uuid::now_v7();
        let json = serde_json::to_value(definition)
            .map_err(|e| AnalyticsError::Invalid(format!("definition: {e}")))?;
        let created_at: OffsetDateTime = sqlx::query_scalar(
            "INSERT INTO analytics.dashboards (id, name, definition, created_by)
             VALUES ($1, $2, $3, $4) RETURNING created_at",
        )
        .bind(id)
        .bind(name)
        .bind(json)
        .bind(by)
        .fetch_one(&self.pool)
        .await?;
        Ok(Dashboard {
            id,
            name: name.to_owned(),
            definition: definition.clone(),
            created_by: by,
            created_at,
        })
    }

    pub async fn dashboard(&self, id: Uuid) -> Result<Dashboard, AnalyticsError> {
        let row: Option<(String, serde_json::Value, Uuid, OffsetDateTime)> = sqlx::query_as(
            "SELECT name, definition, created_by, created_at FROM analytics.dashboards WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let (name, definition, created_by, created_at) =
            row.ok_or(AnalyticsError::NotFound("dashboard"))?;
        Ok(Dashboard {
            id,
            name,
            definition: serde_json::from_value(definition)
                .map_err(|e| AnalyticsError::Corrupt(format!("dashboard definition: {e}")))?,
            created_by,
            created_at,
        })
    }
}

fn aligned(t: OffsetDateTime, secs: i64) -> bool {
    t.unix_timestamp().rem_euclid(secs) == 0 && t.nanosecond() == 0
}

/// Midnight UTC of `t`'s day.
pub fn floor_day(t: OffsetDateTime) -> OffsetDateTime {
    let s = t.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(s - s.rem_euclid(86_400)).unwrap_or(t)
}
