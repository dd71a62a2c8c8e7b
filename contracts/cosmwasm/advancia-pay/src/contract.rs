//! Entry-point bodies. Checks follow the Solana program's order and meaning (ADR 0006,
//! docs/decisions on the CosmWasm mapping); every state change answers with wasm attributes
//! whose schema is documented in the crate README.

use cosmwasm_std::{
    Addr, Api, Binary, CosmosMsg, Deps, DepsMut, Env, HexBinary, MessageInfo, Order, Response,
    StdResult, Storage, Uint128, WasmMsg, from_json, to_json_binary,
};
use cw_storage_plus::Bound;

use crate::bridge::signing_digest;
use crate::cw20::{Cw20ExecuteMsg, Cw20ReceiveMsg};
use crate::error::ContractError;
use crate::msg::{
    AssetConfig, BridgeMessage, ConfigResponse, ExecuteMsg, InstantiateMsg, QueryMsg, ReceiveMsg,
    ValidatorSetInput, ValidatorSetResponse, ValidatorSignature,
};
use crate::state::*;

const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 30;

type ExecResult = Result<Response, ContractError>;

/// Money that arrived with a message: a single native coin or a cw20 `Receive`.
struct Funds {
    /// Who paid: the sender of a native message, the `sender` of a cw20 `Send`.
    from: Addr,
    asset: AssetInfo,
    amount: Uint128,
}

// ---- Instantiate ---------------------------------------------------------------------------

pub fn instantiate(deps: DepsMut, _env: Env, info: MessageInfo, msg: InstantiateMsg) -> ExecResult {
    nonpayable(&info)?;
    check_fee(msg.fee_bps)?;
    let api = deps.api;
    let admin = match msg.admin {
        Some(a) => api.addr_validate(&a)?,
        None => info.sender.clone(),
    };
    let config = Config {
        admin,
        pending_admin: None,
        treasury: api.addr_validate(&msg.treasury)?,
        compliance_authority: api.addr_validate(&msg.compliance_authority)?,
        settlement_authority: api.addr_validate(&msg.settlement_authority)?,
        fee_bps: msg.fee_bps,
        paused: false,
        last_batch_number: 0,
    };
    CONFIG.save(deps.storage, &config)?;
    for asset in msg.assets {
        let asset = checked_asset_config(api, asset)?;
        ASSETS.save(deps.storage, &asset.asset.key(), &asset)?;
    }
    let mut response = Response::new()
        .add_attribute("action", "instantiate")
        .add_attribute("admin", config.admin.as_str())
        .add_attribute("treasury", config.treasury.as_str())
        .add_attribute("fee_bps", config.fee_bps.to_string());
    if let Some(set) = msg.bridge {
        let set = store_validator_set(deps.storage, set)?;
        response = response.add_attribute("set_version", set.version.to_string());
    }
    Ok(response)
}

// ---- Execute -------------------------------------------------------------------------------

pub fn execute(deps: DepsMut, env: Env, info: MessageInfo, msg: ExecuteMsg) -> ExecResult {
    match msg {
        ExecuteMsg::UpdateConfig {
            treasury,
            compliance_authority,
            settlement_authority,
            fee_bps,
            paused,
        } => update_config(
            deps,
            info,
            treasury,
            compliance_authority,
            settlement_authority,
            fee_bps,
            paused,
        ),
        ExecuteMsg::ProposeAdmin { new_admin } => propose_admin(deps, info, new_admin),
        ExecuteMsg::AcceptAdmin {} => accept_admin(deps, info),
        ExecuteMsg::SetAsset(asset) => set_asset(deps, info, asset),
        ExecuteMsg::UpdateValidatorSet(set) => update_validator_set(deps, info, set),
        ExecuteMsg::RegisterFacility {
            facility_id,
            authority,
            payout,
        } => register_facility(deps, info, facility_id, authority, payout),
        ExecuteMsg::UpdateFacilityPayout {
            facility_id,
            payout,
        } => update_facility_payout(deps, info, facility_id, payout),
        ExecuteMsg::DeactivateFacility { facility_id } => {
            deactivate_facility(deps, info, facility_id)
        }
        ExecuteMsg::Pay {
            facility_id,
            invoice_id,
        } => {
            let funds = native_funds(deps.storage, &info)?;
            pay(deps, env, funds, facility_id, invoice_id)
        }
        ExecuteMsg::Refund { payer, invoice_id } => {
            let funds = native_funds(deps.storage, &info)?;
            refund(deps, funds, payer, invoice_id)
        }
        ExecuteMsg::OpenEscrow {
            escrow_id,
            facility_id,
            arbiter,
            expires_at,
        } => {
            let funds = native_funds(deps.storage, &info)?;
            open_escrow(
                deps,
                env,
                funds,
                escrow_id,
                facility_id,
                arbiter,
                expires_at,
            )
        }
        ExecuteMsg::ReleaseEscrow {
            payer,
            escrow_id,
            amount,
        } => release_escrow(deps, env, info, payer, escrow_id, amount),
        ExecuteMsg::RefundEscrow { payer, escrow_id } => {
            refund_escrow(deps, env, info, payer, escrow_id)
        }
        ExecuteMsg::Receive(msg) => receive_cw20(deps, env, info, msg),
        ExecuteMsg::WriteAttestation {
            wallet,
            level,
            expires_at,
        } => write_attestation(deps, env, info, wallet, level, expires_at),
        ExecuteMsg::RenewAttestation {
            wallet,
            level,
            expires_at,
        } => renew_attestation(deps, env, info, wallet, level, expires_at),
        ExecuteMsg::RevokeAttestation { wallet } => revoke_attestation(deps, info, wallet),
        ExecuteMsg::CommitBatch {
            batch_number,
            root,
            entry_count,
            totals,
        } => commit_batch(deps, env, info, batch_number, root, entry_count, totals),
        ExecuteMsg::ReceiveBridgeMessage {
            message,
            signatures,
        } => receive_bridge_message(deps, env, info, message, signatures),
    }
}

