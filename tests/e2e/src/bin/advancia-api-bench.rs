//! `cargo xtask bench api`: load on the whole API (gateway layers, auth, Postgres, the local
//! chain) in one process, with a hello-world route on the same server as the reference
//! measured in the same run. Reports P50/P95/P99 latency and requests/s per route, and each
//! route's ratio to the reference; the design's bar is P95 < 500 ms and P99 < 1 s.
//!
//! Flags: `--concurrency N` (default 32), `--seconds S` per route (default 10).
#![allow(clippy::unwrap_used)] // a benchmark: a failed set-up step aborts it

use std::sync::Arc;
use std::time::{Duration, Instant};

use advancia_auth::Role;
use advancia_e2e::{FACILITY_ID, Stack};
use reqwest::Method;
use serde_json::json;

struct Target {
    name: &'static str,
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    token: Option<String>,
    expect: u16,
}

struct Report {
    name: &'static str,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    rps: f64,
    errors: usize,
}

async fn load(stack: &Stack, t: &Target, concurrency: usize, seconds: u64) -> Report {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let url = format!("{}{}", stack.base, t.path);
    let t = Arc::new((
        t.method.clone(),
        url,
        t.body.clone(),
        t.token.clone(),
        t.expect,
    ));
    // Warm-up: connections, caches, prepared statements.
    let warm = Instant::now() + Duration::from_secs(1);
    let run = |until: Instant| {
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let client = client.clone();
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                let (method, url, body, token, expect) = &*t;
                let mut lat = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < until {
                    let mut req = client.request(method.clone(), url);
                    if let Some(tok) = token {
                        req = req.bearer_auth(tok);
                    }
                    if let Some(b) = body {
                        req = req.json(b);
                    }
                    let start = Instant::now();
                    match req.send().await {
                        Ok(r) if r.status().as_u16() == *expect => {
                            let _ = r.bytes().await;
                            lat.push(start.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        tasks
    };
    for task in run(warm) {
        task.await.unwrap();
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in run(until) {
        let (lat, e) = task.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Report {
        name: "",
        p50: pct(0.50),
        p95: pct(0.95),
        p99: pct(0.99),
        rps: all.len() as f64 / elapsed,
        errors,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut concurrency = 32usize;
    let mut seconds = 10u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().and_then(|v| v.parse::<u64>().ok());
        match (a.as_str(), v) {
            ("--concurrency", Some(v)) => concurrency = v.max(1) as usize,
            ("--seconds", Some(v)) => seconds = v.max(1),
            _ => {
                eprintln!("usage: advancia-api-bench [--concurrency N] [--seconds S]");
                std::process::exit(2);
            }
        }
    }
    // The gateway's limits would (rightly) refuse a load test from one client.
    // Slots at a validator's pace (400 ms), not the tests' 50 ms: the node shares the cores.
    let node = advancia_localnet::LocalnetConfig {
        slot_duration: Duration::from_millis(400),
        ..advancia_localnet::LocalnetConfig::for_tests()
    };
    let stack = Stack::start_with(
        node,
        "payments=100000000/min,default=100000000/min,auth=100000000/min",
    )
    .await;
    let (_, patient) = stack.user("bench.patient@example.org", Role::Patient).await;
    // A history with some rows to read.
    for _ in 0..20 {
        let (s, v) = stack
            .post(
                "/api/v1/payments/initiate",
                Some(&patient),
                json!({"facility_id": hex::encode(FACILITY_ID), "amount": "1000", "asset": "SOL"}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let targets = [
        Target {
            name: "GET /health (reference: no I/O)",
            method: Method::GET,
            path: "/health".into(),
            body: None,
            token: None,
            expect: 200,
        },
        Target {
            name: "GET /api/v1/payments/history (JWT, Postgres)",
            method: Method::GET,
            path: "/api/v1/payments/history?limit=20".into(),
            body: None,
            token: Some(patient.clone()),
            expect: 200,
        },
        Target {
            name: "POST /api/v1/payments/initiate (JWT, chain reads, insert)",
            method: Method::POST,
            path: "/api/v1/payments/initiate".into(),
            body: Some(
                json!({"facility_id": hex::encode(FACILITY_ID), "amount": "1000", "asset": "SOL"}),
            ),
            token: Some(patient.clone()),
            expect: 201,
        },
    ];
    println!(
        "API load: {concurrency} concurrent clients, {seconds} s per route, client and server in one process"
    );
    let mut reports = Vec::new();
    for t in &targets {
        let mut r = load(&stack, t, concurrency, seconds).await;
        r.name = t.name;
        reports.push(r);
    }
    let reference = &reports[0];
    println!(
        "{:<60} {:>9} {:>9} {:>9} {:>9} {:>7} {:>12} {:>10}",
        "route", "P50 ms", "P95 ms", "P99 ms", "req/s", "errors", "P95/ref", "rps/ref"
    );
    let mut meets = true;
    for r in &reports {
        println!(
            "{:<60} {:>9.2} {:>9.2} {:>9.2} {:>9.0} {:>7} {:>12.1} {:>10.3}",
            r.name,
            ms(r.p50),
            ms(r.p95),
            ms(r.p99),
            r.rps,
            r.errors,
            ms(r.p95) / ms(reference.p95).max(0.001),
            r.rps / reference.rps.max(0.001),
        );
        meets &=
            r.p95 < Duration::from_millis(500) && r.p99 < Duration::from_secs(1) && r.errors == 0;
    }
    println!(
        "design bar (P95 < 500 ms, P99 < 1 s, no errors) on every route: {}",
        if meets { "met" } else { "NOT met" }
    );
    if !meets {
        std::process::exit(1);
    }
}
