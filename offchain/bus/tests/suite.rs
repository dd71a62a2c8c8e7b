//! One suite, run against the in-process bus and against NATS JetStream
//! (`NATS_URL`, default `nats://127.0.0.1:4222`, JetStream enabled). Each NATS test
//! gets its own stream and subject prefix and deletes the stream afterwards.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use advancia_bus::memory::InProcessBus;
use advancia_bus::nats::{NatsBus, NatsConfig};
use advancia_bus::{Bus, Delivery, Envelope, SubscribeOptions, Subscription};
use futures_util::StreamExt;

struct Harness {
    bus: Bus,
    prefix: String,
    nats: Option<NatsBus>,
}

impl Harness {
    fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.prefix)
    }

    async fn done(self) {
        if let Some(n) = self.nats {
            n.delete_stream().await.unwrap();
        }
    }
}

fn prefix() -> String {
    format!("t{:08x}", rand::random::<u32>())
}

async fn memory() -> Harness {
    Harness {
        bus: Arc::new(InProcessBus::default()),
        prefix: prefix(),
        nats: None,
    }
}

async fn nats() -> Harness {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = prefix();
    let bus = NatsBus::connect(&NatsConfig::new(
        url,
        format!("TEST_{prefix}"),
        vec![format!("{prefix}.>")],
    ))
    .await
    .unwrap();
    Harness {
        bus: Arc::new(bus.clone()),
        prefix,
        nats: Some(bus),
    }
}

async fn next(sub: &mut Subscription, within: Duration) -> Option<Delivery> {
    match tokio::time::timeout(within, sub.next()).await {
        Ok(Some(d)) => Some(d.unwrap()),
        Ok(None) => panic!("subscription ended"),
        Err(_) => None,
    }
}

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(400);

async fn publish_subscribe(h: Harness) {
    let mut sub = h
        .bus
        .subscribe(SubscribeOptions::new(h.subject("orders.*"), "c1"))
        .await
        .unwrap();
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut ids = Vec::new();
    for i in 0..3 {
        let env = Envelope::json(h.subject("orders.created"), &serde_json::json!({ "n": i }))
            .unwrap()
            .with_header("traceparent", trace);
        ids.push(env.id.clone());
        let ack = h.bus.publish(env).await.unwrap();
        assert!(!ack.duplicate);
    }
    // Outside the pattern: never delivered to c1.
    h.bus
        .publish(Envelope::new(h.subject("other.created"), b"x".to_vec()))
        .await
        .unwrap();
    for (i, id) in ids.iter().enumerate() {
        let d = next(&mut sub, WAIT).await.expect("delivery");
        assert_eq!(&d.envelope.id, id);
        assert_eq!(d.envelope.subject, h.subject("orders.created"));
        assert_eq!(d.attempt, 1);
        assert_eq!(d.envelope.headers.get("traceparent").unwrap(), trace);
        let v: serde_json::Value = d.envelope.decode().unwrap();
        assert_eq!(v["n"], i);
        d.ack().await.unwrap();
    }
    assert!(next(&mut sub, QUIET).await.is_none());
    h.done().await;
}

async fn fan_out_to_each_consumer(h: Harness) {
    let mut a = h
        .bus
        .subscribe(SubscribeOptions::new(h.subject(">"), "a"))
        .await
        .unwrap();
    let mut b = h
        .bus
        .subscribe(SubscribeOptions::new(h.subject("x.>"), "b"))
        .await
        .unwrap();
    for s in ["x.1", "x.2.3"] {
        h.bus
            .publish(Envelope::new(h.subject(s), s.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    for sub in [&mut a, &mut b] {
        for s in ["x.1", "x.2.3"] {
            let d = next(sub, WAIT).await.expect("delivery");
            assert_eq!(d.envelope.payload, s.as_bytes());
            d.ack().await.unwrap();
        }
    }
    h.done().await;
}

async fn competing_consumers_share_work(h: Harness) {
    let opts = SubscribeOptions::new(h.subject("jobs.*"), "workers").batch(1);
    let subs = [
        h.bus.subscribe(opts.clone()).await.unwrap(),
        h.bus.subscribe(opts).await.unwrap(),
    ];
    let total = 20;
    for i in 0..total {
        h.bus
            .publish(Envelope::new(
                h.subject("jobs.work"),
                format!("{i}").into_bytes(),
            ))
            .await
            .unwrap();
    }
    let seen = Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let mut handles = Vec::new();
    for mut sub in subs {
        let seen = seen.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = 0usize;
            while let Some(d) = next(&mut sub, Duration::from_secs(2)).await {
                // Slow enough that one worker cannot drain the queue alone.
                tokio::time::sleep(Duration::from_millis(20)).await;
                seen.lock()
                    .await
                    .push(String::from_utf8(d.envelope.payload.clone()).unwrap());
                d.ack().await.unwrap();
                mine += 1;
            }
            mine
        }));
    }
    let mut per_worker = Vec::new();
    for h in handles {
        per_worker.push(h.await.unwrap());
    }
    let seen = seen.lock().await.clone();
    let distinct: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), total, "each message handled once: {seen:?}");
    assert_eq!(distinct.len(), total);
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "work is shared: {per_worker:?}"
    );
    h.done().await;
}