// ---- Config --------------------------------------------------------------------------------

fn load_admin_config(storage: &dyn Storage, info: &MessageInfo, action: &str) -> StdConfig {
    let config = CONFIG.load(storage)?;
    if info.sender != config.admin {
        return Err(ContractError::unauthorized(info.sender.as_str(), action));
    }
    nonpayable(info)?;
    Ok(config)
}

type StdConfig = Result<Config, ContractError>;

fn update_config(
    deps: DepsMut,
    info: MessageInfo,
    treasury: Option<String>,
    compliance_authority: Option<String>,
    settlement_authority: Option<String>,
    fee_bps: Option<u16>,
    paused: Option<bool>,
) -> ExecResult {
    let mut config = load_admin_config(deps.storage, &info, "update the config")?;
    if let Some(fee_bps) = fee_bps {
        check_fee(fee_bps)?;
        config.fee_bps = fee_bps;
    }
    if let Some(t) = treasury {
        config.treasury = deps.api.addr_validate(&t)?;
    }
    if let Some(a) = compliance_authority {
        config.compliance_authority = deps.api.addr_validate(&a)?;
    }
    if let Some(a) = settlement_authority {
        config.settlement_authority = deps.api.addr_validate(&a)?;
    }
    if let Some(p) = paused {
        config.paused = p;
    }
    CONFIG.save(deps.storage, &config)?;
    Ok(Response::new()
        .add_attribute("action", "update_config")
        .add_attribute("admin", config.admin.as_str())
        .add_attribute("treasury", config.treasury.as_str())
        .add_attribute("compliance_authority", config.compliance_authority.as_str())
        .add_attribute("settlement_authority", config.settlement_authority.as_str())
        .add_attribute("fee_bps", config.fee_bps.to_string())
        .add_attribute("paused", config.paused.to_string()))
}

fn propose_admin(deps: DepsMut, info: MessageInfo, new_admin: String) -> ExecResult {
    let mut config = load_admin_config(deps.storage, &info, "propose an admin")?;
    let proposed = deps.api.addr_validate(&new_admin)?;
    config.pending_admin = Some(proposed.clone());
    CONFIG.save(deps.storage, &config)?;
    Ok(Response::new()
        .add_attribute("action", "propose_admin")
        .add_attribute("admin", config.admin.as_str())
        .add_attribute("proposed", proposed.as_str()))
}

fn accept_admin(deps: DepsMut, info: MessageInfo) -> ExecResult {
    nonpayable(&info)?;
    let mut config = CONFIG.load(deps.storage)?;
    if config.pending_admin.as_ref() != Some(&info.sender) {
        return Err(ContractError::NotPendingAdmin);
    }
    let previous = std::mem::replace(&mut config.admin, info.sender);
    config.pending_admin = None;
    CONFIG.save(deps.storage, &config)?;
    Ok(Response::new()
        .add_attribute("action", "accept_admin")
        .add_attribute("previous", previous.as_str())
        .add_attribute("admin", config.admin.as_str()))
}

fn set_asset(deps: DepsMut, info: MessageInfo, asset: AssetConfig) -> ExecResult {
    load_admin_config(deps.storage, &info, "set an asset")?;
    let asset = checked_asset_config(deps.api, asset)?;
    let key = asset.asset.key();
    ASSETS.save(deps.storage, &key, &asset)?;
    Ok(Response::new()
        .add_attribute("action", "set_asset")
        .add_attribute("asset", key)
        .add_attribute("kyc_threshold", asset.kyc_threshold.to_string())
        .add_attribute("enabled", asset.enabled.to_string()))
}

fn update_validator_set(deps: DepsMut, info: MessageInfo, set: ValidatorSetInput) -> ExecResult {
    load_admin_config(deps.storage, &info, "update the validator set")?;
    let set = store_validator_set(deps.storage, set)?;
    Ok(Response::new()
        .add_attribute("action", "update_validator_set")
        .add_attribute("set_version", set.version.to_string())
        .add_attribute("threshold", set.threshold.to_string())
        .add_attribute("validators", set.validators.len().to_string()))
}

fn store_validator_set(
    storage: &mut dyn Storage,
    input: ValidatorSetInput,
) -> Result<ValidatorSet, ContractError> {
    let invalid = |reason: &str| ContractError::InvalidValidatorSet {
        reason: reason.to_owned(),
    };
    if input.validators.is_empty() || input.validators.len() > MAX_VALIDATORS {
        return Err(invalid("1 to 32 validators"));
    }
    let mut validators = input.validators;
    for key in &validators {
        if key.len() != 33 || !matches!(key.as_slice()[0], 0x02 | 0x03) {
            return Err(invalid("keys must be 33-byte compressed secp256k1 points"));
        }
    }
    validators.sort();
    if validators.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("duplicate validator key"));
    }
    let count = u32::try_from(validators.len()).map_err(|_| invalid("too many validators"))?;
    if input.threshold == 0 || input.threshold > count {
        return Err(invalid(
            "threshold must be between 1 and the number of validators",
        ));
    }
    let version = VALIDATOR_SET
        .may_load(storage)?
        .map_or(0, |s| s.version)
        .checked_add(1)
        .ok_or(ContractError::MathOverflow)?;
    let set = ValidatorSet {
        version,
        validators,
        threshold: input.threshold,
    };
    VALIDATOR_SET.save(storage, &set)?;
    Ok(set)
}

