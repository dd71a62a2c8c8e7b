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
    /// Serve Prometheus metrics of the books (read from Postgres on each scrape) until
    /// SIGINT/SIGTERM.
    Metrics {
        #[arg(
            long,
            default_value = "127.0.0.1:9467",
            env = "ADVANCIA_LEDGER_METRICS_LISTEN"
        )]
        listen: std::net::SocketAddr,
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

/// Per-ledger (asset) counts and pending amounts; amounts stay integer text (base units).
async fn render_books(
    pool: &advancia_db::sqlx::PgPool,
    out: &mut String,
) -> Result<(), advancia_db::sqlx::Error> {
    use advancia_telemetry::metrics::{write_header, write_sample};
    let rows: Vec<(i64, i64, String, String)> = advancia_db::sqlx::query_as(
        "SELECT a.ledger, count(*), sum(a.debits_pending)::text, sum(a.credits_pending)::text
           FROM ledger.accounts a GROUP BY a.ledger ORDER BY a.ledger",
    )
    .fetch_all(pool)
    .await?;
    let transfers: Vec<(i64, i64)> = advancia_db::sqlx::query_as(
        "SELECT ledger, count(*) FROM ledger.transfers GROUP BY ledger ORDER BY ledger",
    )
    .fetch_all(pool)
    .await?;
    write_header(
        out,
        "advancia_ledger_accounts",
        "gauge",
        "Accounts by ledger (asset).",
    );
    for (l, n, _, _) in &rows {
        write_sample(
            out,
            "advancia_ledger_accounts",
            &[("ledger", &l.to_string())],
            *n,
        );
    }
    write_header(
        out,
        "advancia_ledger_transfers",
        "gauge",
        "Transfers in the log by ledger (asset).",
    );
    for (l, n) in &transfers {
        write_sample(
            out,
            "advancia_ledger_transfers",
            &[("ledger", &l.to_string())],
            *n,
        );
    }
    write_header(
        out,
        "advancia_ledger_pending_debits_base_units",
        "gauge",
        "Sum of pending (two-phase, not yet posted or voided) debits by ledger, in base units.",
    );
    for (l, _, d, _) in &rows {
        write_sample(
            out,
            "advancia_ledger_pending_debits_base_units",
            &[("ledger", &l.to_string())],
            d.as_str(),
        );
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let _telemetry = advancia_telemetry::init_from_env("advancia-ledger", "warn,sqlx=error")?;
    match Cli::parse().command {
        Command::Metrics { listen } => {
            let ledger = ledger().await?;
            let pool = ledger.pool().clone();
            let registry =
                advancia_telemetry::Registry::new("advancia-ledger", env!("CARGO_PKG_VERSION"));
            let render: advancia_telemetry::metrics::RenderFn = std::sync::Arc::new(move || {
                let pool = pool.clone();
                let registry = registry.clone();
                Box::pin(async move {
                    let mut out = registry.render();
                    if let Err(e) = render_books(&pool, &mut out).await {
                        // Served without the books' families; the scrape itself succeeds.
                        tracing::warn!(error = %e, "ledger metrics query failed");
                    }
                    out
                })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>
            });
            let (bound, _task) = advancia_telemetry::metrics::serve(listen, render).await?;
            eprintln!("advancia-ledger: metrics on http://{bound}/metrics");
            advancia_db::shutdown_signal().await;
            Ok(ExitCode::SUCCESS)
        }
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
