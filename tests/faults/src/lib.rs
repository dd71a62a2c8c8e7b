//! Fault injection for the fault tests: a TCP proxy that forwards, or black-holes; a
//! private Postgres cluster to crash ([`pg`]); a private NATS server to restart ([`nats`]); a
//! small filesystem to fill ([`disk`]).

pub mod disk;
pub mod nats;
pub mod pg;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Shared {
    upstream: Option<SocketAddr>,
    down: bool,
    /// Forwarding tasks of live connections: cut when the proxy goes down, as a network
    /// partition cuts them.
    live: Vec<JoinHandle<()>>,
}

/// Forwards connections to an upstream until [`Proxy::down`]: then existing connections
/// are cut and new ones are accepted but never answered (a node that hangs), until
/// [`Proxy::up`].
#[derive(Clone)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl Proxy {
    pub async fn start() -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (upstream, down) = {
                    let g = lock(&s);
                    (g.upstream, g.down)
                };
                let task = tokio::spawn(async move {
                    match (upstream, down) {
                        (Some(to), false) => {
                            if let Ok(mut server) = TcpStream::connect(to).await {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        }
                        // Black hole: hold the connection, never answer.
                        _ => {
                            let _keep = client;
                            std::future::pending::<()>().await;
                        }
                    }
                });
                let mut g = lock(&s);
                g.live.retain(|t| !t.is_finished());
                g.live.push(task);
            }
        });
        Ok(Proxy { addr, shared })
    }

    /// Forwards to the `http://host:port` URL `upstream`; returns the proxy's own URL.
    pub fn forward_to(&self, upstream: &str) -> String {
        let host = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        lock(&self.shared).upstream = host.parse().ok();
        format!("http://{}", self.addr)
    }

    /// The node is gone: live connections are cut, new ones hang.
    pub fn down(&self) {
        let mut g = lock(&self.shared);
        g.down = true;
        for t in g.live.drain(..) {
            t.abort();
        }
    }

    pub fn up(&self) {
        let mut g = lock(&self.shared);
        g.down = false;
        // Connections accepted while down stay black-holed; clients time out and reconnect.
        for t in g.live.drain(..) {
            t.abort();
        }
    }
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
