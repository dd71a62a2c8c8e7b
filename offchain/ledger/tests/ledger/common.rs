//! Shared fixtures: a migrated test database, a ledger on it, and builders.

use advancia_ledger::{
    AccountKind, Ledger, LedgerConfig, LedgerDef, MIGRATIONS, NewAccount, NewTransfer, OwnerKind,
    OwnerRef, WriteMode,
};
use advancia_test_support::TestDb;

pub const USD: u32 = 1;
pub const SOL: u32 = 2;

pub async fn setup(mode: WriteMode) -> (TestDb, Ledger) {
    let db = TestDb::new(&[&MIGRATIONS]).await;
    let ledger = Ledger::new(
        db.pool.clone(),
        LedgerConfig {
            mode,
            ..LedgerConfig::default()
        },
    );
    ledger
        .create_ledger(&LedgerDef {
            id: USD,
            code: "USD".into(),
            scale: 2,
        })
        .await
        .unwrap();
    ledger
        .create_ledger(&LedgerDef {
            id: SOL,
            code: "SOL".into(),
            scale: 9,
        })
        .await
        .unwrap();
    (db, ledger)
}

pub fn account(id: u128, ledger: u32, kind: AccountKind, flags: u32) -> NewAccount {
    NewAccount {
        id,
        ledger,
        kind,
        owner: OwnerRef {
            kind: OwnerKind::Facility,
            id: format!("facility-{id}"),
        },
        flags,
        jurisdiction: None,
        user_data: 0,
    }
}

pub fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> NewTransfer {
    NewTransfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        ledger: USD,
        code: 1,
        ..NewTransfer::default()
    }
}

pub async fn create(ledger: &Ledger, accounts: &[NewAccount]) {
    for r in ledger.create_accounts(accounts).await.unwrap() {
        r.unwrap();
    }
}

/// Runs SQL as the superuser with the append-only triggers disabled (tampering).
pub async fn tamper(db: &TestDb, sql: &str) {
    use advancia_test_support::sqlx::Executor;
    let mut conn = db.pool.acquire().await.unwrap();
    conn.execute(
        format!(
            "SET session_replication_role = replica; {sql}; SET session_replication_role = origin;"
        )
        .as_str(),
    )
    .await
    .unwrap();
}
