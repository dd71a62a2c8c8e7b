//! Runtime operations: which services this process runs (`--services`), readiness with a
//! check per dependency, and graceful shutdown that drains requests and workers.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::problem::Problem;

/// Services one `advancia serve` process can run: each names a route group and/or the
/// background workers it owns. Other services add their name here.
pub const SERVICES: &[&str] = &[
    "auth",
    "payments",
    "ledger",
    "blockchain",
    "indexer",
    "facilities",
    "notifications",
    "kyc",
    "analytics",
    "agents",
];

/// The services enabled in this process (default: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSet(BTreeSet<&'static str>);

impl Default for ServiceSet {
    fn default() -> Self {
        ServiceSet::all()
    }
}

impl ServiceSet {
    pub fn all() -> ServiceSet {
        ServiceSet(SERVICES.iter().copied().collect())
    }

    /// From a comma-separated list such as `payments,ledger`; `all` means every service.
    /// Unknown names are errors (a typo must not silently drop a service).
    pub fn parse(list: &str) -> Result<ServiceSet, String> {
        let mut set = BTreeSet::new();
        let mut unknown = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "all" {
                return Ok(ServiceSet::all());
            }
            match SERVICES.iter().find(|s| **s == name) {
                Some(s) => {
                    set.insert(*s);
                }
                None => unknown.push(format!("`{name}`")),
            }
        }
        if !unknown.is_empty() {
            return Err(format!("unknown service {}", unknown.join(", ")));
        }
        if set.is_empty() {
            return Err("no service named".into());
        }
        Ok(ServiceSet(set))
    }

    pub fn has(&self, service: &str) -> bool {
        self.0.contains(service)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().copied().collect()
    }
}

/// What `/ready` checks besides the database and migrations.
#[derive(Debug, Clone, Default)]
pub struct ReadinessConfig {
    /// Fail readiness when the chain RPC does not answer. Off by default: a chain outage
    /// degrades the routes that need it (they answer 502) instead of taking every replica
    /// out of the load balancer (ADR 0021).
    pub require_chain: bool,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Replaces every http(s) URL in `text` with `<url>`: `/ready` is public, and an RPC URL
/// may carry a provider API key in its path or query.
pub fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("http://").or_else(|| rest.find("https://")) {
        // Take the earlier of the two schemes.
        let i = match (rest.find("http://"), rest.find("https://")) {
            (Some(a), Some(b)) => a.min(b),
            _ => i,
        };
        out.push_str(&rest[..i]);
        out.push_str("<url>");
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == ')' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

async fn bounded<T, E: std::fmt::Display>(
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(scrub_urls(&e.to_string())),
        Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    }
}

/// Every migration this binary ships is applied, each service's in the database that
/// holds it (schemas behind are listed).
async fn migrations_applied(state: &AppState) -> Result<(), String> {
    let mut behind = Vec::new();
    for s in crate::all_migrations() {
        let have: Option<i32> = bounded(
            advancia_db::sqlx::query_scalar(
                "SELECT max(version) FROM public.advancia_migrations WHERE schema_name = $1",
            )
            .bind(s.schema)
            .fetch_one(state.pool_of(s.schema)),
        )
        .await?;
        let want = s.migrations.last().map_or(0, |m| i64::from(m.version));
        let have = have.map_or(0, i64::from);
        if have < want {
            behind.push(format!("{} at {have} of {want}", s.schema));
        }
    }
    if behind.is_empty() {
        Ok(())
    } else {
        Err(format!("pending: {}", behind.join(", ")))
    }
}

/// Every distinct database the services use answers (the core one and services' own),
/// checked concurrently.
async fn databases_answer(state: &AppState) -> Result<(), String> {
    let mut distinct: Vec<(&str, &advancia_db::sqlx::PgPool)> = Vec::new();
    let key = |p: &advancia_db::sqlx::PgPool| {
        let o = p.connect_options();
        (
            o.get_host().to_owned(),
            o.get_port(),
            o.get_database().map(str::to_owned),
        )
    };
    for schema in ["core"]
        .into_iter()
        .chain(crate::ServiceDatabases::SEPARABLE.iter().map(|(s, _)| *s))
    {
        let pool = state.pool_of(schema);
        if !distinct.iter().any(|(_, p)| key(p) == key(pool)) {
            distinct.push((schema, pool));
        }
    }
    let results =
        futures_util::future::join_all(distinct.iter().map(|(schema, pool)| async move {
            bounded(advancia_db::ping(pool)).await.map_err(|e| {
                if *schema == "core" {
                    e
                } else {
                    format!("{schema}: {e}")
                }
            })
        }))
        .await;
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Readiness: each dependency of the enabled services, checked concurrently. 200 with the
/// checks when every required one passes; otherwise 503 problem+json with the same
/// `checks` member. Error texts name the failure, never a credential.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Every required dependency answers; body lists each check"),
        (status = 503, description = "A required dependency fails", body = Problem, content_type = "application/problem+json")
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let chain_needed =
        state.enabled_services.has("payments") || state.enabled_services.has("blockchain");
    let (db, migrations, chain) = tokio::join!(
        databases_answer(&state),
        migrations_applied(&state),
        async {
            if chain_needed {
                Some(bounded(state.chain.latest_blockhash()).await.map(|_| ()))
            } else {
                None
            }
        }
    );
    let db_down = db.is_err();
    let mut checks = Map::new();
    let mut failed = Vec::new();
    let mut put = |name: &str, r: Result<(), String>, required: bool| {
        let v = match r {
            Ok(()) => Value::from("ok"),
            Err(e) => {
                if required {
                    failed.push(format!("{name}: {e}"));
                }
                Value::from(format!("error: {e}"))
            }
        };
        checks.insert(name.to_owned(), v);
    };
    put("database", db, true);
    // Migrations cannot be read without the database; report that once.
    if db_down {
        put("migrations", Err("skipped: database down".into()), false);
    } else {
        put("migrations", migrations, true);
    }
    if let Some(c) = chain {
        put("chain", c, state.readiness.require_chain);
    }
    let services = state.enabled_services.names();
    if failed.is_empty() {
        (
            StatusCode::OK,
            Json(json!({ "status": "ready", "checks": checks, "services": services })),
        )
            .into_response()
    } else {
        let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready")
            .with_detail(failed.join("; "))
            .with_extension("checks", Value::Object(checks))
            .with_extension("services", json!(services));
        // Like every 503 we send: when to ask again (each check is bounded by 2 s).
        p.retry_after = Some(2);
        p.into_response()
    }
}

/// One shutdown signal fanned out to the server and every background worker.
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            tx: watch::channel(false).0,
        }
    }

    /// Starts shutting down (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Resolves once [`Shutdown::trigger`] was called.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }
}

