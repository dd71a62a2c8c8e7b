//! Observability of the API: golden signals per matched route (a middleware), business
//! metrics read from Postgres on each scrape, and the remote trace context of requests.
//! Names are listed in `offchain/telemetry/METRICS.md`.

use std::sync::Arc;
use std::time::Instant;

use advancia_db::sqlx::PgPool;
use advancia_telemetry::Registry;
use advancia_telemetry::metrics::{
    Counter, Gauge, Histogram, LATENCY_BUCKETS, RenderFn, write_header, write_sample,
};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Route label of requests no route matched (keeps the label set bounded).
pub const UNMATCHED: &str = "unmatched";

/// The API's request metrics.
#[derive(Clone)]
pub struct HttpMetrics {
    pub registry: Registry,
    requests: Arc<Counter>,
    duration: Arc<Histogram>,
    in_flight: Arc<Gauge>,
    errors: Arc<Counter>,
}

impl HttpMetrics {
    pub fn new(registry: Registry) -> HttpMetrics {
        HttpMetrics {
            requests: registry.counter(
                "advancia_http_requests_total",
                "Requests answered, by matched route, method and status code.",
                &["route", "method", "status"],
            ),
            duration: registry.histogram(
                "advancia_http_request_duration_seconds",
                "Time from request to response head, by matched route and method.",
                &["route", "method"],
                LATENCY_BUCKETS,
            ),
            in_flight: registry.gauge(
                "advancia_http_requests_in_flight",
                "Requests being handled, by matched route.",
                &["route"],
            ),
            errors: registry.counter(
                "advancia_http_errors_total",
                "Responses with a 4xx or 5xx status, by matched route, method and class.",
                &["route", "method", "class"],
            ),
            registry,
        }
    }

    /// Requests counted for a route/method/status (tests and self-checks).
    pub fn requests(&self, route: &str, method: &str, status: u16) -> u64 {
        self.requests.get(&[route, method, &status.to_string()])
    }
}

/// Decrements the in-flight gauge also when the handler's future is dropped (client gone,
/// timeout), so the gauge cannot drift upwards.
struct InFlight<'a> {
    gauge: &'a Gauge,
    route: &'a str,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.gauge.add(&[self.route], -1);
    }
}

/// Middleware: counts, times and tracks every request under its route template.
pub async fn track(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |p| p.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    m.in_flight.add(&[&route], 1);
    let _guard = InFlight {
        gauge: &m.in_flight,
        route: &route,
    };
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    m.duration
        .observe(&[&route, &method], start.elapsed().as_secs_f64());
    m.requests.inc(&[&route, &method, status.as_str()]);
    if status.is_server_error() {
        m.errors.inc(&[&route, &method, "5xx"]);
    } else if status.is_client_error() {
        m.errors.inc(&[&route, &method, "4xx"]);
    }
    resp
}

/// A failed business-metric read (each comes from the owning service's typed read).
type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// Business metrics from Postgres, each read through the typed read of the service that
/// owns the data (ADR 0023: the API's SQL names no service's schema). A failing read is
/// counted in `advancia_metrics_scrape_errors_total{query}` and its families are left out;
/// the rest are still rendered. A service whose schema is not installed in this database
/// renders nothing.
pub async fn render_business(dbs: &Databases, scrape_errors: &Counter) -> String {
    let pool = &dbs.core;
    let mut out = String::new();
    if let Err(e) = payments(&dbs.payments, &mut out).await {
        tracing::warn!(error = %e, "payments metrics query failed");
        scrape_errors.inc(&["payments"]);
    }
    if let Err(e) = indexer(pool, &mut out).await {
        tracing::warn!(error = %e, "indexer metrics query failed");
        scrape_errors.inc(&["indexer"]);
    }
    if let Err(e) = bridge(pool, &mut out).await {
        tracing::warn!(error = %e, "bridge metrics query failed");
        scrape_errors.inc(&["bridge"]);
    }
    if let Err(e) = notifications(&dbs.notifications, &mut out).await {
        tracing::warn!(error = %e, "notifications metrics query failed");
        scrape_errors.inc(&["notifications"]);
    }
    out
}

