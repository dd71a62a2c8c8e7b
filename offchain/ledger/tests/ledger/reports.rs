use advancia_ledger::{AccountKind, NewTransfer, WriteMode, transfer_flags as tf};

use crate::common::*;

const CASH: u128 = 1;
const PAYABLE: u128 = 2;
const EQUITY: u128 = 3;
const FEES_CA: u128 = 4;
const HOSTING: u128 = 5;
const FEES_NONE: u128 = 6;

#[tokio::test]
async fn statements_match_hand_computed_figures() {
    let (_db, ledger) = setup(WriteMode::Batched).await;
    let mut fees = account(FEES_CA, USD, AccountKind::Revenue, 0);
    fees.jurisdiction = Some("US-CA".into());
    create(
        &ledger,
        &[
            account(CASH, USD, AccountKind::Asset, 0),
            account(PAYABLE, USD, AccountKind::Liability, 0),
            account(EQUITY, USD, AccountKind::Equity, 0),
            fees,
            account(HOSTING, USD, AccountKind::Expense, 0),
            account(FEES_NONE, USD, AccountKind::Revenue, 0),
        ],
    )
    .await;
    ledger.set_tax_rate("US-CA", 0, 725).await.unwrap();
    let t = |id, dr, cr, amount| transfer(id, dr, cr, amount);
    ledger
        .create_transfer(&t(1, CASH, EQUITY, 10_000))
        .await
        .unwrap();
    ledger
        .create_transfer(&t(2, CASH, PAYABLE, 5_000))
        .await
        .unwrap();
    let fee1 = ledger
        .create_transfer(&t(3, PAYABLE, FEES_CA, 300))
        .await
        .unwrap();
    ledger
        .create_transfer(&t(4, HOSTING, CASH, 120))
        .await
        .unwrap();
    ledger
        .create_transfer(&NewTransfer {
            flags: tf::PENDING,
            ..t(5, CASH, PAYABLE, 999)
        })
        .await
        .unwrap(); // pending: in no report
    let cut = ledger
        .create_transfer(&t(6, PAYABLE, FEES_NONE, 40))
        .await
        .unwrap()
        .timestamp;
    ledger.set_tax_rate("US-CA", cut, 1_000).await.unwrap();
    ledger
        .create_transfer(&t(7, PAYABLE, FEES_CA, 1_234))
        .await
        .unwrap();
    ledger
        .create_transfer(&t(8, FEES_CA, PAYABLE, 34))
        .await
        .unwrap(); // refund of a fee

    let tb = ledger.trial_balance(USD, None).await.unwrap();
    assert!(tb.is_balanced());
    // debits: cash 15 000, payable 300+40+1 234, hosting 120, fees_ca 34
    assert_eq!((tb.total_debits, tb.total_credits), (16_728, 16_728));
    let line = |id| tb.lines.iter().find(|l| l.account == id).unwrap().clone();
    assert_eq!(
        (line(CASH).debits, line(CASH).credits, line(CASH).balance),
        (15_000, 120, 14_880)
    );
    assert_eq!(line(PAYABLE).balance, 5_000 + 34 - 300 - 40 - 1_234);

    let bs = ledger.balance_sheet(USD, None).await.unwrap();
    assert_eq!(bs.total_assets, 14_880);
    assert_eq!(bs.total_liabilities, 3_460);
    // revenue 300 + 40 + 1 234 − 34 = 1 540, expenses 120
    assert_eq!(bs.retained_earnings, 1_420);
    assert_eq!(bs.total_equity, 11_420);
    assert!(bs.is_balanced());

    let is = ledger.income_statement(USD, 0, None).await.unwrap();
    assert_eq!(
        (is.total_revenue, is.total_expenses, is.net_income),
        (1_540, 120, 1_420)
    );
    // Period from the rate change on: only fee 7, refund 8 and fee 6 (at `cut`).
    let is = ledger.income_statement(USD, cut, None).await.unwrap();
    assert_eq!(is.total_revenue, 40 + 1_234 - 34);
    let before = ledger.income_statement(USD, 0, Some(cut)).await.unwrap();
    assert_eq!(before.total_revenue, 300);

    let tax = ledger.tax_report(USD, 0, None).await.unwrap();
    // 300 × 7.25% = 21.75 → 22; (1 234 − 34) × 10% = 120; no-jurisdiction revenue untaxed.
    let lines: Vec<_> = tax
        .lines
        .iter()
        .map(|l| (l.jurisdiction.clone(), l.rate_bps, l.fee_revenue, l.tax))
        .collect();
    assert_eq!(
        lines,
        vec![
            (Some("US-CA".to_string()), Some(725), 300, 22),
            (Some("US-CA".to_string()), Some(1_000), 1_200, 120),
            (None, None, 40, 0),
        ]
    );
    assert_eq!(tax.total_tax, 142);

    let st = ledger.account_statement(CASH, 0, None).await.unwrap();
    assert_eq!(st.opening_balance, 0);
    let running: Vec<i128> = st.lines.iter().map(|l| l.balance).collect();
    assert_eq!(running, vec![10_000, 15_000, 14_880]);
    assert_eq!(st.closing_balance, 14_880);
    let st = ledger.account_statement(PAYABLE, cut, None).await.unwrap();
    assert_eq!(st.opening_balance, 5_000 - 300);
    assert_eq!(st.closing_balance, 5_000 - 300 - 40 - 1_234 + 34);
    assert_eq!(st.lines.len(), 3);

    // As-of filter: before the first fee only the two funding transfers count.
    let early = ledger
        .trial_balance(USD, Some(fee1.timestamp))
        .await
        .unwrap();
    assert_eq!(early.total_debits, 15_000);
}
