//! Solana JSON-RPC `getBlock` output (`encoding: "json"`, `transactionDetails: "full"`,
//! `maxSupportedTransactionVersion: 0`, rewards) converted into Firehose's
//! `sf.solana.type.v1.Block`, the input a Substreams module receives. Lets the module run
//! natively on blocks recorded from any RPC node (tests: from the local node).
//!
//! Faithful for every field the RPC output carries, with one difference: Firehose stores a
//! failed transaction's error as the bincode `TransactionError`; here `err.err` holds the
//! RPC's JSON error text (set ⇔ failed, which is what consumers test).

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use substreams_solana::pb::sf::solana::r#type::v1 as pb;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("getBlock json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{field}: not base58: {message}")]
    Base58 {
        field: &'static str,
        message: String,
    },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcBlock {
    previous_blockhash: String,
    blockhash: String,
    parent_slot: u64,
    #[serde(default)]
    transactions: Vec<RpcTxWithMeta>,
    #[serde(default)]
    rewards: Option<Vec<RpcReward>>,
    block_time: Option<i64>,
    block_height: Option<u64>,
}

#[derive(Deserialize)]
struct RpcTxWithMeta {
    transaction: RpcTx,
    meta: Option<RpcMeta>,
    /// `"legacy"` or a number.
    #[serde(default)]
    version: Option<Value>,
}

