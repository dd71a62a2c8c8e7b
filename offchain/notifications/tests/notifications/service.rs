//! Templates, preferences, quiet hours, sending, listing and marking read.

use advancia_notifications::{
    ChannelKind, NotificationError, NotificationFilter, NotificationService, PreferencesUpdate,
    Priority, SendRequest, TemplateInput,
};
use serde_json::json;
use uuid::Uuid;

use crate::common::{db, prefs};

fn tpl(key: &str) -> TemplateInput {
    TemplateInput {
        key: key.into(),
        description: "appointment reminder".into(),
        subject: "Reminder for {{ name }}".into(),
        body_text: "Dear {{ name }}, see you at {{ when }}.".into(),
        body_html: Some("<p>Dear {{ name }}, see you at <b>{{ when }}</b>.</p>".into()),
    }
}

#[tokio::test]
async fn templates_crud_with_versions_and_validation() {
    let db = db().await;
    let svc = NotificationService::new(db.pool.clone());
    // The saga's templates are seeded.
    let keys: Vec<String> = svc
        .templates()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.key)
        .collect();
    for k in [
        "payment.confirmed",
        "payment.refunded",
        "escrow.released",
        "kyc.decided",
    ] {
        assert!(keys.contains(&k.to_owned()), "{k} seeded");
    }
    let t = svc
        .create_template(&tpl("appointment.reminder"))
        .await
        .unwrap();
    assert_eq!(t.version, 1);
    assert!(matches!(
        svc.create_template(&tpl("appointment.reminder")).await,
        Err(NotificationError::Conflict(_))
    ));
    assert!(matches!(
        svc.create_template(&tpl("Bad Key!")).await,
        Err(NotificationError::Invalid(_))
    ));
    let mut broken = tpl("broken");
    broken.body_text = "{% for %}".into();
    assert!(matches!(
        svc.create_template(&broken).await,
        Err(NotificationError::Template(_))
    ));

    let mut edit = tpl("appointment.reminder");
    edit.subject = "See you soon, {{ name }}".into();
    let t2 = svc.update_template(&edit, Some(1)).await.unwrap();
    assert_eq!(
        (t2.version, t2.subject.as_str()),
        (2, "See you soon, {{ name }}")
    );
    // A stale If-Match loses.
    assert!(matches!(
        svc.update_template(&edit, Some(1)).await,
        Err(NotificationError::Conflict(m)) if m.contains("version 2")
    ));
    svc.delete_template("appointment.reminder").await.unwrap();
    assert!(matches!(
        svc.template("appointment.reminder").await,
        Err(NotificationError::NotFound(_))
    ));
}

