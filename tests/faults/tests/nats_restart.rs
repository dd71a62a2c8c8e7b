//! NATS JetStream restarts mid-stream under a running event bus (issue #20): agent tasks
//! queued through the agents service and run by its workers, and domain events a service
//! writes to its outbox and the dispatcher publishes, consumed by a durable consumer. The
//! bus redelivers what was not acknowledged; afterwards every task ran exactly once and
//! every event is in the stream exactly once, none lost. Postgres is the shared server
//! (not the fault here); NATS is a private server the test stops and starts.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use advancia_agents::AgentService;
use advancia_agents::worker::{WorkerConfig, spawn_requeue, spawn_workers};
use advancia_bus::nats::{NatsBus, NatsConfig};
use advancia_bus::{Bus, SubscribeOptions};
use advancia_db::sqlx::{self, PgPool};
use advancia_facilities::{FacilityInput, FacilityService, OUTBOX as FACILITIES};
use advancia_faults::nats::NatsServer;
use advancia_outbox::Dispatcher;
use advancia_test_support::TestDb;
use futures_util::StreamExt;
use serde_json::json;

const BEFORE: Duration = Duration::from_secs(4);
const DOWN_FOR: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(5);
/// One task and one domain event each this often.
const EVERY: Duration = Duration::from_millis(100);

fn facility(n: u64) -> FacilityInput {
    serde_json::from_value(json!({
        "name": format!("Clinic {n}"), "facility_type": "clinic", "services": ["cardiology"],
        "address": {"street": "1 Main St", "city": "Boston", "country": "US"},
        "location": {"lat": 42.36, "lon": -71.06},
        "status": "active"
    }))
    .unwrap()
}

/// What a durable consumer received (every delivery, repeats included): when, the envelope
/// id, the bus's attempt number.
type Received = Arc<Mutex<Vec<(Instant, String, u32)>>>;

/// How long the downstream consumer works on an event before acking it: slower than the
/// events come, so deliveries are in its hands, unacked, when the server goes away.
const WORK: Duration = Duration::from_millis(200);

