//! `advancia-localnet`: a local Solana node for development and tests.
//!
//! It serves Solana's JSON-RPC over HTTP and websockets on top of the real bank runtime
//! (solana-runtime 3.1.12, the one solana-program-test 3.1.12 uses), with the `advancia-pay`
//! program registered as a native builtin and the SPL Token, Token-2022, Associated Token
//! Account and Memo programs loaded from program-test's bundled binaries. Slots advance on a
//! clock; `finalized` lags `confirmed` by a configurable number of slots.
//!
//! ```no_run
//! # async fn demo() -> Result<(), advancia_localnet::LocalnetError> {
//! let node = advancia_localnet::Localnet::start(advancia_localnet::LocalnetConfig::for_tests()).await?;
//! println!("{} {}", node.rpc_url(), node.ws_url());
//! node.shutdown().await;
//! # Ok(()) }
//! ```

pub mod chain;
pub mod config;
pub mod encode;
pub mod rpc;
pub mod snapshot;
mod token;
pub mod ws;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use solana_keypair::Keypair;
use solana_signature::Signature;
use tokio::net::TcpListener;
use tokio::sync::{OnceCell, broadcast, watch};
use tokio::task::JoinHandle;

pub use chain::{ChainError, Commitment, DropReport, Event};
pub use config::LocalnetConfig;
pub use snapshot::{Snapshot, SnapshotError};

use chain::Chain;

/// The Solana version whose runtime this node embeds (reported by `getVersion`).
pub const SOLANA_CORE_VERSION: &str = "3.1.12";

#[derive(Debug, thiserror::Error)]
pub enum LocalnetError {
    #[error("cannot bind {what}: {source}")]
    Bind {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Shared node state: the chain behind one lock, and the event stream for subscriptions.
pub struct Node {
    chain: Mutex<Chain>,
    events: broadcast::Sender<Event>,
    config: LocalnetConfig,
    feature_set_id: u32,
}

impl Node {
    /// Locks the chain. Bank work is synchronous and short, so a plain mutex serializes
    /// transactions and slot changes the way a single leader does.
    pub fn chain(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn config(&self) -> &LocalnetConfig {
        &self.config
    }
}

/// program-test installs its syscall stubs (the bridge that lets a native builtin's CPIs and
/// logs reach the runtime) inside its private bank set-up, once per process. Starting one
/// throwaway program-test context runs that set-up; our own banks then share the stubs.
async fn install_syscall_stubs() {
    static STUBS: OnceCell<()> = OnceCell::const_new();
    STUBS
        .get_or_init(|| async {
            let context = solana_program_test::ProgramTest::default()
                .start_with_context()
                .await;
            drop(context);
        })
        .await;
}

/// A running node. Dropping it stops the servers and the slot clock (without a final
/// snapshot; call [`Localnet::shutdown`] for that).
pub struct Localnet {
    node: Arc<Node>,
    rpc_addr: SocketAddr,
    ws_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind_pair(config: &LocalnetConfig) -> Result<(TcpListener, TcpListener), LocalnetError> {
    let ip = config.bind_ip;
    let bind_err = |what: String| move |source| LocalnetError::Bind { what, source };
    if config.rpc_port != 0 {
        let http = TcpListener::bind((ip, config.rpc_port))
            .await
            .map_err(bind_err(format!("{ip}:{}", config.rpc_port)))?;
        let ws_port = config.rpc_port.saturating_add(1);
        let ws = TcpListener::bind((ip, ws_port))
            .await
            .map_err(bind_err(format!("{ip}:{ws_port}")))?;
        return Ok((http, ws));
    }
    // Free port P whose neighbour P+1 is free too: clients derive the websocket port as P+1.
    let mut last = None;
    for _ in 0..64 {
        let http = TcpListener::bind((ip, 0))
            .await
            .map_err(bind_err(format!("{ip}:0")))?;
        let port = http
            .local_addr()
            .map_err(bind_err("local address".into()))?
            .port();
        if port == u16::MAX {
            continue;
        }
        match TcpListener::bind((ip, port + 1)).await {
            Ok(ws) => return Ok((http, ws)),
            Err(e) => last = Some(e),
        }
    }
    Err(LocalnetError::Bind {
        what: format!("a free port pair on {ip}"),
        source: last.unwrap_or_else(|| std::io::Error::other("no free port pair")),
    })
}

async fn rpc_http(State(node): State<Arc<Node>>, body: Bytes) -> Response {
    let result = tokio::task::spawn_blocking(move || rpc::handle_body(&node, &body)).await;
    let mut response = match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "request handler panicked",
        )
            .into_response(),
    };
    // Browser wallets and web apps on other origins talk to the node directly.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, solana-client"),
    );
    response
}

async fn ws_or_health(
    State(node): State<Arc<Node>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| ws::serve(node, socket)),
        // Plain GET: answer like a validator's health probe.
        Err(_) => "ok".into_response(),
    }
}

fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/", get(ws_or_health).post(rpc_http).options(preflight))
        .route("/health", get(|| async { "ok" }))
        .with_state(node)
}

impl Localnet {
    /// Builds genesis (or restores the snapshot), binds HTTP on `rpc_port` and websockets on
    /// `rpc_port + 1` (and on `rpc_port` via upgrade), and starts the slot clock.
    pub async fn start(config: LocalnetConfig) -> Result<Self, LocalnetError> {
        install_syscall_stubs().await;
        let snapshot = match &config.snapshot_path {
            Some(path) => Snapshot::load(path)?,
            None => None,
        };
        let (http, ws) = bind_pair(&config).await?;
        let rpc_addr = http.local_addr().map_err(|source| LocalnetError::Bind {
            what: "local address".into(),
            source,
        })?;
        let ws_addr = ws.local_addr().map_err(|source| LocalnetError::Bind {
            what: "local address".into(),
            source,
        })?;

        let (events, _) = broadcast::channel(4096);
        let chain = {
            let events = events.clone();
            let (slot_duration, lag) = (config.slot_duration, config.finalization_lag);
            tokio::task::spawn_blocking(move || Chain::new(slot_duration, lag, snapshot, events))
                .await
                .map_err(|e| LocalnetError::Bind {
                    what: "genesis".into(),
                    source: std::io::Error::other(e.to_string()),
                })?
        };
        let feature_set_id = u32::from_le_bytes({
            let mut b = [0u8; 4];
            b.copy_from_slice(&agave_feature_set::ID.as_ref()[..4]);
            b
        });
        let node = Arc::new(Node {
            chain: Mutex::new(chain),
            events,
            config: config.clone(),
            feature_set_id,
        });

        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for listener in [http, ws] {
            let app = router(node.clone());
            let mut stop_rx = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "rpc server stopped");
                }
            }));
        }
        tasks.push(tokio::spawn(slot_clock(node.clone(), stop_rx.clone())));
        if let Some(path) = config.snapshot_path.clone() {
            tasks.push(tokio::spawn(snapshot_loop(
                node.clone(),
                path,
                config.snapshot_interval,
                stop_rx,
            )));
        }
        Ok(Self {
            node,
            rpc_addr,
            ws_addr,
            stop,
            tasks,
        })
    }

    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.rpc_addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The faucet behind `requestAirdrop` (holds the genesis supply).
    pub fn faucet(&self) -> Keypair {
        self.node.chain().faucet().insecure_clone()
    }

    /// Test switch, see [`Chain::drop_transaction`].
    pub fn drop_transaction(&self, signature: &Signature) -> Result<DropReport, ChainError> {
        self.node.chain().drop_transaction(signature)
    }

    /// Ends the current slot now instead of waiting for the clock.
    pub fn advance_slot(&self) {
        self.node.chain().advance_slot();
    }

    pub fn slot(&self, commitment: Commitment) -> u64 {
        self.node.chain().slot(commitment)
    }

    /// Stops the servers and the clock, then writes the snapshot if one is configured.
    pub async fn shutdown(mut self) -> Option<SnapshotError> {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        let path = self.node.config.snapshot_path.clone()?;
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || node.chain().snapshot().save(&path).err())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn slot_clock(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(node.config.slot_duration);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let node = node.clone();
                if tokio::task::spawn_blocking(move || node.chain().advance_slot()).await.is_err() {
                    tracing::error!("slot advance panicked; stopping the slot clock");
                    return;
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn snapshot_loop(
    node: Arc<Node>,
    path: std::path::PathBuf,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(every);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let node = node.clone();
                let path = path.clone();
                let saved = tokio::task::spawn_blocking(move || node.chain().snapshot().save(&path)).await;
                if let Ok(Err(e)) = saved {
                    tracing::warn!(error = %e, "snapshot not written");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
