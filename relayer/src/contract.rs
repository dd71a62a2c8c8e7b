//! Rust bindings of the committed contract artifacts (contracts/evm/out, `cargo xtask evm`).

#![allow(clippy::too_many_arguments)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    AdvanciaBridge,
    "../contracts/evm/out/AdvanciaBridge.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    TestToken,
    "../contracts/evm/out/TestToken.json"
);

use alloy::sol_types::SolInterface;

/// The custom error name of a bridge revert, e.g. `"WrongSetVersion"`, from its revert data.
pub fn bridge_error_name(revert_data: &[u8]) -> Option<String> {
    let decoded = AdvanciaBridge::AdvanciaBridgeErrors::abi_decode(revert_data).ok()?;
    // The variant's Debug starts with its name, which is the Solidity error's name.
    let debug = format!("{decoded:?}");
    Some(
        debug
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_owned(),
    )
}
