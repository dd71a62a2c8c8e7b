//! `advancia-relayer`: the bridge's validator and relayer nodes, and operator commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use advancia_db::DbConfig;
use advancia_relayer::attestation::AttestationDir;
use advancia_relayer::keys::SigningKey;
use advancia_relayer::relayer::{Relayer, RelayerConfig};
use advancia_relayer::source::{EvmSource, SolanaRpcSource};
use advancia_relayer::store::Store;
use advancia_relayer::validator::{AnyDestination, EvmDestination, Validator};
use advancia_relayer::{MIGRATIONS, metrics, validator_http};
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "advancia-relayer",
    about = "Advancia bridge validator and relayer nodes"
)]
struct Cli {
    #[arg(long, env = "DATABASE_URL", default_value = advancia_db::DEFAULT_DATABASE_URL, global = true)]
    database_url: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Follow an EVM bridge's Dispatch events on this validator's own RPC and sign each
    /// final message into its own store; publish the attestations.
    Validator {
        /// Origin chain JSON-RPC URL (this validator's own node).
        #[arg(long)]
        rpc: String,
        /// Origin AdvanciaBridge address.
        #[arg(long)]
        bridge: Address,
        /// Blocks on top of a Dispatch before it is signed.
        #[arg(long, default_value_t = 12)]
        confirmations: u64,
        /// First block to scan when this validator has no cursor yet.
        #[arg(long, default_value_t = 0)]
        start_block: u64,
        #[command(flatten)]
        node: ValidatorNode,
    },
    /// Follow the Solana program's BridgeDispatched events in finalized transactions on this
    /// validator's own Solana RPC and sign each message into its own store; publish the
    /// attestations.
    SolanaValidator {
        /// Solana JSON-RPC URL (this validator's own node).
        #[arg(long)]
        rpc: String,
        /// The program's bridge `local_domain`.
        #[arg(long)]
        domain: u32,
        /// First slot to scan when this validator has no cursor yet.
        #[arg(long, default_value_t = 0)]
        start_slot: u64,
        #[command(flatten)]
        node: ValidatorNode,
    },
    /// Deliver attested messages to an EVM bridge.
    Relayer {
        /// Destination chain JSON-RPC URL.
        #[arg(long)]
        rpc: String,
        /// Destination AdvanciaBridge address.
        #[arg(long)]
        bridge: Address,
        /// Key file (32 bytes hex) of the account paying gas; else ADVANCIA_RELAYER_KEY.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// A validator's announced location (`http://…` or `file:///…`), repeatable: where
        /// attestations are read from.
        #[arg(long = "validator-location", required = true)]
        validator_locations: Vec<String>,
        /// With several relayers for this destination: this one's share, as INDEX/COUNT
        /// (e.g. 0/2); others' messages are taken over after --takeover-after-ms.
        #[arg(long)]
        share: Option<String>,
        #[arg(long, default_value_t = 30_000)]
        takeover_after_ms: u64,
        #[arg(long, default_value_t = 1)]
        confirmations: u64,
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
        #[arg(long, default_value_t = 1000)]
        backoff_base_ms: u64,
        #[arg(long, default_value_t = 300_000)]
        backoff_max_ms: u64,
        /// Serve Prometheus metrics at http://ADDR/metrics.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
    },
    /// Deliver attested messages to the Solana program's bridge inbox.
    SolanaRelayer {
        /// Solana JSON-RPC URL.
        #[arg(long)]
        rpc: String,
        /// The program's bridge `local_domain`.
        #[arg(long)]
        domain: u32,
        /// Solana keypair file (JSON array of 64 bytes) of the fee payer.
        #[arg(long)]
        keypair: PathBuf,
        /// A validator's announced location (`http://…` or `file:///…`), repeatable.
        #[arg(long = "validator-location", required = true)]
        validator_locations: Vec<String>,
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
        /// Serve Prometheus metrics at http://ADDR/metrics.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
    },
    /// List undelivered messages and why they are held up.
    Stuck {
        /// Only this destination domain.
        #[arg(long)]
        destination: Option<u32>,
        /// Only messages first seen at least this long ago.
        #[arg(long, default_value_t = 0.0)]
        older_than_secs: f64,
    },
    /// Apply the `bridge` schema migrations and exit.
    Migrate,
}

