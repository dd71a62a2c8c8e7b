//! The database turns read-only (a replica promoted wrongly, a disk nearly full and
//! protected) under a running stack (issue #20): writes fail with a clear 503 and nothing
//! half-written; reads keep working; everything resumes when it is writable again.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::time::{Duration, Instant};

use advancia_auth::Role;
use advancia_e2e::{FACILITY_ID, SOL, Stack, kind};
use serde_json::json;

/// Sets `default_transaction_read_only` for the stack's database and ends every other
/// session in it, so each pooled connection comes back under the new setting.
async fn read_only(stack: &Stack, on: bool) {
    let name = &stack.db.name;
    let set = if on {
        format!("ALTER DATABASE \"{name}\" SET default_transaction_read_only = on")
    } else {
        format!("ALTER DATABASE \"{name}\" RESET default_transaction_read_only")
    };
    // From the server's maintenance database, as an operator would.
    let admin = advancia_db::sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&advancia_db::DbConfig::from_env().url)
        .await
        .unwrap();
    advancia_db::sqlx::query(&set)
        .execute(&admin)
        .await
        .unwrap();
    advancia_db::sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
}

async fn payments(stack: &Stack) -> i64 {
    let c = advancia_db::sqlx::PgPool::connect(&stack.db.url)
        .await
        .unwrap();
    let n = advancia_db::sqlx::query_scalar("SELECT count(*) FROM payments.payments")
        .fetch_one(&c)
        .await
        .unwrap();
    c.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_refuses_writes_with_503_and_loses_nothing() {
    let stack = Stack::start().await;
    let (_, patient) = stack.user("patient@example.org", Role::Patient).await;
    let body =
        json!({"facility_id": hex::encode(FACILITY_ID), "amount": SOL.to_string(), "asset": "SOL"});
    let (s, first) = stack
        .post("/api/v1/payments/initiate", Some(&patient), body.clone())
        .await;
    assert_eq!(s, 201, "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    let before = payments(&stack).await;

    read_only(&stack, true).await;
    let url = format!("{}/api/v1/payments/initiate", stack.base);
    let r = stack
        .http
        .post(&url)
        .bearer_auth(&patient)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        r.headers().get("retry-after").is_some(),
        "503 without Retry-After"
    );
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(kind(&p), "database-unavailable", "{p}");
    assert_eq!(payments(&stack).await, before, "nothing half-written");
    // Reads still answer.
    let (s, st) = stack
        .get(&format!("/api/v1/payments/{id}/status"), Some(&patient))
        .await;
    assert_eq!(s, 200, "{st}");

    read_only(&stack, false).await;
    let back = Instant::now();
    loop {
        let (s, p) = stack
            .post("/api/v1/payments/initiate", Some(&patient), body.clone())
            .await;
        if s == 201 {
            break;
        }
        assert_eq!(s, 503, "{p}");
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "writes never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(payments(&stack).await, before + 1);
}
