//! The relayer binary killed with SIGKILL mid-delivery and restarted delivers each message
//! exactly once; `stuck` and `/metrics` of the real binary.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use advancia_relayer::MIGRATIONS;
use advancia_relayer::message;
use advancia_test_support::{TestDb, sqlx};
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_advancia-relayer");

fn spawn_relayer(
    chains: &TwoChains,
    db: &TestDb,
    key_file: &std::path::Path,
    metrics: u16,
    locations: &[String],
) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "relayer",
        "--rpc",
        &chains.b.url,
        "--bridge",
        &chains.bridge_b.address().to_string(),
    ]);
    for l in locations {
        cmd.args(["--validator-location", l]);
    }
    cmd.arg("--key-file")
        .arg(key_file)
        .args([
            "--poll-ms",
            "50",
            "--backoff-base-ms",
            "50",
            "--backoff-max-ms",
            "500",
        ])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn stuck(db: &TestDb) -> String {
    let out = Command::new(BIN)
        .arg("stuck")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

async fn count(db: &TestDb, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bridge.deliveries WHERE status = $1")
        .bind(status)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_then_restart_delivers_each_message_once() {
    const N: usize = 12;
    let chains = TwoChains::start(3, 2).await;
    let db = TestDb::new(&[&MIGRATIONS]).await;

    let recipients: Vec<Address> = (0..N)
        .map(|i| Address::left_padding_from(&[0xd0, i as u8]))
        .collect();
    let mut ids = Vec::new();
    for (i, r) in recipients.iter().enumerate() {
        let m = chains.dispatch_native(*r, 1_000 + i as u128).await;
        ids.push(message::message_id(&m));
    }
    chains.a.mine(1).await;
    // Validators with their own stores, serving their attestations over HTTP.
    let tmp = tempfile::tempdir().unwrap();
    let validators = chains.own_validators(tmp.path(), 1).await;
    for v in &validators {
        assert_eq!(v.validator.step().await.unwrap().signed, N);
    }
    let locations: Vec<String> = validators.iter().map(|v| v.location.clone()).collect();

    // Mine B once a second from now on, so transactions sit in the mempool between blocks.
    let b = chains.b.provider();
    let _: serde_json::Value = b
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .unwrap();
    let _: serde_json::Value = b
        .raw_request("evm_setIntervalMining".into(), (1u64,))
        .await
        .unwrap();

    let key_file = std::env::temp_dir().join(format!("advancia-relayer-key-{}", db.name));
    std::fs::write(&key_file, RELAYER_KEY).unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let mut first = spawn_relayer(&chains, &db, &key_file, metrics_port, &locations);
    wait_for(
        "a submitted delivery",
        Duration::from_secs(60),
        async || count(&db, "submitted").await >= 1,
    )
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let in_flight = count(&db, "submitted").await;
    let delivered_at_kill = count(&db, "delivered").await;
    assert!(
        in_flight >= 1 && delivered_at_kill < N as i64,
        "killed mid-delivery: {in_flight} in flight"
    );

    let mut second = spawn_relayer(&chains, &db, &key_file, metrics_port, &locations);
    wait_for("every delivery", Duration::from_secs(90), async || {
        count(&db, "delivered").await == N as i64
    })
    .await;
    let metrics = reqwest_metrics(metrics_port).await;
    second.kill().unwrap();
    second.wait().unwrap();
    std::fs::remove_file(&key_file).unwrap();

    // Exactly once: each id processed, each recipient paid its amount, one Process event per
    // id, and the relayer's account sent exactly one transaction per message.
    for (i, (id, r)) in ids.iter().zip(&recipients).enumerate() {
        assert!(chains.bridge_b.processed(*id).call().await.unwrap());
        assert_eq!(
            native_balance(&chains.b, *r).await,
            U256::from(1_000 + i as u64)
        );
    }
    let events = chains
        .bridge_b
        .Process_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    let mut seen: Vec<_> = events.iter().map(|(e, _)| e.id).collect();
    seen.sort();
    seen.dedup();
    assert_eq!((events.len(), seen.len()), (N, N));
    let relayer_nonce = b
        .get_transaction_count(key(RELAYER_KEY).address())
        .await
        .unwrap();
    assert_eq!(
        relayer_nonce, N as u64,
        "one transaction per message, none re-sent"
    );

    assert!(
        metrics.contains("advancia_bridge_backlog{destination=\"31338\",status=\"pending\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("advancia_bridge_delivery_latency_seconds_count"),
        "{metrics}"
    );
    assert!(
        metrics.contains("advancia_bridge_attestations_accepted_total{destination=\"31338\"}"),
        "{metrics}"
    );
    assert_eq!(stuck(&db).trim(), "no undelivered messages");
}

/// GET /metrics over a raw TCP connection (the test needs no HTTP client of its own).
async fn reqwest_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_binary_signs_final_messages_with_a_key_from_env() {
    let chains = TwoChains::start(1, 1).await;
    // The validator's own Postgres store (nothing else uses this database).
    let db = TestDb::new(&[&MIGRATIONS]).await;
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for i in 0..3u8 {
        chains
            .dispatch_native(Address::repeat_byte(0x60 + i), 1_000)
            .await;
    }
    let validator_hex = {
        // validator_keys(1)[0] is keccak("advancia-validator-0").
        let k = alloy::primitives::keccak256("advancia-validator-0");
        alloy::hex::encode(k)
    };
    assert_eq!(
        key(&validator_hex).address(),
        chains.validators[0].address()
    );
    let destination = format!(
        "{}={},{}",
        chains.b.domain(),
        chains.b.url,
        chains.bridge_b.address()
    );
    let mut child = Command::new(BIN)
        .args([
            "validator",
            "--rpc",
            &chains.a.url,
            "--bridge",
            &chains.bridge_a.address().to_string(),
        ])
        .args([
            "--confirmations",
            "2",
            "--poll-ms",
            "50",
            "--destination",
            &destination,
            "--store",
            &db.url,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--attestations-dir")
        .arg(tmp.path())
        .env_remove("DATABASE_URL")
        .env("ADVANCIA_VALIDATOR_KEY", &validator_hex)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let signatures = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM bridge.signatures")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    // Dispatches in blocks h-2, h-1, h: at depth 2 only the first is final; each mined block
    // makes one more final.
    wait_for("one signature", Duration::from_secs(30), async || {
        signatures().await == 1
    })
    .await;
    chains.a.mine(1).await;
    wait_for("two signatures", Duration::from_secs(30), async || {
        signatures().await == 2
    })
    .await;
    chains.a.mine(1).await;
    wait_for("three signatures", Duration::from_secs(30), async || {
        signatures().await == 3
    })
    .await;
    // SIGTERM: the node stops gracefully.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    assert_eq!(signatures().await, 3);
    // All three were published; the announcement binds the default location to the key.
    let dir = advancia_relayer::attestation::AttestationDir::create(tmp.path()).unwrap();
    assert_eq!(dir.latest().unwrap(), Some(3));
    let announcement = dir.announcement().unwrap().unwrap();
    assert_eq!(announcement.location, format!("http://127.0.0.1:{port}"));
    assert_eq!(
        announcement.verify().unwrap(),
        chains.validators[0].address()
    );
}
