//! The Advancia HTTP API: one axum router fronting every service.

pub mod body;
pub mod gateway;
pub mod idempotency;
pub mod observe;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod ports;
pub mod principal;
pub mod problem;
pub mod ratelimit;
pub mod routes;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use advancia_db::{ServiceMigrations, sqlx::PgPool};
use axum::http::StatusCode;
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
    /// The event bus: agent tasks and the services' domain events; in-process unless `main`
    /// swaps in NATS JetStream (ADRs 0019, 0020).
    pub bus: advancia_bus::Bus,
    /// Agents; their tasks go over [`AppState::bus`].
    pub agents: advancia_agents::AgentService,
    pub kyc: advancia_kyc::KycService,
    /// Public base URL (no trailing slash) of every link we hand out (payment links,
    /// icons): never taken from the request.
    pub public_url: String,
    /// Services this process runs (`--services`); readiness checks their dependencies.
    pub enabled_services: ops::ServiceSet,
    pub readiness: ops::ReadinessConfig,
    /// The CosmWasm chain the ledger also posts, if any (see [`ServicesConfig`]).
    pub cosmos_assets: Option<advancia_ledger::projection::ConfiguredAssets>,
    /// Counters of the ledger's posting rules, per chain (metrics).
    pub ledger_posting: observe::PostingStats,
    /// Channels the notification delivery worker sends through.
    pub notification_channels: advancia_notifications::config::ChannelsConfig,
    /// The analytics service's database.
    pub analytics_pool: PgPool,
    /// The checkout pages' live status (payment events of this process) and chain id.
    pub checkout: routes::checkout::Checkout,
}

impl AppState {
    /// The database that holds service `schema` (its own, or the core one).
    pub fn pool_of(&self, schema: &str) -> &PgPool {
        match schema {
            "payments" => self.payments.pool(),
            "ledger" => self.ledger.pool(),
            "notifications" => self.notifications.pool(),
            "analytics" => &self.analytics_pool,
            "kyc" => self.kyc.pool(),
            _ => &self.pool,
        }
    }

    /// State over `pool` whose chain services use the Solana node at `solana_rpc_url`.
    pub fn new(
        pool: PgPool,
        auth: AuthService,
        ledger: advancia_ledger::Ledger,
        services: ServicesConfig,
    ) -> AppState {
        let chain = advancia_chains::SolanaChain::new(services.solana_rpc_url);
        let own = |db: &Option<PgPool>| db.clone().unwrap_or_else(|| pool.clone());
        let dbs = &services.databases;
        let analytics_pool = own(&dbs.analytics);
        let bus: advancia_bus::Bus =
            std::sync::Arc::new(advancia_bus::memory::InProcessBus::default());
        AppState {
            wallets: advancia_chains::wallets::WalletStore::new(pool.clone()),
            payments: advancia_payments::PaymentService::new(
                own(&dbs.payments),
                // The indexer's database: the core one.
                pool.clone(),
                chain.clone(),
                ledger.clone(),
                services.payments,
            ),
            notifications: advancia_notifications::NotificationService::new(
                own(&dbs.notifications),
            )
            .with_egress(services.egress.clone()),
            facilities: advancia_facilities::FacilityService::new(
                pool.clone(),
                Arc::new(ports::AuthUsers(auth.clone())),
            ),
            agents: advancia_agents::AgentService::new(
                pool.clone(),
                bus.clone(),
                services.llm.and_then(|c| {
                    advancia_agents::llm::LlmClient::new(c)
                        .inspect_err(
                            |e| tracing::error!(error = %e, "LLM client; LLM agents disabled"),
                        )
                        .ok()
                }),
            )
            .with_payments_pool(own(&dbs.payments)),
            kyc: services.kyc.service(
                own(&dbs.kyc),
                Arc::new(ports::KycPorts {
                    auth: auth.clone(),
                    wallets: advancia_chains::wallets::WalletStore::new(pool.clone()),
                    indexer: pool.clone(),
                }),
            ),
            bus,
            chain,
            pool,
            auth,
            ledger,
            trusted_proxy_hops: services.trusted_proxy_hops,
            public_url: services
                .public_url
                .map(|u| u.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| DEV_PUBLIC_URL.to_owned()),
            enabled_services: ops::ServiceSet::all(),
            readiness: ops::ReadinessConfig::default(),
            cosmos_assets: services.cosmos_assets,
            ledger_posting: Arc::default(),
            notification_channels: services.notification_channels,
            analytics_pool,
            checkout: routes::checkout::Checkout::default(),
        }
    }

