use advancia_ledger::{
    AccountError, AccountKind, ExternalRef, LedgerError, NewTransfer, TransferError, WriteMode,
    account_flags as af, transfer_flags as tf,
};

use crate::common::*;

const A: u128 = 10;
const B: u128 = 11;
const C: u128 = 12;
const S: u128 = 20; // SOL ledger

async fn basic(mode: WriteMode) -> (advancia_test_support::TestDb, advancia_ledger::Ledger) {
    let (db, ledger) = setup(mode).await;
    create(
        &ledger,
        &[
            account(A, USD, AccountKind::Asset, 0),
            account(B, USD, AccountKind::Liability, 0),
            account(
                C,
                USD,
                AccountKind::Asset,
                af::DEBITS_MUST_NOT_EXCEED_CREDITS,
            ),
            account(S, SOL, AccountKind::Asset, 0),
        ],
    )
    .await;
    (db, ledger)
}

#[tokio::test]
async fn account_errors_are_specific_and_creation_is_idempotent() {
    let (_db, ledger) = basic(WriteMode::Batched).await;
    let original = ledger.account(A).await.unwrap().unwrap();
    let mut changed = account(A, USD, AccountKind::Asset, 0);
    changed.owner.id = "someone-else".into();
    let both = af::DEBITS_MUST_NOT_EXCEED_CREDITS | af::CREDITS_MUST_NOT_EXCEED_DEBITS;
    let mut no_owner = account(40, USD, AccountKind::Asset, 0);
    no_owner.owner.id.clear();
    let results = ledger
        .create_accounts(&[
            account(A, USD, AccountKind::Asset, 0),
            changed,
            account(0, USD, AccountKind::Asset, 0),
            account(u128::MAX, USD, AccountKind::Asset, 0),
            account(41, USD, AccountKind::Asset, af::CLOSED),
            account(42, USD, AccountKind::Asset, both),
            account(43, 0, AccountKind::Asset, 0),
            account(44, 99, AccountKind::Asset, 0),
            no_owner,
        ])
        .await
        .unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &original);
    let errors: Vec<AccountError> = results[1..]
        .iter()
        .map(|r| r.clone().unwrap_err())
        .collect();
    assert_eq!(
        errors,
        vec![
            AccountError::ExistsWithDifferentFields,
            AccountError::IdMustNotBeZero,
            AccountError::IdMustNotBeIntMax,
            AccountError::ReservedFlag,
            AccountError::FlagsAreMutuallyExclusive,
            AccountError::LedgerMustNotBeZero,
            AccountError::LedgerNotFound,
            AccountError::OwnerIdMustNotBeEmpty,
        ]
    );
    assert!(ledger.account(44).await.unwrap().is_none());
}

