//! `/api/v1/payments/*` (seed section 1): payment intents for wallets that sign their own
//! transactions, in the style of Solana Pay transaction requests.
//!
//! - `POST /payments/initiate` → the intent with its Solana Pay link
//!   (`solana:<url-encoded https link to /payments/{id}/transaction-request>`).
//! - `GET /payments/{id}/transaction-request` → `{label, icon}`; `POST` with
//!   `{"account": <wallet>}` → `{transaction, message}` (base64, unsigned, wallet pays the
//!   fee). Wallets call these without our credentials: the intent id is a random UUID.
//! - `GET /payments/{id}/status`, `POST /payments/{id}/confirm`, `POST /payments/{id}/refund`,
//!   `POST /payments/{id}/release` (escrow), `GET /payments/history`.

use advancia_auth::Role;
use advancia_payments::{Amount, HistoryFilter, InitiateRequest, Payment, PaymentError};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

// Solana Pay wallets show why a transaction request failed from the body's `message`
// member (a problem extension beside `detail`, plain text).
use super::checkout::{for_wallet, parse_id, plain_text, wallet_transaction};
use crate::AppState;
use crate::body::JsonObject;
use crate::pagination::{Page, PageParams};
use crate::principal::Principal;
use crate::problem::{Problem, Result};

/// Who may create payment intents (patients pay; staff bill on a patient's behalf).
const PAYERS: &[Role] = &[
    Role::Patient,
    Role::Provider,
    Role::FacilityAdmin,
    Role::Admin,
];
/// Who may read and confirm any intent, and ask for refund transactions.
const OPERATORS: &[Role] = &[Role::FacilityAdmin, Role::Admin];
/// Who may list every intent.
const AUDITORS: &[Role] = &[Role::FacilityAdmin, Role::Admin, Role::ComplianceOfficer];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/payments/initiate", post(initiate))
        .route("/api/v1/payments/history", get(history))
        .route("/api/v1/payments/icon.svg", get(icon))
        .route(
            "/api/v1/payments/{id}/transaction-request",
            get(transaction_request_meta).post(transaction_request),
        )
        .route("/api/v1/payments/{id}/status", get(status))
        .route("/api/v1/payments/{id}/confirm", post(confirm))
        .route("/api/v1/payments/{id}/refund", post(refund))
        .route("/api/v1/payments/{id}/release", post(release))
}

/// The intent, if the caller may see it: its creator, or an operator. Others get 404, so
/// ids of other people's payments are not confirmed to exist.
async fn visible(st: &AppState, p: &Principal, id: &str, roles: &[Role]) -> Result<Payment> {
    let payment = st.payments.get(parse_id(id)?).await?;
    let allowed = match p {
        Principal::User(c) => c.sub == payment.created_by || c.has_any(roles),
        Principal::ApiKey(_) => false,
    };
    if !allowed {
        return Err(PaymentError::NotFound.into());
    }
    Ok(payment)
}

/// Base of absolute links handed to wallets: `ADVANCIA_PUBLIC_URL`, never the request's
/// `Host` (a client could point our links at its own server).
fn public_base(st: &AppState) -> &str {
    &st.public_url
}

#[derive(Serialize, ToSchema)]
pub struct PaymentView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    payment: Payment,
    /// `SOL` or the mint.
    asset: String,
    /// HTTPS endpoint of the Solana Pay transaction request.
    transaction_request_url: String,
    /// `solana:` link for QR codes and deep links (the transaction-request URL, encoded
    /// only if it has a query, as the Solana Pay specification says).
    solana_pay_url: String,
    /// The checkout page for the payer: QR code, amount, live status. No login needed.
    checkout_url: String,
    /// The intent as a Solana Action (GET metadata, POST `{account}` for the transaction).
    action_url: String,
    /// `solana-action:` link of [`Self::action_url`].
    solana_action_url: String,
}

fn view(st: &AppState, payment: Payment) -> PaymentView {
    let links = super::checkout::Links::new(public_base(st), payment.id);
    PaymentView {
        asset: if payment.is_native() {
            "SOL".into()
        } else {
            payment.mint.clone()
        },
        solana_pay_url: links.solana_pay(),
        solana_action_url: links.solana_action(),
        transaction_request_url: links.transaction_request,
        checkout_url: links.checkout,
        action_url: links.action,
        payment,
    }
}

#[derive(Deserialize, ToSchema)]
pub struct InitiateBody {
    /// On-chain facility id: 64 hex characters, or the facility's UUID.
    facility_id: String,
    /// Base units (lamports, token base units) as a string or integer.
    #[schema(value_type = String)]
    amount: Amount,
    /// `SOL` or an SPL mint address.
    asset: String,
    label: Option<String>,
    memo: Option<String>,
    /// Hold the funds in escrow instead of paying directly.
    #[schema(value_type = Option<Object>)]
    escrow: Option<EscrowBody>,
}

#[derive(Deserialize, ToSchema)]
pub struct EscrowBody {
    arbiter: String,
    /// Unix seconds.
    expires_at: i64,
}