// ---- Facilities ----------------------------------------------------------------------------

fn register_facility(
    deps: DepsMut,
    info: MessageInfo,
    facility_id: String,
    authority: String,
    payout: String,
) -> ExecResult {
    load_admin_config(deps.storage, &info, "register a facility")?;
    check_id(&facility_id)?;
    if FACILITIES.has(deps.storage, &facility_id) {
        return Err(ContractError::FacilityExists { facility_id });
    }
    let facility = Facility {
        facility_id,
        authority: deps.api.addr_validate(&authority)?,
        payout: deps.api.addr_validate(&payout)?,
        active: true,
    };
    FACILITIES.save(deps.storage, &facility.facility_id, &facility)?;
    Ok(Response::new()
        .add_attribute("action", "register_facility")
        .add_attribute("facility_id", facility.facility_id)
        .add_attribute("authority", facility.authority.as_str())
        .add_attribute("payout", facility.payout.as_str()))
}

fn update_facility_payout(
    deps: DepsMut,
    info: MessageInfo,
    facility_id: String,
    payout: String,
) -> ExecResult {
    nonpayable(&info)?;
    let mut facility = load_facility(deps.storage, &facility_id)?;
    if info.sender != facility.authority {
        return Err(ContractError::unauthorized(
            info.sender.as_str(),
            "change the payout of this facility",
        ));
    }
    facility.payout = deps.api.addr_validate(&payout)?;
    FACILITIES.save(deps.storage, &facility_id, &facility)?;
    Ok(Response::new()
        .add_attribute("action", "update_facility_payout")
        .add_attribute("facility_id", facility_id)
        .add_attribute("payout", facility.payout.as_str()))
}

fn deactivate_facility(deps: DepsMut, info: MessageInfo, facility_id: String) -> ExecResult {
    nonpayable(&info)?;
    let config = CONFIG.load(deps.storage)?;
    let mut facility = load_facility(deps.storage, &facility_id)?;
    if info.sender != facility.authority && info.sender != config.admin {
        return Err(ContractError::unauthorized(
            info.sender.as_str(),
            "deactivate this facility",
        ));
    }
    facility.active = false;
    FACILITIES.save(deps.storage, &facility_id, &facility)?;
    Ok(Response::new()
        .add_attribute("action", "deactivate_facility")
        .add_attribute("facility_id", facility_id)
        .add_attribute("by", info.sender.as_str()))
}

// ---- Payments and refunds -------------------------------------------------------------------

fn pay(
    deps: DepsMut,
    env: Env,
    funds: Funds,
    facility_id: String,
    invoice_id: String,
) -> ExecResult {
    check_id(&facility_id)?;
    check_id(&invoice_id)?;
    let now = env.block.time.seconds();
    let config = CONFIG.load(deps.storage)?;
    let facility = load_facility(deps.storage, &facility_id)?;
    check_payable(deps.storage, &config, &facility, &funds, now)?;
    if PAYMENTS.has(deps.storage, (&funds.from, &invoice_id)) {
        return Err(ContractError::AlreadyPaid {
            payer: funds.from.into_string(),
            invoice_id,
        });
    }
    let fee = fee_for(funds.amount, config.fee_bps)?;
    let net = funds
        .amount
        .checked_sub(fee)
        .map_err(|_| ContractError::MathOverflow)?;
    let payment = Payment {
        payer: funds.from,
        facility_id,
        invoice_id,
        asset: funds.asset,
        amount: funds.amount,
        fee,
        refunded: Uint128::zero(),
        paid_at: now,
    };
    PAYMENTS.save(
        deps.storage,
        (&payment.payer, &payment.invoice_id),
        &payment,
    )?;
    let messages = [
        transfer(&payment.asset, &facility.payout, net)?,
        transfer(&payment.asset, &config.treasury, fee)?,
    ];
    Ok(Response::new()
        .add_messages(messages.into_iter().flatten())
        .add_attribute("action", "pay")
        .add_attribute("facility_id", payment.facility_id)
        .add_attribute("invoice_id", payment.invoice_id)
        .add_attribute("payer", payment.payer.as_str())
        .add_attribute("asset", payment.asset.key())
        .add_attribute("amount", payment.amount.to_string())
        .add_attribute("fee", fee.to_string())
        .add_attribute("net", net.to_string())
        .add_attribute("payout", facility.payout.as_str())
        .add_attribute("paid_at", now.to_string()))
}

/// The facility authority sends the refund with the message (from its own funds, as on
/// Solana); the contract forwards it to the payer. Allowed while paused.
fn refund(deps: DepsMut, funds: Funds, payer: String, invoice_id: String) -> ExecResult {
    let payer = deps.api.addr_validate(&payer)?;
    let mut payment = PAYMENTS
        .may_load(deps.storage, (&payer, &invoice_id))?
        .ok_or_else(|| ContractError::PaymentNotFound {
            payer: payer.to_string(),
            invoice_id: invoice_id.clone(),
        })?;
    let facility = load_facility(deps.storage, &payment.facility_id)?;
    if funds.from != facility.authority {
        return Err(ContractError::unauthorized(
            funds.from.as_str(),
            "refund this payment",
        ));
    }
    if funds.asset != payment.asset {
        return Err(ContractError::WrongFunds {
            reason: format!(
                "refund must be paid in {}, got {}",
                payment.asset.key(),
                funds.asset.key()
            ),
        });
    }
    if funds.amount.is_zero() {
        return Err(ContractError::InvalidAmount);
    }
    let total = payment
        .refunded
        .checked_add(funds.amount)
        .map_err(|_| ContractError::MathOverflow)?;
    if total > payment.amount {
        return Err(ContractError::RefundExceedsPayment {
            requested: funds.amount.to_string(),
            refundable: (payment.amount - payment.refunded).to_string(),
        });
    }
    payment.refunded = total;
    PAYMENTS.save(deps.storage, (&payer, &invoice_id), &payment)?;
    Ok(Response::new()
        .add_messages(transfer(&payment.asset, &payer, funds.amount)?)
        .add_attribute("action", "refund")
        .add_attribute("facility_id", payment.facility_id)
        .add_attribute("invoice_id", invoice_id)
        .add_attribute("payer", payer.as_str())
        .add_attribute("asset", payment.asset.key())
        .add_attribute("amount", funds.amount.to_string())
        .add_attribute("refunded_total", total.to_string()))
}

