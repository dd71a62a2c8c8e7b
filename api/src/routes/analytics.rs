//! `/api/v1/analytics/*` (seed section 7) and the `/dashboard` page. Figures come from the
//! analytics rollups (`advancia-analytics`), never the raw event tables.
//!
//! RBAC: admins and compliance officers (the finance-facing role) read, and API keys with
//! `analytics:read`; reports and saved dashboards need one of those roles on a user token;
//! user metrics are admin-only.

use advancia_analytics::query::{DashboardDefinition, Filter, Metric};
use advancia_analytics::report::{self, Format};
use advancia_analytics::{AnalyticsError, AnalyticsService, Granularity, Period};
use advancia_auth::Role;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::body::JsonObject;
use crate::principal::Principal;
use crate::problem::{Problem, Result};

const READERS: &[Role] = &[Role::Admin, Role::ComplianceOfficer];
const READ_SCOPE: &str = "analytics:read";

fn service(st: &AppState) -> AnalyticsService {
    AnalyticsService::new(st.analytics_pool.clone())
}

fn invalid(msg: impl Into<String>) -> Problem {
    AnalyticsError::Invalid(msg.into()).into()
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339.
fn instant(name: &str, s: &str) -> Result<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            invalid(format!(
                "`{name}`: `{s}` is neither YYYY-MM-DD nor RFC 3339"
            ))
        })
}

/// The period and filters of every figure. `from` must be before `to` (else 422
/// `input-refused`).
#[derive(Debug, Deserialize, Default, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start (inclusive), a date (midnight UTC); an RFC 3339 instant is read too. Default:
    /// 30 days before `to`.
    #[param(value_type = Option<String>, format = Date)]
    #[schema(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// End (exclusive), like `from`. Default: the next midnight UTC.
    #[param(value_type = Option<String>, format = Date)]
    #[schema(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    /// Only this chain (e.g. `solana`); empty means all.
    pub chain: Option<String>,
    /// Only this facility; empty means all.
    pub facility: Option<String>,
    /// Only this asset (mint); empty means all.
    pub mint: Option<String>,
    /// Buckets of trends and reports (default `day`; `hour` covers at most 93 days).
    #[param(inline)]
    #[schema(inline)]
    pub granularity: Option<Granularity>,
}

/// [`RangeQuery`] without `granularity`: the figures that are not series.
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// Start (inclusive), a date (midnight UTC); an RFC 3339 instant is read too. Default:
    /// 30 days before `to`.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// End (exclusive), like `from`. Default: the next midnight UTC.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    /// Only this chain (e.g. `solana`); empty means all.
    pub chain: Option<String>,
    /// Only this facility; empty means all.
    pub facility: Option<String>,
    /// Only this asset (mint); empty means all.
    pub mint: Option<String>,
}

/// The period of user metrics (no filters).
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Start (inclusive), a date (midnight UTC); an RFC 3339 instant is read too. Default:
    /// 30 days before `to`.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// End (exclusive), like `from`. Default: the next midnight UTC.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
}

impl From<PeriodQuery> for RangeQuery {
    fn from(q: PeriodQuery) -> Self {
        RangeQuery {
            from: q.from,
            to: q.to,
            chain: q.chain,
            facility: q.facility,
            mint: q.mint,
            granularity: None,
        }
    }
}

impl From<UsersQuery> for RangeQuery {
    fn from(q: UsersQuery) -> Self {
        RangeQuery {
            from: q.from,
            to: q.to,
            ..RangeQuery::default()
        }
    }
}

impl RangeQuery {
    fn period(&self) -> Result<Period> {
        let to = match self.to.as_deref() {
            Some(s) => instant("to", s)?,
            None => {
                advancia_analytics::query::floor_day(OffsetDateTime::now_utc())
                    + time::Duration::days(1)
            }
        };
        let from = match self.from.as_deref() {
            Some(s) => instant("from", s)?,
            None => to - time::Duration::days(30),
        };
        Ok(Period::new(from, to)?)
    }

    fn filter(&self) -> Filter {
        let some = |v: &Option<String>| v.as_ref().filter(|s| !s.is_empty()).cloned();
        Filter {
            chain: some(&self.chain),
            facility: some(&self.facility),
            mint: some(&self.mint),
        }
    }
}