/// What every validator has besides its origin: destinations, key, its own store and its
/// own publication location.
#[derive(clap::Args)]
struct ValidatorNode {
    /// Destinations as DOMAIN=RPC_URL,BRIDGE_ADDRESS (EVM) or DOMAIN=solana:RPC_URL (repeatable).
    #[arg(long = "destination", required = true)]
    destinations: Vec<String>,
    /// Key file (32 bytes hex); else ADVANCIA_VALIDATOR_KEY.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// This validator's own store: `file:///dir` (embedded journal, no server) or
    /// `postgres://…` (its own database, shared with no other node).
    #[arg(long, env = "ADVANCIA_VALIDATOR_STORE")]
    store: String,
    /// Where signed attestations are published (served at --listen).
    #[arg(long)]
    attestations_dir: PathBuf,
    /// Serve /v1/announcement, /v1/attestations/…, /v1/observations, /metrics, /health.
    #[arg(long, default_value = "127.0.0.1:9300")]
    listen: SocketAddr,
    /// The location relayers are told to read from (this endpoint's public URL, or
    /// file:///… when relayers read the directory); default http://<listen>.
    #[arg(long)]
    announce_location: Option<String>,
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
}

impl ValidatorNode {
    async fn run<S: advancia_relayer::source::MessageSource + 'static>(
        self,
        source: S,
        start: u64,
    ) -> Result<()> {
        let key = SigningKey::load(self.key_file.as_deref(), "ADVANCIA_VALIDATOR_KEY")?;
        let destinations = self
            .destinations
            .iter()
            .map(|d| parse_destination(d))
            .collect::<Result<Vec<_>>>()?;
        if let Ok(shared) = std::env::var("DATABASE_URL")
            && shared == self.store
        {
            bail!("--store is the shared DATABASE_URL: a validator keeps its own store (ADR 0028)");
        }
        if let Some(path) = self.store.strip_prefix("file://") {
            let store = advancia_relayer::journal::JournalStore::open(path)?;
            self.serve(Validator::new(source, destinations, key, store, start))
                .await
        } else {
            let pool = DbConfig::new(self.store.clone()).connect().await?;
            advancia_db::migrate(&pool, &[&MIGRATIONS]).await?;
            self.serve(Validator::new(
                source,
                destinations,
                key,
                Store::new(pool),
                start,
            ))
            .await
        }
    }

    async fn serve<S, St>(self, validator: Validator<S, AnyDestination, St>) -> Result<()>
    where
        S: advancia_relayer::source::MessageSource + 'static,
        St: advancia_relayer::store::ValidatorStore + 'static,
    {
        let dir = AttestationDir::create(&self.attestations_dir)?;
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        let location = self
            .announce_location
            .unwrap_or_else(|| format!("http://{}", self.listen));
        let validator = std::sync::Arc::new(validator.publishing_to(dir.clone(), &location)?);
        let bound = validator_http::serve(listener, validator.clone(), dir)?;
        tracing::info!(validator = %validator.address(), %bound, %location, "validator serving its attestations");
        validator
            .run(
                Duration::from_millis(self.poll_ms),
                advancia_db::shutdown_signal(),
            )
            .await;
        Ok(())
    }
}

fn provider(url: &str) -> Result<DynProvider> {
    let url = url.parse().with_context(|| format!("RPC URL {url}"))?;
    Ok(ProviderBuilder::new().connect_http(url).erased())
}