// ---- Escrow (pending / post / void) --------------------------------------------------------

fn open_escrow(
    deps: DepsMut,
    env: Env,
    funds: Funds,
    escrow_id: String,
    facility_id: String,
    arbiter: String,
    expires_at: u64,
) -> ExecResult {
    check_id(&escrow_id)?;
    check_id(&facility_id)?;
    let now = env.block.time.seconds();
    let config = CONFIG.load(deps.storage)?;
    let facility = load_facility(deps.storage, &facility_id)?;
    check_payable(deps.storage, &config, &facility, &funds, now)?;
    if expires_at <= now {
        return Err(ContractError::InvalidExpiry);
    }
    let arbiter = deps.api.addr_validate(&arbiter)?;
    if ESCROWS.has(deps.storage, (&funds.from, &escrow_id)) {
        return Err(ContractError::EscrowExists {
            payer: funds.from.into_string(),
            escrow_id,
        });
    }
    let escrow = Escrow {
        payer: funds.from,
        escrow_id,
        facility_id,
        arbiter,
        asset: funds.asset,
        amount: funds.amount,
        released: Uint128::zero(),
        refunded: Uint128::zero(),
        expires_at,
    };
    ESCROWS.save(deps.storage, (&escrow.payer, &escrow.escrow_id), &escrow)?;
    Ok(Response::new()
        .add_attribute("action", "open_escrow")
        .add_attribute("escrow_id", escrow.escrow_id)
        .add_attribute("payer", escrow.payer.as_str())
        .add_attribute("facility_id", escrow.facility_id)
        .add_attribute("arbiter", escrow.arbiter.as_str())
        .add_attribute("asset", escrow.asset.key())
        .add_attribute("amount", escrow.amount.to_string())
        .add_attribute("expires_at", expires_at.to_string()))
}

fn release_escrow(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    payer: String,
    escrow_id: String,
    amount: Uint128,
) -> ExecResult {
    nonpayable(&info)?;
    let now = env.block.time.seconds();
    let payer = deps.api.addr_validate(&payer)?;
    let mut escrow = load_escrow(deps.storage, &payer, &escrow_id)?;
    if info.sender != escrow.payer && info.sender != escrow.arbiter {
        return Err(ContractError::unauthorized(
            info.sender.as_str(),
            "release this escrow",
        ));
    }
    let config = CONFIG.load(deps.storage)?;
    if config.paused {
        return Err(ContractError::Paused);
    }
    let facility = load_facility(deps.storage, &escrow.facility_id)?;
    if !facility.active {
        return Err(ContractError::FacilityInactive {
            facility_id: facility.facility_id,
        });
    }
    if amount.is_zero() {
        return Err(ContractError::InvalidAmount);
    }
    let remaining = escrow.remaining().ok_or(ContractError::MathOverflow)?;
    if remaining.is_zero() {
        return Err(ContractError::EscrowSettled);
    }
    if now >= escrow.expires_at {
        return Err(ContractError::EscrowExpired);
    }
    if amount > remaining {
        return Err(ContractError::ReleaseExceedsEscrow {
            requested: amount.to_string(),
            remaining: remaining.to_string(),
        });
    }
    escrow.released = escrow
        .released
        .checked_add(amount)
        .map_err(|_| ContractError::MathOverflow)?;
    let fee = fee_for(amount, config.fee_bps)?;
    let net = amount
        .checked_sub(fee)
        .map_err(|_| ContractError::MathOverflow)?;
    ESCROWS.save(deps.storage, (&payer, &escrow_id), &escrow)?;
    let messages = [
        transfer(&escrow.asset, &facility.payout, net)?,
        transfer(&escrow.asset, &config.treasury, fee)?,
    ];
    Ok(Response::new()
        .add_messages(messages.into_iter().flatten())
        .add_attribute("action", "release_escrow")
        .add_attribute("escrow_id", escrow_id)
        .add_attribute("payer", payer.as_str())
        .add_attribute("by", info.sender.as_str())
        .add_attribute("asset", escrow.asset.key())
        .add_attribute("amount", amount.to_string())
        .add_attribute("fee", fee.to_string())
        .add_attribute("net", net.to_string())
        .add_attribute("released_total", escrow.released.to_string()))
}

