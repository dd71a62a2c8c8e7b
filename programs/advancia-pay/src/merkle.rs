//! Inclusion-proof verification for settlement batches, per
//! `docs/decisions/0002-settlement-merkle-tree.md`: binary Poseidon (BN254, x^5, circom
//! parameters) tree, big-endian 32-byte field elements, zero-padded on the right.
//! On SBF `solana_poseidon` calls the `sol_poseidon` syscall; natively it runs light-poseidon.

use solana_poseidon::{Endianness, Parameters, hashv};

/// Reasons a proof cannot be checked or does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MerkleError {
    IndexOutOfRange,
    ProofLengthMismatch,
    /// An input (leaf or sibling) is not below the BN254 modulus.
    InvalidFieldElement,
}

/// `ceil(log2(n))`; depth 0 for a single leaf.
pub fn tree_depth(entry_count: u64) -> u8 {
    if entry_count <= 1 {
        0
    } else {
        // (n-1) has at most 64 significant bits, so this fits u8.
        (u64::BITS - (entry_count - 1).leading_zeros()) as u8
    }
}

/// Poseidon of two 32-byte big-endian field elements.
pub fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> Result<[u8; 32], MerkleError> {
    hashv(Parameters::Bn254X5, Endianness::BigEndian, &[left, right])
        .map(|h| h.to_bytes())
        .map_err(|_| MerkleError::InvalidFieldElement)
}

/// Recomputes the root from a leaf, its index and the siblings from the leaf level up.
pub fn compute_root(
    leaf: &[u8; 32],
    index: u64,
    entry_count: u64,
    proof: &[[u8; 32]],
) -> Result<[u8; 32], MerkleError> {
    if index >= entry_count {
        return Err(MerkleError::IndexOutOfRange);
    }
    if proof.len() != usize::from(tree_depth(entry_count)) {
        return Err(MerkleError::ProofLengthMismatch);
    }
    let mut node = *leaf;
    for (level, sibling) in proof.iter().enumerate() {
        // Bit `level` of the index is 0 when the running node is the left child.
        node = if (index >> level) & 1 == 0 {
            hash_pair(&node, sibling)?
        } else {
            hash_pair(sibling, &node)?
        };
    }
    Ok(node)
}
