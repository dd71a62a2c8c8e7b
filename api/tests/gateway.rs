#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Gateway layers over real sockets: rate limits (in-process and Redis), problem+json
//! for every error, request ids, CORS, compression, timeouts, OpenAPI.

use std::time::Duration;

use advancia_api::ApiConfig;
use advancia_api::gateway::{self, GatewayConfig};
use advancia_api::ratelimit::{Limiter, LocalLimiter, Quota, RedisLimiter};
use advancia_test_support::TestDb;
use axum::Router;
use axum::routing::{get, post};

mod common;
use common::{spawn, state};

fn small_limits() -> GatewayConfig {
    let mut c = GatewayConfig::default();
    c.rate_limits
        .insert("payments".into(), Quota::per_minute(3));
    c
}

/// A router with handlers that exercise body parsing and slowness, inside the real layers.
fn probe_routes() -> Router {
    #[derive(serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        amount: u64,
    }
    Router::new()
        .route(
            "/api/v1/payments/echo",
            post(|axum::Json(_b): axum::Json<Body>| async { "ok" }),
        )
        .route(
            "/api/v1/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
}

#[tokio::test]
async fn rate_limit_returns_429_with_headers_and_problem() {
    let base = spawn(gateway::apply(
        probe_routes(),
        small_limits(),
        Limiter::Local(Default::default()),
    ))
    .await;
    let client = reqwest::Client::new();
    for i in 0..3 {
        let r = client
            .post(format!("{base}/api/v1/payments/echo"))
            .json(&serde_json::json!({"amount": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["ratelimit-limit"], "3");
        assert_eq!(
            r.headers()["ratelimit-remaining"].to_str().unwrap(),
            (2 - i).to_string()
        );
        assert_eq!(r.headers()["ratelimit-policy"], "3;w=60");
    }
    let r = client
        .post(format!("{base}/api/v1/payments/echo"))
        .json(&serde_json::json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "retry-after {retry}");
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["type"], "https://advancia.dev/problems/rate-limited");
    assert_eq!(p["status"], 429);

    // Other groups have their own budget.
    let r = client
        .get(format!("{base}/api/v1/blockchain/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["ratelimit-limit"], "500");
    // Outside /api/v1 nothing is limited.
    let r = client.get(format!("{base}/anything")).send().await.unwrap();
    assert!(r.headers().get("ratelimit-limit").is_none());
}

#[tokio::test]
async fn redis_limiter_shares_one_budget_between_two_api_instances() {
    let db = TestDb::new(&[]).await;
    let prefix = format!("advtest:{}:{}", std::process::id(), rand_suffix());
    let config = ApiConfig {
        gateway: small_limits(),
        redis_url: Some("redis://127.0.0.1:6379".into()),
        redis_prefix: prefix,
    };
    let a = spawn(
        advancia_api::app(state(db.pool.clone()), config.clone())
            .await
            .unwrap(),
    )
    .await;
    let b = spawn(
        advancia_api::app(state(db.pool.clone()), config)
            .await
            .unwrap(),
    )
    .await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for base in [&a, &b, &a, &b, &a] {
        let r = client
            .get(format!("{base}/api/v1/payments/history"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    // 3 per minute across both instances (unauthenticated calls count against the client
    // address): the 4th and 5th are refused wherever they land.
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn redis_limiter_gcra_matches_the_local_one() {
    let redis = RedisLimiter::connect(
        "redis://127.0.0.1:6379",
        &format!("advtest:{}:{}", std::process::id(), rand_suffix()),
    )
    .await
    .unwrap();
    let local = LocalLimiter::default();
    let q = Quota::per_minute(5);
    use advancia_api::ratelimit::RateLimiter;
    for i in 0..7 {
        let r = redis.check("k", &q).await.unwrap();
        let l = local.check("k", &q).await.unwrap();
        assert_eq!(r.allowed, l.allowed, "request {i}");
        assert_eq!(r.remaining, l.remaining, "request {i}");
    }
}

#[tokio::test]
async fn unreachable_redis_is_a_clear_startup_error() {
    let db = TestDb::new(&[]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ApiConfig {
        redis_url: Some(format!("redis://:secret@127.0.0.1:{port}")),
        ..ApiConfig::default()
    };
    let err = advancia_api::app(state(db.pool.clone()), config)
        .await
        .expect_err("must fail");
    let text = format!("{err:#}");
    assert!(text.contains("ADVANCIA_REDIS_URL"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
async fn every_error_is_problem_json() {
    let mut config = GatewayConfig {
        request_timeout: Duration::from_millis(200),
        body_limit_bytes: 1024,
        ..GatewayConfig::default()
    };
    config.rate_limits.clear();
    let base = spawn(gateway::apply(
        probe_routes(),
        config,
        Limiter::Local(Default::default()),
    ))
    .await;
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/payments/echo");

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        // Malformed JSON.
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body("{"),
            400,
            "bad-request",
        ),
        // Well-formed JSON of the wrong shape.
        (
            client.post(&url).json(&serde_json::json!({"amount": "x"})),
            422,
            "invalid-body",
        ),
        // Wrong content type.
        (
            client.post(&url).body("amount=1"),
            415,
            "unsupported-media-type",
        ),
        // Body over the limit.
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(format!("{{\"amount\":1,\"pad\":\"{}\"}}", "x".repeat(4096))),
            413,
            "payload-too-large",
        ),
        // Method not allowed.
        (client.get(&url), 405, "method-not-allowed"),
        // Handler slower than the timeout.
        (
            client.get(format!("{base}/api/v1/slow")),
            503,
            "unavailable",
        ),
    ];
    for (req, status, slug) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{slug}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{slug}"
        );
        let p: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            p["type"],
            format!("https://advancia.dev/problems/{slug}"),
            "{p}"
        );
        assert_eq!(p["status"], status);
    }
}

#[tokio::test]
async fn request_ids_cors_compression_and_openapi() {
    let db = TestDb::new(&[]).await;
    let mut config = ApiConfig::default();
    config.gateway.cors_origins = vec!["https://wallet.example".parse().unwrap()];
    let base = spawn(
        advancia_api::app(state(db.pool.clone()), config)
            .await
            .unwrap(),
    )
    .await;
    // Automatic decompression off: other crates in a workspace build may enable reqwest's
    // gzip feature, which would hide the Content-Encoding this test checks.
    let client = reqwest::Client::builder().no_gzip().build().unwrap();

    // A request id is generated, or the caller's is propagated.
    let r = client.get(format!("{base}/health")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "uuid request id, got {id}");
    let r = client
        .get(format!("{base}/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");

    // CORS: the configured origin is allowed, others are not.
    let pre = client
        .request(
            reqwest::Method::OPTIONS,
            format!("{base}/api/v1/openapi.json"),
        )
        .header("origin", "https://wallet.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://wallet.example"
    );
    let other = client
        .get(format!("{base}/health"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // OpenAPI 3.1, compressed on request.
    let r = client
        .get(format!("{base}/api/v1/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let doc: serde_json::Value = client
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/health"]["get"].is_object());
    assert!(doc["paths"]["/ready"]["get"]["responses"]["503"].is_object());

    // The reference: Swagger UI from our own origin, under a CSP that admits only it.
    let page = client
        .get(format!("{base}/api/v1/docs"))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    let html = page.text().await.unwrap();
    for src in [
        "/api/v1/docs/swagger-ui-bundle.js",
        "/api/v1/docs/init.js",
        "/api/v1/docs/swagger-ui.css",
    ] {
        assert!(html.contains(src), "{html}");
        let r = client.get(format!("{base}{src}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{src}");
        assert!(!r.bytes().await.unwrap().is_empty(), "{src}");
    }
    assert!(
        !html.contains("https://"),
        "the page loads nothing from elsewhere: {html}"
    );
}
