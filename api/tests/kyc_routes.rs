#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! KYC and compliance routes through the full gateway against real Postgres: multipart
//! upload over HTTP, submission, review, RBAC refusals, screening, reports.

use std::path::PathBuf;
use std::sync::Arc;

use advancia_api::AppState;
use advancia_auth::{AuthConfig, AuthService, PasswordHashing, Role, SigningKeys};
use advancia_kyc::mrz::check_digit;
use advancia_kyc::sanctions::SanctionsList;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

mod common;
use common::{TestApi as Api, kind};

const WALLET: &str = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin";
/// Above the gateway's 1 MiB default: uploads have their own body limit.
const MAX_DOC: u64 = 2 * 1024 * 1024;

async fn start() -> (Api, PathBuf) {
    let db = advancia_test_support::TestDb::new(&advancia_api::all_migrations()).await;
    let dir = std::env::temp_dir().join(format!("kyc-api-{}", uuid::Uuid::new_v4()));
    let mut kyc = advancia_api::routes::kyc::KycSettings {
        document_dir: dir.clone(),
        sanctions: Arc::new(
            SanctionsList::load_dir(
                &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../offchain/kyc/testdata/sdn"),
            )
            .unwrap(),
        ),
        ..Default::default()
    };
    kyc.config.document_limits.max_bytes = MAX_DOC;
    let pool = db.pool.clone();
    let state = AppState::new(
        pool.clone(),
        AuthService::new(
            pool.clone(),
            AuthConfig {
                password_hashing: PasswordHashing::INSECURE_FAST,
                ..AuthConfig::default()
            },
            SigningKeys::generate(),
        )
        .unwrap(),
        advancia_ledger::Ledger::new(pool, Default::default()),
        advancia_api::ServicesConfig {
            solana_rpc_url: "http://127.0.0.1:1".into(),
            kyc,
            ..Default::default()
        },
    );
    let app = advancia_api::app(state.clone(), advancia_api::ApiConfig::default())
        .await
        .unwrap();
    let api = Api {
        base: common::spawn(app).await,
        http: reqwest::Client::new(),
        state,
        db,
    };
    (api, dir)
}

/// A multipart body with a `kind` part and a `file` part.
fn multipart(kind: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----advancia-test-boundary-7d1f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\n{kind}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"scan\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(api: &Api, token: &str, content_type: &str, bytes: &[u8]) -> (StatusCode, Value) {
    let (ct, body) = multipart("passport", content_type, bytes);
    let r = api
        .http
        .post(format!("{}/api/v1/kyc/documents/upload", api.base))
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..len - 8).map(|i| (i % 251) as u8));
    v
}

fn td3(surname: &str, given: &str, number: &str, birth: &str, expiry: &str) -> String {
    let mut l1 = format!("P<UTO{surname}<<{given}");
    while l1.len() < 44 {
        l1.push('<');
    }
    let num = format!("{number:<<9}");
    let personal = "<<<<<<<<<<<<<<";
    let d = |s: &str| check_digit(s).unwrap().to_string();
    let mut l2 = format!(
        "{num}{}UTO{birth}{}M{expiry}{}{personal}{}",
        d(&num),
        d(birth),
        d(expiry),
        d(personal)
    );
    let composite = format!("{}{}{}", &l2[0..10], &l2[13..20], &l2[21..43]);
    l2.push_str(&d(&composite));
    format!("{l1}\n{l2}")
}

