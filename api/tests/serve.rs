#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Runs the real `advancia` binary against a real Postgres database.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use advancia_test_support::TestDb;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    base: String,
    metrics: String,
}

impl Server {
    fn start(database_url: &str) -> Server {
        let port = free_port();
        let metrics_port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_advancia"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .env("DATABASE_URL", database_url)
            .env("ADVANCIA_PUBLIC_URL", "https://pay.example.test")
            // Dev-only key material: 32-byte hex seeds.
            .env("AUTH_SIGNING_KEY", "11".repeat(32))
            .env("AUTH_TOTP_ENCRYPTION_KEY", "22".repeat(32))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
        }
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/health", self.base)).await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `/ready` until it answers 200 (each check is bounded by 2 s; on a loaded machine the
    /// first answer may come from a check that ran out of time).
    async fn wait_ready(&self) -> reqwest::Response {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = reqwest::get(format!("{}/ready", self.base)).await.unwrap();
            if r.status() == 200 {
                return r;
            }
            let body = r.text().await.unwrap_or_default();
            assert!(Instant::now() < deadline, "never ready: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        // SIGTERM: graceful shutdown must exit 0.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn health_and_ready_against_real_postgres() {
    let db = TestDb::new(&[]).await;
    let server = Server::start(&db.url);
    server.wait_healthy().await;

    let health: serde_json::Value = reqwest::get(format!("{}/health", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let ready = server.wait_ready().await;
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");

    let missing = reqwest::get(format!("{}/nope", server.base)).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    // The binary's own metrics listener counted the requests above.
    let text = reqwest::get(&server.metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "advancia_http_requests_total{route=\"/ready\",method=\"GET\",status=\"200\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("# TYPE advancia_payment_success_ratio gauge"),
        "{text}"
    );

    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn not_ready_when_database_goes_away() {
    let db = TestDb::new(&[]).await;
    let server = Server::start(&db.url);
    server.wait_healthy().await;
    server.wait_ready().await;

    // Drop the database under the running server: liveness stays, readiness fails.
    let url = db.url.clone();
    drop(db);
    let ready = reqwest::get(format!("{}/ready", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "database {url} is gone");
    assert_eq!(ready.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(problem["type"], "https://advancia.dev/problems/not-ready");
    assert_eq!(problem["status"], 503);
    let health = reqwest::get(format!("{}/health", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn serve_fails_clearly_when_postgres_is_unreachable() {
    let port = free_port(); // nothing listens here
    let out = Command::new(env!("CARGO_BIN_EXE_advancia"))
        .arg("migrate")
        .env(
            "DATABASE_URL",
            format!("postgres://postgres:pw@127.0.0.1:{port}/x"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connecting to Postgres"), "{stderr}");
    assert!(!stderr.contains(":pw@"), "password leaked: {stderr}");
}
