//! `/api/v1/blockchain/*` (seed section 2). No server-held keys: wallets are watch-only
//! public addresses, and `transactions/send` relays transactions that wallets signed.
//!
//! - `POST /blockchain/wallets/create`: register a public address to follow (idempotent).
//! - `GET /blockchain/wallets`: the caller's registered addresses.
//! - `GET /blockchain/wallets/{address}/balance`: SOL and SPL token balances.
//! - `POST /blockchain/transactions/send`: relay a signed transaction that invokes our program.
//! - `GET /blockchain/transactions/{txHash}/status`: chain status and what the indexer saw.
//! - `GET /blockchain/gas-prices`: Solana priority fees over recent slots, and the base fee.
//! - `POST /blockchain/contracts/interact`: simulate an instruction, or build it unsigned.

use advancia_auth::Role;
use advancia_chains::Chain;
use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::{AccountMeta, Instruction};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::body::JsonObject;
use crate::pagination::{Page, PageParams};
use crate::principal::Principal;
use crate::problem::{Problem, Result};

/// API keys need this scope for the read routes; users need any role.
pub const READ_SCOPE: &str = "blockchain:read";
/// ... and this one to relay or simulate transactions.
pub const WRITE_SCOPE: &str = "blockchain:write";

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::invalid(detail)
}

/// 422 `invalid-address`: a string that is no address of the chain. (Any string is an
/// address's documented form; which ones decode to a key is not the schema's to say.)
fn not_an_address(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-address",
        "Invalid address",
    )
    .with_detail(detail)
}

/// A chain, as `Chain::from_str` reads it (documentation; a test keeps them equal).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum ChainName {
    Solana,
    Ethereum,
    Polygon,
    Bsc,
    Arbitrum,
    Base,
}

fn require(p: &Principal, scope: &str) -> Result<()> {
    p.require_scope_or_role(scope, &Role::ALL)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/blockchain/wallets/create", post(create_wallet))
        .route("/api/v1/blockchain/wallets", get(list_wallets))
        .route("/api/v1/blockchain/wallets/{address}/balance", get(balance))
        .route("/api/v1/blockchain/transactions/send", post(send))
        .route(
            "/api/v1/blockchain/transactions/{txHash}/status",
            get(transaction_status),
        )
        .route("/api/v1/blockchain/gas-prices", get(gas_prices))
        .route("/api/v1/blockchain/contracts/interact", post(interact))
}

#[derive(Deserialize, ToSchema)]
pub struct WalletBody {
    #[schema(inline, value_type = ChainName)]
    chain: String,
    /// Public address (base58 for Solana, 0x-hex for EVM chains); one that is not an
    /// address of `chain` is 422.
    address: String,
    label: Option<String>,
}

/// Register a watch-only wallet (a public address; no keys are created or stored).
#[utoipa::path(post, path = "/api/v1/blockchain/wallets/create", tag = "blockchain", request_body = WalletBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 201, description = "Registered"), (status = 200, description = "Already registered"),
        (status = 400, body = Problem), (status = 422, description = "Not an address of the chain", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_wallet(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<WalletBody>,
) -> Result<impl IntoResponse> {
    p.require_role(&Role::ALL)?;
    let chain: Chain = b.chain.parse()?;
    advancia_chains::address::normalize(chain, &b.address)
        .map_err(|e| not_an_address(e.to_string()))?;
    let (wallet, inserted) = st
        .wallets
        .register(p.user_id(), chain, &b.address, b.label.as_deref())
        .await?;
    let status = if inserted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(wallet)))
}

/// The caller's watch-only wallets, in registration order.
#[utoipa::path(get, path = "/api/v1/blockchain/wallets", tag = "blockchain", params(PageParams),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "A page of wallets")),
    security(("bearer" = [])))]
