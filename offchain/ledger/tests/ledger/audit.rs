use advancia_ledger::{AccountKind, BreakKind, WriteMode};
use advancia_test_support::{TestDb, sqlx};

use crate::common::*;

/// 2 accounts (seq 1, 2) then transfers 1..=6 at seq 3..=8.
async fn chain() -> (TestDb, advancia_ledger::Ledger) {
    let (db, ledger) = setup(WriteMode::Batched).await;
    create(
        &ledger,
        &[
            account(1, USD, AccountKind::Asset, 0),
            account(2, USD, AccountKind::Liability, 0),
        ],
    )
    .await;
    for i in 1..=6u128 {
        ledger
            .create_transfer(&transfer(i, 1, 2, 10 * i))
            .await
            .unwrap();
    }
    let r = ledger.verify_audit_chain().await.unwrap();
    assert!(r.is_intact(), "{r:?}");
    assert_eq!((r.entries_checked, r.head_seq), (8, 8));
    (db, ledger)
}

async fn broken_at(ledger: &advancia_ledger::Ledger) -> (u64, BreakKind) {
    let r = ledger.verify_audit_chain().await.unwrap();
    let b = r.first_break.expect("tampering went undetected");
    (b.seq, b.kind)
}

#[tokio::test]
async fn log_rejects_update_and_delete() {
    let (db, ledger) = chain().await;
    for sql in [
        "UPDATE ledger.transfers SET amount = 1 WHERE seq = 3",
        "DELETE FROM ledger.transfers WHERE seq = 3",
        "TRUNCATE ledger.transfers",
        "UPDATE ledger.accounts SET owner_id = 'x' WHERE seq = 1",
        "DELETE FROM ledger.accounts WHERE seq = 1",
    ] {
        let e = sqlx::query(sql).execute(&db.pool).await.unwrap_err();
        assert!(e.to_string().contains("ledger."), "{sql}: {e}");
    }
    assert!(ledger.verify_audit_chain().await.unwrap().is_intact());
}

#[tokio::test]
async fn altered_amount_is_detected() {
    let (db, ledger) = chain().await;
    tamper(
        &db,
        "UPDATE ledger.transfers SET amount = amount + 1 WHERE seq = 5",
    )
    .await;
    assert_eq!(broken_at(&ledger).await, (5, BreakKind::Altered));
}

#[tokio::test]
async fn altered_account_owner_is_detected() {
    let (db, ledger) = chain().await;
    tamper(
        &db,
        "UPDATE ledger.accounts SET owner_id = 'mallory' WHERE seq = 2",
    )
    .await;
    assert_eq!(broken_at(&ledger).await, (2, BreakKind::Altered));
}

#[tokio::test]
async fn forged_hash_is_detected() {
    let (db, ledger) = chain().await;
    tamper(
        &db,
        "UPDATE ledger.transfers SET hash = sha256('forged') WHERE seq = 4",
    )
    .await;
    assert_eq!(broken_at(&ledger).await, (4, BreakKind::Altered));
}

#[tokio::test]
async fn deleted_row_is_detected() {
    let (db, ledger) = chain().await;
    tamper(&db, "DELETE FROM ledger.transfers WHERE seq = 6").await;
    assert_eq!(broken_at(&ledger).await, (6, BreakKind::Deleted));
}

#[tokio::test]
async fn deleted_tail_is_detected() {
    let (db, ledger) = chain().await;
    tamper(&db, "DELETE FROM ledger.transfers WHERE seq >= 7").await;
    assert_eq!(broken_at(&ledger).await, (7, BreakKind::Deleted));
}

#[tokio::test]
async fn deleted_and_renumbered_is_detected() {
    let (db, ledger) = chain().await;
    tamper(
        &db,
        "DELETE FROM ledger.transfers WHERE seq = 5;
         UPDATE ledger.transfers SET seq = 1 - seq WHERE seq > 5;
         UPDATE ledger.transfers SET seq = -seq WHERE seq < 0;
         UPDATE ledger.chain_head SET last_seq = 7",
    )
    .await;
    assert_eq!(broken_at(&ledger).await, (5, BreakKind::Deleted));
}

#[tokio::test]
async fn swapped_rows_are_detected_as_reordered() {
    let (db, ledger) = chain().await;
    tamper(
        &db,
        "UPDATE ledger.transfers SET seq = -4 WHERE seq = 4;
         UPDATE ledger.transfers SET seq = 4 WHERE seq = 5;
         UPDATE ledger.transfers SET seq = 5 WHERE seq = -4",
    )
    .await;
    assert_eq!(broken_at(&ledger).await, (4, BreakKind::Reordered));
}

#[tokio::test]
async fn cli_verify_and_rebuild_exit_codes() {
    let (db, _ledger) = chain().await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_advancia-ledger"))
            .args(args)
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap()
    };
    let ok = run(&["verify"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(run(&["rebuild"]).status.success());

    tamper(
        &db,
        "UPDATE ledger.accounts SET debits_posted = 5 WHERE seq = 1",
    )
    .await;
    let diff = run(&["rebuild"]);
    assert_eq!(diff.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert_eq!(report["differences"][0]["stored"]["debits_posted"], "5");
    assert_eq!(report["differences"][0]["rebuilt"]["debits_posted"], "210");
    assert!(run(&["rebuild", "--apply"]).status.success());
    assert!(run(&["rebuild"]).status.success());

    tamper(&db, "UPDATE ledger.transfers SET code = 2 WHERE seq = 8").await;
    let bad = run(&["verify"]);
    assert_eq!(bad.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(report["first_break"]["seq"], 8);
    assert_eq!(report["first_break"]["kind"], "altered");
}

#[tokio::test]
async fn rebuild_recomputes_pending_and_posted() {
    let (db, ledger) = chain().await;
    let p = advancia_ledger::NewTransfer {
        flags: advancia_ledger::transfer_flags::PENDING,
        ..transfer(50, 2, 1, 7)
    };
    ledger.create_transfer(&p).await.unwrap();
    tamper(
        &db,
        "UPDATE ledger.accounts SET credits_pending = 0, credits_posted = 1 WHERE seq = 1",
    )
    .await;
    let r = ledger.rebuild_balances(false).await.unwrap();
    assert_eq!(r.differences.len(), 1);
    let d = &r.differences[0];
    assert_eq!(d.account, 1);
    assert_eq!((d.stored.credits_pending, d.stored.credits_posted), (0, 1));
    assert_eq!(
        (d.rebuilt.credits_pending, d.rebuilt.credits_posted),
        (7, 0)
    );
    assert_eq!(d.rebuilt.debits_posted, 210);
    assert!(!r.is_consistent());
    let fixed = ledger.rebuild_balances(true).await.unwrap();
    assert!(fixed.applied);
    let again = ledger.rebuild_balances(false).await.unwrap();
    assert!(again.is_consistent(), "{again:?}");
    assert_eq!(ledger.balance(1).await.unwrap().unwrap().credits_pending, 7);
}
