use std::time::Duration;

use advancia_ledger::{
    AccountKind, Ledger, LedgerConfig, TransferError, WriteMode, account_flags as af,
};

use crate::common::*;

const FUNDING: u128 = 1;
const WALLETS: [u128; 4] = [10, 11, 12, 13];
const SINK: u128 = 2;

/// Many writers (batched writer, several per-request handles, as if separate processes)
/// hammer limited wallets, including opposite-direction transfers between the same pair
/// (the classic deadlock shape). The limits must hold exactly and nothing may deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_writers_respect_limits_without_deadlock() {
    let (db, batched) = setup(WriteMode::Batched).await;
    let mut accounts = vec![
        account(FUNDING, USD, AccountKind::Equity, 0),
        account(SINK, USD, AccountKind::Liability, 0),
    ];
    for w in WALLETS {
        accounts.push(account(
            w,
            USD,
            AccountKind::Asset,
            af::DEBITS_MUST_NOT_EXCEED_CREDITS,
        ));
    }
    create(&batched, &accounts).await;
    for (i, w) in WALLETS.iter().enumerate() {
        batched
            .create_transfer(&transfer(1 + i as u128, FUNDING, *w, 100))
            .await
            .unwrap();
    }
    let per_request: Vec<Ledger> = (0..3)
        .map(|_| {
            Ledger::new(
                db.pool.clone(),
                LedgerConfig {
                    mode: WriteMode::PerRequest,
                    ..LedgerConfig::default()
                },
            )
        })
        .collect();

    let mut tasks = Vec::new();
    for task in 0..16u128 {
        let ledger = if task % 4 == 0 {
            batched.clone()
        } else {
            per_request[(task % 3) as usize].clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u32;
            for i in 0..15u128 {
                let id = 1_000 + task * 1_000 + i;
                let from = WALLETS[((task + i) % 4) as usize];
                let to = if i % 3 == 0 {
                    WALLETS[((task + i + 1) % 4) as usize]
                } else {
                    SINK
                };
                // Mixed: single transfers and small batches touching two wallets in
                // opposite orders.
                let batch = vec![
                    transfer(id, from, to, 3),
                    transfer(id + 500, WALLETS[((task + i + 2) % 4) as usize], from, 1),
                ];
                for r in ledger.create_transfers(&batch).await.unwrap() {
                    match r {
                        Ok(_) => ok += 1,
                        Err(TransferError::ExceedsCredits) => {}
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
            }
            ok
        }));
    }
    let all = async {
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap();
        }
        ok
    };
    let ok = tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("writers did not finish: deadlock or stall");
    assert!(ok > 0);

    let mut total_out = 0;
    for w in WALLETS {
        let b = batched.balance(w).await.unwrap().unwrap();
        assert!(
            b.debits_posted + b.debits_pending <= b.credits_posted,
            "wallet {w}: {b:?}"
        );
        total_out += b.credits_posted as i128 - b.debits_posted as i128;
    }
    let sink = batched.balance(SINK).await.unwrap().unwrap().credits_posted as i128;
    assert_eq!(total_out + sink, 400, "money created or destroyed");
    let rebuilt = batched.rebuild_balances(false).await.unwrap();
    assert!(rebuilt.is_consistent(), "{rebuilt:?}");
    assert!(batched.verify_audit_chain().await.unwrap().is_intact());
    // The wallets were drained until their limits stopped them.
    let drained: u128 = {
        let mut s = 0;
        for w in WALLETS {
            let b = batched.balance(w).await.unwrap().unwrap();
            s += b.credits_posted - b.debits_posted;
        }
        s
    };
    assert!(drained < 400, "limits were never reached: {drained}");
}