pub async fn list_wallets(
    State(st): State<AppState>,
    p: Principal,
    Query(page): Query<PageParams>,
) -> Result<impl IntoResponse> {
    p.require_role(&Role::ALL)?;
    let after: Option<uuid::Uuid> = page.after()?;
    let limit = page.limit();
    let rows = st.wallets.list(p.user_id(), after, limit + 1).await?;
    Ok(Json(Page::from_rows(rows, limit, |w| w.id)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BalanceParams {
    /// Chain of the address (default solana).
    #[param(inline, value_type = Option<ChainName>)]
    chain: Option<String>,
}

/// SOL and SPL token balances (Token and Token-2022) of a public address.
#[utoipa::path(get, path = "/api/v1/blockchain/wallets/{address}/balance", tag = "blockchain",
    params(("address" = String, Path, description = "Public address"), BalanceParams),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Balances in base units"), (status = 400, body = Problem),
        (status = 502, description = "Chain node unreachable", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn balance(
    State(st): State<AppState>,
    p: Principal,
    Path(address): Path<String>,
    Query(q): Query<BalanceParams>,
) -> Result<impl IntoResponse> {
    require(&p, READ_SCOPE)?;
    let chain: Chain = q.chain.as_deref().unwrap_or("solana").parse()?;
    // Not an address: no such wallet.
    let address = advancia_chains::address::normalize(chain, &address).map_err(|e| {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found").with_detail(e.to_string())
    })?;
    if chain.is_evm() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "chain-not-connected",
            "Chain not connected",
        )
        .with_detail(format!(
            "no {} node is configured for this deployment",
            chain.as_str()
        )));
    }
    let owner: Pubkey = address
        .parse()
        .map_err(|_| not_an_address(format!("`{address}` is not a Solana address")))?;
    Ok(Json(st.chain.balances(&owner).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct RelayBody {
    /// Base64 of a fully signed transaction (legacy or v0).
    transaction: String,
}

/// Relay a transaction a wallet signed. Only transactions that invoke our program are
/// relayed (this is not an open relay); signatures are verified before the node sees it.
#[utoipa::path(post, path = "/api/v1/blockchain/transactions/send", tag = "blockchain", operation_id = "send_transaction", request_body = RelayBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 202, description = "Accepted by the node; poll its status"),
        (status = 400, body = Problem), (status = 422, description = "Not a transaction, or rejected (signature, preflight)", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn send(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<RelayBody>,
) -> Result<impl IntoResponse> {
    require(&p, WRITE_SCOPE)?;
    let signature = st
        .chain
        .send_for_program(&b.transaction, &advancia_pay::ID)
        .await
        .map_err(|e| match e {
            // Any string is the documented form; one that is no transaction is refused.
            advancia_chains::ChainError::Invalid(why) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "transaction-rejected",
                "Unprocessable Content",
            )
            .with_detail(why),
            e => e.into(),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "signature": signature,
            "status_url": format!("/api/v1/blockchain/transactions/{signature}/status"),
        })),
    ))
}

/// Status of a transaction on the chain, and its indexed commitment if ours.
#[utoipa::path(get, path = "/api/v1/blockchain/transactions/{txHash}/status", tag = "blockchain",
    params(("txHash" = String, Path, description = "Transaction signature (base58)")),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Known to the chain"), (status = 404, description = "Unknown (never landed, or dropped)", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn transaction_status(
    State(st): State<AppState>,
    p: Principal,
    Path(tx_hash): Path<String>,
) -> Result<impl IntoResponse> {
    require(&p, READ_SCOPE)?;
    // Not a signature: no such transaction.
    let chain = st.chain.status(&tx_hash).await.map_err(|e| match e {
        advancia_chains::ChainError::Invalid(why) => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found").with_detail(why)
        }
        e => e.into(),
    })?;
    let indexed =
        advancia_indexer::lookup::transaction(&st.pool, advancia_indexer::SOLANA, &tx_hash)
            .await
            .map_err(|e| Problem::from_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e))?;
    match (chain, indexed) {
        (None, None) => Err(
            Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
                .with_detail(format!("the chain does not know transaction {tx_hash}")),
        ),
        (chain, indexed) => Ok(Json(serde_json::json!({
            "signature": tx_hash,
            "chain": chain,
            "indexed": indexed,
        }))),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeeParams {
    /// Comma-separated accounts the transaction will write (fees are per account lock).
    accounts: Option<String>,
}

/// Priority fees (micro-lamports per compute unit) over recent slots, and the base fee.
#[utoipa::path(get, path = "/api/v1/blockchain/gas-prices", tag = "blockchain", params(FeeParams),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Fee estimates per chain"),
        (status = 422, description = "An account that is not a Solana address, or more than 128", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn gas_prices(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<FeeParams>,
) -> Result<impl IntoResponse> {
    require(&p, READ_SCOPE)?;
    let accounts = q
        .accounts
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse::<Pubkey>()
                .map_err(|_| not_an_address(format!("`{a}` is not a Solana address")))
        })
        .collect::<Result<Vec<_>>>()?;
    if accounts.len() > 128 {
        return Err(Problem::refused("at most 128 accounts"));
    }
    let fees = st.chain.priority_fees(&accounts).await?;
    Ok(Json(serde_json::json!({ "solana": fees })))
}

