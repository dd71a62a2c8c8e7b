//! Email over SMTP to a real server (aiosmtpd), SMS and push through their HTTP provider
//! APIs served locally, and the in-app inbox stream.

use std::sync::Arc;
use std::time::Duration;

use advancia_notifications::channels::{
    Channels, EmailChannel, FcmPushChannel, InAppChannel, PushConfig, SmsConfig, SmtpConfig,
    SmtpSecurity, TwilioSmsChannel,
};
use advancia_notifications::{ChannelKind, NotificationService, SendRequest, TemplateInput};
use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::common::{Received, SmtpSink, db, drain, prefs, serve, worker};

fn smtp(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::Plain,
        username: None,
        password: None,
        from: "Advancia <no-reply@advancia.test>".into(),
        message_id_domain: "advancia.test".into(),
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_as_text_and_escaped_html() {
    let db = db().await;
    let sink = SmtpSink::start().await;
    let svc = NotificationService::new(db.pool.clone());
    svc.create_template(&TemplateInput {
        key: "statement.ready".into(),
        description: String::new(),
        subject: "Statement for {{ name }}".into(),
        body_text: "Hello {{ name }}, your statement of {{ month }} is ready.".into(),
        body_html: Some("<h1>Hello {{ name }}</h1><p>Statement of {{ month }}.</p>".into()),
    })
    .await
    .unwrap();
    let user = Uuid::now_v7();
    prefs(&svc, user, &[ChannelKind::Email]).await;
    let sent = svc
        .send(&SendRequest {
            user_id: user,
            event_type: "statement.ready".into(),
            data: json!({ "name": "Zoë <img src=x>", "month": "March" }),
            ..Default::default()
        })
        .await
        .unwrap();
    let w = worker(
        &db,
        Channels::new().with(EmailChannel::new(&smtp(sink.port)).unwrap()),
    );
    drain(&w, &db, Duration::from_secs(20)).await;
    let d = svc.delivery(sent.deliveries[0].id).await.unwrap();
    assert_eq!(d.status, "delivered", "{:?}", d.last_error);

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["to"], "patient@example.org");
    assert_eq!(m["from"], "Advancia <no-reply@advancia.test>");
    assert_eq!(
        m["message_id"],
        format!("<{}@advancia.test>", d.idempotency_key)
    );
    assert_eq!(m["subject"], "Statement for Zoë <img src=x>");
    assert_eq!(m["content_type"], "multipart/alternative");
    let parts = m["parts"].as_array().unwrap();
    assert_eq!(parts[0]["type"], "text/plain");
    assert_eq!(
        parts[0]["content"].as_str().unwrap().trim_end(),
        "Hello Zoë <img src=x>, your statement of March is ready."
    );
    assert_eq!(parts[1]["type"], "text/html");
    // Escaped in HTML.
    assert_eq!(
        parts[1]["content"].as_str().unwrap().trim_end(),
        "<h1>Hello Zoë &lt;img src=x&gt;</h1><p>Statement of March.</p>"
    );

    // A server that is down: retried, not lost.
    drop(sink);
    let again = svc
        .send(&SendRequest {
            user_id: user,
            event_type: "statement.ready".into(),
            data: json!({ "name": "Zoë", "month": "April" }),
            ..Default::default()
        })
        .await
        .unwrap();
    w.run_once().await.unwrap();
    let d = svc.delivery(again.deliveries[0].id).await.unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("pending", 1));
    assert!(d.last_error.unwrap().starts_with("SMTP"));
}

type FormRequest = (HeaderMap, Vec<(String, String)>);

#[derive(Default)]
struct Provider {
    sms: Mutex<Vec<FormRequest>>,
    push: Mutex<Vec<(HeaderMap, serde_json::Value)>>,
}

async fn twilio(
    State(p): State<Arc<Provider>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let to = form.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone());
    p.sms.lock().await.push((headers, form));
    if sid != "AC123" {
        return (StatusCode::NOT_FOUND, Json(json!({ "code": 20404 })));
    }
    if to.as_deref() == Some("+10000000000") {
        // Twilio: 400 with code 21211 for an invalid 'To' number.
        return (StatusCode::BAD_REQUEST, Json(json!({ "code": 21211 })));
    }
    (
        StatusCode::CREATED,
        Json(json!({ "sid": "SM0001", "status": "queued" })),
    )
}

