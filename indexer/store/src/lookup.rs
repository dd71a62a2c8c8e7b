//! Point lookups of indexed rows for services that track one payment at a time (the payments
//! service following an escrow's lifecycle and a payment's refunds; a Solana Pay reference
//! resolves with `query::payment_by_reference`).
//! Rows at `confirmed` are included: callers decide what their commitment means to them.

use sqlx::PgPool;

use crate::StoreError;

/// Refunded so far for the payment account `payment`, counting only finalized refunds when
/// `finalized_only`.
pub async fn refunded_total(
    pool: &PgPool,
    chain: &str,
    payment: &str,
    finalized_only: bool,
) -> Result<u64, StoreError> {
    let total: Option<String> = sqlx::query_scalar(
        "SELECT max(refunded_total)::text FROM indexer.refunds
          WHERE chain = $1 AND payment = $2 AND (NOT $3 OR commitment = 'finalized')",
    )
    .bind(chain)
    .bind(payment)
    .bind(finalized_only)
    .fetch_one(pool)
    .await?;
    total
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| StoreError::Malformed(format!("refunded_total {t}")))
        })
        .transpose()
        .map(Option::unwrap_or_default)
}

/// One escrow lifecycle event (`opened`, `released`, `refunded`, `closed`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct EscrowEventRow {
    pub chain: String,
    pub signature: String,
    pub ix_index: i32,
    pub inner_index: i32,
    pub slot: i64,
    pub commitment: String,
    pub kind: String,
    pub escrow: String,
    pub actor: String,
    pub payer: Option<String>,
    pub facility: Option<String>,
    pub arbiter: Option<String>,
    pub mint: Option<String>,
    pub amount: String,
    pub fee: String,
    pub expires_at: Option<i64>,
}

/// Every indexed event of the escrow account `escrow`, oldest first.
pub async fn escrow_events(
    pool: &PgPool,
    chain: &str,
    escrow: &str,
) -> Result<Vec<EscrowEventRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT chain, signature, ix_index, inner_index, slot, commitment, kind, escrow, actor,
                payer, facility, arbiter, mint, amount::text AS amount, fee::text AS fee,
                expires_at
           FROM indexer.escrows
          WHERE chain = $1 AND escrow = $2
          ORDER BY slot, signature, ix_index, inner_index",
    )
    .bind(chain)
    .bind(escrow)
    .fetch_all(pool)
    .await?)
}

/// An indexed transaction's slot, commitment and whether it failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct TransactionRow {
    pub chain: String,
    pub signature: String,
    pub slot: i64,
    pub commitment: String,
    pub failed: bool,
    pub block_time: Option<i64>,
    pub event_count: i32,
}

pub async fn transaction(
    pool: &PgPool,
    chain: &str,
    signature: &str,
) -> Result<Option<TransactionRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT chain, signature, slot, commitment, failed, block_time, event_count
           FROM indexer.transactions WHERE chain = $1 AND signature = $2",
    )
    .bind(chain)
    .bind(signature)
    .fetch_optional(pool)
    .await?)
}

/// The escrow opened by transaction `signature`, if it opened one.
pub async fn escrow_opened_in(
    pool: &PgPool,
    chain: &str,
    signature: &str,
) -> Result<Option<EscrowEventRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT chain, signature, ix_index, inner_index, slot, commitment, kind, escrow, actor,
                payer, facility, arbiter, mint, amount::text AS amount, fee::text AS fee,
                expires_at
           FROM indexer.escrows
          WHERE chain = $1 AND signature = $2 AND kind = 'opened'
          ORDER BY ix_index, inner_index LIMIT 1",
    )
    .bind(chain)
    .bind(signature)
    .fetch_optional(pool)
    .await?)
}

/// When each of the transactions (`chains[i]`, `signatures[i]`) was indexed (unix seconds,
/// floored), for readers that need a time for rows without a block time. Unknown
/// transactions are left out.
pub async fn indexed_at(
    pool: &PgPool,
    chains: &[&str],
    signatures: &[&str],
) -> Result<Vec<(String, String, i64)>, StoreError> {
    if chains.len() != signatures.len() {
        return Err(StoreError::Malformed(format!(
            "{} chains for {} signatures",
            chains.len(),
            signatures.len()
        )));
    }
    Ok(sqlx::query_as(
        "SELECT t.chain, t.signature, floor(extract(epoch FROM t.indexed_at))::bigint
           FROM indexer.transactions t
           JOIN unnest($1::text[], $2::text[]) AS u(chain, signature)
             ON (t.chain, t.signature) = (u.chain, u.signature)",
    )
    .bind(chains)
    .bind(signatures)
    .fetch_all(pool)
    .await?)
}
