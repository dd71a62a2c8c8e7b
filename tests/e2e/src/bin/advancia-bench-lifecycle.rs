//! `cargo xtask bench lifecycle`: how long after a block is final does a payment read
//! `finalized`, and its signed webhook arrive (issue #18, ADR 0023)?
//!
//! One process runs the local node, the indexer, the API with its followers (the payments
//! lifecycle worker, the ledger's posting rules, the outbox dispatcher) and the notification
//! workers, plus a webhook receiver registered for the paying user. Wallets sign and send
//! payments at each rate (default 10, 50 and 100 per second) through the Solana Pay flow
//! (initiate, transaction request, sign, send to the node). Nobody polls a status:
//! - the moment a slot becomes final is read from the node itself (`finalized` slot);
//! - (a) the moment an intent reads `finalized` is its `payment.status_changed` event's
//!   commit, heard on the payments outbox's own channel;
//! - (b) the moment its signed webhook arrives is the receiver's.
//!
//! Reported per rate: P50/P95/P99 of (a) and (b) after finality, sustained payments/s end to
//! end, lost and duplicated webhooks (a duplicate is a second webhook *id* for one payment;
//! a retry under the same id is allowed by Standard Webhooks), beside the node's own
//! finality time (a slot's production to its finality) measured in the same run.
//!
//! Flags: `--rates 10,50,100`, `--seconds S` per rate (default 10).
#![allow(clippy::unwrap_used)] // a benchmark: a failed set-up step aborts it

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use advancia_auth::Role;
use advancia_e2e::{FACILITY_ID, SOL, Stack, funded};
use advancia_localnet::{Commitment, LocalnetConfig};
use advancia_outbox::OutboxLog;
use axum::body::Bytes;
use axum::http::HeaderMap;
use base64::Engine;
use serde_json::{Value, json};
use solana_keypair::Keypair;
use solana_signer::Signer;
use uuid::Uuid;

/// When each slot was first seen produced and final, by the bench's watcher of the node.
#[derive(Default)]
struct Slots {
    produced: BTreeMap<u64, Instant>,
    finalized: BTreeMap<u64, Instant>,
}

#[derive(Default)]
struct Seen {
    /// payment id → (moment its finalized event committed, its slot, its signature)
    finalized: HashMap<Uuid, (Instant, u64, String)>,
    /// transaction signature → moment the indexer's row for it reached `finalized`
    indexed: HashMap<String, Instant>,
    /// payment id → webhook ids with their first arrival
    webhooks: HashMap<Uuid, Vec<(String, Instant)>>,
    webhook_retries: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let rates: Vec<u32> = arg("--rates", "10,50,100".to_owned())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let seconds: u64 = arg("--seconds", 10);
    // Slots at a validator's pace (400 ms), finality 3 slots behind (the figures are taken
    // after finality, so the lag only lengthens the run); the gateway's limits would
    // (rightly) refuse a load from one client.
    let node = LocalnetConfig {
        slot_duration: Duration::from_millis(400),
        ..LocalnetConfig::for_tests()
    };
    let stack = Arc::new(
        Stack::start_with(
            node.clone(),
            "payments=100000000/min,default=100000000/min,auth=100000000/min,blockchain=100000000/min",
        )
        .await,
    );
    let state = stack.state.clone();

    // The notification workers (delivery outbox and the payment-event readers), as serve runs them.
    let channels = advancia_notifications::config::ChannelsConfig::default()
        .channels(&state.notifications)
        .unwrap();
    let shutdown = advancia_api::ops::Shutdown::new();
    tokio::spawn(advancia_notifications::config::run_background(
        state.notifications.clone(),
        channels,
        Default::default(),
        shutdown.wait(),
    ));

