//! The two pieces of the cw20 interface this contract speaks: the `Receive` hook it accepts
//! and the `Transfer` it sends. Declared here in the cw20 spec's wire format because the
//! published `cw20` crate (2.0) is built on cosmwasm-std 2, which cannot be linked next to
//! cosmwasm-std 3 in one contract.

use cosmwasm_schema::cw_serde;
use cosmwasm_std::{Binary, Uint128};

/// What a cw20 token contract sends to a contract after a `Send { contract, amount, msg }`.
#[cw_serde]
pub struct Cw20ReceiveMsg {
    /// The account that called `Send` on the token (the payer).
    pub sender: String,
    pub amount: Uint128,
    /// Our [`crate::msg::ReceiveMsg`], JSON-encoded.
    pub msg: Binary,
}

/// The subset of a cw20 token's execute messages used here: the contract sends `Transfer`;
/// a payer's `Send` is what triggers [`Cw20ReceiveMsg`].
#[cw_serde]
pub enum Cw20ExecuteMsg {
    Transfer {
        recipient: String,
        amount: Uint128,
    },
    Send {
        contract: String,
        amount: Uint128,
        msg: Binary,
    },
}
