use std::time::Duration;

use advancia_ledger::{
    AccountKind, Balance, LedgerError, NewTransfer, TransferError, WriteMode, account_flags as af,
    expiry_id, transfer_flags as tf,
};

use crate::common::*;

const A: u128 = 1;
const B: u128 = 2;

fn pending(id: u128, amount: u128, timeout: u32) -> NewTransfer {
    NewTransfer {
        flags: tf::PENDING,
        timeout,
        ..transfer(id, A, B, amount)
    }
}

fn bal(dp: u128, dpo: u128, cp: u128, cpo: u128) -> Balance {
    Balance {
        debits_pending: dp,
        debits_posted: dpo,
        credits_pending: cp,
        credits_posted: cpo,
    }
}

fn err(e: LedgerError) -> TransferError {
    match e {
        LedgerError::Transfer(t) => t,
        other => panic!("expected a transfer error, got {other}"),
    }
}

async fn fixture() -> (advancia_test_support::TestDb, advancia_ledger::Ledger) {
    let (db, ledger) = setup(WriteMode::Batched).await;
    create(
        &ledger,
        &[
            account(A, USD, AccountKind::Asset, 0),
            account(B, USD, AccountKind::Liability, 0),
        ],
    )
    .await;
    (db, ledger)
}

#[tokio::test]
async fn post_full_partial_and_void() {
    let (_db, ledger) = fixture().await;
    ledger.create_transfer(&pending(1, 100, 0)).await.unwrap();
    ledger.create_transfer(&pending(2, 100, 0)).await.unwrap();
    ledger.create_transfer(&pending(3, 100, 0)).await.unwrap();
    assert_eq!(ledger.balance(A).await.unwrap().unwrap(), bal(300, 0, 0, 0));
    assert_eq!(ledger.balance(B).await.unwrap().unwrap(), bal(0, 0, 300, 0));

    let full = ledger.post_pending(11, 1, None).await.unwrap();
    assert_eq!(
        (full.amount, full.debit_account_id, full.pending_id),
        (100, A, 1)
    );
    let partial = ledger.post_pending(12, 2, Some(30)).await.unwrap();
    assert_eq!(partial.amount, 30);
    let void = ledger.void_pending(13, 3).await.unwrap();
    assert_eq!(void.amount, 100);
    // Partial post releases the whole reservation and posts only 30.
    assert_eq!(ledger.balance(A).await.unwrap().unwrap(), bal(0, 130, 0, 0));
    assert_eq!(ledger.balance(B).await.unwrap().unwrap(), bal(0, 0, 0, 130));

    assert_eq!(
        err(ledger.post_pending(14, 1, None).await.unwrap_err()),
        TransferError::PendingTransferAlreadyPosted
    );
    assert_eq!(
        err(ledger.void_pending(15, 2).await.unwrap_err()),
        TransferError::PendingTransferAlreadyPosted
    );
    assert_eq!(
        err(ledger.post_pending(16, 3, None).await.unwrap_err()),
        TransferError::PendingTransferAlreadyVoided
    );
    // Retrying the post itself is idempotent.
    assert_eq!(ledger.post_pending(12, 2, Some(30)).await.unwrap(), partial);

    ledger.create_transfer(&pending(4, 50, 0)).await.unwrap();
    let cases = [
        (
            NewTransfer {
                flags: tf::POST_PENDING,
                pending_id: 4,
                amount: 51,
                ..NewTransfer::default()
            },
            TransferError::ExceedsPendingTransferAmount,
        ),
        (
            NewTransfer {
                flags: tf::VOID_PENDING,
                pending_id: 4,
                amount: 49,
                ..NewTransfer::default()
            },
            TransferError::PendingTransferHasDifferentAmount,
        ),
        (
            NewTransfer {
                flags: tf::POST_PENDING,
                pending_id: 4,
                debit_account_id: B,
                ..NewTransfer::default()
            },
            TransferError::PendingTransferHasDifferentDebitAccountId,
        ),
        (
            NewTransfer {
                flags: tf::POST_PENDING,
                pending_id: 4,
                credit_account_id: A,
                ..NewTransfer::default()
            },
            TransferError::PendingTransferHasDifferentCreditAccountId,
        ),
        (
            NewTransfer {
                flags: tf::POST_PENDING,
                pending_id: 4,
                ledger: SOL,
                ..NewTransfer::default()
            },
            TransferError::PendingTransferHasDifferentLedger,
        ),
        (
            NewTransfer {
                flags: tf::POST_PENDING,
                pending_id: 4,
                code: 9,
                ..NewTransfer::default()
            },
            TransferError::PendingTransferHasDifferentCode,
        ),
        (
            NewTransfer {
                flags: tf::POST_PENDING,
                pending_id: 4,
                timeout: 1,
                ..NewTransfer::default()
            },
            TransferError::TimeoutReservedForPendingTransfer,
        ),
    ];
    for (i, (mut t, expected)) in cases.into_iter().enumerate() {
        t.id = 100 + i as u128;
        assert_eq!(err(ledger.create_transfer(&t).await.unwrap_err()), expected);
    }
    assert_eq!(
        ledger.balance(A).await.unwrap().unwrap(),
        bal(50, 130, 0, 0)
    );
    // Pending and its post in one batch.
    let r = ledger
        .create_transfers(&[
            pending(5, 7, 0),
            NewTransfer {
                id: 6,
                flags: tf::POST_PENDING,
                pending_id: 5,
                ..NewTransfer::default()
            },
        ])
        .await
        .unwrap();
    assert_eq!(r[1].as_ref().unwrap().amount, 7);
    assert!(
        ledger
            .rebuild_balances(false)
            .await
            .unwrap()
            .is_consistent()
    );
}

