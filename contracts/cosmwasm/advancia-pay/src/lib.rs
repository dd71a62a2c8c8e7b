//! Advancia Pay on CosmWasm: the Solana program's semantics (ADR 0006) for Cosmos chains —
//! facilities, payments in native denoms or cw20 tokens with a fee split, refunds, two-phase
//! escrow, KYC gating, settlement-root commits, and a bridge inbox for messages signed by M of
//! N secp256k1 validators. See the crate README for the event schema.

pub mod bridge;
pub mod contract;
pub mod cw20;
pub mod error;
pub mod msg;
#[cfg(not(target_arch = "wasm32"))]
pub mod schema;
pub mod state;

pub use error::ContractError;

// The entry-point macro exports `#[no_mangle]` wasm functions (cosmwasm-std's ABI).
#[cfg(not(feature = "library"))]
#[allow(unsafe_code)]
pub mod entry {
    use cosmwasm_std::{Binary, Deps, DepsMut, Env, MessageInfo, Response, StdResult, entry_point};

    use crate::ContractError;
    use crate::msg::{ExecuteMsg, InstantiateMsg, QueryMsg};

    #[entry_point]
    pub fn instantiate(
        deps: DepsMut,
        env: Env,
        info: MessageInfo,
        msg: InstantiateMsg,
    ) -> Result<Response, ContractError> {
        crate::contract::instantiate(deps, env, info, msg)
    }

    #[entry_point]
    pub fn execute(
        deps: DepsMut,
        env: Env,
        info: MessageInfo,
        msg: ExecuteMsg,
    ) -> Result<Response, ContractError> {
        crate::contract::execute(deps, env, info, msg)
    }

    #[entry_point]
    pub fn query(deps: Deps, env: Env, msg: QueryMsg) -> StdResult<Binary> {
        crate::contract::query(deps, env, msg)
    }
}