async fn transfer_errors(mode: WriteMode) {
    let (_db, ledger) = basic(mode).await;
    ledger.close_account(B).await.unwrap();
    let ext = |sig: &str| {
        Some(ExternalRef {
            chain: "solana".into(),
            signature: sig.into(),
            ix_index: 0,
        })
    };
    ledger
        .create_transfer(&NewTransfer {
            external_ref: ext("sig-1"),
            ..transfer(1, A, C, 5)
        })
        .await
        .unwrap();
    let cases: Vec<(NewTransfer, TransferError)> = vec![
        (transfer(0, A, C, 1), TransferError::IdMustNotBeZero),
        (
            transfer(u128::MAX, A, C, 1),
            TransferError::IdMustNotBeIntMax,
        ),
        (
            NewTransfer {
                flags: tf::EXPIRED,
                ..transfer(100, A, C, 1)
            },
            TransferError::ReservedFlag,
        ),
        (
            NewTransfer {
                flags: tf::PENDING | tf::POST_PENDING,
                ..transfer(101, A, C, 1)
            },
            TransferError::FlagsAreMutuallyExclusive,
        ),
        (
            transfer(102, 0, C, 1),
            TransferError::DebitAccountIdMustNotBeZero,
        ),
        (
            transfer(103, A, 0, 1),
            TransferError::CreditAccountIdMustNotBeZero,
        ),
        (
            transfer(104, A, A, 1),
            TransferError::AccountsMustBeDifferent,
        ),
        (
            NewTransfer {
                pending_id: 1,
                ..transfer(105, A, C, 1)
            },
            TransferError::PendingIdMustBeZero,
        ),
        (
            NewTransfer {
                timeout: 5,
                ..transfer(106, A, C, 1)
            },
            TransferError::TimeoutReservedForPendingTransfer,
        ),
        (transfer(107, A, C, 0), TransferError::AmountMustNotBeZero),
        (
            NewTransfer {
                ledger: 0,
                ..transfer(108, A, C, 1)
            },
            TransferError::LedgerMustNotBeZero,
        ),
        (
            NewTransfer {
                code: 0,
                ..transfer(109, A, C, 1)
            },
            TransferError::CodeMustNotBeZero,
        ),
        (
            transfer(110, 999, C, 1),
            TransferError::DebitAccountNotFound,
        ),
        (
            transfer(111, A, 999, 1),
            TransferError::CreditAccountNotFound,
        ),
        (
            transfer(112, A, S, 1),
            TransferError::AccountsMustHaveTheSameLedger,
        ),
        (
            NewTransfer {
                ledger: SOL,
                ..transfer(113, A, C, 1)
            },
            TransferError::TransferMustHaveTheSameLedgerAsAccounts,
        ),
        (transfer(114, B, A, 1), TransferError::DebitAccountClosed),
        (transfer(115, A, B, 1), TransferError::CreditAccountClosed),
        // C holds 5 in credits and may not go below zero.
        (transfer(116, C, A, 6), TransferError::ExceedsCredits),
        (
            NewTransfer {
                external_ref: ext("sig-1"),
                ..transfer(117, A, C, 1)
            },
            TransferError::ExternalRefExists,
        ),
        (
            NewTransfer {
                external_ref: ext(""),
                ..transfer(118, A, C, 1)
            },
            TransferError::ExternalRefInvalid,
        ),
        (
            transfer(1, A, C, 6),
            TransferError::ExistsWithDifferentFields,
        ),
        (
            NewTransfer {
                flags: tf::POST_PENDING,
                ..transfer(119, 0, 0, 0)
            },
            TransferError::PendingIdMustNotBeZero,
        ),
        (
            NewTransfer {
                flags: tf::POST_PENDING,
                pending_id: 120,
                ..transfer(120, 0, 0, 0)
            },
            TransferError::PendingIdMustBeDifferent,
        ),
        (
            NewTransfer {
                flags: tf::VOID_PENDING,
                pending_id: 777,
                ..transfer(121, 0, 0, 0)
            },
            TransferError::PendingTransferNotFound,
        ),
        (
            NewTransfer {
                flags: tf::POST_PENDING,
                pending_id: 1,
                ..transfer(122, 0, 0, 0)
            },
            TransferError::PendingTransferNotPending,
        ),
    ];
    let (batch, expected): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
    let results = ledger.create_transfers(&batch).await.unwrap();
    let got: Vec<TransferError> = results.into_iter().map(|r| r.unwrap_err()).collect();
    assert_eq!(got, expected);
    // Nothing but the first transfer moved money.
    let c = ledger.balance(C).await.unwrap().unwrap();
    assert_eq!((c.credits_posted, c.debits_posted), (5, 0));
    let found = ledger
        .lookup_by_external_ref("solana", "sig-1", 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, 1);
    assert!(
        ledger
            .lookup_by_external_ref("solana", "sig-1", 1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        ledger
            .rebuild_balances(false)
            .await
            .unwrap()
            .is_consistent()
    );
}

#[tokio::test]
async fn every_transfer_error_batched() {
    transfer_errors(WriteMode::Batched).await;
}

#[tokio::test]
async fn every_transfer_error_per_request() {
    transfer_errors(WriteMode::PerRequest).await;
}

#[tokio::test]
async fn idempotent_retries_apply_once() {
    let (_db, ledger) = basic(WriteMode::Batched).await;
    let t = transfer(1, A, B, 250);
    let first = ledger.create_transfer(&t).await.unwrap();
    // Retried alone, retried twice in one batch, and retried after other activity.
    let again = ledger.create_transfer(&t).await.unwrap();
    let batch = ledger
        .create_transfers(&[t.clone(), t.clone()])
        .await
        .unwrap();
    ledger.create_transfer(&transfer(2, B, A, 1)).await.unwrap();
    let later = ledger.create_transfer(&t).await.unwrap();
    for r in [
        again,
        batch[0].clone().unwrap(),
        batch[1].clone().unwrap(),
        later,
    ] {
        assert_eq!(r, first);
    }
    let a = ledger.balance(A).await.unwrap().unwrap();
    assert_eq!((a.debits_posted, a.credits_posted), (250, 1));
    let conflict = ledger
        .create_transfer(&NewTransfer {
            code: 2,
            ..t.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(
        conflict,
        LedgerError::Transfer(TransferError::ExistsWithDifferentFields)
    ));
    // Same id, same body within one batch as a new transfer: first applies, second echoes.
    let dup = ledger
        .create_transfers(&[
            transfer(3, A, B, 7),
            transfer(3, A, B, 7),
            transfer(3, A, B, 8),
        ])
        .await
        .unwrap();
    assert_eq!(dup[0], dup[1]);
    assert_eq!(dup[2], Err(TransferError::ExistsWithDifferentFields));
    assert_eq!(ledger.balance(A).await.unwrap().unwrap().debits_posted, 257);
}

#[tokio::test]
async fn linked_chains_commit_all_or_none() {
    let (_db, ledger) = basic(WriteMode::Batched).await;
    let linked = |t: NewTransfer| NewTransfer {
        flags: t.flags | tf::LINKED,
        ..t
    };
    let results = ledger
        .create_transfers(&[
            linked(transfer(1, A, C, 100)),
            linked(transfer(2, C, B, 60)),
            transfer(3, C, B, 60), // C would be at -20: fails the chain
            transfer(4, A, B, 9),  // independent, applies
            linked(transfer(5, A, B, 1)),
            transfer(6, A, B, 2), // chain 5-6 commits
            linked(transfer(7, A, B, 3)),
            linked(transfer(8, A, B, 4)), // batch ends inside the chain
        ])
        .await
        .unwrap();
    assert_eq!(results[0], Err(TransferError::LinkedEventFailed));
    assert_eq!(results[1], Err(TransferError::LinkedEventFailed));
    assert_eq!(results[2], Err(TransferError::ExceedsCredits));
    assert_eq!(results[3].as_ref().unwrap().id, 4);
    assert_eq!(results[4].as_ref().unwrap().id, 5);
    assert_eq!(results[5].as_ref().unwrap().id, 6);
    assert_eq!(results[6], Err(TransferError::LinkedEventFailed));
    assert_eq!(results[7], Err(TransferError::LinkedEventChainOpen));
    for id in [1, 2, 3, 7, 8] {
        assert!(
            ledger.transfer(id).await.unwrap().is_none(),
            "transfer {id}"
        );
    }
    let c = ledger.balance(C).await.unwrap().unwrap();
    assert_eq!((c.debits_posted, c.credits_posted), (0, 0));
    assert_eq!(ledger.balance(A).await.unwrap().unwrap().debits_posted, 12);
    // The failed ids are free: the corrected chain now applies.
    let ok = ledger
        .create_transfers(&[linked(transfer(1, A, C, 100)), transfer(2, C, B, 60)])
        .await
        .unwrap();
    assert!(ok.iter().all(Result::is_ok));
    assert!(ledger.verify_audit_chain().await.unwrap().is_intact());
}

#[tokio::test]
async fn credit_limit_and_closing() {
    let (_db, ledger) = basic(WriteMode::Batched).await;
    let lim = 50;
    create(
        &ledger,
        &[account(
            lim,
            USD,
            AccountKind::Liability,
            af::CREDITS_MUST_NOT_EXCEED_DEBITS,
        )],
    )
    .await;
    ledger
        .create_transfer(&transfer(1, lim, A, 10))
        .await
        .unwrap();
    ledger
        .create_transfer(&transfer(2, A, lim, 10))
        .await
        .unwrap();
    let over = ledger
        .create_transfer(&transfer(3, A, lim, 1))
        .await
        .unwrap_err();
    assert!(matches!(
        over,
        LedgerError::Transfer(TransferError::ExceedsDebits)
    ));
    // Pending amounts block closing; a closed account rejects new transfers.
    ledger
        .create_transfer(&NewTransfer {
            flags: tf::PENDING,
            ..transfer(4, A, C, 5)
        })
        .await
        .unwrap();
    assert!(matches!(
        ledger.close_account(C).await.unwrap_err(),
        LedgerError::AccountHasPendingBalance(C)
    ));
    assert!(matches!(
        ledger.close_account(999).await.unwrap_err(),
        LedgerError::AccountNotFound(999)
    ));
    let closed = ledger.close_account(A).await;
    assert!(matches!(
        closed,
        Err(LedgerError::AccountHasPendingBalance(A))
    ));
    ledger.void_pending(5, 4).await.unwrap();
    assert!(ledger.close_account(A).await.unwrap().is_closed());
    let rejected = ledger
        .create_transfer(&transfer(6, A, C, 1))
        .await
        .unwrap_err();
    assert!(matches!(
        rejected,
        LedgerError::Transfer(TransferError::DebitAccountClosed)
    ));
}

#[tokio::test]
async fn retry_after_state_moved_returns_original() {
    let (_db, ledger) = basic(WriteMode::Batched).await;
    ledger
        .create_transfer(&transfer(1, A, C, 10))
        .await
        .unwrap();
    let drain = ledger
        .create_transfer(&transfer(2, C, B, 10))
        .await
        .unwrap();
    // Re-validating now would fail with ExceedsCredits: the retry must echo the original,
    // alone and inside a batch next to a new transfer.
    assert_eq!(
        ledger
            .create_transfer(&transfer(2, C, B, 10))
            .await
            .unwrap(),
        drain
    );
    let r = ledger
        .create_transfers(&[transfer(3, A, B, 1), transfer(2, C, B, 10)])
        .await
        .unwrap();
    assert_eq!(r[1].as_ref().unwrap(), &drain);
    assert_eq!(r[0].as_ref().unwrap().id, 3);
    let c = ledger.balance(C).await.unwrap().unwrap();
    assert_eq!((c.debits_posted, c.credits_posted), (10, 10));
}

/// The writer streams a batch's rows into COPY while validating it. A stored id that fails
/// re-validation is found only afterwards, so the batch is re-run in a fresh transaction:
/// the rows streamed by the first pass (several COPY messages' worth) must not survive it.
#[tokio::test]
async fn rerun_after_streamed_rows_applies_each_transfer_once() {
    let (_db, ledger) = basic(WriteMode::Batched).await;
    ledger
        .create_transfer(&transfer(1, A, C, 10))
        .await
        .unwrap();
    let drain = ledger
        .create_transfer(&transfer(2, C, B, 10))
        .await
        .unwrap();
    // 800 new transfers (well over one 64 KiB COPY message), then the retry of 2, which
    // would now fail with ExceedsCredits.
    let mut batch: Vec<_> = (0..800).map(|i| transfer(100 + i, A, B, 1)).collect();
    batch.push(transfer(2, C, B, 10));
    let r = ledger.create_transfers(&batch).await.unwrap();
    assert_eq!(r.len(), 801);
    for (i, t) in r[..800].iter().enumerate() {
        assert_eq!(t.as_ref().unwrap().id, 100 + i as u128);
    }
    assert_eq!(r[800].as_ref().unwrap(), &drain);
    let b = ledger.balance(B).await.unwrap().unwrap();
    assert_eq!(b.credits_posted, 800 + 10);
    let a = ledger.balance(A).await.unwrap().unwrap();
    assert_eq!(a.debits_posted, 800 + 10);
    assert!(
        ledger
            .rebuild_balances(false)
            .await
            .unwrap()
            .is_consistent()
    );
    let audit = ledger.verify_audit_chain().await.unwrap();
    assert!(audit.is_intact(), "{audit:?}");
    // Accounts A, B, C, S, then transfers 1, 2 and the 800.
    assert_eq!(audit.head_seq, 4 + 2 + 800);
}

/// Amounts cross binary COPY as base-10000 `numeric` digits: every digit-boundary case
/// must read back exactly, through the ledger and as Postgres's own decimal text.
#[tokio::test]
async fn amounts_round_trip_exactly_through_binary_copy() {
    let (db, ledger) = setup(WriteMode::Batched).await;
    let amounts: [u128; 9] = [
        1,
        9_999,
        10_000,
        10_001,
        100_000_000,
        1_000_000_000_000_000_000,
        12_345_678_901_234_567_890_123_456_789,
        10u128.pow(38),
        u128::MAX,
    ];
    // One account pair per amount, so no balance overflows u128.
    let mut accounts = Vec::new();
    for i in 0..amounts.len() as u128 {
        accounts.push(account(100 + 2 * i, USD, AccountKind::Asset, 0));
        accounts.push(account(101 + 2 * i, USD, AccountKind::Liability, 0));
    }
    create(&ledger, &accounts).await;
    let transfers: Vec<NewTransfer> = amounts
        .iter()
        .enumerate()
        .map(|(i, &a)| transfer(500 + i as u128, 100 + 2 * i as u128, 101 + 2 * i as u128, a))
        .collect();
    for r in ledger.create_transfers(&transfers).await.unwrap() {
        r.unwrap();
    }
    for (i, &a) in amounts.iter().enumerate() {
        let id = 500 + i as u128;
        assert_eq!(ledger.transfer(id).await.unwrap().unwrap().amount, a);
        let text: String =
            sqlx::query_scalar("SELECT amount::text FROM ledger.transfers WHERE id = $1")
                .bind(uuid::Uuid::from_u128(id))
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(text, a.to_string());
        let balance = ledger.balance(101 + 2 * i as u128).await.unwrap().unwrap();
        assert_eq!(balance.credits_posted, a);
    }
    assert!(ledger.verify_audit_chain().await.unwrap().is_intact());
}
