use advancia_pay::client::{self, AdvanciaEvent};
use advancia_pay::error::AdvanciaError;
use advancia_pay::events::BatchCommitted;
use advancia_pay::merkle;
use advancia_pay::state::{AssetTotal, Config, NATIVE_SOL, SettlementBatch};
use anchor_lang::error::ErrorCode;
use anchor_lang::prelude::*;
use ark_bn254::Fr;
use light_poseidon::{Poseidon, PoseidonBytesHasher};
use solana_signer::Signer;

use crate::harness::*;

/// The off-chain construction (ADR 0002) written directly against light-poseidon, independent
/// of the program's `solana_poseidon` path.
fn light_hash(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    Poseidon::<Fr>::new_circom(2)
        .unwrap()
        .hash_bytes_be(&[l, r])
        .unwrap()
}

pub(crate) fn leaf(i: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[24..].copy_from_slice(&(i * 7919 + 1).to_be_bytes());
    out
}

/// Returns (root, proofs) for `leaves`, zero-padding the right side to a power of two.
pub(crate) fn tree(leaves: &[[u8; 32]]) -> ([u8; 32], Vec<Vec<[u8; 32]>>) {
    let depth = merkle::tree_depth(leaves.len() as u64);
    let mut level: Vec<[u8; 32]> = leaves.to_vec();
    level.resize(1 << depth, [0u8; 32]);
    let mut proofs = vec![Vec::new(); leaves.len()];
    let mut positions: Vec<usize> = (0..leaves.len()).collect();
    while level.len() > 1 {
        for (proof, pos) in proofs.iter_mut().zip(positions.iter_mut()) {
            proof.push(level[*pos ^ 1]);
            *pos /= 2;
        }
        level = level.chunks(2).map(|p| light_hash(&p[0], &p[1])).collect();
    }
    (level[0], proofs)
}

#[test]
fn syscall_path_matches_light_poseidon() {
    let leaves: Vec<[u8; 32]> = (0..5).map(leaf).collect();
    let (root, proofs) = tree(&leaves);
    // A fixed, known vector: poseidon(1, 2) with circom parameters.
    let mut one = [0u8; 32];
    one[31] = 1;
    let mut two = [0u8; 32];
    two[31] = 2;
    assert_eq!(
        merkle::hash_pair(&one, &two).unwrap(),
        [
            0x11, 0x5c, 0xc0, 0xf5, 0xe7, 0xd6, 0x90, 0x41, 0x3d, 0xf6, 0x4c, 0x6b, 0x96, 0x62,
            0xe9, 0xcf, 0x2a, 0x36, 0x17, 0xf2, 0x74, 0x32, 0x45, 0x51, 0x9e, 0x19, 0x60, 0x7a,
            0x44, 0x17, 0x18, 0x9a
        ]
    );
    assert_eq!(
        merkle::hash_pair(&one, &two).unwrap(),
        light_hash(&one, &two)
    );
    for (i, proof) in proofs.iter().enumerate() {
        assert_eq!(
            merkle::compute_root(&leaves[i], i as u64, 5, proof),
            Ok(root)
        );
    }
    assert_eq!(merkle::tree_depth(1), 0);
    assert_eq!(merkle::tree_depth(2), 1);
    assert_eq!(merkle::tree_depth(5), 3);
    assert_eq!(merkle::tree_depth(8), 3);
    assert_eq!(merkle::tree_depth(9), 4);
    // A value not below the modulus is rejected, never reduced.
    assert_eq!(
        merkle::hash_pair(&[0xff; 32], &one),
        Err(merkle::MerkleError::InvalidFieldElement)
    );
}

