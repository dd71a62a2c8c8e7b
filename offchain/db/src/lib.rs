//! Postgres plumbing shared by every service: connection settings and a
//! migration runner that gives each service its own schema.
//!
//! Why not `sqlx::migrate!`: sqlx keeps one `_sqlx_migrations` table per
//! database with globally unique versions, so two services' migrators in one
//! database reject each other's rows. Here each service owns a schema, and its
//! migrations are tracked by `(schema, version)`, so services can share one
//! database or each have their own, as the architecture allows.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgPool};

pub use sqlx;

pub mod follow;
pub mod log;

/// Default when `DATABASE_URL` is unset: the machine's local server, trust auth.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Advisory-lock key serialising concurrent migrators (several replicas starting at once).
const MIGRATION_LOCK_KEY: i64 = 0x6164_7661_6e63_6961; // "advancia"

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("database unreachable: {0}")]
    Unreachable(#[source] sqlx::Error),
    #[error("migration {schema}/{version} ({name}) failed: {source}")]
    MigrationFailed {
        schema: &'static str,
        version: u32,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "migration {schema}/{version} was changed after it was applied (checksum {applied} in the database, {expected} in the code)"
    )]
    ChecksumMismatch {
        schema: String,
        version: u32,
        applied: String,
        expected: String,
    },
    #[error(
        "schema {schema} has migration {version} applied that this build does not know (database is newer than the code)"
    )]
    UnknownAppliedMigration { schema: String, version: u32 },
    #[error("migrations of schema {schema} are not in strictly increasing version order")]
    Unordered { schema: &'static str },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Connection settings, read from the environment by services and tests alike.
#[derive(Clone)]
pub struct DbConfig {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl std::fmt::Debug for DbConfig {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl DbConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }

    /// `DATABASE_URL`, else [`DEFAULT_DATABASE_URL`].
    pub fn from_env() -> Self {
        Self::new(std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into()))
    }

    pub fn connect_options(&self) -> Result<PgConnectOptions, DbError> {
        self.url
            .parse::<PgConnectOptions>()
            .map_err(|e| DbError::InvalidUrl(format!("{}: {e}", redact_url(&self.url))))
    }

    /// A pool; connections are opened lazily, so this succeeds while the server is down
    /// and [`ping`] is what readiness checks call.
    pub fn pool(&self) -> Result<PgPool, DbError> {
        Ok(PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_lazy_with(self.connect_options()?))
    }

    /// A pool with one connection already established (fails fast if the server is down).
    pub async fn connect(&self) -> Result<PgPool, DbError> {
        let pool = self.pool()?;
        ping(&pool).await?;
        Ok(pool)
    }
}

/// `true` when a round trip to the server succeeds.
pub async fn ping(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(DbError::Unreachable)
}

/// Replaces the password in a URL with `***` for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &url[scheme_end + 3 + at..]
        ),
        _ => url.to_owned(),
    }
}

/// `url` with its database name replaced by `db` (query parameters kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// One SQL migration. The SQL runs with `search_path` set to the service's schema,
/// so it can name its tables unqualified.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The ordered migrations of one service, which owns `schema`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceMigrations {
    pub schema: &'static str,
    pub migrations: &'static [Migration],
}

/// The checksum recorded for an applied migration text (what `-- advancia:amends` names).
pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Whether `sql` declares that it amends the text whose checksum is `applied`: a line
/// `-- advancia:amends <sha256 of the old text>`. Editing an applied migration is an error
/// unless the new text says so, which makes every such change deliberate and reviewable.
fn amends(sql: &str, applied: &str) -> bool {
    sql.lines().any(|l| {
        l.strip_prefix("-- advancia:amends ")
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|sum| sum == applied)
    })
}

/// What [`migrate`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// `(schema, version, name)` of each migration applied by this call.
    pub applied: Vec<(String, u32, String)>,
    /// Migrations already present (checksums verified).
    pub already_applied: usize,
}

