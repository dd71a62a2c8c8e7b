//! `/api/v1/analytics/*` over the whole app (gateway, RBAC) on seeded, rolled-up data.
#![allow(clippy::unwrap_used)]

mod analytics_seed;
mod common;

use advancia_auth::Role;
use analytics_seed::{SOL, expected_a_30d, facility_a, facility_b, seed, usdc};
use common::{TestApi, kind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn get(api: &TestApi, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    api.call(Method::GET, path, token, None).await
}

fn find<'a>(rows: &'a Value, facility: &str, mint: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["facility"] == facility && r["mint"] == mint)
        .unwrap_or_else(|| panic!("no row for {facility} {mint} in {rows}"))
}

#[tokio::test]
async fn summary_trends_and_rbac() {
    let api = TestApi::start().await;
    seed(&api.db.pool).await;
    let (_, admin) = api.token_for("admin@example.com", Role::Admin).await;
    let (_, finance) = api
        .token_for("fin@example.com", Role::ComplianceOfficer)
        .await;
    let (_, patient) = api.token_for("pat@example.com", Role::Patient).await;

    let (s, _) = get(&api, "/api/v1/analytics/transactions/summary", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = get(
        &api,
        "/api/v1/analytics/transactions/summary",
        Some(&patient),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

    let (s, b) = get(
        &api,
        "/api/v1/analytics/transactions/summary",
        Some(&finance),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (payments, volume, fees) = expected_a_30d();
    let a = find(&b["facilities"], &facility_a(), SOL);
    assert_eq!(a["payments"], payments);
    assert_eq!(a["volume"], volume.to_string());
    assert_eq!(a["fees"], fees.to_string());
    assert_eq!(a["refunds"], 1);
    assert_eq!(a["refunded"], "250000");
    assert_eq!(
        (a["attempts"].clone(), a["succeeded"].clone()),
        (json!(4), json!(3))
    );
    assert_eq!(a["success_rate"], 0.75);
    // Facility B in USDC: payments every third day + today's escrow release; the pending
    // and rolled-back payments are not counted.
    let b_usdc = find(&b["facilities"], &facility_b(), &usdc());
    let days: Vec<u64> = (1..=29).filter(|d| d % 3 == 0).collect();
    let vol: u64 = days.iter().map(|d| 5_000_000 + d).sum::<u64>() + 2_000_000;
    let fee: u64 = days.iter().map(|d| (5_000_000 + d) / 100).sum::<u64>() + 20_000;
    assert_eq!(b_usdc["payments"], days.len());
    assert_eq!(b_usdc["releases"], 1);
    assert_eq!(b_usdc["volume"], vol.to_string());
    assert_eq!(b_usdc["fees"], fee.to_string());
    // Totals are per (chain, mint): SOL and USDC never summed together.
    let totals = b["totals"].as_array().unwrap();
    assert_eq!(totals.len(), 2, "{b}");
    let sol_total = totals.iter().find(|t| t["mint"] == SOL).unwrap();
    assert_eq!(sol_total["volume"], volume.to_string());

    // Filters and explicit ranges.
    let (s, f) = get(
        &api,
        &format!(
            "/api/v1/analytics/transactions/summary?facility={}&from=2000-01-01&to=2100-01-01",
            facility_a()
        ),
        Some(&admin),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(f["facilities"].as_array().unwrap().len(), 1);
    assert_eq!(f["facilities"][0]["payments"], analytics_seed::DAYS);
    let (s, e) = get(
        &api,
        "/api/v1/analytics/transactions/summary?from=yesterday",
        Some(&admin),
    )
    .await;
    assert_eq!((s, kind(&e)), (StatusCode::BAD_REQUEST, "invalid-input"));

    // Daily trend of facility A: one bucket per day with its payment.
    let (s, t) = get(
        &api,
        &format!(
            "/api/v1/analytics/revenue/trends?granularity=day&facility={}&mint={SOL}",
            facility_a()
        ),
        Some(&finance),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let t = t.as_array().unwrap();
    assert_eq!(t.len(), 30, "29 payment days + today's refund");
    let today = analytics_seed::midnight_today();
    for p in t {
        let bucket = time::OffsetDateTime::parse(
            p["bucket"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp();
        let d = (today - bucket) / 86_400;
        if d > 0 {
            assert_eq!(p["volume"], analytics_seed::amount_a(d).to_string());
        } else {
            assert_eq!(p["refunded"], "250000");
        }
    }
    let (s, h) = get(
        &api,
        "/api/v1/analytics/revenue/trends?granularity=hour&from=2000-01-01&to=2100-01-01",
        Some(&admin),
    )
    .await;
    // Well-formed (the schema admits it), but too long for hourly figures.
    assert_eq!(
        (s, kind(&h)),
        (StatusCode::UNPROCESSABLE_ENTITY, "input-refused")
    );

    // User metrics: admin only.
    let (s, _) = get(&api, "/api/v1/analytics/users/metrics", Some(&finance)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, u) = get(&api, "/api/v1/analytics/users/metrics", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["total"], 3);
    let roles = u["by_role"].as_array().unwrap();
    assert!(roles.contains(&json!({"role": "admin", "users": 1})), "{u}");
    assert_eq!(u["signups"][0]["users"], 3);
}

#[tokio::test]
async fn reports_dashboards_and_forecast() {
    let api = TestApi::start().await;
    seed(&api.db.pool).await;
    let (_, admin) = api.token_for("admin@example.com", Role::Admin).await;
    let (_, patient) = api.token_for("pat@example.com", Role::Patient).await;

    // Reports: CSV and HTML, RBAC.
    let (s, _) = api
        .post(
            "/api/v1/analytics/reports/generate",
            Some(&patient),
            json!({"format": "csv"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let resp = api
        .http
        .post(format!("{}/api/v1/analytics/reports/generate", api.base))
        .bearer_auth(&admin)
        .json(&json!({"format": "csv", "from": "2000-01-01", "to": "2100-01-01", "facility": facility_a()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".csv")
    );
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines[0], advancia_analytics::report::COLUMNS.join(","));
    assert_eq!(
        lines.len() as i64,
        1 + analytics_seed::DAYS + 1,
        "a row per day + today"
    );
    let total: u128 = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(7).unwrap().parse::<u128>().unwrap())
        .sum();
    let want: u128 = (1..=analytics_seed::DAYS)
        .map(|d| u128::from(analytics_seed::amount_a(d)))
        .sum();
    assert_eq!(total, want);
    let resp = api
        .http
        .post(format!("{}/api/v1/analytics/reports/generate", api.base))
        .bearer_auth(&admin)
        .json(&json!({"format": "html"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(resp.text().await.unwrap().contains("<table>"));
    let (s, e) = api
        .post(
            "/api/v1/analytics/reports/generate",
            Some(&admin),
            json!({"format": "pdf"}),
        )
        .await;
    assert!(s.is_client_error(), "{s} {e}");

    // Saved dashboards.
    let (s, d) = api
        .post(
            "/api/v1/analytics/dashboards",
            Some(&admin),
            json!({"name": "Facility A", "definition": {"days": 7, "facility": facility_a()}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let id = d["id"].as_str().unwrap();
    let (s, g) = get(
        &api,
        &format!("/api/v1/analytics/dashboards/{id}"),
        Some(&admin),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(g["dashboard"]["name"], "Facility A");
    let week: u128 = (1..=6)
        .map(|d| u128::from(analytics_seed::amount_a(d)))
        .sum();
    assert_eq!(g["summary"]["facilities"][0]["volume"], week.to_string());
    assert_eq!(g["trends"].as_array().unwrap().len(), 7);
    let (s, e) = get(
        &api,
        &format!("/api/v1/analytics/dashboards/{}", uuid::Uuid::new_v4()),
        Some(&admin),
    )
    .await;
    assert_eq!((s, kind(&e)), (StatusCode::NOT_FOUND, "not-found"));
    let (s, _) = api
        .post(
            "/api/v1/analytics/dashboards",
            Some(&admin),
            json!({"name": "x", "definition": {"days": 0}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api
        .post(
            "/api/v1/analytics/dashboards",
            Some(&admin),
            json!({"name": "x", "definition": {"days": 120, "granularity": "hour"}}),
        )
        .await;
    // Each value is within its schema; together they are refused.
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Forecast of facility A's daily SOL volume (weekly pattern + trend).
    let (s, f) = get(
        &api,
        &format!("/api/v1/analytics/revenue/forecast?chain=solana&mint={SOL}&facility={}&metric=volume&history_days=63&holdout=14&horizon=7", facility_a()),
        Some(&admin),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["season_length"], 7);
    assert_eq!(f["forecast"].as_array().unwrap().len(), 7);
    let mae = f["holdout"]["mae"].as_f64().unwrap();
    let naive = f["baseline"]["mae"].as_f64().unwrap();
    assert!(
        mae < naive,
        "Holt-Winters MAE {mae} vs seasonal naive {naive}"
    );
    let (s, e) = get(
        &api,
        &format!(
            "/api/v1/analytics/revenue/forecast?chain=solana&mint={SOL}&history_days=21&holdout=14"
        ),
        Some(&admin),
    )
    .await;
    assert_eq!(
        (s, kind(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "input-refused")
    );

    // Documented.
    let (_, doc) = get(&api, "/api/v1/openapi.json", None).await;
    for path in [
        "/api/v1/analytics/transactions/summary",
        "/api/v1/analytics/revenue/trends",
        "/api/v1/analytics/revenue/forecast",
        "/api/v1/analytics/revenue/reconciliation",
        "/api/v1/analytics/users/metrics",
        "/api/v1/analytics/reports/generate",
        "/api/v1/analytics/dashboards/{id}",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
}

/// `advancia serve` runs the rollup worker: rows written by the indexer after start-up
/// reach the rollups without any request.
#[tokio::test]
async fn serve_runs_the_rollup_worker() {
    let db = advancia_test_support::TestDb::new(&[]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_advancia"))
        .args(["--dev", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &db.url)
        .env("AUTH_SIGNING_KEY", "11".repeat(32))
        .env("AUTH_TOTP_ENCRYPTION_KEY", "22".repeat(32))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "server did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    seed(&db.pool).await;
    let want: i64 =
        sqlx::query_scalar("SELECT count(*) FROM indexer.payments WHERE commitment = 'finalized'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    // The seed's own catch-up already counted everything; reset and let the server's
    // worker redo it from position 0.
    sqlx::query(
        "TRUNCATE analytics.rollup_hourly, analytics.rollup_daily, analytics.counted_events,
                  analytics.intent_outcomes, analytics.cursors",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got: Option<i64> =
            sqlx::query_scalar("SELECT sum(payments)::bigint FROM analytics.rollup_daily")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        if got == Some(want) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server's rollup worker counted {got:?} of {want} payments"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The rollups' fee revenue equals the ledger's fee-revenue accounts once the ledger's
/// posting rules have posted the same finalized events.
#[tokio::test]
async fn fee_revenue_reconciles_with_the_ledger() {
    let api = TestApi::start().await;
    seed(&api.db.pool).await;
    let (_, admin) = api.token_for("admin@example.com", Role::Admin).await;
    let path =
        |mint: &str| format!("/api/v1/analytics/revenue/reconciliation?chain=solana&mint={mint}");

    // Before the posting rules run the ledger has nothing: the difference is all of it.
    let (s, before) = get(&api, &path(SOL), Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "{before}");
    assert_eq!(before["ledger_fee_revenue"], "0");
    assert_eq!(before["matches"], false);

    let assets = advancia_ledger::projection::ConfiguredAssets::parse(
        "solana",
        &format!("{SOL}=9,{}=6", usdc()),
    )
    .unwrap();
    let mut posting =
        advancia_ledger::projection::Projection::new(api.state.ledger.clone(), "solana", assets);
    posting
        .follower(api.state.pool.clone())
        .catch_up(&mut posting)
        .await
        .unwrap();
    assert!(posting.parked().await.unwrap().is_empty());

    for mint in [SOL.to_owned(), usdc()] {
        let (s, r) = get(&api, &path(&mint), Some(&admin)).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r["matches"], true, "{r}");
        assert_ne!(r["analytics_fees"], "0", "{r}");
        assert_eq!(r["difference"], "0");
    }
}
