use advancia_pay_cosmwasm::ContractError;
use advancia_pay_cosmwasm::msg::{ConfigResponse, ExecuteMsg, QueryMsg};
use advancia_pay_cosmwasm::state::{AssetInfo, AssetTotal, MAX_BATCH_ASSETS, SettlementBatch};
use cosmwasm_std::{HexBinary, Uint128};

use super::harness::*;

fn commit(n: u64, entries: u64, totals: Vec<AssetTotal>) -> ExecuteMsg {
    ExecuteMsg::CommitBatch {
        batch_number: n,
        root: HexBinary::from(&[n as u8; 32]),
        entry_count: entries,
        totals,
    }
}

fn uatom(amount: u128) -> AssetTotal {
    AssetTotal {
        asset: AssetInfo::Native {
            denom: DENOM.into(),
        },
        amount: Uint128::new(amount),
    }
}

#[test]
fn batches_commit_in_strict_sequence() {
    let mut s = Suite::bare();
    let settlement = s.settlement.clone();
    let res = s.exec_ok(&settlement, &commit(1, 5, vec![uatom(1_234)]));
    for (key, want) in [
        ("action", "commit_batch".to_owned()),
        ("batch_number", "1".to_owned()),
        ("root", "01".repeat(32)),
        ("entry_count", "5".to_owned()),
        ("depth", "3".to_owned()),
        ("totals", "native:uatom=1234".to_owned()),
    ] {
        assert_eq!(s.attr(&res, key), Some(want), "attribute {key}");
    }
    assert_err(
        s.exec(&settlement, &commit(1, 5, vec![]), &[]),
        ContractError::BatchOutOfSequence {
            expected: 2,
            got: 1,
        },
    );
    assert_err(
        s.exec(&settlement, &commit(3, 5, vec![]), &[]),
        ContractError::BatchOutOfSequence {
            expected: 2,
            got: 3,
        },
    );
    s.exec_ok(&settlement, &commit(2, 1, vec![]));
    let c: ConfigResponse = s.query(&QueryMsg::Config {});
    assert_eq!(c.last_batch_number, 2);
    let b: Option<SettlementBatch> = s.query(&QueryMsg::Batch { batch_number: 1 });
    let b = b.unwrap();
    assert_eq!((b.entry_count, b.depth), (5, 3));
    assert_eq!(b.totals, vec![uatom(1_234)]);
    let list: Vec<SettlementBatch> = s.query(&QueryMsg::Batches {
        start_after: Some(1),
        limit: None,
    });
    assert_eq!(list.iter().map(|b| b.batch_number).collect::<Vec<_>>(), [2]);
}

#[test]
fn batch_rules_and_authorization() {
    let mut s = Suite::bare();
    let (settlement, admin) = (s.settlement.clone(), s.admin.clone());
    assert_err(
        s.exec(&admin, &commit(1, 5, vec![]), &[]),
        ContractError::unauthorized(admin.as_str(), "commit settlement batches"),
    );
    assert_err(
        s.exec(&settlement, &commit(1, 0, vec![]), &[]),
        ContractError::EmptyBatch,
    );
    assert_err(
        s.exec(
            &settlement,
            &commit(1, 5, vec![uatom(1); MAX_BATCH_ASSETS + 1]),
            &[],
        ),
        ContractError::TooManyAssetTotals {
            got: MAX_BATCH_ASSETS + 1,
            max: MAX_BATCH_ASSETS,
        },
    );
    assert_err(
        s.exec(&settlement, &commit(1, (1 << 32) + 1, vec![]), &[]),
        ContractError::TreeTooDeep {
            entry_count: (1 << 32) + 1,
            max_depth: 32,
        },
    );
    let short_root = ExecuteMsg::CommitBatch {
        batch_number: 1,
        root: HexBinary::from(&[1u8; 31]),
        entry_count: 1,
        totals: vec![],
    };
    assert_err(
        s.exec(&settlement, &short_root, &[]),
        ContractError::InvalidRoot { len: 31 },
    );
    // 2^32 entries is the deepest tree allowed.
    s.exec_ok(&settlement, &commit(1, 1 << 32, vec![]));
}
