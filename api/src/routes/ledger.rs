//! `/api/v1/ledger/*` (seed section 5): accounts, entries (transfers), balances,
//! transactions, reconciliation, financial reports, audit trail.
//!
//! Amounts and ids are decimal strings in JSON (128-bit integers do not survive JSON
//! numbers); ids in paths may also be given as UUIDs, the ledger's storage form.

use advancia_auth::Role;
use advancia_ledger::{Ledger, LedgerDef, NewAccount, NewTransfer, OnChainFact, ReconcileScope};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::body::JsonObject;
use crate::pagination::{Page, PageParams};
use crate::principal::Principal;
use crate::problem::{Problem, Result};

/// Who may read the books: operators and compliance, or partners' keys with this scope.
const READERS: &[Role] = &[Role::Admin, Role::ComplianceOfficer];
pub const READ_SCOPE: &str = "ledger:read";
/// Who may write off-chain entries (fees, tax, adjustments) and define accounts.
const WRITERS: &[Role] = &[Role::Admin];

fn require_reader(p: &Principal) -> Result<()> {
    p.require_scope_or_role(READ_SCOPE, READERS)
}

fn require_writer(p: &Principal) -> Result<()> {
    p.require_role(WRITERS)?;
    Ok(())
}

/// Parses a ledger id from a path: decimal u128 or UUID.
fn parse_id(s: &str) -> Result<u128> {
    s.parse::<u128>()
        .ok()
        .or_else(|| uuid::Uuid::try_parse(s).ok().map(|u| u.as_u128()))
        .filter(|id| *id != 0)
        // Not an id: nothing is found under it.
        .ok_or_else(|| {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
                .with_detail(format!("`{s}` is not a ledger id (decimal or UUID)"))
        })
}

/// 404 titled after what is missing (`account not found`).
fn not_found(what: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("{what} not found"),
    )
}

fn ledger(st: &AppState) -> &Ledger {
    &st.ledger
}

#[derive(Deserialize, ToSchema)]
pub struct AssetBody {
    /// Ledger number of the asset (non-zero).
    #[schema(minimum = 1, maximum = 4294967295_u64, format = Int64)]
    id: u32,
    /// e.g. `USDC`.
    #[schema(min_length = 1)]
    code: String,
    /// Decimal places of the base unit (USDC 6, SOL 9, USD 2).
    #[schema(maximum = 38)]
    scale: u8,
}

/// Define an asset (a ledger of its own); idempotent for the same definition.
#[utoipa::path(post, path = "/api/v1/ledger/assets", tag = "ledger", request_body = AssetBody,
    responses((status = 201, description = "Defined"), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "The id or the code is defined differently", body = Problem)),
    security(("bearer" = [])))]
pub async fn define_asset(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<AssetBody>,
) -> Result<impl IntoResponse> {
    require_writer(&p)?;
    let def = LedgerDef {
        id: b.id,
        code: b.code,
        scale: b.scale,
    };
    ledger(&st).create_ledger(&def).await?;
    Ok((StatusCode::CREATED, Json(def)))
}

/// Assets (ledgers) and their scales.
#[utoipa::path(get, path = "/api/v1/ledger/assets", tag = "ledger",
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Assets")), security(("bearer" = []), ("api_key" = [])))]
pub async fn list_assets(State(st): State<AppState>, p: Principal) -> Result<impl IntoResponse> {
    require_reader(&p)?;
    Ok(Json(ledger(&st).ledgers().await?))
}

#[derive(Deserialize, ToSchema)]
pub struct AccountsBody {
    /// `[{id, ledger, kind, owner: {kind, id}, flags, jurisdiction, user_data}]`.
    #[schema(value_type = Vec<Object>)]
    accounts: Vec<NewAccount>,
}

/// Create accounts; one result per account, in order (idempotent per id).
#[utoipa::path(post, path = "/api/v1/ledger/accounts", tag = "ledger", request_body = AccountsBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 201, description = "All created"), (status = 422, description = "Some rejected; `results` says which", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_accounts(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<AccountsBody>,
) -> Result<Response> {
    require_writer(&p)?;
    let results = ledger(&st).create_accounts(&b.accounts).await?;
    Ok(batch_response(results))
}

#[derive(Deserialize, ToSchema)]
pub struct EntriesBody {
    /// Transfers in order; `flags & 1` (linked) chains a transfer to the next: all or none.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    transfers: Vec<NewTransfer>,
}

/// Post ledger entries (double-entry transfers, two-phase with pending/post/void).
#[utoipa::path(post, path = "/api/v1/ledger/entries", tag = "ledger", request_body = EntriesBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 201, description = "All applied"), (status = 422, description = "Some rejected; `results` says which", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_entries(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<EntriesBody>,
) -> Result<Response> {
    require_writer(&p)?;
    if b.transfers.is_empty() {
        return Err(Problem::invalid("no transfers"));
    }
    let results = ledger(&st).create_transfers(&b.transfers).await?;
    Ok(batch_response(results))
}

/// 201 with every item when all succeeded; else 422 problem+json whose `results` lists
/// each item's outcome (`ok` with the stored item, or `error` with its code).
fn batch_response<T: serde::Serialize, E: serde::Serialize + std::fmt::Display>(
    results: Vec<std::result::Result<T, E>>,
) -> Response {
    let failed = results.iter().filter(|r| r.is_err()).count();
    let items: Vec<serde_json::Value> = results
        .into_iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(v) => serde_json::json!({ "index": index, "ok": v }),
            Err(e) => serde_json::json!({ "index": index, "error": e, "detail": e.to_string() }),
        })
        .collect();
    if failed == 0 {
        return (
            StatusCode::CREATED,
            Json(serde_json::json!({ "results": items })),
        )
            .into_response();
    }
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "batch-rejected",
        "Some items were rejected",
    )
    .with_detail(format!("{failed} of {} items rejected", items.len()))
    .with_extension("results", serde_json::Value::Array(items))
    .into_response()
}

