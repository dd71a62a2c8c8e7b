//! Postgres crashes (`pg_ctl stop -m immediate`) and comes back under a running stack with a
//! steady load (issue #20): wallets paying through the API, the indexer ingesting, the ledger
//! posting, webhooks going out. Nothing is restarted but the database. Afterwards every
//! component has resumed by itself, the ledger balances and its audit chain verifies, every
//! payment was indexed and posted exactly once, every webhook went out (a repeat only under
//! the same `webhook-id`), and no request got a 5xx other than 503 with `Retry-After`.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use advancia_auth::Role;
use advancia_db::sqlx::{self, PgPool};
use advancia_e2e::{FACILITY_ID, Hits, SOL, Stack, funded, webhook_receiver};
use advancia_faults::pg::PgCluster;
use base64::Engine;
use serde_json::{Value, json};
use solana_keypair::Keypair;
use solana_signer::Signer;

/// Load before the crash, the outage, and load after the restart. The outage is shorter
/// than a blockhash lives (150 slots of 50 ms): a wallet holding a transaction across it
/// can still send it.
const WARM_UP: Duration = Duration::from_secs(6);
const DOWN_FOR: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(10);
const PAYERS: usize = 2;
/// Payments whose wallets send straight to the node while the database is down, so every
/// pipeline has work waiting the moment it returns.
const SENT_DURING_OUTAGE: usize = 2;

/// One answer the API gave.
struct Answer {
    at: Instant,
    route: &'static str,
    status: u16,
    retry_after: bool,
    body: String,
}

#[derive(Clone, Default)]
struct Answers(Arc<Mutex<Vec<Answer>>>);

impl Answers {
    fn record(&self, route: &'static str, status: u16, retry_after: bool, body: &str) {
        self.0.lock().unwrap().push(Answer {
            at: Instant::now(),
            route,
            status,
            retry_after,
            body: body.chars().take(300).collect(),
        });
    }
}

/// Sends one request; records and returns (status, body).
async fn send(
    answers: &Answers,
    route: &'static str,
    req: reqwest::RequestBuilder,
) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().contains_key("retry-after");
    let text = r.text().await.unwrap_or_default();
    answers.record(route, status, retry_after, &text);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POSTs as a client does, retrying what says "later"; returns the first other answer.
