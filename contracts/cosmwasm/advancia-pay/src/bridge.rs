//! The bridge inbox's signature scheme. Validators sign
//! `sha256(canonical_encoding(message, dest_chain, contract))` with secp256k1 (ECDSA, 64-byte
//! `r || s`); the contract checks each with `deps.api.secp256k1_verify`.
//!
//! Canonical encoding (version 1), every variable-length field prefixed by its length as a
//! big-endian u32 (so no two different messages encode alike):
//!
//! ```text
//! "advancia-pay/bridge/v1"            domain tag (raw bytes, fixed)
//! len | source_chain                  chain id the message comes from
//! len | dest_chain                    chain id of this chain (env.block.chain_id)
//! len | contract                      this contract's address (bech32 string)
//! set_version                         u64 big-endian
//! len | id                            message id (replay key)
//! len | payload                       opaque bytes
//! ```

use sha2::{Digest, Sha256};

use crate::msg::BridgeMessage;

pub const DOMAIN_TAG: &[u8] = b"advancia-pay/bridge/v1";

pub fn canonical_encoding(message: &BridgeMessage, dest_chain: &str, contract: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        DOMAIN_TAG.len()
            + 5 * 4
            + 8
            + message.source_chain.len()
            + dest_chain.len()
            + contract.len()
            + message.id.len()
            + message.payload.len(),
    );
    out.extend_from_slice(DOMAIN_TAG);
    put(&mut out, message.source_chain.as_bytes());
    put(&mut out, dest_chain.as_bytes());
    put(&mut out, contract.as_bytes());
    out.extend_from_slice(&message.set_version.to_be_bytes());
    put(&mut out, message.id.as_bytes());
    put(&mut out, message.payload.as_slice());
    out
}

/// The 32 bytes each validator signs.
pub fn signing_digest(message: &BridgeMessage, dest_chain: &str, contract: &str) -> [u8; 32] {
    Sha256::digest(canonical_encoding(message, dest_chain, contract)).into()
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    // Fields are bounded far below 4 GiB by message size limits; saturate rather than wrap.
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosmwasm_std::Binary;

    #[test]
    fn encoding_layout_is_length_prefixed_fields_in_order() {
        let message = BridgeMessage {
            id: "m1".into(),
            source_chain: "sol".into(),
            set_version: 7,
            payload: Binary::from(vec![0xAA, 0xBB]),
        };
        let got = canonical_encoding(&message, "cw", "c");
        let mut want = b"advancia-pay/bridge/v1".to_vec();
        want.extend_from_slice(&[0, 0, 0, 3]);
        want.extend_from_slice(b"sol");
        want.extend_from_slice(&[0, 0, 0, 2]);
        want.extend_from_slice(b"cw");
        want.extend_from_slice(&[0, 0, 0, 1]);
        want.extend_from_slice(b"c");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend_from_slice(&[0, 0, 0, 2]);
        want.extend_from_slice(b"m1");
        want.extend_from_slice(&[0, 0, 0, 2, 0xAA, 0xBB]);
        assert_eq!(got, want);
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_digest() {
        let a = BridgeMessage {
            id: "ab".into(),
            source_chain: "x".into(),
            set_version: 1,
            payload: Binary::default(),
        };
        let b = BridgeMessage {
            id: "b".into(),
            source_chain: "xa".into(),
            ..a.clone()
        };
        assert_ne!(signing_digest(&a, "d", "c"), signing_digest(&b, "d", "c"));
    }
}
