//! Big-endian uint256 → decimal text, for bridge amounts (the EVM side's `uint256`), without
//! pulling a big-integer crate into the wasm module.

/// The decimal digits of a big-endian 256-bit unsigned integer.
pub fn u256_be_decimal(be: &[u8; 32]) -> String {
    // Four u64 limbs, most significant first; repeated division by 10^19 yields base-10^19
    // chunks from the least significant end.
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().zip(be.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(b);
    }
    const CHUNK: u64 = 10_000_000_000_000_000_000;
    let mut chunks = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rem: u128 = 0;
        for limb in limbs.iter_mut() {
            let cur = (rem << 64) | u128::from(*limb);
            // cur < CHUNK * 2^64, so the quotient fits in u64.
            *limb = u64::try_from(cur / u128::from(CHUNK)).unwrap_or(u64::MAX);
            rem = cur % u128::from(CHUNK);
        }
        chunks.push(u64::try_from(rem).unwrap_or(u64::MAX));
    }
    let Some((most, rest)) = chunks.split_last() else {
        return "0".to_string();
    };
    let mut out = most.to_string();
    for c in rest.iter().rev() {
        out.push_str(&format!("{c:019}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(v: u128) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[16..].copy_from_slice(&v.to_be_bytes());
        b
    }

    #[test]
    fn decimal_of_u256() {
        assert_eq!(u256_be_decimal(&[0; 32]), "0");
        assert_eq!(u256_be_decimal(&be(7)), "7");
        assert_eq!(
            u256_be_decimal(&be(10_000_000_000_000_000_000)),
            "10000000000000000000"
        );
        assert_eq!(u256_be_decimal(&be(u128::MAX)), u128::MAX.to_string());
        assert_eq!(
            u256_be_decimal(&[0xff; 32]),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
        // 2^128 (carries across the limbs).
        let mut b = [0u8; 32];
        b[15] = 1;
        assert_eq!(
            u256_be_decimal(&b),
            "340282366920938463463374607431768211456"
        );
    }
}