async fn post_retrying(
    stack: &Stack,
    answers: &Answers,
    route: &'static str,
    url: &str,
    token: Option<&str>,
    idempotency_key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let started = Instant::now();
    loop {
        let mut req = stack.http.post(url).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        let (status, v) = send(answers, route, req).await;
        // 503 (the database restarting), 409 (this idempotency key's first try still
        // holds it); any other 5xx is retried too, and fails the test at the end.
        if status < 500 && status != 409 {
            return (status, v);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{route}: still {status} after 60 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A payment intent and the wallet's signed transaction for it.
async fn signed_payment(
    stack: &Stack,
    answers: &Answers,
    patient: &str,
    wallet: &Keypair,
    lamports: u64,
) -> (String, String) {
    let initiate = format!("{}/api/v1/payments/initiate", stack.base);
    let body = json!({"facility_id": hex::encode(FACILITY_ID),
                      "amount": lamports.to_string(), "asset": "SOL"});
    let (s, created) = post_retrying(
        stack,
        answers,
        "initiate",
        &initiate,
        Some(patient),
        None,
        &body,
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let link = created["transaction_request_url"].as_str().unwrap();
    let account = json!({"account": wallet.pubkey().to_string()});
    let (s, txr) = post_retrying(
        stack,
        answers,
        "transaction-request",
        link,
        None,
        None,
        &account,
    )
    .await;
    assert_eq!(s, 200, "{txr}");
    (
        id,
        stack.wallet_sign(txr["transaction"].as_str().unwrap(), wallet),
    )
}

/// What the payers did: (payment id, transaction signature) of each relayed payment.
type Paid = Arc<Mutex<Vec<(String, String)>>>;

/// Pays through the API (intent, transaction request, wallet signature, relay) until `stop`.
async fn payer(
    stack: Arc<Stack>,
    answers: Answers,
    patient: String,
    wallet: Keypair,
    n: usize,
    paid: Paid,
    stop: Arc<AtomicBool>,
) {
    let relay = format!("{}/api/v1/blockchain/transactions/send", stack.base);
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let lamports = SOL / 100 + (n as u64) * 1000 + k;
        let (id, signed) = signed_payment(&stack, &answers, &patient, &wallet, lamports).await;
        // A careful client relays with an idempotency key: its retry after a 503 cannot
        // send twice.
        let key = format!("relay-{n}-{k}");
        let (s, r) = post_retrying(
            &stack,
            &answers,
            "relay",
            &relay,
            Some(&patient),
            Some(&key),
            &json!({"transaction": signed}),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        let signature = r["signature"].as_str().unwrap().to_owned();
        paid.lock().unwrap().push((id, signature));
    }
}

/// Requests that need the database in other ways, and readiness, every 100 ms: recorded,
/// never retried.
async fn prober(stack: Arc<Stack>, answers: Answers, patient: String, stop: Arc<AtomicBool>) {
    let mut k = 0u64;
    let (s, first) = stack.get("/api/v1/payments/history", Some(&patient)).await;
    assert_eq!(s, 200, "{first}");
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let get = |path: String| {
            let req = stack
                .http
                .get(format!("{}{path}", stack.base))
                .bearer_auth(&patient);
            send(&answers, "probe", req)
        };
        let (s, _) = send(
            &answers,
            "ready",
            stack.http.get(format!("{}/ready", stack.base)),
        )
        .await;
        assert!(s == 200 || s == 503, "/ready {s}");
        get("/api/v1/payments/history".into()).await;
        // Asks the chain, then the indexer's tables.
        let sig = "1111111111111111111111111111111111111111111111111111111111111111";
        get(format!("/api/v1/blockchain/transactions/{sig}/status")).await;
        // Not a transaction (422), but the idempotency store is asked first.
        let req = stack
            .http
            .post(format!(
                "{}/api/v1/blockchain/transactions/send",
                stack.base
            ))
            .bearer_auth(&patient)
            .header("idempotency-key", format!("probe-{k}"))
            .json(&json!({"transaction": "AAAA"}));
        send(&answers, "relay-probe", req).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts that move when each component does its work, read from the database.
const PROGRESS: &[(&str, &str)] = &[
    (
        "indexer (ingest)",
        "SELECT count(*) FROM indexer.transactions",
    ),
    (
        "payments worker (finality)",
        "SELECT count(*) FROM payments.payments WHERE status = 'finalized'",
    ),
    ("ledger posting", "SELECT count(*) FROM ledger.transfers"),
    (
        "notifications (events)",
        "SELECT count(*) FROM notifications.notifications",
    ),
];

/// Where each component stood: the [`PROGRESS`] counts and the webhooks received.
async fn progress(db: &PgPool, hits: &Hits) -> BTreeMap<&'static str, i64> {
    let mut now = BTreeMap::from([("webhook delivery", hits.lock().unwrap().len() as i64)]);
    for (name, sql) in PROGRESS {
        if let Ok(n) = sqlx::query_scalar::<_, i64>(sql).fetch_one(db).await {
            now.insert(*name, n);
        }
    }
    now
}

/// When the database was back, and where each component stood before the crash.
type Baseline = Arc<Mutex<Option<(Instant, BTreeMap<&'static str, i64>)>>>;

/// Once the database is back, notes when each component first moves past where it stood:
/// it is working again.
async fn watch(
    db: PgPool,
    hits: Hits,
    baseline: Baseline,
    recovered: Arc<Mutex<BTreeMap<&'static str, Duration>>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let base = baseline.lock().unwrap().clone();
        if let Some((since, base)) = base {
            for (name, n) in progress(&db, &hits).await {
                if base.get(name).is_some_and(|b| n > *b) {
                    recovered
                        .lock()
                        .unwrap()
                        .entry(name)
                        .or_insert_with(|| since.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(db: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

async fn count_of(db: &PgPool, sql: &str, values: &[String]) -> i64 {
    sqlx::query_scalar(sql)
        .bind(values)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_crash_under_load_loses_nothing_doubles_nothing_and_everything_resumes() {
    let pg = PgCluster::start().unwrap();
    let stack = Arc::new(Stack::start_on(&pg.url()).await);
    let (_, patient) = stack.user("patient@example.org", Role::Patient).await;
    let (hits, hook_url) = webhook_receiver().await;
    let (s, hook) = stack
        .post(
            "/api/v1/notifications/webhooks",
            Some(&patient),
            json!({"url": hook_url, "event_types": ["payment.finalized"]}),
        )
        .await;
    assert_eq!(s, 201, "{hook}");
    // The test's own reads: a pool that, like the stack's, must find the server again.
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&stack.db.url)
        .unwrap();

    let answers = Answers::default();
    let paid: Paid = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let baseline: Baseline = Arc::default();
    let recovered: Arc<Mutex<BTreeMap<&'static str, Duration>>> = Arc::default();
    let mut load = Vec::new();
    for n in 0..PAYERS {
        let wallet = funded(&stack.rpc, 20 * SOL).await;
        load.push(tokio::spawn(payer(
            stack.clone(),
            answers.clone(),
            patient.clone(),
            wallet,
            n,
            paid.clone(),
            stop.clone(),
        )));
    }
    load.push(tokio::spawn(prober(
        stack.clone(),
        answers.clone(),
        patient.clone(),
        stop.clone(),
    )));
    let watcher_stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch(
        db.clone(),
        hits.clone(),
        baseline.clone(),
        recovered.clone(),
        watcher_stop.clone(),
    ));
    tokio::time::sleep(WARM_UP).await;

    // Wallets that will send straight to the node while the database is down.
    let outage_wallet = funded(&stack.rpc, 5 * SOL).await;
    let mut held = Vec::new();
    for k in 0..SENT_DURING_OUTAGE {
        held.push(
            signed_payment(
                &stack,
                &answers,
                &patient,
                &outage_wallet,
                SOL / 50 + k as u64,
            )
            .await,
        );
    }
    let before_crash = paid.lock().unwrap().len();
    let mut before = progress(&db, &hits).await;

    pg.crash().unwrap();
    let crashed_at = Instant::now();
    let mut direct = Vec::new();
    for (id, signed) in held {
        let tx: solana_transaction::Transaction = bincode::deserialize(
            &base64::engine::general_purpose::STANDARD
                .decode(signed)
                .unwrap(),
        )
        .unwrap();
        let sig = stack.rpc.send_and_confirm_transaction(&tx).await.unwrap();
        direct.push((id, sig.to_string()));
    }
    tokio::time::sleep(DOWN_FOR.saturating_sub(crashed_at.elapsed())).await;
    pg.start_again().unwrap();
    let up_at = Instant::now();
    // Webhooks in flight at the crash may land during the outage: count from here.
    before.insert("webhook delivery", hits.lock().unwrap().len() as i64);
    *baseline.lock().unwrap() = Some((up_at, before));
    let down = up_at - crashed_at;
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    let mut payments: Vec<(String, String)> = paid.lock().unwrap().clone();
    let after_crash = payments.len() - before_crash;
    payments.extend(direct);
    let ids: Vec<String> = payments.iter().map(|(id, _)| id.clone()).collect();
    let sigs: Vec<String> = payments.iter().map(|(_, s)| s.clone()).collect();
    let n = payments.len() as i64;

    // Everything settles by itself: finalized, indexed, posted, notified.
    let settled = Instant::now();
    loop {
        let finalized = count_of(
            &db,
            "SELECT count(*) FROM payments.payments WHERE id::text = ANY ($1)
                AND status = 'finalized'",
            &ids,
        )
        .await;
        let posted = count_of(
            &db,
            "SELECT count(*) FROM ledger.transfers WHERE ext_signature = ANY ($1)",
            &sigs,
        )
        .await;
        let hooked: BTreeSet<String> = hits
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, b)| {
                let v: Value = serde_json::from_slice(b).ok()?;
                v["data"]["data"]["payment_id"].as_str().map(str::to_owned)
            })
            .collect();
        let notified = ids.iter().filter(|id| hooked.contains(*id)).count() as i64;
        if finalized == n && posted == n && notified == n {
            break;
        }
        assert!(
            settled.elapsed() < Duration::from_secs(90),
            "not settled 90 s after the load: {finalized}/{n} finalized, {posted}/{n} posted, \
             {notified}/{n} webhooks\n{}",
            pg.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settle = settled.elapsed();
    watcher_stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();

    // Indexed exactly once: one row per payment, no stranger.
    let indexed: Vec<(String, i64)> = sqlx::query_as(
        "SELECT signature, count(*) FROM indexer.payments GROUP BY signature ORDER BY 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let mut want: Vec<(String, i64)> = sigs.iter().map(|s| (s.clone(), 1)).collect();
    want.sort();
    assert_eq!(indexed, want, "indexer rows per payment signature");
    // Fed to the ledger exactly once: each payment is its two linked legs (net and fee),
    // the gross amounts add up, nothing else was posted.
    let legs = count(&db, "SELECT count(*) FROM ledger.transfers WHERE code = 1").await;
    assert_eq!(legs, 2 * n, "two legs per payment");
    let total = count(&db, "SELECT count(*) FROM ledger.transfers").await;
    assert_eq!(total, legs, "nothing but the payments was posted");
    let (gross_indexed, gross_posted): (String, String) = sqlx::query_as(
        "SELECT (SELECT sum(amount) FROM indexer.payments)::text,
                (SELECT sum(amount) FROM ledger.transfers WHERE code = 1)::text",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(gross_posted, gross_indexed);
    let audit = stack.state.ledger.verify_audit_chain().await.unwrap();
    assert!(audit.is_intact(), "{audit:?}");
    let rebuilt = stack.state.ledger.rebuild_balances(false).await.unwrap();
    assert!(rebuilt.is_consistent(), "{rebuilt:?}");

    // Webhooks: each payment's `payment.finalized` under one webhook-id; a repeat (a
    // delivery whose answer was lost with the crash) only under the same id.
    let delivered = hits.lock().unwrap().clone();
    let mut ids_per_payment: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (headers, body) in &delivered {
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["type"], "payment.finalized", "{v}");
        let payment = v["data"]["data"]["payment_id"].as_str().unwrap().to_owned();
        let webhook_id = headers["webhook-id"].as_str().unwrap().to_owned();
        ids_per_payment
            .entry(payment)
            .or_default()
            .insert(webhook_id);
    }
    assert_eq!(
        ids_per_payment.keys().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        "one webhook per payment, for no other"
    );
    for (payment, webhook_ids) in &ids_per_payment {
        assert_eq!(webhook_ids.len(), 1, "{payment}: {webhook_ids:?}");
    }
    let repeats = delivered.len() - ids_per_payment.len();

    // No 5xx but 503 with Retry-After.
    let answers: Vec<Answer> = std::mem::take(&mut *answers.0.lock().unwrap());
    let bad: Vec<String> = answers
        .iter()
        .filter(|a| a.status >= 500 && !(a.status == 503 && a.retry_after))
        .map(|a| format!("{} {} {}", a.route, a.status, a.body))
        .collect();
    let mut unavailable: BTreeMap<&str, usize> = BTreeMap::new();
    for a in answers.iter().filter(|a| a.status == 503) {
        *unavailable.entry(a.route).or_default() += 1;
    }
    // The API: the first write, and /ready, answered after the restart.
    let first_after = |route: &str, status: u16| {
        answers
            .iter()
            .find(|a| a.at > up_at && a.route == route && a.status == status)
            .map(|a| a.at - up_at)
    };
    let mut recovered = recovered.lock().unwrap().clone();
    for (name, d) in [
        ("API writes (payment intent)", first_after("initiate", 201)),
        ("API /ready", first_after("ready", 200)),
    ] {
        recovered.insert(name, d.expect(name));
    }
    let intents = count(&db, "SELECT count(*) FROM payments.payments").await;
    let ready = stack.get("/ready", None).await.0;
    assert_eq!(ready, 200);

    println!(
        "postgres down {down:?} (stop -m immediate → accepting again after crash recovery), \
         {n} payments ({before_crash} relayed before the crash, {after_crash} after, \
         {SENT_DURING_OUTAGE} sent to the node during the outage), {} answers: 503 per route \
         {unavailable:?}, {} other 5xx; {repeats} repeated webhooks; {} intents never paid; \
         settled {settle:?} after the load stopped",
        answers.len(),
        bad.len(),
        intents - n,
    );
    println!("recovery after the restart (first work done, no component restarted):");
    for (name, d) in &recovered {
        println!("  {name:<30} {d:?}");
    }
    assert!(bad.is_empty(), "5xx other than 503 + Retry-After: {bad:#?}");
    for name in PROGRESS.iter().map(|(n, _)| *n).chain(["webhook delivery"]) {
        assert!(
            recovered.contains_key(name),
            "{name} never moved after the restart"
        );
    }
}
