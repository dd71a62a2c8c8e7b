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

/// App state whose chain services use the Solana node at `rpc_url`.
pub fn state_on_chain(pool: advancia_db::sqlx::PgPool, rpc_url: String) -> AppState {
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
        let state = state(db.pool.clone());
        let app = advancia_api::app(state.clone(), advancia_api::ApiConfig::default())
            .await
            .unwrap();
        TestApi {
            base: spawn(app).await,
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
