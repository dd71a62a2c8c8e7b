//! EVM bridge wire format (ADR 0012), shared with the Solidity contract and the relayer:
//! message id, EIP-712 attestation digest, signer recovery and the validator-set rules.
//! Pure functions over bytes, so the program (syscalls on SBF) and off-chain code (k256 / sha3
//! natively) compute exactly the same values.

use anchor_lang::prelude::{AnchorDeserialize, AnchorSerialize};

/// Most validators a set can hold (fixed-size config account).
pub const MAX_VALIDATORS: usize = 19;
/// Largest decimals difference a route may bridge: keeps `u64 * 10^diff` inside `u128`.
pub const MAX_DECIMALS_DIFF: u8 = 18;

pub const EIP712_NAME: &[u8] = b"AdvanciaBridge";
pub const EIP712_VERSION: &[u8] = b"1";
pub const EIP712_DOMAIN_TYPE: &[u8] =
    b"EIP712Domain(string name,string version,uint256 chainId,bytes32 salt)";
pub const ATTESTATION_TYPE: &[u8] = b"Attestation(bytes32 messageId,uint64 setVersion)";

/// secp256k1 group order n, halved (rounded down): a low-s signature has `s <= HALF_ORDER`.
pub const SECP256K1_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

/// A cross-chain message. Every field is one 32-byte ABI word on the wire; `amount` is a
/// big-endian uint256 in the destination asset's base units.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeMessage {
    pub origin_domain: u32,
    pub sequence: u64,
    /// EVM address left-padded with 12 zero bytes, or a Solana pubkey.
    pub sender: [u8; 32],
    pub destination_domain: u32,
    pub recipient: [u8; 32],
    /// Asset on the destination chain; all zero for the native coin.
    pub asset: [u8; 32],
    pub amount: [u8; 32],
}

impl BridgeMessage {
    /// `keccak256(abi.encode(origin, sequence, sender, destination, recipient, asset, amount))`:
    /// the replay key, independent of the validator set that attests it.
    pub fn id(&self) -> [u8; 32] {
        keccak(&[
            &word_u64(self.origin_domain.into()),
            &word_u64(self.sequence),
            &self.sender,
            &word_u64(self.destination_domain.into()),
            &self.recipient,
            &self.asset,
            &self.amount,
        ])
    }

    /// The amount if it fits in the u64 Solana balances use.
    pub fn amount_u64(&self) -> Option<u64> {
        let (high, low) = self.amount.split_at(24);
        if high.iter().any(|b| *b != 0) {
            return None;
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(low);
        Some(u64::from_be_bytes(bytes))
    }
}

pub fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    solana_keccak_hasher::hashv(parts).to_bytes()
}

pub fn word_u64(value: u64) -> [u8; 32] {
    word_u128(value.into())
}

pub fn word_u128(value: u128) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[16..].copy_from_slice(&value.to_be_bytes());
    word
}

/// An EVM address as a bytes32 word (left-padded).
pub fn address_word(address: &[u8; 20]) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(address);
    word
}

/// EIP-712 domain separator of the destination bridge: `chain_id` is the destination domain,
/// `salt` the destination contract (EVM address left-padded; on Solana the program id).
pub fn domain_separator(chain_id: u32, salt: &[u8; 32]) -> [u8; 32] {
    keccak(&[
        &keccak(&[EIP712_DOMAIN_TYPE]),
        &keccak(&[EIP712_NAME]),
        &keccak(&[EIP712_VERSION]),
        &word_u64(chain_id.into()),
        salt,
    ])
}

/// What validators sign: `keccak256(0x1901 || domainSeparator || hashStruct(Attestation))`.
pub fn attestation_digest(
    domain_separator: &[u8; 32],
    message_id: &[u8; 32],
    set_version: u64,
) -> [u8; 32] {
    let struct_hash = keccak(&[
        &keccak(&[ATTESTATION_TYPE]),
        message_id,
        &word_u64(set_version),
    ]);
    keccak(&[b"\x19\x01", domain_separator, &struct_hash])
}