fn refund_escrow(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    payer: String,
    escrow_id: String,
) -> ExecResult {
    nonpayable(&info)?;
    let now = env.block.time.seconds();
    let payer = deps.api.addr_validate(&payer)?;
    let mut escrow = load_escrow(deps.storage, &payer, &escrow_id)?;
    let facility = load_facility(deps.storage, &escrow.facility_id)?;
    let privileged = info.sender == facility.authority || info.sender == escrow.arbiter;
    if !privileged && now < escrow.expires_at {
        return Err(ContractError::EarlyRefund);
    }
    let remaining = escrow.remaining().ok_or(ContractError::MathOverflow)?;
    if remaining.is_zero() {
        return Err(ContractError::EscrowSettled);
    }
    escrow.refunded = escrow
        .refunded
        .checked_add(remaining)
        .map_err(|_| ContractError::MathOverflow)?;
    ESCROWS.save(deps.storage, (&payer, &escrow_id), &escrow)?;
    Ok(Response::new()
        .add_messages(transfer(&escrow.asset, &payer, remaining)?)
        .add_attribute("action", "refund_escrow")
        .add_attribute("escrow_id", escrow_id)
        .add_attribute("payer", payer.as_str())
        .add_attribute("by", info.sender.as_str())
        .add_attribute("asset", escrow.asset.key())
        .add_attribute("amount", remaining.to_string()))
}

// ---- cw20 Receive hook ----------------------------------------------------------------------

fn receive_cw20(deps: DepsMut, env: Env, info: MessageInfo, msg: Cw20ReceiveMsg) -> ExecResult {
    nonpayable(&info)?;
    // The token contract is the caller; only accepted ones may credit anything.
    let asset = AssetInfo::Cw20 {
        contract: info.sender.to_string(),
    };
    if !ASSETS.has(deps.storage, &asset.key()) {
        return Err(ContractError::UnknownToken {
            token: info.sender.into_string(),
        });
    }
    let funds = Funds {
        from: deps.api.addr_validate(&msg.sender)?,
        asset,
        amount: msg.amount,
    };
    let hook: ReceiveMsg = from_json(&msg.msg)?;
    match hook {
        ReceiveMsg::Pay {
            facility_id,
            invoice_id,
        } => pay(deps, env, funds, facility_id, invoice_id),
        ReceiveMsg::Refund { payer, invoice_id } => refund(deps, funds, payer, invoice_id),
        ReceiveMsg::OpenEscrow {
            escrow_id,
            facility_id,
            arbiter,
            expires_at,
        } => open_escrow(
            deps,
            env,
            funds,
            escrow_id,
            facility_id,
            arbiter,
            expires_at,
        ),
    }
}

// ---- KYC attestations -----------------------------------------------------------------------

fn check_compliance(storage: &dyn Storage, info: &MessageInfo) -> Result<(), ContractError> {
    nonpayable(info)?;
    let config = CONFIG.load(storage)?;
    if info.sender != config.compliance_authority {
        return Err(ContractError::unauthorized(
            info.sender.as_str(),
            "manage KYC attestations",
        ));
    }
    Ok(())
}

fn check_attestation_input(level: u8, expires_at: u64, now: u64) -> Result<(), ContractError> {
    if level < 1 {
        return Err(ContractError::InvalidKycLevel);
    }
    if expires_at <= now {
        return Err(ContractError::InvalidExpiry);
    }
    Ok(())
}

fn write_attestation(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    wallet: String,
    level: u8,
    expires_at: u64,
) -> ExecResult {
    check_compliance(deps.storage, &info)?;
    let now = env.block.time.seconds();
    check_attestation_input(level, expires_at, now)?;
    let wallet = deps.api.addr_validate(&wallet)?;
    if ATTESTATIONS.has(deps.storage, &wallet) {
        return Err(ContractError::AttestationExists {
            wallet: wallet.into_string(),
        });
    }
    let attestation = Attestation {
        wallet,
        level,
        issued_at: now,
        expires_at,
        revoked: false,
    };
    ATTESTATIONS.save(deps.storage, &attestation.wallet, &attestation)?;
    Ok(attestation_response("write_attestation", &attestation))
}

fn renew_attestation(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    wallet: String,
    level: u8,
    expires_at: u64,
) -> ExecResult {
    check_compliance(deps.storage, &info)?;
    let now = env.block.time.seconds();
    check_attestation_input(level, expires_at, now)?;
    let wallet = deps.api.addr_validate(&wallet)?;
    let mut attestation = load_attestation(deps.storage, &wallet)?;
    attestation.level = level;
    attestation.issued_at = now;
    attestation.expires_at = expires_at;
    attestation.revoked = false;
    ATTESTATIONS.save(deps.storage, &wallet, &attestation)?;
    Ok(attestation_response("renew_attestation", &attestation))
}

fn revoke_attestation(deps: DepsMut, info: MessageInfo, wallet: String) -> ExecResult {
    check_compliance(deps.storage, &info)?;
    let wallet = deps.api.addr_validate(&wallet)?;
    let mut attestation = load_attestation(deps.storage, &wallet)?;
    attestation.revoked = true;
    ATTESTATIONS.save(deps.storage, &wallet, &attestation)?;
    Ok(Response::new()
        .add_attribute("action", "revoke_attestation")
        .add_attribute("wallet", wallet.as_str()))
}

fn attestation_response(action: &str, a: &Attestation) -> Response {
    Response::new()
        .add_attribute("action", action)
        .add_attribute("wallet", a.wallet.as_str())
        .add_attribute("level", a.level.to_string())
        .add_attribute("expires_at", a.expires_at.to_string())
}

// ---- Settlement -----------------------------------------------------------------------------

