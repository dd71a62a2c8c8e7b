//! Delivery figures for the API's `/metrics` (ADR 0023: a crate's SQL touches only its own
//! schema; others call this).

use sqlx::PgPool;

/// Deliveries in one status (`pending`, `delivered`, `dead`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct StatusCount {
    pub status: String,
    pub deliveries: i64,
}

/// Deliveries by status, ordered so; `None` when the notifications schema is not installed
/// in this database (a deployment that does not run notifications here).
pub async fn deliveries_by_status(pool: &PgPool) -> Result<Option<Vec<StatusCount>>, sqlx::Error> {
    let installed: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('notifications.deliveries')::text")
            .fetch_one(pool)
            .await?;
    if installed.is_none() {
        return Ok(None);
    }
    Ok(Some(
        sqlx::query_as(
            "SELECT status, count(*) AS deliveries FROM notifications.deliveries
              GROUP BY status ORDER BY status",
        )
        .fetch_all(pool)
        .await?,
    ))
}
