//! Against real Postgres (one database per test).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use advancia_facilities::chain::{self, MirrorAction};
use advancia_facilities::*;
use advancia_test_support::TestDb;
use anchor_lang::prelude::Pubkey;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const SOL_WALLET: &str = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin";

async fn setup() -> (TestDb, FacilityService) {
    let db = TestDb::new(&[&advancia_auth::MIGRATIONS, &MIGRATIONS]).await;
    let svc = FacilityService::new(db.pool.clone(), users(&db.pool));
    (db, svc)
}

fn profile(name: &str, services: &[&str], city: &str, lat: f64, lon: f64) -> FacilityInput {
    FacilityInput {
        name: name.into(),
        facility_type: "clinic".into(),
        services: services.iter().map(|s| s.to_string()).collect(),
        address: Address {
            street: "1 Main Street".into(),
            city: city.into(),
            region: String::new(),
            postal_code: "00000".into(),
            country: "US".into(),
        },
        location: GeoPoint { lat, lon },
        contacts: vec![Contact {
            kind: "phone".into(),
            value: "+1 555 0100".into(),
            name: None,
        }],
        accepted_assets: vec!["solana:USDC".into()],
        payout_wallets: vec![PayoutWallet {
            chain: "solana".into(),
            address: SOL_WALLET.into(),
        }],
        certifications: vec![],
        status: FacilityStatus::Active,
    }
}

fn today() -> time::Date {
    OffsetDateTime::now_utc().date()
}

#[tokio::test]
async fn create_get_update_with_optimistic_concurrency() {
    let (_db, svc) = setup().await;
    let mut input = profile("Harbor Clinic", &["cardiology"], "Boston", 42.36, -71.06);
    input.certifications.push(Certification {
        id: None,
        name: "JCI".into(),
        issuer: "Joint Commission International".into(),
        number: "A-1".into(),
        issued_on: Some(today() - Duration::days(300)),
        expires_on: today() + Duration::days(65),
    });
    let created = svc.create(&input, Uuid::now_v7()).await.unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.profile.name, "Harbor Clinic");
    assert_eq!(created.profile.certifications.len(), 1);
    assert!(created.profile.certifications[0].id.is_some());
    assert_eq!(
        &created.chain_facility_id[..32],
        created.id.simple().to_string()
    );
    assert_eq!(svc.get(created.id).await.unwrap().unwrap(), created);

    let mut changed = created.profile.clone();
    changed.services.push("radiology".into());
    let v2 = svc.update(created.id, 1, &changed).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.profile.services, vec!["cardiology", "radiology"]);
    // The certification kept its id because the client sent it back.
    assert_eq!(v2.profile.certifications, created.profile.certifications);

    // A writer still holding version 1 loses.
    match svc.update(created.id, 1, &input).await.unwrap_err() {
        FacilityError::VersionMismatch { expected, current } => {
            assert_eq!((expected, current), (1, 2));
        }
        e => panic!("expected a version mismatch, got {e}"),
    }
    assert!(matches!(
        svc.update(Uuid::now_v7(), 1, &input).await.unwrap_err(),
        FacilityError::NotFound("facility")
    ));
    assert_eq!(svc.get(created.id).await.unwrap().unwrap(), v2);
}

#[tokio::test]
async fn invalid_profiles_are_rejected() {
    let (_db, svc) = setup().await;
    let base = profile("X", &[], "Y", 0.0, 0.0);
    let cases: Vec<(FacilityInput, &str)> = vec![
        (
            FacilityInput {
                name: " ".into(),
                ..base.clone()
            },
            "name",
        ),
        (
            FacilityInput {
                location: GeoPoint {
                    lat: 91.0,
                    lon: 0.0,
                },
                ..base.clone()
            },
            "latitude",
        ),
        (
            FacilityInput {
                location: GeoPoint {
                    lat: 0.0,
                    lon: f64::NAN,
                },
                ..base.clone()
            },
            "longitude",
        ),
        (
            FacilityInput {
                address: Address {
                    country: "usa".into(),
                    ..base.address.clone()
                },
                ..base.clone()
            },
            "country",
        ),
        (
            FacilityInput {
                accepted_assets: vec!["USDC".into()],
                ..base.clone()
            },
            "chain:asset",
        ),
        (
            FacilityInput {
                payout_wallets: vec![PayoutWallet {
                    chain: "solana".into(),
                    address: "nope".into(),
                }],
                ..base.clone()
            },
            "Solana address",
        ),
    ];
    for (input, needle) in cases {
        let e = svc.create(&input, Uuid::now_v7()).await.unwrap_err();
        assert!(matches!(e, FacilityError::Invalid(_)), "{e}");
        assert!(
            e.to_string().contains(needle),
            "{e} should mention {needle}"
        );
    }
}

