use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use advancia_notifications::channels::{Channels, InAppChannel, WebhookChannel};
use advancia_notifications::outbox::{OutboxWorker, WorkerConfig};
use advancia_notifications::{ChannelKind, NotificationService, PreferencesUpdate};
use advancia_test_support::TestDb;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use tokio::sync::Mutex;
use uuid::Uuid;

pub async fn db() -> TestDb {
    TestDb::new(&[&advancia_notifications::MIGRATIONS]).await
}

pub fn fast_worker_config() -> WorkerConfig {
    WorkerConfig {
        batch: 16,
        concurrency: 4,
        lease: Duration::from_secs(2),
        backoff_base: Duration::from_millis(40),
        backoff_max: Duration::from_millis(200),
        idle_poll: Duration::from_millis(50),
    }
}

pub fn worker(db: &TestDb, channels: Channels) -> OutboxWorker {
    OutboxWorker::new(db.pool.clone(), channels, fast_worker_config())
}

/// Plain http to the test receivers on 127.0.0.1, which the operator allow-list admits.
pub fn loopback_egress() -> advancia_egress::EgressPolicy {
    advancia_egress::EgressPolicy::production()
        .allowing_http()
        .allowing("127.0.0.1")
        .unwrap()
}

pub fn web_and_inapp(db: &TestDb) -> Channels {
    Channels::new()
        .with(WebhookChannel::new(Duration::from_secs(5), &loopback_egress()).unwrap())
        .with(InAppChannel::new(db.pool.clone()))
}

/// Runs rounds until nothing is due and nothing is leased, or panics after `limit`.
pub async fn drain(w: &OutboxWorker, db: &TestDb, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        w.run_once().await.unwrap();
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications.deliveries WHERE status = 'pending'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} deliveries still pending"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn prefs(svc: &NotificationService, user: Uuid, channels: &[ChannelKind]) {
    svc.set_preferences(
        user,
        &PreferencesUpdate {
            channels: channels.to_vec(),
            email: Some("patient@example.org".into()),
            phone: Some("+33612345678".into()),
            push_token: Some("device-token-1".into()),
            time_zone: None,
            quiet_start: None,
            quiet_end: None,
        },
    )
    .await
    .unwrap();
}

/// One HTTP request as a receiver saw it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

/// A webhook receiver: records every request, answers `fail_first` requests with 500,
/// stalls the first request for a long time when `stall_first` is set.
#[derive(Default)]
pub struct Receiver {
    pub hits: Mutex<Vec<Hit>>,
    pub fail_first: AtomicUsize,
    pub stall_first: std::sync::atomic::AtomicBool,
    pub status: std::sync::atomic::AtomicU16,
}

impl Receiver {
    /// webhook-id → times received.
    pub async fn by_id(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for h in self.hits.lock().await.iter() {
            *m.entry(h.headers["webhook-id"].clone()).or_default() += 1;
        }
        m
    }
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    r.hits.lock().await.push(Hit { headers, body });
    if r.stall_first.swap(false, Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    if r.fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    match r.status.load(Ordering::SeqCst) {
        0 => StatusCode::NO_CONTENT,
        s => StatusCode::from_u16(s).unwrap(),
    }
}

/// Serves `router` on a free local port.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

pub async fn webhook_receiver() -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    let addr = serve(
        axum::Router::new()
            .route("/hook", post(receive))
            .with_state(r.clone()),
    )
    .await;
    (r, format!("http://{addr}/hook"))
}

/// Checks every hit with the reference `standardwebhooks` implementation; returns the
/// `(webhook-id, type)` of each verified delivery.
pub async fn verify_with_reference(secret: &str, hits: &[Hit]) -> Vec<(String, String)> {
    reference_verdicts(secret, hits)
        .await
        .iter()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(
                parts[0], "ok",
                "reference verifier rejected a delivery: {l}"
            );
            (parts[1].to_owned(), parts[2].to_owned())
        })
        .collect()
}

/// The reference verifier's line per hit: `ok <id> <type>` or `bad <id> <error>`.
pub async fn reference_verdicts(secret: &str, hits: &[Hit]) -> Vec<String> {
    let input = serde_json::json!({
        "secret": secret,
        "deliveries": hits.iter().map(|h| serde_json::json!({
            "headers": h.headers,
            "body_b64": base64::engine::general_purpose::STANDARD.encode(&h.body),
        })).collect::<Vec<_>>(),
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify_webhooks.py");
    let mut child = tokio::process::Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the webhook signature tests (cargo xtask test installs it)");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "verify_webhooks.py failed (is the PyPI package `standardwebhooks` installed? `cargo xtask test` installs it): {stderr}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub use advancia_test_support::smtp::{SmtpSink, python};

/// Messages an [`SmtpSink`] received, decoded by Python's `email` package.
pub trait Received {
    fn messages(&self) -> Vec<serde_json::Value>;
}

impl Received for SmtpSink {
    /// Messages received so far, decoded by Python's `email` package.
    fn messages(&self) -> Vec<serde_json::Value> {
        let maildir = self.maildir();
        if !maildir.join("new").exists() {
            return vec![];
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/read_maildir.py");
        let out = std::process::Command::new(python())
            .arg(script)
            .arg(&maildir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}
