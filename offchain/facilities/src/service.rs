//! Postgres-backed facility service (schema `facilities`).

use std::collections::{HashMap, HashSet};

use advancia_chains::{SolanaChain, UnsignedTransaction};
use sqlx::{PgPool, Postgres, Transaction};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::FacilityError;
use crate::chain::{self, MirrorAction, SOLANA};
use crate::model::*;

const EARTH_RADIUS_KM: f64 = 6_371.008_8;
/// Kilometres per degree of latitude (for the bounding-box prefilter).
const KM_PER_DEGREE_LAT: f64 = 110.574;

#[derive(Clone)]
pub struct FacilityService {
    pool: PgPool,
    users: std::sync::Arc<dyn crate::UserDirectory>,
}

#[derive(sqlx::FromRow)]
struct FacilityRow {
    id: Uuid,
    name: String,
    facility_type: String,
    services: Vec<String>,
    street: String,
    city: String,
    region: String,
    postal_code: String,
    country: String,
    lat: f64,
    lon: f64,
    contacts: serde_json::Value,
    accepted_assets: Vec<String>,
    status: String,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

const FACILITY_COLS: &str = "id, name, facility_type, services, street, city, region, postal_code, \
     country, lat, lon, contacts, accepted_assets, status, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct CertRow {
    id: Uuid,
    facility_id: Uuid,
    name: String,
    issuer: String,
    number: String,
    issued_on: Option<Date>,
    expires_on: Date,
}

impl CertRow {
    fn into_cert(self) -> Certification {
        Certification {
            id: Some(self.id),
            name: self.name,
            issuer: self.issuer,
            number: self.number,
            issued_on: self.issued_on,
            expires_on: self.expires_on,
        }
    }
}

fn invalid(msg: impl Into<String>) -> FacilityError {
    FacilityError::Invalid(msg.into())
}

fn non_empty(what: &str, s: &str, max: usize) -> Result<(), FacilityError> {
    let len = s.trim().chars().count();
    if len == 0 || len > max {
        return Err(invalid(format!("{what} must be 1 to {max} characters")));
    }
    Ok(())
}

fn validate_point(lat: f64, lon: f64) -> Result<(), FacilityError> {
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(invalid("latitude must be within [-90, 90]"));
    }
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        return Err(invalid("longitude must be within [-180, 180]"));
    }
    Ok(())
}

fn validate(input: &FacilityInput) -> Result<(), FacilityError> {
    non_empty("name", &input.name, 200)?;
    non_empty("facility_type", &input.facility_type, 64)?;
    for s in &input.services {
        non_empty("service", s, 200)?;
    }
    let c = &input.address.country;
    if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "address.country must be an ISO 3166-1 alpha-2 code (e.g. US)",
        ));
    }
    validate_point(input.location.lat, input.location.lon)?;
    for contact in &input.contacts {
        non_empty("contact kind", &contact.kind, 32)?;
        non_empty("contact value", &contact.value, 320)?;
    }
    for a in &input.accepted_assets {
        match a.split_once(':') {
            Some((chain, asset)) if !chain.is_empty() && !asset.is_empty() => {}
            _ => {
                return Err(invalid(format!(
                    "accepted asset `{a}` is not `chain:asset`"
                )));
            }
        }
    }
    let mut chains = HashSet::new();
    for w in &input.payout_wallets {
        non_empty("payout wallet chain", &w.chain, 32)?;
        non_empty("payout wallet address", &w.address, 128)?;
        if !chains.insert(w.chain.as_str()) {
            return Err(invalid(format!("two payout wallets for chain {}", w.chain)));
        }
        if w.chain == SOLANA {
            chain::parse_pubkey("solana payout wallet", &w.address)?;
        }
    }
    for cert in &input.certifications {
        non_empty("certification name", &cert.name, 200)?;
        non_empty("certification issuer", &cert.issuer, 200)?;
        if cert.issued_on.is_some_and(|i| i > cert.expires_on) {
            return Err(invalid(format!(
                "certification {} expires before it was issued",
                cert.name
            )));
        }
    }
    Ok(())
}