#[derive(Deserialize)]
struct RpcTx {
    signatures: Vec<String>,
    message: RpcMessage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcMessage {
    header: RpcHeader,
    account_keys: Vec<String>,
    recent_blockhash: String,
    instructions: Vec<RpcInstruction>,
    #[serde(default)]
    address_table_lookups: Option<Vec<RpcLookup>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcHeader {
    num_required_signatures: u32,
    num_readonly_signed_accounts: u32,
    num_readonly_unsigned_accounts: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcInstruction {
    program_id_index: u32,
    accounts: Vec<u8>,
    data: String,
    #[serde(default)]
    stack_height: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcLookup {
    account_key: String,
    writable_indexes: Vec<u8>,
    readonly_indexes: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcMeta {
    err: Option<Value>,
    fee: u64,
    pre_balances: Vec<u64>,
    post_balances: Vec<u64>,
    #[serde(default)]
    inner_instructions: Option<Vec<RpcInner>>,
    #[serde(default)]
    log_messages: Option<Vec<String>>,
    #[serde(default)]
    pre_token_balances: Option<Vec<RpcTokenBalance>>,
    #[serde(default)]
    post_token_balances: Option<Vec<RpcTokenBalance>>,
    #[serde(default)]
    rewards: Option<Vec<RpcReward>>,
    #[serde(default)]
    loaded_addresses: Option<RpcLoaded>,
    #[serde(default)]
    return_data: Option<RpcReturnData>,
    #[serde(default)]
    compute_units_consumed: Option<u64>,
    #[serde(default)]
    cost_units: Option<u64>,
}

#[derive(Deserialize)]
struct RpcInner {
    index: u32,
    instructions: Vec<RpcInstruction>,
}

#[derive(Deserialize)]
struct RpcLoaded {
    writable: Vec<String>,
    readonly: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcReturnData {
    program_id: String,
    /// `[base64, "base64"]`.
    data: (String, String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcTokenBalance {
    account_index: u32,
    mint: String,
    ui_token_amount: RpcUiTokenAmount,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    program_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcUiTokenAmount {
    ui_amount: Option<f64>,
    decimals: u32,
    amount: String,
    ui_amount_string: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcReward {
    pubkey: String,
    lamports: i64,
    post_balance: u64,
    reward_type: Option<String>,
    commission: Option<u8>,
}

fn b58(field: &'static str, s: &str) -> Result<Vec<u8>, ConvertError> {
    bs58::decode(s)
        .into_vec()
        .map_err(|e| ConvertError::Base58 {
            field,
            message: e.to_string(),
        })
}

fn b58_all(field: &'static str, v: &[String]) -> Result<Vec<Vec<u8>>, ConvertError> {
    v.iter().map(|s| b58(field, s)).collect()
}

fn compiled(ix: &RpcInstruction) -> Result<pb::CompiledInstruction, ConvertError> {
    Ok(pb::CompiledInstruction {
        program_id_index: ix.program_id_index,
        accounts: ix.accounts.clone(),
        data: b58("instruction data", &ix.data)?,
    })
}

fn inner(ix: &RpcInstruction) -> Result<pb::InnerInstruction, ConvertError> {
    Ok(pb::InnerInstruction {
        program_id_index: ix.program_id_index,
        accounts: ix.accounts.clone(),
        data: b58("inner instruction data", &ix.data)?,
        stack_height: ix.stack_height,
    })
}

fn reward(r: &RpcReward) -> Result<pb::Reward, ConvertError> {
    let reward_type = match r.reward_type.as_deref() {
        None => pb::RewardType::Unspecified,
        Some("Fee") => pb::RewardType::Fee,
        Some("Rent") => pb::RewardType::Rent,
        Some("Staking") => pb::RewardType::Staking,
        Some("Voting") => pb::RewardType::Voting,
        Some(other) => {
            return Err(ConvertError::Invalid {
                field: "rewardType",
                message: format!("unknown reward type {other:?}"),
            });
        }
    };
    Ok(pb::Reward {
        pubkey: r.pubkey.clone(),
        lamports: r.lamports,
        post_balance: r.post_balance,
        reward_type: reward_type.into(),
        commission: r.commission.map(|c| c.to_string()).unwrap_or_default(),
    })
}

fn token_balance(t: &RpcTokenBalance) -> pb::TokenBalance {
    pb::TokenBalance {
        account_index: t.account_index,
        mint: t.mint.clone(),
        ui_token_amount: pb::UiTokenAmount {
            ui_amount: t.ui_token_amount.ui_amount.unwrap_or_default(),
            decimals: t.ui_token_amount.decimals,
            amount: t.ui_token_amount.amount.clone(),
            ui_amount_string: t.ui_token_amount.ui_amount_string.clone(),
        }
        .into(),
        owner: t.owner.clone().unwrap_or_default(),
        program_id: t.program_id.clone().unwrap_or_default(),
    }
}

fn meta(m: &RpcMeta) -> Result<pb::TransactionStatusMeta, ConvertError> {
    let loaded = m.loaded_addresses.as_ref();
    Ok(pb::TransactionStatusMeta {
        err: m
            .err
            .as_ref()
            .map(|e| pb::TransactionError {
                err: e.to_string().into_bytes(),
            })
            .into(),
        fee: m.fee,
        pre_balances: m.pre_balances.clone(),
        post_balances: m.post_balances.clone(),
        inner_instructions: m
            .inner_instructions
            .iter()
            .flatten()
            .map(|g| {
                Ok(pb::InnerInstructions {
                    index: g.index,
                    instructions: g.instructions.iter().map(inner).collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, ConvertError>>()?,
        log_messages: m.log_messages.clone().unwrap_or_default(),
        pre_token_balances: m
            .pre_token_balances
            .iter()
            .flatten()
            .map(token_balance)
            .collect(),
        post_token_balances: m
            .post_token_balances
            .iter()
            .flatten()
            .map(token_balance)
            .collect(),
        rewards: m
            .rewards
            .iter()
            .flatten()
            .map(reward)
            .collect::<Result<_, _>>()?,
        loaded_writable_addresses: match loaded {
            Some(l) => b58_all("loadedAddresses.writable", &l.writable)?,
            None => Vec::new(),
        },
        loaded_readonly_addresses: match loaded {
            Some(l) => b58_all("loadedAddresses.readonly", &l.readonly)?,
            None => Vec::new(),
        },
        return_data: m
            .return_data
            .as_ref()
            .map(|r| {
                Ok::<_, ConvertError>(pb::ReturnData {
                    program_id: b58("returnData.programId", &r.program_id)?,
                    data: base64::engine::general_purpose::STANDARD
                        .decode(&r.data.0)
                        .map_err(|e| ConvertError::Invalid {
                            field: "returnData.data",
                            message: e.to_string(),
                        })?,
                })
            })
            .transpose()?
            .into(),
        compute_units_consumed: m.compute_units_consumed,
        cost_units: m.cost_units,
    })
}

/// `version`: absent or `"legacy"` → legacy; a number → that message version.
fn version(v: Option<&Value>) -> Result<Option<u32>, ConvertError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) if s == "legacy" => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| ConvertError::Invalid {
                field: "version",
                message: format!("unexpected transaction version {v}"),
            }),
    }
}

fn transaction(t: &RpcTxWithMeta) -> Result<pb::ConfirmedTransaction, ConvertError> {
    let m = &t.transaction.message;
    let version = version(t.version.as_ref())?;
    let message = pb::Message {
        header: pb::MessageHeader {
            num_required_signatures: m.header.num_required_signatures,
            num_readonly_signed_accounts: m.header.num_readonly_signed_accounts,
            num_readonly_unsigned_accounts: m.header.num_readonly_unsigned_accounts,
        }
        .into(),
        account_keys: b58_all("accountKeys", &m.account_keys)?,
        recent_blockhash: b58("recentBlockhash", &m.recent_blockhash)?,
        instructions: m
            .instructions
            .iter()
            .map(compiled)
            .collect::<Result<_, _>>()?,
        versioned: version.is_some(),
        address_table_lookups: m
            .address_table_lookups
            .iter()
            .flatten()
            .map(|l| {
                Ok(pb::MessageAddressTableLookup {
                    account_key: b58("addressTableLookups.accountKey", &l.account_key)?,
                    writable_indexes: l.writable_indexes.clone(),
                    readonly_indexes: l.readonly_indexes.clone(),
                })
            })
            .collect::<Result<_, ConvertError>>()?,
        version,
        transaction_config: Default::default(),
    };
    Ok(pb::ConfirmedTransaction {
        transaction: pb::Transaction {
            signatures: b58_all("signatures", &t.transaction.signatures)?,
            message: message.into(),
        }
        .into(),
        meta: t.meta.as_ref().map(meta).transpose()?.into(),
    })
}

/// Converts one `getBlock` result (the JSON-RPC `result` object) of block `slot` (the RPC
/// result does not repeat its slot).
pub fn block_from_rpc_json(slot: u64, json: &Value) -> Result<pb::Block, ConvertError> {
    let b = RpcBlock::deserialize(json)?;
    Ok(pb::Block {
        previous_blockhash: b.previous_blockhash,
        blockhash: b.blockhash,
        parent_slot: b.parent_slot,
        transactions: b
            .transactions
            .iter()
            .map(transaction)
            .collect::<Result<_, _>>()?,
        rewards: b
            .rewards
            .iter()
            .flatten()
            .map(reward)
            .collect::<Result<_, _>>()?,
        block_time: b
            .block_time
            .map(|timestamp| pb::UnixTimestamp { timestamp })
            .into(),
        block_height: b
            .block_height
            .map(|block_height| pb::BlockHeight { block_height })
            .into(),
        slot,
    })
}
