//! `advancia-ledger metrics`: the real binary serves the books' gauges read from Postgres.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use advancia_ledger::{AccountKind, NewTransfer, WriteMode, transfer_flags as tf};

use crate::common::{USD, account, create, setup, transfer};

/// `GET /metrics` over a plain TCP connection (the responder closes after one answer).
fn scrape(port: u16) -> Option<String> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn metrics_subcommand_serves_counts_and_pending_amounts() {
    let (db, ledger) = setup(WriteMode::Batched).await;
    create(
        &ledger,
        &[
            account(1, USD, AccountKind::Asset, 0),
            account(2, USD, AccountKind::Liability, 0),
        ],
    )
    .await;
    ledger
        .create_transfer(&transfer(10, 1, 2, 500))
        .await
        .unwrap();
    ledger
        .create_transfer(&NewTransfer {
            flags: tf::PENDING,
            ..transfer(11, 1, 2, 70)
        })
        .await
        .unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _child = Kill(
        Command::new(env!("CARGO_BIN_EXE_advancia-ledger"))
            .args(["metrics", "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", &db.url)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        if let Some(t) = tokio::task::spawn_blocking(move || scrape(port))
            .await
            .unwrap()
        {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "metrics endpoint did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        text.contains("advancia_build_info{binary=\"advancia-ledger\""),
        "{text}"
    );
    assert!(
        text.contains("\nadvancia_ledger_accounts{ledger=\"1\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("\nadvancia_ledger_transfers{ledger=\"1\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("\nadvancia_ledger_pending_debits_base_units{ledger=\"1\"} 70\n"),
        "{text}"
    );
}
