use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use advancia_api::AppState;
use advancia_api::observe::HttpMetrics;
use advancia_api::ops::{Shutdown, Workers};
use advancia_api::settings::{ServeConfig, Settings};
use advancia_auth::AuthService;
use advancia_db::DbConfig;
use advancia_telemetry::{Registry, TelemetryConfig};
use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "advancia",
    version,
    about = "Advancia Pay Ledger API and services"
)]
struct Cli {
    /// TOML configuration file; environment variables override it, flags override both.
    #[arg(long, global = true, env = "ADVANCIA_CONFIG")]
    config: Option<PathBuf>,
    /// Development: plain-http links (from the listen address when ADVANCIA_PUBLIC_URL is
    /// unset) and webhooks. Without it, serve needs an https ADVANCIA_PUBLIC_URL.
    #[arg(long, global = true)]
    dev: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve the API until SIGINT/SIGTERM.
    Serve {
        /// API address (setting ADVANCIA_LISTEN, default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Prometheus `/metrics` address, or `off` (ADVANCIA_METRICS_LISTEN, default
        /// 127.0.0.1:9465).
        #[arg(long)]
        metrics_listen: Option<String>,
        /// Services to run, e.g. `payments,ledger` (ADVANCIA_SERVICES, default all).
        #[arg(long)]
        services: Option<String>,
        /// Do not apply migrations at start-up (run `advancia migrate` separately).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending migrations of every service and exit.
    Migrate,
    /// Validate the configuration (file, environment) and exit: 0 when valid, 2 otherwise.
    CheckConfig,
    /// Operator bootstrap: accounts and roles without an existing admin (audited in
    /// auth.events with the OS user who ran it).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an account with roles (default `admin`); the password is read from the first
    /// line of standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Operator")]
        display_name: String,
        /// Repeat for several roles: patient, provider, facility_admin,
        /// compliance_officer, partner, admin.
        #[arg(long = "role", default_values_t = vec!["admin".to_owned()])]
        roles: Vec<String>,
    },
    /// Add roles to an existing account.
    GrantRole {
        #[arg(long)]
        email: String,
        /// Repeat for several roles.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
}

/// Exit status for configuration errors (distinct from runtime failures).
const BAD_CONFIG: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match Settings::load(cli.config.as_deref(), |k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("advancia: {e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    if cli.dev {
        settings.set_flag(advancia_api::settings::DEV_FLAG, "true");
    }
    let result = match cli.command {
        Command::Migrate => migrate(&settings).await,
        Command::Admin { command } => admin(&settings, command).await,
        Command::CheckConfig => match ServeConfig::from_settings(&settings) {
            Ok(c) => {
                println!(
                    "configuration valid: listen {}, services {}",
                    c.listen,
                    c.services.names().join(",")
                );
                Ok(())
            }
            Err(e) => {
                eprintln!("advancia: {e}");
                return ExitCode::from(BAD_CONFIG);
            }
        },
        Command::Serve {
            listen,
            metrics_listen,
            services,
            no_migrate,
        } => {
            for (name, v) in [
                ("ADVANCIA_LISTEN", listen),
                ("ADVANCIA_METRICS_LISTEN", metrics_listen),
                ("ADVANCIA_SERVICES", services),
            ] {
                if let Some(v) = v {
                    settings.set_flag(name, v);
                }
            }
            let config = match ServeConfig::from_settings(&settings) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("advancia: {e}");
                    return ExitCode::from(BAD_CONFIG);
                }
            };
            serve(config, no_migrate).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let telemetry = TelemetryConfig::from_vars(|k| settings.get(k), "advancia").unwrap_or_default();
    let _ = advancia_telemetry::init(&telemetry, "info,sqlx::postgres::notice=warn");
    let db = DbConfig::new(
        settings
            .get("DATABASE_URL")
            .unwrap_or_else(|| advancia_db::DEFAULT_DATABASE_URL.into()),
    );
    let pool = db.connect().await.context("connecting to Postgres")?;
    let mut separate = Vec::new();
    for (schema, _) in advancia_api::ServiceDatabases::SEPARABLE {
        let key = advancia_api::ServiceDatabases::setting(schema);
        if let Some(url) = settings.get(key).filter(|u| !u.trim().is_empty()) {
            let own = DbConfig::new(url)
                .connect()
                .await
                .with_context(|| format!("connecting to {key}"))?;
            separate.push((schema, own));
        }
    }
    let applied = advancia_api::ServiceDatabases::migrate(&pool, &separate).await?;
    println!(
        "migrations: {applied} applied ({} services in databases of their own)",
        separate.len()
    );
    Ok(())
}

/// The OS user running an operator command, for the audit trail.
fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user} (advancia admin)")
}

