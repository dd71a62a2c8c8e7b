#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Traces across the API, the notifications outbox and the payment saga, exported over
//! OTLP/HTTP to a real receiver (axum) in this test. The process-wide subscriber is set
//! once here (this file is its own test binary).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use advancia_auth::Role;
use advancia_notifications::channels::{Channels, InAppChannel};
use advancia_notifications::outbox::{OutboxWorker, WorkerConfig};
use advancia_telemetry::trace::{ExportHandle, OtlpConfig, otlp_layer};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

mod common;

type Spans = Arc<Mutex<Vec<Value>>>;

/// The receiver's spans and the exporter handle, shared by the tests of this binary.
async fn collector() -> (Spans, ExportHandle) {
    static ONCE: OnceLock<(Spans, ExportHandle)> = OnceLock::new();
    if let Some(c) = ONCE.get() {
        return c.clone();
    }
    let got: Spans = Arc::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |Json(body): Json<Value>| {
            let sink = sink.clone();
            async move {
                for rs in body["resourceSpans"].as_array().into_iter().flatten() {
                    for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                        for s in ss["spans"].as_array().into_iter().flatten() {
                            sink.lock().unwrap().push(s.clone());
                        }
                    }
                }
                Json(json!({}))
            }
        }),
    );
    // The receiver and the exporter run on their own runtime thread so they outlive each
    // test's runtime.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut config = OtlpConfig::new(format!("http://{addr}"), "advancia-test");
            config.flush_interval = Duration::from_millis(100);
            tx.send(otlp_layer(config).unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let (layer, handle) = rx.recv().unwrap();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(layer.with_filter(tracing_subscriber::EnvFilter::new("info"))),
    )
    .unwrap();
    let _ = ONCE.set((got, handle));
    ONCE.get().unwrap().clone()
}

use tracing_subscriber::Layer as _;

