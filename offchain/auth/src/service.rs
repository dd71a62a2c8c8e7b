//! `AuthService`: every operation, on Postgres schema `auth`.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use advancia_db::sqlx::{self, PgExecutor, PgPool, Postgres, Transaction};
use data_encoding::BASE32_NOPAD;
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::config::AuthConfig;
use crate::crypto::{open_totp_secret, random_bytes, random_token, seal_totp_secret, token_hash};
use crate::jwt::{self, Expectations};
use crate::roles::{roles_from_db, roles_to_db};
use crate::siws::{self, SiwsMessage, WalletChain};
use crate::types::*;
use crate::{AuthError, Claims, Clock, Role, Secret, SigningKeys, SystemClock, password, totp};

// Counters and the last TOTP step are only touched by SQL arithmetic.
const USER_COLS: &str = "id, email, display_name, password_hash, roles, totp_secret_enc, totp_enabled, \
     locked_until, email_verified_at, created_at, updated_at";
const RECOVERY_CODES: usize = 10;
const API_KEY_PREFIX: &str = "adv_";
/// Known-shape password for the unknown-email path: equalises timing.
const DUMMY_PASSWORD: &str = "timing-equaliser-not-a-real-password";

// Row shapes of ad-hoc queries.
type ChallengeRow = (
    Uuid,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<String>,
    Option<String>,
);
type RefreshRow = (
    Uuid,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Uuid,
    Option<OffsetDateTime>,
    Vec<String>,
);
type SessionRow = (
    Uuid,
    OffsetDateTime,
    Option<String>,
    Option<String>,
    Vec<String>,
);
type ApiKeyRow = (
    Uuid,
    Vec<String>,
    Vec<u8>,
    Option<OffsetDateTime>,
    Vec<String>,
);

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: Option<String>,
    display_name: String,
    password_hash: Option<String>,
    roles: Vec<String>,
    totp_secret_enc: Option<Vec<u8>>,
    totp_enabled: bool,
    locked_until: Option<OffsetDateTime>,
    email_verified_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl UserRow {
    fn to_user(&self) -> User {
        User {
            id: self.id,
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            roles: roles_from_db(&self.roles),
            two_factor_enabled: self.totp_enabled,
            email_verified: self.email.is_some() && self.email_verified_at.is_some(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    fn lock_remaining(&self, now: OffsetDateTime) -> Option<Duration> {
        let until = self.locked_until?;
        (until > now).then(|| Duration::try_from(until - now).unwrap_or(Duration::ZERO))
    }

    fn check_not_locked(&self, now: OffsetDateTime) -> Result<(), AuthError> {
        match self.lock_remaining(now) {
            Some(retry_after) => Err(AuthError::LockedOut { retry_after }),
            None => Ok(()),
        }
    }
}

struct Inner {
    pool: PgPool,
    config: AuthConfig,
    keys: RwLock<Arc<SigningKeys>>,
    clock: Arc<dyn Clock>,
    dummy_hash: OnceLock<Option<String>>,
}

/// The auth service. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct AuthService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("issuer", &self.inner.config.issuer)
            .finish_non_exhaustive()
    }
}

/// What a second-factor check found.
enum FactorCheck {
    Ok,
    Wrong,
}

impl AuthService {
    /// Validates the configuration (argon2 parameters) up front.
    pub fn new(pool: PgPool, config: AuthConfig, keys: SigningKeys) -> Result<Self, AuthError> {
        Self::with_clock(pool, config, keys, Arc::new(SystemClock))
    }

    pub fn with_clock(
        pool: PgPool,
        config: AuthConfig,
        keys: SigningKeys,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthError> {
        password::hasher(config.password_hashing)?;
        if config.max_2fa_failures == 0 || config.lockout.max_failures == 0 {
            return Err(AuthError::Misconfigured(
                "failure limits must be at least 1".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                config,
                keys: RwLock::new(Arc::new(keys)),
                clock,
                dummy_hash: OnceLock::new(),
            }),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    fn keys(&self) -> Arc<SigningKeys> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps the key set at runtime (rotation without restart).
    pub fn set_signing_keys(&self, keys: SigningKeys) {
        *self.inner.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }

    /// Public keys for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys().jwks()
    }

    /// Postgres stores microseconds: truncate so values round-trip exactly.
    fn now(&self) -> OffsetDateTime {
        let t = self.inner.clock.now();
        t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
            .unwrap_or(t)
    }

    // ---------------------------------------------------------------- users

    pub async fn register(&self, req: RegisterRequest) -> Result<User, AuthError> {
        let email = password::normalize_email(&req.email)?;
        let display_name = clean_display_name(&req.display_name)?;
        let pw = Zeroizing::new(req.password);
        password::check_policy(&pw, Some(&email), self.inner.config.min_password_length)?;
        let hash = self.hash_password(pw).await?;
        let now = self.now();
        let id = Uuid::now_v7();
        let row: UserRow = sqlx::query_as(&format!(
            "INSERT INTO auth.users (id, email, display_name, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {USER_COLS}"
        ))
        .bind(id)
        .bind(&email)
        .bind(&display_name)
        .bind(&hash)
        .bind(now)
        .fetch_one(&self.inner.pool)
        .await
        .map_err(map_unique(AuthError::EmailTaken))?;
        self.event(
            &self.inner.pool,
            Some(id),
            "register",
            None,
            serde_json::json!({}),
        )
        .await?;
        tracing::info!(user_id = %id, "user registered");
        Ok(row.to_user())
    }

    pub async fn get_user(&self, id: Uuid) -> Result<User, AuthError> {
        Ok(self.user_row(&self.inner.pool, id).await?.to_user())
    }

    pub async fn update_user(&self, id: Uuid, update: UpdateUser) -> Result<User, AuthError> {
        let display_name = update
            .display_name
            .as_deref()
            .map(clean_display_name)
            .transpose()?;
        let email = update
            .email
            .as_deref()
            .map(password::normalize_email)
            .transpose()?;
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "UPDATE auth.users SET display_name = COALESCE($2, display_name), email = COALESCE($3, email), \
             email_verified_at = CASE WHEN $3 IS NULL OR $3 = email THEN email_verified_at END, \
             updated_at = $4 WHERE id = $1 RETURNING {USER_COLS}"
        ))
        .bind(id)
        .bind(&display_name)
        .bind(&email)
        .bind(self.now())
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(map_unique(AuthError::EmailTaken))?;
        let row = row.ok_or(AuthError::NotFound)?;
        if email.is_some() {
            self.event(
                &self.inner.pool,
                Some(id),
                "email_changed",
                None,
                serde_json::json!({}),
            )
            .await?;
        }
        Ok(row.to_user())
    }

    /// Replaces a user's roles. Only an `admin` (per token *and* per database,
    /// so a demoted admin's live token cannot) may do this.
    pub async fn assign_roles(
        &self,
        actor: &Claims,
        user_id: Uuid,
        roles: Vec<Role>,
    ) -> Result<User, AuthError> {
        if !actor.has_role(Role::Admin) {
            return Err(AuthError::Forbidden);
        }
        let actor_row = self
            .user_row(&self.inner.pool, actor.sub)
            .await
            .map_err(|_| AuthError::Forbidden)?;
        if !roles_from_db(&actor_row.roles).contains(&Role::Admin) {
            return Err(AuthError::Forbidden);
        }
        if actor.sub == user_id && !roles.contains(&Role::Admin) {
            // Guards against an admin locking everyone out by accident.
            return Err(AuthError::InvalidInput(
                "admins cannot remove their own admin role".into(),
            ));
        }
        let user = self.set_roles_as_operator(user_id, roles).await?;
        self.event(
            &self.inner.pool,
            Some(user_id),
            "roles_assigned",
            None,
            serde_json::json!({ "by": actor.sub, "roles": user.roles }),
        )
        .await?;
        Ok(user)
    }

    /// Sets roles without an acting user: for operator tooling (bootstrapping
    /// the first admin from a CLI), never reachable from a request.
    pub async fn set_roles_as_operator(
        &self,
        user_id: Uuid,
        roles: Vec<Role>,
    ) -> Result<User, AuthError> {
        if roles.is_empty() {
            return Err(AuthError::InvalidInput(
                "a user needs at least one role".into(),
            ));
        }
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "UPDATE auth.users SET roles = $2, updated_at = $3 WHERE id = $1 RETURNING {USER_COLS}"
        ))
        .bind(user_id)
        .bind(roles_to_db(&roles))
        .bind(self.now())
        .fetch_optional(&self.inner.pool)
        .await?;
        Ok(row.ok_or(AuthError::NotFound)?.to_user())
    }

    // ---------------------------------------------------------------- passwords and email

    /// Changes the password of a signed-in user (current password required)
    /// and signs out every session: whoever knew the old one is out.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        current: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let row = self.user_row(&self.inner.pool, user_id).await?;
        row.check_not_locked(self.now())?;
        let phc = row
            .password_hash
            .clone()
            .ok_or(AuthError::InvalidCredentials)?;
        match self
            .verify_password(Zeroizing::new(current.to_owned()), phc)
            .await
        {
            Ok(_) => {}
            Err(AuthError::InvalidCredentials) => {
                let locked = self
                    .count_failure(
                        user_id,
                        "failed_logins",
                        self.inner.config.lockout.max_failures,
                    )
                    .await?;
                return Err(match locked {
                    Some(retry_after) => AuthError::LockedOut { retry_after },
                    None => AuthError::InvalidCredentials,
                });
            }
            Err(e) => return Err(e),
        }
        self.set_password(user_id, row.email.as_deref(), new, "password_changed")
            .await
    }

    /// Starts a password reset. Returns the token for the mailer, or `None` for
    /// an unknown or password-less account: the route must answer identically
    /// in both cases so it does not reveal which emails exist.
    pub async fn request_password_reset(&self, email: &str) -> Result<Option<Secret>, AuthError> {
        let Ok(email) = password::normalize_email(email) else {
            return Ok(None);
        };
        let user: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM auth.users WHERE email = $1 AND password_hash IS NOT NULL",
        )
        .bind(&email)
        .fetch_optional(&self.inner.pool)
        .await?;
        let Some(user_id) = user else { return Ok(None) };
        let token = self
            .issue_user_token(
                user_id,
                "password_reset",
                None,
                self.inner.config.password_reset_ttl,
            )
            .await?;
        self.event(
            &self.inner.pool,
            Some(user_id),
            "password_reset_requested",
            None,
            serde_json::json!({}),
        )
        .await?;
        Ok(Some(token))
    }

    /// Completes a reset: new password, lockout cleared, every session revoked.
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<(), AuthError> {
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let (user_id, _) = consume_user_token(&mut tx, token, "password_reset", now).await?;
        let row = self.user_row(&mut *tx, user_id).await?;
        password::check_policy(
            new_password,
            row.email.as_deref(),
            self.inner.config.min_password_length,
        )?;
        // Other outstanding reset links die with this one.
        sqlx::query(
            "UPDATE auth.user_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.set_password(
            user_id,
            row.email.as_deref(),
            new_password,
            "password_reset",
        )
        .await?;
        sqlx::query("UPDATE auth.users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user_id)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }

    async fn set_password(
        &self,
        user_id: Uuid,
        email: Option<&str>,
        new: &str,
        event: &str,
    ) -> Result<(), AuthError> {
        password::check_policy(new, email, self.inner.config.min_password_length)?;
        let hash = self.hash_password(Zeroizing::new(new.to_owned())).await?;
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        sqlx::query("UPDATE auth.users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE auth.refresh_families SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .bind(event)
        .execute(&mut *tx)
        .await?;
        self.event(&mut *tx, Some(user_id), event, None, serde_json::json!({}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A token proving ownership of the user's current email, for the mailer.
    pub async fn request_email_verification(&self, user_id: Uuid) -> Result<Secret, AuthError> {
        let row = self.user_row(&self.inner.pool, user_id).await?;
        let email = row
            .email
            .ok_or_else(|| AuthError::InvalidInput("account has no email address".into()))?;
        self.issue_user_token(
            user_id,
            "email_verification",
            Some(&email),
            self.inner.config.email_verification_ttl,
        )
        .await
    }

    /// Marks the email verified, if it is still the address the token was sent to.
    pub async fn verify_email(&self, token: &str) -> Result<User, AuthError> {
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let (user_id, email) =
            consume_user_token(&mut tx, token, "email_verification", now).await?;
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "UPDATE auth.users SET email_verified_at = $3, updated_at = $3 WHERE id = $1 AND email = $2 \
             RETURNING {USER_COLS}"
        ))
        .bind(user_id)
        .bind(&email)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        // The address changed since the mail went out: the token proves nothing now.
        let row = row.ok_or(AuthError::InvalidToken)?;
        self.event(
            &mut *tx,
            Some(user_id),
            "email_verified",
            None,
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(row.to_user())
    }

    async fn issue_user_token(
        &self,
        user_id: Uuid,
        purpose: &str,
        email: Option<&str>,
        ttl: Duration,
    ) -> Result<Secret, AuthError> {
        let token = random_token();
        sqlx::query(
            "INSERT INTO auth.user_tokens (token_hash, user_id, purpose, email, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash(&token))
        .bind(user_id)
        .bind(purpose)
        .bind(email)
        .bind(self.now() + ttl)
        .execute(&self.inner.pool)
        .await?;
        Ok(Secret::new(token))
    }

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

    async fn fail_2fa(
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

    async fn replace_recovery_codes(
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
    async fn check_second_factor(
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

    // ---------------------------------------------------------------- sessions and tokens

    async fn start_session(
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
    async fn mint(
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

    // ---------------------------------------------------------------- API keys

    /// A scoped key for a partner. The plaintext is returned once; only its
    /// hash is stored.
    pub async fn create_api_key(
        &self,
        owner_user_id: Uuid,
        name: &str,
        scopes: Vec<String>,
    ) -> Result<(ApiKeyId, Secret), AuthError> {
        let owner = self.user_row(&self.inner.pool, owner_user_id).await?;
        if !roles_from_db(&owner.roles)
            .iter()
            .any(|r| matches!(r, Role::Partner | Role::Admin))
        {
            return Err(AuthError::Forbidden);
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AuthError::InvalidInput(
                "key name must be 1-100 printable characters".into(),
            ));
        }
        let scopes = clean_scopes(scopes)?;
        let id = Uuid::new_v4();
        let secret = random_token();
        sqlx::query(
            "INSERT INTO auth.api_keys (id, owner_id, name, scopes, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(owner_user_id)
        .bind(name)
        .bind(&scopes)
        .bind(token_hash(&secret))
        .bind(self.now())
        .execute(&self.inner.pool)
        .await?;
        self.event(
            &self.inner.pool,
            Some(owner_user_id),
            "api_key_created",
            None,
            serde_json::json!({ "key": id }),
        )
        .await?;
        Ok((
            ApiKeyId(id),
            Secret::new(format!("{API_KEY_PREFIX}{}_{secret}", id.simple())),
        ))
    }

    pub async fn verify_api_key(&self, presented: &str) -> Result<ApiKeyPrincipal, AuthError> {
        let (id, secret) = parse_api_key(presented).ok_or(AuthError::InvalidApiKey)?;
        let row: Option<ApiKeyRow> = sqlx::query_as(
            "SELECT k.owner_id, k.scopes, k.secret_hash, k.revoked_at, u.roles \
             FROM auth.api_keys k JOIN auth.users u ON u.id = k.owner_id WHERE k.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await?;
        let (owner, scopes, stored, revoked_at, owner_roles) =
            row.ok_or(AuthError::InvalidApiKey)?;
        if !bool::from(token_hash(secret).ct_eq(&stored)) || revoked_at.is_some() {
            return Err(AuthError::InvalidApiKey);
        }
        // A key is only as good as its owner's standing.
        if !roles_from_db(&owner_roles)
            .iter()
            .any(|r| matches!(r, Role::Partner | Role::Admin))
        {
            return Err(AuthError::InvalidApiKey);
        }
        let now = self.now();
        // Coarse last-used tracking: at most one write per key per minute.
        sqlx::query(
            "UPDATE auth.api_keys SET last_used_at = $2 WHERE id = $1 \
             AND (last_used_at IS NULL OR last_used_at < $2 - interval '1 minute')",
        )
        .bind(id)
        .bind(now)
        .execute(&self.inner.pool)
        .await?;
        Ok(ApiKeyPrincipal {
            key_id: ApiKeyId(id),
            owner,
            scopes,
        })
    }

    /// The owner or an admin may revoke; others get not-found. Idempotent.
    pub async fn revoke_api_key(&self, actor: &Claims, key_id: ApiKeyId) -> Result<(), AuthError> {
        let owner: Option<Uuid> =
            sqlx::query_scalar("SELECT owner_id FROM auth.api_keys WHERE id = $1")
                .bind(key_id.0)
                .fetch_optional(&self.inner.pool)
                .await?;
        let owner = owner.ok_or(AuthError::NotFound)?;
        if owner != actor.sub && !actor.has_role(Role::Admin) {
            return Err(AuthError::NotFound);
        }
        sqlx::query("UPDATE auth.api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(key_id.0)
            .bind(self.now())
            .execute(&self.inner.pool)
            .await?;
        self.event(
            &self.inner.pool,
            Some(owner),
            "api_key_revoked",
            None,
            serde_json::json!({ "key": key_id.0, "by": actor.sub }),
        )
        .await?;
        Ok(())
    }

    pub async fn list_api_keys(&self, owner_user_id: Uuid) -> Result<Vec<ApiKeyInfo>, AuthError> {
        type Row = (
            Uuid,
            Uuid,
            String,
            Vec<String>,
            OffsetDateTime,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, owner_id, name, scopes, created_at, last_used_at, revoked_at FROM auth.api_keys \
             WHERE owner_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(owner_user_id)
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, owner, name, scopes, created_at, last_used_at, revoked_at)| ApiKeyInfo {
                    id: ApiKeyId(id),
                    owner,
                    name,
                    scopes,
                    created_at,
                    last_used_at,
                    revoked_at,
                },
            )
            .collect())
    }

    // ---------------------------------------------------------------- Sign-In With Solana

    /// A one-time message for `address` to sign.
    pub async fn siws_challenge(&self, address: &str) -> Result<SiwsChallenge, AuthError> {
        siws::solana_pubkey(address)?;
        let cfg = &self.inner.config.siws;
        let now = self.now();
        let expires_at = now + cfg.challenge_ttl;
        // base58 of 128 random bits: alphanumeric, as the ABNF requires.
        let nonce = bs58::encode(random_bytes::<16>()).into_string();
        let message = SiwsMessage {
            domain: cfg.domain.clone(),
            address: address.to_owned(),
            statement: Some(cfg.statement.clone()).filter(|s| !s.is_empty()),
            uri: cfg.uri.clone(),
            version: "1".into(),
            chain_id: Some(cfg.chain_id.clone()),
            nonce: nonce.clone(),
            issued_at: now.replace_nanosecond(0).unwrap_or(now),
            expiration_time: Some(expires_at.replace_nanosecond(0).unwrap_or(expires_at)),
            not_before: None,
            request_id: None,
            resources: Vec::new(),
        }
        .to_text()?;
        sqlx::query(
            "INSERT INTO auth.wallet_nonces (nonce, chain, address, message, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&nonce)
        .bind(WalletChain::Solana.as_str())
        .bind(address)
        .bind(&message)
        .bind(expires_at)
        .execute(&self.inner.pool)
        .await?;
        Ok(SiwsChallenge {
            message,
            nonce,
            expires_at,
        })
    }

    pub async fn siws_verify(
        &self,
        message: &str,
        signature_base58: &str,
    ) -> Result<TokenPair, AuthError> {
        self.siws_verify_with_client(message, signature_base58, ClientInfo::default())
            .await
    }

    /// Signs in the account bound to the wallet, creating one (role `patient`)
    /// on first sign-in.
    pub async fn siws_verify_with_client(
        &self,
        message: &str,
        signature_base58: &str,
        client: ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let mut tx = self.inner.pool.begin().await?;
        let address = self
            .consume_siws(&mut tx, message, signature_base58)
            .await?;
        let chain = WalletChain::Solana.as_str();
        let existing: Option<Uuid> = sqlx::query_scalar(
            "SELECT user_id FROM auth.wallets WHERE chain = $1 AND address = $2",
        )
        .bind(chain)
        .bind(&address)
        .fetch_optional(&mut *tx)
        .await?;
        let now = self.now();
        let user_id = match existing {
            Some(id) => id,
            None => {
                let id = Uuid::now_v7();
                let short = format!(
                    "{}…{}",
                    &address[..4.min(address.len())],
                    &address[address.len().saturating_sub(4)..]
                );
                sqlx::query(
                    "INSERT INTO auth.users (id, display_name, created_at, updated_at) VALUES ($1, $2, $3, $3)",
                )
                .bind(id)
                .bind(format!("Wallet {short}"))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO auth.wallets (chain, address, user_id, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(chain)
                    .bind(&address)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                self.event(
                    &mut *tx,
                    Some(id),
                    "register_wallet",
                    Some(&client),
                    serde_json::json!({ "address": address }),
                )
                .await?;
                id
            }
        };
        let row = self.user_row_for_update(&mut tx, user_id).await?;
        let tokens = self
            .start_session(&mut tx, &row, &["wallet"], &client)
            .await?;
        self.event(
            &mut *tx,
            Some(user_id),
            "login",
            Some(&client),
            serde_json::json!({ "amr": ["wallet"], "address": address }),
        )
        .await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Binds a wallet to an already signed-in account (proof: a signed challenge).
    pub async fn siws_link(
        &self,
        user_id: Uuid,
        message: &str,
        signature_base58: &str,
    ) -> Result<(), AuthError> {
        let mut tx = self.inner.pool.begin().await?;
        self.user_row(&mut *tx, user_id).await?;
        let address = self
            .consume_siws(&mut tx, message, signature_base58)
            .await?;
        let res = sqlx::query(
            "INSERT INTO auth.wallets (chain, address, user_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (chain, address) DO NOTHING",
        )
        .bind(WalletChain::Solana.as_str())
        .bind(&address)
        .bind(user_id)
        .bind(self.now())
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            let owner: Uuid = sqlx::query_scalar(
                "SELECT user_id FROM auth.wallets WHERE chain = $1 AND address = $2",
            )
            .bind(WalletChain::Solana.as_str())
            .bind(&address)
            .fetch_one(&mut *tx)
            .await?;
            if owner != user_id {
                return Err(AuthError::InvalidInput(
                    "wallet is bound to another account".into(),
                ));
            }
        }
        self.event(
            &mut *tx,
            Some(user_id),
            "wallet_linked",
            None,
            serde_json::json!({ "address": address }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Wallet addresses bound to the user.
    pub async fn wallets(&self, user_id: Uuid) -> Result<Vec<(WalletChain, String)>, AuthError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT address FROM auth.wallets WHERE user_id = $1 AND chain = $2 ORDER BY created_at, address",
        )
        .bind(user_id)
        .bind(WalletChain::Solana.as_str())
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows.into_iter().map(|a| (WalletChain::Solana, a)).collect())
    }

    /// Verifies domain, signature, time window and the single-use nonce;
    /// returns the signing address.
    async fn consume_siws(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        message: &str,
        signature_base58: &str,
    ) -> Result<String, AuthError> {
        let msg = SiwsMessage::parse(message)?;
        let cfg = &self.inner.config.siws;
        if msg.domain != cfg.domain {
            return Err(AuthError::DomainMismatch {
                expected: cfg.domain.clone(),
                got: msg.domain,
            });
        }
        siws::verify_signature(&msg.address, message, signature_base58)?;
        let now = self.now();
        if msg.expiration_time.is_some_and(|t| t <= now) {
            return Err(AuthError::ChallengeExpired);
        }
        if msg.not_before.is_some_and(|t| t > now) {
            return Err(AuthError::InvalidInput(
                "sign-in message is not valid yet".into(),
            ));
        }
        let stored: Option<(String, String, String, OffsetDateTime, Option<OffsetDateTime>)> = sqlx::query_as(
            "SELECT chain, address, message, expires_at, used_at FROM auth.wallet_nonces WHERE nonce = $1 FOR UPDATE",
        )
        .bind(&msg.nonce)
        .fetch_optional(&mut **tx)
        .await?;
        let (chain, address, issued, expires_at, used_at) =
            stored.ok_or(AuthError::InvalidNonce)?;
        // Only the exact message we issued, for the address and chain we issued it to.
        if used_at.is_some()
            || chain != WalletChain::Solana.as_str()
            || address != msg.address
            || issued != message
        {
            return Err(AuthError::InvalidNonce);
        }
        if expires_at <= now {
            return Err(AuthError::ChallengeExpired);
        }
        sqlx::query("UPDATE auth.wallet_nonces SET used_at = $2 WHERE nonce = $1")
            .bind(&msg.nonce)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        // Serialises first sign-ins of one wallet: exactly one account gets created.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("{}:{}", WalletChain::Solana.as_str(), msg.address))
            .execute(&mut **tx)
            .await?;
        Ok(msg.address)
    }

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

    // ---------------------------------------------------------------- helpers

    async fn user_row<'e>(&self, ex: impl PgExecutor<'e>, id: Uuid) -> Result<UserRow, AuthError> {
        sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLS} FROM auth.users WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?
            .ok_or(AuthError::NotFound)
    }

    async fn user_row_for_update(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        id: Uuid,
    ) -> Result<UserRow, AuthError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLS} FROM auth.users WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(AuthError::NotFound)
    }

    /// Counts a failure in `column`; at `max` the account locks and the
    /// counter resets. Returns the lock duration if this failure locked it.
    async fn count_failure(
        &self,
        id: Uuid,
        column: &'static str,
        max: u32,
    ) -> Result<Option<Duration>, AuthError> {
        let mut tx = self.inner.pool.begin().await?;
        let r = self.count_failure_tx(&mut tx, id, column, max).await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn count_failure_tx(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        id: Uuid,
        column: &'static str,
        max: u32,
    ) -> Result<Option<Duration>, AuthError> {
        let dur = self.inner.config.lockout.duration;
        let until = self.now() + dur;
        let locked: bool = sqlx::query_scalar(&format!(
            "UPDATE auth.users SET \
               locked_until = CASE WHEN {column} + 1 >= $2 THEN $3 ELSE locked_until END, \
               {column} = CASE WHEN {column} + 1 >= $2 THEN 0 ELSE {column} + 1 END \
             WHERE id = $1 RETURNING locked_until IS NOT DISTINCT FROM $3"
        ))
        .bind(id)
        .bind(i32::try_from(max).unwrap_or(i32::MAX))
        .bind(until)
        .fetch_one(&mut **tx)
        .await?;
        if locked {
            tracing::warn!(user_id = %id, reason = column, "account locked");
            self.event(
                &mut **tx,
                Some(id),
                "locked",
                None,
                serde_json::json!({ "reason": column }),
            )
            .await?;
        }
        Ok(locked.then_some(dur))
    }

    async fn event<'e>(
        &self,
        ex: impl PgExecutor<'e>,
        user: Option<Uuid>,
        kind: &str,
        client: Option<&ClientInfo>,
        detail: serde_json::Value,
    ) -> Result<(), AuthError> {
        sqlx::query("INSERT INTO auth.events (at, user_id, kind, ip, user_agent, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(self.now())
            .bind(user)
            .bind(kind)
            .bind(client.and_then(|c| c.ip).map(|i| i.to_string()))
            .bind(client.and_then(|c| c.user_agent.as_deref()))
            .bind(detail)
            .execute(ex)
            .await?;
        Ok(())
    }

    async fn hash_password(&self, pw: Zeroizing<String>) -> Result<String, AuthError> {
        let params = self.inner.config.password_hashing;
        // argon2 is deliberately slow: keep it off the async workers.
        tokio::task::spawn_blocking(move || password::hash(params, &pw))
            .await
            .map_err(|e| AuthError::Internal(format!("hashing task: {e}")))?
    }

    async fn verify_password(&self, pw: Zeroizing<String>, phc: String) -> Result<bool, AuthError> {
        let params = self.inner.config.password_hashing;
        tokio::task::spawn_blocking(move || password::verify(params, &pw, &phc))
            .await
            .map_err(|e| AuthError::Internal(format!("hashing task: {e}")))?
    }

    async fn burn_dummy_hash(&self, pw: Zeroizing<String>) {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let params = inner.config.password_hashing;
            let dummy = inner
                .dummy_hash
                .get_or_init(|| password::hash(params, DUMMY_PASSWORD).ok());
            if let Some(phc) = dummy {
                let _ = password::verify(params, &pw, phc);
            }
        })
        .await;
    }
}

/// Marks a single-use mailed token used; returns its user and email.
async fn consume_user_token(
    tx: &mut Transaction<'static, Postgres>,
    token: &str,
    purpose: &str,
    now: OffsetDateTime,
) -> Result<(Uuid, Option<String>), AuthError> {
    let row: Option<(Uuid, Option<String>, OffsetDateTime, Option<OffsetDateTime>)> =
        sqlx::query_as(
            "SELECT user_id, email, expires_at, used_at FROM auth.user_tokens \
         WHERE token_hash = $1 AND purpose = $2 FOR UPDATE",
        )
        .bind(token_hash(token))
        .bind(purpose)
        .fetch_optional(&mut **tx)
        .await?;
    let (user_id, email, expires_at, used_at) = row.ok_or(AuthError::InvalidToken)?;
    if used_at.is_some() {
        return Err(AuthError::InvalidToken);
    }
    if expires_at <= now {
        return Err(AuthError::TokenExpired);
    }
    sqlx::query("UPDATE auth.user_tokens SET used_at = $2 WHERE token_hash = $1")
        .bind(token_hash(token))
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok((user_id, email))
}

async fn revoke_family(
    tx: &mut Transaction<'static, Postgres>,
    family: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> Result<bool, AuthError> {
    let res = sqlx::query(
        "UPDATE auth.refresh_families SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(now)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(res.rows_affected() == 1)
}

fn map_unique(on_unique: AuthError) -> impl FnOnce(sqlx::Error) -> AuthError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => on_unique,
        _ => AuthError::from(e),
    }
}

fn clean_display_name(name: &str) -> Result<String, AuthError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(AuthError::InvalidInput(
            "display name must be 1-100 printable characters".into(),
        ));
    }
    Ok(n.to_owned())
}

fn clean_scopes(scopes: Vec<String>) -> Result<Vec<String>, AuthError> {
    let mut out: Vec<String> = scopes.into_iter().map(|s| s.trim().to_owned()).collect();
    out.sort();
    out.dedup();
    let ok = |s: &String| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b":._-".contains(&b))
    };
    if out.is_empty() || !out.iter().all(ok) {
        return Err(AuthError::InvalidInput(
            "scopes must be non-empty and match [a-z0-9:._-]{1,64}".into(),
        ));
    }
    Ok(out)
}

fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `adv_<32 hex id>_<secret>` → (id, secret).
fn parse_api_key(s: &str) -> Option<(Uuid, &str)> {
    let rest = s.trim().strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = (rest.get(..32)?, rest.get(32..)?.strip_prefix('_')?);
    if secret.is_empty() {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}
