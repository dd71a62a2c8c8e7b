//! Reconciliation of the ledger against indexed on-chain facts, per transfer reference
//! and per account. The indexer supplies the facts; the report is machine-readable.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::store::{self, TRANSFER_COLS, TransferRow};
use crate::types::{ExternalRef, Transfer, i128_str, u128_str};
use crate::{Ledger, LedgerError};

/// One instruction observed on chain that should have a ledger transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnChainFact {
    pub external_ref: ExternalRef,
    /// The ledger account the movement concerns (vault, facility, user...).
    #[serde(with = "u128_str")]
    pub account: u128,
    /// Asset (ledger id).
    pub ledger: u32,
    #[serde(with = "u128_str")]
    pub amount: u128,
}

/// Which ledger transfers the facts are meant to cover: those with an external reference
/// on one of `chains` and a ledger timestamp in `[from, to)` (ns; open when `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileScope {
    pub chains: Vec<String>,
    pub from: Option<u64>,
    pub to: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMismatch {
    pub field: String,
    pub ledger: String,
    pub chain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub external_ref: ExternalRef,
    #[serde(with = "u128_str")]
    pub transfer_id: u128,
    pub fields: Vec<FieldMismatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraTransfer {
    pub external_ref: ExternalRef,
    #[serde(with = "u128_str")]
    pub transfer_id: u128,
    #[serde(with = "u128_str")]
    pub amount: u128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDifference {
    #[serde(with = "u128_str")]
    pub account: u128,
    pub ledger: u32,
    /// Sum of in-scope ledger postings with a reference that touch the account.
    #[serde(with = "u128_str")]
    pub ledger_total: u128,
    /// Sum of the facts naming the account.
    #[serde(with = "u128_str")]
    pub chain_total: u128,
    /// chain_total − ledger_total.
    #[serde(with = "i128_str")]
    pub difference: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationReport {
    pub matched: u64,
    /// On chain, not in the ledger.
    pub missing: Vec<OnChainFact>,
    /// In the ledger (in scope), not on chain.
    pub extra: Vec<ExtraTransfer>,
    /// In both, with differing fields.
    pub mismatched: Vec<Mismatch>,
    /// Accounts whose totals differ.
    pub accounts: Vec<AccountDifference>,
}

impl ReconciliationReport {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.mismatched.is_empty()
            && self.accounts.is_empty()
    }
}

impl Ledger {
    pub async fn reconcile(
        &self,
        facts: &[OnChainFact],
        scope: &ReconcileScope,
    ) -> Result<ReconciliationReport, LedgerError> {
        let from = store::to_i64(scope.from.unwrap_or(0))?;
        let to = store::to_i64(scope.to.unwrap_or(i64::MAX as u64))?;
        // Voids and still-pending reservations moved no money: only postings reconcile.
        let rows: Vec<TransferRow> = sqlx::query_as(&format!(
            "SELECT {TRANSFER_COLS} FROM ledger.transfers
             WHERE ext_chain = ANY($1) AND timestamp >= $2 AND timestamp < $3 AND flags & 10 = 0"
        ))
        .bind(&scope.chains)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut in_scope: HashMap<ExternalRef, Transfer> = HashMap::new();
        for r in rows {
            let t = r.into_transfer()?;
            if let Some(r) = t.external_ref.clone() {
                in_scope.insert(r, t);
            }
        }
        let mut report = ReconciliationReport {
            matched: 0,
            missing: Vec::new(),
            extra: Vec::new(),
            mismatched: Vec::new(),
            accounts: Vec::new(),
        };
        let mut chain_totals: BTreeMap<u128, (u32, u128)> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for f in facts {
            let e = chain_totals.entry(f.account).or_insert((f.ledger, 0));
            e.1 = e.1.checked_add(f.amount).ok_or(LedgerError::Overflow)?;
            seen.insert(f.external_ref.clone());
            // A fact may point at a transfer outside the time window: look it up directly.
            let t = match in_scope.get(&f.external_ref) {
                Some(t) => Some(t.clone()),
                None => {
                    self.lookup_by_external_ref(
                        &f.external_ref.chain,
                        &f.external_ref.signature,
                        f.external_ref.ix_index,
                    )
                    .await?
                }
            };
            let Some(t) = t.filter(Transfer::is_posting) else {
                report.missing.push(f.clone());
                continue;
            };
            let mut fields = Vec::new();
            if t.amount != f.amount {
                fields.push(FieldMismatch {
                    field: "amount".into(),
                    ledger: t.amount.to_string(),
                    chain: f.amount.to_string(),
                });
            }
            if t.ledger != f.ledger {
                fields.push(FieldMismatch {
                    field: "ledger".into(),
                    ledger: t.ledger.to_string(),
                    chain: f.ledger.to_string(),
                });
            }
            if t.debit_account_id != f.account && t.credit_account_id != f.account {
                fields.push(FieldMismatch {
                    field: "account".into(),
                    ledger: format!("{:#x}/{:#x}", t.debit_account_id, t.credit_account_id),
                    chain: format!("{:#x}", f.account),
                });
            }
            if fields.is_empty() {
                report.matched += 1;
            } else {
                report.mismatched.push(Mismatch {
                    external_ref: f.external_ref.clone(),
                    transfer_id: t.id,
                    fields,
                });
            }
        }
        let mut extra: Vec<&Transfer> = in_scope
            .iter()
            .filter(|(r, _)| !seen.contains(*r))
            .map(|(_, t)| t)
            .collect();
        extra.sort_by_key(|t| t.seq);
        report.extra = extra
            .into_iter()
            .filter_map(|t| {
                t.external_ref.clone().map(|r| ExtraTransfer {
                    external_ref: r,
                    transfer_id: t.id,
                    amount: t.amount,
                })
            })
            .collect();
        for (account, (ledger, chain_total)) in chain_totals {
            let mut ledger_total: u128 = 0;
            for t in in_scope.values() {
                if t.debit_account_id == account || t.credit_account_id == account {
                    ledger_total = ledger_total
                        .checked_add(t.amount)
                        .ok_or(LedgerError::Overflow)?;
                }
            }
            if ledger_total != chain_total {
                let c = i128::try_from(chain_total).map_err(|_| LedgerError::Overflow)?;
                let l = i128::try_from(ledger_total).map_err(|_| LedgerError::Overflow)?;
                report.accounts.push(AccountDifference {
                    account,
                    ledger,
                    ledger_total,
                    chain_total,
                    difference: c - l,
                });
            }
        }
        Ok(report)
    }
}