    /// Runs only `services` (route groups and readiness checks).
    pub fn with_services(mut self, services: ops::ServiceSet) -> AppState {
        self.enabled_services = services;
        self
    }

    pub fn with_readiness(mut self, readiness: ops::ReadinessConfig) -> AppState {
        self.readiness = readiness;
        self
    }
}

/// Links of an in-process app built without `ADVANCIA_PUBLIC_URL` (tests); `advancia
/// serve` requires the setting outside `--dev` (see `settings`).
pub const DEV_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// Settings of the services behind the routes (the gateway's are in [`ApiConfig`]).
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    pub solana_rpc_url: String,
    /// `ADVANCIA_PUBLIC_URL`: the base of every link we hand out.
    pub public_url: Option<String>,
    /// Where user-supplied URLs (webhooks) may point: https only and never internal
    /// addresses, except the operator's `ADVANCIA_EGRESS_ALLOW` entries.
    pub egress: advancia_egress::EgressPolicy,
    pub payments: advancia_payments::PaymentsConfig,
    pub trusted_proxy_hops: usize,
    /// OpenAI-compatible endpoint of the LLM-backed agents (none: they fail plainly).
    pub llm: Option<advancia_agents::llm::LlmConfig>,
    pub kyc: routes::kyc::KycSettings,
    /// A CosmWasm chain whose money events the ledger posts (`ADVANCIA_COSMOS_CHAIN_ID`),
    /// with its assets' scales (`ADVANCIA_COSMOS_ASSET_SCALES`).
    pub cosmos_assets: Option<advancia_ledger::projection::ConfiguredAssets>,
    /// Notification channels beside webhooks and in-app (SMTP, SMS, push).
    pub notification_channels: advancia_notifications::config::ChannelsConfig,
    /// Services with a database of their own (the rest share the core one).
    pub databases: ServiceDatabases,
}

/// The services that may each have a database of their own (ADR 0023: database per
/// service); `None` puts one in the core database, beside auth, chains, the indexer,
/// facilities and the outbox cursors. The ledger's is the one its [`advancia_ledger::Ledger`]
/// was built with.
#[derive(Debug, Clone, Default)]
pub struct ServiceDatabases {
    pub payments: Option<PgPool>,
    pub notifications: Option<PgPool>,
    pub analytics: Option<PgPool>,
    pub kyc: Option<PgPool>,
}

impl ServiceDatabases {
    /// The services that may live apart, by the schema each owns, with its migrations.
    pub const SEPARABLE: [(&'static str, &'static ServiceMigrations); 5] = [
        ("payments", &advancia_payments::MIGRATIONS),
        ("ledger", &advancia_ledger::MIGRATIONS),
        ("notifications", &advancia_notifications::MIGRATIONS),
        ("analytics", &advancia_analytics::MIGRATIONS),
        ("kyc", &advancia_kyc::MIGRATIONS),
    ];

    /// The setting that gives service `schema` its own database.
    pub fn setting(schema: &str) -> &'static str {
        match schema {
            "payments" => "ADVANCIA_PAYMENTS_DATABASE_URL",
            "ledger" => "ADVANCIA_LEDGER_DATABASE_URL",
            "notifications" => "ADVANCIA_NOTIFICATIONS_DATABASE_URL",
            "analytics" => "ADVANCIA_ANALYTICS_DATABASE_URL",
            _ => "ADVANCIA_KYC_DATABASE_URL",
        }
    }
}

