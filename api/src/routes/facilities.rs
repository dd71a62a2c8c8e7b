//! `/api/v1/facilities/*` (seed section 3): profiles with ETag / If-Match, search,
//! staff, resources, appointments (409 on double booking), compliance, chain mirror.
//!
//! RBAC: admins and facility admins write; any authenticated caller reads. Booking is
//! open to authenticated users for themselves (writers may book for anyone).

use advancia_auth::Role;
use advancia_facilities::chain::MirrorAction;
use advancia_facilities::{
    BookingInput, FacilityError, FacilityInput, MaintenanceState, ResourceInput, SearchQuery,
    StaffInput,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppState;
use crate::body::JsonObject;
use crate::pagination::{self, Page, PageParams};
use crate::principal::Principal;
use crate::problem::{Problem, Result};

const WRITERS: &[Role] = &[Role::Admin, Role::FacilityAdmin];
const COMPLIANCE: &[Role] = &[Role::Admin, Role::FacilityAdmin, Role::ComplianceOfficer];

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

fn with_etag(status: StatusCode, version: i64, body: impl serde::Serialize) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// `If-Match` as a version: 428 when absent, 412 when it names no version we issued.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "Precondition Required",
        )
        .with_detail("updates need If-Match with the facility's ETag"));
    };
    let s = v.to_str().unwrap_or_default().trim();
    if s == "*" {
        return Ok(None);
    }
    s.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| {
            Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "version-mismatch",
                "Precondition Failed",
            )
            .with_detail(format!("If-Match `{s}` is not an ETag of this facility"))
        })
}

fn require_writer(p: &Principal) -> Result<()> {
    p.require_role(WRITERS)?;
    Ok(())
}

/// Create a facility profile.
#[utoipa::path(post, path = "/api/v1/facilities", tag = "facilities",
    request_body(content = Object, description = "Facility profile"),
    responses((status = 201, description = "Created; ETag header set"), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<FacilityInput>,
) -> Result<Response> {
    require_writer(&p)?;
    let f = st.facilities.create(&b, p.user_id()).await?;
    Ok(with_etag(StatusCode::CREATED, f.version, f))
}

/// A facility profile (ETag header = its version).
#[utoipa::path(get, path = "/api/v1/facilities/{id}", tag = "facilities",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Profile"), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get_facility(
    State(st): State<AppState>,
    _p: Principal,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let f = st
        .facilities
        .get(id)
        .await?
        .ok_or(FacilityError::NotFound("facility"))?;
    Ok(with_etag(StatusCode::OK, f.version, f))
}

/// Replace a facility profile; `If-Match` is required (428) and must be current (412).
#[utoipa::path(put, path = "/api/v1/facilities/{id}", tag = "facilities",
    params(("id" = Uuid, Path), ("If-Match" = String, Header, description = "ETag from GET")),
    request_body(content = Object, description = "Facility profile"),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Updated; new ETag"), (status = 412, body = Problem), (status = 428, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    JsonObject(b): JsonObject<FacilityInput>,
) -> Result<Response> {
    require_writer(&p)?;
    let version = match if_match(&headers)? {
        Some(v) => v,
        None => {
            st.facilities
                .get(id)
                .await?
                .ok_or(FacilityError::NotFound("facility"))?
                .version
        }
    };
    let f = st.facilities.update(id, version, &b).await?;
    Ok(with_etag(StatusCode::OK, f.version, f))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Full-text query over name, services and address.
    q: Option<String>,
    facility_type: Option<String>,
    /// Unexpired certification name.
    certification: Option<String>,
    /// `chain:asset`, e.g. `solana:USDC`.
    accepted_asset: Option<String>,
    /// Latitude of the point to rank by distance from (with `near_lon`, else 422).
    #[param(minimum = -90, maximum = 90)]
    near_lat: Option<f64>,
    /// Longitude of that point (with `near_lat`, else 422).
    #[param(minimum = -180, maximum = 180)]
    near_lon: Option<f64>,
    /// Only facilities within this distance of the point (needs `near_lat`/`near_lon`,
    /// else 422): 1 m to half the Earth's circumference.
    #[param(minimum = 0.001, maximum = 20038)]
    radius_km: Option<f64>,
    #[serde(default)]
    include_inactive: bool,
    /// Items per page (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<pagination::Limit>,
    cursor: Option<String>,
}

