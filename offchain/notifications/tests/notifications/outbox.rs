//! The outbox: Standard Webhooks deliveries checked by the reference verifier, retries with
//! backoff, dead letters and replay, a worker killed mid-send, and competing workers.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use advancia_notifications::outbox::OutboxWorker;
use advancia_notifications::{ChannelKind, NotificationService, SendRequest};
use serde_json::json;
use uuid::Uuid;

use crate::common::{
    db, drain, fast_worker_config, loopback_egress, prefs, reference_verdicts,
    verify_with_reference, web_and_inapp, webhook_receiver, worker,
};

fn notice(user: Uuid, i: usize) -> SendRequest {
    SendRequest {
        user_id: user,
        event_type: "payment.confirmed".into(),
        data: json!({
            "label": format!("Visit {i}"), "amount": "1.5", "asset": "SOL",
            "facility_id": "ab".repeat(32), "signature": format!("sig{i}"),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn webhooks_are_signed_per_standard_webhooks_and_verified_independently() {
    let db = db().await;
    let svc = NotificationService::new(db.pool.clone()).with_egress(loopback_egress());
    let user = Uuid::now_v7();
    prefs(&svc, user, &[ChannelKind::Webhook, ChannelKind::InApp]).await;
    let (recv, url) = webhook_receiver().await;
    let ep = svc.create_webhook(user, &url, None).await.unwrap();
    let secret = ep.secret.clone().unwrap();
    assert!(secret.starts_with("whsec_"));
    // A second endpoint subscribed to another type only: not called.
    svc.create_webhook(user, &url, Some(vec!["kyc.decided".into()]))
        .await
        .unwrap();
    let mut sent = vec![];
    for i in 0..3 {
        sent.push(svc.send(&notice(user, i)).await.unwrap());
    }
    drain(
        &worker(&db, web_and_inapp(&db)),
        &db,
        Duration::from_secs(10),
    )
    .await;

    let hits = recv.hits.lock().await.clone();
    assert_eq!(hits.len(), 3);
    let verified = verify_with_reference(&secret, &hits).await;
    assert_eq!(verified.len(), 3);
    let expected: HashSet<String> = sent
        .iter()
        .flat_map(|s| s.deliveries.iter())
        .filter(|d| d.channel == "webhook")
        .map(|d| d.idempotency_key.clone())
        .collect();
    let got: HashSet<String> = verified.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(got, expected);
    assert!(verified.iter().all(|(_, t)| t == "payment.confirmed"));
    // The body carries the rendered notification.
    let body: serde_json::Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(body["type"], "payment.confirmed");
    assert!(
        body["data"]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Payment confirmed: Visit")
    );
    // A tampered body fails the reference verifier.
    let mut tampered = hits[0].clone();
    tampered.body = axum::body::Bytes::from(
        String::from_utf8(hits[0].body.to_vec())
            .unwrap()
            .replace("1.5", "9.5"),
    );
    let verdict = reference_verdicts(&secret, &[tampered]).await;
    assert!(verdict[0].starts_with("bad "), "{verdict:?}");
    // So does the right body under another endpoint's secret.
    let other = advancia_notifications::signing::generate_secret();
    assert!(reference_verdicts(&other, &hits[..1]).await[0].starts_with("bad "));
}

#[tokio::test]
async fn failures_back_off_then_dead_letter_and_replay_delivers_with_the_same_id() {
    let db = db().await;
    let svc = NotificationService::new(db.pool.clone())
        .with_egress(loopback_egress())
        .with_max_attempts(3);
    let user = Uuid::now_v7();
    prefs(&svc, user, &[ChannelKind::Webhook]).await;
    let (recv, url) = webhook_receiver().await;
    let ep = svc.create_webhook(user, &url, None).await.unwrap();
    let w = worker(&db, web_and_inapp(&db));

    // Two failures, then success: three attempts, delivered.
    recv.fail_first.store(2, Ordering::SeqCst);
    let a = svc.send(&notice(user, 1)).await.unwrap();
    drain(&w, &db, Duration::from_secs(10)).await;
    let d = svc.delivery(a.deliveries[0].id).await.unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("delivered", 3));
    let attempts: Vec<(i32, String)> = sqlx::query_as(
        "SELECT attempt, outcome FROM notifications.delivery_attempts WHERE delivery_id = $1 ORDER BY id",
    )
    .bind(d.id)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        attempts,
        vec![
            (1, "retry".into()),
            (2, "retry".into()),
            (3, "delivered".into())
        ]
    );
    assert_eq!(recv.by_id().await[&d.idempotency_key], 3);

    // Always failing: dead after max_attempts, with the backoff between tries.
    recv.fail_first.store(usize::MAX, Ordering::SeqCst);
    let b = svc.send(&notice(user, 2)).await.unwrap();
    let started = std::time::Instant::now();
    drain(&w, &db, Duration::from_secs(10)).await;
    let d = svc.delivery(b.deliveries[0].id).await.unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("dead", 3));
    assert!(d.last_error.as_deref().unwrap().contains("500"));
    // Backoff before attempts 2 and 3: at least 20 ms + 40 ms (half of 40 and 80 ms).
    assert!(started.elapsed() >= Duration::from_millis(60));
    let dead = svc.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].delivery.id, d.id);
    assert_eq!(dead[0].user_id, user);

    // A permanent error (410 Gone) dead-letters on the first attempt.
    recv.fail_first.store(0, Ordering::SeqCst);
    recv.status.store(410, Ordering::SeqCst);
    let c = svc.send(&notice(user, 3)).await.unwrap();
    drain(&w, &db, Duration::from_secs(10)).await;
    let dc = svc.delivery(c.deliveries[0].id).await.unwrap();
    assert_eq!((dc.status.as_str(), dc.attempts), ("dead", 1));

    // Replay after the receiver recovered: delivered, same webhook-id as the failed tries.
    recv.status.store(0, Ordering::SeqCst);
    let replayed = svc.replay(d.id).await.unwrap();
    assert_eq!(
        (replayed.status.as_str(), replayed.attempts),
        ("pending", 0)
    );
    assert!(
        svc.replay(a.deliveries[0].id).await.is_err(),
        "only dead letters replay"
    );
    drain(&w, &db, Duration::from_secs(10)).await;
    let d = svc.delivery(d.id).await.unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("delivered", 1));
    let hits = recv.hits.lock().await.clone();
    let last = hits.last().unwrap();
    assert_eq!(last.headers["webhook-id"], d.idempotency_key);
    let verified =
        verify_with_reference(ep.secret.as_deref().unwrap(), std::slice::from_ref(last)).await;
    assert_eq!(verified[0].0, d.idempotency_key);
}