/// `DOMAIN=RPC_URL,BRIDGE_ADDRESS` (an EVM bridge) or `DOMAIN=solana:RPC_URL` (the program).
fn parse_destination(spec: &str) -> Result<AnyDestination> {
    let (domain, rest) = spec
        .split_once('=')
        .context("destination is DOMAIN=RPC_URL,BRIDGE or DOMAIN=solana:RPC_URL")?;
    let domain: u32 = domain.parse().context("destination domain")?;
    if let Some(url) = rest.strip_prefix("solana:") {
        return Ok(AnyDestination::Solana(
            advancia_relayer::solana::SolanaDestination {
                domain,
                rpc: std::sync::Arc::new(
                    solana_rpc_client::nonblocking::rpc_client::RpcClient::new_with_commitment(
                        url.to_owned(),
                        solana_commitment_config::CommitmentConfig::confirmed(),
                    ),
                ),
            },
        ));
    }
    let (url, bridge) = rest
        .rsplit_once(',')
        .context("destination is DOMAIN=RPC_URL,BRIDGE or DOMAIN=solana:RPC_URL")?;
    Ok(AnyDestination::Evm(EvmDestination {
        domain,
        bridge: bridge.parse().context("destination bridge address")?,
        provider: provider(url)?,
    }))
}