#[tokio::test]
async fn send_renders_escapes_and_is_idempotent_per_source_key() {
    let db = db().await;
    let svc = NotificationService::new(db.pool.clone());
    svc.create_template(&tpl("appointment.reminder"))
        .await
        .unwrap();
    let user = Uuid::now_v7();
    prefs(
        &svc,
        user,
        &[ChannelKind::InApp, ChannelKind::Email, ChannelKind::Sms],
    )
    .await;
    let req = SendRequest {
        user_id: user,
        event_type: "appointment.reminder".into(),
        data: json!({ "name": "Ana <b>& Co</b>", "when": "10:30" }),
        source_key: Some("reminder-1".into()),
        ..Default::default()
    };
    let sent = svc.send(&req).await.unwrap();
    assert!(sent.created);
    let n = &sent.notification;
    assert_eq!(n.subject, "Reminder for Ana <b>& Co</b>");
    assert_eq!(n.body_text, "Dear Ana <b>& Co</b>, see you at 10:30.");
    assert_eq!(
        n.body_html.as_deref(),
        Some("<p>Dear Ana &lt;b&gt;&amp; Co&lt;&#x2f;b&gt;, see you at <b>10:30</b>.</p>")
    );
    let mut channels: Vec<(&str, &str)> = sent
        .deliveries
        .iter()
        .map(|d| (d.channel.as_str(), d.destination.as_str()))
        .collect();
    channels.sort();
    let user_s = user.to_string();
    assert_eq!(
        channels,
        vec![
            ("email", "patient@example.org"),
            ("in_app", user_s.as_str()),
            ("sms", "+33612345678")
        ]
    );
    // Same key: the same notification, nothing new queued.
    let again = svc.send(&req).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.notification.id, n.id);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications.deliveries")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);

    // A missing variable is an error, not an empty string.
    let bad = SendRequest {
        data: json!({ "name": "x" }),
        source_key: None,
        ..req.clone()
    };
    assert!(matches!(
        svc.send(&bad).await,
        Err(NotificationError::Template(_))
    ));
    // Channel restriction intersects with preferences; literal text without a template.
    let literal = svc
        .send(&SendRequest {
            user_id: user,
            event_type: "ops.notice".into(),
            subject: Some("Maintenance\ntonight".into()),
            body: Some("The API is read-only 02:00-02:30 UTC.".into()),
            channels: Some(vec![ChannelKind::InApp, ChannelKind::Push]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(literal.notification.subject, "Maintenance tonight");
    assert_eq!(literal.deliveries.len(), 1);
    assert_eq!(literal.deliveries[0].channel, "in_app");
    assert!(matches!(
        svc.send(&SendRequest {
            user_id: user,
            event_type: "no.template".into(),
            ..Default::default()
        })
        .await,
        Err(NotificationError::Refused(_))
    ));
}

#[tokio::test]
async fn preferences_validate_and_quiet_hours_defer_interruptive_channels() {
    let db = db().await;
    let svc = NotificationService::new(db.pool.clone());
    let user = Uuid::now_v7();
    assert_eq!(
        svc.preferences(user).await.unwrap().channels,
        vec![ChannelKind::InApp, ChannelKind::Webhook]
    );
    let base = PreferencesUpdate {
        channels: vec![ChannelKind::InApp, ChannelKind::Email, ChannelKind::Sms],
        email: Some("night@example.org".into()),
        phone: Some("+14155550100".into()),
        push_token: None,
        time_zone: Some("Mars/Olympus".into()),
        quiet_start: None,
        quiet_end: None,
    };
    assert!(
        matches!(svc.set_preferences(user, &base).await, Err(NotificationError::Refused(m)) if m.contains("time zone"))
    );
    let bad_phone = PreferencesUpdate {
        phone: Some("555-0100".into()),
        time_zone: None,
        ..base.clone()
    };
    assert!(svc.set_preferences(user, &bad_phone).await.is_err());
    let half = PreferencesUpdate {
        time_zone: None,
        quiet_start: Some("22:00".into()),
        ..base.clone()
    };
    assert!(svc.set_preferences(user, &half).await.is_err());

    // Quiet hours around the current local time in Asia/Kolkata (UTC+5:30, no DST): a
    // window from an hour ago to an hour from now, computed in that zone.
    let (start, end): (String, String) = sqlx::query_as(
        "SELECT to_char((now() AT TIME ZONE 'Asia/Kolkata') - interval '1 hour', 'HH24:MI'),
                to_char((now() AT TIME ZONE 'Asia/Kolkata') + interval '1 hour', 'HH24:MI')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let quiet = PreferencesUpdate {
        time_zone: Some("Asia/Kolkata".into()),
        quiet_start: Some(start.clone()),
        quiet_end: Some(end.clone()),
        ..base.clone()
    };
    let p = svc.set_preferences(user, &quiet).await.unwrap();
    assert_eq!(p.time_zone, "Asia/Kolkata");
    assert_eq!(
        (p.quiet_start.as_deref(), p.quiet_end.as_deref()),
        (Some(start.as_str()), Some(end.as_str()))
    );

    let send = |priority| SendRequest {
        user_id: user,
        event_type: "ops.notice".into(),
        subject: Some("s".into()),
        body: Some("b".into()),
        priority,
        ..Default::default()
    };
    let sent = svc.send(&send(Priority::Normal)).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    for d in &sent.deliveries {
        let wait = d.next_attempt_at - now;
        match d.channel.as_str() {
            // In-app lands now; email and SMS wait until the window ends, about an hour.
            "in_app" => assert!(wait <= time::Duration::seconds(5), "{wait}"),
            _ => assert!(
                wait > time::Duration::minutes(55) && wait <= time::Duration::minutes(61),
                "{} waits {wait}",
                d.channel
            ),
        }
    }
    // High priority goes through.
    let urgent = svc.send(&send(Priority::High)).await.unwrap();
    assert!(
        urgent
            .deliveries
            .iter()
            .all(|d| d.next_attempt_at - now <= time::Duration::seconds(5))
    );
}

#[tokio::test]
async fn quiet_until_follows_daylight_saving_and_midnight() {
    let db = db().await;
    let q = |tz: &'static str, s: &'static str, e: &'static str, at: &'static str| {
        let pool = db.pool.clone();
        async move {
            let v: Option<String> = sqlx::query_scalar(
                "SELECT to_char(notifications.quiet_until($1, $2::time, $3::time, $4::timestamptz)
                                AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')",
            )
            .bind(tz)
            .bind(s)
            .bind(e)
            .bind(at)
            .fetch_one(&pool)
            .await
            .unwrap();
            v
        }
    };
    // Paris springs forward on 2026-03-29: 07:00 local is 06:00 UTC before, 05:00 after.
    assert_eq!(
        q("Europe/Paris", "22:00", "07:00", "2026-03-28 22:30Z")
            .await
            .as_deref(),
        Some("2026-03-29 05:00")
    );
    assert_eq!(
        q("Europe/Paris", "22:00", "07:00", "2026-03-27 22:30Z")
            .await
            .as_deref(),
        Some("2026-03-28 06:00")
    );
    // After midnight, before the end.
    assert_eq!(
        q("Europe/Paris", "22:00", "07:00", "2026-01-10 03:00Z")
            .await
            .as_deref(),
        Some("2026-01-10 06:00")
    );
    // Outside the window.
    assert_eq!(
        q("Europe/Paris", "22:00", "07:00", "2026-01-10 12:00Z").await,
        None
    );
    // Same-day window in New York (EDT, UTC-4).
    assert_eq!(
        q("America/New_York", "09:00", "17:00", "2026-06-01 14:00Z")
            .await
            .as_deref(),
        Some("2026-06-01 21:00")
    );
}

#[tokio::test]
async fn list_pages_newest_first_and_mark_read_is_owner_only() {
    let db = db().await;
    let svc = NotificationService::new(db.pool.clone());
    let user = Uuid::now_v7();
    let other = Uuid::now_v7();
    let mut ids = vec![];
    for i in 0..5 {
        let s = svc
            .send(&SendRequest {
                user_id: user,
                event_type: "ops.notice".into(),
                subject: Some(format!("n{i}")),
                body: Some("b".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        ids.push(s.notification.id);
    }
    let mut seen = vec![];
    let mut after = None;
    loop {
        let page = svc
            .list(&NotificationFilter {
                user_id: user,
                unread_only: false,
                after,
                limit: 2,
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|n| (n.created_at, n.id));
        seen.extend(page.into_iter().map(|n| n.id));
    }
    ids.reverse();
    assert_eq!(seen, ids);
    assert_eq!(svc.unread_count(user).await.unwrap(), 5);
    assert!(matches!(
        svc.mark_read(ids[0], other).await,
        Err(NotificationError::NotFound(_))
    ));
    let read = svc.mark_read(ids[0], user).await.unwrap();
    let first = read.read_at.unwrap();
    assert_eq!(
        svc.mark_read(ids[0], user).await.unwrap().read_at,
        Some(first)
    );
    assert_eq!(svc.unread_count(user).await.unwrap(), 4);
    let unread = svc
        .list(&NotificationFilter {
            user_id: user,
            unread_only: true,
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(unread.len(), 4);
    assert!(
        svc.list(&NotificationFilter {
            user_id: other,
            unread_only: false,
            after: None,
            limit: 10
        })
        .await
        .unwrap()
        .is_empty()
    );
}