/// An account with its four balances.
#[utoipa::path(get, path = "/api/v1/ledger/accounts/{id}/balance", tag = "ledger",
    params(("id" = String, Path, description = "Account id (decimal or UUID)")),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Account and balances"), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn account_balance(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    require_reader(&p)?;
    let account = ledger(&st)
        .account(parse_id(&id)?)
        .await?
        .ok_or_else(|| not_found("account"))?;
    Ok(Json(account))
}

/// Transfers touching an account, oldest first, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/ledger/accounts/{id}/transactions", tag = "ledger",
    params(("id" = String, Path, description = "Account id"), PageParams),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Page of transfers")),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn account_transactions(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<impl IntoResponse> {
    require_reader(&p)?;
    let id = parse_id(&id)?;
    let after: u64 = page.after()?.unwrap_or(0);
    let limit = page.limit();
    let rows = ledger(&st)
        .account_transfers(id, after, limit.saturating_add(1))
        .await?;
    Ok(Json(Page::from_rows(rows, limit, |t| t.seq)))
}

/// One transfer by id.
#[utoipa::path(get, path = "/api/v1/ledger/transactions/{id}", tag = "ledger",
    params(("id" = String, Path, description = "Transfer id (decimal or UUID)")),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Transfer"), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn transaction(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    require_reader(&p)?;
    let t = ledger(&st)
        .transfer(parse_id(&id)?)
        .await?
        .ok_or_else(|| not_found("transfer"))?;
    Ok(Json(t))
}

#[derive(Deserialize, ToSchema)]
pub struct ReconciliationBody {
    /// Facts observed on chain: `{external_ref: {chain, signature, ix_index}, account, ledger, amount}`.
    #[schema(value_type = Vec<Object>)]
    facts: Vec<OnChainFact>,
    /// `{chains: [..], from, to}` (ns timestamps, optional).
    #[schema(value_type = Object)]
    #[serde(default)]
    scope: ReconcileScope,
}

/// Compare the ledger with on-chain facts: missing, extra and mismatched items.
#[utoipa::path(post, path = "/api/v1/ledger/reconciliation", tag = "ledger", operation_id = "ledger_reconciliation", request_body = ReconciliationBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Machine-readable report")),
    security(("bearer" = [])))]
pub async fn reconciliation(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<ReconciliationBody>,
) -> Result<impl IntoResponse> {
    p.require_role(READERS)?;
    let report = ledger(&st).reconcile(&b.facts, &b.scope).await?;
    Ok(Json(
        serde_json::json!({ "clean": report.is_clean(), "report": report }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Which report.
    #[param(inline, value_type = ReportName)]
    report: String,
    /// Ledger (asset) number.
    ledger: u32,
    /// Period start, ns since the epoch (income statement, tax).
    from: Option<u64>,
    /// Period end (exclusive) or as-of time, ns since the epoch.
    to: Option<u64>,
}

/// The reports `financial_report` knows (documentation of its `match`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum ReportName {
    TrialBalance,
    BalanceSheet,
    IncomeStatement,
    Tax,
}

/// Financial reports per asset and period.
#[utoipa::path(get, path = "/api/v1/ledger/reports/financial", tag = "ledger",
    params(ReportQuery),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Report"), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn financial_report(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ReportQuery>,
) -> Result<Response> {
    p.require_role(READERS)?;
    let l = ledger(&st);
    let from = q.from.unwrap_or(0);
    Ok(match q.report.as_str() {
        "trial_balance" => Json(l.trial_balance(q.ledger, q.to).await?).into_response(),
        "balance_sheet" => Json(l.balance_sheet(q.ledger, q.to).await?).into_response(),
        "income_statement" => Json(l.income_statement(q.ledger, from, q.to).await?).into_response(),
        "tax" => Json(l.tax_report(q.ledger, from, q.to).await?).into_response(),
        other => {
            return Err(Problem::invalid(format!(
                "unknown report `{other}`; one of trial_balance, balance_sheet, income_statement, tax"
            )));
        }
    })
}

/// The audit chain's verification: intact, or the first break and its kind.
#[utoipa::path(get, path = "/api/v1/ledger/audit-trail", tag = "ledger",
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Verification report")),
    security(("bearer" = [])))]
pub async fn audit_trail(State(st): State<AppState>, p: Principal) -> Result<impl IntoResponse> {
    p.require_role(READERS)?;
    let report = ledger(&st).verify_audit_chain().await?;
    Ok(Json(
        serde_json::json!({ "intact": report.is_intact(), "report": report }),
    ))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ledger/assets", post(define_asset).get(list_assets))
        .route("/api/v1/ledger/accounts", post(create_accounts))
        .route("/api/v1/ledger/accounts/{id}/balance", get(account_balance))
        .route(
            "/api/v1/ledger/accounts/{id}/transactions",
            get(account_transactions),
        )
        .route("/api/v1/ledger/entries", post(create_entries))
        .route("/api/v1/ledger/transactions/{id}", get(transaction))
        .route("/api/v1/ledger/reconciliation", post(reconciliation))
        .route("/api/v1/ledger/reports/financial", get(financial_report))
        .route("/api/v1/ledger/audit-trail", get(audit_trail))
}