#[derive(Deserialize, ToSchema)]
pub struct AccountMetaBody {
    pubkey: String,
    #[serde(default)]
    is_signer: bool,
    #[serde(default)]
    is_writable: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct InstructionBody {
    program_id: String,
    accounts: Vec<AccountMetaBody>,
    /// Base64 instruction data.
    data: String,
}

#[derive(Deserialize, ToSchema)]
pub struct InteractBody {
    /// Fee payer (base58).
    fee_payer: String,
    #[schema(min_items = 1, max_items = 16)]
    instructions: Vec<InstructionBody>,
    /// `simulate` (default): run without signatures and report; `build`: return unsigned.
    #[schema(inline, value_type = Option<ModeName>)]
    mode: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum ModeName {
    Simulate,
    Build,
}

fn key(s: &str, what: &str) -> Result<Pubkey> {
    s.trim()
        .parse()
        .map_err(|_| not_an_address(format!("{what} `{s}` is not a Solana address")))
}

/// Simulate instructions against current chain state (logs, compute units, error) or build
/// them into an unsigned transaction for a wallet.
#[utoipa::path(post, path = "/api/v1/blockchain/contracts/interact", tag = "blockchain", request_body = InteractBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Simulation result or unsigned transaction"), (status = 400, body = Problem),
        (status = 422, description = "A key that is not a Solana address, or data that is not base64", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn interact(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<InteractBody>,
) -> Result<impl IntoResponse> {
    require(&p, WRITE_SCOPE)?;
    if b.instructions.is_empty() || b.instructions.len() > 16 {
        return Err(invalid("between 1 and 16 instructions"));
    }
    let fee_payer = key(&b.fee_payer, "fee_payer")?;
    let mut ixs = Vec::with_capacity(b.instructions.len());
    for (i, ix) in b.instructions.iter().enumerate() {
        let data = base64::engine::general_purpose::STANDARD
            .decode(ix.data.trim())
            .map_err(|_| Problem::refused(format!("instructions[{i}].data is not base64")))?;
        let accounts = ix
            .accounts
            .iter()
            .map(|a| {
                Ok(AccountMeta {
                    pubkey: key(&a.pubkey, "account")?,
                    is_signer: a.is_signer,
                    is_writable: a.is_writable,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        ixs.push(Instruction {
            program_id: key(&ix.program_id, "program_id")?,
            accounts,
            data,
        });
    }
    match b.mode.as_deref().unwrap_or("simulate") {
        "simulate" => Ok(Json(
            serde_json::to_value(st.chain.simulate(&ixs, &fee_payer).await?).unwrap_or_default(),
        )),
        "build" => Ok(Json(
            serde_json::to_value(st.chain.unsigned_transaction(&ixs, &fee_payer).await?)
                .unwrap_or_default(),
        )),
        other => Err(invalid(format!(
            "mode `{other}` is neither simulate nor build"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_chains_are_the_chains() {
        let doc = serde_json::to_value(<ChainName as utoipa::PartialSchema>::schema())
            .unwrap_or_default();
        let names: Vec<&str> = Chain::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(doc["enum"], serde_json::json!(names));
    }
}
