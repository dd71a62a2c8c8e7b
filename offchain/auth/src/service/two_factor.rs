//! TOTP enrollment, confirmation, disabling and recovery codes.

use super::*;

impl AuthService {
    // ---------------------------------------------------------------- 2FA management

    /// Starts enrollment: a fresh secret (pending until `confirm_2fa`) and a
    /// fresh set of recovery codes.
    pub async fn enroll_2fa(&self, user_id: Uuid) -> Result<TotpEnrollment, AuthError> {
        let mut tx = self.inner.pool.begin().await?;
        let row = self.user_row_for_update(&mut tx, user_id).await?;
        if row.totp_enabled {
            return Err(AuthError::TwoFactorAlreadyEnabled);
        }
        let secret = Zeroizing::new(random_bytes::<20>());
        let sealed = seal_totp_secret(&self.inner.config.totp_key, user_id, secret.as_ref())?;
        sqlx::query("UPDATE auth.users SET totp_secret_enc = $2, totp_last_step = NULL, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(sealed)
            .bind(self.now())
            .execute(&mut *tx)
            .await?;
        let codes = self.replace_recovery_codes(&mut tx, user_id).await?;
        tx.commit().await?;
        let secret_base32 = Secret::new(BASE32_NOPAD.encode(secret.as_ref()));
        let account = row.email.clone().unwrap_or_else(|| row.id.to_string());
        let uri = totp::otpauth_uri(
            &self.inner.config.totp_issuer,
            &account,
            secret_base32.expose(),
        );
        Ok(TotpEnrollment {
            secret_base32,
            otpauth_uri: Secret::new(uri),
            recovery_codes: codes,
        })
    }

    /// Turns 2FA on once the user proves their authenticator has the secret.
    pub async fn confirm_2fa(&self, user_id: Uuid, code: &str) -> Result<(), AuthError> {
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let row = self.user_row_for_update(&mut tx, user_id).await?;
        if row.totp_enabled {
            return Err(AuthError::TwoFactorAlreadyEnabled);
        }
        if row.totp_secret_enc.is_none() {
            return Err(AuthError::TwoFactorNotEnabled);
        }
        row.check_not_locked(now)?;
        match self
            .check_second_factor(&mut tx, &row, code, false, now)
            .await?
        {
            FactorCheck::Ok => {
                sqlx::query("UPDATE auth.users SET totp_enabled = true, failed_2fa = 0, updated_at = $2 WHERE id = $1")
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                self.event(
                    &mut *tx,
                    Some(user_id),
                    "2fa_enabled",
                    None,
                    serde_json::json!({}),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }
            FactorCheck::Wrong => self.fail_2fa(tx, user_id).await,
        }
    }

    /// Turns 2FA off; needs a current TOTP or an unused recovery code.
    pub async fn disable_2fa(&self, user_id: Uuid, code: &str) -> Result<(), AuthError> {
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let row = self.user_row_for_update(&mut tx, user_id).await?;
        if !row.totp_enabled {
            return Err(AuthError::TwoFactorNotEnabled);
        }
        row.check_not_locked(now)?;
        match self
            .check_second_factor(&mut tx, &row, code, true, now)
            .await?
        {
            FactorCheck::Ok => {
                sqlx::query(
                    "UPDATE auth.users SET totp_enabled = false, totp_secret_enc = NULL, totp_last_step = NULL, \
                     failed_2fa = 0, updated_at = $2 WHERE id = $1",
                )
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM auth.recovery_codes WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                self.event(
                    &mut *tx,
                    Some(user_id),
                    "2fa_disabled",
                    None,
                    serde_json::json!({}),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }
            FactorCheck::Wrong => self.fail_2fa(tx, user_id).await,
        }
    }

    /// New recovery codes (old ones stop working); needs a current TOTP code.
    pub async fn regenerate_recovery_codes(
        &self,
        user_id: Uuid,
        code: &str,
    ) -> Result<Vec<Secret>, AuthError> {
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let row = self.user_row_for_update(&mut tx, user_id).await?;
        if !row.totp_enabled {
            return Err(AuthError::TwoFactorNotEnabled);
        }
        row.check_not_locked(now)?;
        match self
            .check_second_factor(&mut tx, &row, code, false, now)
            .await?
        {
            FactorCheck::Ok => {
                let codes = self.replace_recovery_codes(&mut tx, user_id).await?;
                self.event(
                    &mut *tx,
                    Some(user_id),
                    "recovery_codes_regenerated",
                    None,
                    serde_json::json!({}),
                )
                .await?;
                tx.commit().await?;
                Ok(codes)
            }
            FactorCheck::Wrong => self.fail_2fa(tx, user_id).await.map(|()| Vec::new()),
        }
    }

    pub(super) async fn fail_2fa(
        &self,
        mut tx: Transaction<'static, Postgres>,
        user_id: Uuid,
    ) -> Result<(), AuthError> {
        let locked = self
            .count_failure_tx(
                &mut tx,
                user_id,
                "failed_2fa",
                self.inner.config.max_2fa_failures,
            )
            .await?;
        self.event(
            &mut *tx,
            Some(user_id),
            "2fa_failed",
            None,
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Err(match locked {
            Some(retry_after) => AuthError::LockedOut { retry_after },
            None => AuthError::InvalidTwoFactorCode,
        })
    }

    pub(super) async fn replace_recovery_codes(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        user_id: Uuid,
    ) -> Result<Vec<Secret>, AuthError> {
        sqlx::query("DELETE FROM auth.recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            // 80 bits, grouped for reading aloud: xxxx-xxxx-xxxx-xxxx.
            let raw = BASE32_NOPAD.encode(&random_bytes::<10>()).to_lowercase();
            let code = format!(
                "{}-{}-{}-{}",
                &raw[0..4],
                &raw[4..8],
                &raw[8..12],
                &raw[12..16]
            );
            sqlx::query("INSERT INTO auth.recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(token_hash(&normalize_recovery_code(&code)))
                .execute(&mut **tx)
                .await?;
            codes.push(Secret::new(code));
        }
        Ok(codes)
    }

    /// TOTP (each step usable once) or, if allowed, a single-use recovery code.
    pub(super) async fn check_second_factor(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        row: &UserRow,
        code: &str,
        allow_recovery: bool,
        now: OffsetDateTime,
    ) -> Result<FactorCheck, AuthError> {
        let code = code.trim();
        if code.len() == totp::DIGITS as usize && code.bytes().all(|b| b.is_ascii_digit()) {
            let sealed = row
                .totp_secret_enc
                .as_deref()
                .ok_or(AuthError::TwoFactorNotEnabled)?;
            let secret = open_totp_secret(&self.inner.config.totp_key, row.id, sealed)?;
            let Some(step) = totp::matching_step(&secret, code, now.unix_timestamp()) else {
                return Ok(FactorCheck::Wrong);
            };
            // Replay protection: the step must be newer than the last one used.
            let res = sqlx::query(
                "UPDATE auth.users SET totp_last_step = $2 WHERE id = $1 \
                 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            )
            .bind(row.id)
            .bind(step)
            .execute(&mut **tx)
            .await?;
            return Ok(if res.rows_affected() == 1 {
                FactorCheck::Ok
            } else {
                FactorCheck::Wrong
            });
        }
        if !allow_recovery {
            return Ok(FactorCheck::Wrong);
        }
        let res = sqlx::query(
            "UPDATE auth.recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(row.id)
        .bind(token_hash(&normalize_recovery_code(code)))
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if res.rows_affected() == 1 {
            self.event(
                &mut **tx,
                Some(row.id),
                "recovery_code_used",
                None,
                serde_json::json!({}),
            )
            .await?;
            return Ok(FactorCheck::Ok);
        }
        Ok(FactorCheck::Wrong)
    }

    /// Unused recovery codes left (for "you have N codes left" prompts).
    pub async fn recovery_codes_remaining(&self, user_id: Uuid) -> Result<i64, AuthError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM auth.recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.inner.pool)
        .await?)
    }
}
