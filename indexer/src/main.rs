//! `advancia-indexer`: runs the indexer against a Solana JSON-RPC URL until stopped.

use std::time::Duration;

use advancia_indexer::{Commitment, Indexer, IndexerConfig};
use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Index advancia-pay events from Solana into Postgres and feed the ledger")]
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
    /// Do not feed the ledger.
    #[arg(long)]
    no_ledger: bool,
    /// Run one pass and exit.
    #[arg(long)]
    once: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let pool = advancia_db::DbConfig::from_env()
        .connect()
        .await
        .context("connecting to Postgres")?;
    advancia_db::migrate(
        &pool,
        &[&advancia_ledger::MIGRATIONS, &advancia_indexer::MIGRATIONS],
    )
    .await?;
    let mut config = IndexerConfig::new(args.rpc_url);
    config.batch_size = args.batch_size;
    if args.commitment == "finalized" {
        config.commitment = Commitment::Finalized;
    }
    let ledger = (!args.no_ledger).then(|| {
        advancia_ledger::Ledger::new(pool.clone(), advancia_ledger::LedgerConfig::default())
    });
    let mut indexer = Indexer::new(pool, config, ledger);
    loop {
        match indexer.step().await {
            Ok(r) if r.transactions + r.finalized + r.undone + r.fed > 0 => {
                tracing::info!(?r, "step")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "step failed; retrying"),
        }
        if args.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(args.poll_ms)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