async fn unacked_messages_are_redelivered(h: Harness) {
    let mut sub = h
        .bus
        .subscribe(
            SubscribeOptions::new(h.subject("r.*"), "redeliver").ack_wait(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    let env = Envelope::new(h.subject("r.one"), b"1".to_vec());
    let id = env.id.clone();
    h.bus.publish(env).await.unwrap();
    // nak: back at once.
    let d1 = next(&mut sub, WAIT).await.unwrap();
    assert_eq!((d1.envelope.id.as_str(), d1.attempt), (id.as_str(), 1));
    d1.nak(Duration::ZERO).await.unwrap();
    let d2 = next(&mut sub, WAIT).await.unwrap();
    assert_eq!((d2.envelope.id.as_str(), d2.attempt), (id.as_str(), 2));
    // Neither ack nor nak: back after ack_wait.
    let started = std::time::Instant::now();
    let d3 = next(&mut sub, WAIT).await.unwrap();
    assert_eq!((d3.envelope.id.as_str(), d3.attempt), (id.as_str(), 3));
    assert!(started.elapsed() >= Duration::from_millis(700));
    d3.ack().await.unwrap();
    assert!(next(&mut sub, Duration::from_millis(1500)).await.is_none());
    h.done().await;
}

async fn duplicates_by_id_are_dropped(h: Harness) {
    let mut sub = h
        .bus
        .subscribe(SubscribeOptions::new(h.subject("d.*"), "dedup"))
        .await
        .unwrap();
    let env = Envelope::new(h.subject("d.x"), b"first".to_vec()).with_id("outbox-42");
    let a = h.bus.publish(env.clone()).await.unwrap();
    let b = h
        .bus
        .publish(Envelope {
            payload: b"second".to_vec(),
            ..env
        })
        .await
        .unwrap();
    assert!(!a.duplicate);
    assert!(b.duplicate);
    h.bus
        .publish(Envelope::new(h.subject("d.x"), b"other".to_vec()).with_id("outbox-43"))
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(d) = next(&mut sub, QUIET).await {
        got.push(String::from_utf8(d.envelope.payload.clone()).unwrap());
        d.ack().await.unwrap();
    }
    assert_eq!(got, ["first", "other"]);
    h.done().await;
}

async fn gives_up_after_max_deliver(h: Harness) {
    let mut sub = h
        .bus
        .subscribe(SubscribeOptions::new(h.subject("p.*"), "poison").max_deliver(2))
        .await
        .unwrap();
    h.bus
        .publish(Envelope::new(h.subject("p.x"), b"bad".to_vec()))
        .await
        .unwrap();
    for attempt in 1..=2 {
        let d = next(&mut sub, WAIT).await.unwrap();
        assert_eq!(d.attempt, attempt);
        d.nak(Duration::ZERO).await.unwrap();
    }
    assert!(next(&mut sub, Duration::from_millis(800)).await.is_none());
    h.done().await;
}

async fn durable_consumer_resumes(h: Harness) {
    // Published before any subscriber exists: retained and delivered.
    h.bus
        .publish(Envelope::new(h.subject("q.x"), b"early".to_vec()))
        .await
        .unwrap();
    let opts = SubscribeOptions::new(h.subject("q.*"), "durable");
    let mut sub = h.bus.subscribe(opts.clone()).await.unwrap();
    let d = next(&mut sub, WAIT).await.unwrap();
    assert_eq!(d.envelope.payload, b"early");
    d.ack().await.unwrap();
    drop(sub);
    h.bus
        .publish(Envelope::new(h.subject("q.x"), b"later".to_vec()))
        .await
        .unwrap();
    let mut sub = h.bus.subscribe(opts).await.unwrap();
    let d = next(&mut sub, WAIT).await.unwrap();
    assert_eq!(d.envelope.payload, b"later", "resumes after the acked one");
    d.ack().await.unwrap();
    assert!(next(&mut sub, QUIET).await.is_none());
    h.done().await;
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $( #[tokio::test] async fn $name() { super::$name(super::memory().await).await } )*
        }
        mod jetstream {
            $( #[tokio::test] async fn $name() { super::$name(super::nats().await).await } )*
        }
    };
}

suite!(
    publish_subscribe,
    fan_out_to_each_consumer,
    competing_consumers_share_work,
    unacked_messages_are_redelivered,
    duplicates_by_id_are_dropped,
    gives_up_after_max_deliver,
    durable_consumer_resumes,
);