/// Search facilities: ranked full text, filters, distance; paginated.
#[utoipa::path(get, path = "/api/v1/facilities", tag = "facilities", params(SearchParams),
    responses((status = 200, description = "Page of hits with rank and distance_km"), (status = 400, body = Problem),
        (status = 422, description = "`near_lat` without `near_lon` (or the reverse), or `radius_km` without both", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn search(
    State(st): State<AppState>,
    _p: Principal,
    Query(s): Query<SearchParams>,
) -> Result<impl IntoResponse> {
    // Each value's range is in the schema (400 from the service); how they combine is not.
    if s.near_lat.is_some() != s.near_lon.is_some() {
        return Err(Problem::refused("near_lat and near_lon go together"));
    }
    if s.radius_km.is_some() && s.near_lat.is_none() {
        return Err(Problem::refused("radius_km needs near_lat and near_lon"));
    }
    // Below a metre, distances underflow in Postgres (it was a 500).
    if s.radius_km.is_some_and(|r| !(0.001..=20038.0).contains(&r)) {
        return Err(Problem::invalid("radius_km must be 0.001 to 20038"));
    }
    let page = PageParams {
        limit: s.limit,
        cursor: s.cursor,
    };
    let limit = page.limit();
    let offset: u32 = page.after()?.unwrap_or(0);
    let q = SearchQuery {
        q: s.q,
        facility_type: s.facility_type,
        certification: s.certification,
        accepted_asset: s.accepted_asset,
        near_lat: s.near_lat,
        near_lon: s.near_lon,
        radius_km: s.radius_km,
        include_inactive: s.include_inactive,
    };
    let mut hits = st.facilities.search(&q, limit + 1, offset).await?;
    let more = hits.len() > limit as usize;
    hits.truncate(limit as usize);
    Ok(Json(Page {
        items: hits,
        next_cursor: more.then(|| pagination::encode(&(offset + limit))),
    }))
}

/// Staff of a facility.
#[utoipa::path(get, path = "/api/v1/facilities/{id}/staff", tag = "facilities",
    params(("id" = Uuid, Path)), responses((status = 200, description = "Staff")),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_staff(
    State(st): State<AppState>,
    _p: Principal,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    Ok(Json(st.facilities.list_staff(id).await?))
}

/// Add a staff member (roles, licences, optional auth user id).
#[utoipa::path(post, path = "/api/v1/facilities/{id}/staff", tag = "facilities",
    params(("id" = Uuid, Path)), request_body(content = Object, description = "Staff member"),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 201, description = "Added"), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_staff(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    JsonObject(b): JsonObject<StaffInput>,
) -> Result<impl IntoResponse> {
    require_writer(&p)?;
    Ok((
        StatusCode::CREATED,
        Json(st.facilities.add_staff(id, &b).await?),
    ))
}

/// Resources and equipment of a facility.
#[utoipa::path(get, path = "/api/v1/facilities/{id}/resources", tag = "facilities",
    params(("id" = Uuid, Path)), responses((status = 200, description = "Resources")),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_resources(
    State(st): State<AppState>,
    _p: Principal,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    Ok(Json(st.facilities.list_resources(id).await?))
}

/// Add a resource (equipment, room) with its maintenance state.
#[utoipa::path(post, path = "/api/v1/facilities/{id}/resources", tag = "facilities",
    params(("id" = Uuid, Path)), request_body(content = Object, description = "Resource"),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 201, description = "Added")), security(("bearer" = [])))]
