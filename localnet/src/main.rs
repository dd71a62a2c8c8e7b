//! `advancia-localnet` binary: runs the development node until Ctrl-C.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use advancia_localnet::{Commitment, Localnet, LocalnetConfig};
use clap::Parser;
use solana_signer::Signer;

#[derive(Parser, Debug)]
#[command(
    name = "advancia-localnet",
    about = "Local Solana node for development and tests (not a validator)"
)]
struct Args {
    /// Address to bind (loopback by default).
    #[arg(long, default_value = "127.0.0.1", env = "LOCALNET_BIND")]
    bind: IpAddr,
    /// HTTP JSON-RPC port; websockets listen on this port + 1.
    #[arg(long, default_value_t = 8899, env = "LOCALNET_RPC_PORT")]
    rpc_port: u16,
    /// Slot length in milliseconds.
    #[arg(long, default_value_t = 400, env = "LOCALNET_SLOT_MS")]
    slot_ms: u64,
    /// Slots by which `finalized` lags `confirmed`.
    #[arg(long, default_value_t = 31, env = "LOCALNET_FINALIZATION_LAG")]
    finalization_lag: u64,
    /// Snapshot file: restored at start if present, written periodically and on exit.
    #[arg(long, env = "LOCALNET_SNAPSHOT")]
    snapshot: Option<PathBuf>,
    /// Seconds between snapshot writes.
    #[arg(long, default_value_t = 10)]
    snapshot_interval_secs: u64,
    /// Serve the `localnetDropTransaction` / `localnetAdvanceSlot` test methods.
    #[arg(long)]
    test_methods: bool,
    /// Prometheus `/metrics` address, or `off`.
    #[arg(
        long,
        default_value = "127.0.0.1:9466",
        env = "LOCALNET_METRICS_LISTEN"
    )]
    metrics_listen: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    // program-test's throwaway bank server (see `install_syscall_stubs`) logs a harmless
    // transport warning when it is dropped; `tarpc=error` hides it.
    let _telemetry =
        match advancia_telemetry::init_from_env("advancia-localnet", "info,tarpc=error") {
            Ok(t) => t,
            Err(e) => {
                eprintln!("advancia-localnet: {e}");
                return ExitCode::FAILURE;
            }
        };
    let args = Args::parse();
    let metrics_addr = match args.metrics_listen.trim() {
        "off" => None,
        v => match v.parse::<std::net::SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                eprintln!(
                    "advancia-localnet: --metrics-listen / LOCALNET_METRICS_LISTEN: `{v}` is not host-ip:port or `off`"
                );
                return ExitCode::FAILURE;
            }
        },
    };
    let config = LocalnetConfig {
        bind_ip: args.bind,
        rpc_port: args.rpc_port,
        slot_duration: Duration::from_millis(args.slot_ms.max(1)),
        finalization_lag: args.finalization_lag,
        snapshot_path: args.snapshot,
        snapshot_interval: Duration::from_secs(args.snapshot_interval_secs.max(1)),
        enable_test_methods: args.test_methods,
    };
    let node = match Localnet::start(config.clone()).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("advancia-localnet: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("==============================================================");
    println!(" advancia-localnet: DEVELOPMENT AND TEST NODE, not a validator");
    println!(
        " Solana runtime {} (bank driven in-process)",
        advancia_localnet::SOLANA_CORE_VERSION
    );
    println!(" RPC URL:        {}", node.rpc_url());
    println!(" Websocket URL:  {}", node.ws_url());
    println!(
        " Faucet:         {} (requestAirdrop)",
        node.faucet().pubkey()
    );
    println!(" advancia-pay:   {} (native builtin)", advancia_pay::ID);
    println!(" Also loaded:    SPL Token, Token-2022, Associated Token Account, Memo");
    println!(
        " Slots:          {} ms, finalized lags confirmed by {} slots",
        config.slot_duration.as_millis(),
        config.finalization_lag
    );
    match &config.snapshot_path {
        Some(p) => println!(" Snapshot:       {}", p.display()),
        None => println!(" State:          in memory only (use --snapshot to persist)"),
    }
    println!(" Try: solana config set --url {}", node.rpc_url());
    println!("==============================================================");
    if let Some(addr) = metrics_addr {
        let registry =
            advancia_telemetry::Registry::new("advancia-localnet", env!("CARGO_PKG_VERSION"));
        let node_state = node.node().clone();
        let render = advancia_telemetry::metrics::render_fn(move || {
            let mut out = registry.render();
            advancia_telemetry::metrics::write_header(
                &mut out,
                "advancia_localnet_slot",
                "gauge",
                "Current slot by commitment level.",
            );
            let chain = node_state.chain();
            for (label, c) in [
                ("processed", Commitment::Processed),
                ("confirmed", Commitment::Confirmed),
                ("finalized", Commitment::Finalized),
            ] {
                advancia_telemetry::metrics::write_sample(
                    &mut out,
                    "advancia_localnet_slot",
                    &[("commitment", label)],
                    chain.slot(c),
                );
            }
            out
        });
        match advancia_telemetry::metrics::serve(addr, render).await {
            Ok((bound, _task)) => println!(" Metrics:        http://{bound}/metrics"),
            Err(e) => {
                eprintln!("advancia-localnet: binding the metrics address {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    shutdown_signal().await;
    println!("advancia-localnet: shutting down");
    match node.shutdown().await {
        Some(e) => {
            eprintln!("advancia-localnet: {e}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

/// Ctrl-C or SIGTERM (what process managers and `cargo xtask demo` send): either way the
/// node stops cleanly and writes its snapshot.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("advancia-localnet: cannot wait for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
