#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! The gap-safe log (`advancia_log.append`) and the follower (ADR 0023).

use std::time::Duration;

use advancia_db::follow::{BoxError, Cursor, FollowConfig, Follower, Handler, LogSource};
use advancia_db::{Migration, ServiceMigrations};
use advancia_test_support::TestDb;
use sqlx::{Connection, PgConnection, PgPool};

/// A producer with a followed log, and a consumer with a cursor table and an effects table
/// (primary key on the position: handling an entry twice fails loudly).
const PRODUCER: ServiceMigrations = ServiceMigrations {
    schema: "producer",
    migrations: &[Migration {
        version: 1,
        name: "log",
        sql: "CREATE SEQUENCE events_seq;
              CREATE TABLE events (seq bigint PRIMARY KEY, body text NOT NULL);
              CREATE TRIGGER events_append BEFORE INSERT ON events FOR EACH ROW
                  EXECUTE FUNCTION advancia_log.append('producer.events_seq', 'producer.events');
              -- The same log without the discipline: what a bare `id > cursor` reader sees.
              CREATE TABLE bare (seq bigserial PRIMARY KEY, body text NOT NULL);",
    }],
};
const CONSUMER: ServiceMigrations = ServiceMigrations {
    schema: "consumer",
    migrations: &[Migration {
        version: 1,
        name: "cursor",
        sql: "CREATE TABLE cursors (name text PRIMARY KEY, position bigint NOT NULL DEFAULT 0,
                                    updated_at timestamptz NOT NULL DEFAULT now());
              CREATE TABLE effects (seq bigint PRIMARY KEY, body text NOT NULL);",
    }],
};

#[derive(Clone)]
struct Events {
    pool: PgPool,
    table: &'static str,
}

impl LogSource for Events {
    type Entry = (i64, String);

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn channel(&self) -> &str {
        "producer.events"
    }

