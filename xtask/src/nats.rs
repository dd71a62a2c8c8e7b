//! Making sure a NATS server with JetStream answers for the event-bus tests: `NATS_URL`,
//! else the machine's server on 127.0.0.1:4222, else a private `nats-server -js` (Debian
//! package `nats-server`) on a free port with its store under `target/nats`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::step::Step;
use crate::toolchain::{ensure_apt, which};

const DEFAULT_ADDR: &str = "127.0.0.1:4222";

/// A reachable server; a private one started here is stopped on drop.
pub struct Nats {
    pub url: String,
    private: Option<Child>,
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(child) = &mut self.private {
            let _ = child.kill();
            let _ = child.wait();
            println!("    private NATS server stopped");
        }
    }
}

fn listening(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .ok()
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}

pub fn ensure() -> Result<Nats> {
    let step = Step::start("NATS JetStream answers");
    if let Ok(url) = std::env::var("NATS_URL") {
        step.done("NATS_URL");
        return Ok(Nats { url, private: None });
    }
    if listening(DEFAULT_ADDR) {
        // Assumed to run with JetStream (-js), as the machine's service does.
        step.done("local server on 127.0.0.1:4222");
        return Ok(Nats {
            url: format!("nats://{DEFAULT_ADDR}"),
            private: None,
        });
    }
    step.skip("nothing on 127.0.0.1:4222; starting a private server");
    ensure_apt("nats-server", "nats-server")?;
    let bin = which("nats-server")
        .or_else(|| {
            Some("/usr/sbin/nats-server".into()).filter(|p: &std::path::PathBuf| p.is_file())
        })
        .context("nats-server not found after installing it")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let store = std::env::current_dir()?.join("target").join("nats");
    std::fs::create_dir_all(&store)?;
    let step = Step::start("private NATS server (JetStream)");
    let child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server")?;
    let nats = Nats {
        url: format!("nats://127.0.0.1:{port}"),
        private: Some(child),
    };
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    while !listening(&addr) {
        if started.elapsed() > Duration::from_secs(15) {
            step.fail("no answer within 15 s");
            bail!("private nats-server did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    step.done(&format!("listening on {addr}"));
    Ok(nats)
}