/// Digest a Solana-bound message is signed over: chain id = the program's local domain,
/// salt = this program's id.
pub fn solana_digest(local_domain: u32, message_id: &[u8; 32], set_version: u64) -> [u8; 32] {
    attestation_digest(
        &domain_separator(local_domain, &crate::ID.to_bytes()),
        message_id,
        set_version,
    )
}

/// Ethereum address of an uncompressed public key (x || y, 64 bytes).
pub fn eth_address(pubkey: &[u8; 64]) -> [u8; 20] {
    let hash = keccak(&[pubkey]);
    let mut address = [0u8; 20];
    address.copy_from_slice(&hash[12..]);
    address
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ::thiserror::Error)]
pub enum SignatureError {
    #[error("signature s is in the upper half of the curve order")]
    HighS,
    #[error("signature does not recover a public key")]
    Invalid,
}

pub fn is_low_s(s: &[u8; 32]) -> bool {
    // Big-endian byte arrays compare like the numbers they encode.
    *s <= SECP256K1_HALF_ORDER
}

/// Recovers the signer's Ethereum address from a 65-byte `r || s || v` signature
/// (v = 27/28 or 0/1). High-s signatures are refused before recovery: the syscall accepts them.
pub fn recover_signer(digest: &[u8; 32], signature: &[u8; 65]) -> Result<[u8; 20], SignatureError> {
    let mut s = [0u8; 32];
    s.copy_from_slice(&signature[32..64]);
    if !is_low_s(&s) {
        return Err(SignatureError::HighS);
    }
    let recovery_id = match signature[64] {
        0 | 27 => 0,
        1 | 28 => 1,
        _ => return Err(SignatureError::Invalid),
    };
    let pubkey = solana_secp256k1_recover::secp256k1_recover(digest, recovery_id, &signature[..64])
        .map_err(|_| SignatureError::Invalid)?;
    Ok(eth_address(&pubkey.to_bytes()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ::thiserror::Error)]
pub enum AttestationError {
    #[error("fewer signatures than the threshold")]
    BelowThreshold,
    #[error("signature {0}: s is in the upper half of the curve order")]
    HighS(usize),
    #[error("signature {0} does not recover")]
    InvalidSignature(usize),
    #[error("signature {0}: signers are not strictly ascending")]
    NotAscending(usize),
    #[error("signature {0}: signer is not in the validator set")]
    NotValidator(usize),
}

/// The destination's signature checks in the order of ADR 0012: count, then per signature
/// low-s and recovery, strictly ascending signer, set membership.
pub fn verify_attestations(
    digest: &[u8; 32],
    signatures: &[[u8; 65]],
    validators: &[[u8; 20]],
    threshold: u8,
) -> Result<(), AttestationError> {
    if signatures.len() < usize::from(threshold) {
        return Err(AttestationError::BelowThreshold);
    }
    let mut previous: Option<[u8; 20]> = None;
    for (i, signature) in signatures.iter().enumerate() {
        let signer = recover_signer(digest, signature).map_err(|e| match e {
            SignatureError::HighS => AttestationError::HighS(i),
            SignatureError::Invalid => AttestationError::InvalidSignature(i),
        })?;
        if previous.is_some_and(|p| signer <= p) {
            return Err(AttestationError::NotAscending(i));
        }
        // The set is sorted, so membership is a binary search.
        if validators.binary_search(&signer).is_err() {
            return Err(AttestationError::NotValidator(i));
        }
        previous = Some(signer);
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ::thiserror::Error)]
pub enum ValidatorSetError {
    #[error("a validator set has 1..=19 members")]
    Size,
    #[error("validators must be strictly ascending (sorted, no duplicates) and non-zero")]
    NotSorted,
    #[error("threshold must be between 1 and the number of validators")]
    Threshold,
}

pub fn check_validator_set(
    validators: &[[u8; 20]],
    threshold: u8,
) -> Result<(), ValidatorSetError> {
    if validators.is_empty() || validators.len() > MAX_VALIDATORS {
        return Err(ValidatorSetError::Size);
    }
    if validators[0] == [0u8; 20] || validators.windows(2).any(|w| w[0] >= w[1]) {
        return Err(ValidatorSetError::NotSorted);
    }
    if threshold == 0 || usize::from(threshold) > validators.len() {
        return Err(ValidatorSetError::Threshold);
    }
    Ok(())
}

/// Converts a local amount into the remote asset's base units; `None` when it does not convert
/// exactly (dropped digits) or the decimals differ by more than [`MAX_DECIMALS_DIFF`].
pub fn to_remote_amount(amount: u64, local_decimals: u8, remote_decimals: u8) -> Option<u128> {
    let amount = u128::from(amount);
    if remote_decimals >= local_decimals {
        let diff = remote_decimals - local_decimals;
        (diff <= MAX_DECIMALS_DIFF).then_some(())?;
        amount.checked_mul(10u128.pow(diff.into()))
    } else {
        let diff = local_decimals - remote_decimals;
        (diff <= MAX_DECIMALS_DIFF).then_some(())?;
        let factor = 10u128.pow(diff.into());
        (amount % factor == 0).then_some(amount / factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_words_round_trip_and_overflow() {
        let mut m = BridgeMessage {
            origin_domain: 1,
            sequence: 2,
            sender: [3; 32],
            destination_domain: 4,
            recipient: [5; 32],
            asset: [0; 32],
            amount: word_u64(u64::MAX),
        };
        assert_eq!(m.amount_u64(), Some(u64::MAX));
        m.amount = word_u128(u128::from(u64::MAX) + 1);
        assert_eq!(m.amount_u64(), None);
    }

    #[test]
    fn decimals_conversion_is_exact_or_refused() {
        assert_eq!(
            to_remote_amount(1_500_000, 6, 18),
            Some(1_500_000 * 10u128.pow(12))
        );
        assert_eq!(to_remote_amount(1_500_000_000, 9, 6), Some(1_500_000));
        assert_eq!(to_remote_amount(1_500_000_001, 9, 6), None);
        assert_eq!(
            to_remote_amount(u64::MAX, 0, 18),
            Some(u128::from(u64::MAX) * 10u128.pow(18))
        );
        assert_eq!(to_remote_amount(1, 0, 19), None);
    }

    #[test]
    fn validator_set_rules() {
        let (a, b, c) = ([1u8; 20], [2u8; 20], [3u8; 20]);
        assert_eq!(check_validator_set(&[a, b, c], 2), Ok(()));
        assert_eq!(
            check_validator_set(&[a, c, b], 2),
            Err(ValidatorSetError::NotSorted)
        );
        assert_eq!(
            check_validator_set(&[a, a], 1),
            Err(ValidatorSetError::NotSorted)
        );
        assert_eq!(
            check_validator_set(&[[0; 20], a], 1),
            Err(ValidatorSetError::NotSorted)
        );
        assert_eq!(
            check_validator_set(&[a, b], 3),
            Err(ValidatorSetError::Threshold)
        );
        assert_eq!(
            check_validator_set(&[a, b], 0),
            Err(ValidatorSetError::Threshold)
        );
        assert_eq!(check_validator_set(&[], 0), Err(ValidatorSetError::Size));
        let too_many: Vec<[u8; 20]> = (1..=20u8).map(|i| [i; 20]).collect();
        assert_eq!(
            check_validator_set(&too_many, 1),
            Err(ValidatorSetError::Size)
        );
    }

    #[test]
    fn high_s_is_refused_before_recovery() {
        let mut sig = [0u8; 65];
        sig[32] = 0x80;
        sig[64] = 27;
        assert_eq!(recover_signer(&[1; 32], &sig), Err(SignatureError::HighS));
        sig[32] = 0x01;
        sig[64] = 29;
        assert_eq!(recover_signer(&[1; 32], &sig), Err(SignatureError::Invalid));
    }
}