fn commit_batch(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    batch_number: u64,
    root: HexBinary,
    entry_count: u64,
    totals: Vec<AssetTotal>,
) -> ExecResult {
    nonpayable(&info)?;
    let mut config = CONFIG.load(deps.storage)?;
    if info.sender != config.settlement_authority {
        return Err(ContractError::unauthorized(
            info.sender.as_str(),
            "commit settlement batches",
        ));
    }
    let expected = config
        .last_batch_number
        .checked_add(1)
        .ok_or(ContractError::MathOverflow)?;
    if batch_number != expected {
        return Err(ContractError::BatchOutOfSequence {
            expected,
            got: batch_number,
        });
    }
    if entry_count == 0 {
        return Err(ContractError::EmptyBatch);
    }
    if totals.len() > MAX_BATCH_ASSETS {
        return Err(ContractError::TooManyAssetTotals {
            got: totals.len(),
            max: MAX_BATCH_ASSETS,
        });
    }
    let depth = tree_depth(entry_count);
    if depth > MAX_TREE_DEPTH {
        return Err(ContractError::TreeTooDeep {
            entry_count,
            max_depth: MAX_TREE_DEPTH,
        });
    }
    if root.len() != 32 {
        return Err(ContractError::InvalidRoot { len: root.len() });
    }
    let totals = totals
        .into_iter()
        .map(|t| {
            Ok(AssetTotal {
                asset: checked_asset(deps.api, t.asset)?,
                amount: t.amount,
            })
        })
        .collect::<Result<Vec<_>, ContractError>>()?;
    config.last_batch_number = batch_number;
    CONFIG.save(deps.storage, &config)?;
    let batch = SettlementBatch {
        batch_number,
        root,
        entry_count,
        depth,
        totals,
        committed_at: env.block.time.seconds(),
    };
    BATCHES.save(deps.storage, batch_number, &batch)?;
    let totals_attr = batch
        .totals
        .iter()
        .map(|t| format!("{}={}", t.asset.key(), t.amount))
        .collect::<Vec<_>>()
        .join(";");
    Ok(Response::new()
        .add_attribute("action", "commit_batch")
        .add_attribute("batch_number", batch_number.to_string())
        .add_attribute("root", batch.root.to_hex())
        .add_attribute("entry_count", entry_count.to_string())
        .add_attribute("depth", depth.to_string())
        .add_attribute("totals", totals_attr))
}

/// `ceil(log2(n))`, 0 for a single leaf (ADR 0002).
pub fn tree_depth(entry_count: u64) -> u8 {
    if entry_count <= 1 {
        return 0;
    }
    // At most 64, so the cast cannot truncate.
    (64 - (entry_count - 1).leading_zeros()) as u8
}

// ---- Bridge inbox ---------------------------------------------------------------------------

fn receive_bridge_message(
    deps: DepsMut,
    env: Env,
    info: MessageInfo,
    message: BridgeMessage,
    signatures: Vec<ValidatorSignature>,
) -> ExecResult {
    nonpayable(&info)?;
    check_id(&message.id)?;
    if message.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ContractError::PayloadTooLarge {
            len: message.payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let set = VALIDATOR_SET
        .may_load(deps.storage)?
        .ok_or(ContractError::BridgeNotConfigured)?;
    if message.set_version != set.version {
        return Err(ContractError::WrongSetVersion {
            expected: set.version,
            got: message.set_version,
        });
    }
    if INBOX.has(deps.storage, &message.id) {
        return Err(ContractError::MessageReplayed { id: message.id });
    }
    // Cheap structural checks before any signature is verified.
    for pair in signatures.windows(2) {
        match pair[0].pubkey.as_slice().cmp(pair[1].pubkey.as_slice()) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => {
                return Err(ContractError::DuplicateSigner {
                    pubkey: pair[1].pubkey.to_hex(),
                });
            }
            std::cmp::Ordering::Greater => return Err(ContractError::SignersNotSorted),
        }
    }
    for s in &signatures {
        if set.validators.binary_search(&s.pubkey).is_err() {
            return Err(ContractError::UnknownSigner {
                pubkey: s.pubkey.to_hex(),
            });
        }
    }
    let threshold = usize::try_from(set.threshold).map_err(|_| ContractError::MathOverflow)?;
    if signatures.len() < threshold {
        return Err(ContractError::BelowThreshold {
            got: signatures.len(),
            threshold: set.threshold,
        });
    }
    let digest = signing_digest(&message, &env.block.chain_id, env.contract.address.as_str());
    for s in &signatures {
        // A malformed signature is as invalid as a wrong one.
        let ok = deps
            .api
            .secp256k1_verify(&digest, &s.signature, &s.pubkey)
            .unwrap_or(false);
        if !ok {
            return Err(ContractError::InvalidSignature {
                pubkey: s.pubkey.to_hex(),
            });
        }
    }
    let stored = InboxMessage {
        id: message.id,
        source_chain: message.source_chain,
        set_version: message.set_version,
        payload: message.payload,
        signers: signatures.into_iter().map(|s| s.pubkey).collect(),
        received_at: env.block.time.seconds(),
    };
    INBOX.save(deps.storage, &stored.id, &stored)?;
    Ok(Response::new()
        .add_attribute("action", "bridge_message")
        .add_attribute("message_id", stored.id)
        .add_attribute("source_chain", stored.source_chain)
        .add_attribute("set_version", stored.set_version.to_string())
        .add_attribute("signers", stored.signers.len().to_string())
        .add_attribute("digest", HexBinary::from(digest.as_slice()).to_hex()))
}

// ---- Shared checks ---------------------------------------------------------------------------

fn nonpayable(info: &MessageInfo) -> Result<(), ContractError> {
    if info.funds.is_empty() {
        Ok(())
    } else {
        Err(ContractError::WrongFunds {
            reason: "this message takes no funds".into(),
        })
    }
}

