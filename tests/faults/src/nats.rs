//! A private NATS server with JetStream a fault test owns: `nats-server -js -sd <tmp>` on a
//! free port, stopped and started again on the same port and store at will. The shared
//! server on 4222 is never touched. Dropped: killed and its store deleted.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct NatsServer {
    store: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
}

impl NatsServer {
    pub fn start() -> io::Result<NatsServer> {
        let store = std::env::temp_dir().join(format!(
            "advancia-faults-nats-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&store)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let server = NatsServer {
            store,
            port,
            child: Mutex::new(None),
        };
        server.start_again()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its port and store; returns once it accepts connections.
    pub fn start_again(&self) -> io::Result<()> {
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap_or("nats-server");
        let child = Command::new(bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if started.elapsed() > Duration::from_secs(15) {
                return Err(io::Error::other("nats-server did not listen within 15 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Shuts the server down as an operator's restart does (SIGTERM: it closes client
    /// connections and its store cleanly) and waits until it is gone.
    pub fn stop(&self) -> io::Result<()> {
        let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !status.success() {
            child.kill()?;
        }
        child.wait().map(drop)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
