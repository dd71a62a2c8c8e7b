//! Prometheus metrics: labelled counters, gauges and histograms rendered by hand in the
//! text exposition format 0.0.4 (ADR 0010's choice, now shared by every binary), and a
//! minimal `GET /metrics` responder on tokio.
//!
//! Label values are escaped; callers keep label sets bounded (route templates, not paths).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Latency buckets (seconds) for request durations.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Escapes a label value (`\`, `"` and newlines, per the exposition format).
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `# HELP` and `# TYPE` lines of a family.
pub fn write_header(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line, `name{k="v",…} value`.
pub fn write_sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl ToFmt) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    out.push(' ');
    value.fmt_into(out);
    out.push('\n');
}

/// Sample values: integers as they are, floats in Prometheus' spelling (`NaN`, `+Inf`).
pub trait ToFmt {
    fn fmt_into(&self, out: &mut String);
}
impl ToFmt for u64 {
    fn fmt_into(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}
impl ToFmt for i64 {
    fn fmt_into(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}
impl ToFmt for f64 {
    fn fmt_into(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}
impl ToFmt for &str {
    // Values already formatted (e.g. numeric text read from Postgres).
    fn fmt_into(&self, out: &mut String) {
        out.push_str(self);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a metrics lock leaves consistent numbers; keep serving them.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A family that renders itself.
trait Family: Send + Sync {
    fn render(&self, out: &mut String);
}

struct Meta {
    name: String,
    help: String,
    labels: Vec<&'static str>,
}

impl Meta {
    fn pairs<'a>(&'a self, values: &'a [String]) -> Vec<(&'a str, &'a str)> {
        self.labels
            .iter()
            .copied()
            .zip(values.iter().map(String::as_str))
            .collect()
    }
}

fn key(labels: &[&str], values: &[&str]) -> Vec<String> {
    // A wrong label count is a programming error; pad/truncate rather than panic in a server.
    (0..labels.len())
        .map(|i| values.get(i).copied().unwrap_or("").to_owned())
        .collect()
}

/// A monotonically increasing count per label set.
pub struct Counter {
    meta: Meta,
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl Counter {
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }
    pub fn add(&self, labels: &[&str], n: u64) {
        *lock(&self.values)
            .entry(key(&self.meta.labels, labels))
            .or_default() += n;
    }
    /// Current value (tests, self-checks).
    pub fn get(&self, labels: &[&str]) -> u64 {
        lock(&self.values)
            .get(&key(&self.meta.labels, labels))
            .copied()
            .unwrap_or(0)
    }
}

impl Family for Counter {
    fn render(&self, out: &mut String) {
        write_header(out, &self.meta.name, "counter", &self.meta.help);
        for (k, v) in lock(&self.values).iter() {
            write_sample(out, &self.meta.name, &self.meta.pairs(k), *v);
        }
    }
}

/// A value that goes up and down per label set.
pub struct Gauge {
    meta: Meta,
    values: Mutex<BTreeMap<Vec<String>, i64>>,
}

impl Gauge {
    pub fn set(&self, labels: &[&str], v: i64) {
        lock(&self.values).insert(key(&self.meta.labels, labels), v);
    }
    pub fn add(&self, labels: &[&str], d: i64) {
        *lock(&self.values)
            .entry(key(&self.meta.labels, labels))
            .or_default() += d;
    }
    pub fn get(&self, labels: &[&str]) -> i64 {
        lock(&self.values)
            .get(&key(&self.meta.labels, labels))
            .copied()
            .unwrap_or(0)
    }
}

impl Family for Gauge {
    fn render(&self, out: &mut String) {
        write_header(out, &self.meta.name, "gauge", &self.meta.help);
        for (k, v) in lock(&self.values).iter() {
            write_sample(out, &self.meta.name, &self.meta.pairs(k), *v);
        }
    }
}

#[derive(Clone, Default)]
struct HistData {
    /// Cumulative counts are computed at render time; these are per-bucket.
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

/// Observations in fixed buckets per label set.
pub struct Histogram {
    meta: Meta,
    bounds: Vec<f64>,
    values: Mutex<BTreeMap<Vec<String>, HistData>>,
}

impl Histogram {
    pub fn observe(&self, labels: &[&str], v: f64) {
        let mut values = lock(&self.values);
        let d = values
            .entry(key(&self.meta.labels, labels))
            .or_insert_with(|| HistData {
                buckets: vec![0; self.bounds.len()],
                ..HistData::default()
            });
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            d.buckets[i] += 1;
        }
        d.count += 1;
        d.sum += v;
    }
    /// Number of observations for a label set.
    pub fn count(&self, labels: &[&str]) -> u64 {
        lock(&self.values)
            .get(&key(&self.meta.labels, labels))
            .map_or(0, |d| d.count)
    }
}

impl Family for Histogram {
    fn render(&self, out: &mut String) {
        let name = &self.meta.name;
        write_header(out, name, "histogram", &self.meta.help);
        let bucket = format!("{name}_bucket");
        for (k, d) in lock(&self.values).iter() {
            let pairs = self.meta.pairs(k);
            let with_le = |le: &str, out: &mut String, v: u64| {
                let mut p = pairs.clone();
                p.push(("le", le));
                write_sample(out, &bucket, &p, v);
            };
            let mut cumulative = 0u64;
            for (b, n) in self.bounds.iter().zip(&d.buckets) {
                cumulative += n;
                with_le(&b.to_string(), out, cumulative);
            }
            with_le("+Inf", out, d.count);
            write_sample(out, &format!("{name}_sum"), &pairs, d.sum);
            write_sample(out, &format!("{name}_count"), &pairs, d.count);
        }
    }
}

/// The metric families of one process. Cloning shares them.
#[derive(Clone)]
pub struct Registry {
    families: Arc<Mutex<Vec<Arc<dyn Family>>>>,
    /// Rendered first: `advancia_build_info` and the start time.
    preamble: Arc<String>,
}

impl Registry {
    /// A registry whose output starts with `advancia_build_info{binary,version} 1` and
    /// `advancia_process_start_time_seconds`.
    pub fn new(binary: &str, version: &str) -> Registry {
        let mut pre = String::new();
        write_header(
            &mut pre,
            "advancia_build_info",
            "gauge",
            "Always 1; labels name the binary and its version.",
        );
        write_sample(
            &mut pre,
            "advancia_build_info",
            &[("binary", binary), ("version", version)],
            1u64,
        );
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        write_header(
            &mut pre,
            "advancia_process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch.",
        );
        write_sample(&mut pre, "advancia_process_start_time_seconds", &[], start);
        Registry {
            families: Arc::default(),
            preamble: Arc::new(pre),
        }
    }