#[tokio::test]
async fn a_worker_killed_mid_send_loses_nothing_and_the_receiver_processes_each_once() {
    let db = db().await;
    let svc = NotificationService::new(db.pool.clone()).with_egress(loopback_egress());
    let user = Uuid::now_v7();
    prefs(&svc, user, &[ChannelKind::Webhook]).await;
    let (recv, url) = webhook_receiver().await;
    let ep = svc.create_webhook(user, &url, None).await.unwrap();
    const N: usize = 10;
    let mut keys = HashSet::new();
    for i in 0..N {
        let s = svc.send(&notice(user, i)).await.unwrap();
        keys.insert(s.deliveries[0].idempotency_key.clone());
    }

    // Worker A claims everything; the receiver holds the first request open; A dies while
    // it waits (the task is aborted: no outcome is written, its claim stays leased).
    recv.stall_first.store(true, Ordering::SeqCst);
    let mut cfg = fast_worker_config();
    cfg.concurrency = 1;
    // Long enough that the checks below run inside it on a loaded machine.
    cfg.lease = Duration::from_secs(3);
    let a = OutboxWorker::new(db.pool.clone(), web_and_inapp(&db), cfg.clone());
    let task = tokio::spawn(async move { a.run_once().await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while recv.hits.lock().await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker A never sent"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let leased: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications.deliveries WHERE status = 'pending' AND locked_until > now()",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        leased, N as i64,
        "A's claims survive it until the lease ends"
    );

    // Worker B takes over once the lease has passed.
    let b = OutboxWorker::new(db.pool.clone(), web_and_inapp(&db), cfg);
    assert_eq!(
        b.run_once().await.unwrap().claimed,
        0,
        "leased rows are not taken early"
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    drain(&b, &db, Duration::from_secs(10)).await;

    let by_id = recv.by_id().await;
    let got: HashSet<String> = by_id.keys().cloned().collect();
    assert_eq!(got, keys, "every notification arrived");
    // The one in flight when A died arrived twice under one webhook-id (a receiver
    // deduplicating on webhook-id processes it once); every other one exactly once.
    let repeats: Vec<usize> = by_id.values().copied().filter(|&n| n > 1).collect();
    assert_eq!(repeats, vec![2]);
    let delivered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications.deliveries WHERE status = 'delivered'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(delivered, N as i64);
    let hits = recv.hits.lock().await.clone();
    assert_eq!(
        verify_with_reference(ep.secret.as_deref().unwrap(), &hits)
            .await
            .len(),
        N + 1
    );
}

#[tokio::test]
async fn competing_workers_send_each_delivery_once() {
    let db = db().await;
    let svc = NotificationService::new(db.pool.clone()).with_egress(loopback_egress());
    let user = Uuid::now_v7();
    prefs(&svc, user, &[ChannelKind::Webhook, ChannelKind::InApp]).await;
    let (recv, url) = webhook_receiver().await;
    svc.create_webhook(user, &url, None).await.unwrap();
    const N: usize = 60;
    for i in 0..N {
        svc.send(&notice(user, i)).await.unwrap();
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let w = worker(&db, web_and_inapp(&db));
            let pool = db.pool.clone();
            tokio::spawn(async move {
                loop {
                    let r = w.run_once().await.unwrap();
                    if r.claimed == 0 {
                        let left: i64 = sqlx::query_scalar(
                            "SELECT count(*) FROM notifications.deliveries WHERE status = 'pending'",
                        )
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                        if left == 0 {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .unwrap()
            .unwrap();
    }
    let by_id = recv.by_id().await;
    assert_eq!(by_id.len(), N);
    assert!(by_id.values().all(|&n| n == 1), "no webhook sent twice");
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications.inbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(inbox, N as i64);
}