/// Totals per (chain, mint) and per facility: payments, escrow releases, refunds, volume,
/// fees (revenue), refunded and success rate. Amounts are base-unit strings; `assets`
/// (keyed `chain|mint`: `symbol`, `decimals`) and `facility_names` (keyed `chain|facility`)
/// say how people read them.
#[utoipa::path(get, path = "/api/v1/analytics/transactions/summary", tag = "analytics",
    params(PeriodQuery),
    responses((status = 200, description = "Summary"), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "`to` is not after `from`", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn summary(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<PeriodQuery>,
) -> Result<Response> {
    p.require_scope_or_role(READ_SCOPE, READERS)?;
    let q = RangeQuery::from(q);
    let summary = service(&st).summary(q.period()?, &q.filter()).await?;
    let mut out = serde_json::to_value(&summary)
        .map_err(|e| Problem::from(AnalyticsError::Invalid(format!("summary: {e}"))))?;
    let rows: Vec<&serde_json::Value> = out["totals"]
        .as_array()
        .into_iter()
        .chain(out["facilities"].as_array())
        .flatten()
        .collect();
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let assets: std::collections::BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (text(r, "chain"), text(r, "mint")))
        .collect();
    let facilities: std::collections::BTreeSet<(String, String)> = rows
        .iter()
        .filter(|r| r.get("facility").is_some())
        .map(|r| (text(r, "chain"), text(r, "facility")))
        .collect();
    out["assets"] = serde_json::Value::Object(asset_labels(&st, assets).await);
    out["facility_names"] = serde_json::Value::Object(facility_names(&st, facilities).await);
    Ok(Json(out).into_response())
}

/// How people read each asset's amounts: `{symbol, decimals}` per `chain|mint`. Native SOL
/// is `SOL`/9; otherwise the ledger's definition of the asset (posted assets have one),
/// then the payments service's reading of the mint (decimals on chain); an asset nobody
/// knows stays in base units under its shortened key.
async fn asset_labels(
    st: &AppState,
    keys: std::collections::BTreeSet<(String, String)>,
) -> serde_json::Map<String, serde_json::Value> {
    use advancia_ledger::projection::ledger_id;
    let ledgers = st.ledger.ledgers().await.unwrap_or_default();
    let mut out = serde_json::Map::new();
    for (chain, mint) in keys {
        let native = chain == advancia_indexer::SOLANA
            && mint == advancia_pay::state::NATIVE_SOL.to_string();
        let id = ledger_id(&chain, &mint);
        let (symbol, decimals) = if native {
            ("SOL".to_owned(), 9)
        } else if let Some(l) = ledgers.iter().find(|l| l.id == id) {
            let symbol = if l.code == mint {
                advancia_payments::short_key(&mint)
            } else {
                l.code.clone()
            };
            (symbol, l.scale)
        } else {
            let on_chain = match (
                chain == advancia_indexer::SOLANA,
                mint.parse::<anchor_lang::prelude::Pubkey>(),
            ) {
                (true, Ok(key)) => tokio::time::timeout(
                    std::time::Duration::from_secs(2),
                    st.payments.asset_units(&key),
                )
                .await
                .ok()
                .and_then(std::result::Result::ok),
                _ => None,
            };
            match on_chain {
                Some(u) => (u.symbol, u.decimals),
                None => (advancia_payments::short_key(&mint), 0),
            }
        };
        out.insert(
            format!("{chain}|{mint}"),
            serde_json::json!({"symbol": symbol, "decimals": decimals}),
        );
    }
    out
}

/// Facility names per `chain|facility account`, for the facilities registered on Solana
/// under their profile's UUID (the facilities service's mapping); others have none.
async fn facility_names(
    st: &AppState,
    keys: std::collections::BTreeSet<(String, String)>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    if keys.is_empty() {
        return out;
    }
    let query = advancia_facilities::SearchQuery {
        include_inactive: true,
        ..Default::default()
    };
    let hits = match st.facilities.search(&query, 1000, 0).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "facility names unavailable");
            return out;
        }
    };
    let by_account: std::collections::HashMap<String, String> = hits
        .into_iter()
        .map(|h| {
            let id = advancia_facilities::chain::chain_facility_id(h.facility.id);
            (
                advancia_pay::client::facility_pda(&id).to_string(),
                // Text as typed: the page sets it as text, never as markup.
                h.facility.profile.name.trim().to_owned(),
            )
        })
        .collect();
    for (chain, facility) in keys {
        if chain != advancia_indexer::SOLANA {
            continue;
        }
        if let Some(name) = by_account.get(&facility) {
            out.insert(
                format!("{chain}|{facility}"),
                serde_json::Value::String(name.clone()),
            );
        }
    }
    out
}

