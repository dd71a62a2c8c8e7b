//! A cw20 token contract for the tests: balances, `Transfer`, and `Send` with the cw20
//! `Receive` hook in the spec's wire format (the published cw20-base is built on
//! cosmwasm-std 2 and cannot run in cw-multi-test 3).

use advancia_pay_cosmwasm::cw20::{Cw20ExecuteMsg, Cw20ReceiveMsg};
use cosmwasm_schema::cw_serde;
use cosmwasm_std::{
    Addr, Binary, Deps, DepsMut, Env, MessageInfo, Response, StdError, StdResult, Uint128, WasmMsg,
    to_json_binary,
};
use cw_multi_test::{Contract, ContractWrapper};
use cw_storage_plus::Map;

const BALANCES: Map<&Addr, Uint128> = Map::new("balances");

#[cw_serde]
pub struct TokenInstantiate {
    pub balances: Vec<(String, Uint128)>,
}

#[cw_serde]
pub enum TokenQuery {
    Balance { address: String },
}

/// What a cw20 token calls on the receiving contract.
#[cw_serde]
enum ReceiverMsg {
    Receive(Cw20ReceiveMsg),
}

fn instantiate(
    deps: DepsMut,
    _env: Env,
    _info: MessageInfo,
    msg: TokenInstantiate,
) -> StdResult<Response> {
    for (addr, amount) in msg.balances {
        BALANCES.save(deps.storage, &deps.api.addr_validate(&addr)?, &amount)?;
    }
    Ok(Response::new())
}

fn move_tokens(deps: DepsMut, from: &Addr, to: &Addr, amount: Uint128) -> StdResult<()> {
    let have = BALANCES.may_load(deps.storage, from)?.unwrap_or_default();
    let left = have
        .checked_sub(amount)
        .map_err(|_| StdError::msg(format!("insufficient funds: {have} < {amount}")))?;
    BALANCES.save(deps.storage, from, &left)?;
    let to_balance = BALANCES.may_load(deps.storage, to)?.unwrap_or_default();
    BALANCES.save(deps.storage, to, &(to_balance + amount))?;
    Ok(())
}

fn execute(
    deps: DepsMut,
    _env: Env,
    info: MessageInfo,
    msg: Cw20ExecuteMsg,
) -> StdResult<Response> {
    match msg {
        Cw20ExecuteMsg::Transfer { recipient, amount } => {
            let to = deps.api.addr_validate(&recipient)?;
            move_tokens(deps, &info.sender, &to, amount)?;
            Ok(Response::new().add_attribute("action", "transfer"))
        }
        Cw20ExecuteMsg::Send {
            contract,
            amount,
            msg,
        } => {
            let to = deps.api.addr_validate(&contract)?;
            move_tokens(deps, &info.sender, &to, amount)?;
            let hook = ReceiverMsg::Receive(Cw20ReceiveMsg {
                sender: info.sender.into_string(),
                amount,
                msg,
            });
            Ok(Response::new()
                .add_attribute("action", "send")
                .add_message(WasmMsg::Execute {
                    contract_addr: contract,
                    msg: to_json_binary(&hook)?,
                    funds: vec![],
                }))
        }
    }
}

fn query(deps: Deps, _env: Env, msg: TokenQuery) -> StdResult<Binary> {
    match msg {
        TokenQuery::Balance { address } => {
            let addr = deps.api.addr_validate(&address)?;
            to_json_binary(&BALANCES.may_load(deps.storage, &addr)?.unwrap_or_default())
        }
    }
}

pub fn contract() -> Box<dyn Contract<cosmwasm_std::Empty>> {
    Box::new(ContractWrapper::new(execute, instantiate, query))
}
