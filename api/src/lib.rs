//! The Advancia HTTP API: one axum router fronting every service.

pub mod gateway;
pub mod idempotency;
pub mod openapi;
pub mod pagination;
pub mod principal;
pub mod problem;
pub mod ratelimit;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use advancia_db::{ServiceMigrations, sqlx::PgPool};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use advancia_auth::AuthService;

use crate::gateway::GatewayConfig;
use crate::problem::Problem;
use crate::ratelimit::{Limiter, LocalLimiter, RedisLimiter};

/// Shared state handed to every handler.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub auth: AuthService,
    pub ledger: advancia_ledger::Ledger,
    /// Reverse proxies in front of us (see [`GatewayConfig::trusted_proxy_hops`]).
    pub trusted_proxy_hops: usize,
    /// The Solana node the blockchain and payment routes read and relay through.
    pub chain: advancia_chains::SolanaChain,
    pub wallets: advancia_chains::wallets::WalletStore,
    pub payments: advancia_payments::PaymentService,
    pub facilities: advancia_facilities::FacilityService,
    pub notifications: advancia_notifications::NotificationService,
    pub kyc: advancia_kyc::KycService,
    /// Public base URL for links handed to wallets; the request's host when unset.
    pub public_url: Option<String>,
}

impl AppState {
    /// State over `pool` whose chain services use the Solana node at `solana_rpc_url`.
    pub fn new(
        pool: PgPool,
        auth: AuthService,
        ledger: advancia_ledger::Ledger,
        services: ServicesConfig,
    ) -> AppState {
        let chain = advancia_chains::SolanaChain::new(services.solana_rpc_url);
        AppState {
            wallets: advancia_chains::wallets::WalletStore::new(pool.clone()),
            payments: advancia_payments::PaymentService::new(
                pool.clone(),
                chain.clone(),
                ledger.clone(),
                services.payments,
            ),
            notifications: advancia_notifications::NotificationService::new(pool.clone()),
            facilities: advancia_facilities::FacilityService::new(pool.clone()),
            kyc: services.kyc.service(pool.clone()),
            chain,
            pool,
            auth,
            ledger,
            trusted_proxy_hops: services.trusted_proxy_hops,
            public_url: services.public_url,
        }
    }
}

/// Settings of the services behind the routes (the gateway's are in [`ApiConfig`]).
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    pub solana_rpc_url: String,
    pub public_url: Option<String>,
    pub payments: advancia_payments::PaymentsConfig,
    pub trusted_proxy_hops: usize,
    pub kyc: routes::kyc::KycSettings,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            solana_rpc_url: "http://127.0.0.1:8899".into(),
            public_url: None,
            payments: Default::default(),
            trusted_proxy_hops: 0,
            kyc: Default::default(),
        }
    }
}

impl ServicesConfig {
    /// From `ADVANCIA_SOLANA_RPC_URL`, `ADVANCIA_PUBLIC_URL`, `ADVANCIA_PAYMENT_ICON_URL`,
    /// `ADVANCIA_PAYMENT_LABEL`, `ADVANCIA_PAYMENT_TTL_SECS`.
    pub fn from_env(trusted_proxy_hops: usize) -> Result<ServicesConfig, String> {
        let mut c = ServicesConfig {
            trusted_proxy_hops,
            kyc: routes::kyc::KycSettings::from_env()?,
            ..ServicesConfig::default()
        };
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var("ADVANCIA_SOLANA_RPC_URL") {
            c.solana_rpc_url = v;
        }
        if let Some(v) = var("ADVANCIA_PUBLIC_URL") {
            if !(v.starts_with("https://") || v.starts_with("http://")) {
                return Err(format!("ADVANCIA_PUBLIC_URL: `{v}` is not an http(s) URL"));
            }
            c.public_url = Some(v);
        }
        if let Some(v) = var("ADVANCIA_PAYMENT_ICON_URL") {
            c.payments.icon_url = v;
        }
        if let Some(v) = var("ADVANCIA_PAYMENT_LABEL") {
            c.payments.label = v;
        }
        if let Some(v) = var("ADVANCIA_PAYMENT_TTL_SECS") {
            let secs: u64 = v
                .trim()
                .parse()
                .map_err(|_| format!("ADVANCIA_PAYMENT_TTL_SECS: `{v}` is not a whole number"))?;
            c.payments.intent_ttl = Duration::from_secs(secs.max(60));
        }
        Ok(c)
    }
}

/// Everything the API needs besides the database.
#[derive(Clone)]
pub struct ApiConfig {
    pub gateway: GatewayConfig,
    /// Shared rate-limit store for several replicas; in-process when `None`.
    pub redis_url: Option<String>,
    /// Namespace of the rate-limit keys in Redis (replicas of one deployment share it).
    pub redis_prefix: String,
}

impl std::fmt::Debug for ApiConfig {
    // The Redis URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("gateway", &self.gateway)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(advancia_db::redact_url),
            )
            .field("redis_prefix", &self.redis_prefix)
            .finish()
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            gateway: GatewayConfig::default(),
            redis_url: None,
            redis_prefix: "advancia:ratelimit".into(),
        }
    }
}

