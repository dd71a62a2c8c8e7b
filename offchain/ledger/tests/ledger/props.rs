//! Property test: random batches of transfers, two-phase operations, linked chains and
//! retries. After each case: balances equal an independent model fed only by the results
//! the ledger returned, equal the rebuilt projection of the log, debits equal credits per
//! ledger, limits hold, and retries of successful transfers echo them without re-applying.

use std::collections::HashMap;

use advancia_ledger::{
    AccountKind, Balance, Ledger, NewTransfer, Transfer, TransferError, WriteMode,
    account_flags as af, transfer_flags as tf,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::common::*;

#[derive(Debug, Clone)]
enum Op {
    Transfer {
        dr: usize,
        cr: usize,
        amount: u128,
        pending: bool,
        linked: bool,
    },
    Post {
        which: usize,
        amount: u128,
    },
    Void {
        which: usize,
    },
    Retry {
        which: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..4usize, 1..60u128, any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(dr, cr, amount, pending, linked)| Op::Transfer { dr, cr, amount, pending, linked }),
        2 => (any::<usize>(), 0..40u128).prop_map(|(which, amount)| Op::Post { which, amount }),
        1 => any::<usize>().prop_map(|which| Op::Void { which }),
        1 => any::<usize>().prop_map(|which| Op::Retry { which }),
    ]
}

const FLAGS: [u32; 4] = [
    0,
    0,
    af::DEBITS_MUST_NOT_EXCEED_CREDITS,
    af::CREDITS_MUST_NOT_EXCEED_DEBITS,
];

struct Model {
    balances: HashMap<u128, Balance>,
    applied: HashMap<u128, Transfer>,
}

impl Model {
    fn apply(&mut self, t: &Transfer, pendings: &HashMap<u128, Transfer>) {
        if self.applied.insert(t.id, t.clone()).is_some() {
            return; // an idempotent echo: no new effect
        }
        let (dr, cr) = (t.debit_account_id, t.credit_account_id);
        if t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0 {
            let p = &pendings[&t.pending_id];
            self.balances.entry(dr).or_default().debits_pending -= p.amount;
            self.balances.entry(cr).or_default().credits_pending -= p.amount;
        }
        if t.flags & tf::PENDING != 0 {
            self.balances.entry(dr).or_default().debits_pending += t.amount;
            self.balances.entry(cr).or_default().credits_pending += t.amount;
        } else if t.flags & tf::VOID_PENDING == 0 {
            self.balances.entry(dr).or_default().debits_posted += t.amount;
            self.balances.entry(cr).or_default().credits_posted += t.amount;
        }
    }
}

async fn run_case(ledger: &Ledger, base: u128, batches: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    let ids: Vec<u128> = (0..4).map(|i| base + i).collect();
    let accounts: Vec<_> = (0..4)
        .map(|i| account(ids[i], USD, AccountKind::Asset, FLAGS[i]))
        .collect();
    create(ledger, &accounts).await;
    // Seed credits so limited accounts can move money at all.
    let seed = vec![
        transfer(base + 100, ids[0], ids[2], 100),
        transfer(base + 101, ids[3], ids[1], 100),
    ];
    let mut submitted: Vec<(NewTransfer, Result<Transfer, TransferError>)> = Vec::new();
    let mut model = Model {
        balances: HashMap::new(),
        applied: HashMap::new(),
    };
    let mut pendings: HashMap<u128, Transfer> = HashMap::new();
    let mut next_id = base + 1_000;
    let pending_batches = std::iter::once(None).chain(batches.into_iter().map(Some));
    let mut seed = Some(seed);
    for ops in pending_batches {
        // Built just before submission so posts, voids and retries can target anything
        // submitted so far (including failed and non-pending transfers).
        let batch: Vec<NewTransfer> = match ops {
            None => seed.take().unwrap_or_default(),
            Some(ops) => ops
                .into_iter()
                .filter_map(|op| {
                    next_id += 1;
                    let target = |which: usize| submitted[which % submitted.len()].0.clone();
                    match op {
                        Op::Transfer {
                            dr,
                            cr,
                            amount,
                            pending,
                            linked,
                        } => Some(NewTransfer {
                            flags: if pending { tf::PENDING } else { 0 }
                                | if linked { tf::LINKED } else { 0 },
                            ..transfer(next_id, ids[dr], ids[cr], amount)
                        }),
                        _ if submitted.is_empty() => None,
                        Op::Post { which, amount } => Some(NewTransfer {
                            id: next_id,
                            pending_id: target(which).id,
                            amount,
                            flags: tf::POST_PENDING,
                            ..NewTransfer::default()
                        }),
                        Op::Void { which } => Some(NewTransfer {
                            id: next_id,
                            pending_id: target(which).id,
                            flags: tf::VOID_PENDING,
                            ..NewTransfer::default()
                        }),
                        Op::Retry { which } => Some(target(which)),
                    }
                })
                .collect(),
        };
        if batch.is_empty() {
            continue;
        }
        let results = ledger.create_transfers(&batch).await.unwrap();
        prop_assert_eq!(results.len(), batch.len());
        for (t, r) in batch.into_iter().zip(results) {
            let chain_failed = matches!(
                r,
                Err(TransferError::LinkedEventFailed | TransferError::LinkedEventChainOpen)
            );
            if let Some((_, Ok(original))) = submitted.iter().find(|(s, _)| *s == t)
                && !chain_failed
            {
                // Retry of a success: the same answer, and (checked below) no second effect.
                prop_assert_eq!(r.as_ref().ok(), Some(original));
            }
            if let Ok(tr) = &r {
                if tr.flags & tf::PENDING != 0 {
                    pendings.insert(tr.id, tr.clone());
                }
                model.apply(tr, &pendings);
            }
            submitted.push((t, r));
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let b = ledger.balance(*id).await.unwrap().unwrap();
        prop_assert_eq!(
            b,
            model.balances.get(id).copied().unwrap_or_default(),
            "account {}",
            i
        );
        if FLAGS[i] == af::DEBITS_MUST_NOT_EXCEED_CREDITS {
            prop_assert!(b.debits_pending + b.debits_posted <= b.credits_posted);
        }
        if FLAGS[i] == af::CREDITS_MUST_NOT_EXCEED_DEBITS {
            prop_assert!(b.credits_pending + b.credits_posted <= b.debits_posted);
        }
    }
    for (id, t) in &model.applied {
        let stored = ledger.transfer(*id).await.unwrap();
        prop_assert_eq!(stored.as_ref(), Some(t));
    }
    let rebuilt = ledger.rebuild_balances(false).await.unwrap();
    prop_assert!(rebuilt.is_consistent(), "{:?}", rebuilt);
    Ok(())
}

#[test]
fn random_operation_sequences_keep_invariants() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (db, ledger) = rt.block_on(setup(WriteMode::Batched));
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU64::new(0);
    let strategy = prop::collection::vec(prop::collection::vec(op(), 1..6), 1..8);
    runner
        .run(&strategy, |batches| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            rt.block_on(run_case(&ledger, u128::from(n) << 32, batches))
        })
        .unwrap();
    rt.block_on(async {
        let r = ledger.rebuild_balances(false).await.unwrap();
        assert!(r.is_consistent(), "{r:?}");
        assert!(!r.ledgers.is_empty());
        assert!(ledger.verify_audit_chain().await.unwrap().is_intact());
    });
    drop(db);
}