/// A downstream service: a durable consumer of the domain events that acks each one once
/// handled.
async fn consume(bus: Bus, received: Received) {
    let mut sub = bus
        .subscribe(
            // A few in hand at a time, well within `ack_wait`: a redelivery is an ack lost
            // with the server, never a slow consumer.
            SubscribeOptions::new("events.>", "faults-downstream")
                .ack_wait(Duration::from_secs(5))
                .batch(4),
        )
        .await
        .unwrap();
    while let Some(d) = sub.next().await {
        match d {
            Ok(d) => {
                received
                    .lock()
                    .unwrap()
                    .push((Instant::now(), d.envelope.id.clone(), d.attempt));
                tokio::time::sleep(WORK).await;
                // An ack lost with the connection: the bus redelivers, the id repeats.
                let _ = d.ack().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "downstream consumer");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Every message the stream holds under `subject`, read by a fresh consumer: (total, distinct
/// ids).
async fn retained(bus: &Bus, subject: &str, consumer: &str) -> (usize, BTreeSet<String>) {
    let mut sub = bus
        .subscribe(SubscribeOptions::new(subject, consumer).batch(256))
        .await
        .unwrap();
    let mut total = 0;
    let mut ids = BTreeSet::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
        let d = d.unwrap();
        total += 1;
        ids.insert(d.envelope.id.clone());
        d.ack().await.unwrap();
    }
    (total, ids)
}

async fn count(db: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_restart_mid_stream_loses_and_doubles_no_agent_task_and_no_domain_event() {
    let nats = NatsServer::start().unwrap();
    let bus: Bus = Arc::new(
        NatsBus::connect(&NatsConfig::new(
            nats.url(),
            "ADVANCIA",
            vec!["agents.>".into(), "events.>".into()],
        ))
        .await
        .unwrap(),
    );
    let db = TestDb::new(&[
        &advancia_auth::MIGRATIONS,
        &advancia_facilities::MIGRATIONS,
        &advancia_payments::MIGRATIONS,
        &advancia_agents::MIGRATIONS,
        &advancia_outbox::MIGRATIONS,
    ])
    .await;

    // Agents as `advancia serve` runs them on NATS: workers and the sweeper of tasks queued
    // but never published.
    let agents = AgentService::new(db.pool.clone(), bus.clone(), None);
    agents.list().await.unwrap(); // registers the built-in kinds
    let workers = spawn_workers(
        &agents,
        WorkerConfig {
            ack_wait: Duration::from_secs(5),
            backoff_base: Duration::from_millis(50),
            ..WorkerConfig::default()
        },
    )
    .await
    .unwrap();
    let sweeper = spawn_requeue(&agents, Duration::from_secs(1));
    // Domain events: the facility service's outbox, published by the dispatcher.
    let auth = advancia_auth::AuthService::new(
        db.pool.clone(),
        advancia_auth::AuthConfig::default(),
        advancia_auth::SigningKeys::generate(),
    )
    .unwrap();
    let facilities = FacilityService::new(
        db.pool.clone(),
        Arc::new(advancia_api::ports::AuthUsers(auth)),
    );
    let (stop_dispatch, dispatch_stopped) = tokio::sync::oneshot::channel::<()>();
    let dispatcher = tokio::spawn(
        Dispatcher::new(db.pool.clone(), bus.clone(), vec![FACILITIES]).run(async move {
            let _ = dispatch_stopped.await;
        }),
    );
    let received: Received = Arc::default();
    let downstream = tokio::spawn(consume(bus.clone(), received.clone()));

    // The load: a task and a facility change every 100 ms. A task whose publish fails
    // (NATS down) is still queued in its table; the sweeper publishes it later.
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(Mutex::new(0usize));
    let load = {
        let (agents, facilities, stop, refused) = (
            agents.clone(),
            facilities.clone(),
            stop.clone(),
            refused.clone(),
        );
        tokio::spawn(async move {
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let series: Vec<u64> = (0..8).map(|i| 100 + n + i).collect();
                let queued = agents
                    .execute(
                        "revenue_forecast",
                        json!({"series": series, "horizon": 2}),
                        None,
                        None,
                        &BTreeMap::new(),
                    )
                    .await;
                if queued.is_err() {
                    *refused.lock().unwrap() += 1;
                }
                facilities
                    .create(&facility(n), uuid::Uuid::now_v7())
                    .await
                    .unwrap();
                tokio::time::sleep(EVERY).await;
            }
        })
    };

    tokio::time::sleep(BEFORE).await;
    nats.stop().unwrap();
    let stopped_at = Instant::now();
    tokio::time::sleep(DOWN_FOR).await;
    nats.start_again().unwrap();
    let up_at = Instant::now();
    let down = up_at - stopped_at;
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    // Everything settles by itself: each task finished, each event received.
    let tasks = count(&db.pool, "SELECT count(*) FROM agents.tasks").await;
    let events: BTreeSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT 'facilities.events:' || id::text FROM facilities.events",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let settling = Instant::now();
    loop {
        let done = count(
            &db.pool,
            "SELECT count(*) FROM agents.tasks WHERE status IN ('succeeded', 'failed')",
        )
        .await;
        let got: BTreeSet<String> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, id, _)| id.clone())
            .collect();
        if done == tasks && got == events {
            break;
        }
        assert!(
            settling.elapsed() < Duration::from_secs(60),
            "not settled 60 s after the load: {done}/{tasks} tasks finished, {}/{} events \
             received",
            got.len(),
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settle = settling.elapsed();

    // Agent tasks: each succeeded, and ran once (one attempt: never claimed twice).
    let (succeeded, attempts): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'succeeded'), coalesce(sum(attempts), 0)::bigint
           FROM agents.tasks",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let errors: Vec<Option<String>> =
        sqlx::query_scalar("SELECT error FROM agents.tasks WHERE status <> 'succeeded' LIMIT 3")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(succeeded, tasks, "every task succeeded: {errors:?}");
    assert_eq!(attempts, tasks, "every task ran exactly once");
    // The stream holds each task and each event once: no publish was doubled.
    let (task_msgs, task_ids) = retained(&bus, "agents.tasks.>", "faults-audit-tasks").await;
    assert_eq!(
        task_msgs,
        task_ids.len(),
        "a task message doubled in the stream"
    );
    assert_eq!(
        task_ids.len() as i64,
        tasks,
        "a task message missing from the stream"
    );
    let (event_msgs, event_ids) = retained(&bus, "events.>", "faults-audit-events").await;
    assert_eq!(
        event_msgs,
        event_ids.len(),
        "an event doubled in the stream"
    );
    assert_eq!(
        event_ids, events,
        "the stream holds exactly the outbox's events"
    );
    // The downstream consumer: every event, redelivered (same id) only if its ack was lost.
    let received = received.lock().unwrap().clone();
    let redelivered = received.len() - events.len();
    let retried = received
        .iter()
        .filter(|(_, _, attempt)| *attempt > 1)
        .count();
    let first_after = received
        .iter()
        .find(|(at, _, _)| *at > up_at)
        .map(|(at, _, _)| *at - up_at);
    let finished_after: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM min(finished_at) - $1::timestamptz)::float8
           FROM agents.tasks WHERE finished_at > $1::timestamptz",
    )
    .bind(time::OffsetDateTime::now_utc() - time::Duration::try_from(up_at.elapsed()).unwrap())
    .fetch_one(&db.pool)
    .await
    .unwrap();

    println!(
        "nats-server down {down:?} (SIGTERM, same port and store): {tasks} agent tasks \
         ({} refused to their caller while it was down, all run later by the sweeper), \
         {} domain events; every task ran once, every event is in the stream once, none \
         lost; {redelivered} redeliveries to the downstream consumer (unacked when the server \
         went away, their acks lost; {retried} with attempt > 1), each under its event's id; settled \
         {settle:?} after the load stopped",
        *refused.lock().unwrap(),
        events.len(),
    );
    println!(
        "recovery after the restart: downstream consumer's first event {first_after:?}, \
         first agent task finished {:?}",
        finished_after.map(Duration::from_secs_f64)
    );
    assert!(
        first_after.is_some(),
        "no event reached the consumer after the restart"
    );
    assert!(
        redelivered > 0 && retried > 0,
        "nothing was redelivered: the consumer held no unacked event at the restart"
    );
    assert!(
        finished_after.is_some(),
        "no task finished after the restart"
    );

    let _ = stop_dispatch.send(());
    dispatcher.await.unwrap();
    downstream.abort();
    sweeper.abort();
    for w in workers {
        w.abort();
    }
}