fn in_trace(spans: &[Value], trace: &str) -> Vec<Value> {
    spans
        .iter()
        .filter(|s| s["traceId"] == trace)
        .cloned()
        .collect()
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn worker(pool: &advancia_db::sqlx::PgPool) -> OutboxWorker {
    OutboxWorker::new(
        pool.clone(),
        Channels::new().with(InAppChannel::new(pool.clone())),
        WorkerConfig::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_traceparent_reaches_the_outbox_delivery() {
    let (spans, handle) = collector().await;
    let api = common::TestApi::start().await;
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;
    let (patient_id, _) = api.token_for("patient@example.org", Role::Patient).await;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let r = api
        .http
        .post(format!("{}/api/v1/notifications/send", api.base))
        .bearer_auth(&admin)
        .header("traceparent", format!("00-{trace}-{caller_span}-01"))
        .json(&json!({
            "user_id": patient_id, "event_type": "payment.confirmed", "channels": ["in_app"],
            "data": {"label": "Checkup", "amount": "1.5", "asset": "SOL",
                     "facility_id": "ab".repeat(32), "signature": "5ig"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // The outbox worker runs outside any request: the row carries the trace.
    let round = worker(&api.db.pool).run_once().await.unwrap();
    assert_eq!(round.delivered, 1, "{round:?}");

    handle.flush(Duration::from_secs(5)).await;
    let all = spans.lock().unwrap().clone();
    let ours = in_trace(&all, trace);
    let http = named(&ours, "http");
    assert_eq!(http.len(), 1, "{ours:#?}");
    assert_eq!(http[0]["parentSpanId"], caller_span);
    let delivery = named(&ours, "notification_delivery");
    assert_eq!(delivery.len(), 1, "{ours:#?}");
    // The delivery's parent is a span of this request (the one active when the
    // notification row was written).
    let parent = delivery[0]["parentSpanId"].as_str().unwrap();
    assert!(
        ours.iter().any(|s| s["spanId"] == parent),
        "delivery parent {parent} not in the request's trace: {ours:#?}"
    );
    let attrs = delivery[0]["attributes"].as_array().unwrap();
    assert!(
        attrs
            .iter()
            .any(|a| a["key"] == "channel" && a["value"]["stringValue"] == "in_app")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_status_row_traceparent_continues_through_the_saga() {
    let (spans, handle) = collector().await;
    let api = common::TestApi::start().await;
    let (patient_id, _) = api.token_for("payer@example.org", Role::Patient).await;
    let pool = &api.db.pool;
    // A payment and its move pending → confirmed, recorded by a request in trace T.
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let writer_span = "b7ad6b7169203331";
    let payment = uuid::Uuid::new_v4();
    // The payment service's event, as its outbox records it inside trace T.
    advancia_db::sqlx::query(
        "INSERT INTO payments.events (id, kind, payload, traceparent)
         VALUES ($1, 'payment.status_changed', $2, $3)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(json!({
        "payment_id": payment, "payment_kind": "payment", "status": "confirmed",
        "from": "pending", "created_by": patient_id, "chain": "solana",
        "facility_id": "ab".repeat(32), "facility": "F",
        "mint": "11111111111111111111111111111111", "amount": "1500000000",
        "label": "Checkup", "signature": "5ig", "refunded": "0", "released": "0",
    }))
    .bind(format!("00-{trace}-{writer_span}-01"))
    .execute(pool)
    .await
    .unwrap();

    let svc = api.state.notifications.clone();
    let follower = advancia_notifications::events::follower(
        &svc,
        advancia_outbox::OutboxLog::new(pool.clone(), advancia_payments::OUTBOX),
    );
    let mut notify = advancia_notifications::events::Notify::new(
        svc,
        std::sync::Arc::new(advancia_api::ports::FacilityStaff(
            api.state.facilities.clone(),
        )),
    );
    let created = advancia_notifications::events::catch_up(&follower, &mut notify)
        .await
        .unwrap();
    assert_eq!(created, 1);
    worker(pool).run_once().await.unwrap();

    handle.flush(Duration::from_secs(5)).await;
    let all = spans.lock().unwrap().clone();
    let ours = in_trace(&all, trace);
    let step = named(&ours, "notify_event");
    assert_eq!(step.len(), 1, "{ours:#?}");
    assert_eq!(step[0]["parentSpanId"], writer_span);
    let delivery = named(&ours, "notification_delivery");
    assert_eq!(delivery.len(), 1, "{ours:#?}");
    assert_eq!(delivery[0]["parentSpanId"], step[0]["spanId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_task_over_the_bus_continues_the_request_trace() {
    let (spans, handle) = collector().await;
    let api = common::TestApi::start().await;
    let workers = advancia_agents::worker::spawn_workers(
        &api.state.agents,
        advancia_agents::worker::WorkerConfig::default(),
    )
    .await
    .unwrap();
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;

    let trace = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let events: Vec<Value> = (0..3)
        .map(|k| json!({"payer": "A", "at": k * 60, "amount": 5}))
        .collect();
    let r = api
        .http
        .post(format!("{}/api/v1/agents/execute", api.base))
        .bearer_auth(&admin)
        .header("traceparent", format!("00-{trace}-{caller_span}-01"))
        .json(&json!({"agent": "velocity_check", "input": {"events": events}, "wait_ms": 10_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    handle.flush(Duration::from_secs(5)).await;
    let all = spans.lock().unwrap().clone();
    let ours = in_trace(&all, trace);
    // caller → the API's http span → (bus envelope) → the worker's agent_task span.
    let http = named(&ours, "http");
    assert_eq!(http.len(), 1, "{ours:#?}");
    assert_eq!(http[0]["parentSpanId"], caller_span);
    let task = named(&ours, "agent_task");
    assert_eq!(task.len(), 1, "{ours:#?}");
    assert_eq!(task[0]["parentSpanId"], http[0]["spanId"]);
    for w in workers {
        w.abort();
    }
}