async fn payments(pool: &PgPool, out: &mut String) -> Result<(), ReadError> {
    let Some(rows) = advancia_payments::reads::totals_by_mint_and_status(pool).await? else {
        return Ok(());
    };
    write_header(
        out,
        "advancia_payments_total",
        "gauge",
        "Payment intents by asset (mint) and status.",
    );
    for r in &rows {
        write_sample(
            out,
            "advancia_payments_total",
            &[("mint", r.mint.as_str()), ("status", r.status.as_str())],
            r.intents,
        );
    }
    write_header(
        out,
        "advancia_payment_volume_base_units",
        "gauge",
        "Sum of payment amounts in the asset's base units, by asset (mint) and status.",
    );
    for r in &rows {
        // Sums stay numeric text: u64 amounts summed exceed bigint, and money is never a float.
        write_sample(
            out,
            "advancia_payment_volume_base_units",
            &[("mint", r.mint.as_str()), ("status", r.status.as_str())],
            r.amount.as_str(),
        );
    }
    let count = |s: &str| -> i64 {
        rows.iter()
            .filter(|r| r.status == s)
            .map(|r| r.intents)
            .sum()
    };
    let ok = count("finalized");
    let resolved = ok + count("failed") + count("expired");
    write_header(
        out,
        "advancia_payment_success_ratio",
        "gauge",
        "Finalized intents over resolved ones (finalized + failed + expired).",
    );
    let ratio = if resolved == 0 {
        f64::NAN
    } else {
        ok as f64 / resolved as f64
    };
    write_sample(out, "advancia_payment_success_ratio", &[], ratio);
    Ok(())
}

async fn indexer(pool: &PgPool, out: &mut String) -> Result<(), ReadError> {
    let Some(rows) = advancia_indexer_store::progress::cursors(pool).await? else {
        return Ok(());
    };
    write_header(
        out,
        "advancia_indexer_cursor_position",
        "gauge",
        "Slot (or height) the indexer's stored cursor has reached, by source.",
    );
    for c in &rows {
        write_sample(
            out,
            "advancia_indexer_cursor_position",
            &[("source", c.source.as_str())],
            c.slot.unwrap_or(0),
        );
    }
    write_header(
        out,
        "advancia_indexer_cursor_age_seconds",
        "gauge",
        "Seconds since the indexer last moved its cursor, by source.",
    );
    for c in &rows {
        write_sample(
            out,
            "advancia_indexer_cursor_age_seconds",
            &[("source", c.source.as_str())],
            c.age_seconds,
        );
    }
    Ok(())
}

async fn bridge(pool: &PgPool, out: &mut String) -> Result<(), ReadError> {
    let store = advancia_relayer::store::Store::new(pool.clone());
    let Some(rows) = store.backlog().await? else {
        return Ok(());
    };
    write_header(
        out,
        "advancia_bridge_backlog",
        "gauge",
        "Undelivered bridge messages by destination domain and delivery status.",
    );
    for b in &rows {
        write_sample(
            out,
            "advancia_bridge_backlog",
            &[
                ("destination", b.destination_domain.to_string().as_str()),
                ("status", b.status.as_str()),
            ],
            b.messages,
        );
    }
    Ok(())
}

async fn notifications(pool: &PgPool, out: &mut String) -> Result<(), ReadError> {
    let Some(rows) = advancia_notifications::stats::deliveries_by_status(pool).await? else {
        return Ok(());
    };
    write_header(
        out,
        "advancia_notifications_outbox",
        "gauge",
        "Notification deliveries by status (pending, delivered, dead).",
    );
    for r in &rows {
        write_sample(
            out,
            "advancia_notifications_outbox",
            &[("status", r.status.as_str())],
            r.deliveries,
        );
    }
    Ok(())
}

/// The ledger posting rules' counters, per chain (they run in this process).
pub type PostingStats =
    Arc<std::sync::Mutex<Vec<(String, Arc<advancia_ledger::projection::ProjectionStats>)>>>;

