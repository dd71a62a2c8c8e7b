//! Shared by the API's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use advancia_api::AppState;
use advancia_auth::{AuthConfig, AuthService, PasswordHashing, SigningKeys};

/// App state over `pool` with fresh signing keys and cheap password hashing.
pub fn state(pool: advancia_db::sqlx::PgPool) -> AppState {
    let config = AuthConfig {
        password_hashing: PasswordHashing::INSECURE_FAST,
        ..AuthConfig::default()
    };
    AppState {
        auth: AuthService::new(pool.clone(), config, SigningKeys::generate()).unwrap(),
        ledger: advancia_ledger::Ledger::new(pool.clone(), Default::default()),
        pool,
        trusted_proxy_hops: 0,
    }
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
