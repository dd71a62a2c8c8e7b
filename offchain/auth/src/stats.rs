//! Account figures for other components (analytics' user metrics): one aggregate over
//! `auth.users`, which holds one row per account (ADR 0023: a crate's SQL touches only its
//! own schema; others call this).

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::AuthError;

/// Accounts now, by role, and sign-ups per UTC day in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserCounts {
    pub total: i64,
    pub active: i64,
    pub disabled: i64,
    pub two_factor_enabled: i64,
    pub email_verified: i64,
    pub by_role: Vec<RoleCount>,
    /// Sign-ups per UTC day in the period (days without any are left out).
    pub signups: Vec<DayCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RoleCount {
    pub role: String,
    pub users: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DayCount {
    /// Midnight UTC of the day.
    #[serde(with = "time::serde::rfc3339")]
    pub day: OffsetDateTime,
    pub users: i64,
}

/// Account figures, with sign-ups counted from `from` (inclusive) to `to` (exclusive).
pub async fn user_counts(
    pool: &PgPool,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<UserCounts, AuthError> {
    let (total, active, disabled, two_factor_enabled, email_verified): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE disabled_at IS NULL),
                    count(*) FILTER (WHERE disabled_at IS NOT NULL),
                    count(*) FILTER (WHERE totp_enabled),
                    count(*) FILTER (WHERE email_verified_at IS NOT NULL)
               FROM auth.users",
        )
        .fetch_one(pool)
        .await?;
    let by_role = sqlx::query_as(
        "SELECT r AS role, count(*) AS users FROM auth.users, unnest(roles) AS r
          GROUP BY r ORDER BY r",
    )
    .fetch_all(pool)
    .await?;
    let signups = sqlx::query_as(
        "SELECT date_trunc('day', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day,
                count(*) AS users
           FROM auth.users WHERE created_at >= $1 AND created_at < $2
          GROUP BY 1 ORDER BY 1",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(UserCounts {
        total,
        active,
        disabled,
        two_factor_enabled,
        email_verified,
        by_role,
        signups,
    })
}
