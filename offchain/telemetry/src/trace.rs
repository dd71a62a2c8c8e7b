//! Distributed traces: W3C trace context and an OTLP/HTTP span exporter for `tracing`.
//!
//! Every `tracing` span the exporter layer sees gets a span id and joins its parent's trace
//! (the enclosing span, else a new trace). A span declared with a `traceparent` field
//! (`info_span!("http", traceparent = %header)` or `traceparent = Empty` recorded later,
//! before any child exists) instead continues the remote caller's trace: that is how a
//! trace crosses the API boundary, the event bus and saga rows. [`current`] returns the
//! active span's context to inject into outgoing headers or rows.
//!
//! Export is OTLP over HTTP with the JSON encoding (`POST {endpoint}/v1/traces`,
//! `application/json`), batched by a background task. Hand-written rather than
//! `opentelemetry-otlp`: the tree already carries opentelemetry 0.17 (through tarpc), and a
//! current exporter would add a second major of it plus prost; the JSON mapping of the
//! handful of span fields we send is short (ADR 0021).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Name of the span field carrying a remote parent's `traceparent`.
pub const TRACEPARENT_FIELD: &str = "traceparent";
/// HTTP header (and bus header / row column) name of the W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A span's position in a trace (W3C trace context, version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

/// Why a `traceparent` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceparentError {
    #[error("traceparent must be 00-<32 hex>-<16 hex>-<2 hex>")]
    Format,
    #[error("traceparent trace id or parent id is all zeros")]
    ZeroId,
}

impl TraceContext {
    /// A new root context with random ids.
    pub fn new_root() -> TraceContext {
        TraceContext {
            trace_id: nonzero(),
            span_id: nonzero(),
            sampled: true,
        }
    }

    /// Parses `00-<trace-id>-<parent-id>-<flags>`. Unknown future versions are accepted
    /// when their first four fields have this shape, as the W3C spec asks.
    pub fn parse(value: &str) -> Result<TraceContext, TraceparentError> {
        let v = value.trim();
        let mut parts = v.split('-');
        let (Some(ver), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TraceparentError::Format);
        };
        if ver.len() != 2 || ver == "ff" || (ver == "00" && parts.next().is_some()) {
            return Err(TraceparentError::Format);
        }
        let lower_hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(ver) || !lower_hex(trace) || !lower_hex(span) || !lower_hex(flags) {
            return Err(TraceparentError::Format);
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut f = [0u8; 1];
        hex::decode_to_slice(trace, &mut trace_id).map_err(|_| TraceparentError::Format)?;
        hex::decode_to_slice(span, &mut span_id).map_err(|_| TraceparentError::Format)?;
        hex::decode_to_slice(flags, &mut f).map_err(|_| TraceparentError::Format)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(TraceparentError::ZeroId);
        }
        Ok(TraceContext {
            trace_id,
            span_id,
            sampled: f[0] & 1 == 1,
        })
    }

    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex::encode(self.span_id)
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            if self.sampled { "01" } else { "00" }
        )
    }
}

fn nonzero<const N: usize>() -> [u8; N] {
    loop {
        let v: [u8; N] = std::array::from_fn(|_| rand::random::<u8>());
        if v != [0; N] {
            return v;
        }
    }
}

/// The context of the current `tracing` span, when the exporter layer is installed and a
/// span is active. Inject `current().map(|c| c.to_string())` as `traceparent`.
pub fn current() -> Option<TraceContext> {
    tracing::Span::current().with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        // The nearest span the exporter saw (others may be filtered out for it).
        span.scope()
            .find_map(|s| s.extensions().get::<SpanData>().map(|d| d.ctx))
    })?
}

/// `traceparent` of the current span, for HTTP headers, bus headers and saga rows.
pub fn current_traceparent() -> Option<String> {
    current().map(|c| c.to_string())
}

/// Sets `traceparent` on `headers` from the current span (no-op without one).
pub fn inject_headers(headers: &mut reqwest::header::HeaderMap) {
    if let Some(tp) = current_traceparent()
        && let Ok(v) = reqwest::header::HeaderValue::from_str(&tp)
    {
        headers.insert(TRACEPARENT_HEADER, v);
    }
}

