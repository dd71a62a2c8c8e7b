//! Test harness shared by every crate's tests.
//!
//! [`TestDb::new`] creates a fresh database with a unique name on the server that
//! `DATABASE_URL` points at (default: 127.0.0.1:5432), applies the given services'
//! migrations, and drops the database when the value is dropped — also when the
//! test panics, since `Drop` runs during unwinding. `cargo xtask test` sweeps
//! leftovers of killed runs (names start with [`DB_PREFIX`]).

#[cfg(feature = "anvil")]
pub mod anvil;
pub mod smtp;
#[cfg(feature = "solana")]
pub mod solana;

use std::sync::atomic::{AtomicU32, Ordering};

use advancia_db::{DbConfig, ServiceMigrations, with_database};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

pub use advancia_db::sqlx;

/// Prefix of every database this harness creates.
pub const DB_PREFIX: &str = "advtest_";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Routes `tracing` output through libtest's capture so each test shows its own logs
/// on failure. `RUST_LOG` sets the filter (default `info`). Safe to call repeatedly.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A database that exists for the lifetime of this value.
pub struct TestDb {
    pub pool: PgPool,
    /// Connection URL of the test database, for child processes under test.
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl TestDb {
    /// A fresh database with `services`' migrations applied.
    pub async fn new(services: &[&ServiceMigrations]) -> TestDb {
        TestDb::new_on(&DbConfig::from_env().url, services).await
    }

    /// [`TestDb::new`] on the server at `server_url` (a private cluster a fault test runs)
    /// instead of `DATABASE_URL`'s.
    pub async fn new_on(server_url: &str, services: &[&ServiceMigrations]) -> TestDb {
        let db = TestDb::empty_on(server_url).await;
        advancia_db::migrate(&db.pool, services)
            .await
            .unwrap_or_else(|e| panic!("migrations failed in {}: {e}", db.name));
        db
    }

    /// A fresh database with nothing in it.
    pub async fn empty() -> TestDb {
        TestDb::empty_on(&DbConfig::from_env().url).await
    }

    /// [`TestDb::empty`] on the server at `server_url`.
    pub async fn empty_on(server_url: &str) -> TestDb {
        init_tracing();
        let admin_url = server_url.to_owned();
        let name = unique_name();
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach Postgres at {} (set DATABASE_URL or run `cargo xtask test`): {e}",
                advancia_db::redact_url(&admin_url)
            )
        });
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = admin.close().await;

        let url = with_database(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to {name}: {e}"));
        TestDb {
            pool,
            url,
            name,
            admin_url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin_url = self.admin_url.clone();
        // Drop runs in sync context, possibly inside a runtime: do the async cleanup on
        // a thread of its own. FORCE ends connections still held by clones of the pool.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = admin
                        .execute(
                            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                        )
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = done.join();
    }
}

fn unique_name() -> String {
    let thread = std::thread::current();
    let test: String = thread
        .name()
        .unwrap_or("test")
        .rsplit("::")
        .next()
        .unwrap_or("test")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(28)
        .collect();
    format!(
        "{DB_PREFIX}{test}_{}_{}_{:06x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>() & 0xff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_valid_identifiers() {
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        assert!(a.len() <= 63, "{a}");
        assert!(a.starts_with(DB_PREFIX));
    }

    #[tokio::test]
    async fn database_is_dropped_afterwards() {
        let db = TestDb::empty().await;
        let name = db.name.clone();
        let admin = db.admin_url.clone();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(one, 1);
        drop(db);
        let mut conn = PgConnection::connect(&admin).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn database_is_dropped_when_the_test_panics() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let name = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let seen = name.clone();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async {
                let db = TestDb::empty().await;
                *seen.lock().unwrap() = db.name.clone();
                panic!("simulated test failure");
            })
        }));
        assert!(panicked.is_err());
        let name = name.lock().unwrap().clone();
        assert!(name.starts_with(DB_PREFIX));
        let admin = DbConfig::from_env().url;
        rt.block_on(async {
            let mut conn = PgConnection::connect(&admin).await.unwrap();
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
                    .bind(&name)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            assert_eq!(left, 0);
        });
    }
}
