//! `cargo xtask demo`: the local stack and one scripted scenario, each step timed:
//! Postgres, migrations, the local Solana node with our program, the indexer, the API with
//! its followers (payments lifecycle, ledger posting; health, readiness), and a payment end
//! to end — a patient signs up with 2FA, initiates a payment, their wallet signs the Solana
//! Pay transaction request, the API relays it, the indexer sees it finalize, the payment is
//! confirmed and the books balance.
//!
//! The binaries are built exactly as `cargo xtask test` builds them (the same `cargo test
//! --no-run` selection, so the same feature resolution): after a test run nothing is
//! rebuilt. The services log to files under `target/demo/logs`; the terminal shows only the
//! scenario's steps and its summary.

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
/// Where the local Solana node serves JSON-RPC (websockets on the next port), as
/// `solana-test-validator` does, so wallets and the Solana CLI find it.
const LOCALNET_ADDR: &str = "127.0.0.1:8899";
/// The indexer's Prometheus endpoint.
const INDEXER_METRICS: &str = "127.0.0.1:9464";

pub fn run(once: bool, listen: &str, verbose: bool) -> Result<()> {
    crate::toolchain::ensure_system_libraries()?;
    let pg = postgres::ensure()?;
    let url = postgres::ensure_database(&pg.url, DEMO_DATABASE)?;

    let step = Step::start(
        "build the binaries as the test run does (nothing to do after `cargo xtask test`; \
         cargo shows its progress otherwise)",
    );
    let built = Instant::now();
    // `cargo nextest run` builds with this very `cargo test --no-run` selection: a different
    // one (`cargo build -p …`) resolves features differently and rebuilds half the tree.
    let status = crate::linted(crate::cargo().args(crate::TEST_BUILD))?
        .status()
        .context("running cargo")?;
    if !status.success() {
        step.fail(&format!("cargo exited with {status}"));
        bail!("build failed");
    }
    step.done(&format!(
        "advancia, advancia-localnet, advancia-indexer, advancia-demo-payment (debug, {:.1}s)",
        built.elapsed().as_secs_f64()
    ));
    let logs = crate::workspace_root().join("target/demo/logs");
    std::fs::create_dir_all(&logs)?;
    let log = |name: &str| -> Result<(std::process::Stdio, std::process::Stdio)> {
        let f = std::fs::File::create(logs.join(format!("{name}.log")))?;
        Ok((f.try_clone()?.into(), f.into()))
    };
    println!(
        "demo: service logs in {} (localnet.log, indexer.log, api.log)",
        logs.display()
    );
    // Where cargo put them: `CARGO_TARGET_DIR` when set, else `target/`.
    let debug = crate::wasm::target_dir().join("debug");
    let bin = debug.join("advancia");
    let localnet_bin = debug.join("advancia-localnet");
    let indexer_bin = debug.join("advancia-indexer");
    let script_bin = debug.join("advancia-demo-payment");

    let step = Step::start(&format!("start the local Solana node on {LOCALNET_ADDR}"));
    let snapshot = crate::workspace_root().join("target/demo/localnet.snapshot");
    if let Some(dir) = snapshot.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let (out, err) = log("localnet")?;
    let mut localnet = ChildGuard(
        Command::new(&localnet_bin)
            .args(["--rpc-port", "8899", "--snapshot"])
            .arg(&snapshot)
            // Program logs per instruction are the runtime's debug output, and its per-slot
            // warnings (a rent-paying fee account on a fresh chain) are noise: not for the
            // demo unless asked.
            .env(
                "RUST_LOG",
                if verbose {
                    "warn,advancia_localnet=info"
                } else {
                    "error,advancia_localnet=info"
                },
            )
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("starting advancia-localnet")?,
        "the local Solana node",
    );
    let version = wait_for_rpc(LOCALNET_ADDR, Duration::from_secs(60), &mut localnet.0)?;
    step.done(&format!("RPC http://{LOCALNET_ADDR} (ws :8900), {version}"));

    let step = Step::start("development keys (target/demo)");
    let keys = dev_keys()?;
    step.done("JWT signing key and TOTP encryption key (kept across restarts)");

    let step = Step::start("apply migrations");
    run_checked(
        Command::new(&bin).arg("migrate").env("DATABASE_URL", &url),
        &step,
    )?;
    step.done(&format!("database {DEMO_DATABASE}"));

    let step = Step::start(&format!(
        "start the indexer (JSON-RPC {LOCALNET_ADDR} → Postgres; metrics {INDEXER_METRICS})"
    ));
    let (out, err) = log("indexer")?;
    let mut indexer = ChildGuard(
        Command::new(&indexer_bin)
            .args(["--rpc-url", &format!("http://{LOCALNET_ADDR}")])
            .args(["--metrics-addr", INDEXER_METRICS])
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", if verbose { "debug" } else { "info" })
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("starting advancia-indexer")?,
        "the indexer",
    );
    wait_for(
        INDEXER_METRICS,
        "/metrics",
        Duration::from_secs(60),
        &mut indexer.0,
    )?;
    step.done(&format!("GET http://{INDEXER_METRICS}/metrics → 200"));

    let step = Step::start(&format!("start the API on {listen}"));
    let (out, err) = log("api")?;
    let mut api = ChildGuard(
        Command::new(&bin)
            // --dev: links on plain http from the listen address (no ADVANCIA_PUBLIC_URL).
            .args(["--dev", "serve", "--no-migrate", "--listen", listen])
            .env("DATABASE_URL", &url)
            // The scripted payment's webhook receiver listens on loopback.
            .env("ADVANCIA_EGRESS_ALLOW", "127.0.0.1")
            .env("AUTH_SIGNING_KEY_FILE", &keys.signing_key_file)
            .env("AUTH_TOTP_ENCRYPTION_KEY", &keys.totp_key)
            .env(
                "RUST_LOG",
                if verbose {
                    "debug,sqlx=info"
                } else {
                    "info,sqlx::postgres::notice=warn"
                },
            )
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("starting advancia serve")?,
        "the API",
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

    let step = Step::start(
        "bootstrap the operator (advancia admin create / grant-role), who reads the audit trail",
    );
    let operator = "ops@demo.example";
    let operator_password = "demo operator password, not for production";
    let created = Command::new(&bin)
        .args([
            "admin",
            "create",
            "--email",
            operator,
            "--display-name",
            "Demo Operator",
        ])
        .args(["--role", "admin"])
        .env("DATABASE_URL", &url)
        .env("AUTH_SIGNING_KEY_FILE", &keys.signing_key_file)
        .env("AUTH_TOTP_ENCRYPTION_KEY", &keys.totp_key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                writeln!(stdin, "{operator_password}")?;
            }
            child.wait_with_output()
        })
        .context("advancia admin create")?;
    if !created.status.success() {
        // A rerun: the demo database keeps its users; make sure the role is there.
        run_checked(
            Command::new(&bin)
                .args([
                    "admin",
                    "grant-role",
                    "--email",
                    operator,
                    "--role",
                    "admin",
                ])
                .env("DATABASE_URL", &url)
                .env("AUTH_SIGNING_KEY_FILE", &keys.signing_key_file)
                .env("AUTH_TOTP_ENCRYPTION_KEY", &keys.totp_key),
            &step,
        )?;
    }
    let (status, body) = http_request(
        listen,
        "POST",
        "/api/v1/auth/login",
        &format!(r#"{{"email":"{operator}","password":"{operator_password}"}}"#),
    )?;
    let token = body
        .split("\"access_token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .filter(|_| status == 200)
        .with_context(|| format!("operator login → {status}: {body}"))?
        .to_owned();
    let (status, body) = http_request_as(
        listen,
        "GET",
        "/api/v1/ledger/audit-trail",
        "",
        Some(&token),
    )?;
    if status != 200 || !body.contains("\"intact\":true") {
        step.fail(&format!(
            "GET /api/v1/ledger/audit-trail → {status}: {body}"
        ));
        bail!("the operator cannot read the audit trail");
    }
    step.done("operator is admin (audited in auth.events); audit trail intact");

    let step = Step::start("a patient signs up and signs in (POST /api/v1/auth/register, /login)");
    let email = "demo.patient@example.org";
    let password = "demo password, not for production";
    let (status, body) = http_request(
        listen,
        "POST",
        "/api/v1/auth/register",
        &format!(r#"{{"email":"{email}","password":"{password}","display_name":"Demo Patient"}}"#),
    )?;
    // The same 202 whether the address is new or (on a rerun) already registered.
    if status != 202 {
        step.fail(&format!("register → {status}: {body}"));
        bail!("registration failed");
    }
    let (status, body) = http_request(
        listen,
        "POST",
        "/api/v1/auth/login",
        &format!(r#"{{"email":"{email}","password":"{password}"}}"#),
    )?;
    if status != 200 || !body.contains("access_token") {
        step.fail(&format!("login → {status}: {body}"));
        bail!("login failed");
    }
    step.done("access and refresh tokens issued (EdDSA JWT; JWKS at /.well-known/jwks.json)");

    let step = Step::start(
        "a payment end to end: 2FA, initiate, wallet signs the Solana Pay request, relay, \
         webhooks pushed as it confirms and finalizes (nobody polls), confirmed, books balanced",
    );
    println!();
    run_checked(
        Command::new(&script_bin)
            .args(["--api", &format!("http://{listen}")])
            .args(["--rpc", &format!("http://{LOCALNET_ADDR}")])
            .arg("--keys")
            .arg(crate::workspace_root().join("target/demo"))
            .args(["--database-url", &url])
            .stdout(std::process::Stdio::inherit()),
        &step,
    )?;
    step.done("payment finalized on chain, confirmed, and in the ledger");

    if once {
        api.terminate()?;
        indexer.terminate()?;
        localnet.terminate()?;
        println!("demo: scenario complete");
        return Ok(());
    }
    println!(
        "demo serving: API at http://{listen} (reference: /api/v1/docs); Solana RPC at \
         http://{LOCALNET_ADDR} (solana config set --url http://{LOCALNET_ADDR}); indexer \
         metrics at http://{INDEXER_METRICS}/metrics; logs in {}. Ctrl-C stops.",
        logs.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    while !stop.load(Ordering::SeqCst) {
        if let Some(status) = api.0.try_wait()? {
            bail!("the API exited unexpectedly ({status})");
        }
        if let Some(status) = localnet.0.try_wait()? {
            bail!("the local Solana node exited unexpectedly ({status})");
        }
        if let Some(status) = indexer.0.try_wait()? {
            bail!("the indexer exited unexpectedly ({status})");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    api.terminate()?;
    indexer.terminate()?;
    localnet.terminate()?;
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
struct ChildGuard(Child, &'static str);

impl ChildGuard {
    /// SIGTERM, then wait: the API drains in-flight requests and exits 0.
    fn terminate(&mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let status = self.0.wait()?;
        if !status.success() {
            bail!("{} did not shut down cleanly ({status})", self.1);
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
            bail!("the process exited during start-up ({status})");
        }
        if Instant::now() > deadline {
            bail!("no answer on http://{addr}{path} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    http_request(addr, "GET", path, "")
}

/// Polls the node's `getVersion` until it answers; returns the version text.
fn wait_for_rpc(addr: &str, limit: Duration, child: &mut Child) -> Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok((200, body)) = http_request(
            addr,
            "POST",
            "/",
            r#"{"jsonrpc":"2.0","id":1,"method":"getVersion"}"#,
        ) && let Some(start) = body.find("\"solana-core\"")
        {
            let version = body[start..].split('"').nth(3).unwrap_or("?");
            return Ok(format!("solana-core {version}"));
        }
        if let Some(status) = child.try_wait()? {
            bail!("the local Solana node exited during start-up ({status})");
        }
        if Instant::now() > deadline {
            bail!("the local Solana node did not answer on http://{addr} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A minimal HTTP/1.1 client (JSON bodies), enough for the demo's script without an
/// HTTP client dependency in xtask.
fn http_request(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    http_request_as(addr, method, path, body, None)
}

/// [`http_request`] with a bearer token.
fn http_request_as(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
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
