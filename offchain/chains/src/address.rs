//! Chain names and address validation for watch-only wallets and balance queries.
//! EVM addresses are normalized to their EIP-55 checksummed form; a mixed-case address whose
//! checksum does not match is rejected (it is almost always a typo).

use sha3::{Digest, Keccak256};

use crate::ChainError;

/// Chains a public address can be registered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chain {
    Solana,
    Ethereum,
    Polygon,
    Bsc,
    Arbitrum,
    Base,
}

impl Chain {
    pub const ALL: [Chain; 6] = [
        Chain::Solana,
        Chain::Ethereum,
        Chain::Polygon,
        Chain::Bsc,
        Chain::Arbitrum,
        Chain::Base,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Chain::Solana => "solana",
            Chain::Ethereum => "ethereum",
            Chain::Polygon => "polygon",
            Chain::Bsc => "bsc",
            Chain::Arbitrum => "arbitrum",
            Chain::Base => "base",
        }
    }

    pub fn is_evm(self) -> bool {
        self != Chain::Solana
    }
}

impl std::str::FromStr for Chain {
    type Err = ChainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Chain::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                ChainError::Invalid(format!(
                    "unknown chain `{s}` (one of: solana, ethereum, polygon, bsc, arbitrum, base)"
                ))
            })
    }
}

/// Validates `address` for `chain` and returns its canonical form.
pub fn normalize(chain: Chain, address: &str) -> Result<String, ChainError> {
    let a = address.trim();
    if chain.is_evm() {
        normalize_evm(a)
    } else {
        // 32 bytes take at most 44 base58 characters. Checked before decoding: base58
        // decoding is quadratic in the length, and the input is anyone's.
        if a.len() > 44 {
            return Err(ChainError::Invalid(format!(
                "a Solana address is at most 44 base58 characters, not {}",
                a.len()
            )));
        }
        let bytes = bs58::decode(a)
            .into_vec()
            .map_err(|_| ChainError::Invalid(format!("`{a}` is not base58")))?;
        if bytes.len() != 32 {
            return Err(ChainError::Invalid(format!(
                "`{a}` is {} bytes; a Solana address is 32",
                bytes.len()
            )));
        }
        Ok(bs58::encode(bytes).into_string())
    }
}

fn normalize_evm(a: &str) -> Result<String, ChainError> {
    let hex_part = a
        .strip_prefix("0x")
        .ok_or_else(|| ChainError::Invalid(format!("`{a}` does not start with 0x")))?;
    if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ChainError::Invalid(format!("`{a}` is not 20 bytes of hex")));
    }
    let checksummed = eip55(hex_part);
    let mixed = hex_part.bytes().any(|b| b.is_ascii_lowercase())
        && hex_part.bytes().any(|b| b.is_ascii_uppercase());
    if mixed && checksummed[2..] != *hex_part {
        return Err(ChainError::Invalid(format!(
            "`{a}` fails its EIP-55 checksum (expected {checksummed})"
        )));
    }
    Ok(checksummed)
}

/// EIP-55: a hex letter is upper case when the matching nibble of keccak256(lowercase hex) ≥ 8.
fn eip55(hex_part: &str) -> String {
    let lower = hex_part.to_ascii_lowercase();
    let hash = Keccak256::digest(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        out.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_vectors_from_the_eip() {
        // Test vectors listed in EIP-55.
        for v in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            assert_eq!(
                normalize(Chain::Ethereum, &v.to_lowercase())
                    .ok()
                    .as_deref(),
                Some(v)
            );
            assert_eq!(normalize(Chain::Polygon, v).ok().as_deref(), Some(v));
        }
        // One letter's case flipped: checksum failure, not silently accepted.
        let bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert!(
            matches!(normalize(Chain::Ethereum, bad), Err(ChainError::Invalid(m)) if m.contains("EIP-55"))
        );
        assert!(normalize(Chain::Ethereum, "0x1234").is_err());
        assert!(normalize(Chain::Ethereum, "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").is_err());
    }

    #[test]
    fn solana_addresses() {
        let id = advancia_pay::ID.to_string();
        assert_eq!(normalize(Chain::Solana, &format!(" {id} ")).ok(), Some(id));
        assert!(normalize(Chain::Solana, "0OIl").is_err());
        assert!(normalize(Chain::Solana, "3yZe7d").is_err());
        assert!("SOLANA".parse::<Chain>().is_ok());
        assert!("dogecoin".parse::<Chain>().is_err());
    }
}
