#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
use advancia_db::{DbError, Migration, ServiceMigrations, migrate};
use advancia_test_support::TestDb;

const V1: Migration = Migration {
    version: 1,
    name: "accounts",
    sql: "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);",
};
const V2: Migration = Migration {
    version: 2,
    name: "accounts_note",
    sql: "ALTER TABLE accounts ADD COLUMN note text; CREATE INDEX ON accounts (name);",
};
const ALPHA: ServiceMigrations = ServiceMigrations {
    schema: "alpha",
    migrations: &[V1, V2],
};
// Same table name in another schema: services do not collide.
const BETA: ServiceMigrations = ServiceMigrations {
    schema: "beta",
    migrations: &[V1],
};

#[tokio::test]
async fn applies_each_service_into_its_own_schema_once() {
    let db = TestDb::empty().await;
    let first = migrate(&db.pool, &[&ALPHA, &BETA]).await.unwrap();
    // Three of ours plus the log support (advancia_log), applied first in every database.
    assert_eq!(first.applied.len(), 4);
    assert_eq!(first.applied[0].0, "advancia_log");
    assert_eq!(first.already_applied, 0);

    let again = migrate(&db.pool, &[&ALPHA, &BETA]).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.already_applied, 4);

    sqlx::query("INSERT INTO alpha.accounts (id, name, note) VALUES (1, 'a', 'n')")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO beta.accounts (id, name) VALUES (1, 'b')")
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn edited_migration_is_rejected() {
    let db = TestDb::empty().await;
    migrate(&db.pool, &[&BETA]).await.unwrap();
    const EDITED: ServiceMigrations = ServiceMigrations {
        schema: "beta",
        migrations: &[Migration {
            version: 1,
            name: "accounts",
            sql: "CREATE TABLE accounts (id bigint PRIMARY KEY);",
        }],
    };
    let err = migrate(&db.pool, &[&EDITED]).await.unwrap_err();
    assert!(
        matches!(err, DbError::ChecksumMismatch { version: 1, .. }),
        "{err}"
    );
}

/// A deliberate amendment: the new text names the checksum it replaces, so databases that
/// applied the old text accept it (and record the new checksum); fresh ones run the new text.
#[tokio::test]
async fn amended_migration_is_accepted_only_when_it_names_the_old_text() {
    let db = TestDb::empty().await;
    migrate(&db.pool, &[&BETA]).await.unwrap();
    let old = advancia_db::checksum(V1.sql);
    let amended: &'static str = Box::leak(
        format!(
            "-- advancia:amends {old}\nCREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, note text);"
        )
        .into_boxed_str(),
    );
    let migrations: &'static [Migration] = Box::leak(Box::new([Migration {
        version: 1,
        name: "accounts",
        sql: amended,
    }]));
    let service = ServiceMigrations {
        schema: "beta",
        migrations,
    };
    let report = migrate(&db.pool, &[&service]).await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    // Recorded: the next run sees the new text as the applied one.
    let recorded: String = sqlx::query_scalar(
        "SELECT checksum FROM public.advancia_migrations WHERE schema_name = 'beta' AND version = 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(recorded, advancia_db::checksum(amended));
    assert!(
        migrate(&db.pool, &[&service])
            .await
            .unwrap()
            .applied
            .is_empty()
    );

    // Naming another checksum is no licence.
    let wrong: &'static str = Box::leak(
        format!(
            "-- advancia:amends {}\nCREATE TABLE accounts (id bigint);",
            "0".repeat(64)
        )
        .into_boxed_str(),
    );
    let migrations: &'static [Migration] = Box::leak(Box::new([Migration {
        version: 1,
        name: "accounts",
        sql: wrong,
    }]));
    let err = migrate(
        &db.pool,
        &[&ServiceMigrations {
            schema: "beta",
            migrations,
        }],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DbError::ChecksumMismatch { .. }), "{err}");
}

#[tokio::test]
async fn database_newer_than_code_is_rejected() {
    let db = TestDb::empty().await;
    migrate(&db.pool, &[&ALPHA]).await.unwrap();
    const OLDER: ServiceMigrations = ServiceMigrations {
        schema: "alpha",
        migrations: &[V1],
    };
    let err = migrate(&db.pool, &[&OLDER]).await.unwrap_err();
    assert!(
        matches!(err, DbError::UnknownAppliedMigration { version: 2, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn failing_migration_rolls_back_and_names_itself() {
    let db = TestDb::empty().await;
    const BROKEN: ServiceMigrations = ServiceMigrations {
        schema: "gamma",
        migrations: &[
            V1,
            Migration {
                version: 2,
                name: "broken",
                sql: "CREATE TABLE half (id int); SELECT no_such_function();",
            },
        ],
    };
    let err = migrate(&db.pool, &[&BROKEN]).await.unwrap_err();
    assert!(
        matches!(
            err,
            DbError::MigrationFailed {
                version: 2,
                name: "broken",
                ..
            }
        ),
        "{err}"
    );
    // Version 1 stayed, version 2 left nothing behind.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'gamma' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(tables, vec!["accounts".to_owned()]);
}

#[tokio::test]
async fn unordered_versions_are_rejected() {
    let db = TestDb::empty().await;
    const UNORDERED: ServiceMigrations = ServiceMigrations {
        schema: "delta",
        migrations: &[V2, V1],
    };
    let err = migrate(&db.pool, &[&UNORDERED]).await.unwrap_err();
    assert!(
        matches!(err, DbError::Unordered { schema: "delta" }),
        "{err}"
    );
}

#[tokio::test]
async fn concurrent_migrators_apply_once() {
    let db = TestDb::empty().await;
    let runs = futures_join(&db).await;
    let applied: usize = runs.iter().map(|r| r.applied.len()).sum();
    // Two of the service's and the log support's one.
    assert_eq!(applied, 3, "each migration applied by exactly one migrator");
}

async fn futures_join(db: &TestDb) -> Vec<advancia_db::MigrationReport> {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            migrate(&pool, &[&ALPHA]).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
