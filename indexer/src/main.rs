//! `advancia-indexer`: runs the indexer against a Solana JSON-RPC URL (or, with `cosmos`, a
//! CometBFT node) until stopped.

use std::time::Duration;

use advancia_indexer::cosmos::{CosmosConfig, CosmosIndexer};
use advancia_indexer::evm::{EvmConfig, EvmIndexer};
use advancia_indexer::{Commitment, Indexer, IndexerConfig};
use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Index advancia-pay events from Solana, CosmWasm or EVM chains into Postgres")]
struct Args {
    /// Solana JSON-RPC URL.
    #[arg(long, env = "SOLANA_RPC_URL", default_value = "http://127.0.0.1:8899")]
    rpc_url: String,
    /// Ingest at `confirmed` (then follow to `finalized`) or only at `finalized`.
    #[arg(long, default_value = "confirmed", value_parser = ["confirmed", "finalized"])]
    commitment: String,
    /// Transactions per database transaction.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Poll interval in milliseconds.
    #[arg(long, default_value_t = 400)]
    poll_ms: u64,
    /// Run one pass and exit.
    #[arg(long)]
    once: bool,
    /// Serve Prometheus metrics on `http://<addr>/metrics` (port 0: any free port).
    #[arg(
        long,
        env = "ADVANCIA_INDEXER_METRICS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    metrics_addr: std::net::SocketAddr,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Sink benchmark in a database of its own (DATABASE_URL is the admin connection):
    /// events/s through the batched sink vs. the per-row sink vs. COPY of the same rows.
    Bench {
        #[arg(long, default_value_t = 40_000)]
        transactions: usize,
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        #[arg(long, default_value_t = 4_000)]
        per_row_transactions: usize,
    },
    /// Index the advancia-pay CosmWasm contract from a CometBFT node instead; `--once`,
    /// `--poll-ms` and `--metrics-addr` apply.
    Cosmos {
        /// CometBFT JSON-RPC URL.
        #[arg(
            long,
            env = "COMETBFT_RPC_URL",
            default_value = "http://127.0.0.1:26657"
        )]
        comet_url: String,
        /// Bech32 address of the contract.
        #[arg(long, env = "ADVANCIA_COSMWASM_CONTRACT")]
        contract: String,
        /// First height to read when there is no cursor yet.
        #[arg(long, default_value_t = 1)]
        start_height: u64,
        /// Confirmation depth in blocks (CometBFT is final at once).
        #[arg(long, default_value_t = 0)]
        depth: u64,
    },
    /// Index the AdvanciaBridge contract on an EVM chain (bridge messages and its admin
    /// events); `--once`, `--poll-ms` and `--metrics-addr` apply.
    Evm {
        /// EVM JSON-RPC URL.
        #[arg(long, env = "EVM_RPC_URL", default_value = "http://127.0.0.1:8545")]
        evm_url: String,
        /// Address of the bridge contract.
        #[arg(long, env = "ADVANCIA_EVM_BRIDGE")]
        bridge: alloy::primitives::Address,
        /// First block to read when there is no cursor yet (the deployment block).
        #[arg(long, default_value_t = 0)]
        start_block: u64,
        /// Blocks on top of a block before its rows are final.
        #[arg(long, default_value_t = 12)]
        depth: u64,
    },
}

/// Serves `$indexer.metrics()` on `--metrics-addr`, then runs `$indexer.step()` every
/// `--poll-ms` (once with `--once`) until Ctrl-C / SIGTERM, logging the reports `$r` for which
/// `$busy` holds. A macro: the step borrows the indexer mutably for some sources.
macro_rules! serve_steps {
    ($args:ident, $indexer:ident, $r:ident => $busy:expr) => {{
        let (addr, _server) =
            advancia_indexer::metrics::serve($args.metrics_addr, $indexer.metrics())
                .await
                .with_context(|| format!("binding the metrics address {}", $args.metrics_addr))?;
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
        let shutdown = advancia_db::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            match $indexer.step().await {
                Ok($r) if $busy => tracing::info!(report = ?$r, "step"),
                Ok(_) => {}
                Err(e) => {
                    $indexer.metrics().count_error(&e);
                    tracing::warn!(error = %e, "step failed; retrying")
                }
            }
            if $args.once {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis($args.poll_ms)) => {}
                _ = &mut shutdown => return Ok(()),
            }
        }
    }};
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Text or JSON logs (ADVANCIA_LOG_FORMAT), OTLP traces when configured.
    let _telemetry = advancia_telemetry::init_from_env("advancia-indexer", "info")?;
    let args = Args::parse();
    if let Some(Command::Bench {
        transactions,
        batch_size,
        per_row_transactions,
    }) = args.command
    {
        let report = advancia_indexer::bench::run(&advancia_indexer::bench::BenchOptions {
            transactions,
            batch_size,
            per_row_transactions,
        })
        .await?;
        println!("{}", report.summary());
        return Ok(());
    }
    let pool = advancia_db::DbConfig::from_env()
        .connect()
        .await
        .context("connecting to Postgres")?;
    advancia_db::migrate(&pool, &[&advancia_indexer::MIGRATIONS]).await?;
    if let Some(Command::Cosmos {
        comet_url,
        contract,
        start_height,
        depth,
    }) = args.command
    {
        let config = CosmosConfig {
            start_height,
            depth,
            ..CosmosConfig::new(comet_url, contract)
        };
        let mut indexer = CosmosIndexer::connect(pool, config).await?;
        tracing::info!(source = indexer.source(), "cosmos source");
        serve_steps!(args, indexer, r => r.heights > 0)
    }
    if let Some(Command::Evm {
        evm_url,
        bridge,
        start_block,
        depth,
    }) = args.command
    {
        let config = EvmConfig {
            start_block,
            depth,
            ..EvmConfig::new(evm_url, bridge)
        };
        let indexer = EvmIndexer::connect(pool, config).await?;
        tracing::info!(source = indexer.source(), "evm source");
        serve_steps!(args, indexer, r => r.transactions + r.finalized + r.undone
            > 0)
    }
    let mut config = IndexerConfig::new(args.rpc_url);
    config.batch_size = args.batch_size;
    if args.commitment == "finalized" {
        config.commitment = Commitment::Finalized;
    }
    let mut indexer = Indexer::new(pool, config);
    // Stops between steps (each step's batches commit with their cursor either way).
    serve_steps!(args, indexer, r => r.transactions + r.finalized + r.undone > 0)
}
