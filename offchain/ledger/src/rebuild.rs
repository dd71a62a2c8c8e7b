//! CQRS check: recompute every account's balances from the transfer log and compare with
//! the stored projection; optionally write the recomputed values back.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::LedgerError;
use crate::store::{self, parse_u128, uuid};
use crate::types::{Balance, u128_str};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceDiff {
    #[serde(with = "u128_str")]
    pub account: u128,
    pub stored: Balance,
    pub rebuilt: Balance,
}

/// Posted totals of one ledger; double entry means they are always equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTotals {
    pub ledger: u32,
    #[serde(with = "u128_str")]
    pub debits_posted: u128,
    #[serde(with = "u128_str")]
    pub credits_posted: u128,
    #[serde(with = "u128_str")]
    pub debits_pending: u128,
    #[serde(with = "u128_str")]
    pub credits_pending: u128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildReport {
    pub accounts_checked: u64,
    pub differences: Vec<BalanceDiff>,
    pub applied: bool,
    /// Per-ledger totals of the rebuilt balances.
    pub ledgers: Vec<LedgerTotals>,
}

impl RebuildReport {
    pub fn is_consistent(&self) -> bool {
        self.differences.is_empty()
            && self.ledgers.iter().all(|l| {
                l.debits_posted == l.credits_posted && l.debits_pending == l.credits_pending
            })
    }
}

// flags: PENDING = 2, VOID_PENDING = 8 (see types::transfer_flags).
const REBUILD_SQL: &str = "
WITH posting AS (
    SELECT debit_account_id, credit_account_id, amount FROM ledger.transfers WHERE flags & 10 = 0
), open_pending AS (
    SELECT debit_account_id, credit_account_id, amount FROM ledger.transfers t
    WHERE flags & 2 <> 0 AND NOT EXISTS (SELECT 1 FROM ledger.transfers r WHERE r.pending_id = t.id)
), sums AS (
    SELECT debit_account_id AS id, amount AS dpo, 0 AS cpo, 0 AS dp, 0 AS cp FROM posting
    UNION ALL SELECT credit_account_id, 0, amount, 0, 0 FROM posting
    UNION ALL SELECT debit_account_id, 0, 0, amount, 0 FROM open_pending
    UNION ALL SELECT credit_account_id, 0, 0, 0, amount FROM open_pending
), agg AS (
    SELECT id, sum(dpo) AS dpo, sum(cpo) AS cpo, sum(dp) AS dp, sum(cp) AS cp FROM sums GROUP BY id
)
SELECT a.id, a.ledger,
       a.debits_pending::text, a.debits_posted::text, a.credits_pending::text, a.credits_posted::text,
       coalesce(g.dp, 0)::text, coalesce(g.dpo, 0)::text, coalesce(g.cp, 0)::text, coalesce(g.cpo, 0)::text
FROM ledger.accounts a LEFT JOIN agg g ON g.id = a.id
ORDER BY a.id";

type Row = (
    Uuid,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

pub async fn rebuild(pool: &PgPool, apply: bool) -> Result<RebuildReport, LedgerError> {
    let mut tx = pool.begin().await?;
    // Hold the chain head so no writer moves balances between recompute and write-back.
    sqlx::query("SELECT 1 FROM ledger.chain_head FOR UPDATE")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<Row> = sqlx::query_as(REBUILD_SQL).fetch_all(&mut *tx).await?;
    let mut differences = Vec::new();
    let mut ledgers: std::collections::BTreeMap<u32, LedgerTotals> = Default::default();
    let checked = rows.len() as u64;
    for (id, ledger, sdp, sdpo, scp, scpo, rdp, rdpo, rcp, rcpo) in rows {
        let stored = Balance {
            debits_pending: parse_u128(&sdp)?,
            debits_posted: parse_u128(&sdpo)?,
            credits_pending: parse_u128(&scp)?,
            credits_posted: parse_u128(&scpo)?,
        };
        let rebuilt = Balance {
            debits_pending: parse_u128(&rdp)?,
            debits_posted: parse_u128(&rdpo)?,
            credits_pending: parse_u128(&rcp)?,
            credits_posted: parse_u128(&rcpo)?,
        };
        let ledger = u32::try_from(ledger).map_err(|_| LedgerError::Corrupt("ledger".into()))?;
        let t = ledgers.entry(ledger).or_insert(LedgerTotals {
            ledger,
            debits_posted: 0,
            credits_posted: 0,
            debits_pending: 0,
            credits_pending: 0,
        });
        let add = |a: u128, b: u128| a.checked_add(b).ok_or(LedgerError::Overflow);
        t.debits_posted = add(t.debits_posted, rebuilt.debits_posted)?;
        t.credits_posted = add(t.credits_posted, rebuilt.credits_posted)?;
        t.debits_pending = add(t.debits_pending, rebuilt.debits_pending)?;
        t.credits_pending = add(t.credits_pending, rebuilt.credits_pending)?;
        if stored != rebuilt {
            differences.push(BalanceDiff {
                account: id.as_u128(),
                stored,
                rebuilt,
            });
        }
    }
    if apply && !differences.is_empty() {
        let mut accounts = Vec::with_capacity(differences.len());
        for d in &differences {
            let row: crate::store::AccountRow = sqlx::query_as(&format!(
                "SELECT {} FROM ledger.accounts WHERE id = $1",
                crate::store::ACCOUNT_COLS
            ))
            .bind(uuid(d.account))
            .fetch_one(&mut *tx)
            .await?;
            let mut a = row.into_account()?;
            a.balance = d.rebuilt;
            accounts.push(a);
        }
        let refs: Vec<&crate::types::Account> = accounts.iter().collect();
        store::update_balances(&mut tx, &refs).await?;
    }
    tx.commit().await?;
    Ok(RebuildReport {
        accounts_checked: checked,
        differences,
        applied: apply,
        ledgers: ledgers.into_values().collect(),
    })
}
