//! `advancia-ledger`: operator commands for the ledger (verify, rebuild, expire, bench).

use std::process::ExitCode;

use advancia_db::DbConfig;
use advancia_ledger::bench::{self, BenchOptions};
use advancia_ledger::{Ledger, LedgerConfig, MIGRATIONS};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "advancia-ledger", about = "Advancia double-entry ledger tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Walk the audit hash chain; exit 1 at the first altered, deleted or reordered row.
    Verify,
    /// Recompute balances from the transfer log and report differences.
    Rebuild {
        /// Write the recomputed balances back.
        #[arg(long)]
        apply: bool,
    },
    /// Void pending transfers whose timeout has passed.
    Expire {
        #[arg(long, default_value_t = 10_000)]
        limit: u32,
    },
    /// Close the next settlement batch and print it.
    Settle {
        #[arg(long, default_value_t = 100_000)]
        max_entries: u32,
    },
    /// Throughput benchmark in a database of its own (DATABASE_URL is the admin connection).
    Bench {
        #[arg(long, default_value_t = 100_000)]
        transfers: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        request_size: usize,
        #[arg(long, default_value_t = 1_000)]
        accounts: usize,
        #[arg(long, default_value_t = 20_000)]
        per_request_transfers: usize,
    },
}

async fn ledger() -> anyhow::Result<Ledger> {
    let pool = DbConfig::from_env().connect().await?;
    advancia_db::migrate(&pool, &[&MIGRATIONS]).await?;
    Ok(Ledger::new(pool, LedgerConfig::default()))
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match Cli::parse().command {
        Command::Verify => {
            let report = ledger().await?.verify_audit_chain().await?;
            print_json(&report)?;
            Ok(if report.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Rebuild { apply } => {
            let report = ledger().await?.rebuild_balances(apply).await?;
            print_json(&report)?;
            Ok(if report.is_consistent() || apply {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Expire { limit } => {
            let expired = ledger().await?.expire_pending(limit).await?;
            println!("expired {} pending transfers", expired.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Settle { max_entries } => {
            match ledger().await?.close_settlement_batch(max_entries).await? {
                Some(b) => print_json(&b)?,
                None => println!("nothing to settle"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            transfers,
            clients,
            request_size,
            accounts,
            per_request_transfers,
        } => {
            let report = bench::run(&BenchOptions {
                transfers,
                clients,
                request_size,
                accounts,
                per_request_transfers,
            })
            .await?;
            println!("{}", report.summary());
            Ok(ExitCode::SUCCESS)
        }
    }
}
