#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Input and connection hardening through the whole gateway (issue #21): NUL and non-UTF-8
//! text refused at the edge, out-of-range parameters refused instead of clamped, one strict
//! amount grammar, keep-alive connections kept usable after early error responses,
//! Solana Pay's `message` on transaction-request errors, webhook URLs that cannot point
//! inward, and a registration that reveals nothing (the existing owner is emailed instead).

use std::io::{Read, Write};
use std::time::Duration;

use advancia_auth::Role;
use advancia_notifications::channels::{
    Channels, EmailChannel, SmtpConfig, SmtpSecurity, WebhookChannel,
};
use advancia_notifications::outbox::{OutboxWorker, WorkerConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

mod common;
use common::{TestApi as Api, kind};

#[tokio::test]
async fn nul_and_non_utf8_text_is_refused_at_the_edge_wherever_it_is() {
    let api = Api::start().await;
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;
    // The nine parameters that reached Postgres and answered 500 before.
    for path in [
        "/api/v1/facilities?q=a%00b",
        "/api/v1/analytics/transactions/summary?chain=%00",
        "/api/v1/analytics/transactions/summary?facility=%00",
        "/api/v1/analytics/transactions/summary?mint=%00",
        "/api/v1/analytics/revenue/trends?chain=%00",
        "/api/v1/analytics/revenue/trends?facility=%00",
        "/api/v1/analytics/revenue/trends?mint=%00",
        "/api/v1/agents/a%00b/status",
        "/api/v1/agents/a%00b/versions",
        "/api/v1/notifications/templates/a%00b",
        // Bytes that are not UTF-8 once decoded, in a query and in a path.
        "/api/v1/facilities?q=%FF%FE",
        "/api/v1/notifications/templates/%C0%80",
    ] {
        let (s, v) = api.call(Method::GET, path, Some(&admin), None).await;
        assert_eq!(
            (s, kind(&v)),
            (StatusCode::BAD_REQUEST, "invalid-input"),
            "{path}: {v}"
        );
    }
    // In a JSON body (the escape, however it is nested).
    for body in [
        json!({"key": "a\u{0}b", "subject": "s", "body_text": "t"}),
        json!({"key": "k", "subject": "s", "body_text": "t", "description": ["\u{0}"]}),
    ] {
        let (s, v) = api
            .post("/api/v1/notifications/templates", Some(&admin), body)
            .await;
        assert_eq!(
            (s, kind(&v)),
            (StatusCode::BAD_REQUEST, "invalid-input"),
            "{v}"
        );
    }
    // An escaped backslash followed by `u0000` is text, not NUL.
    let (s, v) = api
        .post(
            "/api/v1/notifications/templates",
            Some(&admin),
            json!({"key": "escaped", "subject": "s", "body_text": "a\\u0000b"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = api.call(Method::GET, "/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn out_of_range_parameters_are_refused_not_clamped() {
    let api = Api::start().await;
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;
    for path in [
        "/api/v1/blockchain/wallets?limit=5000",
        "/api/v1/blockchain/wallets?limit=0",
        "/api/v1/indexer/payments?limit=201",
        "/api/v1/facilities?limit=1000",
        "/api/v1/notifications/dead-letters?limit=0",
        "/api/v1/facilities/compliance/expiring?days=5000",
        "/api/v1/analytics/revenue/trends?granularity=weekly",
    ] {
        let (s, v) = api.call(Method::GET, path, Some(&admin), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(v["status"], 400, "{path}: problem+json expected: {v}");
    }
    for path in [
        "/api/v1/blockchain/wallets?limit=200",
        "/api/v1/blockchain/wallets?limit=1",
        "/api/v1/facilities/compliance/expiring?days=3650",
    ] {
        let (s, v) = api.call(Method::GET, path, Some(&admin), None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    let (s, v) = api
        .post(
            "/api/v1/agents/execute",
            Some(&admin),
            json!({"agent": "fraud_score", "input": {}, "wait_ms": 30001}),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::BAD_REQUEST, "invalid-input"),
        "{v}"
    );
}

#[tokio::test]
async fn amounts_have_one_strict_grammar() {
    let api = Api::start().await;
    let (_, payer) = api.token_for("payer@example.org", Role::Patient).await;
    for amount in [" 5", "+5", "5 ", "05", "-5", "5e3", "1.5", ""] {
        let (s, v) = api
            .post(
                "/api/v1/payments/initiate",
                Some(&payer),
                json!({"facility_id": "42".repeat(32), "amount": amount, "asset": "SOL"}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{amount:?}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("amount"),
            "{amount:?}: {v}"
        );
    }
    let (_, admin) = api.token_for("admin@example.org", Role::Admin).await;
    let (s, v) = api
        .post(
            "/api/v1/ledger/entries",
            Some(&admin),
            json!({"transfers": [{"id": "1", "debit_account_id": "1", "credit_account_id": "2",
                   "amount": "+10", "pending_id": "0", "ledger": 1, "code": 1, "flags": 0,
                   "timeout": 0, "user_data": "0"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("`+10` is not an amount"),
        "{v}"
    );
}

/// Sends `request` on `stream` and reads one response (headers and a Content-Length body).
fn exchange(stream: &mut std::net::TcpStream, request: &str) -> Option<String> {
    stream.write_all(request.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(text);
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                return (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned());
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An error answered before the body was read either leaves the connection usable or says
/// `Connection: close`, so a keep-alive client never sends into a dead connection.
async fn assert_connection_sane(base: &str, first: &str) {
    let addr = base.trim_start_matches("http://").to_owned();
    let first = first.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r1 = exchange(&mut s, &first).expect("an answer to the first request");
        let status: u16 = r1.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(status >= 400, "{r1}");
        let closes = r1.to_ascii_lowercase().contains("\r\nconnection: close");
        let r2 = exchange(
            &mut s,
            &format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
        );
        assert!(
            closes || r2.as_deref().is_some_and(|r| r.starts_with("HTTP/1.1 200")),
            "the connection died without `Connection: close` after:\n{r1}\nsecond answer: {r2:?}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn keep_alive_connections_survive_early_error_responses() {
    // A payments quota of 1 a minute: the second POST is refused before its body is read.
    let db = advancia_test_support::TestDb::new(&advancia_api::all_migrations()).await;
    let state = common::state(db.pool.clone());
    let mut config = advancia_api::ApiConfig::default();
    config
        .gateway
        .apply_rate_limit_overrides("payments=1/min")
        .unwrap();
    let base = common::spawn(advancia_api::app(state, config).await.unwrap()).await;
    let body = "x".repeat(50_000);
    let post = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // 405: the method router answers without reading the body.
    assert_connection_sane(&base, &post("/health")).await;
    // 429 on a POST.
    let _ = reqwest::Client::new()
        .post(format!("{base}/api/v1/payments/initiate"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_connection_sane(&base, &post("/api/v1/payments/initiate")).await;
    // 401 before the body is looked at.
    assert_connection_sane(&base, &post("/api/v1/ledger/entries")).await;
    // 413 by Content-Length alone.
    let huge = format!(
        "POST /api/v1/ledger/entries HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
        64 * 1024 * 1024
    );
    assert_connection_sane(&base, &huge).await;

    // The same through a pooling client: every request after an early error succeeds.
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .post(format!("{base}/health"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        let r = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn transaction_request_errors_carry_the_solana_pay_message() {
    let api = Api::start().await;
    let path = format!(
        "/api/v1/payments/{}/transaction-request",
        uuid::Uuid::new_v4()
    );
    let (s, v) = api.call(Method::GET, &path, None, None).await;
    assert_eq!((s, kind(&v)), (StatusCode::NOT_FOUND, "not-found"), "{v}");
    assert_eq!(v["message"], v["detail"], "{v}");
    assert_eq!(v["message"], "payment not found");
    let (s, v) = api
        .post(
            &path,
            None,
            json!({"account": "11111111111111111111111111111111"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["message"], "payment not found");
    // A body the wallet got wrong: the reason is still in `message`.
    let (s, v) = api.post(&path, None, json!({"acount": "x"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["message"].as_str().unwrap().contains("account"), "{v}");
    let (s, v) = api
        .call(
            Method::GET,
            "/api/v1/payments/not-a-uuid/transaction-request",
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["message"].is_string(), "{v}");
}

#[tokio::test]
async fn webhook_urls_cannot_point_inward() {
    let db = advancia_test_support::TestDb::new(&advancia_api::all_migrations()).await;
    let mut state = common::state(db.pool.clone());
    // Production policy: https only, nothing internal, no allow-list.
    state.notifications = advancia_notifications::NotificationService::new(db.pool.clone());
    let base = common::spawn(
        advancia_api::app(state.clone(), advancia_api::ApiConfig::default())
            .await
            .unwrap(),
    )
    .await;
    let api = Api {
        base,
        http: reqwest::Client::new(),
        state,
        db,
    };
    let (_, user) = api.token_for("hooks@example.org", Role::Patient).await;
    let register = |url: &str| {
        api.post(
            "/api/v1/notifications/webhooks",
            Some(&user),
            json!({"url": url}),
        )
    };
    let (s, v) = register("http://hooks.example.com/x").await;
    // Any string is a URL's documented form: which URLs we deliver to is refused, not
    // malformed (ADR 0024).
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "webhook-url-refused"),
        "{v}"
    );
    for url in [
        "https://127.0.0.1/x",
        "https://127.0.0.1:8443/x",
        "https://localhost/x",
        "https://[::1]/x",
        "https://10.0.0.1/x",
        "https://192.168.1.10/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://2130706433/x",
    ] {
        let (s, v) = register(url).await;
        assert_eq!(
            (s, kind(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "webhook-url-refused"),
            "{url}: {v}"
        );
    }
    // A public name that does not resolve yet is accepted: its connections are checked.
    let (s, v) = register("https://hooks.example.invalid/advancia").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// Delivery re-checks every connection: an endpoint stored while the policy allowed it
/// (or whose name now resolves inward) is refused at connect time, and nothing reaches it;
/// the operator's allow-list admits it.
#[tokio::test]
async fn webhook_delivery_checks_each_connection() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let api = Api::start().await;
    let (admin_id, admin) = api.token_for("admin@example.org", Role::Admin).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let receiver = axum::Router::new().fallback(axum::routing::any(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            StatusCode::NO_CONTENT
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    // Registered while the policy (the test harness's allow-list) admits loopback.
    let (s, v) = api
        .post(
            "/api/v1/notifications/webhooks",
            Some(&admin),
            json!({"url": format!("http://127.0.0.1:{port}/hook")}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/notifications/preferences",
            Some(&admin),
            Some(json!({"channels": ["webhook"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let send = |n: u32| {
        api.post(
            "/api/v1/notifications/send",
            Some(&admin),
            json!({"user_id": admin_id, "event_type": "ops", "subject": format!("n{n}"), "body": "b"}),
        )
    };
    let worker = |policy: &advancia_egress::EgressPolicy| {
        OutboxWorker::new(
            api.db.pool.clone(),
            Channels::new().with(WebhookChannel::new(Duration::from_secs(2), policy).unwrap()),
            WorkerConfig {
                backoff_base: Duration::from_millis(10),
                backoff_max: Duration::from_millis(20),
                ..WorkerConfig::default()
            },
        )
    };
    // The production policy at delivery time: refused, the receiver sees nothing.
    let (s, v) = send(1).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let production = worker(&advancia_egress::EgressPolicy::production().allowing_http());
    for _ in 0..10 {
        production.run_once().await.unwrap();
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let (failed,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM notifications.deliveries WHERE channel = 'webhook' AND status = 'dead'",
    )
    .fetch_one(&api.db.pool)
    .await
    .unwrap();
    assert_eq!(failed, 1, "the refused delivery is a dead letter");
    // With the operator's allow-list: delivered.
    let (s, _) = send(2).await;
    assert_eq!(s, StatusCode::CREATED);
    let allowed = worker(&common::loopback_egress());
    for _ in 0..20 {
        allowed.run_once().await.unwrap();
        if hits.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn registration_reveals_nothing_and_tells_the_owner_by_email() {
    let api = Api::start().await;
    let sink = advancia_test_support::smtp::SmtpSink::start().await;
    let register = |email: &str| {
        api.post(
            "/api/v1/auth/register",
            None,
            json!({"email": email, "password": "correct horse battery", "display_name": "R"}),
        )
    };
    let (s1, new) = register("owner@example.org").await;
    let (s2, again) = register("Owner@Example.org").await;
    let (s3, other) = register("someone-else@example.org").await;
    assert_eq!(
        (s1, s2, s3),
        (
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED
        )
    );
    assert_eq!(new, again);
    assert_eq!(new, other);
    // The owner's account is untouched: the first password still signs in.
    let (s, _) = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "owner@example.org", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // The notifications service's SMTP channel tells the owner, at the account's address.
    let email = OutboxWorker::new(
        api.db.pool.clone(),
        Channels::new().with(
            EmailChannel::new(&SmtpConfig {
                host: "127.0.0.1".into(),
                port: sink.port,
                security: SmtpSecurity::Plain,
                username: None,
                password: None,
                from: "Advancia <no-reply@advancia.test>".into(),
                message_id_domain: "advancia.test".into(),
                timeout: Duration::from_secs(10),
            })
            .unwrap(),
        ),
        WorkerConfig::default(),
    );
    let mut messages = Vec::new();
    for _ in 0..100 {
        email.run_once().await.unwrap();
        messages = sink.raw_messages();
        if !messages.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert!(m.contains("To: owner@example.org"), "{m}");
    assert!(
        m.contains("Someone tried to create an account with your email address"),
        "{m}"
    );
    // A repeat within the hour is not a second email (no mailbox flooding).
    let (s, _) = register("owner@example.org").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    for _ in 0..10 {
        email.run_once().await.unwrap();
    }
    assert_eq!(sink.raw_messages().len(), 1);
}