fn map_booking_error(e: sqlx::Error) -> FacilityError {
    if let Some(db) = e.as_database_error()
        && db.code().as_deref() == Some("23P01")
    {
        return match db.constraint() {
            Some("appointments_staff_no_overlap") => FacilityError::SlotTaken("staff member"),
            _ => FacilityError::SlotTaken("resource"),
        };
    }
    FacilityError::Database(e)
}

impl FacilityService {
    /// The facilities database (its outbox is followed there).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema must be migrated ([`crate::MIGRATIONS`]); `users` says which user ids
    /// exist (staff link to them).
    pub fn new(pool: PgPool, users: std::sync::Arc<dyn crate::UserDirectory>) -> Self {
        Self { pool, users }
    }

    /// Refuses a staff link to a user id the user directory does not know.
    async fn known_user(&self, user: Option<Uuid>) -> Result<(), FacilityError> {
        let Some(user) = user else {
            return Ok(());
        };
        match self.users.user_exists(user).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(invalid("user_id is not a known user")),
            Err(e) => Err(FacilityError::Unavailable(format!("user directory: {e}"))),
        }
    }

    pub async fn create(
        &self,
        input: &FacilityInput,
        created_by: Uuid,
    ) -> Result<Facility, FacilityError> {
        validate(input)?;
        let id = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO facilities.facilities (id, name, facility_type, services, street, city,
                 region, postal_code, country, lat, lon, contacts, accepted_assets, status, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(id)
        .bind(input.name.trim())
        .bind(&input.facility_type)
        .bind(&input.services)
        .bind(&input.address.street)
        .bind(&input.address.city)
        .bind(&input.address.region)
        .bind(&input.address.postal_code)
        .bind(&input.address.country)
        .bind(input.location.lat)
        .bind(input.location.lon)
        .bind(sqlx::types::Json(&input.contacts))
        .bind(&input.accepted_assets)
        .bind(input.status.as_str())
        .bind(created_by)
        .execute(&mut *tx)
        .await?;
        write_children(&mut tx, id, input).await?;
        event(
            &mut tx,
            id,
            event_kind::FACILITY_CREATED,
            serde_json::json!({ "name": input.name, "status": input.status }),
            &format!("created:{id}"),
        )
        .await?;
        tx.commit().await?;
        self.get(id)
            .await?
            .ok_or(FacilityError::NotFound("facility"))
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Facility>, FacilityError> {
        Ok(self.load_many(&[id]).await?.pop())
    }

    /// Replaces the profile if `expected_version` (the client's `If-Match`) is current.
    pub async fn update(
        &self,
        id: Uuid,
        expected_version: i64,
        input: &FacilityInput,
    ) -> Result<Facility, FacilityError> {
        validate(input)?;
        let mut tx = self.pool.begin().await?;
        let updated: Option<i64> = sqlx::query_scalar(
            "UPDATE facilities.facilities SET name = $3, facility_type = $4, services = $5,
                 street = $6, city = $7, region = $8, postal_code = $9, country = $10,
                 lat = $11, lon = $12, contacts = $13, accepted_assets = $14, status = $15,
                 version = version + 1, updated_at = now()
             WHERE id = $1 AND version = $2
             RETURNING version",
        )
        .bind(id)
        .bind(expected_version)
        .bind(input.name.trim())
        .bind(&input.facility_type)
        .bind(&input.services)
        .bind(&input.address.street)
        .bind(&input.address.city)
        .bind(&input.address.region)
        .bind(&input.address.postal_code)
        .bind(&input.address.country)
        .bind(input.location.lat)
        .bind(input.location.lon)
        .bind(sqlx::types::Json(&input.contacts))
        .bind(&input.accepted_assets)
        .bind(input.status.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(version) = updated else {
            let current: Option<i64> =
                sqlx::query_scalar("SELECT version FROM facilities.facilities WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match current {
                Some(current) => FacilityError::VersionMismatch {
                    expected: expected_version,
                    current,
                },
                None => FacilityError::NotFound("facility"),
            });
        };
        sqlx::query("DELETE FROM facilities.payout_wallets WHERE facility_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM facilities.certifications WHERE facility_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        write_children(&mut tx, id, input).await?;
        event(
            &mut tx,
            id,
            event_kind::FACILITY_UPDATED,
            serde_json::json!({ "version": version, "status": input.status }),
            &format!("updated:{id}:{version}"),
        )
        .await?;
        tx.commit().await?;
        self.get(id)
            .await?
            .ok_or(FacilityError::NotFound("facility"))
    }

    /// Full-text (weighted name > services > address, ranked by ts_rank), filters and
    /// haversine distance. Ordered by rank, then distance, then name.
    pub async fn search(
        &self,
        q: &SearchQuery,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<SearchHit>, FacilityError> {
        let point = match (q.near_lat, q.near_lon) {
            (Some(lat), Some(lon)) => {
                validate_point(lat, lon)?;
                Some((lat, lon))
            }
            (None, None) => None,
            _ => return Err(invalid("near_lat and near_lon go together")),
        };
        if let Some(r) = q.radius_km {
            if point.is_none() {
                return Err(invalid("radius_km needs near_lat and near_lon"));
            }
            if !(r.is_finite() && r > 0.0) {
                return Err(invalid("radius_km must be positive"));
            }
        }
        let text = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let rows: Vec<(Uuid, f32, Option<f64>)> = sqlx::query_as(
            "SELECT id, rank, distance_km FROM (
                SELECT f.id, f.name,
                       CASE WHEN $1::text IS NULL THEN 0
                            ELSE ts_rank(f.search, websearch_to_tsquery('english', $1)) END::real AS rank,
                       CASE WHEN $5::float8 IS NULL THEN NULL
                            ELSE 2 * $9::float8 * asin(least(1, sqrt(
                                power(sin(radians(f.lat - $5) / 2), 2)
                                + cos(radians($5)) * cos(radians(f.lat))
                                  * power(sin(radians(f.lon - $6) / 2), 2)))) END AS distance_km
                FROM facilities.facilities f
                WHERE ($1::text IS NULL OR f.search @@ websearch_to_tsquery('english', $1))
                  AND ($2::text IS NULL OR f.facility_type = $2)
                  AND ($3::text IS NULL OR EXISTS (
                        SELECT 1 FROM facilities.certifications c
                        WHERE c.facility_id = f.id AND lower(c.name) = lower($3)
                          AND c.expires_on >= (now() AT TIME ZONE 'UTC')::date))
                  AND ($4::text IS NULL OR f.accepted_assets @> ARRAY[$4::text])
                  AND ($8 OR f.status = 'active')
                  -- Bounding box on latitude (index on (lat, lon)) before the exact distance.
                  AND ($7::float8 IS NULL OR f.lat BETWEEN $5 - $7 / $10 AND $5 + $7 / $10)
             ) s
             WHERE $7::float8 IS NULL OR distance_km <= $7
             ORDER BY rank DESC, distance_km ASC NULLS LAST, name, id
             LIMIT $11 OFFSET $12",
        )
        .bind(text)
        .bind(q.facility_type.as_deref())
        .bind(q.certification.as_deref())
        .bind(q.accepted_asset.as_deref())
        .bind(point.map(|p| p.0))
        .bind(point.map(|p| p.1))
        .bind(q.radius_km)
        .bind(q.include_inactive)
        .bind(EARTH_RADIUS_KM)
        .bind(KM_PER_DEGREE_LAT)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let mut facilities: HashMap<Uuid, Facility> = self
            .load_many(&ids)
            .await?
            .into_iter()
            .map(|f| (f.id, f))
            .collect();
        rows.into_iter()
            .map(|(id, rank, distance_km)| {
                Ok(SearchHit {
                    facility: facilities
                        .remove(&id)
                        .ok_or(FacilityError::NotFound("facility"))?,
                    rank,
                    distance_km,
                })
            })
            .collect()
    }

    async fn load_many(&self, ids: &[Uuid]) -> Result<Vec<Facility>, FacilityError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<FacilityRow> = sqlx::query_as(&format!(
            "SELECT {FACILITY_COLS} FROM facilities.facilities WHERE id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let wallets: Vec<(Uuid, String, String)> = sqlx::query_as(
            "SELECT facility_id, chain, address FROM facilities.payout_wallets
             WHERE facility_id = ANY($1) ORDER BY chain",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let certs: Vec<CertRow> = sqlx::query_as(
            "SELECT id, facility_id, name, issuer, number, issued_on, expires_on
             FROM facilities.certifications WHERE facility_id = ANY($1) ORDER BY expires_on, name",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_id: HashMap<Uuid, Facility> = HashMap::with_capacity(rows.len());
        for r in rows {
            let contacts: Vec<Contact> = serde_json::from_value(r.contacts)
                .map_err(|e| FacilityError::Corrupt(format!("contacts of {}: {e}", r.id)))?;
            by_id.insert(
                r.id,
                Facility {
                    id: r.id,
                    chain_facility_id: hex::encode(chain::chain_facility_id(r.id)),
                    profile: FacilityInput {
                        name: r.name,
                        facility_type: r.facility_type,
                        services: r.services,
                        address: Address {
                            street: r.street,
                            city: r.city,
                            region: r.region,
                            postal_code: r.postal_code,
                            country: r.country,
                        },
                        location: GeoPoint {
                            lat: r.lat,
                            lon: r.lon,
                        },
                        contacts,
                        accepted_assets: r.accepted_assets,
                        payout_wallets: Vec::new(),
                        certifications: Vec::new(),
                        status: FacilityStatus::parse(&r.status)?,
                    },
                    version: r.version,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                },
            );
        }
        for (fid, chain, address) in wallets {
            if let Some(f) = by_id.get_mut(&fid) {
                f.profile
                    .payout_wallets
                    .push(PayoutWallet { chain, address });
            }
        }
        for c in certs {
            if let Some(f) = by_id.get_mut(&c.facility_id) {
                f.profile.certifications.push(c.into_cert());
            }
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    async fn active_facility(&self, id: Uuid) -> Result<(), FacilityError> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM facilities.facilities WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        match status.as_deref() {
            None => Err(FacilityError::NotFound("facility")),
            Some("deactivated") => Err(FacilityError::Deactivated(id)),
            Some(_) => Ok(()),
        }
    }

    // ---- staff, resources, schedules ----------------------------------------------------

    pub async fn add_staff(
        &self,
        facility_id: Uuid,
        input: &StaffInput,
    ) -> Result<Staff, FacilityError> {
        non_empty("display_name", &input.display_name, 200)?;
        for r in &input.roles {
            non_empty("role", r, 64)?;
        }
        for l in &input.licences {
            non_empty("licence kind", &l.kind, 64)?;
            non_empty("licence number", &l.number, 64)?;
            non_empty("licence issuer", &l.issuer, 200)?;
        }
        self.active_facility(facility_id).await?;
        self.known_user(input.user_id).await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO facilities.staff (id, facility_id, user_id, display_name, roles, licences)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(facility_id)
        .bind(input.user_id)
        .bind(input.display_name.trim())
        .bind(&input.roles)
        .bind(sqlx::types::Json(&input.licences))
        .execute(&self.pool)
        .await
        .map_err(
            |e| match e.as_database_error().and_then(|d| d.constraint()) {
                Some("staff_facility_id_user_id_key") => {
                    FacilityError::Conflict("this user is already on the facility's staff".into())
                }
                _ => FacilityError::Database(e),
            },
        )?;
        Ok(Staff {
            id,
            facility_id,
            profile: input.clone(),
            active: true,
        })
    }

    /// User ids of the active staff of `facility_id` linked to a user and holding any of
    /// `roles`, ordered (who notifications tells about the facility's money and papers).
    pub async fn staff_user_ids(
        &self,
        facility_id: Uuid,
        roles: &[&str],
    ) -> Result<Vec<Uuid>, FacilityError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM facilities.staff
              WHERE facility_id = $1 AND active AND user_id IS NOT NULL AND roles && $2
              ORDER BY user_id",
        )
        .bind(facility_id)
        .bind(roles)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn list_staff(&self, facility_id: Uuid) -> Result<Vec<Staff>, FacilityError> {
        type Row = (
            Uuid,
            Option<Uuid>,
            String,
            Vec<String>,
            serde_json::Value,
            bool,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, user_id, display_name, roles, licences, active FROM facilities.staff
             WHERE facility_id = $1 ORDER BY display_name, id",
        )
        .bind(facility_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, user_id, display_name, roles, licences, active)| {
                Ok(Staff {
                    id,
                    facility_id,
                    profile: StaffInput {
                        user_id,
                        display_name,
                        roles,
                        licences: serde_json::from_value(licences)
                            .map_err(|e| FacilityError::Corrupt(format!("licences: {e}")))?,
                    },
                    active,
                })
            })
            .collect()
    }

    pub async fn add_resource(
        &self,
        facility_id: Uuid,
        input: &ResourceInput,
    ) -> Result<Resource, FacilityError> {
        non_empty("name", &input.name, 200)?;
        non_empty("kind", &input.kind, 64)?;
        self.active_facility(facility_id).await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO facilities.resources (id, facility_id, name, kind, maintenance_state,
                 last_maintained_on, next_maintenance_on)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(facility_id)
        .bind(input.name.trim())
        .bind(&input.kind)
        .bind(input.maintenance_state.as_str())
        .bind(input.last_maintained_on)
        .bind(input.next_maintenance_on)
        .execute(&self.pool)
        .await?;
        Ok(Resource {
            id,
            facility_id,
            profile: input.clone(),
        })
    }

    /// Sets a resource's maintenance state (and dates); `UnderMaintenance` and
    /// `OutOfService` resources cannot be booked.
    pub async fn set_maintenance(
        &self,
        resource_id: Uuid,
        state: MaintenanceState,
        last_maintained_on: Option<Date>,
        next_maintenance_on: Option<Date>,
    ) -> Result<Resource, FacilityError> {
        type Row = (Uuid, String, String, Option<Date>, Option<Date>);
        let row: Option<Row> = sqlx::query_as(
            "UPDATE facilities.resources SET maintenance_state = $2,
                 last_maintained_on = coalesce($3, last_maintained_on),
                 next_maintenance_on = coalesce($4, next_maintenance_on)
             WHERE id = $1
             RETURNING facility_id, name, kind, last_maintained_on, next_maintenance_on",
        )
        .bind(resource_id)
        .bind(state.as_str())
        .bind(last_maintained_on)
        .bind(next_maintenance_on)
        .fetch_optional(&self.pool)
        .await?;
        let (facility_id, name, kind, last, next) =
            row.ok_or(FacilityError::NotFound("resource"))?;
        Ok(Resource {
            id: resource_id,
            facility_id,
            profile: ResourceInput {
                name,
                kind,
                maintenance_state: state,
                last_maintained_on: last,
                next_maintenance_on: next,
            },
        })
    }

    pub async fn list_resources(&self, facility_id: Uuid) -> Result<Vec<Resource>, FacilityError> {
        type Row = (Uuid, String, String, String, Option<Date>, Option<Date>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, name, kind, maintenance_state, last_maintained_on, next_maintenance_on
             FROM facilities.resources WHERE facility_id = $1 ORDER BY name, id",
        )
        .bind(facility_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, name, kind, state, last, next)| {
                Ok(Resource {
                    id,
                    facility_id,
                    profile: ResourceInput {
                        name,
                        kind,
                        maintenance_state: MaintenanceState::parse(&state)?,
                        last_maintained_on: last,
                        next_maintenance_on: next,
                    },
                })
            })
            .collect()
    }

    /// Books `[starts_at, ends_at)` for a staff member and/or a resource of the facility.
    /// Overlaps are rejected by the database's exclusion constraints
    /// ([`FacilityError::SlotTaken`]), so concurrent bookings cannot both win.
    pub async fn book(
        &self,
        facility_id: Uuid,
        input: &BookingInput,
        created_by: Uuid,
    ) -> Result<Appointment, FacilityError> {
        if input.staff_id.is_none() && input.resource_id.is_none() {
            return Err(invalid("an appointment needs a staff_id or a resource_id"));
        }
        if input.starts_at >= input.ends_at {
            return Err(invalid("starts_at must be before ends_at"));
        }
        self.active_facility(facility_id).await?;
        if let Some(staff_id) = input.staff_id {
            let active: Option<bool> = sqlx::query_scalar(
                "SELECT active FROM facilities.staff WHERE id = $1 AND facility_id = $2",
            )
            .bind(staff_id)
            .bind(facility_id)
            .fetch_optional(&self.pool)
            .await?;
            match active {
                None => return Err(FacilityError::NotFound("staff member")),
                Some(false) => return Err(invalid("the staff member is inactive")),
                Some(true) => {}
            }
        }
        if let Some(resource_id) = input.resource_id {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT maintenance_state FROM facilities.resources WHERE id = $1 AND facility_id = $2",
            )
            .bind(resource_id)
            .bind(facility_id)
            .fetch_optional(&self.pool)
            .await?;
            let state = state.ok_or(FacilityError::NotFound("resource"))?;
            if !MaintenanceState::parse(&state)?.bookable() {
                return Err(FacilityError::Conflict(format!(
                    "the resource is {state} and cannot be booked"
                )));
            }
        }
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO facilities.appointments (id, facility_id, staff_id, resource_id, during,
                 booked_for, note, status, created_by)
             VALUES ($1, $2, $3, $4, tstzrange($5, $6, '[)'), $7, $8, 'booked', $9)",
        )
        .bind(id)
        .bind(facility_id)
        .bind(input.staff_id)
        .bind(input.resource_id)
        .bind(input.starts_at)
        .bind(input.ends_at)
        .bind(input.booked_for)
        .bind(&input.note)
        .bind(created_by)
        .execute(&self.pool)
        .await
        .map_err(map_booking_error)?;
        Ok(Appointment {
            id,
            facility_id,
            staff_id: input.staff_id,
            resource_id: input.resource_id,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            booked_for: input.booked_for,
            note: input.note.clone(),
            status: "booked".into(),
        })
    }

    /// Cancels a booking, freeing its slot.
    pub async fn cancel(&self, appointment_id: Uuid) -> Result<Appointment, FacilityError> {
        sqlx::query(
            "UPDATE facilities.appointments SET status = 'cancelled' WHERE id = $1 AND status = 'booked'",
        )
        .bind(appointment_id)
        .execute(&self.pool)
        .await?;
        self.appointment(appointment_id)
            .await?
            .ok_or(FacilityError::NotFound("appointment"))
    }

    pub async fn appointment(&self, id: Uuid) -> Result<Option<Appointment>, FacilityError> {
        Ok(self
            .appointments_where("a.id = $1", id, None, None)
            .await?
            .pop())
    }

    /// Booked and cancelled appointments of a facility overlapping `[from, to)`.
    pub async fn appointments(
        &self,
        facility_id: Uuid,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<Appointment>, FacilityError> {
        // Postgres refuses a range whose bounds are reversed (it was a 500).
        if to < from {
            return Err(invalid("`to` must not be before `from`"));
        }
        self.appointments_where(
            "a.facility_id = $1 AND a.during && tstzrange($2, $3, '[)')",
            facility_id,
            Some(from),
            Some(to),
        )
        .await
    }

    async fn appointments_where(
        &self,
        filter: &str,
        key: Uuid,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<Vec<Appointment>, FacilityError> {
        type Row = (
            Uuid,
            Uuid,
            Option<Uuid>,
            Option<Uuid>,
            OffsetDateTime,
            OffsetDateTime,
            Option<Uuid>,
            String,
            String,
        );
        let sql = format!(
            "SELECT a.id, a.facility_id, a.staff_id, a.resource_id, lower(a.during), upper(a.during),
                    a.booked_for, a.note, a.status
             FROM facilities.appointments a WHERE {filter} ORDER BY lower(a.during), a.id"
        );
        let mut query = sqlx::query_as::<_, Row>(&sql).bind(key);
        if let (Some(from), Some(to)) = (from, to) {
            query = query.bind(from).bind(to);
        }
        Ok(query
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(
                |(
                    id,
                    facility_id,
                    staff_id,
                    resource_id,
                    starts_at,
                    ends_at,
                    booked_for,
                    note,
                    status,
                )| {
                    Appointment {
                        id,
                        facility_id,
                        staff_id,
                        resource_id,
                        starts_at,
                        ends_at,
                        booked_for,
                        note,
                        status,
                    }
                },
            )
            .collect())
    }

    // ---- compliance -------------------------------------------------------------------------

    /// Certifications of non-deactivated facilities expiring on or before `today + days`
    /// (including already expired ones), soonest first.
    pub async fn expiring_certifications(
        &self,
        today: Date,
        days: u32,
    ) -> Result<Vec<ExpiringCertification>, FacilityError> {
        let rows: Vec<(String, i32, CertRow)> = sqlx::query_as(
            "SELECT f.name AS facility_name, (c.expires_on - $1::date) AS days_left,
                    c.id, c.facility_id, c.name, c.issuer, c.number, c.issued_on, c.expires_on
             FROM facilities.certifications c
             JOIN facilities.facilities f ON f.id = c.facility_id
             WHERE f.status <> 'deactivated' AND c.expires_on <= $1::date + $2::int
             ORDER BY c.expires_on, f.name, c.id",
        )
        .bind(today)
        .bind(i32::try_from(days).map_err(|_| invalid("days is too large"))?)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r: ExpiringRow| (r.facility_name, r.days_left, r.cert))
        .collect();
        Ok(rows
            .into_iter()
            .map(|(facility_name, days_left, cert)| ExpiringCertification {
                facility_id: cert.facility_id,
                facility_name,
                days_left: i64::from(days_left),
                certification: cert.into_cert(),
            })
            .collect())
    }

    /// Writes one `facility.certification_expiring` outbox event per certification and
    /// expiry date found by [`Self::expiring_certifications`] (re-running adds none).
    /// Returns the number of new events.
    pub async fn record_expiry_events(&self, today: Date, days: u32) -> Result<u64, FacilityError> {
        let mut tx = self.pool.begin().await?;
        let mut written = 0;
        for e in self.expiring_certifications(today, days).await? {
            let cert_id = e.certification.id.unwrap_or_default();
            written += event(
                &mut tx,
                e.facility_id,
                event_kind::CERTIFICATION_EXPIRING,
                serde_json::json!({
                    "facility_name": e.facility_name,
                    "certification_id": cert_id,
                    "certification": e.certification.name,
                    "issuer": e.certification.issuer,
                    "expires_on": e.certification.expires_on.to_string(),
                    "days_left": e.days_left,
                }),
                &format!("cert-expiring:{cert_id}:{}", e.certification.expires_on),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Runs [`Self::record_expiry_events`] for today (UTC) every `every` until `shutdown`:
    /// re-running is free (one event per certification and expiry date), so a restart or a
    /// second replica costs nothing, and a certification renewed to a new date is reported
    /// again when that date comes near.
    pub async fn run_expiry_schedule(
        &self,
        days: u32,
        every: std::time::Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            let today = OffsetDateTime::now_utc().date();
            match self.record_expiry_events(today, days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, days, "certification expiry events"),
                Err(e) => tracing::warn!(error = %e, "certification expiry check"),
            }
        }
    }

    /// Outbox rows after `after_id`, oldest first (consumers remember the last id).
    pub async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<FacilityEvent>, FacilityError> {
        let rows: Vec<(i64, Uuid, String, serde_json::Value, OffsetDateTime)> = sqlx::query_as(
            "SELECT id, facility_id, kind, payload, created_at FROM facilities.events
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, facility_id, kind, payload, created_at)| FacilityEvent {
                    id,
                    facility_id,
                    kind,
                    payload,
                    created_at,
                },
            )
            .collect())
    }

    // ---- chain mirror -----------------------------------------------------------------------

    /// The unsigned transaction mirroring `action` to the on-chain registry, with `signer`
    /// (base58) as fee payer and signer.
    pub async fn mirror_transaction(
        &self,
        chain: &SolanaChain,
        id: Uuid,
        action: &MirrorAction,
        signer: &str,
    ) -> Result<UnsignedTransaction, FacilityError> {
        let facility = self
            .get(id)
            .await?
            .ok_or(FacilityError::NotFound("facility"))?;
        if facility.profile.status == FacilityStatus::Deactivated
            && !matches!(action, MirrorAction::Deactivate)
        {
            return Err(FacilityError::Deactivated(id));
        }
        let signer = chain::parse_pubkey("signer", signer)?;
        let ix = chain::instruction(&facility, action, &signer)?;
        Ok(chain.unsigned_transaction(&[ix], &signer).await?)
    }
}