/// Applies each service's pending migrations, each in its own transaction, under an
/// advisory lock so concurrent starters do not race. Applied migrations are verified
/// by checksum: editing a migration that already ran is an error, not a silent skip.
pub fn migrate<'a>(
    pool: &'a PgPool,
    services: &'a [&'a ServiceMigrations],
) -> Pin<Box<dyn Future<Output = Result<MigrationReport, DbError>> + Send + 'a>> {
    // Boxed as `dyn Future + Send`: rustc cannot otherwise prove the future `Send` for
    // every lifetime (sqlx's `Executor` on `&mut PgConnection`), which breaks callers
    // that `tokio::spawn` it.
    Box::pin(async move {
        let mut conn = pool.acquire().await.map_err(DbError::Unreachable)?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
        let result = migrate_locked(&mut conn, services).await;
        // Unlock even on failure; if this fails too the session end releases the lock.
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await;
        result
    })
}

async fn migrate_locked(
    conn: &mut sqlx::PgConnection,
    services: &[&ServiceMigrations],
) -> Result<MigrationReport, DbError> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS public.advancia_migrations (
            schema_name text NOT NULL,
            version integer NOT NULL,
            name text NOT NULL,
            checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (schema_name, version)
        )",
    )
    .await?;

    let mut report = MigrationReport::default();
    // The log support every followed log's trigger calls comes first, in every database.
    let support = [&log::MIGRATIONS];
    for service in support.iter().copied().chain(services.iter().copied()) {
        if service
            .migrations
            .windows(2)
            .any(|w| w[0].version >= w[1].version)
        {
            return Err(DbError::Unordered {
                schema: service.schema,
            });
        }
        let applied: Vec<(i32, String)> = sqlx::query_as(
            "SELECT version, checksum FROM public.advancia_migrations
             WHERE schema_name = $1 ORDER BY version",
        )
        .bind(service.schema)
        .fetch_all(&mut *conn)
        .await?;

        for (version, applied_sum) in &applied {
            let version = u32::try_from(*version).unwrap_or(u32::MAX);
            match service.migrations.iter().find(|m| m.version == version) {
                None => {
                    return Err(DbError::UnknownAppliedMigration {
                        schema: service.schema.to_owned(),
                        version,
                    });
                }
                Some(m) if checksum(m.sql) != *applied_sum && amends(m.sql, applied_sum) => {
                    // The text was amended on purpose; record the new text's checksum.
                    sqlx::query(
                        "UPDATE public.advancia_migrations SET checksum = $3
                          WHERE schema_name = $1 AND version = $2",
                    )
                    .bind(service.schema)
                    .bind(i32::try_from(version).unwrap_or(i32::MAX))
                    .bind(checksum(m.sql))
                    .execute(&mut *conn)
                    .await?;
                    tracing::info!(
                        schema = service.schema,
                        version,
                        "amended migration accepted"
                    );
                    report.already_applied += 1;
                }
                Some(m) if checksum(m.sql) != *applied_sum => {
                    return Err(DbError::ChecksumMismatch {
                        schema: service.schema.to_owned(),
                        version,
                        applied: applied_sum.clone(),
                        expected: checksum(m.sql),
                    });
                }
                Some(_) => report.already_applied += 1,
            }
        }

        for m in service.migrations {
            if applied
                .iter()
                .any(|(v, _)| i64::from(*v) == i64::from(m.version))
            {
                continue;
            }
            let fail = |source| DbError::MigrationFailed {
                schema: service.schema,
                version: m.version,
                name: m.name,
                source,
            };
            let mut tx = conn.begin().await?;
            // Schema names are compile-time constants of our own crates, never user input.
            let prelude = format!(
                "CREATE SCHEMA IF NOT EXISTS \"{0}\"; SET LOCAL search_path TO \"{0}\", public;",
                service.schema
            );
            tx.execute(prelude.as_str()).await.map_err(fail)?;
            tx.execute(m.sql).await.map_err(fail)?;
            sqlx::query(
                "INSERT INTO public.advancia_migrations (schema_name, version, name, checksum)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(service.schema)
            .bind(i32::try_from(m.version).unwrap_or(i32::MAX))
            .bind(m.name)
            .bind(checksum(m.sql))
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            tracing::info!(
                schema = service.schema,
                version = m.version,
                name = m.name,
                "migration applied"
            );
            report
                .applied
                .push((service.schema.to_owned(), m.version, m.name.to_owned()));
        }
    }
    Ok(report)
}

/// Resolves on Ctrl-C or SIGTERM: our service binaries (API, indexer) stop gracefully on
/// either, as process managers and `cargo xtask demo` send SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }

    #[test]
    fn redacts_password_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("not a url"), "not a url");
        let cfg = DbConfig::new("postgres://u:hunter2@h/db");
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
