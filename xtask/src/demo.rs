//! `cargo xtask demo`: the local stack and one scripted scenario, each step timed.
//! Grows with each capability; today: Postgres, migrations, the API serving
//! `/health` and `/ready`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::postgres;
use crate::step::{Step, run_checked};

/// The demo keeps its state in its own database, so a restart continues where it left off.
const DEMO_DATABASE: &str = "advancia_demo";

pub fn run(once: bool, listen: &str) -> Result<()> {
    let pg = postgres::ensure()?;
    let url = postgres::ensure_database(&pg.url, DEMO_DATABASE)?;

    let step = Step::start("build the API binary (advancia)");
    run_checked(
        crate::cargo().args([
            "build",
            "--quiet",
            "-p",
            "advancia-api",
            "--bin",
            "advancia",
        ]),
        &step,
    )?;
    step.done("target/debug/advancia");
    let bin = crate::workspace_root().join("target/debug/advancia");

    let step = Step::start("development keys (target/demo)");
    let keys = dev_keys()?;
    step.done("JWT signing key and TOTP encryption key (kept across restarts)");

    let step = Step::start("apply migrations");
    run_checked(
        Command::new(&bin).arg("migrate").env("DATABASE_URL", &url),
        &step,
    )?;
    step.done(&format!("database {DEMO_DATABASE}"));

    let step = Step::start(&format!("start the API on {listen}"));
    let mut api = ChildGuard(
        Command::new(&bin)
            .args(["serve", "--no-migrate", "--listen", listen])
            .env("DATABASE_URL", &url)
            .env("AUTH_SIGNING_KEY_FILE", &keys.signing_key_file)
            .env("AUTH_TOTP_ENCRYPTION_KEY", &keys.totp_key)
            .spawn()
            .context("starting advancia serve")?,
    );
    wait_for(listen, "/health", Duration::from_secs(30), &mut api.0)?;
    step.done("GET /health → 200");

    let step = Step::start("readiness (database reachable)");
    let (status, body) = http_get(listen, "/ready")?;
    if status != 200 {
        step.fail(&format!("GET /ready → {status}: {body}"));
        bail!("API not ready");
    }
    step.done(&format!("GET /ready → {status} {body}"));

    if once {
        api.terminate()?;
        println!("demo: scenario complete");
        return Ok(());
    }
    println!("demo: API at http://{listen} (health: /health, readiness: /ready). Ctrl-C stops.");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    while !stop.load(Ordering::SeqCst) {
        if let Some(status) = api.0.try_wait()? {
            bail!("the API exited unexpectedly ({status})");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    api.terminate()?;
    println!("demo: stopped");
    Ok(())
}

struct DevKeys {
    signing_key_file: std::path::PathBuf,
    totp_key: String,
}

/// Random development keys, created once under `target/demo` so that sessions and
/// 2FA enrollments survive a demo restart. Never used outside the demo.
fn dev_keys() -> Result<DevKeys> {
    let dir = crate::workspace_root().join("target/demo");
    std::fs::create_dir_all(&dir)?;
    let random_hex = || -> Result<String> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    };
    let signing_key_file = dir.join("auth-signing-key.hex");
    if !signing_key_file.is_file() {
        std::fs::write(&signing_key_file, random_hex()?)?;
    }
    let totp_file = dir.join("totp-encryption-key.hex");
    if !totp_file.is_file() {
        std::fs::write(&totp_file, random_hex()?)?;
    }
    Ok(DevKeys {
        signing_key_file,
        totp_key: std::fs::read_to_string(totp_file)?.trim().to_owned(),
    })
}

/// Kills the child if the demo ends early (error or panic).
struct ChildGuard(Child);

impl ChildGuard {
    /// SIGTERM, then wait: the API drains in-flight requests and exits 0.
    fn terminate(&mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let status = self.0.wait()?;
        if !status.success() {
            bail!("the API did not shut down cleanly ({status})");
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_for(addr: &str, path: &str, limit: Duration, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok((200, _)) = http_get(addr, path) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the API exited during start-up ({status})");
        }
        if Instant::now() > deadline {
            bail!("no answer on http://{addr}{path} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal HTTP/1.1 GET, enough for the demo's checks without an HTTP client dependency.
fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP response")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