#[derive(sqlx::FromRow)]
struct ExpiringRow {
    facility_name: String,
    days_left: i32,
    #[sqlx(flatten)]
    cert: CertRow,
}

async fn write_children(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    input: &FacilityInput,
) -> Result<(), FacilityError> {
    for w in &input.payout_wallets {
        sqlx::query(
            "INSERT INTO facilities.payout_wallets (facility_id, chain, address) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(&w.chain)
        .bind(w.address.trim())
        .execute(&mut **tx)
        .await?;
    }
    for c in &input.certifications {
        sqlx::query(
            "INSERT INTO facilities.certifications (id, facility_id, name, issuer, number, issued_on, expires_on)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.id.unwrap_or_else(Uuid::now_v7))
        .bind(id)
        .bind(c.name.trim())
        .bind(&c.issuer)
        .bind(&c.number)
        .bind(c.issued_on)
        .bind(c.expires_on)
        .execute(&mut **tx)
        .await
        .map_err(|e| match e.as_database_error().and_then(|d| d.constraint()) {
            Some("certifications_pkey") => {
                invalid("a certification id belongs to another facility")
            }
            _ => FacilityError::Database(e),
        })?;
    }
    Ok(())
}

/// Appends an outbox row unless one with `dedupe_key` exists; returns rows written (0/1).
/// The payload carries `facility_id` too: followers get self-contained events.
async fn event(
    tx: &mut Transaction<'_, Postgres>,
    facility_id: Uuid,
    kind: &str,
    mut payload: serde_json::Value,
    dedupe_key: &str,
) -> Result<u64, FacilityError> {
    if let serde_json::Value::Object(m) = &mut payload {
        m.insert("facility_id".into(), serde_json::json!(facility_id));
    }
    Ok(sqlx::query(
        "INSERT INTO facilities.events (facility_id, kind, payload, dedupe_key)
         VALUES ($1, $2, $3, $4) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(facility_id)
    .bind(kind)
    .bind(payload)
    .bind(dedupe_key)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}
