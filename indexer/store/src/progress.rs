//! How far the indexer has got (the API's `/metrics` reads this).

use sqlx::PgPool;

use crate::StoreError;

/// One source's stored cursor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct CursorProgress {
    /// `<chain>:<program>` (e.g. `solana:advancia-pay`).
    pub source: String,
    /// Slot (or height) reached; none before the first batch.
    pub slot: Option<i64>,
    /// Seconds since the cursor last moved.
    pub age_seconds: f64,
}

/// Every source's cursor, by source; `None` when the indexer's schema is not installed in
/// this database (a deployment that does not run the indexer here).
pub async fn cursors(pool: &PgPool) -> Result<Option<Vec<CursorProgress>>, StoreError> {
    let installed: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('indexer.cursors')::text")
            .fetch_one(pool)
            .await?;
    if installed.is_none() {
        return Ok(None);
    }
    Ok(Some(
        sqlx::query_as(
            "SELECT source, slot,
                    EXTRACT(EPOCH FROM now() - updated_at)::double precision AS age_seconds
               FROM indexer.cursors ORDER BY source",
        )
        .fetch_all(pool)
        .await?,
    ))
}