/// Exactly one coin of an accepted denom.
fn native_funds(storage: &dyn Storage, info: &MessageInfo) -> Result<Funds, ContractError> {
    let [coin] = info.funds.as_slice() else {
        return Err(ContractError::WrongFunds {
            reason: format!("send exactly one coin, got {}", info.funds.len()),
        });
    };
    let asset = AssetInfo::Native {
        denom: coin.denom.clone(),
    };
    if !ASSETS.has(storage, &asset.key()) {
        return Err(ContractError::AssetNotAccepted { asset: asset.key() });
    }
    let amount = Uint128::try_from(coin.amount).map_err(|_| ContractError::WrongFunds {
        reason: "amount does not fit 128 bits".into(),
    })?;
    Ok(Funds {
        from: info.sender.clone(),
        asset,
        amount,
    })
}

/// Every inflow: not paused, facility active, asset enabled, amount positive, and a valid
/// attestation of the payer above the asset's KYC threshold.
fn check_payable(
    storage: &dyn Storage,
    config: &Config,
    facility: &Facility,
    funds: &Funds,
    now: u64,
) -> Result<(), ContractError> {
    if config.paused {
        return Err(ContractError::Paused);
    }
    let key = funds.asset.key();
    let asset = ASSETS
        .may_load(storage, &key)?
        .ok_or_else(|| ContractError::AssetNotAccepted { asset: key.clone() })?;
    if !asset.enabled {
        return Err(ContractError::AssetDisabled { asset: key });
    }
    if !facility.active {
        return Err(ContractError::FacilityInactive {
            facility_id: facility.facility_id.clone(),
        });
    }
    if funds.amount.is_zero() {
        return Err(ContractError::InvalidAmount);
    }
    if funds.amount > asset.kyc_threshold {
        let kyc = ATTESTATIONS
            .may_load(storage, &funds.from)?
            .ok_or_else(|| ContractError::KycRequired {
                threshold: asset.kyc_threshold.to_string(),
            })?;
        if kyc.revoked {
            return Err(ContractError::AttestationRevoked);
        }
        if kyc.expires_at <= now {
            return Err(ContractError::AttestationExpired);
        }
    }
    Ok(())
}

fn check_fee(fee_bps: u16) -> Result<(), ContractError> {
    if fee_bps > MAX_FEE_BPS {
        return Err(ContractError::FeeTooHigh {
            fee_bps,
            max: MAX_FEE_BPS,
        });
    }
    Ok(())
}

/// Fee in base units, rounded down (same formula as the Solana program's `fee_for`).
pub fn fee_for(amount: Uint128, fee_bps: u16) -> Result<Uint128, ContractError> {
    amount
        .checked_multiply_ratio(fee_bps, BPS_DENOMINATOR)
        .map_err(|_| ContractError::MathOverflow)
}

fn check_id(id: &str) -> Result<(), ContractError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(ContractError::InvalidId { id: id.to_owned() })
    }
}

fn checked_asset(api: &dyn Api, asset: AssetInfo) -> Result<AssetInfo, ContractError> {
    Ok(match asset {
        AssetInfo::Native { denom } => {
            // Cosmos SDK denoms: 3–128 characters, letter first.
            let ok = (3..=128).contains(&denom.len())
                && denom.starts_with(|c: char| c.is_ascii_alphabetic())
                && denom.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'/' | b':' | b'.' | b'_' | b'-')
                });
            if !ok {
                return Err(ContractError::WrongFunds {
                    reason: format!("invalid denom {denom:?}"),
                });
            }
            AssetInfo::Native { denom }
        }
        AssetInfo::Cw20 { contract } => AssetInfo::Cw20 {
            contract: api.addr_validate(&contract)?.into_string(),
        },
    })
}

fn checked_asset_config(api: &dyn Api, a: AssetConfig) -> Result<AssetConfig, ContractError> {
    Ok(AssetConfig {
        asset: checked_asset(api, a.asset)?,
        kyc_threshold: a.kyc_threshold,
        enabled: a.enabled,
    })
}

fn transfer(asset: &AssetInfo, to: &Addr, amount: Uint128) -> StdResult<Option<CosmosMsg>> {
    if amount.is_zero() {
        return Ok(None);
    }
    Ok(Some(match asset {
        AssetInfo::Native { denom } => cosmwasm_std::BankMsg::Send {
            to_address: to.to_string(),
            amount: cosmwasm_std::coins(amount.u128(), denom.as_str()),
        }
        .into(),
        AssetInfo::Cw20 { contract } => WasmMsg::Execute {
            contract_addr: contract.clone(),
            msg: to_json_binary(&Cw20ExecuteMsg::Transfer {
                recipient: to.to_string(),
                amount,
            })?,
            funds: vec![],
        }
        .into(),
    }))
}

fn load_facility(storage: &dyn Storage, facility_id: &str) -> Result<Facility, ContractError> {
    FACILITIES
        .may_load(storage, facility_id)?
        .ok_or_else(|| ContractError::FacilityNotFound {
            facility_id: facility_id.to_owned(),
        })
}

fn load_escrow(
    storage: &dyn Storage,
    payer: &Addr,
    escrow_id: &str,
) -> Result<Escrow, ContractError> {
    ESCROWS
        .may_load(storage, (payer, escrow_id))?
        .ok_or_else(|| ContractError::EscrowNotFound {
            payer: payer.to_string(),
            escrow_id: escrow_id.to_owned(),
        })
}

fn load_attestation(storage: &dyn Storage, wallet: &Addr) -> Result<Attestation, ContractError> {
    ATTESTATIONS
        .may_load(storage, wallet)?
        .ok_or_else(|| ContractError::AttestationNotFound {
            wallet: wallet.to_string(),
        })
}

