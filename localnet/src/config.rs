//! Node configuration.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// How the node runs. `Default` is what the binary uses without flags.
#[derive(Debug, Clone)]
pub struct LocalnetConfig {
    /// Address to bind; loopback by default (this is a development node).
    pub bind_ip: IpAddr,
    /// HTTP JSON-RPC port; `0` picks a free port (tests). Websockets listen on this port + 1,
    /// the port web3.js and the Solana CLI derive from the HTTP URL, and on this port itself.
    pub rpc_port: u16,
    /// Wall-clock length of a slot.
    pub slot_duration: Duration,
    /// How many slots `finalized` lags behind `confirmed`.
    pub finalization_lag: u64,
    /// Optional snapshot file: loaded at start when present, written on shutdown and periodically.
    pub snapshot_path: Option<PathBuf>,
    /// How often the snapshot is written while running.
    pub snapshot_interval: Duration,
    /// Serve the `localnet*` test-control RPC methods (drop a transaction, force a slot).
    pub enable_test_methods: bool,
}

impl Default for LocalnetConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rpc_port: 8899,
            slot_duration: Duration::from_millis(400),
            // A validator finalizes ~32 slots behind the tip; keep that shape by default.
            finalization_lag: 31,
            snapshot_path: None,
            snapshot_interval: Duration::from_secs(10),
            enable_test_methods: false,
        }
    }
}

impl LocalnetConfig {
    /// Settings for in-process tests: free port, fast slots, short finalization lag.
    pub fn for_tests() -> Self {
        Self {
            rpc_port: 0,
            slot_duration: Duration::from_millis(50),
            finalization_lag: 3,
            enable_test_methods: true,
            ..Self::default()
        }
    }
}
