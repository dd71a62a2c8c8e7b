#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Agent routes through the whole gateway: RBAC, registry lifecycle, execute over the
//! in-process bus with real workers, task and agent status, training, metrics,
//! orchestration, problem+json errors and the OpenAPI document.

use std::time::Duration;

use advancia_agents::worker::{WorkerConfig, spawn_workers};
use advancia_auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::{TestApi as Api, kind};

async fn start() -> (Api, Vec<tokio::task::JoinHandle<()>>) {
    let api = Api::start().await;
    let workers = spawn_workers(
        &api.state.agents,
        WorkerConfig {
            backoff_base: Duration::from_millis(20),
            ..WorkerConfig::default()
        },
    )
    .await
    .unwrap();
    (api, workers)
}

fn examples(n: usize) -> Vec<Value> {
    // Fraud happens to new payees at night, whatever the amount.
    (0..n)
        .map(|k| {
            let new_payee = k % 2 == 0;
            let hour = if k % 3 == 0 { 2 } else { 14 };
            json!({"input": {"amount": 100 + (k % 7) * 10, "history": [100, 120, 140],
                             "new_payee": new_payee, "hour": hour},
                   "label": new_payee && hour < 6})
        })
        .collect()
}

#[tokio::test]
async fn registry_execute_status_train_metrics_orchestrate() {
    let (api, _workers) = start().await;
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;
    let (_, officer) = api
        .token_for("officer@example.org", Role::ComplianceOfficer)
        .await;
    let (_, patient) = api.token_for("patient@example.org", Role::Patient).await;

    // RBAC on reads.
    let (s, _) = api.call(Method::GET, "/api/v1/agents", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = api
        .call(Method::GET, "/api/v1/agents", Some(&patient), None)
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, v) = api
        .call(Method::GET, "/api/v1/agents", Some(&officer), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.as_array().unwrap().len() >= 25);

    // Lifecycle: admins only.
    let reg =
        json!({"id": "velocity_strict", "kind": "velocity_check", "params": {"max_count": 2}});
    let (s, _) = api
        .post("/api/v1/agents", Some(&officer), reg.clone())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = api.post("/api/v1/agents", Some(&admin), reg.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["version"].as_i64(), v["params"]["max_count"].as_i64()),
        (Some(1), Some(2))
    );
    let (s, v) = api.post("/api/v1/agents", Some(&admin), reg).await;
    assert_eq!((s, kind(&v)), (StatusCode::CONFLICT, "conflict"));
    let (s, v) = api
        .post(
            "/api/v1/agents",
            Some(&admin),
            json!({"id": "x_y", "kind": "nope"}),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "input-refused")
    );

    // Execute and wait: the worker ran it over the bus.
    let events: Vec<Value> = (0..3)
        .map(|k| json!({"payer": "A", "at": k * 60, "amount": 5}))
        .collect();
    let (s, t) = api
        .post(
            "/api/v1/agents/execute",
            Some(&officer),
            json!({"agent": "velocity_strict", "input": {"events": events}, "wait_ms": 10_000}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["status"], "succeeded");
    assert_eq!(t["result"]["pass"], false, "3 payments > its limit of 2");
    // Without waiting: 202, then poll the task's status.
    let (s, t) = api
        .post("/api/v1/agents/execute", Some(&officer),
            json!({"agent": "cash_flow_gap", "input": {"opening_balance": 10, "flows": [{"day": 1, "amount": -30}]}}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    let path = format!("/api/v1/agents/{}/status", t["id"].as_str().unwrap());
    let mut done = Value::Null;
    for _ in 0..200 {
        let (s, v) = api.call(Method::GET, &path, Some(&officer), None).await;
        assert_eq!(s, StatusCode::OK);
        if v["status"] == "succeeded" {
            done = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(done["result"]["value"]["funding_needed"], "20", "{done}");
    // Bad input: the task fails with the reason.
    let (s, t) = api
        .post(
            "/api/v1/agents/execute",
            Some(&officer),
            json!({"agent": "benford_check", "input": {"amounts": [1]}, "wait_ms": 10_000}),
        )
        .await;
    assert_eq!((s, t["status"].as_str()), (StatusCode::OK, Some("failed")));
    assert!(t["error"].as_str().unwrap().contains("30"));
    let (s, v) = api
        .post(
            "/api/v1/agents/execute",
            Some(&officer),
            json!({"agent": "nope", "input": {}}),
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::NOT_FOUND, "not-found"));
    let (s, _) = api
        .post(
            "/api/v1/agents/execute",
            Some(&patient),
            json!({"agent": "cash_flow_gap", "input": {}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Disable / enable.
    let (s, v) = api
        .post(
            "/api/v1/agents/velocity_strict/disable",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!((s, v["enabled"].as_bool()), (StatusCode::OK, Some(false)));
    let (s, v) = api
        .post(
            "/api/v1/agents/execute",
            Some(&officer),
            json!({"agent": "velocity_strict", "input": {}}),
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::CONFLICT, "agent-disabled"));
    let (s, _) = api
        .post(
            "/api/v1/agents/velocity_strict/enable",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Agent status carries its metrics.
    let (s, v) = api
        .call(
            Method::GET,
            "/api/v1/agents/velocity_strict/status",
            Some(&officer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            v["agent"]["enabled"].as_bool(),
            v["metrics"]["succeeded"].as_i64()
        ),
        (Some(true), Some(1))
    );

    // Training: admins only; a new version with better held-out loss.
    let body = json!({"examples": examples(200), "holdout": examples(60)});
    let (s, _) = api
        .post(
            "/api/v1/agents/fraud_score/train",
            Some(&officer),
            body.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = api
        .post(
            "/api/v1/agents/fraud_score/train",
            Some(&admin),
            body.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    assert!(
        v["after"]["log_loss"].as_f64().unwrap() < v["before"]["log_loss"].as_f64().unwrap(),
        "{v}"
    );
    let (s, v) = api
        .post("/api/v1/agents/velocity_check/train", Some(&admin), body)
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "not-trainable")
    );
    let (s, v) = api
        .call(
            Method::GET,
            "/api/v1/agents/fraud_score/versions",
            Some(&officer),
            None,
        )
        .await;
    assert_eq!(
        (s, v[0]["reason"].as_str(), v[1]["reason"].as_str()),
        (StatusCode::OK, Some("trained"), Some("registered"))
    );
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/agents/fraud_score/params",
            Some(&admin),
            Some(json!({"threshold": 0.7})),
        )
        .await;
    assert_eq!((s, v["version"].as_i64()), (StatusCode::OK, Some(3)));

    // Metrics.
    let (s, m) = api
        .call(Method::GET, "/api/v1/agents/metrics", Some(&officer), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let b = m
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["agent_id"] == "benford_check")
        .unwrap();
    assert_eq!(
        (b["tasks"].as_i64(), b["failed"].as_i64()),
        (Some(1), Some(1))
    );

    // Orchestration over the bus.
    let mrz = [
        format!("{:<<44}", "P<UTOERIKSSON<<ANNA<MARIA"),
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10".to_owned(),
    ];
    let (s, v) = api
        .post("/api/v1/agents/orchestrate", Some(&officer), json!({"plan": "kyc_review", "input": {
            "mrz": mrz, "today": "2026-01-01", "name": "Anna Eriksson", "watchlist": ["Boris Badenov"],
            "kyc_level": 2, "monthly_volume": 1000}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["steps"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["decision"], "review",
        "the specimen passport expired in 2012: {v}"
    );
    let (s, v) = api
        .post(
            "/api/v1/agents/orchestrate",
            Some(&officer),
            json!({"plan": "nope", "input": {}}),
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::BAD_REQUEST, "invalid-input"));
    let (s, v) = api
        .post(
            "/api/v1/agents/orchestrate",
            Some(&officer),
            json!({"steps": [{"agent": "churn_risk"}], "aggregation": "sometimes", "input": {}}),
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::BAD_REQUEST, "invalid-input"));
}

#[tokio::test]
async fn openapi_documents_the_agent_routes() {
    let api = Api::start().await;
    let (s, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    for p in [
        "/api/v1/agents",
        "/api/v1/agents/execute",
        "/api/v1/agents/{id}/status",
        "/api/v1/agents/{id}/train",
        "/api/v1/agents/metrics",
        "/api/v1/agents/orchestrate",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
}
