//! Settlement Merkle tree per `docs/decisions/0002-settlement-merkle-tree.md`: Poseidon
//! (BN254, x^5, circom parameters), 32-byte big-endian field elements, binary tree padded
//! on the right with zero leaves, proofs as sibling hashes from the leaf level up.
//!
//! Leaf encoding of a transfer (8 field elements, each < 2^128 except e8 < 2^248):
//! `e1 id, e2 debit_account_id, e3 credit_account_id, e4 amount, e5 pending_id (0 if none),
//!  e6 ledger·2^64 + code·2^32 + flags, e7 timestamp (ns), e8 external-ref digest`
//! where the digest is the first 31 bytes of sha256(len‖chain‖len‖signature‖ix_index)
//! (u32 big-endian lengths and index) read as a big-endian integer, or 0 without a ref.

use ark_bn254::Fr;
use light_poseidon::{Poseidon, PoseidonBytesHasher};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::types::Transfer;

pub type Node = [u8; 32];
pub const ZERO: Node = [0u8; 32];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("poseidon: {0}")]
    Poseidon(String),
    #[error("an empty batch has no root")]
    Empty,
    #[error("leaf index {index} out of range for {count} entries")]
    IndexOutOfRange { index: u64, count: u64 },
}

fn be(v: u128) -> Node {
    let mut out = ZERO;
    out[16..].copy_from_slice(&v.to_be_bytes());
    out
}

/// Reusable hashers (parameter setup is not free).
pub struct Hasher {
    two: Poseidon<Fr>,
    leaf: Poseidon<Fr>,
}

impl Hasher {
    pub fn new() -> Result<Self, MerkleError> {
        let mk =
            |n| Poseidon::<Fr>::new_circom(n).map_err(|e| MerkleError::Poseidon(e.to_string()));
        Ok(Self {
            two: mk(2)?,
            leaf: mk(8)?,
        })
    }

    /// Inner node. Inputs at or above the modulus are rejected, never reduced.
    pub fn node(&mut self, left: &Node, right: &Node) -> Result<Node, MerkleError> {
        self.two
            .hash_bytes_be(&[left, right])
            .map_err(|e| MerkleError::Poseidon(e.to_string()))
    }

    pub fn leaf(&mut self, t: &Transfer) -> Result<Node, MerkleError> {
        let elements = leaf_elements(t);
        let refs: Vec<&[u8]> = elements.iter().map(|e| e.as_slice()).collect();
        self.leaf
            .hash_bytes_be(&refs)
            .map_err(|e| MerkleError::Poseidon(e.to_string()))
    }
}

/// The canonical field elements of a transfer's leaf (see module docs).
pub fn leaf_elements(t: &Transfer) -> [Node; 8] {
    let packed = (u128::from(t.ledger) << 64) | (u128::from(t.code) << 32) | u128::from(t.flags);
    let mut ext = ZERO;
    if let Some(r) = &t.external_ref {
        let mut h = Sha256::new();
        h.update(
            u32::try_from(r.chain.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        h.update(r.chain.as_bytes());
        h.update(
            u32::try_from(r.signature.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        h.update(r.signature.as_bytes());
        h.update(r.ix_index.to_be_bytes());
        let d = h.finalize();
        ext[1..].copy_from_slice(&d[..31]);
    }
    [
        be(t.id),
        be(t.debit_account_id),
        be(t.credit_account_id),
        be(t.amount),
        be(t.pending_id),
        be(packed),
        be(u128::from(t.timestamp)),
        ext,
    ]
}

/// `ceil(log2(n))`, 0 for one leaf.
pub fn depth(count: u64) -> u32 {
    if count <= 1 {
        0
    } else {
        64 - (count - 1).leading_zeros()
    }
}

/// A full tree over `leaves`; levels[0] are the (zero-padded) leaves, the last the root.
pub struct MerkleTree {
    levels: Vec<Vec<Node>>,
    count: u64,
}

impl MerkleTree {
    pub fn build(hasher: &mut Hasher, leaves: Vec<Node>) -> Result<Self, MerkleError> {
        if leaves.is_empty() {
            return Err(MerkleError::Empty);
        }
        let count = leaves.len() as u64;
        let width = 1usize << depth(count);
        let mut level = leaves;
        level.resize(width, ZERO);
        let mut levels = vec![level];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let prev = levels.last().map(Vec::as_slice).unwrap_or_default();
            let mut next = Vec::with_capacity(prev.len() / 2);
            for pair in prev.chunks_exact(2) {
                next.push(hasher.node(&pair[0], &pair[1])?);
            }
            levels.push(next);
        }
        Ok(Self { levels, count })
    }

    pub fn root(&self) -> Node {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or(ZERO)
    }

    pub fn depth(&self) -> u32 {
        depth(self.count)
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sibling hashes from the leaf level up.
    pub fn proof(&self, index: u64) -> Result<Vec<Node>, MerkleError> {
        if index >= self.count {
            return Err(MerkleError::IndexOutOfRange {
                index,
                count: self.count,
            });
        }
        let mut i = usize::try_from(index).map_err(|_| MerkleError::IndexOutOfRange {
            index,
            count: self.count,
        })?;
        let mut out = Vec::with_capacity(self.levels.len().saturating_sub(1));
        for level in &self.levels[..self.levels.len() - 1] {
            out.push(level[i ^ 1]);
            i /= 2;
        }
        Ok(out)
    }
}

/// Recomputes the root from `leaf` at `index` with `proof`, as the on-chain program does:
/// rejects `index >= count` and proofs whose length differs from the batch depth.
pub fn verify_proof(
    hasher: &mut Hasher,
    root: &Node,
    leaf: &Node,
    index: u64,
    proof: &[Node],
    count: u64,
) -> Result<bool, MerkleError> {
    if index >= count || proof.len() != depth(count) as usize {
        return Ok(false);
    }
    let mut node = *leaf;
    for (level, sibling) in proof.iter().enumerate() {
        node = if (index >> level) & 1 == 0 {
            hasher.node(&node, sibling)?
        } else {
            hasher.node(sibling, &node)?
        };
    }
    Ok(&node == root)
}

/// Proof serialised for APIs (hex strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HexProof {
    pub leaf: String,
    pub index: u64,
    pub siblings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_matches_ceil_log2() {
        assert_eq!([1, 2, 3, 4, 5, 8, 9].map(depth), [0, 1, 2, 2, 3, 3, 4]);
    }

    #[test]
    fn inputs_above_modulus_are_rejected() {
        let mut h = Hasher::new().unwrap();
        assert!(matches!(
            h.node(&[0xff; 32], &ZERO),
            Err(MerkleError::Poseidon(_))
        ));
    }

    #[test]
    fn poseidon_matches_circom_reference() {
        // circomlibjs poseidon([1, 2]) — the vector light-poseidon and solana-poseidon share.
        let mut h = Hasher::new().unwrap();
        let out = h.node(&be(1), &be(2)).unwrap();
        assert_eq!(
            hex::encode(out),
            "115cc0f5e7d690413df64c6b9662e9cf2a3617f2743245519e19607a4417189a"
        );
    }
}
