//! Watch-only wallet registry (schema `chains`): a user records public addresses to follow.
//! Registration is idempotent per (user, chain, address).

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ChainError;
use crate::address::{Chain, normalize};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Wallet {
    pub id: Uuid,
    pub user_id: Uuid,
    pub chain: String,
    pub address: String,
    pub label: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Clone)]
pub struct WalletStore {
    pool: PgPool,
}

const MAX_LABEL: usize = 100;

impl WalletStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Registers `address` on `chain` for `user`; returns the existing row when already
    /// registered (the label is updated if a new one is given).
    pub async fn register(
        &self,
        user: Uuid,
        chain: Chain,
        address: &str,
        label: Option<&str>,
    ) -> Result<(Wallet, bool), ChainError> {
        let address = normalize(chain, address)?;
        let label = label.map(str::trim).filter(|l| !l.is_empty());
        if label.is_some_and(|l| l.chars().count() > MAX_LABEL) {
            return Err(ChainError::Invalid(format!(
                "label is longer than {MAX_LABEL} characters"
            )));
        }
        // `xmax = 0` tells an insert from the update of an existing row.
        let row: (
            Uuid,
            Uuid,
            String,
            String,
            Option<String>,
            OffsetDateTime,
            bool,
        ) = sqlx::query_as(
            "INSERT INTO chains.wallets (id, user_id, chain, address, label)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (user_id, chain, address)
                 DO UPDATE SET label = COALESCE(EXCLUDED.label, chains.wallets.label)
                 RETURNING id, user_id, chain, address, label, created_at, (xmax = 0)",
        )
        .bind(Uuid::now_v7())
        .bind(user)
        .bind(chain.as_str())
        .bind(&address)
        .bind(label)
        .fetch_one(&self.pool)
        .await?;
        let (id, user_id, chain, address, label, created_at, inserted) = row;
        Ok((
            Wallet {
                id,
                user_id,
                chain,
                address,
                label,
                created_at,
            },
            inserted,
        ))
    }

    /// The user's wallets in registration order, after the wallet id `after`.
    pub async fn list(
        &self,
        user: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Wallet>, ChainError> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, chain, address, label, created_at FROM chains.wallets
             WHERE user_id = $1 AND ($2::uuid IS NULL OR id > $2)
             ORDER BY id LIMIT $3",
        )
        .bind(user)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether `user` registered `address` on `chain` (the KYC service's wallet check).
    pub async fn owns_on(
        &self,
        user: Uuid,
        chain: &str,
        address: &str,
    ) -> Result<bool, ChainError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM chains.wallets
                             WHERE user_id = $1 AND chain = $2 AND address = $3)",
        )
        .bind(user)
        .bind(chain)
        .bind(address)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Whether `user` registered `address` (any chain) — used to scope balance reads.
    pub async fn owns(&self, user: Uuid, address: &str) -> Result<bool, ChainError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM chains.wallets WHERE user_id = $1 AND address = $2)",
        )
        .bind(user)
        .bind(address)
        .fetch_one(&self.pool)
        .await?)
    }
}