#[tokio::test]
async fn commit_in_sequence_and_verify_proofs() {
    let mut env = Env::new().await;
    let settle = env.settlement.insecure_clone();
    let leaves: Vec<[u8; 32]> = (0..5).map(leaf).collect();
    let (root, proofs) = tree(&leaves);
    let totals = vec![AssetTotal {
        mint: NATIVE_SOL,
        amount: 12_345,
    }];

    // Batch numbers start at 1.
    let res = env
        .send(
            &[client::commit_batch(
                settle.pubkey(),
                2,
                root,
                5,
                totals.clone(),
            )],
            &[&settle],
        )
        .await;
    assert_program_err(res, AdvanciaError::BatchOutOfSequence);

    let events = env
        .send_events(
            &[client::commit_batch(
                settle.pubkey(),
                1,
                root,
                5,
                totals.clone(),
            )],
            &[&settle],
        )
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![AdvanciaEvent::BatchCommitted(BatchCommitted {
            batch_number: 1,
            root,
            entry_count: 5,
            totals: totals.clone()
        })]
    );
    let batch: SettlementBatch = env.account(&client::batch_pda(1)).await;
    assert_eq!((batch.root, batch.entry_count, batch.depth), (root, 5, 3));
    assert_eq!(batch.totals, totals);
    let config: Config = env.account(&client::config_pda()).await;
    assert_eq!(config.last_batch_number, 1);

    for (i, proof) in proofs.iter().enumerate() {
        env.send(
            &[client::verify_inclusion(
                1,
                leaves[i],
                i as u64,
                proof.clone(),
            )],
            &[],
        )
        .await
        .unwrap();
    }
    // Wrong leaf, wrong index, index past the end, wrong length, non-field value.
    let res = env
        .send(
            &[client::verify_inclusion(1, leaf(99), 0, proofs[0].clone())],
            &[],
        )
        .await;
    assert_program_err(res, AdvanciaError::ProofMismatch);
    let res = env
        .send(
            &[client::verify_inclusion(1, leaves[0], 1, proofs[0].clone())],
            &[],
        )
        .await;
    assert_program_err(res, AdvanciaError::ProofMismatch);
    let res = env
        .send(
            &[client::verify_inclusion(1, leaves[4], 5, proofs[4].clone())],
            &[],
        )
        .await;
    assert_program_err(res, AdvanciaError::IndexOutOfRange);
    let res = env
        .send(
            &[client::verify_inclusion(
                1,
                leaves[0],
                0,
                proofs[0][..2].to_vec(),
            )],
            &[],
        )
        .await;
    assert_program_err(res, AdvanciaError::ProofLengthMismatch);
    let res = env
        .send(
            &[client::verify_inclusion(
                1,
                [0xff; 32],
                0,
                proofs[0].clone(),
            )],
            &[],
        )
        .await;
    assert_program_err(res, AdvanciaError::InvalidFieldElement);
    // A proof against a batch that was never committed.
    let res = env
        .send(
            &[client::verify_inclusion(2, leaves[0], 0, proofs[0].clone())],
            &[],
        )
        .await;
    assert_anchor_err(res, ErrorCode::AccountNotInitialized);

    // Next batch: replaying 1 or skipping to 3 fails; 2 succeeds. One leaf: root = leaf.
    let res = env
        .send(
            &[client::commit_batch(
                settle.pubkey(),
                3,
                leaves[0],
                1,
                vec![],
            )],
            &[&settle],
        )
        .await;
    assert_program_err(res, AdvanciaError::BatchOutOfSequence);
    let res = env
        .send(
            &[client::commit_batch(
                settle.pubkey(),
                2,
                leaves[0],
                0,
                vec![],
            )],
            &[&settle],
        )
        .await;
    assert_program_err(res, AdvanciaError::EmptyBatch);
    env.send(
        &[client::commit_batch(
            settle.pubkey(),
            2,
            leaves[0],
            1,
            vec![],
        )],
        &[&settle],
    )
    .await
    .unwrap();
    env.send(&[client::verify_inclusion(2, leaves[0], 0, vec![])], &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn commit_authority_and_limits() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let res = env
        .send(
            &[client::commit_batch(admin.pubkey(), 1, leaf(1), 1, vec![])],
            &[&admin],
        )
        .await;
    assert_program_err(res, AdvanciaError::Unauthorized);

    let settle = env.settlement.insecure_clone();
    let totals = vec![
        AssetTotal {
            mint: NATIVE_SOL,
            amount: 1
        };
        5
    ];
    let res = env
        .send(
            &[client::commit_batch(settle.pubkey(), 1, leaf(1), 1, totals)],
            &[&settle],
        )
        .await;
    assert_program_err(res, AdvanciaError::TooManyAssetTotals);

    // A batch PDA for another number (wrong seeds).
    let mut ix = client::commit_batch(settle.pubkey(), 1, leaf(1), 1, vec![]);
    ix.accounts[1].pubkey = client::batch_pda(7);
    assert_anchor_err(
        env.send(&[ix], &[&settle]).await,
        ErrorCode::ConstraintSeeds,
    );

    // Missing signature.
    let mut ix = client::commit_batch(settle.pubkey(), 1, leaf(1), 1, vec![]);
    ix.accounts[2].is_signer = false;
    assert_anchor_err(env.send(&[ix], &[]).await, ErrorCode::AccountNotSigner);
    let config: Config = env.account(&client::config_pda()).await;
    assert_eq!(config.last_batch_number, 0);
}
