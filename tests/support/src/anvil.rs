//! A real EVM node for tests: anvil (npm `@foundry-rs/anvil-linux-amd64`, installed by
//! `cargo xtask evm`, path in `ADVANCIA_ANVIL`) on a free loopback port, killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::U256;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};

/// anvil's binary: `ADVANCIA_ANVIL`, else where `cargo xtask evm` puts it.
pub fn anvil_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ADVANCIA_ANVIL") {
        return PathBuf::from(p);
    }
    let rel = "npm/evm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";
    let mut candidates = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join(rel));
    }
    candidates.push(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target")
            .join(rel),
    );
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("anvil not found: run `cargo xtask evm` or set ADVANCIA_ANVIL"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// An anvil node, killed on drop.
pub struct Anvil {
    child: Child,
    pub url: String,
    pub chain_id: u64,
}

impl Anvil {
    /// Automining anvil (a block per transaction).
    pub async fn start(chain_id: u64) -> Anvil {
        Self::start_with(chain_id, &[]).await
    }

    /// With extra anvil arguments (e.g. `--block-time 1`).
    pub async fn start_with(chain_id: u64, extra: &[&str]) -> Anvil {
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(anvil_binary())
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--chain-id", &chain_id.to_string()])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start anvil: {e}"));
            let mut anvil = Anvil {
                child,
                url: format!("http://127.0.0.1:{port}"),
                chain_id,
            };
            let provider = anvil.provider();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(id) = provider.get_chain_id().await {
                    assert_eq!(id, chain_id);
                    return anvil;
                }
                if anvil.child.try_wait().ok().flatten().is_some() {
                    break; // port taken between probe and bind: try another
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = anvil.child.kill();
        }
        panic!("anvil did not start");
    }

    pub fn provider(&self) -> DynProvider {
        ProviderBuilder::new()
            .connect_http(self.endpoint())
            .erased()
    }

    /// Signs with `wallet`; nonces read from the node on every send, since tests use
    /// several handles per account.
    pub fn wallet_provider(&self, wallet: impl Into<EthereumWallet>) -> DynProvider {
        ProviderBuilder::new()
            .with_simple_nonce_management()
            .wallet(wallet.into())
            .connect_http(self.endpoint())
            .erased()
    }

    fn endpoint(&self) -> alloy::transports::http::reqwest::Url {
        self.url
            .parse()
            .unwrap_or_else(|e| panic!("anvil url {}: {e}", self.url))
    }

    /// The bridge domain of this chain (its chain id).
    pub fn domain(&self) -> u32 {
        u32::try_from(self.chain_id).unwrap_or_else(|_| panic!("chain id above u32"))
    }

    pub async fn mine(&self, blocks: u64) {
        let _: serde_json::Value = self
            .provider()
            .raw_request("anvil_mine".into(), (U256::from(blocks),))
            .await
            .unwrap_or_else(|e| panic!("anvil_mine: {e}"));
    }

    pub async fn snapshot(&self) -> U256 {
        self.provider()
            .raw_request("evm_snapshot".into(), ())
            .await
            .unwrap_or_else(|e| panic!("evm_snapshot: {e}"))
    }

    pub async fn revert(&self, id: U256) {
        let ok: bool = self
            .provider()
            .raw_request("evm_revert".into(), (id,))
            .await
            .unwrap_or_else(|e| panic!("evm_revert: {e}"));
        assert!(ok, "evm_revert failed");
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