async fn fcm(
    State(p): State<Arc<Provider>>,
    Path((project, action)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> (StatusCode, Json<serde_json::Value>) {
    p.push.lock().await.push((headers, body));
    if action != "messages:send" {
        return (StatusCode::NOT_FOUND, Json(json!({})));
    }
    (
        StatusCode::OK,
        Json(json!({ "name": format!("projects/{project}/messages/0:1500") })),
    )
}

#[tokio::test]
async fn sms_and_push_go_through_their_provider_apis() {
    let db = db().await;
    let p = Arc::new(Provider::default());
    let addr = serve(
        axum::Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(twilio))
            .route("/v1/projects/{project}/{action}", post(fcm))
            .with_state(p.clone()),
    )
    .await;
    let base = format!("http://{addr}");
    let channels = Channels::new()
        .with(
            TwilioSmsChannel::new(SmsConfig {
                base_url: base.clone(),
                account_sid: "AC123".into(),
                auth_token: "token".into(),
                from: "+15005550006".into(),
                timeout: Duration::from_secs(5),
            })
            .unwrap(),
        )
        .with(
            FcmPushChannel::new(PushConfig {
                base_url: base,
                project_id: "advancia-test".into(),
                access_token: "ya29.test".into(),
                timeout: Duration::from_secs(5),
            })
            .unwrap(),
        );
    let svc = NotificationService::new(db.pool.clone());
    let user = Uuid::now_v7();
    prefs(&svc, user, &[ChannelKind::Sms, ChannelKind::Push]).await;
    let sent = svc
        .send(&SendRequest {
            user_id: user,
            event_type: "payment.refunded".into(),
            data: json!({ "label": "Visit", "amount": "2", "refunded": "0.5", "asset": "SOL" }),
            ..Default::default()
        })
        .await
        .unwrap();
    drain(&worker(&db, channels.clone()), &db, Duration::from_secs(10)).await;
    for d in svc.deliveries(sent.notification.id).await.unwrap() {
        assert_eq!(d.status, "delivered", "{} {:?}", d.channel, d.last_error);
        match d.channel.as_str() {
            "sms" => assert_eq!(d.provider_id.as_deref(), Some("SM0001")),
            _ => assert_eq!(
                d.provider_id.as_deref(),
                Some("projects/advancia-test/messages/0:1500")
            ),
        }
    }
    let sms = p.sms.lock().await;
    let (headers, form) = &sms[0];
    let field = |k: &str| form.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    assert_eq!(field("To"), Some("+33612345678"));
    assert_eq!(field("From"), Some("+15005550006"));
    assert_eq!(
        field("Body"),
        Some("0.5 SOL of your payment of 2 SOL was refunded.")
    );
    // Basic auth with the account SID and token.
    assert_eq!(headers["authorization"], "Basic QUMxMjM6dG9rZW4=");
    assert!(
        headers["i-twilio-idempotency-token"]
            .to_str()
            .unwrap()
            .starts_with("msg_")
    );
    let push = p.push.lock().await;
    let (headers, body) = &push[0];
    assert_eq!(headers["authorization"], "Bearer ya29.test");
    assert_eq!(body["message"]["token"], "device-token-1");
    assert_eq!(
        body["message"]["notification"]["title"],
        "Refund received: Visit"
    );
    assert_eq!(
        body["message"]["data"]["notification_id"],
        sent.notification.id.to_string()
    );
    drop((sms, push));

    // A number the provider rejects (4xx) is a permanent failure: dead at once.
    svc.set_preferences(
        user,
        &advancia_notifications::PreferencesUpdate {
            channels: vec![ChannelKind::Sms],
            email: None,
            phone: Some("+10000000000".into()),
            push_token: None,
            time_zone: None,
            quiet_start: None,
            quiet_end: None,
        },
    )
    .await
    .unwrap();
    let bad = svc
        .send(&SendRequest {
            user_id: user,
            event_type: "ops".into(),
            subject: Some("s".into()),
            body: Some("b".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    drain(&worker(&db, channels), &db, Duration::from_secs(10)).await;
    let d = svc.delivery(bad.deliveries[0].id).await.unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("dead", 1));
    assert!(d.last_error.unwrap().contains("400"));
}

#[tokio::test]
async fn in_app_notifications_stream_live_in_order_per_user() {
    let db = db().await;
    let svc = NotificationService::new(db.pool.clone());
    let user = Uuid::now_v7();
    let other = Uuid::now_v7();
    let w = worker(
        &db,
        Channels::new().with(InAppChannel::new(db.pool.clone())),
    );
    let send = |u: Uuid, s: &str| SendRequest {
        user_id: u,
        event_type: "ops".into(),
        subject: Some(s.into()),
        body: Some("b".into()),
        ..Default::default()
    };
    svc.send(&send(user, "before")).await.unwrap();
    drain(&w, &db, Duration::from_secs(5)).await;

    let mut stream = Box::pin(advancia_notifications::stream::inbox(
        db.pool.clone(),
        user,
        0,
    ));
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.notification.subject, "before");

    // Live: sent after the stream started, delivered by the worker, arrives; the other
    // user's does not.
    svc.send(&send(other, "not yours")).await.unwrap();
    svc.send(&send(user, "live 1")).await.unwrap();
    svc.send(&send(user, "live 2")).await.unwrap();
    drain(&w, &db, Duration::from_secs(5)).await;
    let mut got = vec![];
    for _ in 0..2 {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("live item within 10 s")
            .unwrap()
            .unwrap();
        assert!(item.seq > first.seq);
        got.push(item.notification.subject);
    }
    // The worker delivers concurrently: inbox order is delivery order.
    got.sort();
    assert_eq!(got, vec!["live 1", "live 2"]);

    // Resuming after a position skips what was seen.
    let head = advancia_notifications::stream::head(&db.pool, user)
        .await
        .unwrap();
    let mut resumed = Box::pin(advancia_notifications::stream::inbox(
        db.pool.clone(),
        user,
        first.seq,
    ));
    assert!(
        resumed
            .next()
            .await
            .unwrap()
            .unwrap()
            .notification
            .subject
            .starts_with("live")
    );
    assert!(head > first.seq);
}
