//! The database's disk fills up under a running stack (issue #20): writes answer
//! `503 database-unavailable` with `Retry-After`, nothing is half-written, reads keep
//! answering, and writes resume by themselves once space is freed.
//!
//! The private cluster's data directory is a 128 MB tmpfs (its write-ahead log on a volume
//! of its own: a full WAL volume is a server crash, covered by `postgres_crash`); the test
//! fills it with a table of incompressible rows until Postgres refuses to extend any file.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::time::{Duration, Instant};

use advancia_auth::Role;
use advancia_db::sqlx::{self, PgPool};
use advancia_e2e::{FACILITY_ID, SOL, Stack, kind};
use advancia_faults::disk::SmallDisk;
use advancia_faults::pg::PgCluster;
use serde_json::{Value, json};

/// Rows the payment intents leave: (intents, status history, outbox events).
async fn rows(db: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM payments.payments),
                (SELECT count(*) FROM payments.payment_status_history),
                (SELECT count(*) FROM payments.events)",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

/// Fills the disk: 1 MB rows stored as they are (no compression), until Postgres refuses
/// to extend the table for lack of space (SQLSTATE 53100). Returns how many MB it took.
async fn fill(db: &PgPool) -> usize {
    sqlx::query("CREATE TABLE public.filler (b text)")
        .execute(db)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE public.filler ALTER COLUMN b SET STORAGE EXTERNAL")
        .execute(db)
        .await
        .unwrap();
    for mb in 0.. {
        let r = sqlx::query("INSERT INTO public.filler SELECT repeat('x', 1024 * 1024)")
            .execute(db)
            .await;
        match r {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("53100") => return mb,
            Err(e) => panic!("filling the disk: {e}"),
        }
        assert!(mb < 1024, "the disk never filled");
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_503_half_writes_nothing_and_recovers() {
    let disk = SmallDisk::mount(128).unwrap_or_else(|e| {
        panic!("this test needs a size-limited filesystem (run as root in the sandbox): {e}")
    });
    let pg = PgCluster::start_with_data_on(disk.path()).unwrap();
    let stack = Stack::start_on(&pg.url()).await;
    let (_, patient) = stack.user("patient@example.org", Role::Patient).await;
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&stack.db.url)
        .await
        .unwrap();
    let body =
        json!({"facility_id": hex::encode(FACILITY_ID), "amount": SOL.to_string(), "asset": "SOL"});
    let initiate = |stack: &Stack| {
        let req = stack
            .http
            .post(format!("{}/api/v1/payments/initiate", stack.base))
            .bearer_auth(&patient)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let retry_after = r.headers().contains_key("retry-after");
            let v: Value = r.json().await.unwrap_or_default();
            (status, retry_after, v)
        }
    };
    // What one intent writes, measured.
    let before = rows(&db).await;
    let (s, _, first) = initiate(&stack).await;
    assert_eq!(s, 201, "{first}");
    let one = rows(&db).await;
    let per = (one.0 - before.0, one.1 - before.1, one.2 - before.2);
    let id = first["id"].as_str().unwrap().to_owned();

    let filled_mb = fill(&db).await;
    // Writes that still fit in a page with room go through; the first that needs a new
    // block is refused. Every answer is one or the other, and the rows match the 201s.
    let mut created = 1;
    let mut refused = None;
    for attempt in 0..500 {
        let (s, retry_after, p) = initiate(&stack).await;
        match s {
            201 => created += 1,
            503 => {
                assert!(retry_after, "503 without Retry-After");
                assert_eq!(kind(&p), "database-unavailable", "{p}");
                refused = Some((attempt, p));
                break;
            }
            s => panic!("a write on a full disk answered {s}: {p}"),
        }
    }
    let (after_writes, problem) = refused.expect("no write was refused on a full disk");
    let now = rows(&db).await;
    assert_eq!(
        now,
        (
            before.0 + created * per.0,
            before.1 + created * per.1,
            before.2 + created * per.2
        ),
        "rows per intent {per:?}: nothing half-written"
    );
    // Reads keep answering.
    let (s, st) = stack
        .get(&format!("/api/v1/payments/{id}/status"), Some(&patient))
        .await;
    assert_eq!(s, 200, "{st}");
    let (s, _) = stack.get("/health", None).await;
    assert_eq!(s, 200);

    // Space comes back; writes resume with no restart.
    sqlx::query("DROP TABLE public.filler")
        .execute(&db)
        .await
        .unwrap();
    let freed = Instant::now();
    loop {
        let (s, _, p) = initiate(&stack).await;
        if s == 201 {
            break;
        }
        assert_eq!(s, 503, "{p}");
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "writes never came back: {p}\n{}",
            pg.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed = freed.elapsed();
    println!(
        "disk full after {filled_mb} MB of filler on a 128 MB data volume; {after_writes} more \
         intents fitted in pages with room, then 503 database-unavailable ({}); rows matched \
         the 201s exactly; writes resumed {resumed:?} after space was freed",
        problem["detail"]
    );
}