/// Serves the delivery metrics of `domain` (backlog, latency, failures by reason, read from
/// the store) at `http://addr/metrics` in the background.
async fn serve_metrics(
    addr: SocketAddr,
    store: Store,
    domain: u32,
    gathered: Option<std::sync::Arc<advancia_relayer::gather::GatherMetrics>>,
    races_lost: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics at /metrics");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let store = store.clone();
            let gathered = gathered.clone();
            let races_lost = races_lost.clone();
            async move {
                let mut text = metrics::render(&store, domain)
                    .await
                    .map_err(|e| (axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                if let Some(g) = gathered {
                    text.push_str(&g.render(domain));
                }
                if let Some(r) = races_lost {
                    let name = "advancia_bridge_races_lost_total";
                    text.push_str(&format!(
                        "# HELP {name} Messages another relayer delivered first (no fee spent).\n# TYPE {name} counter\n{name}{{destination=\"{domain}\"}} {}\n",
                        r.load(std::sync::atomic::Ordering::Relaxed)
                    ));
                }
                Ok::<_, (axum::http::StatusCode, String)>(text)
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    // Logs on stderr: stdout carries command output (`stuck`).
    // Text or JSON (ADVANCIA_LOG_FORMAT), OTLP traces when configured (advancia-telemetry).
    let _telemetry =
        advancia_telemetry::init_from_env("advancia-relayer", "info,sqlx::postgres::notice=warn")?;
    let cli = Cli::parse();
    // Validators never touch the shared database: they have their own stores.
    let command = match cli.command {
        Cmd::Validator {
            rpc,
            bridge,
            confirmations,
            start_block,
            node,
        } => {
            let origin = provider(&rpc)?;
            let domain = u32::try_from(origin.get_chain_id().await?)
                .context("chain id is not a u32 domain")?;
            tracing::info!(origin = domain, %bridge, confirmations, "EVM-origin validator");
            let source = EvmSource::new(origin, bridge, domain, confirmations);
            return node.run(source, start_block).await;
        }
        Cmd::SolanaValidator {
            rpc,
            domain,
            start_slot,
            node,
        } => {
            tracing::info!(origin = domain, "Solana-origin validator");
            return node
                .run(SolanaRpcSource::new(rpc, domain), start_slot)
                .await;
        }
        other => other,
    };
    let pool = DbConfig::new(cli.database_url.clone()).connect().await?;
    advancia_db::migrate(&pool, &[&MIGRATIONS]).await?;
    let store = Store::new(pool.clone());

    match command {
        Cmd::Validator { .. } | Cmd::SolanaValidator { .. } => Ok(()),
        Cmd::Migrate => Ok(()),
        Cmd::SolanaRelayer {
            rpc,
            domain,
            keypair,
            validator_locations,
            poll_ms,
            metrics_listen,
        } => {
            // The keypair file's contents never reach a log or an error message.
            let payer = solana_keypair::read_keypair_file(&keypair).map_err(|_| {
                anyhow::anyhow!("cannot read a Solana keypair from {}", keypair.display())
            })?;
            let client = std::sync::Arc::new(
                solana_rpc_client::nonblocking::rpc_client::RpcClient::new_with_commitment(
                    rpc,
                    solana_commitment_config::CommitmentConfig::confirmed(),
                ),
            );
            let relayer =
                advancia_relayer::solana::SolanaRelayer::new(store.clone(), client, payer, domain)
                    .with_retry(Duration::from_millis(poll_ms.max(1)))
                    .with_attestations_from(&validator_locations)?;
            if let Some(addr) = metrics_listen {
                serve_metrics(addr, store, domain, relayer.attestation_metrics(), None).await?;
            }
            tracing::info!(domain, "solana relayer started");
            let shutdown = advancia_db::shutdown_signal();
            tokio::pin!(shutdown);
            loop {
                match relayer.step().await {
                    Ok(r) if !r.outcomes.is_empty() => {
                        tracing::info!(outcomes = ?r.outcomes, "step")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "step failed; retrying"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(poll_ms)) => {}
                    _ = &mut shutdown => return Ok(()),
                }
            }
        }
        Cmd::Relayer {
            rpc,
            bridge,
            key_file,
            validator_locations,
            share,
            takeover_after_ms,
            confirmations,
            poll_ms,
            backoff_base_ms,
            backoff_max_ms,
            metrics_listen,
        } => {
            let key = SigningKey::load(key_file.as_deref(), "ADVANCIA_RELAYER_KEY")?;
            let share = share
                .map(|s| -> Result<advancia_relayer::relayer::Share> {
                    let (index, count) = s.split_once('/').context("--share is INDEX/COUNT")?;
                    let (index, count): (u32, u32) = (index.parse()?, count.parse()?);
                    if index >= count {
                        bail!("--share {s}: index must be below count");
                    }
                    Ok(advancia_relayer::relayer::Share {
                        index,
                        count,
                        takeover_after: Duration::from_millis(takeover_after_ms),
                    })
                })
                .transpose()?;
            let config = RelayerConfig {
                share,
                confirmations,
                backoff_base: Duration::from_millis(backoff_base_ms),
                backoff_max: Duration::from_millis(backoff_max_ms),
                poll: Duration::from_millis(poll_ms),
                ..RelayerConfig::default()
            };
            let relayer = Relayer::connect(store.clone(), provider(&rpc)?, bridge, key, config)
                .await?
                .with_attestations_from(&validator_locations)?;
            let domain = relayer.domain();
            if let Some(addr) = metrics_listen {
                serve_metrics(
                    addr,
                    store.clone(),
                    domain,
                    relayer.attestation_metrics(),
                    Some(relayer.races_lost()),
                )
                .await?;
            }
            tracing::info!(destination = domain, %bridge, "relayer started");
            relayer.run(advancia_db::shutdown_signal()).await;
            Ok(())
        }
        Cmd::Stuck {
            destination,
            older_than_secs,
        } => {
            let stuck = store.stuck(destination, older_than_secs).await?;
            if stuck.is_empty() {
                println!("no undelivered messages");
                return Ok(());
            }
            println!(
                "{:<66}  {:>10}  {:>8}  {:>10}  {:<10}  {:>4}  {:>4}  {:>8}  reason",
                "id", "origin", "seq", "dest", "status", "try", "sigs", "age_s"
            );
            for s in &stuck {
                let reason = match (&s.last_reason, &s.last_detail) {
                    (Some(r), Some(d)) => format!("{r}: {d}"),
                    (Some(r), None) => r.clone(),
                    _ if s.status == "not queued" => {
                        "no relayer has queued it (is one running for this destination?)".into()
                    }
                    _ => "not attempted yet".into(),
                };
                let next = s
                    .next_attempt_in_secs
                    .filter(|n| *n > 0.0)
                    .map(|n| format!(" (next attempt in {n:.0}s)"))
                    .unwrap_or_default();
                println!(
                    "{:<66}  {:>10}  {:>8}  {:>10}  {:<10}  {:>4}  {:>4}  {:>8.0}  {reason}{next}",
                    s.id,
                    s.origin_domain,
                    s.sequence,
                    s.destination_domain,
                    s.status,
                    s.attempts,
                    s.signatures,
                    s.age_secs
                );
            }
            if stuck.iter().any(|s| s.status == "failed") {
                bail!("{} undelivered, some failed permanently", stuck.len());
            }
            Ok(())
        }
    }
}