    async fn read_after(&self, after: i64, limit: u32) -> Result<Vec<(i64, String)>, BoxError> {
        Ok(sqlx::query_as(&format!(
            "SELECT seq, body FROM {} WHERE seq > $1 ORDER BY seq LIMIT $2",
            self.table
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    fn position(e: &(i64, String)) -> i64 {
        e.0
    }
}

/// Writes each entry as an effect in the cursor's transaction.
struct Record;

impl Handler<(i64, String)> for Record {
    async fn handle(
        &mut self,
        conn: &mut PgConnection,
        entries: &[(i64, String)],
    ) -> Result<(), BoxError> {
        for (seq, body) in entries {
            sqlx::query("INSERT INTO consumer.effects (seq, body) VALUES ($1, $2)")
                .bind(seq)
                .bind(body)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

async fn effects(pool: &PgPool) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT seq, body FROM consumer.effects ORDER BY seq")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn follower(db: &TestDb, table: &'static str, name: &str) -> Follower<Events> {
    Follower::new(
        Events {
            pool: db.pool.clone(),
            table,
        },
        Cursor::new(db.pool.clone(), "consumer.cursors", name),
    )
}

async fn connect(db: &TestDb) -> PgConnection {
    PgConnection::connect(&db.url).await.unwrap()
}

/// Writer A appends first, writer B second, and B tries to commit first, while a reader
/// reads in between. Under the log's discipline B cannot draw its number before A commits,
/// so the reader gets both entries, in order, exactly once. The same interleaving on a bare
/// sequence makes a plain `id > cursor` reader skip A's entry for good, which is the loss
/// this guards against.
#[tokio::test]
async fn out_of_order_commits_are_neither_skipped_nor_repeated() {
    let db = TestDb::new(&[&PRODUCER, &CONSUMER]).await;
    let reader = follower(&db, "producer.events", "gap-safe");

    let mut a = connect(&db).await;
    sqlx::query("BEGIN").execute(&mut a).await.unwrap();
    sqlx::query("INSERT INTO producer.events (body) VALUES ('a')")
        .execute(&mut a)
        .await
        .unwrap();
    // B appends after A and would commit at once, but waits for A's position to commit.
    let url = db.url.clone();
    let b = tokio::spawn(async move {
        let mut b = PgConnection::connect(&url).await.unwrap();
        sqlx::query("INSERT INTO producer.events (body) VALUES ('b')")
            .execute(&mut b)
            .await
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !b.is_finished(),
        "B drew a position while A's was uncommitted"
    );
    assert_eq!(reader.step(&mut Record).await.unwrap(), 0);

    sqlx::query("COMMIT").execute(&mut a).await.unwrap();
    b.await.unwrap();
    reader.catch_up(&mut Record).await.unwrap();
    assert_eq!(
        effects(&db.pool).await,
        vec![(1, "a".to_owned()), (2, "b".to_owned())]
    );
    assert_eq!(reader.catch_up(&mut Record).await.unwrap(), 0);
    assert_eq!(reader.cursor().position().await.unwrap(), 2);

    // The control: a bare sequence lets B commit position 2 before A's 1.
    let bare = follower(&db, "producer.bare", "bare");
    bare.cursor().advance_to(2).await.unwrap(); // past the rows above, same effects table
    let mut a = connect(&db).await;
    sqlx::query("BEGIN").execute(&mut a).await.unwrap();
    sqlx::query("INSERT INTO producer.bare (seq, body) VALUES (3, 'a2')")
        .execute(&mut a)
        .await
        .unwrap();
    sqlx::query("INSERT INTO producer.bare (seq, body) VALUES (4, 'b2')")
        .execute(&db.pool)
        .await
        .unwrap();
    bare.catch_up(&mut Record).await.unwrap();
    sqlx::query("COMMIT").execute(&mut a).await.unwrap();
    bare.catch_up(&mut Record).await.unwrap();
    let seen: Vec<i64> = effects(&db.pool).await.into_iter().map(|e| e.0).collect();
    assert_eq!(
        seen,
        vec![1, 2, 4],
        "the bare reader skipped 3 (the loss prevented above)"
    );
}

/// Many writers and two replicas of one reader: every entry handled exactly once (the
/// effects' primary key would fail on a repeat), none skipped.
#[tokio::test]
async fn concurrent_writers_and_reader_replicas_handle_each_entry_once() {
    let db = TestDb::new(&[&PRODUCER, &CONSUMER]).await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let pool = db.pool.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query("INSERT INTO producer.events (body) VALUES ($1)")
                        .bind(format!("w{w}-{i}"))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    if i % 7 == 0 {
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let f = follower(&db, "producer.events", "replicated").with_config(FollowConfig {
                batch: 16,
                ..FollowConfig::default()
            });
            tokio::spawn(async move {
                for _ in 0..400 {
                    f.catch_up(&mut Record).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    for r in readers {
        r.await.unwrap();
    }
    follower(&db, "producer.events", "replicated")
        .catch_up(&mut Record)
        .await
        .unwrap();
    let seen: Vec<i64> = effects(&db.pool).await.into_iter().map(|e| e.0).collect();
    assert_eq!(seen, (1..=400).collect::<Vec<i64>>());
}

/// A failing handler leaves the cursor where it was; the entries come again.
#[tokio::test]
async fn a_failed_batch_is_handled_again() {
    struct FailOnce(bool);
    impl Handler<(i64, String)> for FailOnce {
        async fn handle(
            &mut self,
            conn: &mut PgConnection,
            entries: &[(i64, String)],
        ) -> Result<(), BoxError> {
            Record.handle(conn, entries).await?;
            if !self.0 {
                self.0 = true;
                return Err("downstream unavailable".into());
            }
            Ok(())
        }
    }
    let db = TestDb::new(&[&PRODUCER, &CONSUMER]).await;
    for body in ["x", "y"] {
        sqlx::query("INSERT INTO producer.events (body) VALUES ($1)")
            .bind(body)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let f = follower(&db, "producer.events", "retry");
    let mut h = FailOnce(false);
    let err = f.step(&mut h).await.unwrap_err();
    assert!(err.to_string().contains("downstream unavailable"), "{err}");
    assert_eq!(f.cursor().position().await.unwrap(), 0);
    assert!(
        effects(&db.pool).await.is_empty(),
        "the failed batch's effects rolled back"
    );
    assert_eq!(f.step(&mut h).await.unwrap(), 2);
    assert_eq!(effects(&db.pool).await.len(), 2);
}

/// `run` is woken by the commit's notification, not by its timer.
#[tokio::test]
async fn run_is_woken_by_commits() {
    let db = TestDb::new(&[&PRODUCER, &CONSUMER]).await;
    let f = follower(&db, "producer.events", "pushed").with_config(FollowConfig {
        recheck: Duration::from_secs(600),
        ..FollowConfig::default()
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        f.run(&mut Record, async {
            let _ = stop_rx.await;
        })
        .await
    });
    // Let it listen and catch up on the empty log.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..5 {
        let started = std::time::Instant::now();
        sqlx::query("INSERT INTO producer.events (body) VALUES ($1)")
            .bind(format!("e{i}"))
            .execute(&db.pool)
            .await
            .unwrap();
        loop {
            if effects(&db.pool).await.len() == i + 1 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "entry {i} not handled within 2 s of its commit"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
