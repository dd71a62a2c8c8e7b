//! Settlement batches: the transfer log cut into consecutive seq ranges, each with a
//! Poseidon Merkle root (leaves in seq order), entry count and per-ledger totals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::merkle::{self, Hasher, MerkleTree, Node};
use crate::store::{self, TRANSFER_COLS, TransferRow, uuid};
use crate::types::Transfer;
use crate::{Ledger, LedgerError, now_ns};

/// Advisory-lock key: one batch closer at a time.
const SETTLEMENT_LOCK: i64 = 0x6c65_6467_6572_7362; // "ledgersb"

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementBatch {
    pub batch_number: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub entry_count: u64,
    pub depth: u32,
    /// Hex of the 32-byte big-endian root.
    pub root: String,
    /// Sum of entry amounts per ledger id, as decimal strings.
    pub totals: BTreeMap<u32, String>,
    pub closed_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementProof {
    pub batch_number: u64,
    pub root: String,
    pub entry_count: u64,
    pub leaf: String,
    pub index: u64,
    /// Sibling hashes from the leaf level up (hex).
    pub siblings: Vec<String>,
}

impl SettlementProof {
    /// Byte form for verification or the on-chain call.
    pub fn decode(&self) -> Result<(Node, Node, Vec<Node>), LedgerError> {
        let dec = |s: &str| -> Result<Node, LedgerError> {
            let v = hex::decode(s).map_err(|e| LedgerError::InvalidInput(e.to_string()))?;
            v.try_into()
                .map_err(|_| LedgerError::InvalidInput("hash must be 32 bytes".into()))
        };
        let siblings = self
            .siblings
            .iter()
            .map(|s| dec(s))
            .collect::<Result<_, _>>()?;
        Ok((dec(&self.root)?, dec(&self.leaf)?, siblings))
    }

    /// Recomputes the root from the proof.
    pub fn verify(&self) -> Result<bool, LedgerError> {
        let (root, leaf, siblings) = self.decode()?;
        let mut h = Hasher::new()?;
        Ok(merkle::verify_proof(
            &mut h,
            &root,
            &leaf,
            self.index,
            &siblings,
            self.entry_count,
        )?)
    }
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    batch_number: i64,
    first_seq: i64,
    last_seq: i64,
    entry_count: i64,
    depth: i32,
    root: Vec<u8>,
    totals: serde_json::Value,
    closed_at: i64,
}

impl BatchRow {
    fn into_batch(self) -> Result<SettlementBatch, LedgerError> {
        let totals: BTreeMap<u32, String> = serde_json::from_value(self.totals)
            .map_err(|e| LedgerError::Corrupt(format!("batch totals: {e}")))?;
        Ok(SettlementBatch {
            batch_number: store::to_u64(self.batch_number)?,
            first_seq: store::to_u64(self.first_seq)?,
            last_seq: store::to_u64(self.last_seq)?,
            entry_count: store::to_u64(self.entry_count)?,
            depth: u32::try_from(self.depth).map_err(|_| LedgerError::Corrupt("depth".into()))?,
            root: hex::encode(self.root),
            totals,
            closed_at: store::to_u64(self.closed_at)?,
        })
    }
}

const BATCH_COLS: &str =
    "batch_number, first_seq, last_seq, entry_count, depth, root, totals, closed_at";

async fn batch_transfers(
    pool: &PgPool,
    first_seq: u64,
    last_seq: u64,
) -> Result<Vec<Transfer>, LedgerError> {
    let rows: Vec<TransferRow> = sqlx::query_as(&format!(
        "SELECT {TRANSFER_COLS} FROM ledger.transfers WHERE seq BETWEEN $1 AND $2 ORDER BY seq"
    ))
    .bind(store::to_i64(first_seq)?)
    .bind(store::to_i64(last_seq)?)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(TransferRow::into_transfer).collect()
}

fn tree(transfers: &[Transfer]) -> Result<(Hasher, MerkleTree), LedgerError> {
    let mut h = Hasher::new()?;
    let leaves = transfers
        .iter()
        .map(|t| h.leaf(t))
        .collect::<Result<Vec<_>, _>>()?;
    let tree = MerkleTree::build(&mut h, leaves)?;
    Ok((h, tree))
}

impl Ledger {
    /// Closes the next batch: the (at most `max_entries`) transfers after the previous
    /// batch. `None` when there is nothing to settle (an empty batch has no root).
    pub async fn close_settlement_batch(
        &self,
        max_entries: u32,
    ) -> Result<Option<SettlementBatch>, LedgerError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SETTLEMENT_LOCK)
            .execute(&mut *tx)
            .await?;
        let last: Option<(i64, i64)> = sqlx::query_as(
            "SELECT batch_number, last_seq FROM ledger.settlement_batches ORDER BY batch_number DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (prev_number, prev_seq) = last.unwrap_or((0, 0));
        // Writers commit in seq order (they hold the chain head until commit), so every
        // committed seq below the highest one is committed too: no gaps can appear later.
        let rows: Vec<TransferRow> = sqlx::query_as(&format!(
            "SELECT {TRANSFER_COLS} FROM ledger.transfers WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(prev_seq)
        .bind(i64::from(max_entries.max(1)))
        .fetch_all(&mut *tx)
        .await?;
        let transfers = rows
            .into_iter()
            .map(TransferRow::into_transfer)
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (transfers.first(), transfers.last()) else {
            return Ok(None);
        };
        let (_, tree) = tree(&transfers)?;
        let mut totals: BTreeMap<u32, u128> = BTreeMap::new();
        for t in &transfers {
            let e = totals.entry(t.ledger).or_default();
            *e = e.checked_add(t.amount).ok_or(LedgerError::Overflow)?;
        }
        let batch = SettlementBatch {
            batch_number: store::to_u64(prev_number)? + 1,
            first_seq: first.seq,
            last_seq: last.seq,
            entry_count: transfers.len() as u64,
            depth: tree.depth(),
            root: hex::encode(tree.root()),
            totals: totals
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .collect(),
            closed_at: now_ns(),
        };
        sqlx::query(&format!(
            "INSERT INTO ledger.settlement_batches ({BATCH_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(store::to_i64(batch.batch_number)?)
        .bind(store::to_i64(batch.first_seq)?)
        .bind(store::to_i64(batch.last_seq)?)
        .bind(store::to_i64(batch.entry_count)?)
        .bind(i32::try_from(batch.depth).unwrap_or(i32::MAX))
        .bind(tree.root().to_vec())
        .bind(serde_json::to_value(&batch.totals).map_err(|e| LedgerError::Corrupt(e.to_string()))?)
        .bind(store::to_i64(batch.closed_at)?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(batch))
    }

    pub async fn settlement_batch(
        &self,
        number: u64,
    ) -> Result<Option<SettlementBatch>, LedgerError> {
        let row: Option<BatchRow> = sqlx::query_as(&format!(
            "SELECT {BATCH_COLS} FROM ledger.settlement_batches WHERE batch_number = $1"
        ))
        .bind(store::to_i64(number)?)
        .fetch_optional(&self.pool)
        .await?;
        row.map(BatchRow::into_batch).transpose()
    }

    /// Inclusion proof of a transfer in its settlement batch; `None` if the transfer does
    /// not exist or is not settled yet.
    pub async fn settlement_proof(
        &self,
        transfer_id: u128,
    ) -> Result<Option<SettlementProof>, LedgerError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM ledger.transfers WHERE id = $1")
            .bind(uuid(transfer_id))
            .fetch_optional(&self.pool)
            .await?;
        let Some(seq) = seq else { return Ok(None) };
        let row: Option<BatchRow> = sqlx::query_as(&format!(
            "SELECT {BATCH_COLS} FROM ledger.settlement_batches WHERE $1 BETWEEN first_seq AND last_seq"
        ))
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        let Some(batch) = row.map(BatchRow::into_batch).transpose()? else {
            return Ok(None);
        };
        let transfers = batch_transfers(&self.pool, batch.first_seq, batch.last_seq).await?;
        let index = transfers
            .iter()
            .position(|t| t.id == transfer_id)
            .ok_or_else(|| LedgerError::Corrupt("settled transfer missing from its batch".into()))?
            as u64;
        let (_, tree) = tree(&transfers)?;
        if hex::encode(tree.root()) != batch.root || tree.count() != batch.entry_count {
            return Err(LedgerError::Corrupt(format!(
                "batch {} no longer matches its stored root",
                batch.batch_number
            )));
        }
        let siblings = tree.proof(index)?;
        let leaf = transfers
            .get(index as usize)
            .map(|t| {
                let mut h = Hasher::new()?;
                h.leaf(t)
            })
            .transpose()?
            .unwrap_or(merkle::ZERO);
        Ok(Some(SettlementProof {
            batch_number: batch.batch_number,
            root: batch.root,
            entry_count: batch.entry_count,
            leaf: hex::encode(leaf),
            index,
            siblings: siblings.iter().map(hex::encode).collect(),
        }))
    }
}
