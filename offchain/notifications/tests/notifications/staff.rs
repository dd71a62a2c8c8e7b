//! Facility staff hear about their facility's money (billing roles) and expiring
//! certifications (compliance roles): the right people, exactly once.

use std::sync::Arc;

use advancia_facilities::FacilityService;
use advancia_facilities::chain::chain_facility_id;
use advancia_notifications::events::{self, Notify, StaffDirectory};
use advancia_notifications::{ChannelKind, NotificationFilter, NotificationService};
use advancia_test_support::TestDb;
use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::common::prefs;
use crate::saga::{Reader, event, intent};

/// The directory `advancia serve` gives notifications: the facilities service's typed read.
struct Directory(FacilityService);

impl StaffDirectory for Directory {
    fn staff_with_roles<'a>(
        &'a self,
        facility: Uuid,
        roles: &'a [&'static str],
    ) -> events::BoxFuture<'a, Result<Vec<Uuid>, advancia_db::follow::BoxError>> {
        Box::pin(async move { Ok(self.0.staff_user_ids(facility, roles).await?) })
    }
}

async fn user(pool: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO auth.users (id, display_name, roles, created_at, updated_at)
         VALUES ($1, 'Staff', ARRAY['provider'], now(), now())",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn staff(pool: &PgPool, facility: Uuid, user: Option<Uuid>, roles: &[&str], active: bool) {
    sqlx::query(
        "INSERT INTO facilities.staff (id, facility_id, user_id, display_name, roles, active)
         VALUES ($1, $2, $3, 'Staff member', $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(facility)
    .bind(user)
    .bind(roles)
    .bind(active)
    .execute(pool)
    .await
    .unwrap();
}

async fn inbox(svc: &NotificationService, user: Uuid) -> Vec<(String, String)> {
    let list = svc
        .list(&NotificationFilter {
            user_id: user,
            unread_only: false,
            after: None,
            limit: 50,
        })
        .await
        .unwrap();
    let mut out: Vec<(String, String)> = list
        .into_iter()
        .map(|n| (n.event_type, n.body_text))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn billing_and_compliance_staff_are_notified_exactly_once() {
    let db = TestDb::new(&[
        &advancia_auth::MIGRATIONS,
        &advancia_facilities::MIGRATIONS,
        &advancia_payments::MIGRATIONS,
        &advancia_notifications::MIGRATIONS,
    ])
    .await;
    let pool = &db.pool;
    let svc = NotificationService::new(pool.clone());
    let facility = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO facilities.facilities (id, name, facility_type, country, lat, lon, status, created_by)
         VALUES ($1, 'Riverside Clinic', 'clinic', 'US', 42.0, -71.0, 'active', $1)",
    )
    .bind(facility)
    .execute(pool)
    .await
    .unwrap();
    let (billing, physician, lapsed, compliance, payer) = (
        user(pool).await,
        user(pool).await,
        user(pool).await,
        user(pool).await,
        user(pool).await,
    );
    staff(pool, facility, Some(billing), &["billing"], true).await;
    staff(pool, facility, Some(physician), &["physician"], true).await;
    staff(pool, facility, Some(lapsed), &["billing"], false).await;
    staff(pool, facility, Some(compliance), &["compliance"], true).await;
    staff(pool, facility, None, &["billing"], true).await;
    for u in [billing, physician, lapsed, compliance, payer] {
        prefs(&svc, u, &[ChannelKind::InApp]).await;
    }

    // Money: the payer and the billing member, nobody else.
    let hex = hex::encode(chain_facility_id(facility));
    let p = intent(payer, "payment", 1_500_000_000, &hex);
    event(pool, &p, "payment.initiated", "pending", json!({})).await;
    event(
        pool,
        &p,
        "payment.status_changed",
        "confirmed",
        json!({ "from": "pending", "signature": "5igA" }),
    )
    .await;
    event(
        pool,
        &p,
        "payment.refunded",
        "confirmed",
        json!({ "signature": "5igA", "amount_delta": "500000000", "total": "500000000",
                "refunded": "500000000" }),
    )
    .await;
    let facilities = FacilityService::new(pool.clone(), users(pool));
    let staff: Arc<dyn StaffDirectory> = Arc::new(Directory(facilities.clone()));
    let mut payments = Reader::new(&svc, staff.clone());
    assert_eq!(payments.catch_up().await, 4);
    assert_eq!(payments.catch_up().await, 0);

    // Certifications: one lapsed, one due in 10 days, one far off.
    let today = OffsetDateTime::now_utc().date();
    for (name, due) in [
        ("CLIA", -3),
        ("Joint Commission", 10),
        ("State licence", 400),
    ] {
        sqlx::query(
            "INSERT INTO facilities.certifications (id, facility_id, name, issuer, expires_on)
             VALUES ($1, $2, $3, 'Issuer', $4)",
        )
        .bind(Uuid::now_v7())
        .bind(facility)
        .bind(name)
        .bind(today + Duration::days(due))
        .execute(pool)
        .await
        .unwrap();
    }
    assert_eq!(facilities.record_expiry_events(today, 30).await.unwrap(), 2);
    let certs = events::follower(
        &svc,
        advancia_outbox::OutboxLog::new(pool.clone(), advancia_facilities::OUTBOX),
    );
    let mut notify = Notify::new(svc.clone(), staff);
    assert_eq!(events::catch_up(&certs, &mut notify).await.unwrap(), 2);
    // The scheduled writer re-running, and the reader re-running, add nothing.
    assert_eq!(facilities.record_expiry_events(today, 30).await.unwrap(), 0);
    assert_eq!(events::catch_up(&certs, &mut notify).await.unwrap(), 0);

    assert_eq!(
        inbox(&svc, billing).await,
        vec![
            (
                "facility.payment_received".into(),
                "A payment of 1.5 SOL for Cardiology visit is confirmed on chain (transaction 5igA).".into()
            ),
            (
                "facility.refund_issued".into(),
                "0.5 SOL of the payment of 1.5 SOL for Cardiology visit was refunded to the payer.".into()
            ),
        ]
    );
    let due = today + Duration::days(10);
    let lapsed_on = today - Duration::days(3);
    assert_eq!(
        inbox(&svc, compliance).await,
        vec![
            (
                "facility.certification_expiring".into(),
                format!("CLIA issued by Issuer for Riverside Clinic expired on {lapsed_on}.")
            ),
            (
                "facility.certification_expiring".into(),
                format!(
                    "Joint Commission issued by Issuer for Riverside Clinic expires on {due} (10 days)."
                )
            ),
        ]
    );
    let payer_inbox = inbox(&svc, payer).await;
    assert_eq!(payer_inbox.len(), 2, "{payer_inbox:?}");
    assert!(inbox(&svc, physician).await.is_empty());
    assert!(inbox(&svc, lapsed).await.is_empty());
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
