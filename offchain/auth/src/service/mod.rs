//! `AuthService`: every operation, on Postgres schema `auth`. One file per area;
//! shared state, row types and helpers live here.

mod api_keys;
mod login;
mod maintenance;
mod sessions;
mod two_factor;
mod users;
mod wallet;

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
     locked_until, email_verified_at, disabled_at, created_at, updated_at";
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
    disabled_at: Option<OffsetDateTime>,
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
            disabled: self.disabled_at.is_some(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    fn lock_remaining(&self, now: OffsetDateTime) -> Option<Duration> {
        let until = self.locked_until?;
        (until > now).then(|| Duration::try_from(until - now).unwrap_or(Duration::ZERO))
    }

    fn check_active(&self) -> Result<(), AuthError> {
        match self.disabled_at {
            Some(_) => Err(AuthError::AccountDisabled),
            None => Ok(()),
        }
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