impl ServiceDatabases {
    /// Applies every service's migrations where it lives: the separated services' in their
    /// own databases (`separate`, by schema), the rest in `core`. Returns how many applied.
    pub async fn migrate(
        core: &PgPool,
        separate: &[(&'static str, PgPool)],
    ) -> Result<usize, advancia_db::DbError> {
        let apart = |schema: &str| separate.iter().any(|(s, _)| *s == schema);
        let shared: Vec<_> = all_migrations()
            .into_iter()
            .filter(|m| !apart(m.schema))
            .collect();
        let mut applied = advancia_db::migrate(core, &shared).await?.applied.len();
        for (schema, pool) in separate {
            let own: Vec<_> = Self::SEPARABLE
                .iter()
                .filter(|(s, _)| s == schema)
                .map(|(_, m)| *m)
                .collect();
            applied += advancia_db::migrate(pool, &own).await?.applied.len();
        }
        Ok(applied)
    }

    /// The pools of `separate` (by schema) as service databases.
    pub fn from_pools(separate: &[(&'static str, PgPool)]) -> ServiceDatabases {
        let get = |schema: &str| {
            separate
                .iter()
                .find(|(s, _)| *s == schema)
                .map(|(_, p)| p.clone())
        };
        ServiceDatabases {
            payments: get("payments"),
            notifications: get("notifications"),
            analytics: get("analytics"),
            kyc: get("kyc"),
        }
    }
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            solana_rpc_url: "http://127.0.0.1:8899".into(),
            public_url: None,
            egress: advancia_egress::EgressPolicy::production(),
            payments: Default::default(),
            trusted_proxy_hops: 0,
            llm: None,
            kyc: Default::default(),
            cosmos_assets: None,
            notification_channels: Default::default(),
            databases: Default::default(),
        }
    }
}

impl ServicesConfig {
    /// From `ADVANCIA_SOLANA_RPC_URL`, `ADVANCIA_PUBLIC_URL`, `ADVANCIA_PAYMENT_ICON_URL`,
    /// `ADVANCIA_PAYMENT_LABEL`, `ADVANCIA_PAYMENT_TTL_SECS`.
    pub fn from_env(trusted_proxy_hops: usize) -> Result<ServicesConfig, String> {
        Self::from_vars(|k| std::env::var(k).ok(), trusted_proxy_hops).map_err(|e| e.join("; "))
    }

    /// [`Self::from_env`] over any variable source; every bad setting is reported, each
    /// message starting with the setting's name.
    pub fn from_vars(
        get: impl Fn(&str) -> Option<String>,
        trusted_proxy_hops: usize,
    ) -> Result<ServicesConfig, Vec<String>> {
        let mut c = ServicesConfig {
            trusted_proxy_hops,
            ..ServicesConfig::default()
        };
        let mut errors = Vec::new();
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let http_url = |v: &str| {
            (v.starts_with("https://") || v.starts_with("http://")) && v.len() > "https://".len()
        };
        if let Some(v) = var("ADVANCIA_SOLANA_RPC_URL") {
            if http_url(&v) {
                c.solana_rpc_url = v;
            } else {
                // The RPC URL may embed a provider API key: describe, do not echo.
                errors.push(
                    "ADVANCIA_SOLANA_RPC_URL: not an http(s) URL (expected e.g. http://127.0.0.1:8899)"
                        .into(),
                );
            }
        }
        if let Some(v) = var("ADVANCIA_PUBLIC_URL") {
            if http_url(&v) {
                c.public_url = Some(v);
            } else {
                errors.push(format!(
                    "ADVANCIA_PUBLIC_URL: `{v}` is not an http(s) URL (expected e.g. https://pay.example.com)"
                ));
            }
        }
        if let Some(v) = var("ADVANCIA_EGRESS_ALLOW") {
            match advancia_egress::EgressPolicy::production().allowing(&v) {
                Ok(p) => c.egress = p,
                Err(e) => errors.push(format!("ADVANCIA_EGRESS_ALLOW: {e} (expected comma-separated host names, addresses or ranges, e.g. hooks.internal,10.8.0.0/16)")),
            }
        }
        if let Some(v) = var("ADVANCIA_PAYMENT_ICON_URL") {
            c.payments.icon_url = v;
        }
        if let Some(v) = var("ADVANCIA_PAYMENT_LABEL") {
            c.payments.label = v;
        }
        if let Some(v) = var("ADVANCIA_PAYMENT_TTL_SECS") {
            match v.trim().parse::<u64>() {
                Ok(secs) => c.payments.intent_ttl = Duration::from_secs(secs.max(60)),
                Err(_) => errors.push(format!(
                    "ADVANCIA_PAYMENT_TTL_SECS: `{v}` is not a whole number of seconds (minimum 60)"
                )),
            }
        }
        match advancia_agents::llm::LlmConfig::from_vars(&get) {
            Ok(llm) => c.llm = llm,
            Err(e) => errors.push(e),
        }
        match routes::kyc::KycSettings::from_vars(&get) {
            Ok(kyc) => c.kyc = kyc,
            Err(e) => errors.push(e),
        }
        // The ledger's posting rules read decimals of Solana mints on chain; a CosmWasm
        // chain's assets carry none, so the operator states them (ADR 0023).
        let scales = var("ADVANCIA_COSMOS_ASSET_SCALES").unwrap_or_default();
        match var("ADVANCIA_COSMOS_CHAIN_ID") {
            Some(id) => {
                match advancia_ledger::projection::ConfiguredAssets::parse(
                    format!("cosmos:{}", id.trim()),
                    &scales,
                ) {
                    Ok(a) => c.cosmos_assets = Some(a),
                    Err(e) => errors.push(format!("ADVANCIA_COSMOS_ASSET_SCALES: {e}")),
                }
            }
            None if !scales.is_empty() => errors.push(
                "ADVANCIA_COSMOS_ASSET_SCALES: set ADVANCIA_COSMOS_CHAIN_ID too (the chain they belong to)"
                    .into(),
            ),
            None => {}
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
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
        Self::from_vars(|k| std::env::var(k).ok()).map_err(|e| e.join("; "))
    }

    /// [`Self::from_env`] over any variable source; every bad setting is reported, each
    /// message starting with the setting's name.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<ApiConfig, Vec<String>> {
        let mut c = ApiConfig::default();
        let mut errors = Vec::new();
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = var("ADVANCIA_RATE_LIMITS")
            && let Err(e) = c.gateway.apply_rate_limit_overrides(&v)
        {
            errors.push(format!(
                "ADVANCIA_RATE_LIMITS: {e} (expected group=N/unit pairs, e.g. payments=1000/min,default=50/s)"
            ));
        }
        if let Some(v) = var("ADVANCIA_REDIS_URL") {
            if v.starts_with("redis://") || v.starts_with("rediss://") {
                c.redis_url = Some(v);
            } else {
                // May carry a password: never echoed.
                errors.push(
                    "ADVANCIA_REDIS_URL: not a redis:// or rediss:// URL (expected e.g. redis://127.0.0.1:6379)"
                        .into(),
                );
            }
        }
        if let Some(v) = var("ADVANCIA_REDIS_PREFIX") {
            c.redis_prefix = v;
        }
        if let Some(v) = var("ADVANCIA_CORS_ORIGINS") {
            let mut origins = Vec::new();
            for o in v.split(',').map(str::trim) {
                match o.parse() {
                    Ok(h) if o.starts_with("http://") || o.starts_with("https://") => {
                        origins.push(h)
                    }
                    _ => errors.push(format!(
                        "ADVANCIA_CORS_ORIGINS: bad origin `{o}` (expected comma-separated scheme://host[:port])"
                    )),
                }
            }
            c.gateway.cors_origins = origins;
        }
        let mut num = |k: &str| -> Option<u64> {
            let v = var(k)?;
            match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.push(format!("{k}: `{v}` is not a whole number"));
                    None
                }
            }
        };
        if let Some(n) = num("ADVANCIA_TRUSTED_PROXY_HOPS") {
            c.gateway.trusted_proxy_hops = n as usize;
        }
        if let Some(n) = num("ADVANCIA_REQUEST_TIMEOUT_SECS") {
            c.gateway.request_timeout = Duration::from_secs(n.max(1));
        }
        if let Some(n) = num("ADVANCIA_BODY_LIMIT_BYTES") {
            c.gateway.body_limit_bytes = n as usize;
        }
        if let Some(n) = num("ADVANCIA_UPLOAD_LIMIT_BYTES") {
            c.gateway.upload_limit_bytes = n as usize;
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }
}

/// The agents' task bus on NATS JetStream (several API replicas then share the queue).
pub async fn agents_nats_bus(nats: &settings::NatsSettings) -> anyhow::Result<advancia_bus::Bus> {
    let config = advancia_bus::nats::NatsConfig::new(
        nats.url.clone(),
        nats.stream.clone(),
        // Agent tasks, and the services' domain events the dispatcher publishes.
        vec!["agents.>".into(), "events.>".into()],
    );
    let bus = advancia_bus::nats::NatsBus::connect(&config)
        .await
        // The URL may carry credentials: name the setting, not the value.
        .map_err(|e| anyhow::anyhow!("ADVANCIA_NATS_URL: cannot connect ({e})"))?;
    tracing::info!(stream = %config.stream, "agents use NATS JetStream");
    Ok(std::sync::Arc::new(bus))
}

/// The workers that make the services follow the chain and each other by themselves
/// (ADR 0023), for the services `state` runs, each until `shutdown` fires:
/// - `chain-probe`: asks the Solana node for its slot every second (its circuit breaker);
/// - `payments-lifecycle`: moves every intent as the chain does (payments);
/// - `ledger-posting`: the posting rules, from the indexer's stream into the ledger (ledger);
/// - `notifications-delivery`: sends what notifications queued (notifications);
/// - `notifications-events`: payments', facilities' and KYC's events into notifications;
/// - `outbox-dispatch`: the services' outboxes to the event bus;
/// - `analytics-rollup`: the rollups, from the indexer's stream and the payments outbox
///   (analytics).
pub fn followers(
    state: &AppState,
    shutdown: &ops::Shutdown,
) -> Vec<(&'static str, futures_util::future::BoxFuture<'static, ()>)> {
    use futures_util::FutureExt;
    let mut out = Vec::new();
    let services = &state.enabled_services;
    if services.has("payments") || services.has("blockchain") {
        // Keeps the node's circuit breaker current while no request calls the node.
        let chain = state.chain.clone();
        let stop = shutdown.wait();
        out.push((
            "chain-probe",
            async move { chain.probe(Duration::from_secs(1), stop).await }.boxed(),
        ));
    }
    if services.has("payments") {
        let lifecycle = state.payments.lifecycle();
        let stop = shutdown.wait();
        out.push((
            "payments-lifecycle",
            lifecycle.run(Default::default(), stop).boxed(),
        ));
        // The checkout pages' live status, pushed from the payments outbox.
        out.push((
            "checkout-feed",
            state
                .checkout
                .clone()
                .run(
                    state.pool.clone(),
                    state.payments.pool().clone(),
                    shutdown.wait(),
                )
                .boxed(),
        ));
    }
    if services.has("ledger") {
        use advancia_ledger::projection::Projection;
        let solana = Projection::new(
            state.ledger.clone(),
            advancia_indexer::SOLANA,
            state.chain.clone(),
        );
        let register = |chain: &str, stats| {
            if let Ok(mut all) = state.ledger_posting.lock() {
                all.push((chain.to_owned(), stats));
            }
        };
        register(solana.chain(), solana.stats());
        out.push((
            "ledger-posting",
            solana
                .run(state.pool.clone(), Duration::from_secs(30), shutdown.wait())
                .boxed(),
        ));
        if let Some(assets) = state.cosmos_assets.clone() {
            let chain = assets.chain().to_owned();
            let cosmos = Projection::new(state.ledger.clone(), chain.clone(), assets);
            register(&chain, cosmos.stats());
            out.push((
                "ledger-posting-cosmos",
                cosmos
                    .run(state.pool.clone(), Duration::from_secs(30), shutdown.wait())
                    .boxed(),
            ));
        }
    }
    if services.has("analytics") {
        // Each log is read on a pool of its own (its database may be another one), so the
        // cursor's transaction in analytics' database never waits for a connection of the
        // same pool to read the source.
        let own_pool = |of: &PgPool| {
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(3)
                .connect_lazy_with((*of.connect_options()).clone())
        };
        let rollup = advancia_analytics::Rollup::new(
            state.analytics_pool.clone(),
            own_pool(&state.pool),
            advancia_outbox::OutboxLog::new(
                own_pool(state.payments.pool()),
                advancia_payments::OUTBOX,
            ),
        );
        out.push(("analytics-rollup", rollup.run(shutdown.wait()).boxed()));
    }
    // Producers' outboxes: (source, its database).
    let mut outboxes = Vec::new();
    if services.has("payments") {
        outboxes.push((advancia_payments::OUTBOX, state.payments.pool().clone()));
    }
    if services.has("facilities") {
        outboxes.push((advancia_facilities::OUTBOX, state.facilities.pool().clone()));
    }
    if services.has("kyc") {
        outboxes.push((advancia_kyc::OUTBOX, state.kyc.pool().clone()));
    }
    if services.has("notifications") {
        // Delivery: webhooks, in-app and the configured channels, woken by new rows.
        match state.notification_channels.channels(&state.notifications) {
            Ok(channels) => {
                let svc = state.notifications.clone();
                let stop = shutdown.wait();
                out.push((
                    "notifications-delivery",
                    async move {
                        if let Err(e) = advancia_notifications::config::run_background(
                            svc,
                            channels,
                            Default::default(),
                            stop,
                        )
                        .await
                        {
                            tracing::error!(error = %e, "notification delivery stopped");
                        }
                    }
                    .boxed(),
                ));
            }
            Err(e) => tracing::error!(error = %e, "notification channels; delivery not started"),
        }
        // Each producer's events become notifications, pushed by its commits.
        let staff: Arc<dyn advancia_notifications::events::StaffDirectory> =
            Arc::new(ports::FacilityStaff(state.facilities.clone()));
        for (source, pool) in &outboxes {
            let log = advancia_outbox::OutboxLog::new(pool.clone(), *source);
            out.push((
                "notifications-events",
                advancia_notifications::events::follow(
                    state.notifications.clone(),
                    staff.clone(),
                    log,
                    shutdown.wait(),
                )
                .boxed(),
            ));
        }
    }
    if !outboxes.is_empty() {
        let dispatcher =
            advancia_outbox::Dispatcher::over(state.pool.clone(), state.bus.clone(), outboxes);
        out.push(("outbox-dispatch", dispatcher.run(shutdown.wait()).boxed()));
    }
    out
}

/// The gateway's own tables (schema `api`): idempotency records.
pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "api",
    migrations: &[
        advancia_db::Migration {
            version: 1,
            name: "idempotency",
            sql: include_str!("../migrations/0001_idempotency.sql"),
        },
        advancia_db::Migration {
            version: 2,
            name: "checkout_cursors",
            sql: include_str!("../migrations/0002_checkout_cursors.sql"),
        },
    ],
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
        &advancia_analytics::MIGRATIONS,
        &advancia_agents::MIGRATIONS,
        &advancia_kyc::MIGRATIONS,
        &advancia_outbox::MIGRATIONS,
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

pub use ops::ready;

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "No such route")
}

