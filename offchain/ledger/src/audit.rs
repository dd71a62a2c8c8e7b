//! The audit hash chain over accounts and transfers.
//!
//! Every account creation and every transfer gets a global `seq` and
//! `hash = sha256(prev_hash || canonical bytes)`. `seq` itself is not hashed: the link
//! to the previous row is what fixes the order, so moving a row shows up as a broken link
//! (reordered), a missing seq as a deletion, and any changed field as an altered row.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::LedgerError;
use crate::store::{self, ACCOUNT_COLS, AccountRow, TRANSFER_COLS, TransferRow};
use crate::types::{Account, Transfer, account_flags};

pub type Hash = [u8; 32];
pub const GENESIS: Hash = [0u8; 32];

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Canonical bytes of an account's immutable fields (balances and the closed flag are
/// projection state, checked by `rebuild` instead).
pub fn account_bytes(a: &Account) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.push(b'A');
    out.extend_from_slice(&a.id.to_be_bytes());
    out.extend_from_slice(&a.ledger.to_be_bytes());
    out.push(a.kind as u8);
    out.extend_from_slice(&(a.flags & !account_flags::CLOSED).to_be_bytes());
    out.push(a.owner.kind as u8);
    put_str(&mut out, &a.owner.id);
    match &a.jurisdiction {
        Some(j) => {
            out.push(1);
            put_str(&mut out, j);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&a.user_data.to_be_bytes());
    out.extend_from_slice(&a.timestamp.to_be_bytes());
    out
}

/// Canonical bytes of a transfer (every stored field except seq and the hashes).
pub fn transfer_bytes(t: &Transfer) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.push(b'T');
    for v in [
        t.id,
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        t.pending_id,
        t.user_data,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&t.ledger.to_be_bytes());
    out.extend_from_slice(&t.code.to_be_bytes());
    out.extend_from_slice(&t.flags.to_be_bytes());
    out.extend_from_slice(&t.timeout.to_be_bytes());
    match t.expires_at {
        Some(e) => {
            out.push(1);
            out.extend_from_slice(&e.to_be_bytes());
        }
        None => out.push(0),
    }
    match &t.external_ref {
        Some(r) => {
            out.push(1);
            put_str(&mut out, &r.chain);
            put_str(&mut out, &r.signature);
            out.extend_from_slice(&r.ix_index.to_be_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&t.timestamp.to_be_bytes());
    out
}

pub fn chain_hash(prev: &Hash, entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(entry);
    h.finalize().into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// A row's content no longer matches its hash.
    Altered,
    /// One or more rows are missing (gap in seq, or a link to a hash that no longer exists).
    Deleted,
    /// Rows are intact but out of order (a row links to a hash that exists elsewhere).
    Reordered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditBreak {
    /// First sequence number at which the chain does not verify.
    pub seq: u64,
    pub kind: BreakKind,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub entries_checked: u64,
    pub head_seq: u64,
    pub first_break: Option<AuditBreak>,
}

impl AuditReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

struct Entry {
    seq: u64,
    bytes: Vec<u8>,
    prev: Vec<u8>,
    hash: Vec<u8>,
}

/// Walks the whole chain in seq order inside one repeatable-read snapshot.
pub async fn verify(pool: &PgPool) -> Result<AuditReport, LedgerError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let (head_seq, head_hash, _): (i64, Vec<u8>, i64) =
        sqlx::query_as("SELECT last_seq, last_hash, last_timestamp FROM ledger.chain_head")
            .fetch_one(&mut *tx)
            .await?;
    let head_seq = store::to_u64(head_seq)?;

    // Accounts are few next to transfers: hold them, page through transfers.
    let rows: Vec<AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLS}, prev_hash, hash FROM ledger.accounts ORDER BY seq"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let mut accounts = std::collections::VecDeque::with_capacity(rows.len());
    for r in rows {
        let (prev, hash) = (r.prev_hash.clone(), r.hash.clone());
        let a = r.into_account()?;
        accounts.push_back(Entry {
            seq: a.seq,
            bytes: account_bytes(&a),
            prev: prev.unwrap_or_default(),
            hash: hash.unwrap_or_default(),
        });
    }

    let mut running: Vec<u8> = GENESIS.to_vec();
    let mut last_seq = 0u64;
    let mut checked = 0u64;
    let mut after: i64 = i64::MIN;
    let mut page: std::collections::VecDeque<Entry> = Default::default();
    let mut transfers_done = false;
    loop {
        if page.is_empty() && !transfers_done {
            let rows: Vec<TransferRow> = sqlx::query_as(&format!(
                "SELECT {TRANSFER_COLS}, prev_hash, hash FROM ledger.transfers WHERE seq > $1 ORDER BY seq LIMIT 20000"
            ))
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                transfers_done = true;
            }
            for r in rows {
                after = r.seq;
                let (prev, hash) = (r.prev_hash.clone(), r.hash.clone());
                let t = r.into_transfer()?;
                page.push_back(Entry {
                    seq: t.seq,
                    bytes: transfer_bytes(&t),
                    prev: prev.unwrap_or_default(),
                    hash: hash.unwrap_or_default(),
                });
            }
        }
        let take_account = match (accounts.front(), page.front()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(t)) => a.seq < t.seq,
        };
        let Some(e) = (if take_account {
            accounts.pop_front()
        } else {
            page.pop_front()
        }) else {
            break;
        };
        checked += 1;
        let broken = |kind, detail: String| AuditReport {
            entries_checked: checked,
            head_seq,
            first_break: Some(AuditBreak {
                seq: e.seq,
                kind,
                detail,
            }),
        };
        if e.seq <= last_seq {
            return Ok(broken(
                BreakKind::Reordered,
                format!("seq {} repeats or goes backwards", e.seq),
            ));
        }
        if e.prev.len() != 32 || chain_hash(&to_hash(&e.prev), &e.bytes).as_slice() != e.hash {
            return Ok(broken(
                BreakKind::Altered,
                "content does not match its hash".into(),
            ));
        }
        if e.seq != last_seq + 1 {
            let mut b = broken(
                BreakKind::Deleted,
                format!("seq {} to {} missing", last_seq + 1, e.seq - 1),
            );
            if let Some(x) = b.first_break.as_mut() {
                x.seq = last_seq + 1;
            }
            return Ok(b);
        }
        if e.prev != running {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM ledger.transfers WHERE hash = $1)
                     OR EXISTS (SELECT 1 FROM ledger.accounts WHERE hash = $1)",
            )
            .bind(&e.prev)
            .fetch_one(&mut *tx)
            .await?;
            return Ok(if exists {
                broken(
                    BreakKind::Reordered,
                    "links to a row that is stored at another position".into(),
                )
            } else {
                broken(
                    BreakKind::Deleted,
                    "links to a row that no longer exists".into(),
                )
            });
        }
        running = e.hash;
        last_seq = e.seq;
    }
    let tail_ok = last_seq == head_seq && running == head_hash;
    tx.commit().await?;
    Ok(AuditReport {
        entries_checked: checked,
        head_seq,
        first_break: (!tail_ok).then(|| AuditBreak {
            seq: last_seq + 1,
            kind: BreakKind::Deleted,
            detail: format!("chain ends at seq {last_seq}, head records seq {head_seq}"),
        }),
    })
}

fn to_hash(v: &[u8]) -> Hash {
    let mut h = GENESIS;
    if v.len() == 32 {
        h.copy_from_slice(v);
    }
    h
}