#[tokio::test]
async fn search_ranks_text_filters_and_distance() {
    let (_db, svc) = setup().await;
    let by = Uuid::now_v7();
    // Boston, Cambridge (~5 km away), New York (~300 km away).
    let mut heart = profile(
        "Heart Center",
        &["cardiology", "surgery"],
        "Boston",
        42.3601,
        -71.0589,
    );
    heart.certifications.push(Certification {
        id: None,
        name: "JCI".into(),
        issuer: "JCI".into(),
        number: String::new(),
        issued_on: None,
        expires_on: today() + Duration::days(400),
    });
    let heart = svc.create(&heart, by).await.unwrap();
    let mut derm = profile(
        "Skin Clinic",
        &["dermatology", "cardiology consults"],
        "Cambridge",
        42.3736,
        -71.1097,
    );
    derm.accepted_assets = vec!["solana:SOL".into()];
    let derm = svc.create(&derm, by).await.unwrap();
    let mut ny = profile(
        "Cardiology Hospital of New York",
        &["cardiology"],
        "New York",
        40.7128,
        -74.0060,
    );
    ny.facility_type = "hospital".into();
    let ny = svc.create(&ny, by).await.unwrap();
    let mut closed = profile("Old Cardiology", &["cardiology"], "Boston", 42.36, -71.06);
    closed.status = FacilityStatus::Deactivated;
    svc.create(&closed, by).await.unwrap();

    let ids = |hits: &[SearchHit]| hits.iter().map(|h| h.facility.id).collect::<Vec<_>>();

    // Name matches (weight A) outrank services (B); inactive facilities are hidden.
    let hits = svc
        .search(
            &SearchQuery {
                q: Some("cardiology".into()),
                ..Default::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(ids(&hits).len(), 3);
    assert_eq!(hits[0].facility.id, ny.id, "name match ranks first");
    assert!(hits[0].rank > hits[1].rank);
    assert!(
        hits.iter()
            .all(|h| h.facility.profile.status == FacilityStatus::Active)
    );

    let hits = svc
        .search(
            &SearchQuery {
                q: Some("cardiology".into()),
                include_inactive: true,
                ..Default::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 4);

    // Address words are searchable too.
    let hits = svc
        .search(
            &SearchQuery {
                q: Some("cambridge".into()),
                ..Default::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(ids(&hits), vec![derm.id]);

    // Distance: within 20 km of Boston, nearest first.
    let near = SearchQuery {
        near_lat: Some(42.3601),
        near_lon: Some(-71.0589),
        radius_km: Some(20.0),
        ..Default::default()
    };
    let hits = svc.search(&near, 10, 0).await.unwrap();
    assert_eq!(ids(&hits), vec![heart.id, derm.id]);
    assert!(hits[0].distance_km.unwrap() < 0.01);
    let d = hits[1].distance_km.unwrap();
    assert!(
        (4.0..6.0).contains(&d),
        "Boston–Cambridge is ~4.6 km, got {d}"
    );
    let far = svc
        .search(
            &SearchQuery {
                radius_km: Some(400.0),
                ..near.clone()
            },
            10,
            0,
        )
        .await
        .unwrap();
    let ny_km = far
        .iter()
        .find(|h| h.facility.id == ny.id)
        .unwrap()
        .distance_km
        .unwrap();
    assert!(
        (300.0..310.0).contains(&ny_km),
        "Boston–New York is ~306 km, got {ny_km}"
    );

    // Filters.
    let hits = svc
        .search(
            &SearchQuery {
                facility_type: Some("hospital".into()),
                ..Default::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(ids(&hits), vec![ny.id]);
    let hits = svc
        .search(
            &SearchQuery {
                certification: Some("jci".into()),
                ..Default::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(ids(&hits), vec![heart.id]);
    let hits = svc
        .search(
            &SearchQuery {
                accepted_asset: Some("solana:SOL".into()),
                ..Default::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(ids(&hits), vec![derm.id]);

    // Pagination walks the same order.
    let q = SearchQuery {
        q: Some("cardiology".into()),
        ..Default::default()
    };
    let all = ids(&svc.search(&q, 10, 0).await.unwrap());
    let mut paged = ids(&svc.search(&q, 2, 0).await.unwrap());
    paged.extend(ids(&svc.search(&q, 2, 2).await.unwrap()));
    assert_eq!(paged, all);

    assert!(matches!(
        svc.search(
            &SearchQuery {
                near_lat: Some(1.0),
                ..Default::default()
            },
            10,
            0
        )
        .await,
        Err(FacilityError::Invalid(_))
    ));
}

async fn facility_with_staff(db: &TestDb, svc: &FacilityService) -> (Facility, Staff, Resource) {
    let user = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO auth.users (id, display_name, roles, created_at, updated_at)
         VALUES ($1, 'Dr Who', ARRAY['provider'], now(), now())",
    )
    .bind(user)
    .execute(&db.pool)
    .await
    .unwrap();
    let f = svc
        .create(
            &profile("Clinic", &[], "Boston", 42.0, -71.0),
            Uuid::now_v7(),
        )
        .await
        .unwrap();
    let staff = svc
        .add_staff(
            f.id,
            &StaffInput {
                user_id: Some(user),
                display_name: "Dr Who".into(),
                roles: vec!["physician".into()],
                licences: vec![Licence {
                    kind: "medical".into(),
                    number: "MD-42".into(),
                    issuer: "State board".into(),
                    expires_on: None,
                }],
            },
        )
        .await
        .unwrap();
    let resource = svc
        .add_resource(
            f.id,
            &ResourceInput {
                name: "MRI 1".into(),
                kind: "mri".into(),
                maintenance_state: MaintenanceState::Operational,
                last_maintained_on: None,
                next_maintenance_on: Some(today() + Duration::days(30)),
            },
        )
        .await
        .unwrap();
    (f, staff, resource)
}

fn slot(staff: Option<Uuid>, resource: Option<Uuid>, start_min: i64, len_min: i64) -> BookingInput {
    let base = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    BookingInput {
        staff_id: staff,
        resource_id: resource,
        starts_at: base + Duration::minutes(start_min),
        ends_at: base + Duration::minutes(start_min + len_min),
        booked_for: None,
        note: String::new(),
    }
}

#[tokio::test]
async fn staff_resources_and_bookings_never_overlap() {
    let (db, svc) = setup().await;
    let (f, staff, mri) = facility_with_staff(&db, &svc).await;
    assert_eq!(svc.list_staff(f.id).await.unwrap(), vec![staff.clone()]);
    assert_eq!(svc.list_resources(f.id).await.unwrap(), vec![mri.clone()]);
    let by = Uuid::now_v7();

    // Staff member linked to an unknown user is refused; the same user twice conflicts.
    let mut ghost = staff.profile.clone();
    ghost.user_id = Some(Uuid::now_v7());
    assert!(matches!(
        svc.add_staff(f.id, &ghost).await,
        Err(FacilityError::Invalid(_))
    ));
    assert!(matches!(
        svc.add_staff(f.id, &staff.profile).await,
        Err(FacilityError::Conflict(_))
    ));

    let a = svc
        .book(f.id, &slot(Some(staff.id), Some(mri.id), 0, 30), by)
        .await
        .unwrap();
    // Overlapping the staff member's slot.
    assert!(matches!(
        svc.book(f.id, &slot(Some(staff.id), None, 15, 30), by)
            .await,
        Err(FacilityError::SlotTaken("staff member"))
    ));
    // Overlapping the resource's slot.
    assert!(matches!(
        svc.book(f.id, &slot(None, Some(mri.id), 29, 10), by).await,
        Err(FacilityError::SlotTaken("resource"))
    ));
    // Adjacent slots are fine (half-open ranges).
    svc.book(f.id, &slot(Some(staff.id), Some(mri.id), 30, 30), by)
        .await
        .unwrap();
    // Cancelling frees the slot.
    assert_eq!(svc.cancel(a.id).await.unwrap().status, "cancelled");
    svc.book(f.id, &slot(Some(staff.id), None, 0, 30), by)
        .await
        .unwrap();

    let base = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    let listed = svc
        .appointments(f.id, base, base + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed.iter().filter(|a| a.status == "booked").count(), 2);

    // Resources under maintenance cannot be booked.
    svc.set_maintenance(
        mri.id,
        MaintenanceState::UnderMaintenance,
        Some(today()),
        None,
    )
    .await
    .unwrap();
    assert!(matches!(
        svc.book(f.id, &slot(None, Some(mri.id), 120, 30), by).await,
        Err(FacilityError::Conflict(_))
    ));
    assert!(matches!(
        svc.book(f.id, &slot(Some(staff.id), None, 60, 0), by).await,
        Err(FacilityError::Invalid(_))
    ));
}

#[tokio::test]
async fn parallel_bookings_of_one_slot_exactly_one_wins() {
    let (db, svc) = setup().await;
    let (f, staff, mri) = facility_with_staff(&db, &svc).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let svc = svc.clone();
        // Every request overlaps the others: same staff member, shifted by up to 23 minutes.
        let input = slot(
            Some(staff.id),
            if i % 2 == 0 { Some(mri.id) } else { None },
            i,
            30,
        );
        tasks.push(tokio::spawn(async move {
            svc.book(f.id, &input, Uuid::now_v7()).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(FacilityError::SlotTaken(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(won, 1);
    let booked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM facilities.appointments WHERE status = 'booked'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(booked, 1);
}

#[tokio::test]
async fn expiring_certifications_are_reported_and_evented_once() {
    let (_db, svc) = setup().await;
    let cert = |name: &str, days: i64| Certification {
        id: None,
        name: name.into(),
        issuer: "Board".into(),
        number: String::new(),
        issued_on: None,
        expires_on: today() + Duration::days(days),
    };
    let mut input = profile("Clinic", &[], "Boston", 42.0, -71.0);
    input.certifications = vec![cert("soon", 10), cert("later", 90), cert("lapsed", -3)];
    let f = svc.create(&input, Uuid::now_v7()).await.unwrap();

    let expiring = svc.expiring_certifications(today(), 30).await.unwrap();
    let names: Vec<(&str, i64)> = expiring
        .iter()
        .map(|e| (e.certification.name.as_str(), e.days_left))
        .collect();
    assert_eq!(names, vec![("lapsed", -3), ("soon", 10)]);
    assert!(
        expiring
            .iter()
            .all(|e| e.facility_id == f.id && e.facility_name == "Clinic")
    );

    assert_eq!(svc.record_expiry_events(today(), 30).await.unwrap(), 2);
    assert_eq!(
        svc.record_expiry_events(today(), 30).await.unwrap(),
        0,
        "idempotent"
    );
    let events = svc.events_after(0, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            event_kind::FACILITY_CREATED,
            event_kind::CERTIFICATION_EXPIRING,
            event_kind::CERTIFICATION_EXPIRING
        ]
    );
    assert_eq!(events[2].payload["certification"], "soon");
    assert_eq!(events[2].payload["days_left"], 10);
    assert!(svc.events_after(events[2].id, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn mirror_instructions_target_the_registry() {
    let (_db, svc) = setup().await;
    let f = svc
        .create(
            &profile("Clinic", &[], "Boston", 42.0, -71.0),
            Uuid::now_v7(),
        )
        .await
        .unwrap();
    let admin = Pubkey::new_unique();
    let authority = Pubkey::new_unique();
    let id = chain::chain_facility_id(f.id);
    let payout: Pubkey = SOL_WALLET.parse().unwrap();

    let register = chain::instruction(
        &f,
        &MirrorAction::Register {
            authority: authority.to_string(),
        },
        &admin,
    )
    .unwrap();
    assert_eq!(
        register,
        advancia_pay::client::register_facility(admin, id, authority, payout)
    );
    let update = chain::instruction(&f, &MirrorAction::UpdatePayout, &authority).unwrap();
    assert_eq!(
        update,
        advancia_pay::client::update_facility_payout(authority, id, payout)
    );
    assert!(
        update
            .accounts
            .iter()
            .any(|m| m.pubkey == advancia_pay::client::facility_pda(&id))
    );
    let deactivate = chain::instruction(&f, &MirrorAction::Deactivate, &admin).unwrap();
    assert_eq!(
        deactivate,
        advancia_pay::client::deactivate_facility(admin, id)
    );

    let mut no_wallet = f.clone();
    no_wallet.profile.payout_wallets.clear();
    assert!(matches!(
        chain::instruction(&no_wallet, &MirrorAction::UpdatePayout, &authority),
        Err(FacilityError::Invalid(_))
    ));
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
