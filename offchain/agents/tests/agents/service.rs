//! The service on real Postgres: tasks routed over the bus to competing workers, DB-backed
//! agents, lifecycle, training, orchestration with shared context, metrics, NATS.

use std::sync::Arc;
use std::time::Duration;

use advancia_agents::{
    AgentError, Labelled, OrchestrateRequest, Registration, TaskStatus, TrainRequest,
};
use advancia_bus::nats::{NatsBus, NatsConfig};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Harness, LlmStub, completion};

async fn insert_payment(h: &Harness, facility: &str, amount: u64, days_ago: i32) {
    sqlx::query(
        "INSERT INTO payments.payments (id, created_by, kind, facility_id, facility, mint, amount,
             invoice_id, reference, label, status, expires_at, created_at)
         VALUES ($1, $2, 'payment', 'ab', $3, 'So11111111111111111111111111111111111111112', $4::numeric,
             $5, $6, 'visit', 'finalized', now() + interval '1 day',
             date_trunc('day', now()) - make_interval(days => $7) + interval '12 hours')",
    )
    .bind(Uuid::new_v4())
    .bind(Uuid::new_v4())
    .bind(facility)
    .bind(amount.to_string())
    .bind(Uuid::new_v4().simple().to_string())
    .bind(Uuid::new_v4().simple().to_string())
    .bind(days_ago)
    .execute(&h.db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn amount_anomaly_reads_the_facility_history() {
    let h = Harness::start(None).await;
    for (k, a) in [100, 105, 98, 110, 102, 95, 101, 99, 104, 97]
        .iter()
        .enumerate()
    {
        insert_payment(&h, "FacA", *a * 1_000_000, i32::try_from(k).unwrap()).await;
    }
    insert_payment(&h, "FacB", 1, 0).await;
    let big = h
        .output(
            "amount_anomaly",
            json!({"amount": 900_000_000, "facility": "FacA"}),
        )
        .await;
    assert_eq!(big.value["anomalous"], true, "{}", big.value);
    assert_eq!(big.value["source"], "payments");
    assert_eq!(big.value["history"], 10);
    assert_eq!(big.pass, Some(false));
    let normal = h
        .output(
            "amount_anomaly",
            json!({"amount": 103_000_000, "facility": "FacA"}),
        )
        .await;
    assert_eq!(normal.value["anomalous"], false);
    // Too little history: no verdict.
    let thin = h
        .output("amount_anomaly", json!({"amount": 5, "facility": "FacB"}))
        .await;
    assert_eq!(thin.value["reason"], "not enough history");
    let given = h
        .output(
            "amount_anomaly",
            json!({"amount": 50, "history": [10, 11, 10, 12, 9, 10, 11, 10]}),
        )
        .await;
    assert_eq!(given.value["anomalous"], true);
    let bad = h.run("amount_anomaly", json!({"amount": 5})).await;
    assert_eq!(bad.status, TaskStatus::Failed);
    assert!(bad.error.unwrap().contains("history"));
}

#[tokio::test]
async fn revenue_forecast_from_a_series_and_from_payments() {
    let h = Harness::start(None).await;
    // A clean linear trend: Holt continues it.
    let series: Vec<u64> = (0..20).map(|d| 1_000 + 50 * d).collect();
    let out = h
        .output("revenue_forecast", json!({"series": series, "horizon": 3}))
        .await;
    let f: Vec<u64> = serde_json::from_value(out.value["forecast"].clone()).unwrap();
    for (k, v) in f.iter().enumerate() {
        let want = 1_000 + 50 * (20 + k as u64);
        assert!(v.abs_diff(want) <= 2, "{f:?}");
    }
    // Daily totals from the payments table, days without payments counted as zero.
    for d in [6, 5, 4, 2, 1, 0] {
        insert_payment(&h, "FacF", 1_000 * (7 - u64::try_from(d).unwrap()), d).await;
    }
    let out = h
        .output(
            "revenue_forecast",
            json!({"facility": "FacF", "horizon": 2}),
        )
        .await;
    assert_eq!(out.value["history_days"], 7);
    assert_eq!(out.value["forecast"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn lifecycle_register_disable_enable_version() {
    let h = Harness::start(None).await;
    let all = h.svc.list().await.unwrap();
    assert!(all.len() >= 25);
    assert!(all.iter().all(|a| a.version == 1 && a.enabled));
    let reg = h
        .svc
        .register(
            Registration {
                id: "fraud_score_strict".into(),
                kind: "fraud_score".into(),
                description: None,
                params: Some(json!({"threshold": 0.2})),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(reg.params["threshold"], 0.2);
    assert_eq!(
        reg.params["weights"].as_array().unwrap().len(),
        5,
        "defaults kept"
    );
    let again = Registration {
        id: "fraud_score_strict".into(),
        kind: "fraud_score".into(),
        description: None,
        params: None,
    };
    assert!(matches!(
        h.svc.register(again, None).await,
        Err(AgentError::Conflict(_))
    ));
    let unknown = Registration {
        id: "x_agent".into(),
        kind: "nope".into(),
        description: None,
        params: None,
    };
    assert!(matches!(
        h.svc.register(unknown, None).await,
        Err(AgentError::Refused(_))
    ));

    let input =
        json!({"amount": 105, "history": [100, 110, 90, 100], "new_payee": true, "hour": 3});
    let strict = h.output("fraud_score_strict", input.clone()).await;
    let default = h.output("fraud_score", input.clone()).await;
    assert_eq!(strict.score, default.score, "same model");
    assert_eq!(
        (strict.pass, default.pass),
        (Some(false), Some(true)),
        "its own threshold"
    );

    h.svc
        .set_enabled("fraud_score_strict", false)
        .await
        .unwrap();
    let e = h
        .svc
        .execute(
            "fraud_score_strict",
            input.clone(),
            None,
            None,
            &Default::default(),
        )
        .await;
    assert!(matches!(e, Err(AgentError::Disabled(_))));
    h.svc.set_enabled("fraud_score_strict", true).await.unwrap();
    let v2 = h
        .svc
        .update_params("fraud_score_strict", json!({"threshold": 0.9}), None)
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let t = h.run("fraud_score_strict", input).await;
    assert_eq!((t.agent_version, t.result.unwrap().pass), (2, Some(true)));
    let versions = h.svc.versions("fraud_score_strict").await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v["reason"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["updated", "registered"]
    );
}

/// Deterministic pseudo-random numbers in [0, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Outcomes of a "true" fraud process the default weights get wrong: new payees and
/// night-time matter much more, velocity less.
fn labelled(n: usize, seed: u64) -> Vec<Labelled> {
    let mut r = Lcg(seed);
    (0..n)
        .map(|_| {
            let amount = 50 + (r.next() * 400.0) as u64;
            let vel = (r.next() * 8.0) as u32;
            let new_payee = r.next() < 0.4;
            let hour = (r.next() * 24.0) as u8;
            let z = (amount as f64 - 150.0) / 50.0;
            let logit = -2.5
                + 3.0 * f64::from(u8::from(new_payee))
                + 2.5 * f64::from(u8::from(hour < 6))
                + 0.3 * z
                - 0.2 * f64::from(vel).ln_1p();
            let label = r.next() < 1.0 / (1.0 + (-logit).exp());
            Labelled {
                input: json!({"amount": amount, "history": [100, 150, 200, 150, 100, 200],
                    "payments_last_hour": vel, "new_payee": new_payee, "hour": hour}),
                label,
            }
        })
        .collect()
}

#[tokio::test]
async fn training_fraud_weights_improves_held_out_loss_and_versions() {
    let h = Harness::start(None).await;
    let req = TrainRequest {
        examples: labelled(600, 7),
        holdout: Some(labelled(300, 99)),
        ..Default::default()
    };
    let out = h.svc.train("fraud_score", &req, None).await.unwrap();
    assert_eq!(out.version, 2);
    assert!(out.after.log_loss < out.before.log_loss - 0.05, "{out:?}");
    assert!(out.after.accuracy > out.before.accuracy, "{out:?}");
    let w: Vec<f64> = serde_json::from_value(out.params["weights"].clone()).unwrap();
    assert!(
        w[3] > 1.0 && w[4] > 1.0,
        "learned that new payees and night matter: {w:?}"
    );
    // New tasks use the trained version.
    let t = h
        .run(
            "fraud_score",
            json!({"amount": 120, "new_payee": true, "hour": 2}),
        )
        .await;
    assert_eq!(t.agent_version, 2);
    assert_eq!(t.result.unwrap().value["model_version"], 2);
    let versions = h.svc.versions("fraud_score").await.unwrap();
    assert_eq!(versions[0]["reason"], "trained");
    assert_eq!(versions[0]["metrics"]["held_out"], 300);
    // Kinds without a model cannot be trained; too little data is refused.
    assert!(matches!(
        h.svc.train("velocity_check", &req, None).await,
        Err(AgentError::NotTrainable(_))
    ));
    let tiny = TrainRequest {
        examples: labelled(5, 1),
        ..Default::default()
    };
    assert!(matches!(
        h.svc.train("no_show_risk", &tiny, None).await,
        Err(AgentError::Invalid(_))
    ));
}

fn review_input(risky: bool) -> Value {
    json!({
        "amount": if risky { 5_000_000 } else { 120 },
        "history": [100, 120, 110, 130, 90, 100, 115, 105],
        "payments_last_hour": if risky { 7 } else { 0 },
        "new_payee": risky, "hour": if risky { 3 } else { 14 },
        "events": (0..if risky { 7 } else { 1 }).map(|k| json!({"payer": "P", "at": 1000 + k * 60, "amount": 10})).collect::<Vec<_>>(),
        "payment": {"id": "pay-1", "payer": "P", "payee": "F", "amount": 120, "at": 5000},
        "recent": if risky { json!([{"id": "pay-0", "payer": "P", "payee": "F", "amount": 120, "at": 4900}]) } else { json!([]) },
        "name": if risky { "Mohammed Al Rashid" } else { "Jane Doe" },
        "watchlist": ["Muhammad al-Rashid"],
    })
}

#[tokio::test]
async fn payment_review_orchestration_over_the_bus() {
    let stub = LlmStub::start(|_, _| {
        (
            200,
            0,
            completion("Recommendation: block. Several independent signals.", 120),
        )
    })
    .await;
    let h = Harness::start(Some(stub.client(Duration::from_secs(5), 1))).await;
    let risky = h
        .svc
        .orchestrate(
            OrchestrateRequest {
                plan: Some("payment_review".into()),
                input: review_input(true),
                ..Default::default()
            },
            None,
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(risky.steps.len(), 5);
    assert!(
        risky
            .steps
            .iter()
            .all(|s| s.status == TaskStatus::Succeeded),
        "{risky:?}"
    );
    assert!(!risky.pass);
    assert_eq!(risky.decision, "block", "score {:?}", risky.score);
    let summary = risky.summary.clone().unwrap();
    assert_eq!(summary.status, TaskStatus::Succeeded);
    assert!(
        summary.output.unwrap().value["text"]
            .as_str()
            .unwrap()
            .contains("block")
    );
    // The summariser saw the other agents' results through the shared context.
    let prompt = stub.last_request.lock().unwrap()["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        prompt.contains("fraud_score") && prompt.contains("aggregate"),
        "{prompt}"
    );
    let ctx = h.svc.context(risky.id).await.unwrap();
    for k in [
        "input",
        "aggregate",
        "fraud_score",
        "amount_anomaly",
        "velocity_check",
        "duplicate_payment",
        "sanctions_explain",
        "review_summary",
    ] {
        assert!(ctx.contains_key(k), "context lacks {k}: {:?}", ctx.keys());
    }
    let benign = h
        .svc
        .orchestrate(
            OrchestrateRequest {
                plan: Some("payment_review".into()),
                input: review_input(false),
                ..Default::default()
            },
            None,
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(benign.pass, "{benign:?}");
    assert_eq!(benign.decision, "approve");
    assert!(benign.score.unwrap() < risky.score.unwrap());
    // Custom steps, all-of.
    let custom = h
        .svc
        .orchestrate(
            OrchestrateRequest {
                steps: Some(vec![advancia_agents::PlanStep { agent: "churn_risk".into(), weight: 1.0 }, advancia_agents::PlanStep { agent: "risk_tier".into(), weight: 1.0 }]),
                aggregation: Some(advancia_agents::Aggregation::AllOf),
                input: json!({"days_since_last": 3, "payments_90d": 9, "kyc_level": 2, "monthly_volume": 10}),
                ..Default::default()
            },
            None,
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!((custom.plan.as_str(), custom.pass), ("custom", true));
}

#[tokio::test]
async fn competing_workers_run_each_task_once_and_metrics_add_up() {
    let h = Harness::start(None).await;
    let mut ids = Vec::new();
    for k in 0..20 {
        let t = h
            .svc
            .execute(
                "velocity_check",
                json!({"events": [{"payer": "A", "at": k, "amount": 1}]}),
                None,
                None,
                &Default::default(),
            )
            .await
            .unwrap();
        ids.push(t.id);
    }
    let bad = h.run("velocity_check", json!({"events": "nope"})).await;
    assert_eq!(bad.status, TaskStatus::Failed);
    assert_eq!(bad.attempts, 1, "invalid input is not retried");
    for id in ids {
        let t = h.svc.wait(id, Duration::from_secs(10)).await.unwrap();
        assert_eq!((t.status, t.attempts), (TaskStatus::Succeeded, 1));
        assert!(t.latency_us.unwrap() >= 0);
    }
    let m = h.svc.metrics().await.unwrap();
    let v = m.iter().find(|m| m.agent_id == "velocity_check").unwrap();
    assert_eq!((v.tasks, v.succeeded, v.failed), (21, 20, 1));
    assert!((v.success_rate - 20.0 / 21.0).abs() < 1e-9);
    assert!(v.latency_p95_ms.unwrap() >= v.latency_p50_ms.unwrap());
    let idle = m.iter().find(|m| m.agent_id == "benford_check").unwrap();
    assert_eq!((idle.tasks, idle.success_rate), (0, 0.0));
}

#[tokio::test]
async fn tasks_route_over_nats_jetstream() {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = format!("t{:08x}", Uuid::new_v4().as_u128() as u32);
    let nats = NatsBus::connect(&NatsConfig::new(
        url,
        format!("AGENTS_TEST_{prefix}"),
        vec![format!("{prefix}.>")],
    ))
    .await
    .unwrap();
    let h = Harness::with_bus(Arc::new(nats.clone()), None, &prefix).await;
    let r = h
        .svc
        .orchestrate(
            OrchestrateRequest {
                plan: Some("kyc_review".into()),
                input: json!({"mrz": [format!("{:<<44}", "P<UTOERIKSSON<<ANNA<MARIA"), "L898902C36UTO7408122F1204159ZE184226B<<<<<10"],
                              "today": "2011-01-01", "name": "Anna Eriksson", "watchlist": ["Boris Badenov"],
                              "kyc_level": 2, "monthly_volume": 1000}),
                ..Default::default()
            },
            None,
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(
        r.steps.iter().all(|s| s.status == TaskStatus::Succeeded),
        "{r:?}"
    );
    assert_eq!((r.decision.as_str(), r.pass), ("approve", true));
    drop(h);
    nats.delete_stream().await.unwrap();
}

#[tokio::test]
async fn tasks_lost_before_publishing_are_requeued() {
    let h = Harness::start(None).await;
    h.svc.list().await.unwrap(); // registers the built-in kinds
    // As if the process died between the insert and the publish.
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO agents.tasks (id, agent_id, agent_version, input, status, created_at)
         VALUES ($1, 'churn_risk', 1, $2, 'queued', now() - interval '1 minute')",
    )
    .bind(id)
    .bind(json!({"days_since_last": 200, "payments_90d": 0}))
    .execute(&h.db.pool)
    .await
    .unwrap();
    let fresh = h
        .svc
        .execute(
            "churn_risk",
            json!({"days_since_last": 1, "payments_90d": 5}),
            None,
            None,
            &Default::default(),
        )
        .await
        .unwrap();
    let n = advancia_agents::worker::requeue_stale(&h.svc, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(n, 1, "only the old unclaimed task");
    let t = h.svc.wait(id, Duration::from_secs(10)).await.unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Succeeded, 1));
    assert_eq!(t.result.unwrap().value["tier"], "high");
    let f = h.svc.wait(fresh.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(f.attempts, 1);
    assert_eq!(
        advancia_agents::worker::requeue_stale(&h.svc, Duration::from_secs(30))
            .await
            .unwrap(),
        0
    );
}