/// Create a payment intent; returns its Solana Pay transaction-request link.
#[utoipa::path(post, path = "/api/v1/payments/initiate", tag = "payments", request_body = InitiateBody,
    responses((status = 201, description = "Created", body = PaymentView),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn initiate(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<InitiateBody>,
) -> Result<impl IntoResponse> {
    p.require_role(PAYERS)?;
    let req = InitiateRequest {
        facility_id: b.facility_id,
        amount: b.amount,
        asset: b.asset,
        label: b.label,
        memo: b.memo,
        escrow: b.escrow.map(|e| advancia_payments::EscrowTerms {
            arbiter: e.arbiter,
            expires_at: e.expires_at,
        }),
    };
    let payment = st.payments.initiate(p.user_id(), &req).await?;
    let location = format!("/api/v1/payments/{}/status", payment.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view(&st, payment)),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct TransactionRequestMeta {
    label: String,
    icon: String,
}

/// Solana Pay transaction request, GET: what the wallet shows before asking.
#[utoipa::path(get, path = "/api/v1/payments/{id}/transaction-request", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, body = TransactionRequestMeta), (status = 404, body = Problem)))]
pub async fn transaction_request_meta(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let payment = match parse_id(&id) {
        Ok(id) => st.payments.get(id).await.map_err(Problem::from),
        Err(e) => Err(e),
    }
    .map_err(for_wallet)?;
    Ok(Json(TransactionRequestMeta {
        label: plain_text(&payment.label, 100),
        icon: super::checkout::icon_url(&st),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct AccountBody {
    /// The wallet's public key (base58): fee payer and signer.
    account: String,
}

#[derive(Serialize, ToSchema)]
pub struct TransactionBody {
    /// Base64 of the unsigned transaction.
    transaction: String,
    message: String,
}

/// Solana Pay transaction request, POST: the unsigned transaction for `account`.
#[utoipa::path(post, path = "/api/v1/payments/{id}/transaction-request", tag = "payments",
    params(("id" = String, Path, description = "Payment id")), request_body = AccountBody,
    responses((status = 200, body = TransactionBody), (status = 404, body = Problem),
        (status = 409, description = "Already paid", body = Problem), (status = 410, description = "Expired", body = Problem),
        (status = 422, description = "KYC attestation required, facility inactive, ...", body = Problem)))]
pub async fn transaction_request(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: std::result::Result<Json<AccountBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let tx = wallet_transaction(&st, &id, body.map(|Json(b)| b.account)).await?;
    Ok(Json(TransactionBody {
        transaction: tx.transaction,
        message: plain_text(&tx.message, 300),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct StatusView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    payment: PaymentView,
    /// Status changes, refunds, releases and mismatches, oldest first.
    #[schema(value_type = Vec<Object>)]
    history: Vec<serde_json::Value>,
    /// On-chain payments recorded against this intent that do not settle it (another
    /// amount, asset, facility, invoice, reference, arbiter or expiry, or a second payment);
    /// the facility refunds them with `POST /payments/{id}/refund` and their `id`.
    #[schema(value_type = Vec<Object>)]
    mismatches: Vec<advancia_payments::Mismatch>,
}

/// Status as the payments worker follows it on chain: pending → confirmed → finalized, or
/// failed / expired. Reading it changes nothing.
#[utoipa::path(get, path = "/api/v1/payments/{id}/status", tag = "payments", operation_id = "payment_status",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, body = StatusView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn status(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let payment = visible(&st, &p, &id, AUDITORS).await?;
    let mismatches = st.payments.mismatches(payment.id).await?;
    let history = st
        .payments
        .status_history(payment.id)
        .await?
        .into_iter()
        .map(|(status, detail, at)| {
            serde_json::json!({ "status": status, "detail": detail, "at": rfc3339(at) })
        })
        .collect();
    Ok(Json(StatusView {
        payment: view(&st, payment),
        history,
        mismatches,
    }))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Verify the finalized on-chain payment against the intent; returns the ledger entry.
#[utoipa::path(post, path = "/api/v1/payments/{id}/confirm", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Verified"), (status = 409, description = "Not finalized yet", body = Problem),
        (status = 422, description = "On-chain payment differs", body = Problem)),
    security(("bearer" = [])))]
pub async fn confirm(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    p.require_role(&Role::ALL)?;
    let payment = visible(&st, &p, &id, OPERATORS).await?;
    Ok(Json(st.payments.confirm(payment.id, p.user_id()).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct RefundBody {
    /// The wallet that will sign: the facility authority (or the escrow's arbiter).
    account: String,
    /// Base units; default: everything not yet refunded (escrows: always the remainder).
    #[schema(value_type = Option<String>)]
    amount: Option<Amount>,
    /// Refund this mismatched payment (from the status's `mismatches`) instead of the
    /// intent's own. Not for releases.
    #[serde(default)]
    mismatch_id: Option<Uuid>,
}

/// The unsigned refund (or escrow refund) transaction for the facility's wallet.
#[utoipa::path(post, path = "/api/v1/payments/{id}/refund", tag = "payments",
    params(("id" = String, Path, description = "Payment id")), request_body = RefundBody,
    responses((status = 200, body = TransactionBody), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn refund(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonObject(b): JsonObject<RefundBody>,
) -> Result<impl IntoResponse> {
    p.require_role(OPERATORS)?;
    let payment = visible(&st, &p, &id, OPERATORS).await?;
    let tx = st
        .payments
        .refund(
            payment.id,
            p.user_id(),
            &b.account,
            b.amount.map(|a| a.0),
            b.mismatch_id,
        )
        .await?;
    Ok(Json(TransactionBody {
        transaction: tx.transaction,
        message: tx.message,
    }))
}

/// The unsigned escrow release (to the facility) for the payer's or arbiter's wallet.
#[utoipa::path(post, path = "/api/v1/payments/{id}/release", tag = "payments",
    params(("id" = String, Path, description = "Payment id")), request_body = RefundBody,
    responses((status = 200, body = TransactionBody), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn release(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonObject(b): JsonObject<RefundBody>,
) -> Result<impl IntoResponse> {
    p.require_role(&Role::ALL)?;
    if b.mismatch_id.is_some() {
        return Err(
            PaymentError::Invalid("a mismatched escrow is refunded, not released".into()).into(),
        );
    }
    let payment = visible(&st, &p, &id, OPERATORS).await?;
    let tx = st
        .payments
        .release(payment.id, p.user_id(), &b.account, b.amount.map(|a| a.0))
        .await?;
    Ok(Json(TransactionBody {
        transaction: tx.transaction,
        message: tx.message,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only intents in this state.
    #[param(inline, value_type = Option<IntentStatusName>)]
    status: Option<String>,
    /// Facility account (base58).
    facility: Option<String>,
    /// Paying wallet (base58).
    payer: Option<String>,
    /// Created at or after (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Created before (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// Operators only: everyone's intents instead of their own.
    #[serde(default)]
    all: bool,
}

/// The states `history` filters on (documentation of the check in `history`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum IntentStatusName {
    Pending,
    Confirmed,
    Finalized,
    Failed,
    Expired,
}

const INTENT_STATUSES: [&str; 5] = ["pending", "confirmed", "finalized", "failed", "expired"];

fn parse_time(v: Option<&str>, what: &str) -> Result<Option<OffsetDateTime>> {
    v.map(|s| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
            PaymentError::Invalid(format!("{what} `{s}` is not an RFC 3339 time")).into()
        })
    })
    .transpose()
}

/// Payment intents, newest first: the caller's own, or (operators, `all=true`) everyone's.
#[utoipa::path(get, path = "/api/v1/payments/history", tag = "payments",
    params(HistoryParams, PageParams),
    responses((status = 200, description = "A page of payments", body = Page<PaymentView>), (status = 400, body = Problem),
        (status = 403, description = "`all=true` without an operator role", body = Problem)),
    security(("bearer" = [])))]
pub async fn history(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<HistoryParams>,
    Query(page): Query<PageParams>,
) -> Result<impl IntoResponse> {
    let claims = p.require_role(&Role::ALL)?;
    if q.all && !claims.has_any(AUDITORS) {
        return Err(Problem::forbidden());
    }
    if let Some(s) = &q.status
        && !INTENT_STATUSES.contains(&s.as_str())
    {
        return Err(PaymentError::Invalid(format!("unknown status `{s}`")).into());
    }
    let after: Option<(i64, Uuid)> = page.after()?;
    let after = after
        .map(|(nanos, id)| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
                .map(|t| (t, id))
                .map_err(|_| Problem::invalid_cursor())
        })
        .transpose()?;
    let limit = page.limit();
    let filter = HistoryFilter {
        created_by: (!q.all).then(|| p.user_id()),
        facility: q.facility,
        payer: q.payer,
        status: q.status,
        from: parse_time(q.from.as_deref(), "from")?,
        to: parse_time(q.to.as_deref(), "to")?,
        after,
        limit: limit + 1,
    };
    let rows = st.payments.history(&filter).await?;
    let page = Page::from_rows(rows, limit, |r: &Payment| {
        (
            i64::try_from(r.created_at.unix_timestamp_nanos()).unwrap_or(i64::MAX),
            r.id,
        )
    });
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|pm| view(&st, pm))
            .collect::<Vec<_>>(),
        next_cursor: page.next_cursor,
    }))
}

const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="14" fill="#0b6e4f"/><path d="M18 44 32 16l14 28h-8l-6-13-6 13z" fill="#fff"/></svg>"##;

/// The icon wallets show for our transaction requests.
pub async fn icon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        ICON,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_history_states_are_the_checked_ones() {
        let doc = serde_json::to_value(<IntentStatusName as utoipa::PartialSchema>::schema())
            .unwrap_or_default();
        assert_eq!(doc["enum"], serde_json::json!(INTENT_STATUSES));
    }
}