/// The routes without gateway layers (tests of single handlers use this): the enabled
/// services' route groups plus health, readiness and the API reference.
pub fn routes(state: AppState) -> Router {
    // Serialised once: the document only changes with the binary.
    let doc = axum::body::Bytes::from(serde_json::to_vec(&openapi::document()).unwrap_or_default());
    let on = |name: &str| state.enabled_services.has(name);
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc,
                    )
                }
            }),
        )
        .route("/api/v1/docs", get(openapi::docs_page))
        .route(
            "/api/v1/docs/swagger-ui-bundle.js",
            get(openapi::docs_bundle),
        )
        .route("/api/v1/docs/swagger-ui.css", get(openapi::docs_css))
        .route("/api/v1/docs/init.js", get(openapi::docs_init));
    if on("auth") {
        router = router.merge(routes::auth::router());
    }
    if on("indexer") {
        router = router.merge(routes::indexer::router());
    }
    if on("facilities") {
        router = router.merge(routes::facilities::router());
    }
    if on("notifications") {
        router = router.merge(routes::notifications::router());
    }
    if on("kyc") {
        router = router.merge(routes::kyc::router());
    }
    if on("analytics") {
        router = router.merge(routes::analytics::router());
    }
    if on("agents") {
        router = router.merge(routes::agents::router());
    }
    if on("ledger") {
        router = router.merge(money_moving(routes::ledger::router(), &state));
    }
    if on("payments") {
        router = router.merge(money_moving(routes::payments::router(), &state));
        router = router.merge(routes::checkout::router());
    }
    if on("blockchain") {
        router = router.merge(money_moving(routes::blockchain::router(), &state));
    }
    router.fallback(not_found).with_state(state)
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
    app_with_metrics(state, config, None).await
}

/// [`app`] with request metrics (golden signals per matched route) recorded in `metrics`.
pub async fn app_with_metrics(
    state: AppState,
    config: ApiConfig,
    metrics: Option<observe::HttpMetrics>,
) -> anyhow::Result<Router> {
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
    let edge_state = state.clone();
    // Identify runs before rate limiting so limits key on the verified caller.
    let inner = gateway::with_rate_limit(routes(state), &config.gateway, limiter).layer(
        axum::middleware::from_fn_with_state(identify, principal::identify),
    );
    // Solana Actions answer every origin and carry their headers; wallet errors carry
    // `message` (outside the gateway's CORS layer, which admits configured origins only).
    let outer = gateway::apply_outer(inner, config.gateway).layer(
        axum::middleware::from_fn_with_state(edge_state, routes::checkout::wallet_edge),
    );
    // Outermost, so rejected, rate-limited and timed-out requests are counted too; added
    // with `Router::layer`, it sees each request's `MatchedPath`.
    Ok(match metrics {
        Some(m) => outer.layer(axum::middleware::from_fn_with_state(m, observe::track)),
        None => outer,
    })
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