fn parse_roles(names: &[String]) -> anyhow::Result<Vec<advancia_auth::Role>> {
    names
        .iter()
        .map(|n| {
            advancia_auth::Role::parse(n).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown role `{n}` (expected patient, provider, facility_admin, compliance_officer, partner or admin)"
                )
            })
        })
        .collect()
}

async fn admin(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    let db = DbConfig::new(
        settings
            .get("DATABASE_URL")
            .unwrap_or_else(|| advancia_db::DEFAULT_DATABASE_URL.into()),
    );
    let pool = db.connect().await.context("connecting to Postgres")?;
    // Only what this command writes: the other services may live in databases of their own.
    advancia_db::migrate(&pool, &[&advancia_auth::MIGRATIONS])
        .await
        .context("applying migrations")?;
    let config = advancia_auth::AuthConfig::from_vars(|k| settings.get(k))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // This command issues no tokens: throwaway signing keys are enough.
    let auth = AuthService::new(pool, config, advancia_auth::SigningKeys::generate())
        .context("auth configuration")?;
    let user = match command {
        AdminCommand::Create {
            email,
            display_name,
            roles,
        } => {
            let roles = parse_roles(&roles)?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            if password.is_empty() {
                anyhow::bail!(
                    "no password on standard input (pipe it in: the first line is the password)"
                );
            }
            auth.create_user_as_operator(
                advancia_auth::RegisterRequest {
                    email,
                    password,
                    display_name,
                },
                roles,
                &operator(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
        }
        AdminCommand::GrantRole { email, roles } => {
            let roles = parse_roles(&roles)?;
            auth.grant_roles_as_operator(&email, roles, &operator())
                .await
                .map_err(|e| match e {
                    advancia_auth::AuthError::NotFound => {
                        anyhow::anyhow!("no account has the address {email}")
                    }
                    e => anyhow::anyhow!("{e}"),
                })?
        }
    };
    let roles: Vec<String> = user.roles.iter().map(|r| r.as_str().to_owned()).collect();
    println!(
        "{} {} roles={}",
        user.id,
        user.email.unwrap_or_default(),
        roles.join(",")
    );
    Ok(())
}

async fn serve(config: ServeConfig, no_migrate: bool) -> anyhow::Result<()> {
    let telemetry =
        advancia_telemetry::init(&config.telemetry, "info,sqlx::postgres::notice=warn")?;
    let services = config.services.clone();
    let pool = config.db.pool()?;
    let mut separate = Vec::new();
    for (schema, db) in &config.service_dbs {
        tracing::info!(service = schema, database = %advancia_db::redact_url(&db.url), "a database of its own");
        separate.push((*schema, db.pool()?));
    }
    if !no_migrate {
        // Readiness reports the database later; serving starts only on a known schema.
        advancia_api::ServiceDatabases::migrate(&pool, &separate)
            .await
            .context("applying migrations")?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;

    // One signal for the server and every worker, installed before anything serves.
    let shutdown = Shutdown::new();
    {
        let s = shutdown.clone();
        tokio::spawn(async move {
            advancia_db::shutdown_signal().await;
            s.trigger();
        });
    }
    let mut workers = Workers::default();

    // Idempotency records are kept for 24 hours, purged hourly.
    let purge_pool = pool.clone();
    let stop = shutdown.wait();
    workers.spawn("idempotency-purge", async move {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            let day = Duration::from_secs(86_400);
            if let Err(e) = advancia_api::idempotency::purge_expired(&purge_pool, day).await {
                tracing::warn!(error = %e, "idempotency purge failed");
            }
        }
    });

    let auth =
        AuthService::new(pool.clone(), config.auth, config.keys).context("auth configuration")?;
    let ledger_pool = separate
        .iter()
        .find(|(s, _)| *s == "ledger")
        .map_or_else(|| pool.clone(), |(_, p)| p.clone());
    let ledger = advancia_ledger::Ledger::new(ledger_pool, Default::default());
    if services.has("ledger") {
        // Pending transfers with a timeout lapse on their own. Each run is one database
        // transaction, so stopping it between or inside runs loses nothing.
        let expiry = ledger.spawn_expiry_task(Duration::from_secs(1));
        let stop = shutdown.wait();
        workers.spawn("ledger-expiry", async move {
            stop.await;
            expiry.abort();
        });
    }
    tracing::info!(solana_rpc = %advancia_db::redact_url(&config.chain.solana_rpc_url), "chain services");
    let mut chain = config.chain;
    chain.notification_channels = config.channels.clone();
    chain.databases = advancia_api::ServiceDatabases::from_pools(&separate);
    let mut state = AppState::new(pool.clone(), auth, ledger, chain)
        .with_services(services.clone())
        .with_readiness(config.readiness);
    if services.has("notifications") {
        // Refuse bad channel settings at start-up; the delivery worker runs with the
        // followers below.
        config.channels.channels(&state.notifications)?;
    }

    if services.has("agents") {
        // Agents: the in-process bus by default, NATS JetStream when configured; task
        // workers and the requeue sweeper (queued but never claimed tasks) run beside the API.
        if let Some(nats) = &config.nats {
            let bus = advancia_api::agents_nats_bus(nats).await?;
            state.bus = bus.clone();
            state.agents = advancia_agents::AgentService::new(
                state.pool.clone(),
                bus,
                state.agents.llm_client().cloned(),
            )
            .with_payments_pool(state.payments.pool().clone());
        }
        let handles = advancia_agents::worker::spawn_workers(
            &state.agents,
            advancia_agents::worker::WorkerConfig::default(),
        )
        .await
        .context("starting agent workers")?;
        let sweeper =
            advancia_agents::worker::spawn_requeue(&state.agents, Duration::from_secs(15));
        let stop = shutdown.wait();
        workers.spawn("agents", async move {
            stop.await;
            for h in handles {
                h.abort();
            }
            sweeper.abort();
        });
    }
    if services.has("kyc") {
        // KYC expiry sweeps and, with the compliance key configured, attestations.
        let task = advancia_api::routes::kyc::spawn_background(
            &state,
            config.compliance_keypair.as_deref(),
            shutdown.wait(),
        )
        .map_err(anyhow::Error::msg)?;
        workers.spawn("kyc", async move {
            let _ = task.await;
        });
    }
    if services.has("facilities") {
        // Certification reminders (facilities outbox → compliance staff notifications),
        // hourly; each run writes at most one row per certification and expiry date.
        let days = config.cert_expiry_days;
        let facilities = state.facilities.clone();
        let stop = shutdown.wait();
        workers.spawn("certification-expiry", async move {
            facilities
                .run_expiry_schedule(days, Duration::from_secs(3600), stop)
                .await
        });
    }

    // The services follow the chain and each other's outboxes by themselves (ADR 0023).
    for (name, task) in advancia_api::followers(&state, &shutdown) {
        workers.spawn(name, task);
    }

    let registry = Registry::new("advancia", env!("CARGO_PKG_VERSION"));
    let http_metrics = HttpMetrics::new(registry);
    let metrics_task = match config.metrics_listen {
        Some(addr) => {
            let (bound, task) = advancia_telemetry::metrics::serve(
                addr,
                advancia_api::observe::render(
                    &http_metrics,
                    advancia_api::observe::Databases::of(&state),
                    state.ledger_posting.clone(),
                ),
            )
            .await
            .with_context(|| format!("binding the metrics address {addr}"))?;
            tracing::info!(%bound, "metrics on http://{bound}/metrics");
            Some(task)
        }
        None => None,
    };

    let app = advancia_api::app_with_metrics(state, config.api, Some(http_metrics)).await?;
    tracing::info!(listen = %config.listen, services = %services.names().join(","), "advancia API listening");
    let drained =
        advancia_api::ops::serve_with_drain(listener, app, shutdown.wait(), config.drain).await?;
    // Workers were told to stop with the server; give them the same deadline.
    let late = workers.join(config.drain).await;
    if let Some(t) = metrics_task {
        t.abort();
    }
    if !drained {
        tracing::warn!(
            drain_secs = config.drain.as_secs(),
            "drain deadline passed; remaining requests cut off"
        );
    }
    if !late.is_empty() {
        tracing::warn!(workers = ?late, "workers still running at the drain deadline were aborted");
    }
    tracing::info!("shut down cleanly");
    telemetry.shutdown(Duration::from_secs(3)).await;
    Ok(())
}
