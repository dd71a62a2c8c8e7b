//! Password login and the second step of 2FA logins.

use super::*;

impl AuthService {
    // ---------------------------------------------------------------- login

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: ClientInfo,
    ) -> Result<LoginOutcome, AuthError> {
        let pw = Zeroizing::new(password.to_owned());
        let row = match password::normalize_email(email) {
            Ok(e) => {
                sqlx::query_as::<_, UserRow>(&format!(
                    "SELECT {USER_COLS} FROM auth.users WHERE email = $1"
                ))
                .bind(e)
                .fetch_optional(&self.inner.pool)
                .await?
            }
            Err(_) => None,
        };
        let (row, phc) = match row {
            Some(r) if r.password_hash.is_some() => {
                let phc = r.password_hash.clone().unwrap_or_default();
                (r, phc)
            }
            _ => {
                // Same argon2 work as a real account, so timing does not reveal
                // which emails are registered.
                self.burn_dummy_hash(pw).await;
                return Err(AuthError::InvalidCredentials);
            }
        };
        let now = self.now();
        if let Err(e) = row.check_not_locked(now) {
            self.event(
                &self.inner.pool,
                Some(row.id),
                "login_locked",
                Some(&client),
                serde_json::json!({}),
            )
            .await?;
            return Err(e);
        }
        match self.verify_password(pw.clone(), phc).await {
            Ok(needs_rehash) => {
                if needs_rehash {
                    // Parameters were raised since this hash was made: upgrade it now
                    // that we hold the plaintext. Best effort: login proceeds anyway.
                    if let Ok(h) = self.hash_password(pw).await {
                        let _ =
                            sqlx::query("UPDATE auth.users SET password_hash = $2 WHERE id = $1")
                                .bind(row.id)
                                .bind(h)
                                .execute(&self.inner.pool)
                                .await;
                    }
                }
            }
            Err(AuthError::InvalidCredentials) => {
                let locked = self
                    .count_failure(
                        row.id,
                        "failed_logins",
                        self.inner.config.lockout.max_failures,
                    )
                    .await?;
                self.event(
                    &self.inner.pool,
                    Some(row.id),
                    "login_failed",
                    Some(&client),
                    serde_json::json!({}),
                )
                .await?;
                return Err(match locked {
                    Some(retry_after) => AuthError::LockedOut { retry_after },
                    None => AuthError::InvalidCredentials,
                });
            }
            Err(e) => return Err(e),
        }
        // Only after the password: a disabled account is not revealed to guessers.
        row.check_active()?;
        sqlx::query("UPDATE auth.users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(row.id)
            .execute(&self.inner.pool)
            .await?;

        if row.totp_enabled {
            let challenge = random_token();
            sqlx::query(
                "INSERT INTO auth.two_factor_challenges (token_hash, user_id, expires_at, ip, user_agent) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash(&challenge))
            .bind(row.id)
            .bind(now + self.inner.config.two_factor_challenge_ttl)
            .bind(client.ip.map(|i| i.to_string()))
            .bind(&client.user_agent)
            .execute(&self.inner.pool)
            .await?;
            self.event(
                &self.inner.pool,
                Some(row.id),
                "login_password_ok",
                Some(&client),
                serde_json::json!({}),
            )
            .await?;
            return Ok(LoginOutcome::TwoFactorRequired {
                challenge_token: Secret::new(challenge),
            });
        }

        let mut tx = self.inner.pool.begin().await?;
        let tokens = self.start_session(&mut tx, &row, &["pwd"], &client).await?;
        self.event(
            &mut *tx,
            Some(row.id),
            "login",
            Some(&client),
            serde_json::json!({ "amr": ["pwd"] }),
        )
        .await?;
        tx.commit().await?;
        Ok(LoginOutcome::Tokens(tokens))
    }

    /// Second step of a 2FA login: a TOTP code or a recovery code.
    pub async fn verify_2fa(
        &self,
        challenge_token: &str,
        code: &str,
    ) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let ch: Option<ChallengeRow> = sqlx::query_as(
            "SELECT user_id, expires_at, used_at, ip, user_agent FROM auth.two_factor_challenges \
                 WHERE token_hash = $1 FOR UPDATE",
        )
        .bind(token_hash(challenge_token))
        .fetch_optional(&mut *tx)
        .await?;
        let (user_id, expires_at, used_at, ip, user_agent) = ch.ok_or(AuthError::InvalidToken)?;
        if used_at.is_some() {
            return Err(AuthError::InvalidToken);
        }
        if expires_at <= now {
            return Err(AuthError::TokenExpired);
        }
        let row = self.user_row_for_update(&mut tx, user_id).await?;
        row.check_not_locked(now)?;
        row.check_active()?;
        if !row.totp_enabled {
            return Err(AuthError::TwoFactorNotEnabled);
        }
        let client = ClientInfo {
            ip: ip.and_then(|i| i.parse().ok()),
            user_agent,
        };
        match self
            .check_second_factor(&mut tx, &row, code, true, now)
            .await?
        {
            FactorCheck::Wrong => {
                let locked = self
                    .count_failure_tx(
                        &mut tx,
                        row.id,
                        "failed_2fa",
                        self.inner.config.max_2fa_failures,
                    )
                    .await?;
                self.event(
                    &mut *tx,
                    Some(row.id),
                    "2fa_failed",
                    Some(&client),
                    serde_json::json!({}),
                )
                .await?;
                if locked.is_some() {
                    // The attacker's pending challenges die with the lockout.
                    sqlx::query("UPDATE auth.two_factor_challenges SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
                        .bind(row.id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Err(match locked {
                    Some(retry_after) => AuthError::LockedOut { retry_after },
                    None => AuthError::InvalidTwoFactorCode,
                })
            }
            FactorCheck::Ok => {
                sqlx::query(
                    "UPDATE auth.two_factor_challenges SET used_at = $2 WHERE token_hash = $1",
                )
                .bind(token_hash(challenge_token))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE auth.users SET failed_2fa = 0 WHERE id = $1")
                    .bind(row.id)
                    .execute(&mut *tx)
                    .await?;
                let tokens = self
                    .start_session(&mut tx, &row, &["pwd", "otp"], &client)
                    .await?;
                self.event(
                    &mut *tx,
                    Some(row.id),
                    "login",
                    Some(&client),
                    serde_json::json!({ "amr": ["pwd", "otp"] }),
                )
                .await?;
                tx.commit().await?;
                Ok(tokens)
            }
        }
    }
}