/// The Solana node's circuit breaker: its state (0 closed, 1 open, 2 half-open) and how
/// often it opened.
fn render_breaker(chain: &advancia_chains::SolanaChain, out: &mut String) {
    use std::fmt::Write;
    let b = chain.breaker();
    let _ = writeln!(
        out,
        "# HELP advancia_chain_breaker_state Circuit breaker in front of the chain node: 0 closed, 1 open, 2 half-open.\n\
         # TYPE advancia_chain_breaker_state gauge\n\
         advancia_chain_breaker_state{{chain=\"solana\"}} {}\n\
         # HELP advancia_chain_breaker_opened_total Times the chain node's circuit breaker opened.\n\
         # TYPE advancia_chain_breaker_opened_total counter\n\
         advancia_chain_breaker_opened_total{{chain=\"solana\"}} {}",
        b.state() as u8,
        b.opened_total()
    );
}

fn render_posting(posting: &PostingStats, out: &mut String) {
    use std::sync::atomic::Ordering::Relaxed;
    let Ok(all) = posting.lock() else {
        return;
    };
    if all.is_empty() {
        return;
    }
    type Pick = fn(&advancia_ledger::projection::ProjectionStats) -> u64;
    let families: [(&str, &str, Pick); 3] = [
        (
            "advancia_ledger_posted_events_total",
            "Finalized money events the ledger's posting rules posted, by chain.",
            |s| s.events_posted.load(Relaxed),
        ),
        (
            "advancia_ledger_posted_transfers_total",
            "Ledger transfers (legs) the posting rules made, by chain.",
            |s| s.transfers_posted.load(Relaxed),
        ),
        (
            "advancia_ledger_parked_events_total",
            "Money events parked until they can be posted (asset scale unknown, escrow opened before indexing), by chain.",
            |s| s.events_parked.load(Relaxed),
        ),
    ];
    for (name, help, pick) in families {
        write_header(out, name, "counter", help);
        for (chain, stats) in all.iter() {
            write_sample(out, name, &[("chain", chain)], pick(stats));
        }
    }
}

/// The databases the business metrics come from: the core one (indexer, bridge) and the
/// services' own (database per service; the same pool where they share it).
#[derive(Debug, Clone)]
pub struct Databases {
    pub core: PgPool,
    pub payments: PgPool,
    pub notifications: PgPool,
    /// The Solana node client whose circuit breaker is reported, if any.
    pub chain: Option<advancia_chains::SolanaChain>,
}

impl Databases {
    /// Every service in the one database `pool`.
    pub fn shared(pool: PgPool) -> Databases {
        Databases {
            core: pool.clone(),
            payments: pool.clone(),
            notifications: pool,
            chain: None,
        }
    }

    pub fn of(state: &crate::AppState) -> Databases {
        Databases {
            core: state.pool.clone(),
            payments: state.pool_of("payments").clone(),
            notifications: state.pool_of("notifications").clone(),
            chain: Some(state.chain.clone()),
        }
    }
}

/// What the API's `/metrics` serves: the registry (request metrics and anything else
/// registered on it) followed by the business metrics.
pub fn render(metrics: &HttpMetrics, dbs: Databases, posting: PostingStats) -> RenderFn {
    let registry = metrics.registry.clone();
    let scrape_errors = registry.counter(
        "advancia_metrics_scrape_errors_total",
        "Business-metric queries that failed during a scrape, by query.",
        &["query"],
    );
    Arc::new(move || {
        let registry = registry.clone();
        let dbs = dbs.clone();
        let scrape_errors = scrape_errors.clone();
        let posting = posting.clone();
        Box::pin(async move {
            let business = render_business(&dbs, &scrape_errors).await;
            let mut out = registry.render();
            out.push_str(&business);
            if let Some(chain) = &dbs.chain {
                render_breaker(chain, &mut out);
            }
            render_posting(&posting, &mut out);
            out
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>
    })
}