impl ApiConfig {
    /// From the environment: `ADVANCIA_RATE_LIMITS` (e.g. `payments=1000/min`),
    /// `ADVANCIA_REDIS_URL`, `ADVANCIA_CORS_ORIGINS` (comma-separated),
    /// `ADVANCIA_TRUSTED_PROXY_HOPS`, `ADVANCIA_REQUEST_TIMEOUT_SECS`,
    /// `ADVANCIA_BODY_LIMIT_BYTES`, `ADVANCIA_UPLOAD_LIMIT_BYTES`. Each bad value is a start-up error naming it.
    pub fn from_env() -> Result<ApiConfig, String> {
        let mut c = ApiConfig::default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var("ADVANCIA_RATE_LIMITS") {
            c.gateway
                .apply_rate_limit_overrides(&v)
                .map_err(|e| format!("ADVANCIA_RATE_LIMITS: {e}"))?;
        }
        c.redis_url = var("ADVANCIA_REDIS_URL");
        if let Some(v) = var("ADVANCIA_REDIS_PREFIX") {
            c.redis_prefix = v;
        }
        if let Some(v) = var("ADVANCIA_CORS_ORIGINS") {
            c.gateway.cors_origins = v
                .split(',')
                .map(|o| {
                    o.trim()
                        .parse()
                        .map_err(|_| format!("ADVANCIA_CORS_ORIGINS: bad origin `{o}`"))
                })
                .collect::<Result<_, _>>()?;
        }
        let num = |k: &str, v: String| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{k}: `{v}` is not a whole number"))
        };
        if let Some(v) = var("ADVANCIA_TRUSTED_PROXY_HOPS") {
            c.gateway.trusted_proxy_hops = num("ADVANCIA_TRUSTED_PROXY_HOPS", v)? as usize;
        }
        if let Some(v) = var("ADVANCIA_REQUEST_TIMEOUT_SECS") {
            c.gateway.request_timeout =
                Duration::from_secs(num("ADVANCIA_REQUEST_TIMEOUT_SECS", v)?.max(1));
        }
        if let Some(v) = var("ADVANCIA_BODY_LIMIT_BYTES") {
            c.gateway.body_limit_bytes = num("ADVANCIA_BODY_LIMIT_BYTES", v)? as usize;
        }
        if let Some(v) = var("ADVANCIA_UPLOAD_LIMIT_BYTES") {
            c.gateway.upload_limit_bytes = num("ADVANCIA_UPLOAD_LIMIT_BYTES", v)? as usize;
        }
        Ok(c)
    }
}

/// The gateway's own tables (schema `api`): idempotency records.
pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "api",
    migrations: &[advancia_db::Migration {
        version: 1,
        name: "idempotency",
        sql: include_str!("../migrations/0001_idempotency.sql"),
    }],
};

/// Migrations of every service this binary can run, in dependency order.
pub fn all_migrations() -> Vec<&'static ServiceMigrations> {
    vec![
        &MIGRATIONS,
        &advancia_auth::MIGRATIONS,
        &advancia_ledger::MIGRATIONS,
        &advancia_indexer::MIGRATIONS,
        &advancia_chains::MIGRATIONS,
        &advancia_payments::MIGRATIONS,
        &advancia_facilities::MIGRATIONS,
        &advancia_notifications::MIGRATIONS,
        &advancia_kyc::MIGRATIONS,
    ]
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process is up and serving. Touches nothing external.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process serves requests", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness: dependencies answer. A load balancer stops routing here on 503.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Every dependency answers"),
        (status = 503, description = "A dependency is unreachable", body = Problem, content_type = "application/problem+json")
    ))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(Duration::from_secs(2), advancia_db::ping(&state.pool)).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready", "checks": { "database": "ok" } })),
        )
            .into_response(),
        Ok(Err(e)) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready")
            .with_detail(format!("database: {e}"))
            .into_response(),
        Err(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready")
            .with_detail("database: no answer within 2s")
            .into_response(),
    }
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "No such route")
}

/// The routes without gateway layers (tests of single handlers use this).
pub fn routes(state: AppState) -> Router {
    let doc = Arc::new(openapi::document());
    let page = openapi::reference_page(&doc);
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .route("/api/v1/docs", get(move || async move { page.clone() }))
        .merge(routes::auth::router())
        .merge(routes::indexer::router())
        .merge(routes::facilities::router())
        .merge(routes::notifications::router())
        .merge(routes::kyc::router())
        .merge(money_moving(routes::ledger::router(), &state))
        .merge(money_moving(routes::payments::router(), &state))
        .merge(money_moving(routes::blockchain::router(), &state))
        .fallback(not_found)
        .with_state(state)
}

/// Routes whose POSTs move money honour `Idempotency-Key`. (Not applied to auth routes:
/// their responses carry tokens, which must never be stored.)
fn money_moving(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    router.route_layer(axum::middleware::from_fn_with_state(
        idempotency::IdempotencyState {
            pool: state.pool.clone(),
            trusted_proxy_hops: state.trusted_proxy_hops,
        },
        idempotency::enforce,
    ))
}

/// The full application: routes inside the gateway layers.
pub async fn app(state: AppState, config: ApiConfig) -> anyhow::Result<Router> {
    let limiter = match &config.redis_url {
        Some(url) => Limiter::Redis(
            RedisLimiter::connect(url, &config.redis_prefix)
                .await
                .map_err(|e| anyhow::anyhow!("ADVANCIA_REDIS_URL: {e}"))?,
        ),
        None => Limiter::Local(Arc::new(LocalLimiter::default())),
    };
    let identify = principal::IdentifyState {
        auth: state.auth.clone(),
        trusted_proxy_hops: config.gateway.trusted_proxy_hops,
    };
    // Identify runs before rate limiting so limits key on the verified caller.
    let inner = gateway::with_rate_limit(routes(state), &config.gateway, limiter).layer(
        axum::middleware::from_fn_with_state(identify, principal::identify),
    );
    Ok(gateway::apply_outer(inner, config.gateway))
}

/// Serves `router` on `listener` until `shutdown` resolves, with peer addresses
/// available to the gateway (rate-limit keys, logs).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
