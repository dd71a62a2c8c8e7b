//! `/api/v1/indexer/*`: partner access to what the indexer stored from the chain.
//!
//! - `GET /indexer/{payments|refunds|escrows|attestations|facilities|settlements}`: rows
//!   filtered by chain, facility, payer (wallet for attestations), slot range and
//!   finality, oldest first, cursor-paginated.
//! - `GET /indexer/stream`: the same rows live as server-sent events (`id` = stream
//!   position; `Last-Event-ID` or `?after=` resumes without gaps or repeats; rows show up
//!   again when they finalize; `rollback` events name undone transactions).
//!
//! Readers: partners, admins and compliance officers, or API keys with `indexer:read`.

use std::convert::Infallible;
use std::time::Duration;

use advancia_auth::Role;
use advancia_indexer::IndexerError;
use advancia_indexer::query::{self, EventFilter};
use advancia_indexer::stream::{self, StreamFilter};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::pagination::Limit;
use crate::principal::Principal;
use crate::problem::{Problem, Result};

const READERS: &[Role] = &[Role::Partner, Role::Admin, Role::ComplianceOfficer];
pub const READ_SCOPE: &str = "indexer:read";

fn require_reader(p: &Principal) -> Result<()> {
    p.require_scope_or_role(READ_SCOPE, READERS)
}

/// Filters and page of every list route.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `solana` (the only chain indexed so far).
    chain: Option<String>,
    /// Facility account (base58).
    facility: Option<String>,
    /// Payer wallet (base58); for attestations, the attested wallet.
    payer: Option<String>,
    /// Lowest slot, inclusive.
    slot_from: Option<u64>,
    /// Highest slot, inclusive.
    slot_to: Option<u64>,
    /// Only rows the chain has finalized.
    #[serde(default)]
    finalized: bool,
    /// Items per page (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<Limit>,
    /// `next_cursor` of the previous page; absent or empty: the first page.
    cursor: Option<String>,
}

impl ListQuery {
    fn filter(self) -> EventFilter {
        EventFilter {
            chain: self.chain,
            facility: self.facility,
            payer: self.payer,
            slot_from: self.slot_from,
            slot_to: self.slot_to,
            finalized_only: self.finalized,
            after: self.cursor.filter(|c| !c.is_empty()),
            limit: Limit::or_default(self.limit),
        }
    }
}

/// A page of indexed rows.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RowsPage {
    /// Rows, oldest first (slot, signature, instruction, inner instruction).
    #[schema(value_type = Vec<Object>)]
    items: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

fn page<T: Serialize>(p: query::Page<T>) -> Result<Json<RowsPage>> {
    let items = p
        .items
        .iter()
        .map(serde_json::to_value)
        .collect::<std::result::Result<_, _>>()
        .map_err(IndexerError::Json)?;
    Ok(Json(RowsPage {
        items,
        next_cursor: p.next_cursor,
    }))
}

/// Indexed payments, oldest first, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/indexer/payments", tag = "indexer", params(ListQuery),
    responses((status = 200, description = "Page of rows", body = RowsPage),
        (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn payments(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<RowsPage>> {
    require_reader(&p)?;
    page(query::payments(&st.pool, &q.filter()).await?)
}

/// Indexed refunds, oldest first, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/indexer/refunds", tag = "indexer", params(ListQuery),
    responses((status = 200, description = "Page of rows", body = RowsPage),
        (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn refunds(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<RowsPage>> {
    require_reader(&p)?;
    page(query::refunds(&st.pool, &q.filter()).await?)
}

/// Indexed escrow events (opened, released, refunded, closed), oldest first, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/indexer/escrows", tag = "indexer", params(ListQuery),
    responses((status = 200, description = "Page of rows", body = RowsPage),
        (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn escrows(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<RowsPage>> {
    require_reader(&p)?;
    page(query::escrows(&st.pool, &q.filter()).await?)
}

/// Indexed KYC attestations written or revoked (the payer filter matches the wallet), oldest first, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/indexer/attestations", tag = "indexer", params(ListQuery),
    responses((status = 200, description = "Page of rows", body = RowsPage),
        (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn attestations(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<RowsPage>> {
    require_reader(&p)?;
    page(query::attestations(&st.pool, &q.filter()).await?)
}

/// Indexed facility events (registered, payout updated, deactivated), oldest first, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/indexer/facilities", tag = "indexer", params(ListQuery),
    responses((status = 200, description = "Page of rows", body = RowsPage),
        (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn facilities(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<RowsPage>> {
    require_reader(&p)?;
    page(query::facilities(&st.pool, &q.filter()).await?)
}

/// Indexed settlement batch commitments, oldest first, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/indexer/settlements", tag = "indexer", params(ListQuery),
    responses((status = 200, description = "Page of rows", body = RowsPage),
        (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn settlements(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<RowsPage>> {
    require_reader(&p)?;
    page(query::settlements(&st.pool, &q.filter()).await?)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    chain: Option<String>,
    facility: Option<String>,
    payer: Option<String>,
    /// Start after this stream position (0: from the beginning). `Last-Event-ID` wins;
    /// with neither, only rows written from now on are sent.
    after: Option<i64>,
}

/// Indexed rows live, as server-sent events (`event` = kind, `id` = position,
/// `data` = the row as JSON).
#[utoipa::path(get, path = "/api/v1/indexer/stream", tag = "indexer", params(StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position")),
    responses((status = 200, description = "text/event-stream of rows"),
        (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn live(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response> {
    require_reader(&p)?;
    let last_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    Problem::invalid("Last-Event-ID must be a stream position (an id we sent)")
                })?,
        ),
    };
    let after = match last_id.or(q.after) {
        Some(a) => a.max(0),
        None => stream::head_position(&st.pool).await?,
    };
    let filter = StreamFilter {
        chain: q.chain,
        facility: q.facility,
        payer: q.payer,
    };
    let events = stream::subscribe(st.pool.clone(), filter, after).map(|item| {
        Ok::<_, Infallible>(match item {
            Ok(e) => Event::default()
                .id(e.seq.to_string())
                .event(e.kind.clone())
                .json_data(&e)
                .unwrap_or_else(|_| Event::default().event("error").data("encoding failed")),
            // The subscription ends after an error; the client reconnects with its
            // Last-Event-ID and resumes where it was.
            Err(err) => {
                tracing::warn!(error = %err, "indexer stream failed");
                Event::default()
                    .event("error")
                    .data("stream interrupted; reconnect")
            }
        })
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/indexer/payments", get(payments))
        .route("/api/v1/indexer/refunds", get(refunds))
        .route("/api/v1/indexer/escrows", get(escrows))
        .route("/api/v1/indexer/attestations", get(attestations))
        .route("/api/v1/indexer/facilities", get(facilities))
        .route("/api/v1/indexer/settlements", get(settlements))
        .route("/api/v1/indexer/stream", get(live))
}
