#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Operations of the API on real Postgres and real servers: request and business metrics
//! scraped over HTTP, readiness checks per service, `--services` route selection, and
//! graceful shutdown draining an in-flight request while refusing new connections.

use std::time::Duration;

use advancia_api::observe::HttpMetrics;
use advancia_api::ops::{ServiceSet, Shutdown};
use advancia_telemetry::Registry;
use reqwest::StatusCode;

mod common;

async fn scrape(addr: std::net::SocketAddr) -> String {
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    r.text().await.unwrap()
}

/// The value of the sample line starting with `series ` (exact label text).
fn sample(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(str::to_owned)
}

#[tokio::test]
async fn metrics_move_with_traffic_and_business_rows() {
    let db = advancia_test_support::TestDb::new(&advancia_api::all_migrations()).await;
    let state = common::state(db.pool.clone());
    let metrics = HttpMetrics::new(Registry::new("advancia", "test"));
    // The background followers as `advancia serve` runs them (their counters are served).
    let shutdown = advancia_api::ops::Shutdown::new();
    let followers: Vec<_> = advancia_api::followers(&state, &shutdown)
        .into_iter()
        .map(|(_, task)| tokio::spawn(task))
        .collect();
    let posting = state.ledger_posting.clone();
    let app = advancia_api::app_with_metrics(
        state,
        advancia_api::ApiConfig::default(),
        Some(metrics.clone()),
    )
    .await
    .unwrap();
    let base = common::spawn(app).await;
    let (addr, task) = advancia_telemetry::metrics::serve(
        "127.0.0.1:0".parse().unwrap(),
        advancia_api::observe::render(
            &metrics,
            advancia_api::observe::Databases::shared(db.pool.clone()),
            posting,
        ),
    )
    .await
    .unwrap();

    let before = scrape(addr).await;
    assert!(
        before.contains("advancia_ledger_posted_events_total{chain=\"solana\"} 0"),
        "{before}"
    );
    shutdown.trigger();
    for f in followers {
        f.await.unwrap();
    }
    assert!(before.contains("advancia_build_info{binary=\"advancia\",version=\"test\"} 1"));
    assert_eq!(
        sample(
            &before,
            "advancia_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"}"
        ),
        None
    );

    let http = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(
            http.get(format!("{base}/health"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // A templated route: the label is the template, not the concrete path.
    let id = uuid::Uuid::new_v4();
    let r = http
        .get(format!("{base}/api/v1/payments/{id}/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .get(format!("{base}/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Two payment intents whose amounts sum past u64::MAX: volumes stay exact integers.
    for (i, status) in ["finalized", "finalized", "expired"].iter().enumerate() {
        sqlx_insert_payment(&db.pool, i, status, "18446744073709551615").await;
    }

    let after = scrape(addr).await;
    assert_eq!(
        sample(
            &after,
            "advancia_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"}"
        )
        .as_deref(),
        Some("3")
    );
    assert_eq!(
        sample(
            &after,
            "advancia_http_request_duration_seconds_count{route=\"/health\",method=\"GET\"}"
        )
        .as_deref(),
        Some("3")
    );
    assert_eq!(
        sample(
            &after,
            "advancia_http_request_duration_seconds_bucket{route=\"/health\",method=\"GET\",le=\"+Inf\"}"
        )
        .as_deref(),
        Some("3")
    );
    assert_eq!(
        sample(
            &after,
            "advancia_http_requests_total{route=\"/api/v1/payments/{id}/status\",method=\"GET\",status=\"401\"}"
        )
        .as_deref(),
        Some("1")
    );
    assert!(
        !after.contains(&id.to_string()),
        "raw path leaked into labels"
    );
    assert_eq!(
        sample(
            &after,
            "advancia_http_errors_total{route=\"unmatched\",method=\"GET\",class=\"4xx\"}"
        )
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        sample(
            &after,
            "advancia_http_requests_in_flight{route=\"/health\"}"
        )
        .as_deref(),
        Some("0")
    );
    let sol = "11111111111111111111111111111111";
    assert_eq!(
        sample(
            &after,
            &format!("advancia_payment_volume_base_units{{mint=\"{sol}\",status=\"finalized\"}}")
        )
        .as_deref(),
        Some("36893488147419103230")
    );
    assert_eq!(
        sample(
            &after,
            &format!("advancia_payments_total{{mint=\"{sol}\",status=\"expired\"}}")
        )
        .as_deref(),
        Some("1")
    );
    let ratio: f64 = sample(&after, "advancia_payment_success_ratio")
        .unwrap()
        .parse()
        .unwrap();
    assert!((ratio - 2.0 / 3.0).abs() < 1e-9, "{ratio}");
    // Schemas present but empty still render their families' headers.
    assert!(after.contains("# TYPE advancia_notifications_outbox gauge"));
    assert_eq!(metrics.requests("/health", "GET", 200), 3);
    task.abort();
}

/// The indexer's and the bridge's figures come through their owners' typed reads
/// (`advancia_indexer_store::progress`, the relayer's `Store::backlog`); a schema this
/// database does not hold renders no family and no scrape error.
#[tokio::test]
async fn metrics_read_indexer_and_bridge_figures_through_their_owners() {
    let registry = Registry::new("advancia", "test");
    let errors = registry.counter("scrape_errors", "test", &["query"]);
    let mut services = advancia_api::all_migrations();
    services.push(&advancia_relayer::MIGRATIONS);
    let db = advancia_test_support::TestDb::new(&services).await;
    for sql in [
        "INSERT INTO indexer.cursors (source, slot) VALUES ('solana:advancia-pay', 42)",
        "INSERT INTO bridge.messages (id, origin_domain, sequence, sender, destination_domain,
                                      recipient, asset, amount)
         VALUES (decode(repeat('01', 32), 'hex'), 1, 1, decode(repeat('02', 32), 'hex'), 7,
                 decode(repeat('03', 32), 'hex'), decode(repeat('04', 32), 'hex'), 5)",
    ] {
        advancia_db::sqlx::query(sql)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let text = advancia_api::observe::render_business(
        &advancia_api::observe::Databases::shared(db.pool.clone()),
        &errors,
    )
    .await;
    assert_eq!(
        sample(
            &text,
            "advancia_indexer_cursor_position{source=\"solana:advancia-pay\"}"
        )
        .as_deref(),
        Some("42"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "advancia_bridge_backlog{destination=\"7\",status=\"not_queued\"}"
        )
        .as_deref(),
        Some("1"),
        "{text}"
    );

    let without_bridge = advancia_test_support::TestDb::new(&advancia_api::all_migrations()).await;
    let text = advancia_api::observe::render_business(
        &advancia_api::observe::Databases::shared(without_bridge.pool.clone()),
        &errors,
    )
    .await;
    assert!(!text.contains("advancia_bridge_backlog"), "{text}");
    assert!(text.contains("# TYPE advancia_indexer_cursor_position gauge"));
    for query in ["payments", "indexer", "bridge", "notifications"] {
        assert_eq!(errors.get(&[query]), 0, "{query} failed");
    }
}

async fn sqlx_insert_payment(
    pool: &advancia_db::sqlx::PgPool,
    i: usize,
    status: &str,
    amount: &str,
) {
    advancia_db::sqlx::query(
        "INSERT INTO payments.payments (id, created_by, kind, facility_id, facility, mint, amount,
             invoice_id, reference, label, status, expires_at)
         VALUES ($1, $2, 'payment', $3, 'F', '11111111111111111111111111111111', $4::numeric,
             $5, $6, 'Checkup', $7, now() + interval '1 hour')",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(uuid::Uuid::new_v4())
    .bind("ab".repeat(32))
    .bind(amount)
    .bind(format!("{i:064x}"))
    .bind(format!("ref{i}"))
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn readiness_lists_each_check_and_services_select_routes() {
    let db = advancia_test_support::TestDb::new(&advancia_api::all_migrations()).await;
    // Ledger only: no chain check, payment routes absent.
    let state =
        common::state(db.pool.clone()).with_services(ServiceSet::parse("ledger,auth").unwrap());
    let base = common::spawn(
        advancia_api::app(state, advancia_api::ApiConfig::default())
            .await
            .unwrap(),
    )
    .await;
    let r = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["checks"]["database"], "ok");
    assert_eq!(v["checks"]["migrations"], "ok");
    assert!(v["checks"].get("chain").is_none(), "{v}");
    assert_eq!(v["services"], serde_json::json!(["auth", "ledger"]));
    let id = uuid::Uuid::new_v4();
    let r = reqwest::get(format!("{base}/api/v1/payments/{id}/status"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "payment routes are not served here");
    // The ledger's routes are (unauthenticated: 401, not 404).
    let r = reqwest::get(format!("{base}/api/v1/ledger/accounts/{id}/balance"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Payments enabled with an unreachable chain: reported; fatal only when required.
    let state = common::state(db.pool.clone());
    let base = common::spawn(
        advancia_api::app(state.clone(), advancia_api::ApiConfig::default())
            .await
            .unwrap(),
    )
    .await;
    let r = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let chain = v["checks"]["chain"].as_str().unwrap();
    assert!(chain.starts_with("error: "), "{v}");
    assert!(
        !chain.contains("127.0.0.1:1"),
        "RPC URL in public body: {chain}"
    );
    let strict = state.with_readiness(advancia_api::ops::ReadinessConfig {
        require_chain: true,
    });
    let base = common::spawn(
        advancia_api::app(strict, advancia_api::ApiConfig::default())
            .await
            .unwrap(),
    )
    .await;
    let r = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["type"], "https://advancia.dev/problems/not-ready");
    assert_eq!(v["checks"]["database"], "ok");
    assert!(v["detail"].as_str().unwrap().starts_with("chain: "), "{v}");

    // A migration recorded as missing makes the service not ready.
    advancia_db::sqlx::query(
        "DELETE FROM public.advancia_migrations WHERE schema_name = 'payments' AND version = 3",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let r = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["checks"]["migrations"],
        "error: pending: payments at 2 of 3"
    );
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_refuses_new_connections() {
    let db = advancia_test_support::TestDb::new(&advancia_api::all_migrations()).await;
    let state = common::state(db.pool.clone());
    // The real application plus one deliberately slow route standing in for a long request.
    let app = advancia_api::app(state, advancia_api::ApiConfig::default())
        .await
        .unwrap()
        .merge(axum::Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "done"
            }),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(advancia_api::ops::serve_with_drain(
        listener,
        app,
        shutdown.wait(),
        Duration::from_secs(10),
    ));
    let slow = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("http://{addr}/slow"))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = std::time::Instant::now();
    shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The listener is closed: a new connection is refused.
    let fresh = reqwest::Client::new()
        .get(format!("http://{addr}/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        fresh.as_ref().is_err_and(|e| e.is_connect()),
        "new connection after shutdown: {fresh:?}"
    );
    // The in-flight request still completes with its full answer.
    let resp = slow.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "done");
    let drained = server.await.unwrap().unwrap();
    assert!(drained, "the server reported a cut-off drain");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn drain_deadline_cuts_off_requests_that_outlive_it() {
    let app = axum::Router::new().route(
        "/hang",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(advancia_api::ops::serve_with_drain(
        listener,
        app,
        shutdown.wait(),
        Duration::from_millis(300),
    ));
    let hang = tokio::spawn(async move { reqwest::get(format!("http://{addr}/hang")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = std::time::Instant::now();
    shutdown.trigger();
    let drained = server.await.unwrap().unwrap();
    assert!(!drained);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    hang.abort();
}
