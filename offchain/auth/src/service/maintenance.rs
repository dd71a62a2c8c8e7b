//! Audit trail reads and housekeeping.

use super::*;

impl AuthService {
    // ---------------------------------------------------------------- audit

    /// The user's security events, newest first (for account activity pages
    /// and compliance review).
    pub async fn recent_events(
        &self,
        user_id: Uuid,
        limit: i64,
    ) -> Result<Vec<AuthEvent>, AuthError> {
        type Row = (
            i64,
            OffsetDateTime,
            Option<Uuid>,
            String,
            Option<String>,
            Option<String>,
            serde_json::Value,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at, user_id, kind, ip, user_agent, detail FROM auth.events \
             WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, at, user_id, kind, ip, user_agent, detail)| AuthEvent {
                    id,
                    at,
                    user_id,
                    kind,
                    ip,
                    user_agent,
                    detail,
                },
            )
            .collect())
    }

    // ---------------------------------------------------------------- maintenance

    /// Deletes expired challenges, nonces and refresh tokens, and sessions
    /// revoked or idle past the refresh TTL. Run periodically.
    pub async fn purge_expired(&self) -> Result<u64, AuthError> {
        let now = self.now();
        let mut n = 0;
        // Used tokens stay while their session lives: they are the reuse tripwire.
        for sql in [
            "DELETE FROM auth.two_factor_challenges WHERE expires_at < $1",
            "DELETE FROM auth.wallet_nonces WHERE expires_at < $1",
            "DELETE FROM auth.user_tokens WHERE expires_at < $1",
            "DELETE FROM auth.refresh_families f WHERE revoked_at < $1 OR NOT EXISTS \
             (SELECT 1 FROM auth.refresh_tokens t WHERE t.family_id = f.id AND t.expires_at >= $1)",
        ] {
            n += sqlx::query(sql)
                .bind(now)
                .execute(&self.inner.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }
}
