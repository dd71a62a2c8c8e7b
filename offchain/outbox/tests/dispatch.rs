//! Facility changes made through the real facility service reach the bus through the
//! dispatcher: once, in order, deduplicated when re-published, pushed as they commit.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use advancia_bus::memory::InProcessBus;
use advancia_bus::{EventBus, SubscribeOptions};
use advancia_facilities::OUTBOX as FACILITIES;
use advancia_facilities::{FacilityInput, FacilityService};
use advancia_outbox::Dispatcher;
use advancia_test_support::TestDb;
use futures_util::StreamExt;
use serde_json::json;

fn profile(name: &str) -> FacilityInput {
    serde_json::from_value(json!({
        "name": name, "facility_type": "clinic", "services": ["cardiology"],
        "address": {"street": "1 Main St", "city": "Boston", "country": "US"},
        "location": {"lat": 42.36, "lon": -71.06},
        "status": "active"
    }))
    .unwrap()
}

#[tokio::test]
async fn facility_events_are_published_once_in_order() {
    let db = TestDb::new(&[
        &advancia_auth::MIGRATIONS,
        &advancia_facilities::MIGRATIONS,
        &advancia_outbox::MIGRATIONS,
    ])
    .await;
    let facilities = FacilityService::new(db.pool.clone(), users(&db.pool));
    let a = facilities
        .create(&profile("North Clinic"), uuid::Uuid::now_v7())
        .await
        .unwrap();
    let b = facilities
        .create(&profile("South Clinic"), uuid::Uuid::now_v7())
        .await
        .unwrap();

    let bus = Arc::new(InProcessBus::default());
    let mut sub = bus
        .subscribe(SubscribeOptions::new("events.facilities.>", "test"))
        .await
        .unwrap();
    let d = Dispatcher::new(db.pool.clone(), bus.clone(), vec![FACILITIES]);
    assert_eq!(d.dispatch_once().await.unwrap(), 2);
    for (f, name) in [(a.id, "North Clinic"), (b.id, "South Clinic")] {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m.envelope.subject, "events.facilities.facility.created");
        assert!(m.envelope.id.starts_with("facilities.events:"));
        let v: serde_json::Value = m.envelope.decode().unwrap();
        assert_eq!(v["name"], name, "in id order");
        let row_facility: uuid::Uuid =
            sqlx::query_scalar("SELECT facility_id FROM facilities.events WHERE id = $1")
                .bind(
                    m.envelope
                        .id
                        .trim_start_matches("facilities.events:")
                        .parse::<i64>()
                        .unwrap(),
                )
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(row_facility, f);
        m.ack().await.unwrap();
    }
    assert_eq!(d.dispatch_once().await.unwrap(), 0, "nothing new");

    // A crash after publishing but before the cursor committed: the rows go out again
    // under the same ids and the bus drops them.
    sqlx::query("UPDATE outbox.cursors SET position = 0")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(d.dispatch_once().await.unwrap(), 2);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err()
    );

    // Running, the dispatcher publishes each change as it commits (its trigger's
    // notification wakes it), without a poll interval.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(d.clone().run(async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    facilities
        .create(&profile("East Clinic"), uuid::Uuid::now_v7())
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(2), sub.next())
        .await
        .expect("published within 2 s of the commit")
        .unwrap()
        .unwrap();
    let v: serde_json::Value = m.envelope.decode().unwrap();
    assert_eq!(v["name"], "East Clinic");
    m.ack().await.unwrap();
    eprintln!("commit → bus: {:?}", started.elapsed());
    stop_tx.send(()).unwrap();
    running.await.unwrap();
    let published: i64 =
        sqlx::query_scalar("SELECT published FROM outbox.cursors WHERE name = 'facilities.events'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(published, 5, "2 + 2 re-published + 1");
}

/// The user directory `advancia serve` gives facilities: the auth service's typed read.
struct AuthUsers(advancia_auth::AuthService);

impl advancia_facilities::UserDirectory for AuthUsers {
    fn user_exists(
        &self,
        id: uuid::Uuid,
    ) -> advancia_facilities::BoxFuture<'_, Result<bool, Box<dyn std::error::Error + Send + Sync>>>
    {
        Box::pin(async move {
            match self.0.get_user(id).await {
                Ok(_) => Ok(true),
                Err(advancia_auth::AuthError::NotFound) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }
}

fn users(pool: &sqlx::PgPool) -> std::sync::Arc<AuthUsers> {
    std::sync::Arc::new(AuthUsers(
        advancia_auth::AuthService::new(
            pool.clone(),
            advancia_auth::AuthConfig::default(),
            advancia_auth::SigningKeys::generate(),
        )
        .unwrap(),
    ))
}