/// Volume, fees, refunds and outcomes per hour or day and (chain, mint).
#[utoipa::path(get, path = "/api/v1/analytics/revenue/trends", tag = "analytics",
    params(RangeQuery),
    responses((status = 200, description = "Series"), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "`to` is not after `from`, or an hourly series over more than 93 days", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn trends(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<RangeQuery>,
) -> Result<Response> {
    p.require_scope_or_role(READ_SCOPE, READERS)?;
    let g = q.granularity.unwrap_or_default();
    Ok(Json(service(&st).trends(g, q.period()?, &q.filter()).await?).into_response())
}

/// Accounts: totals, by role, two-factor, sign-ups per day (admin only).
#[utoipa::path(get, path = "/api/v1/analytics/users/metrics", tag = "analytics",
    params(UsersQuery),
    responses((status = 200, description = "User metrics"), (status = 403, body = Problem),
        (status = 422, description = "`to` is not after `from`", body = Problem)),
    security(("bearer" = [])))]
pub async fn users(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<UsersQuery>,
) -> Result<Response> {
    p.require_role(&[Role::Admin])?;
    let period = RangeQuery::from(q).period()?;
    // Accounts are the auth service's: its typed read, not its tables.
    let counts = advancia_auth::stats::user_counts(st.auth.pool(), period.from, period.to).await?;
    Ok(Json(counts).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastQuery {
    /// The asset's chain, e.g. `solana`.
    pub chain: String,
    /// The asset (mint).
    pub mint: String,
    /// Only this facility; empty means all.
    pub facility: Option<String>,
    /// The series forecast (default `fees`).
    #[param(inline)]
    pub metric: Option<Metric>,
    /// Days of history used (default 91).
    #[param(minimum = 21, maximum = 730)]
    pub history_days: Option<u16>,
    /// Last days held out and scored (default 14). Two weeks of the history must remain
    /// to fit on, else 422 `input-refused`.
    #[param(value_type = Option<u16>, minimum = 1, maximum = 716)]
    pub holdout: Option<usize>,
    /// Days forecast (default 7).
    #[param(value_type = Option<u16>, minimum = 1, maximum = 90)]
    pub horizon: Option<usize>,
}

/// Daily fees (or volume) forecast: additive Holt-Winters, weekly season, parameters
/// grid-searched on the training days; MAE and sMAPE on held-out days beside a
/// seasonal-naive baseline measured on the same days.
#[utoipa::path(get, path = "/api/v1/analytics/revenue/forecast", tag = "analytics",
    params(ForecastQuery),
    responses((status = 200, description = "Forecast and its measured error"), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "Too little history for the hold-out asked for", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn forecast(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ForecastQuery>,
) -> Result<Response> {
    p.require_scope_or_role(READ_SCOPE, READERS)?;
    let f = service(&st)
        .forecast(
            q.metric.unwrap_or_default(),
            &q.chain,
            &q.mint,
            q.facility.as_deref().filter(|s| !s.is_empty()),
            q.history_days.unwrap_or(91),
            q.holdout.unwrap_or(14),
            q.horizon.unwrap_or(7),
            OffsetDateTime::now_utc(),
        )
        .await?;
    Ok(Json(f).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetQuery {
    /// The asset's chain, e.g. `solana`.
    pub chain: String,
    /// The asset (mint).
    pub mint: String,
}

/// Fee revenue of one asset two ways: the analytics rollups (finalized indexed events) and
/// the ledger's fee-revenue account for that mint (posted by the indexer's ledger feed from
/// the same finalized events). They match once the feed has caught up; a difference that
/// persists means one of the two projections is wrong.
#[utoipa::path(get, path = "/api/v1/analytics/revenue/reconciliation", tag = "analytics", operation_id = "revenue_reconciliation",
    params(AssetQuery),
    responses((status = 200, description = "Both figures and their difference"), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn reconciliation(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<AssetQuery>,
) -> Result<Response> {
    p.require_scope_or_role(READ_SCOPE, READERS)?;
    let analytics = service(&st).fees_all_time(&q.chain, &q.mint).await?;
    let account = advancia_ledger::projection::pool_account_id(
        &q.chain,
        &q.mint,
        advancia_ledger::projection::Role::FeeRevenue,
    );
    let ledger: i128 = match st.ledger.balance(account).await {
        // A revenue account grows by credits.
        Ok(Some(b)) => {
            i128::try_from(b.credits_posted).unwrap_or(i128::MAX)
                - i128::try_from(b.debits_posted).unwrap_or(i128::MAX)
        }
        Ok(None) => 0,
        Err(e) => {
            tracing::error!(error = %e, "ledger balance for reconciliation");
            return Err(AnalyticsError::Corrupt("ledger unavailable".into()).into());
        }
    };
    Ok(Json(serde_json::json!({
        "chain": q.chain,
        "mint": q.mint,
        "analytics_fees": analytics.to_string(),
        "ledger_fee_revenue": ledger.to_string(),
        "difference": (analytics - ledger).to_string(),
        "matches": analytics == ledger,
    }))
    .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReportRequest {
    #[schema(inline)]
    pub format: Format,
    #[serde(flatten)]
    pub range: RangeQuery,
}

/// A report for a period as CSV or HTML (a download), one row per bucket and
/// (chain, facility, mint).
#[utoipa::path(post, path = "/api/v1/analytics/reports/generate", tag = "analytics",
    request_body = ReportRequest,
    responses((status = 200, description = "The report file (CSV or HTML, a download)"),
        (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "`to` is not after `from`, an hourly report over more than 93 days, or one too large", body = Problem)),
    security(("bearer" = [])))]
pub async fn generate_report(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<ReportRequest>,
) -> Result<Response> {
    p.require_role(READERS)?;
    // In a JSON body an empty date is read as an absent one.
    let mut b = b;
    for d in [&mut b.range.from, &mut b.range.to] {
        if d.as_deref() == Some("") {
            *d = None;
        }
    }
    let period = b.range.period()?;
    let g = b.range.granularity.unwrap_or_default();
    let rows = service(&st)
        .report_rows(g, period, &b.range.filter())
        .await?;
    let body = match b.format {
        Format::Csv => report::csv(&rows),
        Format::Html => report::html("Advancia analytics report", period.from, period.to, &rows),
    };
    let name = format!(
        "attachment; filename=\"advancia-report-{}-{}.{}\"",
        period.from.date(),
        period.to.date(),
        b.format.extension()
    );
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(b.format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewDashboard {
    /// 1 to 200 characters once trimmed.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    pub definition: DashboardDefinition,
}

/// Save a dashboard definition (filters, days, granularity).
#[utoipa::path(post, path = "/api/v1/analytics/dashboards", tag = "analytics",
    request_body = NewDashboard,
    responses((status = 201, description = "Saved"), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "An hourly dashboard over more than 93 days", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_dashboard(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<NewDashboard>,
) -> Result<Response> {
    let claims = p.require_role(READERS)?;
    let d = service(&st)
        .create_dashboard(&b.name, &b.definition, claims.sub)
        .await?;
    Ok((StatusCode::CREATED, Json(d)).into_response())
}

/// A saved dashboard with its figures evaluated now: summary and trends over its last
/// `days` days.
#[utoipa::path(get, path = "/api/v1/analytics/dashboards/{id}", tag = "analytics",
    params(("id" = Uuid, Path)),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Definition and data"), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get_dashboard(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    p.require_scope_or_role(READ_SCOPE, READERS)?;
    let svc = service(&st);
    let d = svc.dashboard(id).await?;
    let to =
        advancia_analytics::query::floor_day(OffsetDateTime::now_utc()) + time::Duration::days(1);
    let period = Period::new(to - time::Duration::days(i64::from(d.definition.days)), to)?;
    let filter = Filter {
        chain: d.definition.chain.clone(),
        facility: d.definition.facility.clone(),
        mint: d.definition.mint.clone(),
    };
    let summary = svc.summary(period, &filter).await?;
    let trends = svc
        .trends(d.definition.granularity, period, &filter)
        .await?;
    Ok(
        Json(serde_json::json!({ "dashboard": d, "summary": summary, "trends": trends }))
            .into_response(),
    )
}

const PAGE: &str = include_str!("dashboard/page.html");
const SCRIPT: &str = include_str!("dashboard/page.js");

/// The dashboard page: static HTML with its own script (no data, no token inside); the
/// script reads the analytics JSON with the token the user supplies. The CSP allows only
/// this script (by hash) and requests to this origin.
pub async fn dashboard_page() -> Response {
    // Built once: the page with its script inlined and the CSP naming the script's hash.
    static PAGE_AND_CSP: std::sync::LazyLock<(String, String)> = std::sync::LazyLock::new(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let script = format!("\n{SCRIPT}\n");
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&script));
        (
            PAGE.replace("\n__SCRIPT__\n", &script),
            format!(
                "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' data:; form-action 'none'; \
                 frame-ancestors 'none'; base-uri 'none'"
            ),
        )
    });
    let (html, csp) = &*PAGE_AND_CSP;
    let mut resp = Html(html.clone()).into_response();
    let h = resp.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(dashboard_page))
        .route("/api/v1/analytics/transactions/summary", get(summary))
        .route("/api/v1/analytics/revenue/trends", get(trends))
        .route("/api/v1/analytics/revenue/forecast", get(forecast))
        .route(
            "/api/v1/analytics/revenue/reconciliation",
            get(reconciliation),
        )
        .route("/api/v1/analytics/users/metrics", get(users))
        .route("/api/v1/analytics/reports/generate", post(generate_report))
        .route("/api/v1/analytics/dashboards", post(create_dashboard))
        .route("/api/v1/analytics/dashboards/{id}", get(get_dashboard))
}
