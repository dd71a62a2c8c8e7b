#![allow(clippy::unwrap_used)]
//! Spans exported over OTLP/HTTP reach a real HTTP receiver (axum) with the remote
//! parent's trace id and the parent/child links intact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use advancia_telemetry::trace::{OtlpConfig, TraceContext, otlp_layer};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;

/// Every span of every request the receiver got, flattened.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |Json(body): Json<Value>| {
            let sink = sink.clone();
            async move {
                for rs in body["resourceSpans"].as_array().unwrap() {
                    assert_eq!(
                        rs["resource"]["attributes"][0]["value"]["stringValue"],
                        "svc-under-test"
                    );
                    for ss in rs["scopeSpans"].as_array().unwrap() {
                        for s in ss["spans"].as_array().unwrap() {
                            sink.lock().unwrap().push(s.clone());
                        }
                    }
                }
                Json(serde_json::json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, got)
}

#[tokio::test]
async fn remote_parent_and_children_share_one_trace() {
    let (base, got) = receiver().await;
    let mut config = OtlpConfig::new(base, "svc-under-test");
    config.flush_interval = Duration::from_millis(100);
    let (layer, handle) = otlp_layer(config).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let _guard = tracing::subscriber::set_default(subscriber);

    let remote = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let seen_inside = {
        let outer = tracing::info_span!("request", traceparent = remote, route = "/x");
        let _o = outer.enter();
        let inner = tracing::info_span!("saga_step", payment = 42u64);
        let _i = inner.enter();
        // What a bus publisher would put in its envelope headers.
        let mut headers = std::collections::HashMap::new();
        advancia_telemetry::trace::inject_map(&mut headers);
        let here = advancia_telemetry::current().unwrap();
        assert_eq!(headers["traceparent"], here.to_string());
        here
    };
    // A span with no parent starts a trace of its own.
    drop(tracing::info_span!("unrelated").entered());

    handle.flush(Duration::from_secs(5)).await;
    let spans = got.lock().unwrap().clone();
    let by_name = |n: &str| spans.iter().find(|s| s["name"] == n).cloned().unwrap();
    let outer = by_name("request");
    let inner = by_name("saga_step");
    let unrelated = by_name("unrelated");
    assert_eq!(outer["traceId"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(outer["parentSpanId"], "b7ad6b7169203331");
    assert_eq!(inner["traceId"], outer["traceId"]);
    assert_eq!(inner["parentSpanId"], outer["spanId"]);
    assert_ne!(unrelated["traceId"], outer["traceId"]);
    assert!(unrelated.get("parentSpanId").is_none());
    // `current()` inside the child is what gets injected downstream.
    assert_eq!(
        seen_inside.trace_id_hex(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(Value::String(seen_inside.span_id_hex()), inner["spanId"]);
    let attrs = inner["attributes"].as_array().unwrap();
    assert!(
        attrs
            .iter()
            .any(|a| a["key"] == "payment" && a["value"]["intValue"] == "42"),
        "{attrs:?}"
    );
    // The injected header value parses back to the same context.
    assert_eq!(
        TraceContext::parse(&seen_inside.to_string()).unwrap(),
        seen_inside
    );
    assert_eq!(handle.dropped(), 0);
}
