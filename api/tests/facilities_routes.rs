#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Facilities routes through the full gateway against real Postgres.

use advancia_auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::{TestApi as Api, kind};

fn profile(name: &str) -> Value {
    json!({
        "name": name, "facility_type": "clinic", "services": ["cardiology"],
        "address": {"street": "1 Main St", "city": "Boston", "country": "US"},
        "location": {"lat": 42.36, "lon": -71.06},
        "contacts": [{"kind": "phone", "value": "+1 555 0100"}],
        "accepted_assets": ["solana:USDC"],
        "payout_wallets": [{"chain": "solana", "address": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"}],
        "certifications": [{"name": "JCI", "issuer": "JCI", "expires_on": "2000-01-01"}],
        "status": "active"
    })
}

async fn put(
    api: &Api,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = api
        .http
        .request(Method::PUT, format!("{}{path}", api.base))
        .bearer_auth(token)
        .json(&body);
    if let Some(m) = if_match {
        req = req.header("If-Match", m);
    }
    let r = req.send().await.unwrap();
    let s = r.status();
    (
        s,
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn profiles_etags_rbac_search_and_bookings() {
    let api = Api::start().await;
    let (_, manager) = api
        .token_for("manager@example.com", Role::FacilityAdmin)
        .await;
    let (patient_id, patient) = api.token_for("patient@example.com", Role::Patient).await;

    // RBAC: patients read but do not write; anonymous callers do neither.
    let (s, _) = api
        .post("/api/v1/facilities", Some(&patient), profile("Nope"))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api
        .call(Method::GET, "/api/v1/facilities", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let r = api
        .http
        .post(format!("{}/api/v1/facilities", api.base))
        .bearer_auth(&manager)
        .json(&profile("Harbor Clinic"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["etag"], "\"1\"");
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/facilities/{id}");

    let (s, got) = api.call(Method::GET, &path, Some(&patient), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["name"], "Harbor Clinic");

    // If-Match: missing → 428, stale → 412, current → 200 with the next ETag.
    let mut changed = profile("Harbor Clinic & Heart");
    changed["certifications"] = created["certifications"].clone();
    let (s, b) = put(&api, &path, &manager, None, changed.clone()).await;
    assert_eq!(
        (s, kind(&b)),
        (StatusCode::PRECONDITION_REQUIRED, "precondition-required")
    );
    let (s, b) = put(&api, &path, &manager, Some("\"7\""), changed.clone()).await;
    assert_eq!(
        (s, kind(&b)),
        (StatusCode::PRECONDITION_FAILED, "version-mismatch")
    );
    assert_eq!(b["current_etag"], "\"1\"");
    let (s, b) = put(&api, &path, &manager, Some("\"1\""), changed.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["version"], 2);
    let (s, _) = put(&api, &path, &manager, Some("\"1\""), changed).await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);

    // Search by text and distance.
    let (s, page) = api
        .call(
            Method::GET,
            "/api/v1/facilities?q=heart&near_lat=42.35&near_lon=-71.05&radius_km=10",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["items"][0]["distance_km"].as_f64().unwrap() < 10.0);

    // Staff, then two bookings of one slot: the second gets 409.
    let (s, staff) = api
        .post(
            &format!("{path}/staff"),
            Some(&manager),
            json!({"display_name": "Dr A", "roles": ["physician"],
                   "licences": [{"kind": "medical", "number": "MD-1", "issuer": "Board"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{staff}");
    let booking = json!({"staff_id": staff["id"], "starts_at": "2030-01-01T09:00:00Z",
                         "ends_at": "2030-01-01T09:30:00Z"});
    let (s, first) = api
        .post(
            &format!("{path}/appointments"),
            Some(&patient),
            booking.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["booked_for"].as_str().unwrap(), patient_id);
    let (s, b) = api
        .post(&format!("{path}/appointments"), Some(&manager), booking)
        .await;
    assert_eq!((s, kind(&b)), (StatusCode::CONFLICT, "slot-taken"));

    // The patient may cancel their own appointment.
    let (s, b) = api
        .post(
            &format!(
                "/api/v1/facilities/appointments/{}/cancel",
                first["id"].as_str().unwrap()
            ),
            Some(&patient),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );

    // Compliance: the certification expired in 2000 is reported; events written once.
    let (s, _) = api
        .call(
            Method::GET,
            "/api/v1/facilities/compliance/expiring?days=30",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, exp) = api
        .call(
            Method::GET,
            "/api/v1/facilities/compliance/expiring?days=30",
            Some(&manager),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(exp[0]["certification"]["name"], "JCI");
    let (_, w) = api
        .post(
            "/api/v1/facilities/compliance/expiring/events",
            Some(&manager),
            json!({}),
        )
        .await;
    assert_eq!(w["written"], 1);
    let (_, w) = api
        .post(
            "/api/v1/facilities/compliance/expiring/events",
            Some(&manager),
            json!({}),
        )
        .await;
    assert_eq!(w["written"], 0);
}