    let seen = Arc::new(Mutex::new(Seen::default()));
    // The webhook receiver.
    let receiver = {
        let seen = seen.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                async move {
                    let now = Instant::now();
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let kind = v["type"].as_str().or(v["event_type"].as_str());
                    let payment = v["data"]["data"]["payment_id"]
                        .as_str()
                        .and_then(|p| p.parse::<Uuid>().ok());
                    if let (Some("payment.finalized"), Some(p)) = (kind, payment) {
                        let mut s = seen.lock().unwrap();
                        let hooks = s.webhooks.entry(p).or_default();
                        if hooks.iter().any(|(h, _)| *h == id) {
                            s.webhook_retries += 1;
                        } else {
                            hooks.push((id, now));
                        }
                    }
                    "ok"
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let (_, patient) = stack.user("bench-patient@example.org", Role::Patient).await;
    let (s, hook) = stack
        .post(
            "/api/v1/notifications/webhooks",
            Some(&patient),
            json!({"url": hook_url}),
        )
        .await;
    assert_eq!(s, 201, "{hook}");

    // The node's slots: produced and final, stamped by a watcher in this process.
    let slots = Arc::new(Mutex::new(Slots::default()));
    {
        let (stack, slots) = (stack.clone(), slots.clone());
        tokio::spawn(async move {
            let (mut produced, mut finalized) = (0u64, 0u64);
            loop {
                let now = Instant::now();
                let p = stack.node.slot(Commitment::Processed);
                let f = stack.node.slot(Commitment::Finalized);
                {
                    let mut s = slots.lock().unwrap();
                    for slot in produced + 1..=p {
                        s.produced.insert(slot, now);
                    }
                    for slot in finalized + 1..=f {
                        s.finalized.insert(slot, now);
                    }
                }
                (produced, finalized) = (p.max(produced), f.max(finalized));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    // The payments outbox: each finalized status change as it commits.
    {
        let (pool, seen) = (state.pool.clone(), seen.clone());
        tokio::spawn(async move {
            let log = OutboxLog::new(pool.clone(), advancia_payments::OUTBOX);
            let mut after = log.head().await.unwrap();
            let mut l = advancia_db::sqlx::postgres::PgListener::connect_with(&pool)
                .await
                .unwrap();
            l.listen(advancia_payments::OUTBOX.table).await.unwrap();
            loop {
                let entries = advancia_db::follow::LogSource::read_after(&log, after, 1000)
                    .await
                    .unwrap();
                let now = Instant::now();
                for e in &entries {
                    after = e.seq;
                    if e.kind == "payment.status_changed" && e.payload["status"] == "finalized" {
                        let id = e.payload["payment_id"].as_str().unwrap().parse().unwrap();
                        let slot = e.payload["slot"].as_u64().unwrap_or_default();
                        let sig = e.payload["signature"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        seen.lock().unwrap().finalized.insert(id, (now, slot, sig));
                    }
                }
                if entries.len() < 1000 {
                    let _ = tokio::time::timeout(Duration::from_millis(200), l.recv()).await;
                }
            }
        });
    }

    // The indexer's stream: when each payment row is written at `finalized` (splits the
    // latency into the indexer's share and the payments worker's).
    {
        let (pool, seen) = (state.pool.clone(), seen.clone());
        tokio::spawn(async move {
            use advancia_indexer::stream::{IndexerLog, StreamFilter, head_position};
            let log = IndexerLog::new(pool.clone(), StreamFilter::default());
            let mut after = head_position(&pool).await.unwrap();
            let mut l = advancia_db::sqlx::postgres::PgListener::connect_with(&pool)
                .await
                .unwrap();
            l.listen(advancia_indexer::NOTIFY_CHANNEL).await.unwrap();
            loop {
                let entries = advancia_db::follow::LogSource::read_after(&log, after, 1000)
                    .await
                    .unwrap();
                let now = Instant::now();
                for e in &entries {
                    after = e.seq;
                    if e.source == "payments" && e.commitment.as_deref() == Some("finalized") {
                        seen.lock()
                            .unwrap()
                            .indexed
                            .insert(e.signature.clone(), now);
                    }
                }
                if entries.len() < 1000 {
                    let _ = tokio::time::timeout(Duration::from_millis(200), l.recv()).await;
                }
            }
        });
    }

    let wallets: Vec<Arc<Keypair>> = {
        let mut w = Vec::new();
        for _ in 0..32 {
            w.push(Arc::new(funded(&stack.rpc, 1_000 * SOL).await));
        }
        w
    };
    println!(
        "lifecycle bench ({} build): node slot {:?}, finality {} slots behind confirmed; \
         latencies are from the slot's finality; node_final = a slot's production to its finality",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        node.slot_duration,
        node.finalization_lag
    );
    println!(
        "{:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6} {:>10}",
        "rate/s",
        "paid",
        "index95",
        "status50",
        "status95",
        "status99",
        "hook50",
        "hook95",
        "hook99",
        "e2e/s",
        "lost",
        "dup",
        "node_final"
    );
    for rate in rates {
        let n = usize::try_from(u64::from(rate) * seconds).unwrap();
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let due = started + Duration::from_secs_f64(i as f64 / f64::from(rate));
            tokio::time::sleep_until(due.into()).await;
            let (stack, patient, wallet) = (
                stack.clone(),
                patient.clone(),
                wallets[i % wallets.len()].clone(),
            );
            tasks.push(tokio::spawn(async move {
                let (s, created) = stack
                    .post(
                        "/api/v1/payments/initiate",
                        Some(&patient),
                        json!({"facility_id": hex::encode(FACILITY_ID), "amount": "1000", "asset": "SOL"}),
                    )
                    .await;
                assert_eq!(s, 201, "{created}");
                let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
                let link = created["transaction_request_url"].as_str().unwrap();
                let (s, txr) = stack
                    .post(link, None, json!({"account": wallet.pubkey().to_string()}))
                    .await;
                assert_eq!(s, 200, "{txr}");
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(txr["transaction"].as_str().unwrap())
                    .unwrap();
                let mut tx: solana_transaction::Transaction = bincode::deserialize(&raw).unwrap();
                let blockhash = tx.message.recent_blockhash;
                tx.try_sign(&[wallet.as_ref()], blockhash).unwrap();
                stack.rpc.send_transaction(&tx).await.unwrap();
                id
            }));
        }
        let mut ids = Vec::with_capacity(n);
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        // Everything final and delivered, or a minute past the last send.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let done = {
                let s = seen.lock().unwrap();
                ids.iter()
                    .all(|id| s.finalized.contains_key(id) && s.webhooks.contains_key(id))
            };
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await; // late duplicates
        let s = seen.lock().unwrap();
        let sl = slots.lock().unwrap();
        let mut index_lat = Vec::new();
        let mut status_lat = Vec::new();
        let mut hook_lat = Vec::new();
        let mut node_final = Vec::new();
        let (mut lost, mut dup) = (0usize, 0usize);
        let mut last_final = started;
        for id in &ids {
            let Some((at, slot, sig)) = s.finalized.get(id) else {
                lost += 1;
                continue;
            };
            let (at, slot) = (*at, *slot);
            last_final = last_final.max(at);
            let Some(&final_at) = sl.finalized.get(&slot) else {
                continue;
            };
            if let Some(&produced) = sl.produced.get(&slot) {
                node_final.push(final_at.duration_since(produced).as_secs_f64());
            }
            status_lat.push(at.saturating_duration_since(final_at).as_secs_f64());
            if let Some(indexed) = s.indexed.get(sig) {
                index_lat.push(indexed.saturating_duration_since(final_at).as_secs_f64());
            }
            match s.webhooks.get(id).map(Vec::as_slice) {
                None | Some([]) => lost += 1,
                Some([(_, hook_at)]) => {
                    hook_lat.push(hook_at.saturating_duration_since(final_at).as_secs_f64());
                }
                Some([(_, hook_at), more @ ..]) => {
                    dup += more.len();
                    hook_lat.push(hook_at.saturating_duration_since(final_at).as_secs_f64());
                }
            }
        }
        for v in [
            &mut index_lat,
            &mut status_lat,
            &mut hook_lat,
            &mut node_final,
        ] {
            v.sort_by(f64::total_cmp);
        }
        let ms = |v: &[f64], p| format!("{:.0}ms", percentile(v, p) * 1000.0);
        let e2e = status_lat.len() as f64 / last_final.duration_since(started).as_secs_f64();
        println!(
            "{:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9.1} {:>6} {:>6} {:>10}",
            rate,
            status_lat.len(),
            ms(&index_lat, 95.0),
            ms(&status_lat, 50.0),
            ms(&status_lat, 95.0),
            ms(&status_lat, 99.0),
            ms(&hook_lat, 50.0),
            ms(&hook_lat, 95.0),
            ms(&hook_lat, 99.0),
            e2e,
            lost,
            dup,
            ms(&node_final, 50.0),
        );
    }
    let retries = seen.lock().unwrap().webhook_retries;
    println!("webhook retries under the same webhook-id (allowed): {retries}");
    shutdown.trigger();
}
