//! Typed reads of the payment intents for other components (ADR 0023: a crate's SQL
//! touches only its own schema; others call these). Amounts are base units.

use sqlx::{PgExecutor, PgPool};

use crate::PaymentError;

/// Intents of one asset in one status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct StatusTotal {
    pub mint: String,
    pub status: String,
    pub intents: i64,
    /// Sum of their amounts, in base units, as decimal text (sums of u64 amounts exceed
    /// 64 bits, and money is never a float).
    pub amount: String,
}

/// Intent counts and amounts by (mint, status), ordered so; `None` when the payments schema
/// is not installed in this database (a deployment that does not run payments here).
pub async fn totals_by_mint_and_status(
    pool: &PgPool,
) -> Result<Option<Vec<StatusTotal>>, PaymentError> {
    let installed: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('payments.payments')::text")
            .fetch_one(pool)
            .await?;
    if installed.is_none() {
        return Ok(None);
    }
    Ok(Some(
        sqlx::query_as(
            "SELECT mint, status, count(*) AS intents, sum(amount)::text AS amount
               FROM payments.payments GROUP BY mint, status ORDER BY mint, status",
        )
        .fetch_all(pool)
        .await?,
    ))
}

/// The amount paid to `facility` per UTC day (base units) by its confirmed or finalized intents (by the
/// day each was created), from its first such day to its last, days without any as 0.
pub async fn daily_paid<'c>(
    db: impl PgExecutor<'c>,
    facility: &str,
) -> Result<Vec<u128>, PaymentError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "WITH d AS (
           SELECT date_trunc('day', created_at) AS day, sum(amount) AS total
             FROM payments.payments
            WHERE facility = $1 AND status IN ('confirmed', 'finalized')
            GROUP BY 1)
         SELECT COALESCE(d.total, 0)::text
           FROM generate_series((SELECT min(day) FROM d), (SELECT max(day) FROM d), interval '1 day') g
           LEFT JOIN d ON d.day = g ORDER BY g",
    )
    .bind(facility)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|s| {
            s.parse::<u128>()
                .map_err(|_| PaymentError::Corrupt(format!("daily total `{s}` is not a u128")))
        })
        .collect()
}

/// The amounts of `facility`'s latest `limit` confirmed or finalized intents, newest first.
pub async fn recent_paid_amounts<'c>(
    db: impl PgExecutor<'c>,
    facility: &str,
    limit: u32,
) -> Result<Vec<u64>, PaymentError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT amount::text FROM payments.payments
          WHERE facility = $1 AND status IN ('confirmed', 'finalized')
          ORDER BY created_at DESC LIMIT $2",
    )
    .bind(facility)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.iter().map(|s| base_units(s)).collect()
}

fn base_units(s: &str) -> Result<u64, PaymentError> {
    s.parse::<u64>()
        .map_err(|_| PaymentError::Corrupt(format!("amount `{s}` is not a u64")))
}
