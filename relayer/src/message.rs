//! The bridge wire format in Rust: message id, EIP-712 attestation digest, signatures
//! (65 bytes r||s||v, low-s only) and their on-chain order (strictly ascending signer).

use alloy::primitives::{Address, B256, Signature, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::sol_types::SolValue;

use crate::keys::SigningKey;

pub use crate::contract::AdvanciaBridge::Message;

pub const EIP712_NAME: &str = "AdvanciaBridge";
pub const EIP712_VERSION: &str = "1";
pub const DOMAIN_TYPE: &str =
    "EIP712Domain(string name,string version,uint256 chainId,bytes32 salt)";
pub const ATTESTATION_TYPE: &str = "Attestation(bytes32 messageId,uint64 setVersion)";
/// secp256k1 n / 2: the largest s the destinations accept.
pub const HALF_CURVE_ORDER: U256 = U256::from_be_bytes([
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("signature is {0} bytes, not 65")]
    Length(usize),
    #[error("signature v = {0} (expected 0, 1, 27 or 28)")]
    BadV(u8),
    #[error("signature s is in the upper half of the curve order (malleable)")]
    HighS,
    #[error("signature does not recover to a public key")]
    Unrecoverable,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// `keccak256(abi.encode(originDomain, sequence, sender, destinationDomain, recipient, asset,
/// amount))`: seven static words, so the struct's ABI encoding is exactly that.
pub fn message_id(message: &Message) -> B256 {
    keccak256(message.abi_encode())
}

/// EIP-712 domain separator of the destination: chainId = destination domain, salt = the
/// destination contract (EVM address left-padded, or the Solana program id).
pub fn domain_separator(destination_domain: u32, destination_contract: B256) -> B256 {
    keccak256(
        (
            keccak256(DOMAIN_TYPE),
            keccak256(EIP712_NAME),
            keccak256(EIP712_VERSION),
            U256::from(destination_domain),
            destination_contract,
        )
            .abi_encode(),
    )
}

/// What validators sign: `keccak256(0x1901 || domainSeparator || hashStruct(Attestation))`.
pub fn attestation_digest(
    id: B256,
    destination_domain: u32,
    destination_contract: B256,
    set_version: u64,
) -> B256 {
    let struct_hash =
        keccak256((keccak256(ATTESTATION_TYPE), id, U256::from(set_version)).abi_encode());
    let mut preimage = Vec::with_capacity(66);
    preimage.extend_from_slice(&[0x19, 0x01]);
    preimage
        .extend_from_slice(domain_separator(destination_domain, destination_contract).as_slice());
    preimage.extend_from_slice(struct_hash.as_slice());
    keccak256(preimage)
}

/// The digest for `message` as delivered to `destination_contract` under `set_version`.
pub fn message_digest(message: &Message, destination_contract: B256, set_version: u64) -> B256 {
    attestation_digest(
        message_id(message),
        message.destinationDomain,
        destination_contract,
        set_version,
    )
}

/// An EVM address as a bytes32 word (12 zero bytes, then the address).
pub fn address_word(address: Address) -> B256 {
    address.into_word()
}

/// The address in a bytes32 word, if its top 12 bytes are zero.
pub fn word_address(word: B256) -> Option<Address> {
    word[..12]
        .iter()
        .all(|b| *b == 0)
        .then(|| Address::from_slice(&word[12..]))
}

/// Signs `digest` as r || s || v with v = 27/28 and s in the lower half.
pub fn sign(key: &SigningKey, digest: B256) -> Result<[u8; 65], SignatureError> {
    let signature = key
        .signer()
        .sign_hash_sync(&digest)
        .map_err(|e| SignatureError::Signing(e.to_string()))?;
    // k256 already signs low-s; normalizing keeps that true whatever the backend.
    let signature = signature.normalize_s().unwrap_or(signature);
    Ok(signature.as_bytes())
}

/// Recovers the signer of `digest`, with the destinations' rules: 65 bytes, v in {0,1,27,28},
/// low s.
pub fn recover(digest: B256, signature: &[u8]) -> Result<Address, SignatureError> {
    if signature.len() != 65 {
        return Err(SignatureError::Length(signature.len()));
    }
    let v = signature[64];
    let parity = match v {
        0 | 27 => false,
        1 | 28 => true,
        other => return Err(SignatureError::BadV(other)),
    };
    let r = U256::from_be_slice(&signature[..32]);
    let s = U256::from_be_slice(&signature[32..64]);
    if s > HALF_CURVE_ORDER {
        return Err(SignatureError::HighS);
    }
    Signature::new(r, s, parity)
        .recover_address_from_prehash(&digest)
        .map_err(|_| SignatureError::Unrecoverable)
}

/// The malleated twin of a signature (s' = n - s, v flipped): same signer, high s.
pub fn malleate(signature: &[u8; 65]) -> [u8; 65] {
    let order = HALF_CURVE_ORDER * U256::from(2u8) + U256::from(1u8);
    let s = U256::from_be_slice(&signature[32..64]);
    let mut out = *signature;
    out[32..64].copy_from_slice(&(order - s).to_be_bytes::<32>());
    out[64] = if signature[64] == 27 { 28 } else { 27 };
    out
}

/// Orders signatures by signer as `process` requires (strictly ascending; duplicates dropped)
/// and keeps the first `take`.
pub fn ordered_for_submission(
    mut signatures: Vec<(Address, Vec<u8>)>,
    take: usize,
) -> Vec<(Address, Vec<u8>)> {
    signatures.sort_by_key(|(signer, _)| *signer);
    signatures.dedup_by_key(|(signer, _)| *signer);
    signatures.truncate(take);
    signatures
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_b256(&B256::repeat_byte(byte)).unwrap()
    }

    fn sample() -> Message {
        Message {
            originDomain: 31337,
            sequence: 7,
            sender: B256::repeat_byte(0xaa),
            destinationDomain: 1_399_811_149,
            recipient: B256::repeat_byte(0xbb),
            asset: B256::ZERO,
            amount: U256::from(1_000_000u64),
        }
    }

    #[test]
    fn id_is_keccak_of_seven_words() {
        let m = sample();
        let encoded = m.abi_encode();
        assert_eq!(encoded.len(), 224);
        let mut manual = Vec::new();
        manual.extend_from_slice(&U256::from(31337u32).to_be_bytes::<32>());
        manual.extend_from_slice(&U256::from(7u64).to_be_bytes::<32>());
        manual.extend_from_slice(&[0xaa; 32]);
        manual.extend_from_slice(&U256::from(1_399_811_149u32).to_be_bytes::<32>());
        manual.extend_from_slice(&[0xbb; 32]);
        manual.extend_from_slice(&[0; 32]);
        manual.extend_from_slice(&U256::from(1_000_000u64).to_be_bytes::<32>());
        assert_eq!(message_id(&m), keccak256(manual));
    }

    #[test]
    fn sign_recovers_low_s_and_rejects_malleated_twin() {
        let k = key(1);
        let digest = message_digest(&sample(), B256::repeat_byte(0x11), 1);
        let sig = sign(&k, digest).unwrap();
        assert!(U256::from_be_slice(&sig[32..64]) <= HALF_CURVE_ORDER);
        assert_eq!(recover(digest, &sig).unwrap(), k.address());
        let mut zero_one = sig;
        zero_one[64] -= 27;
        assert_eq!(recover(digest, &zero_one).unwrap(), k.address());
        assert_eq!(recover(digest, &malleate(&sig)), Err(SignatureError::HighS));
        assert_eq!(recover(digest, &sig[..64]), Err(SignatureError::Length(64)));
        let mut bad_v = sig;
        bad_v[64] = 29;
        assert_eq!(recover(digest, &bad_v), Err(SignatureError::BadV(29)));
    }

    #[test]
    fn digest_depends_on_every_domain_input() {
        let m = sample();
        let base = message_digest(&m, B256::repeat_byte(0x11), 1);
        assert_ne!(base, message_digest(&m, B256::repeat_byte(0x12), 1));
        assert_ne!(base, message_digest(&m, B256::repeat_byte(0x11), 2));
        let mut other = m.clone();
        other.destinationDomain = 31338;
        assert_ne!(base, message_digest(&other, B256::repeat_byte(0x11), 1));
    }

    #[test]
    fn submission_order_is_ascending_unique_and_truncated() {
        let a = (Address::repeat_byte(3), vec![3]);
        let b = (Address::repeat_byte(1), vec![1]);
        let c = (Address::repeat_byte(2), vec![2]);
        let ordered = ordered_for_submission(vec![a.clone(), b.clone(), c.clone(), b.clone()], 2);
        assert_eq!(ordered, vec![b, c]);
    }

    #[test]
    fn word_address_round_trip() {
        let a = Address::repeat_byte(0x42);
        assert_eq!(word_address(address_word(a)), Some(a));
        assert_eq!(word_address(B256::repeat_byte(1)), None);
    }

    fn b(hex_str: &str) -> B256 {
        hex_str.parse().unwrap()
    }

    /// The shared vector of docs/decisions/0012-bridge.md (computed independently with
    /// eth-abi/eth-account; the Solana program checks the same values).
    #[test]
    fn adr_0012_shared_vectors() {
        let key1 = key(1);
        assert_eq!(
            key1.address(),
            "0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1"
                .parse::<Address>()
                .unwrap()
        );
        let evm_to_solana = Message {
            originDomain: 31337,
            sequence: 7,
            sender: b("0x00000000000000000000000070997970c51812dc3a010c7d01b50e0d17dc79c8"),
            destinationDomain: 1_399_811_149,
            recipient: B256::repeat_byte(0x11),
            asset: B256::repeat_byte(0x22),
            amount: U256::from(1_500_000u64),
        };
        let salt = b("0xd4aecac33065cc72b34ecb878a3cc4715afeba321dc768cbe5201ebccb884a21");
        assert_eq!(
            message_id(&evm_to_solana),
            b("0x725d5ee62bf3ed8aed4bcb1389df9ccde3d9a55bc3fc3eaa00df09a381c1a157")
        );
        assert_eq!(
            domain_separator(1_399_811_149, salt),
            b("0xc665a03121481f3a72d7192cc9a446fe142c73d6836601b9ba176978ef14e4d4")
        );
        let digest = message_digest(&evm_to_solana, salt, 1);
        assert_eq!(
            digest,
            b("0x64e6350dd8d8d62711390646b8df61d78ad3a1831b5f90d5ddc66382f772c009")
        );
        assert_eq!(
            hex::encode(sign(&key1, digest).unwrap()),
            "5c3010da7c8d3eecc17b5095f8ee4cf492593dae7be292761b3c9f64a231f4fb\
             40ff6ba79b97a3f632f4fd64f4486c600a0432aae7e7d65ffc38c30421369e971c"
        );

        let solana_to_evm = Message {
            originDomain: 1_399_811_149,
            sequence: 0,
            sender: B256::repeat_byte(0x33),
            destinationDomain: 31337,
            recipient: b("0x0000000000000000000000003c44cdddb6a900fa2b585dd299e03d12fa4293bc"),
            asset: b("0x000000000000000000000000e7f1725e7734ce288f8367e1bb143e90bb3f0512"),
            amount: U256::from(1_500_000_000_000_000_000u128),
        };
        let salt = b("0x0000000000000000000000005fbdb2315678afecb367f032d93f642f64180aa3");
        assert_eq!(
            message_id(&solana_to_evm),
            b("0xedf83a61ba7bd2789dc75ccb7df5c4e45109ab1094fb4634ad774f3c7a6da2bd")
        );
        assert_eq!(
            domain_separator(31337, salt),
            b("0x0b1a718be6303962df8dfb36a3b905e6be2e2827f9dbde62909158a406904f08")
        );
        let digest = message_digest(&solana_to_evm, salt, 1);
        assert_eq!(
            digest,
            b("0xaa38753fd158b1928a30b76a98228ce21bac0f9e2a527bda9fd052148b3b2a49")
        );
        assert_eq!(
            hex::encode(sign(&key1, digest).unwrap()),
            "4e55f10df346fd79631501692493e4d5f647c4d0e36a4625ac6cfd279460218c\
             61dc41042eb209dc448396bb884101f4bb2b5e2521e11738fd3b12b33a8776ff1c"
        );
    }
}
