//! `/ready` tells the truth (issue #20): not ready within 5 s of the database refusing
//! connections, ready again within 5 s of it coming back, with no restart.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::time::{Duration, Instant};

use advancia_e2e::Stack;

/// Lets or stops new connections to the stack's database and ends the open ones (from the
/// server's maintenance database, as an operator would).
async fn connections(stack: &Stack, allowed: bool) {
    let admin = advancia_db::sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&advancia_db::DbConfig::from_env().url)
        .await
        .unwrap();
    let name = &stack.db.name;
    advancia_db::sqlx::query(&format!(
        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {allowed}"
    ))
    .execute(&admin)
    .await
    .unwrap();
    if !allowed {
        advancia_db::sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
        )
        .bind(name)
        .execute(&admin)
        .await
        .unwrap();
    }
    admin.close().await;
}

async fn ready_within(stack: &Stack, want: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (s, body) = stack.get("/ready", None).await;
        if s.as_u16() == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "/ready still {s} after {limit:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_the_database_both_ways_within_five_seconds() {
    let stack = Stack::start().await;
    ready_within(&stack, 200, Duration::from_secs(5)).await;

    connections(&stack, false).await;
    let down = ready_within(&stack, 503, Duration::from_secs(5)).await;
    let (_, body) = stack.get("/ready", None).await;
    assert!(
        body["checks"]["database"]
            .as_str()
            .is_some_and(|c| c.starts_with("error")),
        "{body}"
    );
    // Like every 503: when to ask again.
    let r = stack
        .http
        .get(format!("{}/ready", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        r.headers().contains_key("retry-after"),
        "503 without Retry-After"
    );
    // Liveness is not readiness: the process still serves.
    let (s, _) = stack.get("/health", None).await;
    assert_eq!(s, 200);

    connections(&stack, true).await;
    let up = ready_within(&stack, 200, Duration::from_secs(5)).await;
    println!(
        "/ready: not ready {down:?} after the database went away, ready {up:?} after it came back"
    );
}
