//! Shared by the API's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use advancia_api::AppState;
use advancia_auth::{AuthConfig, AuthService, PasswordHashing, SigningKeys};

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
