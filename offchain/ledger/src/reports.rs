//! Financial reports per ledger (currency) and period, computed from the transfer log
//! (postings only: single-phase transfers and posts). Periods are half-open `[from, to)`
//! in ledger nanoseconds. Figures are base units of the ledger's currency.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::{self, parse_i128, parse_u128, uuid};
use crate::types::{AccountKind, i128_str, u128_str};
use crate::{Ledger, LedgerError};

fn end(to: Option<u64>) -> Result<i64, LedgerError> {
    store::to_i64(to.unwrap_or(i64::MAX as u64))
}

fn sub(a: u128, b: u128) -> Result<i128, LedgerError> {
    let a = i128::try_from(a).map_err(|_| LedgerError::Overflow)?;
    let b = i128::try_from(b).map_err(|_| LedgerError::Overflow)?;
    a.checked_sub(b).ok_or(LedgerError::Overflow)
}

fn add(a: i128, b: i128) -> Result<i128, LedgerError> {
    a.checked_add(b).ok_or(LedgerError::Overflow)
}

/// Balance in the account's natural sign (assets/expenses: debits − credits).
pub fn natural(kind: AccountKind, debits: u128, credits: u128) -> Result<i128, LedgerError> {
    if kind.is_debit_normal() {
        sub(debits, credits)
    } else {
        sub(credits, debits)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountActivity {
    #[serde(with = "u128_str")]
    pub account: u128,
    pub kind: AccountKind,
    #[serde(with = "u128_str")]
    pub debits: u128,
    #[serde(with = "u128_str")]
    pub credits: u128,
    /// Natural-sign balance (or period movement) of the account.
    #[serde(with = "i128_str")]
    pub balance: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialBalance {
    pub ledger: u32,
    pub as_of: Option<u64>,
    pub lines: Vec<AccountActivity>,
    #[serde(with = "u128_str")]
    pub total_debits: u128,
    #[serde(with = "u128_str")]
    pub total_credits: u128,
}

impl TrialBalance {
    pub fn is_balanced(&self) -> bool {
        self.total_debits == self.total_credits
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceSheet {
    pub ledger: u32,
    pub as_of: Option<u64>,
    pub assets: Vec<AccountActivity>,
    pub liabilities: Vec<AccountActivity>,
    pub equity: Vec<AccountActivity>,
    #[serde(with = "i128_str")]
    pub total_assets: i128,
    #[serde(with = "i128_str")]
    pub total_liabilities: i128,
    /// Equity accounts plus retained earnings.
    #[serde(with = "i128_str")]
    pub total_equity: i128,
    /// Revenue − expenses to date, not yet closed into equity accounts.
    #[serde(with = "i128_str")]
    pub retained_earnings: i128,
}

impl BalanceSheet {
    /// Assets = liabilities + equity.
    pub fn is_balanced(&self) -> bool {
        self.total_liabilities.checked_add(self.total_equity) == Some(self.total_assets)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomeStatement {
    pub ledger: u32,
    pub from: u64,
    pub to: Option<u64>,
    pub revenue: Vec<AccountActivity>,
    pub expenses: Vec<AccountActivity>,
    #[serde(with = "i128_str")]
    pub total_revenue: i128,
    #[serde(with = "i128_str")]
    pub total_expenses: i128,
    #[serde(with = "i128_str")]
    pub net_income: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    #[serde(with = "u128_str")]
    pub transfer_id: u128,
    pub timestamp: u64,
    pub code: u16,
    #[serde(with = "u128_str")]
    pub debit: u128,
    #[serde(with = "u128_str")]
    pub credit: u128,
    /// Running natural-sign balance after this line.
    #[serde(with = "i128_str")]
    pub balance: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStatement {
    #[serde(with = "u128_str")]
    pub account: u128,
    pub kind: AccountKind,
    pub ledger: u32,
    pub from: u64,
    pub to: Option<u64>,
    #[serde(with = "i128_str")]
    pub opening_balance: i128,
    pub lines: Vec<StatementLine>,
    #[serde(with = "i128_str")]
    pub closing_balance: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxLine {
    /// `None`: revenue accounts without a jurisdiction (not taxed, listed for review).
    pub jurisdiction: Option<String>,
    /// Rate in basis points in force when the revenue was posted; `None` if no rate.
    pub rate_bps: Option<u32>,
    /// Net fee revenue (credits − debits) in the period at this rate.
    #[serde(with = "i128_str")]
    pub fee_revenue: i128,
    #[serde(with = "i128_str")]
    pub tax: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxReport {
    pub ledger: u32,
    pub from: u64,
    pub to: Option<u64>,
    pub lines: Vec<TaxLine>,
    #[serde(with = "i128_str")]
    pub total_tax: i128,
}

/// `revenue × bps / 10 000`, rounded half away from zero at the base unit.
pub fn tax_amount(revenue: i128, rate_bps: u32) -> Result<i128, LedgerError> {
    let p = revenue
        .checked_mul(i128::from(rate_bps))
        .ok_or(LedgerError::Overflow)?;
    let (q, r) = (p / 10_000, p % 10_000);
    Ok(if r.abs() * 2 >= 10_000 {
        q + p.signum()
    } else {
        q
    })
}

type SumRow = (Uuid, i16, String, String);

impl Ledger {
    /// Posted debits and credits per account of `ledger` within `[from, to)`.
    pub async fn account_activity(
        &self,
        ledger: u32,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<AccountActivity>, LedgerError> {
        let rows: Vec<SumRow> = sqlx::query_as(
            "SELECT a.id, a.kind,
               (SELECT coalesce(sum(amount), 0) FROM ledger.transfers t WHERE t.debit_account_id = a.id
                  AND t.flags & 10 = 0 AND t.timestamp >= $2 AND t.timestamp < $3)::text,
               (SELECT coalesce(sum(amount), 0) FROM ledger.transfers t WHERE t.credit_account_id = a.id
                  AND t.flags & 10 = 0 AND t.timestamp >= $2 AND t.timestamp < $3)::text
             FROM ledger.accounts a WHERE a.ledger = $1 ORDER BY a.id",
        )
        .bind(i64::from(ledger))
        .bind(store::to_i64(from)?)
        .bind(end(to)?)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, kind, d, c)| {
                let kind = AccountKind::from_i16(kind)
                    .ok_or_else(|| LedgerError::Corrupt("account kind".into()))?;
                let (debits, credits) = (parse_u128(&d)?, parse_u128(&c)?);
                Ok(AccountActivity {
                    account: id.as_u128(),
                    kind,
                    debits,
                    credits,
                    balance: natural(kind, debits, credits)?,
                })
            })
            .collect()
    }

    /// Posted totals per account up to `as_of` (exclusive); total debits = total credits.
    pub async fn trial_balance(
        &self,
        ledger: u32,
        as_of: Option<u64>,
    ) -> Result<TrialBalance, LedgerError> {
        let lines = self.account_activity(ledger, 0, as_of).await?;
        let (mut total_debits, mut total_credits) = (0u128, 0u128);
        for l in &lines {
            total_debits = total_debits
                .checked_add(l.debits)
                .ok_or(LedgerError::Overflow)?;
            total_credits = total_credits
                .checked_add(l.credits)
                .ok_or(LedgerError::Overflow)?;
        }
        Ok(TrialBalance {
            ledger,
            as_of,
            lines,
            total_debits,
            total_credits,
        })
    }

    pub async fn balance_sheet(
        &self,
        ledger: u32,
        as_of: Option<u64>,
    ) -> Result<BalanceSheet, LedgerError> {
        let lines = self.account_activity(ledger, 0, as_of).await?;
        let mut s = BalanceSheet {
            ledger,
            as_of,
            assets: Vec::new(),
            liabilities: Vec::new(),
            equity: Vec::new(),
            total_assets: 0,
            total_liabilities: 0,
            total_equity: 0,
            retained_earnings: 0,
        };
        for l in lines {
            match l.kind {
                AccountKind::Asset => {
                    s.total_assets = add(s.total_assets, l.balance)?;
                    s.assets.push(l);
                }
                AccountKind::Liability => {
                    s.total_liabilities = add(s.total_liabilities, l.balance)?;
                    s.liabilities.push(l);
                }
                AccountKind::Equity => {
                    s.total_equity = add(s.total_equity, l.balance)?;
                    s.equity.push(l);
                }
                AccountKind::Revenue => s.retained_earnings = add(s.retained_earnings, l.balance)?,
                AccountKind::Expense => {
                    s.retained_earnings = s
                        .retained_earnings
                        .checked_sub(l.balance)
                        .ok_or(LedgerError::Overflow)?;
                }
            }
        }
        s.total_equity = add(s.total_equity, s.retained_earnings)?;
        Ok(s)
    }

    pub async fn income_statement(
        &self,
        ledger: u32,
        from: u64,
        to: Option<u64>,
    ) -> Result<IncomeStatement, LedgerError> {
        let lines = self.account_activity(ledger, from, to).await?;
        let mut s = IncomeStatement {
            ledger,
            from,
            to,
            revenue: Vec::new(),
            expenses: Vec::new(),
            total_revenue: 0,
            total_expenses: 0,
            net_income: 0,
        };
        for l in lines {
            match l.kind {
                AccountKind::Revenue => {
                    s.total_revenue = add(s.total_revenue, l.balance)?;
                    s.revenue.push(l);
                }
                AccountKind::Expense => {
                    s.total_expenses = add(s.total_expenses, l.balance)?;
                    s.expenses.push(l);
                }
                _ => {}
            }
        }
        s.net_income = s
            .total_revenue
            .checked_sub(s.total_expenses)
            .ok_or(LedgerError::Overflow)?;
        Ok(s)
    }

    /// Postings of one account in `[from, to)` with opening, running and closing balances.
    pub async fn account_statement(
        &self,
        account: u128,
        from: u64,
        to: Option<u64>,
    ) -> Result<AccountStatement, LedgerError> {
        let a = self
            .account(account)
            .await?
            .ok_or(LedgerError::AccountNotFound(account))?;
        let (d, c): (String, String) = sqlx::query_as(
            "SELECT
               (SELECT coalesce(sum(amount), 0) FROM ledger.transfers WHERE debit_account_id = $1
                  AND flags & 10 = 0 AND timestamp < $2)::text,
               (SELECT coalesce(sum(amount), 0) FROM ledger.transfers WHERE credit_account_id = $1
                  AND flags & 10 = 0 AND timestamp < $2)::text",
        )
        .bind(uuid(account))
        .bind(store::to_i64(from)?)
        .fetch_one(&self.pool)
        .await?;
        let opening = natural(a.kind, parse_u128(&d)?, parse_u128(&c)?)?;
        let rows: Vec<store::TransferRow> = sqlx::query_as(&format!(
            "SELECT {} FROM ledger.transfers
             WHERE (debit_account_id = $1 OR credit_account_id = $1)
               AND flags & 10 = 0 AND timestamp >= $2 AND timestamp < $3
             ORDER BY seq",
            store::TRANSFER_COLS
        ))
        .bind(uuid(account))
        .bind(store::to_i64(from)?)
        .bind(end(to)?)
        .fetch_all(&self.pool)
        .await?;
        let mut balance = opening;
        let mut lines = Vec::with_capacity(rows.len());
        for r in rows {
            let t = r.into_transfer()?;
            let (debit, credit) = if t.debit_account_id == account {
                (t.amount, 0)
            } else {
                (0, t.amount)
            };
            balance = add(balance, natural(a.kind, debit, credit)?)?;
            lines.push(StatementLine {
                transfer_id: t.id,
                timestamp: t.timestamp,
                code: t.code,
                debit,
                credit,
                balance,
            });
        }
        Ok(AccountStatement {
            account,
            kind: a.kind,
            ledger: a.ledger,
            from,
            to,
            opening_balance: opening,
            lines,
            closing_balance: balance,
        })
    }

    /// Sets the fee-revenue tax rate of a jurisdiction from `effective_from` (ns) on.
    pub async fn set_tax_rate(
        &self,
        jurisdiction: &str,
        effective_from: u64,
        rate_bps: u32,
    ) -> Result<(), LedgerError> {
        if jurisdiction.is_empty() || rate_bps > 10_000 {
            return Err(LedgerError::InvalidInput(
                "jurisdiction must be non-empty and the rate at most 10000 bps".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO ledger.tax_rates (jurisdiction, effective_from, rate_bps) VALUES ($1, $2, $3)
             ON CONFLICT (jurisdiction, effective_from) DO UPDATE SET rate_bps = EXCLUDED.rate_bps",
        )
        .bind(jurisdiction)
        .bind(store::to_i64(effective_from)?)
        .bind(i32::try_from(rate_bps).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Tax on fee revenue (revenue accounts) per jurisdiction and applicable rate: each
    /// posting is taxed at the rate in force at its timestamp; rounding per line.
    pub async fn tax_report(
        &self,
        ledger: u32,
        from: u64,
        to: Option<u64>,
    ) -> Result<TaxReport, LedgerError> {
        let rows: Vec<(Option<String>, Option<i32>, String)> = sqlx::query_as(
            "SELECT a.jurisdiction, r.rate_bps,
                    sum(CASE WHEN t.credit_account_id = a.id THEN t.amount ELSE -t.amount END)::text
             FROM ledger.accounts a
             JOIN ledger.transfers t ON (t.credit_account_id = a.id OR t.debit_account_id = a.id)
             LEFT JOIN LATERAL (
                 SELECT rate_bps FROM ledger.tax_rates x
                 WHERE x.jurisdiction = a.jurisdiction AND x.effective_from <= t.timestamp
                 ORDER BY x.effective_from DESC LIMIT 1) r ON true
             WHERE a.ledger = $1 AND a.kind = 4 AND t.flags & 10 = 0
               AND t.timestamp >= $2 AND t.timestamp < $3
             GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2",
        )
        .bind(i64::from(ledger))
        .bind(store::to_i64(from)?)
        .bind(end(to)?)
        .fetch_all(&self.pool)
        .await?;
        let mut lines = Vec::with_capacity(rows.len());
        let mut total_tax = 0i128;
        for (jurisdiction, rate, revenue) in rows {
            let fee_revenue = parse_i128(&revenue)?;
            let rate_bps = rate.and_then(|r| u32::try_from(r).ok());
            let tax = match (&jurisdiction, rate_bps) {
                (Some(_), Some(bps)) => tax_amount(fee_revenue, bps)?,
                _ => 0,
            };
            total_tax = add(total_tax, tax)?;
            lines.push(TaxLine {
                jurisdiction,
                rate_bps,
                fee_revenue,
                tax,
            });
        }
        Ok(TaxReport {
            ledger,
            from,
            to,
            lines,
            total_tax,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_rounds_half_away_from_zero() {
        assert_eq!(tax_amount(10_000, 750).unwrap(), 750);
        assert_eq!(tax_amount(1_234, 750).unwrap(), 93); // 92.55 -> 93
        assert_eq!(tax_amount(1_000, 5).unwrap(), 1); // 0.5 -> 1
        assert_eq!(tax_amount(999, 5).unwrap(), 0); // 0.4995 -> 0
        assert_eq!(tax_amount(-1_000, 5).unwrap(), -1);
        assert!(tax_amount(i128::MAX, 2).is_err());
    }
}
