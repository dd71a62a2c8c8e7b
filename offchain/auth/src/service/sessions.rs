//! Sessions (refresh-token families), token minting and verification.

use super::*;

impl AuthService {
    // ---------------------------------------------------------------- sessions and tokens

    pub(super) async fn start_session(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        row: &UserRow,
        amr: &[&str],
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let family = Uuid::now_v7();
        let amr: Vec<String> = amr.iter().map(|s| (*s).to_owned()).collect();
        sqlx::query(
            "INSERT INTO auth.refresh_families (id, user_id, created_at, amr, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(family)
        .bind(row.id)
        .bind(self.now())
        .bind(&amr)
        .bind(client.ip.map(|i| i.to_string()))
        .bind(&client.user_agent)
        .execute(&mut **tx)
        .await?;
        self.mint(tx, family, row.id, roles_from_db(&row.roles), amr)
            .await
    }

    /// A new refresh token in `family` plus an access token.
    pub(super) async fn mint(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        family: Uuid,
        user_id: Uuid,
        roles: Vec<Role>,
        amr: Vec<String>,
    ) -> Result<TokenPair, AuthError> {
        let cfg = &self.inner.config;
        let now = self.now();
        let refresh = random_token();
        sqlx::query(
            "INSERT INTO auth.refresh_tokens (token_hash, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash(&refresh))
        .bind(family)
        .bind(now)
        .bind(now + cfg.refresh_ttl)
        .execute(&mut **tx)
        .await?;
        let claims = Claims {
            iss: cfg.issuer.clone(),
            aud: cfg.audience.clone(),
            sub: user_id,
            iat: now.unix_timestamp(),
            exp: (now + cfg.access_ttl).unix_timestamp(),
            jti: Uuid::new_v4(),
            roles,
            sid: Some(family),
            amr,
            kid: String::new(),
        };
        let access = jwt::sign(&self.keys(), &claims)?;
        Ok(TokenPair {
            access_token: Secret::new(access),
            token_type: "Bearer",
            expires_in: cfg.access_ttl.as_secs(),
            refresh_token: Secret::new(refresh),
            refresh_expires_in: cfg.refresh_ttl.as_secs(),
            session_id: family,
        })
    }

    /// Rotates a refresh token. A token that was already rotated means it
    /// leaked (or the client raced itself): the whole session is revoked.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let hash = token_hash(refresh_token);
        let mut tx = self.inner.pool.begin().await?;
        let found: Option<RefreshRow> = sqlx::query_as(
            "SELECT t.family_id, t.expires_at, t.used_at, f.user_id, f.revoked_at, f.amr \
                 FROM auth.refresh_tokens t JOIN auth.refresh_families f ON f.id = t.family_id \
                 WHERE t.token_hash = $1 FOR UPDATE OF t, f",
        )
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        let (family, expires_at, used_at, user_id, revoked_at, amr) =
            found.ok_or(AuthError::InvalidToken)?;
        if used_at.is_some() {
            if revoked_at.is_none() {
                revoke_family(&mut tx, family, "reuse", now).await?;
                self.event(
                    &mut *tx,
                    Some(user_id),
                    "refresh_reuse_detected",
                    None,
                    serde_json::json!({ "session": family }),
                )
                .await?;
                tx.commit().await?;
                tracing::warn!(user_id = %user_id, session = %family, "refresh token reuse: session revoked");
            }
            return Err(AuthError::TokenReused);
        }
        if revoked_at.is_some() {
            return Err(AuthError::TokenRevoked);
        }
        if expires_at <= now {
            return Err(AuthError::TokenExpired);
        }
        sqlx::query("UPDATE auth.refresh_tokens SET used_at = $2 WHERE token_hash = $1")
            .bind(&hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // Roles are re-read so role changes reach the next access token.
        let row = self.user_row(&mut *tx, user_id).await?;
        row.check_active()?;
        let tokens = self
            .mint(&mut tx, family, user_id, roles_from_db(&row.roles), amr)
            .await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Revokes the session the refresh token belongs to. Idempotent.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let found: Option<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT f.id, f.user_id FROM auth.refresh_tokens t JOIN auth.refresh_families f ON f.id = t.family_id \
             WHERE t.token_hash = $1 FOR UPDATE OF f",
        )
        .bind(token_hash(refresh_token))
        .fetch_optional(&mut *tx)
        .await?;
        let (family, user_id) = found.ok_or(AuthError::InvalidToken)?;
        if revoke_family(&mut tx, family, "logout", now).await? {
            self.event(
                &mut *tx,
                Some(user_id),
                "logout",
                None,
                serde_json::json!({ "session": family }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Revokes every session of the user; returns how many were live.
    pub async fn logout_all(&self, user_id: Uuid) -> Result<u64, AuthError> {
        let res = sqlx::query(
            "UPDATE auth.refresh_families SET revoked_at = $2, revoked_reason = 'logout_all' \
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(self.now())
        .execute(&self.inner.pool)
        .await?;
        self.event(
            &self.inner.pool,
            Some(user_id),
            "logout_all",
            None,
            serde_json::json!({ "sessions": res.rows_affected() }),
        )
        .await?;
        Ok(res.rows_affected())
    }

    /// Live sessions, newest first.
    pub async fn list_sessions(&self, user_id: Uuid) -> Result<Vec<Session>, AuthError> {
        let rows: Vec<SessionRow> = sqlx::query_as(
            "SELECT id, created_at, ip, user_agent, amr FROM auth.refresh_families \
             WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, created_at, ip, user_agent, amr)| Session {
                id,
                created_at,
                ip,
                user_agent,
                amr,
            })
            .collect())
    }

    /// Revokes one of the user's sessions (not-found for other users' sessions).
    pub async fn revoke_session(&self, user_id: Uuid, session_id: Uuid) -> Result<(), AuthError> {
        let res = sqlx::query(
            "UPDATE auth.refresh_families SET revoked_at = COALESCE(revoked_at, $3), \
             revoked_reason = COALESCE(revoked_reason, 'revoked') WHERE id = $1 AND user_id = $2",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(self.now())
        .execute(&self.inner.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(AuthError::NotFound);
        }
        Ok(())
    }

    /// Checks signature (EdDSA only, known `kid`), issuer, audience and expiry.
    /// Access tokens are stateless: a revoked session's access token lives out
    /// its (short) `access_ttl`.
    pub async fn verify_access_token(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_access_token_now(token)
    }

    /// Synchronous form of [`Self::verify_access_token`] (no I/O involved).
    pub fn verify_access_token_now(&self, token: &str) -> Result<Claims, AuthError> {
        let cfg = &self.inner.config;
        let want = Expectations {
            issuer: &cfg.issuer,
            audience: &cfg.audience,
            leeway_secs: i64::try_from(cfg.leeway.as_secs()).unwrap_or(i64::MAX),
            now: self.inner.clock.now(),
        };
        jwt::verify(&self.keys(), token, &want)
    }
}
