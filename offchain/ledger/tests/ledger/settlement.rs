use advancia_ledger::merkle::{self, Hasher, MerkleTree};
use advancia_ledger::{AccountKind, WriteMode};

use crate::common::*;

#[tokio::test]
async fn batches_roots_and_proofs() {
    let (_db, ledger) = setup(WriteMode::Batched).await;
    create(
        &ledger,
        &[
            account(1, USD, AccountKind::Asset, 0),
            account(2, USD, AccountKind::Liability, 0),
            account(3, SOL, AccountKind::Asset, 0),
            account(4, SOL, AccountKind::Liability, 0),
        ],
    )
    .await;
    assert!(ledger.close_settlement_batch(10).await.unwrap().is_none());
    let mut created = Vec::new();
    for i in 1..=5u128 {
        let t = if i == 4 {
            advancia_ledger::NewTransfer {
                ledger: SOL,
                ..transfer(i, 3, 4, 1_000)
            }
        } else {
            transfer(i, 1, 2, i)
        };
        created.push(ledger.create_transfer(&t).await.unwrap());
    }
    let b1 = ledger.close_settlement_batch(3).await.unwrap().unwrap();
    let b2 = ledger.close_settlement_batch(3).await.unwrap().unwrap();
    assert!(ledger.close_settlement_batch(3).await.unwrap().is_none());
    assert_eq!((b1.batch_number, b1.entry_count, b1.depth), (1, 3, 2));
    assert_eq!((b2.batch_number, b2.entry_count, b2.depth), (2, 2, 1));
    assert_eq!(b2.first_seq, b1.last_seq + 1);
    assert_eq!(b1.totals.get(&USD).map(String::as_str), Some("6"));
    assert_eq!(b2.totals.get(&USD).map(String::as_str), Some("5"));
    assert_eq!(b2.totals.get(&SOL).map(String::as_str), Some("1000"));
    assert_eq!(ledger.settlement_batch(2).await.unwrap().unwrap(), b2);

    // Root recomputed independently from the leaves, per decision 0002.
    let mut h = Hasher::new().unwrap();
    let leaves: Vec<_> = created[..3].iter().map(|t| h.leaf(t).unwrap()).collect();
    let l01 = h.node(&leaves[0], &leaves[1]).unwrap();
    let l23 = h.node(&leaves[2], &merkle::ZERO).unwrap();
    assert_eq!(hex::encode(h.node(&l01, &l23).unwrap()), b1.root);

    for t in &created {
        let p = ledger.settlement_proof(t.id).await.unwrap().unwrap();
        assert!(p.verify().unwrap(), "proof of {}", t.id);
        assert_eq!(p.batch_number, if t.id <= 3 { 1 } else { 2 });
    }
    let p = ledger.settlement_proof(3).await.unwrap().unwrap();
    assert_eq!((p.index, p.siblings.len()), (2, 2));
    let (root, leaf, siblings) = p.decode().unwrap();
    let check = |leaf: &[u8; 32], index: u64, siblings: &[[u8; 32]], count: u64| {
        merkle::verify_proof(
            &mut Hasher::new().unwrap(),
            &root,
            leaf,
            index,
            siblings,
            count,
        )
        .unwrap()
    };
    assert!(check(&leaf, 2, &siblings, 3));
    // Wrong leaf, wrong index, tampered sibling, truncated proof, index beyond count.
    let other = h.leaf(&created[0]).unwrap();
    assert!(!check(&other, 2, &siblings, 3));
    assert!(!check(&leaf, 0, &siblings, 3));
    let mut bad = siblings.clone();
    bad[1][31] ^= 1;
    assert!(!check(&leaf, 2, &bad, 3));
    assert!(!check(&leaf, 2, &siblings[..1], 3));
    assert!(!check(&leaf, 3, &siblings, 3));
    // Unsettled or unknown transfers have no proof.
    ledger.create_transfer(&transfer(6, 1, 2, 1)).await.unwrap();
    assert!(ledger.settlement_proof(6).await.unwrap().is_none());
    assert!(ledger.settlement_proof(999).await.unwrap().is_none());
}

#[test]
fn three_leaf_test_vector() {
    // Leaves 1, 2, 3 (32-byte big-endian): the vector in docs/decisions/0007.
    let mut h = Hasher::new().unwrap();
    let leaf = |v: u8| {
        let mut n = [0u8; 32];
        n[31] = v;
        n
    };
    let tree = MerkleTree::build(&mut h, vec![leaf(1), leaf(2), leaf(3)]).unwrap();
    let left = h.node(&leaf(1), &leaf(2)).unwrap();
    let right = h.node(&leaf(3), &merkle::ZERO).unwrap();
    let expected = h.node(&left, &right).unwrap();
    assert_eq!(tree.root(), expected);
    assert_eq!(
        hex::encode(tree.root()),
        include_str!("three_leaf_root.txt").trim()
    );
    let single = MerkleTree::build(&mut h, vec![leaf(9)]).unwrap();
    assert_eq!((single.root(), single.depth()), (leaf(9), 0));
    assert!(MerkleTree::build(&mut h, vec![]).is_err());
}