pub async fn add_resource(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    JsonObject(b): JsonObject<ResourceInput>,
) -> Result<impl IntoResponse> {
    require_writer(&p)?;
    Ok((
        StatusCode::CREATED,
        Json(st.facilities.add_resource(id, &b).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MaintenanceBody {
    #[schema(value_type = String)]
    maintenance_state: MaintenanceState,
    /// `YYYY-MM-DD`.
    #[schema(value_type = Option<String>)]
    #[serde(default, with = "advancia_facilities::iso_date::option")]
    last_maintained_on: Option<time::Date>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = Option<String>)]
    #[serde(default, with = "advancia_facilities::iso_date::option")]
    next_maintenance_on: Option<time::Date>,
}

/// Set a resource's maintenance state.
#[utoipa::path(put, path = "/api/v1/facilities/resources/{resource_id}/maintenance", tag = "facilities",
    params(("resource_id" = Uuid, Path)), request_body = MaintenanceBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Updated"), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_maintenance(
    State(st): State<AppState>,
    p: Principal,
    Path(resource_id): Path<Uuid>,
    JsonObject(b): JsonObject<MaintenanceBody>,
) -> Result<impl IntoResponse> {
    require_writer(&p)?;
    Ok(Json(
        st.facilities
            .set_maintenance(
                resource_id,
                b.maintenance_state,
                b.last_maintained_on,
                b.next_maintenance_on,
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// RFC 3339.
    #[param(format = DateTime)]
    from: String,
    /// RFC 3339.
    #[param(format = DateTime)]
    to: String,
}

fn parse_time(what: &str, s: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
        FacilityError::Invalid(format!("{what} `{s}` is not an RFC 3339 timestamp")).into()
    })
}

/// Appointments of a facility overlapping `[from, to)`.
#[utoipa::path(get, path = "/api/v1/facilities/{id}/appointments", tag = "facilities",
    params(("id" = Uuid, Path), RangeParams), responses((status = 200, description = "Appointments"),
        (status = 422, description = "`to` before `from`", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_appointments(
    State(st): State<AppState>,
    _p: Principal,
    Path(id): Path<Uuid>,
    Query(r): Query<RangeParams>,
) -> Result<impl IntoResponse> {
    let (from, to) = (parse_time("from", &r.from)?, parse_time("to", &r.to)?);
    if to < from {
        return Err(Problem::refused("`to` must not be before `from`"));
    }
    Ok(Json(st.facilities.appointments(id, from, to).await?))
}

/// Book a slot for a staff member and/or resource; 409 when it overlaps a booking.
#[utoipa::path(post, path = "/api/v1/facilities/{id}/appointments", tag = "facilities",
    params(("id" = Uuid, Path)), request_body(content = Object, description = "Booking"),
    responses((status = 201, description = "Booked"), (status = 409, description = "Slot taken", body = Problem)),
    security(("bearer" = [])))]
pub async fn book(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    JsonObject(mut b): JsonObject<BookingInput>,
) -> Result<impl IntoResponse> {
    if p.require_role(WRITERS).is_err() {
        // Users book for themselves.
        b.booked_for = Some(p.user_id());
    }
    Ok((
        StatusCode::CREATED,
        Json(st.facilities.book(id, &b, p.user_id()).await?),
    ))
}

/// Cancel an appointment (writers, or the user it was booked for).
#[utoipa::path(post, path = "/api/v1/facilities/appointments/{appointment_id}/cancel", tag = "facilities",
    params(("appointment_id" = Uuid, Path)),
    responses((status = 200, description = "Cancelled"), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(st): State<AppState>,
    p: Principal,
    Path(appointment_id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    let a = st
        .facilities
        .appointment(appointment_id)
        .await?
        .ok_or(FacilityError::NotFound("appointment"))?;
    match a.booked_for {
        Some(user) => p.require_self_or(user, WRITERS)?,
        None => require_writer(&p)?,
    }
    Ok(Json(st.facilities.cancel(appointment_id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExpiringParams {
    /// Window in days (default 30).
    #[param(minimum = 0, maximum = 3650)]
    days: Option<u32>,
}

fn expiry_window(q: &ExpiringParams) -> Result<u32> {
    match q.days.unwrap_or(30) {
        d if d <= 3650 => Ok(d),
        d => Err(Problem::invalid(format!("days must be 0 to 3650, not {d}"))),
    }
}

/// Certifications expiring within N days (and already expired ones).
#[utoipa::path(get, path = "/api/v1/facilities/compliance/expiring", tag = "facilities",
    params(ExpiringParams), responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Expiring certifications")),
    security(("bearer" = [])))]
pub async fn expiring(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ExpiringParams>,
) -> Result<impl IntoResponse> {
    p.require_role(COMPLIANCE)?;
    let days = expiry_window(&q)?;
    let today = OffsetDateTime::now_utc().date();
    Ok(Json(
        st.facilities.expiring_certifications(today, days).await?,
    ))
}

/// Write `facility.certification_expiring` outbox events for the window (idempotent).
#[utoipa::path(post, path = "/api/v1/facilities/compliance/expiring/events", tag = "facilities",
    params(ExpiringParams), responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "`{written}`: new events")),
    security(("bearer" = [])))]
pub async fn expiring_events(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ExpiringParams>,
) -> Result<impl IntoResponse> {
    p.require_role(COMPLIANCE)?;
    let days = expiry_window(&q)?;
    let today = OffsetDateTime::now_utc().date();
    let written = st.facilities.record_expiry_events(today, days).await?;
    Ok(Json(serde_json::json!({ "written": written })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MirrorBody {
    /// `{"action": "register", "authority": "<base58>"}`, `{"action": "update_payout"}`
    /// or `{"action": "deactivate"}`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    action: MirrorAction,
    /// Wallet that signs and pays (admin for register; authority for update_payout).
    signer: String,
}

/// Unsigned transaction mirroring the facility to the on-chain registry.
#[utoipa::path(post, path = "/api/v1/facilities/{id}/chain-transaction", tag = "facilities",
    params(("id" = Uuid, Path)), request_body = MirrorBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Unsigned transaction (base64)"), (status = 400, body = Problem), (status = 502, body = Problem)),
    security(("bearer" = [])))]
pub async fn chain_transaction(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    JsonObject(b): JsonObject<MirrorBody>,
) -> Result<impl IntoResponse> {
    require_writer(&p)?;
    Ok(Json(
        st.facilities
            .mirror_transaction(&st.chain, id, &b.action, &b.signer)
            .await?,
    ))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/facilities", post(create).get(search))
        .route("/api/v1/facilities/{id}", get(get_facility).put(update))
        .route(
            "/api/v1/facilities/{id}/staff",
            get(list_staff).post(add_staff),
        )
        .route(
            "/api/v1/facilities/{id}/resources",
            get(list_resources).post(add_resource),
        )
        .route(
            "/api/v1/facilities/resources/{resource_id}/maintenance",
            put(set_maintenance),
        )
        .route(
            "/api/v1/facilities/{id}/appointments",
            get(list_appointments).post(book),
        )
        .route(
            "/api/v1/facilities/appointments/{appointment_id}/cancel",
            post(cancel),
        )
        .route("/api/v1/facilities/compliance/expiring", get(expiring))
        .route(
            "/api/v1/facilities/compliance/expiring/events",
            post(expiring_events),
        )
        .route(
            "/api/v1/facilities/{id}/chain-transaction",
            post(chain_transaction),
        )
}