/// Background workers that stop on the shared signal and are awaited on shutdown.
#[derive(Default)]
pub struct Workers {
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Workers {
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push((name, tokio::spawn(task)));
    }

    /// Waits for every worker until `deadline`; the ones still running are aborted and
    /// named in the result.
    pub async fn join(self, deadline: Duration) -> Vec<&'static str> {
        let until = tokio::time::Instant::now() + deadline;
        let mut late = Vec::new();
        for (name, mut task) in self.tasks {
            if tokio::time::timeout_at(until, &mut task).await.is_err() {
                task.abort();
                late.push(name);
            }
        }
        late
    }
}

/// Serves `router` until `shutdown` resolves, then stops accepting connections and lets
/// in-flight requests finish for at most `drain`. Returns `false` when the drain deadline
/// cut some requests off.
pub async fn serve_with_drain(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<bool> {
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    })
    .into_future();
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return r.map(|()| true),
        _ = signalled_rx => {}
    }
    tracing::info!(
        drain_secs = drain.as_secs_f64(),
        "shutdown: no new connections; draining in-flight requests"
    );
    match tokio::time::timeout(drain, server).await {
        Ok(r) => r.map(|()| true),
        Err(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn service_lists_parse_and_reject_unknown_names() {
        let s = ServiceSet::parse("payments, ledger").unwrap();
        assert!(s.has("payments") && s.has("ledger") && !s.has("auth"));
        assert_eq!(ServiceSet::parse("all").unwrap(), ServiceSet::all());
        let e = ServiceSet::parse("payments,ledgr,kyx").unwrap_err();
        assert_eq!(
            scrub_urls(
                "unavailable: sending request for url (https://rpc.example/?api-key=K) then http://a/b"
            ),
            "unavailable: sending request for url (<url>) then <url>"
        );
        assert_eq!(e, "unknown service `ledgr`, `kyx`");
        assert!(ServiceSet::parse(" , ").is_err());
    }
}