#[tokio::test]
async fn upload_verify_review_screen_report_with_rbac() {
    let (api, dir) = start().await;
    let (user_id, patient) = api.token_for("patient@example.com", Role::Patient).await;
    let (other_id, other) = api.token_for("other@example.com", Role::Patient).await;
    let (_, officer) = api
        .token_for("officer@example.com", Role::ComplianceOfficer)
        .await;

    // Upload over HTTP (1.5 MB, over the 1 MiB limit of other routes): content-addressed,
    // idempotent.
    let scan = png(1_500_000);
    let (s, doc) = upload(&api, &patient, "image/png", &scan).await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    let sha = doc["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha, hex::encode(Sha256::digest(&scan)));
    assert!(dir.join(&sha[..2]).join(&sha).exists());
    let (s, again) = upload(&api, &patient, "image/png", &scan).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["id"], doc["id"]);
    // Limits and content checks, as problem+json.
    let (s, p) = upload(&api, &patient, "image/png", &png(MAX_DOC as usize + 10)).await;
    assert_eq!(
        (s, kind(&p)),
        (StatusCode::PAYLOAD_TOO_LARGE, "document-too-large"),
        "{p}"
    );
    let (s, p) = upload(
        &api,
        &patient,
        "application/pdf",
        b"MZ\x90\x00\x03\x00\x00\x00\x04",
    )
    .await;
    assert_eq!(
        (s, kind(&p)),
        (StatusCode::UNPROCESSABLE_ENTITY, "document-rejected"),
        "{p}"
    );
    let (s, p) = upload(&api, &patient, "image/jpeg", &scan).await;
    assert_eq!(
        (s, kind(&p)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content-type-mismatch"),
        "{p}"
    );
    let (s, p) = upload(&api, &patient, "text/html", b"<html></html>").await;
    assert_eq!(
        (s, kind(&p)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type"),
        "{p}"
    );
    let (s, _) = api
        .call(Method::POST, "/api/v1/kyc/documents/upload", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Submit with a linked wallet.
    let (s, _) = api
        .post(
            "/api/v1/blockchain/wallets/create",
            Some(&patient),
            json!({"chain": "solana", "address": WALLET}),
        )
        .await;
    assert!(s.is_success(), "{s}");
    let expiry = (OffsetDateTime::now_utc() + Duration::days(1000)).date();
    let exp = format!(
        "{:02}{:02}{:02}",
        expiry.year() % 100,
        expiry.month() as u8,
        expiry.day()
    );
    let body = json!({
        "full_name": "Olivia Patient", "birth_date": "1990-02-03", "country": "US",
        "document_type": "passport", "document_number": "P7654321",
        "mrz": td3("PATIENT", "OLIVIA", "P7654321", "900203", &exp),
        "documents": [sha], "wallet": WALLET
    });
    let (s, st) = api
        .post("/api/v1/kyc/verify", Some(&patient), body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{st}");
    assert_eq!(st["state"], "in_review");
    let vid = st["verification_id"].as_str().unwrap().to_owned();
    let (s, p) = api
        .post("/api/v1/kyc/verify", Some(&patient), body.clone())
        .await;
    assert_eq!((s, kind(&p)), (StatusCode::CONFLICT, "verification-open"));
    // Another user cannot use these documents.
    let (s, p) = api.post("/api/v1/kyc/verify", Some(&other), body).await;
    assert_eq!(
        (s, kind(&p)),
        (StatusCode::BAD_REQUEST, "invalid-input"),
        "{p}"
    );

    // RBAC: own status yes, someone else's no; review and reports are for officers.
    let own = format!("/api/v1/kyc/{user_id}/status");
    let (s, _) = api.call(Method::GET, &own, Some(&patient), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, p) = api.call(Method::GET, &own, Some(&other), None).await;
    assert_eq!((s, kind(&p)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, st) = api
        .call(
            Method::GET,
            &format!("/api/v1/kyc/{other_id}/status"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!((s, st["state"].as_str()), (StatusCode::OK, Some("none")));
    let approve = format!("/api/v1/kyc/verifications/{vid}/approve");
    for (m, path, body) in [
        (Method::POST, approve.as_str(), Some(json!({}))),
        (
            Method::POST,
            &format!("/api/v1/kyc/verifications/{vid}/attestation/retry"),
            None,
        ),
        (Method::GET, "/api/v1/kyc/verifications", None),
        (Method::GET, &format!("/api/v1/kyc/{user_id}/risk"), None),
        (
            Method::POST,
            "/api/v1/compliance/sanctions-check",
            Some(json!({"name": "x"})),
        ),
        (
            Method::GET,
            "/api/v1/compliance/reports?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z",
            None,
        ),
    ] {
        let (s, p) = api.call(m, path, Some(&patient), body).await;
        assert_eq!(
            (s, kind(&p)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}"
        );
    }

    // Officer: queue, approve, illegal second decision.
    let (s, q) = api
        .call(
            Method::GET,
            "/api/v1/kyc/verifications",
            Some(&officer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(q[0]["id"], vid.as_str());
    assert_eq!(q[0]["full_name"], "Olivia Patient");
    let (s, v) = api
        .post(&approve, Some(&officer), json!({"level": 2}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "approved");
    let (s, p) = api
        .post(
            &format!("/api/v1/kyc/verifications/{vid}/reject"),
            Some(&officer),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!((s, kind(&p)), (StatusCode::CONFLICT, "illegal-transition"));
    let (s, r) = api
        .call(
            Method::POST,
            &format!("/api/v1/kyc/verifications/{vid}/attestation/retry"),
            Some(&officer),
            None,
        )
        .await;
    assert_eq!(
        (s, r["requeued"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{r}"
    );
    let (s, st) = api.call(Method::GET, &own, Some(&patient), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (st["state"].as_str(), st["level"].as_u64()),
        (Some("approved"), Some(2))
    );
    assert_eq!(st["attestation"]["state"], "pending");
    // Users do not see who reviewed them or sanctions details.
    assert!(st.get("reviewer").is_none() && st.get("sanctions").is_none());

    let (s, r) = api
        .call(
            Method::GET,
            &format!("/api/v1/kyc/{user_id}/risk"),
            Some(&officer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["factors"].as_array().unwrap().len(), 4);
    assert_eq!(r["score"], 0);

    // Screening: transliterated name and a listed address.
    let (s, sc) = api
        .post(
            "/api/v1/compliance/sanctions-check",
            Some(&officer),
            json!({"name": "Мария Иванова", "address": "1FictXbtSampLeAddr3ssForKycTests9"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sc}");
    assert_eq!(sc["name_matches"][0]["ent_num"], 9004);
    assert_eq!(sc["address_matches"][0]["currency"], "XBT");
    let (s, p) = api
        .post(
            "/api/v1/compliance/sanctions-check",
            Some(&officer),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, kind(&p)),
        (StatusCode::UNPROCESSABLE_ENTITY, "input-refused")
    );

    // Reports: JSON and CSV.
    let from = (OffsetDateTime::now_utc() - Duration::hours(1)).unix_timestamp();
    let to = (OffsetDateTime::now_utc() + Duration::hours(1)).unix_timestamp();
    let fmt = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let q = format!(
        "/api/v1/compliance/reports?from={}&to={}",
        fmt(from),
        fmt(to)
    );
    let (s, rep) = api.call(Method::GET, &q, Some(&officer), None).await;
    assert_eq!(s, StatusCode::OK, "{rep}");
    assert_eq!(rep["submissions"], 1);
    assert_eq!(rep["decisions"]["approved"], 1);
    assert_eq!(rep["screenings"], 1);
    let r = api
        .http
        .get(format!("{}{q}&format=csv", api.base))
        .bearer_auth(&officer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains(&vid));
    let (s, p) = api
        .call(
            Method::GET,
            "/api/v1/compliance/reports?from=yesterday&to=now",
            Some(&officer),
            None,
        )
        .await;
    assert_eq!((s, kind(&p)), (StatusCode::BAD_REQUEST, "invalid-input"));

    // Listed in the OpenAPI document.
    let (_, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    for path in [
        "/api/v1/kyc/verify",
        "/api/v1/kyc/documents/upload",
        "/api/v1/compliance/reports",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