/// The valid `traceparent` of `headers`, if any (an invalid one is ignored, per W3C).
pub fn extract_headers(headers: &reqwest::header::HeaderMap) -> Option<TraceContext> {
    headers
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| TraceContext::parse(v).ok())
}

/// Sets `traceparent` in a string header map (event-bus envelopes, job payloads) from the
/// current span; no-op without one.
pub fn inject_map<M: Extend<(String, String)>>(map: &mut M) {
    if let Some(tp) = current_traceparent() {
        map.extend([(TRACEPARENT_HEADER.to_owned(), tp)]);
    }
}

/// The valid `traceparent` of a string header map (keys compared case-insensitively).
pub fn extract_map<'a>(
    map: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Option<TraceContext> {
    map.into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(TRACEPARENT_HEADER))
        .and_then(|(_, v)| TraceContext::parse(v).ok())
}

/// Per-span state kept in the registry's extensions.
#[derive(Debug, Clone)]
struct SpanData {
    ctx: TraceContext,
    parent: Option<[u8; 8]>,
    start: SystemTime,
    attributes: Vec<(String, Value)>,
    /// A remote `traceparent` may still re-parent this span (no child created yet).
    reparentable: bool,
}

/// A finished span on its way to the collector.
#[derive(Debug, Clone)]
struct Finished {
    data: SpanData,
    name: &'static str,
    target: &'static str,
    level: tracing::Level,
    end: SystemTime,
}

#[derive(Default)]
struct FieldVisitor {
    attributes: Vec<(String, Value)>,
    remote: Option<TraceContext>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, v: Value) {
        if field.name() == TRACEPARENT_FIELD {
            if let Some(s) = v.as_str() {
                self.remote = TraceContext::parse(s).ok();
            }
            return;
        }
        self.attributes.push((field.name().to_owned(), v));
    }
}

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, json!(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, json!(value));
    }
}

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// Base URL of the collector's OTLP/HTTP receiver, e.g. `http://otel-collector:4318`.
    pub endpoint: String,
    pub service_name: String,
    /// Longest wait before a batch is sent.
    pub flush_interval: Duration,
    pub max_batch: usize,
}

impl OtlpConfig {
    pub fn new(endpoint: impl Into<String>, service_name: impl Into<String>) -> OtlpConfig {
        OtlpConfig {
            endpoint: endpoint.into(),
            service_name: service_name.into(),
            flush_interval: Duration::from_secs(2),
            max_batch: 512,
        }
    }
}