#[tokio::test]
async fn pending_amounts_count_against_limits() {
    let (_db, ledger) = fixture().await;
    let lim = 9;
    create(
        &ledger,
        &[account(
            lim,
            USD,
            AccountKind::Asset,
            af::DEBITS_MUST_NOT_EXCEED_CREDITS,
        )],
    )
    .await;
    ledger
        .create_transfer(&transfer(1, A, lim, 100))
        .await
        .unwrap();
    let p = NewTransfer {
        flags: tf::PENDING,
        ..transfer(2, lim, B, 80)
    };
    ledger.create_transfer(&p).await.unwrap();
    let second = NewTransfer {
        flags: tf::PENDING,
        ..transfer(3, lim, B, 21)
    };
    assert_eq!(
        err(ledger.create_transfer(&second).await.unwrap_err()),
        TransferError::ExceedsCredits
    );
    assert_eq!(
        err(ledger
            .create_transfer(&transfer(4, lim, B, 21))
            .await
            .unwrap_err()),
        TransferError::ExceedsCredits
    );
    ledger.void_pending(5, 2).await.unwrap();
    ledger
        .create_transfer(&transfer(4, lim, B, 21))
        .await
        .unwrap();
}

#[tokio::test]
async fn timeouts_expire_and_block_post_and_void() {
    let (_db, ledger) = fixture().await;
    ledger.create_transfer(&pending(1, 40, 1)).await.unwrap();
    ledger.create_transfer(&pending(2, 60, 0)).await.unwrap();
    let p3 = ledger.create_transfer(&pending(3, 5, 1)).await.unwrap();
    assert!(p3.expires_at.unwrap() >= p3.timestamp + 1_000_000_000);
    // Not yet due: expiry does nothing, post works.
    assert!(ledger.expire_pending(100).await.unwrap().is_empty());
    ledger.post_pending(30, 3, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Due but not yet processed: post and void already fail with the specific error.
    assert_eq!(
        err(ledger.post_pending(10, 1, None).await.unwrap_err()),
        TransferError::PendingTransferExpired
    );
    assert_eq!(
        err(ledger.void_pending(11, 1).await.unwrap_err()),
        TransferError::PendingTransferExpired
    );
    let expired = ledger.expire_pending(100).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, expiry_id(1));
    assert_eq!(expired[0].flags, tf::VOID_PENDING | tf::EXPIRED);
    assert_eq!(ledger.balance(A).await.unwrap().unwrap(), bal(60, 5, 0, 0));
    assert_eq!(
        err(ledger.post_pending(12, 1, None).await.unwrap_err()),
        TransferError::PendingTransferExpired
    );
    assert!(ledger.expire_pending(100).await.unwrap().is_empty());
    assert!(
        ledger
            .rebuild_balances(false)
            .await
            .unwrap()
            .is_consistent()
    );
    assert!(ledger.verify_audit_chain().await.unwrap().is_intact());
}

#[tokio::test]
async fn background_expiry_releases_reservations() {
    let (_db, ledger) = fixture().await;
    let task = ledger.spawn_expiry_task(Duration::from_millis(100));
    ledger.create_transfer(&pending(1, 40, 1)).await.unwrap();
    let mut released = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if ledger.balance(A).await.unwrap().unwrap().debits_pending == 0 {
            released = true;
            break;
        }
    }
    task.abort();
    assert!(released, "reservation not released by the background task");
    assert!(ledger.transfer(expiry_id(1)).await.unwrap().is_some());
}
