//! The Solana node goes away for 30 s under a running stack (issue #20).
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::time::{Duration, Instant};

use advancia_auth::Role;
use advancia_chains::breaker::BreakerState;
use advancia_e2e::{FACILITY_ID, SOL, Stack, funded, kind};
use advancia_faults::Proxy;
use serde_json::json;
use solana_signer::Signer;

const DOWN_FOR: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_node_down_chain_routes_fail_fast_the_rest_works_and_all_resumes() {
    let proxy = Proxy::start().await.unwrap();
    let stack = Stack::start_rpc_via(|node| proxy.forward_to(node)).await;
    let (_, patient) = stack.user("patient@example.org", Role::Patient).await;
    let initiate = |amount: u64| {
        let (stack, patient) = (&stack, patient.clone());
        async move {
            let url = format!("{}/api/v1/payments/initiate", stack.base);
            let started = Instant::now();
            let r = stack
                .http
                .post(url)
                .bearer_auth(&patient)
                .json(&json!({"facility_id": hex::encode(FACILITY_ID),
                              "amount": amount.to_string(), "asset": "SOL"}))
                .send()
                .await
                .unwrap();
            let took = started.elapsed();
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, retry_after, body, took)
        }
    };
    // Before: an intent the outage must not lose.
    let (s, _, before, _) = initiate(SOL).await;
    assert_eq!(s, 201, "{before}");
    let before_id = before["id"].as_str().unwrap().to_owned();

    proxy.down();
    let down_at = Instant::now();
    // The probe notices within a few seconds, with nobody asking.
    while stack.state.chain.breaker().state() != BreakerState::Open {
        assert!(
            down_at.elapsed() < Duration::from_secs(10),
            "the breaker did not open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let detected = down_at.elapsed();

    // For the rest of the outage: fast 503s, chain-independent routes fine.
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    while down_at.elapsed() < DOWN_FOR {
        let (s, retry_after, p, took) = initiate(SOL).await;
        assert_eq!((s, kind(&p)), (503, "chain-unavailable"), "{p}");
        assert!(retry_after.is_some(), "503 without Retry-After");
        assert!(
            took < Duration::from_millis(100),
            "a chain route took {took:?} with the node down"
        );
        slowest = slowest.max(took);
        let (s, st) = stack
            .get(
                &format!("/api/v1/payments/{before_id}/status"),
                Some(&patient),
            )
            .await;
        assert_eq!(s, 200, "{st}");
        let (s, _) = stack.get("/health", None).await;
        assert_eq!(s, 200);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The breaker's state is a metric.
    let metrics = advancia_api::observe::HttpMetrics::new(advancia_telemetry::Registry::new(
        "advancia", "test",
    ));
    let render = advancia_api::observe::render(
        &metrics,
        advancia_api::observe::Databases::of(&stack.state),
        stack.state.ledger_posting.clone(),
    );
    let text = render().await;
    assert!(
        text.contains("advancia_chain_breaker_state{chain=\"solana\"} 1"),
        "{text}"
    );
    let (s, ready) = stack.get("/ready", None).await;
    assert!(
        ready.to_string().contains("chain"),
        "readiness reports the chain: {s} {ready}"
    );
    assert!(
        ready["checks"]["chain"]
            .as_str()
            .is_some_and(|c| c.starts_with("error")),
        "{ready}"
    );

    // The node returns: the breaker closes by itself, and everything resumes.
    proxy.up();
    let up_at = Instant::now();
    while stack.state.chain.breaker().state() != BreakerState::Closed {
        assert!(
            up_at.elapsed() < Duration::from_secs(15),
            "the breaker did not close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = up_at.elapsed();
    let (s, _, after, _) = initiate(SOL).await;
    assert_eq!(s, 201, "{after}");
    let id = after["id"].as_str().unwrap();
    let wallet = funded(&stack.rpc, 3 * SOL).await;
    let link = after["transaction_request_url"].as_str().unwrap();
    let (s, txr) = stack
        .post(link, None, json!({"account": wallet.pubkey().to_string()}))
        .await;
    assert_eq!(s, 200, "{txr}");
    let signed = stack.wallet_sign(txr["transaction"].as_str().unwrap(), &wallet);
    stack.relay(&patient, &signed).await;
    // Indexed and followed by the payments worker through the same (recovered) node.
    let status = stack
        .wait_status(id, &patient, |v| v["status"] == "finalized")
        .await;
    assert_eq!(status["payer"], wallet.pubkey().to_string());
    assert!(stack.state.chain.breaker().opened_total() >= 1);
    println!(
        "node down {DOWN_FOR:?}: breaker open after {detected:?}; {answered} rounds of \
         503 chain-unavailable, slowest {slowest:?}; closed {recovered:?} after the node returned"
    );
}
