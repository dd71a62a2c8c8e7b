use std::net::SocketAddr;

use advancia_api::{ApiConfig, AppState, all_migrations};
use advancia_auth::{AuthConfig, AuthService, SigningKeys};
use advancia_db::DbConfig;
use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "advancia",
    version,
    about = "Advancia Pay Ledger API and services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve the API until SIGINT/SIGTERM.
    Serve {
        #[arg(long, env = "ADVANCIA_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Do not apply migrations at start-up (run `advancia migrate` separately).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending migrations of every service and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn")
            }),
        )
        .init();
    let cli = Cli::parse();
    let db = DbConfig::from_env();
    match cli.command {
        Command::Migrate => {
            let pool = db.connect().await.context("connecting to Postgres")?;
            let report = advancia_db::migrate(&pool, &all_migrations()).await?;
            println!(
                "migrations: {} applied, {} already present",
                report.applied.len(),
                report.already_applied
            );
        }
        Command::Serve { listen, no_migrate } => {
            let config = ApiConfig::from_env().map_err(anyhow::Error::msg)?;
            let pool = db.pool()?;
            if !no_migrate {
                // Readiness reports the database later; serving starts only on a known schema.
                advancia_db::migrate(&pool, &all_migrations())
                    .await
                    .context("applying migrations")?;
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(%listen, "advancia API listening");
            // Idempotency records are kept for 24 hours, purged hourly.
            let purge_pool = pool.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
                loop {
                    tick.tick().await;
                    let day = std::time::Duration::from_secs(86_400);
                    if let Err(e) = advancia_api::idempotency::purge_expired(&purge_pool, day).await
                    {
                        tracing::warn!(error = %e, "idempotency purge failed");
                    }
                }
            });
            let auth = AuthService::new(
                pool.clone(),
                AuthConfig::from_env().context("auth configuration")?,
                SigningKeys::from_env().context("auth signing keys")?,
            )
            .context("auth configuration")?;
            let ledger = advancia_ledger::Ledger::new(pool.clone(), Default::default());
            // Pending transfers with a timeout lapse on their own.
            ledger.spawn_expiry_task(std::time::Duration::from_secs(1));
            let services =
                advancia_api::ServicesConfig::from_env(config.gateway.trusted_proxy_hops)
                    .map_err(anyhow::Error::msg)?;
            tracing::info!(solana_rpc = %services.solana_rpc_url, "chain services");
            let state = AppState::new(pool, auth, ledger, services);
            // KYC expiry sweeps and, with the compliance key configured, attestations.
            advancia_api::routes::kyc::spawn_background(&state).map_err(anyhow::Error::msg)?;
            // Notification delivery (outbox) and payment-event reader, beside the API.
            let channels = advancia_notifications::config::ChannelsConfig::from_env()
                .map_err(anyhow::Error::msg)?
                .channels(&state.notifications)?;
            tokio::spawn(advancia_notifications::config::run_background(
                state.notifications.clone(),
                channels,
                Default::default(),
                advancia_db::shutdown_signal(),
            ));
            let app = advancia_api::app(state, config).await?;
            advancia_api::serve(listener, app, advancia_db::shutdown_signal()).await?;
            tracing::info!("shut down cleanly");
        }
    }
    Ok(())
}