    fn meta(name: &str, help: &str, labels: &[&'static str]) -> Meta {
        Meta {
            name: name.to_owned(),
            help: help.to_owned(),
            labels: labels.to_vec(),
        }
    }

    fn add<F: Family + 'static>(&self, f: Arc<F>) -> Arc<F> {
        lock(&self.families).push(f.clone());
        f
    }

    pub fn counter(&self, name: &str, help: &str, labels: &[&'static str]) -> Arc<Counter> {
        self.add(Arc::new(Counter {
            meta: Self::meta(name, help, labels),
            values: Mutex::default(),
        }))
    }

    pub fn gauge(&self, name: &str, help: &str, labels: &[&'static str]) -> Arc<Gauge> {
        self.add(Arc::new(Gauge {
            meta: Self::meta(name, help, labels),
            values: Mutex::default(),
        }))
    }

    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&'static str],
        bounds: &[f64],
    ) -> Arc<Histogram> {
        self.add(Arc::new(Histogram {
            meta: Self::meta(name, help, labels),
            bounds: bounds.to_vec(),
            values: Mutex::default(),
        }))
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(&self.preamble);
        for f in lock(&self.families).iter() {
            f.render(&mut out);
        }
        out
    }
}

/// What `/metrics` answers with: rendered on each scrape, possibly after async reads.
pub type RenderFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync + 'static>;

/// A [`RenderFn`] from a synchronous closure.
pub fn render_fn(f: impl Fn() -> String + Send + Sync + 'static) -> RenderFn {
    Arc::new(move || {
        let s = f();
        Box::pin(async move { s }) as Pin<Box<dyn Future<Output = String> + Send>>
    })
}

/// Binds `addr` and answers `GET /metrics` with `render()` until the returned task is
/// aborted; returns the bound address (useful with port 0) and the task.
///
/// A ~60-line HTTP/1.1 responder instead of an HTTP server crate: binaries without a server
/// (indexer, ledger, relayer) need nothing more to compile (ADR 0010).
pub async fn serve(
    addr: SocketAddr,
    render: RenderFn,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), std::io::Error> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let render = render.clone();
            tokio::spawn(async move {
                // Read the request head (bounded); only the request line matters.
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                let head_done = loop {
                    match tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        conn.read(&mut chunk),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break false,
                        Ok(Ok(n)) => {
                            buf.extend_from_slice(&chunk[..n]);
                            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                                break true;
                            }
                            if buf.len() > 16 * 1024 {
                                break false;
                            }
                        }
                    }
                };
                if !head_done {
                    return;
                }
                let line = buf.split(|b| *b == b'\r').next().unwrap_or_default();
                let mut parts = line.split(|b| *b == b' ');
                let method = parts.next().unwrap_or_default();
                let path = parts.next().unwrap_or_default();
                let path = path.split(|b| *b == b'?').next().unwrap_or_default();
                let (status, ctype, body) = match (method, path) {
                    (b"GET", b"/metrics") => (
                        "200 OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        render().await,
                    ),
                    (b"GET", _) => ("404 Not Found", "text/plain", "not found\n".into()),
                    _ => (
                        "405 Method Not Allowed",
                        "text/plain",
                        "method not allowed\n".into(),
                    ),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_histograms() {
        let r = Registry::new("test", "1.0");
        let c = r.counter("x_total", "X.", &["route", "status"]);
        c.inc(&["/a/{id}", "200"]);
        c.add(&["/a/{id}", "200"], 2);
        let g = r.gauge("y", "Y.", &[]);
        g.add(&[], 5);
        g.add(&[], -2);
        let h = r.histogram("z_seconds", "Z.", &["route"], &[0.1, 1.0]);
        h.observe(&["q\"r"], 0.05);
        h.observe(&["q\"r"], 0.5);
        h.observe(&["q\"r"], 5.0);
        let text = r.render();
        assert!(text.starts_with("# HELP advancia_build_info"));
        assert!(text.contains("advancia_build_info{binary=\"test\",version=\"1.0\"} 1\n"));
        assert!(text.contains("x_total{route=\"/a/{id}\",status=\"200\"} 3\n"));
        assert!(text.contains("# TYPE y gauge\ny 3\n"));
        assert!(text.contains("z_seconds_bucket{route=\"q\\\"r\",le=\"0.1\"} 1\n"));
        assert!(text.contains("z_seconds_bucket{route=\"q\\\"r\",le=\"1\"} 2\n"));
        assert!(text.contains("z_seconds_bucket{route=\"q\\\"r\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("z_seconds_sum{route=\"q\\\"r\"} 5.55\n"));
        assert!(text.contains("z_seconds_count{route=\"q\\\"r\"} 3\n"));
        assert_eq!(h.count(&["q\"r"]), 3);
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let r = Registry::new("test", "1.0");
        r.counter("hits_total", "Hits.", &[]).inc(&[]);
        let reg = r.clone();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().unwrap(),
            render_fn(move || reg.render()),
        )
        .await
        .unwrap();
        let resp = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.text().await.unwrap();
        assert!(body.contains("hits_total 1\n"), "{body}");
        let missing = reqwest::get(format!("http://{addr}/other")).await.unwrap();
        assert_eq!(missing.status(), 404);
        task.abort();
    }
}