/// The `tracing` layer that assigns trace context to spans and queues finished ones for
/// export.
pub struct OtlpLayer {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

enum Msg {
    Span(Box<Finished>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Flushes the exporter on [`ExportHandle::shutdown`]; keep it for the process lifetime.
#[derive(Clone)]
pub struct ExportHandle {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl ExportHandle {
    /// Sends every queued span (bounded by `timeout`).
    pub async fn flush(&self, timeout: Duration) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(timeout, wait).await;
        }
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The layer and its export task (spawned on the current tokio runtime).
pub fn otlp_layer(config: OtlpConfig) -> Result<(OtlpLayer, ExportHandle), reqwest::Error> {
    let (tx, rx) = mpsc::channel(8192);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let dropped = Arc::new(AtomicU64::new(0));
    tokio::spawn(export_loop(config, client, rx));
    Ok((
        OtlpLayer {
            tx: tx.clone(),
            dropped: dropped.clone(),
        },
        ExportHandle { tx, dropped },
    ))
}

async fn export_loop(config: OtlpConfig, client: reqwest::Client, mut rx: mpsc::Receiver<Msg>) {
    let url = format!("{}/v1/traces", config.endpoint.trim_end_matches('/'));
    let mut batch: Vec<Finished> = Vec::new();
    let mut tick = tokio::time::interval(config.flush_interval);
    loop {
        let mut flushed = None;
        let mut ticked = false;
        let closed = tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Span(s)) => { batch.push(*s); false }
                Some(Msg::Flush(done)) => { flushed = Some(done); false }
                None => true,
            },
            _ = tick.tick() => { ticked = true; false }
        };
        let due = closed || ticked || flushed.is_some() || batch.len() >= config.max_batch;
        if due && !batch.is_empty() {
            let body = encode(&config.service_name, &batch);
            batch.clear();
            // Export failures must never affect the request path: log (without the body) and drop.
            match client.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::debug!(status = %r.status(), "OTLP export rejected"),
                Err(e) => tracing::debug!(error = %e, "OTLP export failed"),
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

fn any_value(v: &Value) -> Value {
    match v {
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n }),
        Value::String(s) => json!({ "stringValue": s }),
        other => json!({ "stringValue": other.to_string() }),
    }
}

/// The OTLP/JSON `ExportTraceServiceRequest` for `spans`.
fn encode(service_name: &str, spans: &[Finished]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut attrs: Vec<Value> = s
                .data
                .attributes
                .iter()
                .map(|(k, v)| json!({ "key": k, "value": any_value(v) }))
                .collect();
            attrs.push(json!({ "key": "code.namespace", "value": { "stringValue": s.target } }));
            attrs.push(json!({ "key": "level", "value": { "stringValue": s.level.as_str() } }));
            let mut span = json!({
                "traceId": s.data.ctx.trace_id_hex(),
                "spanId": s.data.ctx.span_id_hex(),
                "name": s.name,
                // SPAN_KIND_INTERNAL; the HTTP span marks itself with `otel.kind`-style attributes.
                "kind": 1,
                "startTimeUnixNano": nanos(s.data.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": attrs,
            });
            if let Some(p) = s.data.parent {
                span["parentSpanId"] = Value::String(hex::encode(p));
            }
            span
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": service_name } }
            ]},
            "scopeSpans": [{
                "scope": { "name": "advancia-telemetry", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans
            }]
        }]
    })
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = FieldVisitor::default();
        attrs.record(&mut fields);
        let parent = span.parent().and_then(|p| {
            let mut ext = p.extensions_mut();
            ext.get_mut::<SpanData>().map(|d| {
                d.reparentable = false;
                d.ctx
            })
        });
        let (trace_id, parent_id, sampled) = match (fields.remote, parent) {
            (Some(r), _) => (r.trace_id, Some(r.span_id), r.sampled),
            (None, Some(p)) => (p.trace_id, Some(p.span_id), p.sampled),
            (None, None) => (nonzero(), None, true),
        };
        span.extensions_mut().insert(SpanData {
            ctx: TraceContext {
                trace_id,
                span_id: nonzero(),
                sampled,
            },
            parent: parent_id,
            start: SystemTime::now(),
            attributes: fields.attributes,
            reparentable: true,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = FieldVisitor::default();
        values.record(&mut fields);
        let mut ext = span.extensions_mut();
        let Some(d) = ext.get_mut::<SpanData>() else {
            return;
        };
        if let Some(r) = fields.remote
            && d.reparentable
        {
            d.ctx.trace_id = r.trace_id;
            d.ctx.sampled = r.sampled;
            d.parent = Some(r.span_id);
        }
        d.attributes.extend(fields.attributes);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        if !data.ctx.sampled {
            return;
        }
        let meta: &'static Metadata<'static> = span.metadata();
        let finished = Finished {
            data,
            name: meta.name(),
            target: meta.target(),
            level: *meta.level(),
            end: SystemTime::now(),
        };
        if self.tx.try_send(Msg::Span(Box::new(finished))).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_bad_values() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = TraceContext::parse(v).unwrap();
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id_hex(), "00f067aa0ba902b7");
        assert!(c.sampled);
        assert_eq!(c.to_string(), v);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert_eq!(
                TraceContext::parse(bad),
                Err(TraceparentError::Format),
                "{bad}"
            );
        }
        assert_eq!(
            TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Err(TraceparentError::ZeroId)
        );
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("TraceParent".to_owned(), v.to_owned());
        assert_eq!(extract_map(&headers), Some(c));
        // Outside any span there is nothing to inject.
        let mut empty = std::collections::BTreeMap::<String, String>::new();
        inject_map(&mut empty);
        assert!(empty.is_empty());
        // A later version with extra fields is read by its first four.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_ok()
        );
    }
}
