use advancia_ledger::{
    AccountKind, ExternalRef, NewTransfer, OnChainFact, ReconcileScope, WriteMode,
    transfer_flags as tf,
};

use crate::common::*;

const VAULT: u128 = 1;
const FACILITY: u128 = 2;

fn r(sig: &str, ix: u32) -> ExternalRef {
    ExternalRef {
        chain: "solana".into(),
        signature: sig.into(),
        ix_index: ix,
    }
}

fn fact(sig: &str, ix: u32, account: u128, amount: u128) -> OnChainFact {
    OnChainFact {
        external_ref: r(sig, ix),
        account,
        ledger: USD,
        amount,
    }
}

#[tokio::test]
async fn reports_missing_extra_and_mismatched() {
    let (_db, ledger) = setup(WriteMode::Batched).await;
    create(
        &ledger,
        &[
            account(VAULT, USD, AccountKind::Asset, 0),
            account(FACILITY, USD, AccountKind::Liability, 0),
        ],
    )
    .await;
    let with_ref = |id, amount, sig: &str, ix| NewTransfer {
        external_ref: Some(r(sig, ix)),
        ..transfer(id, VAULT, FACILITY, amount)
    };
    ledger
        .create_transfer(&with_ref(1, 100, "aa", 0))
        .await
        .unwrap();
    ledger
        .create_transfer(&with_ref(2, 200, "aa", 1))
        .await
        .unwrap();
    ledger
        .create_transfer(&with_ref(3, 300, "bb", 0))
        .await
        .unwrap(); // not on chain
    // A pending (unposted) transfer with a ref is not a posting: on chain it is missing.
    ledger
        .create_transfer(&NewTransfer {
            flags: tf::PENDING,
            ..with_ref(4, 50, "cc", 0)
        })
        .await
        .unwrap();
    ledger
        .create_transfer(&transfer(5, VAULT, FACILITY, 999))
        .await
        .unwrap(); // no ref: out of scope

    let facts = vec![
        fact("aa", 0, VAULT, 100),    // matches
        fact("aa", 1, FACILITY, 250), // amount differs
        fact("cc", 0, VAULT, 50),     // only pending in the ledger
        fact("dd", 3, VAULT, 70),     // unknown to the ledger
    ];
    let scope = ReconcileScope {
        chains: vec!["solana".into()],
        from: None,
        to: None,
    };
    let report = ledger.reconcile(&facts, &scope).await.unwrap();
    assert_eq!(report.matched, 1);
    assert_eq!(report.missing, vec![facts[2].clone(), facts[3].clone()]);
    assert_eq!(report.extra.len(), 1);
    assert_eq!(
        (report.extra[0].transfer_id, report.extra[0].amount),
        (3, 300)
    );
    assert_eq!(report.mismatched.len(), 1);
    let m = &report.mismatched[0];
    assert_eq!((m.transfer_id, m.fields.len()), (2, 1));
    assert_eq!(
        (
            m.fields[0].field.as_str(),
            m.fields[0].ledger.as_str(),
            m.fields[0].chain.as_str()
        ),
        ("amount", "200", "250")
    );
    // Per account: vault on chain 100 + 50 + 70 = 220; ledger postings with refs 600.
    let vault = report.accounts.iter().find(|a| a.account == VAULT).unwrap();
    assert_eq!(
        (vault.chain_total, vault.ledger_total, vault.difference),
        (220, 600, -380)
    );
    let facility = report
        .accounts
        .iter()
        .find(|a| a.account == FACILITY)
        .unwrap();
    assert_eq!(
        (
            facility.chain_total,
            facility.ledger_total,
            facility.difference
        ),
        (250, 600, -350)
    );
    assert!(!report.is_clean());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["accounts"][0]["difference"], "-380");

    // A clean reconciliation of exactly the ledger's postings.
    let clean = vec![
        fact("aa", 0, VAULT, 100),
        fact("aa", 1, VAULT, 200),
        fact("bb", 0, VAULT, 300),
    ];
    let report = ledger.reconcile(&clean, &scope).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.matched, 3);
    // Other chains are out of scope: nothing is extra.
    let other = ReconcileScope {
        chains: vec!["ethereum".into()],
        from: None,
        to: None,
    };
    assert!(ledger.reconcile(&[], &other).await.unwrap().is_clean());
}
