#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Idempotency-Key semantics against real Postgres.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use advancia_api::idempotency::{self, IdempotencyState};
use advancia_test_support::TestDb;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

/// A money-moving stand-in whose every execution is counted; the first call of
/// `/flaky` fails with 500 and `/slow` takes a while.
fn app(pool: advancia_db::sqlx::PgPool, runs: Arc<AtomicU32>) -> Router {
    let r1 = runs.clone();
    let r2 = runs.clone();
    let r3 = runs;
    Router::new()
        .route(
            "/api/v1/payments/charge",
            post(move |body: String| {
                let n = r1.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    (
                        StatusCode::CREATED,
                        axum::Json(serde_json::json!({ "run": n, "echo": body })),
                    )
                }
            }),
        )
        .route(
            "/api/v1/payments/flaky",
            post(move || {
                let n = r2.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n == 1 {
                        (StatusCode::INTERNAL_SERVER_ERROR, "boom".to_owned())
                    } else {
                        (StatusCode::OK, format!("run {n}"))
                    }
                }
            }),
        )
        .route(
            "/api/v1/payments/slow",
            post(move || {
                r3.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    "done"
                }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            IdempotencyState {
                pool,
                trusted_proxy_hops: 0,
            },
            idempotency::enforce,
        ))
}

mod common;
use common::spawn;

#[tokio::test]
async fn same_key_same_body_replays_without_running_again() {
    let db = TestDb::new(&[&advancia_api::MIGRATIONS]).await;
    let runs = Arc::new(AtomicU32::new(0));
    let base = spawn(app(db.pool.clone(), runs.clone())).await;
    let c = reqwest::Client::new();
    let send = |key: &'static str, body: &'static str| {
        c.post(format!("{base}/api/v1/payments/charge"))
            .header("idempotency-key", key)
            .body(body)
            .send()
    };
    let first = send("k-1", "amount=5").await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body: serde_json::Value = first.json().await.unwrap();

    let again = send("k-1", "amount=5").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["content-type"], "application/json");
    let again_body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again_body, first_body);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "handler ran once");

    // Same key, different body: refused, nothing runs.
    let other = send("k-1", "amount=6").await.unwrap();
    assert_eq!(other.status(), 422);
    let p: serde_json::Value = other.json().await.unwrap();
    assert_eq!(
        p["type"],
        "https://advancia.dev/problems/idempotency-key-reused"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // A new key runs again; no key at all always runs.
    assert_eq!(send("k-2", "amount=5").await.unwrap().status(), 201);
    let plain = c
        .post(format!("{base}/api/v1/payments/charge"))
        .body("amount=5")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 201);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn server_errors_free_the_key_for_a_retry() {
    let db = TestDb::new(&[&advancia_api::MIGRATIONS]).await;
    let runs = Arc::new(AtomicU32::new(0));
    let base = spawn(app(db.pool.clone(), runs.clone())).await;
    let c = reqwest::Client::new();
    let url = format!("{base}/api/v1/payments/flaky");
    let r = c
        .post(&url)
        .header("idempotency-key", "f")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let r = c
        .post(&url)
        .header("idempotency-key", "f")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "run 2");
    let r = c
        .post(&url)
        .header("idempotency-key", "f")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_duplicate_gets_409_and_runs_once() {
    let db = TestDb::new(&[&advancia_api::MIGRATIONS]).await;
    let runs = Arc::new(AtomicU32::new(0));
    let base = spawn(app(db.pool.clone(), runs.clone())).await;
    let c = reqwest::Client::new();
    let url = format!("{base}/api/v1/payments/slow");
    let (a, b) = tokio::join!(c.post(&url).header("idempotency-key", "s").send(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.post(&url).header("idempotency-key", "s").send().await
    });
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 409);
    assert_eq!(b.headers()["retry-after"], "1");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Once finished, the duplicate replays.
    let r = c
        .post(&url)
        .header("idempotency-key", "s")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn invalid_keys_are_rejected_and_old_records_purged() {
    let db = TestDb::new(&[&advancia_api::MIGRATIONS]).await;
    let runs = Arc::new(AtomicU32::new(0));
    let base = spawn(app(db.pool.clone(), runs.clone())).await;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{base}/api/v1/payments/charge"))
        .header("idempotency-key", "x".repeat(300))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    c.post(format!("{base}/api/v1/payments/charge"))
        .header("idempotency-key", "old")
        .send()
        .await
        .unwrap();
    advancia_db::sqlx::query(
        "UPDATE api.idempotency_keys SET created_at = now() - interval '2 days'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let purged = idempotency::purge_expired(&db.pool, Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(purged, 1);
}
