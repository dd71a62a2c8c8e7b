//! Shared by the API's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use advancia_api::AppState;
use advancia_auth::Role;
use advancia_auth::{AuthConfig, AuthService, PasswordHashing, SigningKeys};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// App state over `pool` with fresh signing keys and cheap password hashing.
pub fn state(pool: advancia_db::sqlx::PgPool) -> AppState {
    // Port 1 refuses connections: routes that reach the chain fail with 502 here.
    state_on_chain(pool, "http://127.0.0.1:1".into())
}

/// Plain http to receivers on 127.0.0.1 (test listeners), by the operator allow-list.
pub fn loopback_egress() -> advancia_egress::EgressPolicy {
    advancia_egress::EgressPolicy::production()
        .allowing_http()
        .allowing("127.0.0.1")
        .unwrap()
}

/// App state whose chain services use the Solana node at `rpc_url`.
pub fn state_on_chain(pool: advancia_db::sqlx::PgPool, rpc_url: String) -> AppState {
    state_with(pool, rpc_url, None)
}

/// [`state_on_chain`] whose links start with `public_url`.
pub fn state_with(
    pool: advancia_db::sqlx::PgPool,
    rpc_url: String,
    public_url: Option<String>,
) -> AppState {
    let config = AuthConfig {
        password_hashing: PasswordHashing::INSECURE_FAST,
        ..AuthConfig::default()
    };
    AppState::new(
        pool.clone(),
        AuthService::new(pool.clone(), config, SigningKeys::generate()).unwrap(),
        advancia_ledger::Ledger::new(pool, Default::default()),
        advancia_api::ServicesConfig {
            solana_rpc_url: rpc_url,
            public_url,
            egress: loopback_egress(),
            ..Default::default()
        },
    )
}

pub async fn spawn(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(advancia_api::serve(
        listener,
        router,
        std::future::pending(),
    ));
    base
}

/// The whole application (gateway, every route) on a fresh database and a free port.
pub struct TestApi {
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub db: advancia_test_support::TestDb,
}

impl TestApi {
    pub async fn start() -> TestApi {
        let db = advancia_test_support::TestDb::new(&advancia_api::all_migrations()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // Links point at this server, as ADVANCIA_PUBLIC_URL does in a deployment.
        let state = state_with(
            db.pool.clone(),
            "http://127.0.0.1:1".into(),
            Some(base.clone()),
        );
        let app = advancia_api::app(state.clone(), advancia_api::ApiConfig::default())
            .await
            .unwrap();
        tokio::spawn(advancia_api::serve(listener, app, std::future::pending()));
        TestApi {
            base,
            http: reqwest::Client::new(),
            state,
            db,
        }
    }
}

impl TestApi {
    /// One request; the body parsed as JSON (`Null` when it is not).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// A user with `role`, registered and logged in through the service (as bootstrapping
    /// does); returns (user id, access token).
    pub async fn token_for(&self, email: &str, role: Role) -> (String, String) {
        let user = self
            .state
            .auth
            .register(advancia_auth::RegisterRequest {
                email: email.into(),
                password: "correct horse battery".into(),
                display_name: "T".into(),
            })
            .await
            .unwrap();
        self.state
            .auth
            .set_roles_as_operator(user.id, vec![role])
            .await
            .unwrap();
        let t = self
            .state
            .auth
            .login(email, "correct horse battery", Default::default())
            .await
            .unwrap()
            .into_tokens()
            .unwrap();
        (user.id.to_string(), t.access_token.expose().to_owned())
    }
}

/// The stable slug of a problem+json body's `type`.
pub fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("https://advancia.dev/problems/")
}

/// Debian's `chromium` (installed by `cargo xtask test`), or `ADVANCIA_CHROMIUM`.
pub fn chromium() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("ADVANCIA_CHROMIUM") {
        return std::path::PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        if let Some(p) = std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
        {
            return p;
        }
    }
    panic!(
        "chromium not found on PATH (nor ADVANCIA_CHROMIUM): `cargo xtask test` installs \
         Debian's `chromium` package (or: apt-get install chromium)"
    );
}

/// The DOM after the page's scripts ran (virtual time lets fetches finish first).
pub async fn dump_dom(url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("advancia-chromium-{}", uuid::Uuid::new_v4()));
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(90),
        tokio::process::Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--virtual-time-budget=15000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium did not finish within 90 s")
    .unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
