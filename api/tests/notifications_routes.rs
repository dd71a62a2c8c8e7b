#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Notification routes through the whole gateway: roles, sending with Idempotency-Key,
//! listing and marking read, preferences, templates with ETag/If-Match, webhook
//! endpoints, the in-app SSE stream, dead letters and replay.

use std::time::Duration;

use advancia_auth::Role;
use advancia_notifications::channels::{Channels, InAppChannel, WebhookChannel};
use advancia_notifications::outbox::{OutboxWorker, WorkerConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

mod common;
use common::{TestApi as Api, kind};

fn worker(api: &Api) -> OutboxWorker {
    OutboxWorker::new(
        api.db.pool.clone(),
        Channels::new()
            .with(WebhookChannel::new(Duration::from_secs(2), &common::loopback_egress()).unwrap())
            .with(InAppChannel::new(api.db.pool.clone())),
        WorkerConfig {
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(20),
            ..WorkerConfig::default()
        },
    )
}

#[tokio::test]
async fn send_list_read_and_roles() {
    let api = Api::start().await;
    let (admin_id, admin) = api.token_for("admin@example.org", Role::Admin).await;
    let (patient_id, patient) = api.token_for("patient@example.org", Role::Patient).await;
    let (_, other) = api.token_for("other@example.org", Role::Patient).await;

    let body = json!({
        "user_id": patient_id, "event_type": "payment.confirmed",
        "data": {"label": "Checkup", "amount": "1.5", "asset": "SOL",
                 "facility_id": "ab".repeat(32), "signature": "5ig"}
    });
    // Unauthenticated 401, patients may not send (403).
    let (s, _) = api
        .post("/api/v1/notifications/send", None, body.clone())
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = api
        .post("/api/v1/notifications/send", Some(&patient), body.clone())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // Idempotency-Key: the retry returns the first notification with 200.
    let send = |key: &'static str| {
        api.http
            .post(format!("{}/api/v1/notifications/send", api.base))
            .bearer_auth(&admin)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let r1 = send("k-1").await.unwrap();
    assert_eq!(r1.status(), StatusCode::CREATED);
    let v1: serde_json::Value = r1.json().await.unwrap();
    assert_eq!(v1["notification"]["subject"], "Payment confirmed: Checkup");
    assert_eq!(v1["notification"]["created_by"], admin_id.as_str());
    let r2 = send("k-1").await.unwrap();
    assert_eq!(r2.status(), StatusCode::OK);
    let v2: serde_json::Value = r2.json().await.unwrap();
    assert_eq!(v2["notification"]["id"], v1["notification"]["id"]);
    // Template errors are 422 with the reason.
    let (s, v) = api
        .post(
            "/api/v1/notifications/send",
            Some(&admin),
            json!({"user_id": patient_id, "event_type": "payment.confirmed", "data": {}}),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "template-error")
    );

    // The patient lists their own; another patient may not; the admin may.
    let list = format!("/api/v1/notifications/{patient_id}");
    let (s, v) = api.call(Method::GET, &list, Some(&patient), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["unread"], 1);
    let (s, _) = api.call(Method::GET, &list, Some(&other), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api.call(Method::GET, &list, Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK);

    // Mark read: the owner only (others get 404).
    let id = v1["notification"]["id"].as_str().unwrap();
    let read = format!("/api/v1/notifications/{id}/read");
    let (s, _) = api.post(&read, Some(&other), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api.post(&read, Some(&patient), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["read_at"].is_string());
    let (_, v) = api
        .call(
            Method::GET,
            &format!("{list}?unread=true"),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(
        (v["items"].as_array().unwrap().len(), v["unread"].as_i64()),
        (0, Some(0))
    );

    // Pagination.
    for i in 0..3 {
        let (s, _) = api
            .post(
                "/api/v1/notifications/send",
                Some(&admin),
                json!({"user_id": patient_id, "event_type": "ops", "subject": format!("n{i}"), "body": "b"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (_, p1) = api
        .call(
            Method::GET,
            &format!("{list}?limit=2"),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(p1["items"][0]["subject"], "n2");
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = api
        .call(
            Method::GET,
            &format!("{list}?limit=2&cursor={cursor}"),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 2);
    assert!(p2["next_cursor"].is_null());
}

#[tokio::test]
async fn preferences_and_templates() {
    let api = Api::start().await;
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;
    let (patient_id, patient) = api.token_for("patient@example.org", Role::Patient).await;

    let (s, v) = api
        .call(
            Method::GET,
            "/api/v1/notifications/preferences",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["channels"], json!(["in_app", "webhook"]));
    let prefs = json!({"channels": ["in_app", "email"], "email": "p@example.org",
        "time_zone": "Europe/Paris", "quiet_start": "22:00", "quiet_end": "7:00"});
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/notifications/preferences",
            Some(&patient),
            Some(prefs.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["quiet_end"], "07:00");
    let mut bad = prefs.clone();
    bad["time_zone"] = json!("Nowhere/Land");
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/notifications/preferences",
            Some(&patient),
            Some(bad),
        )
        .await;
    // Any string is a time zone's form; which names exist is not the schema's to say.
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "input-refused")
    );
    // Someone else's: admins only.
    let path = format!("/api/v1/notifications/preferences?user_id={patient_id}");
    let (_, other) = api.token_for("o@example.org", Role::Patient).await;
    let (s, _) = api.call(Method::GET, &path, Some(&other), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = api.call(Method::GET, &path, Some(&admin), None).await;
    assert_eq!(
        (s, v["email"].as_str()),
        (StatusCode::OK, Some("p@example.org"))
    );

    // Templates: admins create; ETag / If-Match guard updates.
    let t = json!({"key": "visit.reminder", "subject": "See you {{ when }}",
        "body_text": "Visit at {{ when }}", "body_html": "<p>{{ when }}</p>"});
    let (s, _) = api
        .post("/api/v1/notifications/templates", Some(&patient), t.clone())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = api
        .post("/api/v1/notifications/templates", Some(&admin), t.clone())
        .await;
    assert_eq!((s, v["version"].as_i64()), (StatusCode::CREATED, Some(1)));
    let (s, _) = api
        .post("/api/v1/notifications/templates", Some(&admin), t.clone())
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let mut broken = t.clone();
    broken["key"] = json!("broken");
    broken["body_text"] = json!("{% if %}");
    let (s, v) = api
        .post("/api/v1/notifications/templates", Some(&admin), broken)
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "template-error")
    );
    let put = |etag: &'static str| {
        api.http
            .put(format!("{}/api/v1/notifications/templates/visit.reminder", api.base))
            .bearer_auth(&admin)
            .header("If-Match", etag)
            .json(&json!({"key": "ignored", "subject": "Soon: {{ when }}", "body_text": "At {{ when }}"}))
            .send()
    };
    let r = put("\"1\"").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "\"2\"");
    assert_eq!(put("\"1\"").await.unwrap().status(), StatusCode::CONFLICT);
    let (s, v) = api
        .call(
            Method::GET,
            "/api/v1/notifications/templates",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "payment.confirmed")
    );
    let (s, _) = api
        .call(
            Method::DELETE,
            "/api/v1/notifications/templates/visit.reminder",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api
        .call(
            Method::GET,
            "/api/v1/notifications/templates/visit.reminder",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stream_webhooks_dead_letters_and_replay() {
    let api = Api::start().await;
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;
    let (patient_id, patient) = api.token_for("patient@example.org", Role::Patient).await;

    // The in-app stream: an SSE event per delivered notification.
    let resp = api
        .http
        .get(format!("{}/api/v1/notifications/stream?after=0", api.base))
        .bearer_auth(&patient)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut resp = resp;

    // A webhook endpoint nobody listens on (port 1 refuses): deliveries fail.
    let (s, hook) = api
        .post(
            "/api/v1/notifications/webhooks",
            Some(&patient),
            json!({"url": "http://127.0.0.1:1/hook"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    let (_, listed) = api
        .call(
            Method::GET,
            "/api/v1/notifications/webhooks",
            Some(&patient),
            None,
        )
        .await;
    assert!(listed[0].get("secret").is_none(), "secrets are shown once");

    let (s, sent) = api
        .post(
            "/api/v1/notifications/send",
            Some(&admin),
            json!({"user_id": patient_id, "event_type": "ops", "subject": "Hello", "body": "there"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let w = worker(&api);
    for _ in 0..40 {
        w.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("an SSE event within 10 s")
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: ops"), "{text}");
    assert!(
        text.contains(sent["notification"]["id"].as_str().unwrap()),
        "{text}"
    );

    // The webhook delivery died after its 8 attempts; admins see and replay it.
    let (s, _) = api
        .call(
            Method::GET,
            "/api/v1/notifications/dead-letters",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, dead) = api
        .call(
            Method::GET,
            "/api/v1/notifications/dead-letters",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["channel"], "webhook");
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("connection failed")
    );
    let id = dead[0]["id"].as_str().unwrap();
    let replay = format!("/api/v1/notifications/deliveries/{id}/replay");
    let (s, v) = api.post(&replay, Some(&admin), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("pending")));
    let (s, v) = api.post(&replay, Some(&admin), json!({})).await;
    assert_eq!((s, kind(&v)), (StatusCode::CONFLICT, "conflict"));

    let hook_id = hook["id"].as_str().unwrap();
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/notifications/webhooks/{hook_id}"),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The OpenAPI document lists the routes.
    let (_, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert!(doc["paths"]["/api/v1/notifications/send"]["post"].is_object());
}