// ---- Queries ---------------------------------------------------------------------------------

pub fn query(deps: Deps, env: Env, msg: QueryMsg) -> StdResult<Binary> {
    let api = deps.api;
    let storage = deps.storage;
    match msg {
        QueryMsg::Config {} => {
            let c = CONFIG.load(storage)?;
            to_json_binary(&ConfigResponse {
                admin: c.admin.into_string(),
                pending_admin: c.pending_admin.map(Addr::into_string),
                treasury: c.treasury.into_string(),
                compliance_authority: c.compliance_authority.into_string(),
                settlement_authority: c.settlement_authority.into_string(),
                fee_bps: c.fee_bps,
                paused: c.paused,
                last_batch_number: c.last_batch_number,
            })
        }
        QueryMsg::Asset { asset } => to_json_binary(&ASSETS.may_load(storage, &asset.key())?),
        QueryMsg::Assets { start_after, limit } => {
            let start = start_after.as_deref().map(Bound::exclusive);
            to_json_binary(&page(
                ASSETS.range(storage, start, None, Order::Ascending),
                limit,
            )?)
        }
        QueryMsg::Facility { facility_id } => {
            to_json_binary(&FACILITIES.may_load(storage, &facility_id)?)
        }
        QueryMsg::Facilities { start_after, limit } => {
            let start = start_after.as_deref().map(Bound::exclusive);
            to_json_binary(&page(
                FACILITIES.range(storage, start, None, Order::Ascending),
                limit,
            )?)
        }
        QueryMsg::Payment { payer, invoice_id } => {
            let payer = api.addr_validate(&payer)?;
            to_json_binary(&PAYMENTS.may_load(storage, (&payer, &invoice_id))?)
        }
        QueryMsg::Payments {
            payer,
            start_after,
            limit,
        } => {
            let payer = api.addr_validate(&payer)?;
            let start = start_after.as_deref().map(Bound::exclusive);
            to_json_binary(&page(
                PAYMENTS
                    .prefix(&payer)
                    .range(storage, start, None, Order::Ascending),
                limit,
            )?)
        }
        QueryMsg::Escrow { payer, escrow_id } => {
            let payer = api.addr_validate(&payer)?;
            to_json_binary(&ESCROWS.may_load(storage, (&payer, &escrow_id))?)
        }
        QueryMsg::Escrows {
            payer,
            start_after,
            limit,
        } => {
            let payer = api.addr_validate(&payer)?;
            let start = start_after.as_deref().map(Bound::exclusive);
            to_json_binary(&page(
                ESCROWS
                    .prefix(&payer)
                    .range(storage, start, None, Order::Ascending),
                limit,
            )?)
        }
        QueryMsg::Attestation { wallet } => {
            let wallet = api.addr_validate(&wallet)?;
            to_json_binary(&ATTESTATIONS.may_load(storage, &wallet)?)
        }
        QueryMsg::Attestations { start_after, limit } => {
            let start_addr = start_after.map(|s| api.addr_validate(&s)).transpose()?;
            let start = start_addr.as_ref().map(Bound::exclusive);
            to_json_binary(&page(
                ATTESTATIONS.range(storage, start, None, Order::Ascending),
                limit,
            )?)
        }
        QueryMsg::Batch { batch_number } => {
            to_json_binary(&BATCHES.may_load(storage, batch_number)?)
        }
        QueryMsg::Batches { start_after, limit } => {
            let start = start_after.map(Bound::exclusive);
            to_json_binary(&page(
                BATCHES.range(storage, start, None, Order::Ascending),
                limit,
            )?)
        }
        QueryMsg::ValidatorSet {} => {
            let set = VALIDATOR_SET.may_load(storage)?;
            to_json_binary(&set.map_or(
                ValidatorSetResponse {
                    version: 0,
                    validators: vec![],
                    threshold: 0,
                },
                |s| ValidatorSetResponse {
                    version: s.version,
                    validators: s.validators,
                    threshold: s.threshold,
                },
            ))
        }
        QueryMsg::BridgeMessage { id } => to_json_binary(&INBOX.may_load(storage, &id)?),
        QueryMsg::BridgeMessages { start_after, limit } => {
            let start = start_after.as_deref().map(Bound::exclusive);
            to_json_binary(&page(
                INBOX.range(storage, start, None, Order::Ascending),
                limit,
            )?)
        }
        QueryMsg::BridgeDigest { message } => {
            let digest =
                signing_digest(&message, &env.block.chain_id, env.contract.address.as_str());
            to_json_binary(&HexBinary::from(digest.as_slice()))
        }
    }
}

/// Values of at most `limit` (default 10, capped at 30) entries.
fn page<K, V>(
    iter: impl Iterator<Item = StdResult<(K, V)>>,
    limit: Option<u32>,
) -> StdResult<Vec<V>> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT) as usize;
    iter.take(limit).map(|r| r.map(|(_, v)| v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_rounds_down_like_the_solana_program() {
        assert_eq!(fee_for(Uint128::new(999), 100).ok(), Some(Uint128::new(9)));
        assert_eq!(
            fee_for(Uint128::new(10_000), 250).ok(),
            Some(Uint128::new(250))
        );
        assert_eq!(
            fee_for(Uint128::MAX, 1_000).ok(),
            Some(Uint128::MAX / Uint128::new(10))
        );
    }

    #[test]
    fn tree_depth_is_ceil_log2() {
        let cases = [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (1 << 32, 32),
            ((1 << 32) + 1, 33),
        ];
        for (n, d) in cases {
            assert_eq!(tree_depth(n), d, "n = {n}");
        }
    }
}
