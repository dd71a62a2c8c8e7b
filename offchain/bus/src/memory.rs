//! The in-process bus: a bounded log of envelopes and, per durable consumer, a cursor
//! into it plus the messages it has in flight. It mirrors JetStream's model (stream +
//! durable pull consumers) so both pass one test suite; nothing survives a restart,
//! which is why producers that must not lose events keep an outbox in Postgres.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{
    Acker, BusError, Delivery, Envelope, EventBus, PublishAck, Result, SubscribeOptions,
    Subscription, subject_matches, validate_subject,
};

/// Retention and dedup settings.
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// Oldest messages are dropped beyond this many.
    pub max_messages: usize,
    /// Messages older than this are dropped.
    pub max_age: Duration,
    /// A repeated envelope id within this window is a duplicate.
    pub dedup_window: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            max_messages: 100_000,
            max_age: Duration::from_secs(24 * 3600),
            dedup_window: Duration::from_secs(120),
        }
    }
}

struct Stored {
    seq: u64,
    at: Instant,
    envelope: Arc<Envelope>,
}

struct Pending {
    envelope: Arc<Envelope>,
    /// Deliveries so far.
    attempt: u32,
    in_flight: bool,
    /// In flight: when the ack deadline lapses; otherwise: when it may be redelivered.
    due: Instant,
}

struct Consumer {
    options: SubscribeOptions,
    /// Next log sequence to look at.
    cursor: u64,
    pending: std::collections::BTreeMap<u64, Pending>,
    notify: Arc<Notify>,
    /// Messages given up on after `max_deliver` attempts.
    dropped: u64,
}

#[derive(Default)]
struct State {
    log: VecDeque<Stored>,
    next_seq: u64,
    dedup: HashMap<String, Instant>,
    dedup_order: VecDeque<(Instant, String)>,
    consumers: HashMap<String, Consumer>,
}

struct Inner {
    config: MemoryConfig,
    state: Mutex<State>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (no partial updates
        // span an unwind point), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// See the module docs. Cheap to clone; clones share the bus.
#[derive(Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(MemoryConfig::default())
    }
}

impl InProcessBus {
    pub fn new(config: MemoryConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    next_seq: 1,
                    ..State::default()
                }),
            }),
        }
    }

    /// Messages consumer `name` gave up on after `max_deliver` attempts.
    pub fn dropped(&self, name: &str) -> u64 {
        self.inner
            .lock()
            .consumers
            .get(name)
            .map_or(0, |c| c.dropped)
    }

    fn publish_now(&self, envelope: Envelope) -> Result<PublishAck> {
        validate_subject(&envelope.subject)?;
        let now = Instant::now();
        let cfg = &self.inner.config;
        let mut st = self.inner.lock();
        while let Some((at, _)) = st.dedup_order.front() {
            if now.duration_since(*at) < cfg.dedup_window {
                break;
            }
            if let Some((at, id)) = st.dedup_order.pop_front()
                && st.dedup.get(&id) == Some(&at)
            {
                st.dedup.remove(&id);
            }
        }
        if st.dedup.contains_key(&envelope.id) {
            return Ok(PublishAck {
                sequence: st.next_seq.saturating_sub(1),
                duplicate: true,
            });
        }
        st.dedup.insert(envelope.id.clone(), now);
        st.dedup_order.push_back((now, envelope.id.clone()));
        while st.log.len() >= cfg.max_messages.max(1)
            || st
                .log
                .front()
                .is_some_and(|m| now.duration_since(m.at) > cfg.max_age)
        {
            st.log.pop_front();
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let subject = envelope.subject.clone();
        st.log.push_back(Stored {
            seq,
            at: now,
            envelope: Arc::new(envelope),
        });
        for c in st.consumers.values() {
            if subject_matches(&c.options.subject, &subject) {
                c.notify.notify_waiters();
            }
        }
        Ok(PublishAck {
            sequence: seq,
            duplicate: false,
        })
    }

    /// The next delivery for consumer `name`, or when to look again.
    fn take(&self, name: &str) -> Result<std::result::Result<Delivery, Option<Instant>>> {
        let now = Instant::now();
        let mut guard = self.inner.lock();
        let st = &mut *guard;
        let c = st.consumers.get_mut(name).ok_or(BusError::Closed)?;
        // Lapsed acks become redeliverable; exhausted messages are dropped.
        let max = c.options.max_deliver;
        let mut exhausted = Vec::new();
        for (seq, p) in c.pending.iter_mut() {
            if p.in_flight && p.due <= now {
                p.in_flight = false;
            }
            if !p.in_flight && max > 0 && p.attempt >= max {
                exhausted.push(*seq);
            }
        }
        for seq in exhausted {
            c.pending.remove(&seq);
            c.dropped += 1;
        }
        let ack_wait = c.options.ack_wait;
        if let Some((seq, p)) = c
            .pending
            .iter_mut()
            .find(|(_, p)| !p.in_flight && p.due <= now)
        {
            p.in_flight = true;
            p.attempt += 1;
            p.due = now + ack_wait;
            let d = delivery(&self.inner, name, *seq, p);
            return Ok(Ok(d));
        }
        let first = st.log.front().map_or(st.next_seq, |m| m.seq);
        let start = c.cursor.max(first);
        let skip = usize::try_from(start - first).unwrap_or(usize::MAX);
        let found = st
            .log
            .iter()
            .skip(skip)
            .find(|m| subject_matches(&c.options.subject, &m.envelope.subject));
        match found {
            Some(m) => {
                c.cursor = m.seq + 1;
                let p = Pending {
                    envelope: m.envelope.clone(),
                    attempt: 1,
                    in_flight: true,
                    due: now + ack_wait,
                };
                let d = delivery(&self.inner, name, m.seq, &p);
                c.pending.insert(m.seq, p);
                Ok(Ok(d))
            }
            None => {
                c.cursor = st.next_seq;
                Ok(Err(c.pending.values().map(|p| p.due).min()))
            }
        }
    }

    fn subscribe_now(&self, options: SubscribeOptions) -> Result<Subscription> {
        options.validate()?;
        let notify = {
            let mut st = self.inner.lock();
            let first = st.log.front().map_or(st.next_seq, |m| m.seq);
            let c = st
                .consumers
                .entry(options.consumer.clone())
                .or_insert_with(|| Consumer {
                    options: options.clone(),
                    cursor: first,
                    pending: Default::default(),
                    notify: Arc::new(Notify::new()),
                    dropped: 0,
                });
            c.notify.clone()
        };
        let bus = self.clone();
        let name = options.consumer;
        let stream = futures_util::stream::unfold((), move |()| {
            let bus = bus.clone();
            let notify = notify.clone();
            let name = name.clone();
            async move {
                loop {
                    // Registered before looking, so a publish in between is not missed.
                    let notified = notify.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    match bus.take(&name) {
                        Err(e) => return Some((Err(e), ())),
                        Ok(Ok(d)) => return Some((Ok(d), ())),
                        Ok(Err(Some(due))) => {
                            tokio::select! {
                                _ = notified => {}
                                _ = tokio::time::sleep_until(due) => {}
                            }
                        }
                        Ok(Err(None)) => notified.await,
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }
}

fn delivery(inner: &Arc<Inner>, consumer: &str, seq: u64, p: &Pending) -> Delivery {
    Delivery::new(
        (*p.envelope).clone(),
        p.attempt,
        Box::new(MemoryAcker {
            inner: inner.clone(),
            consumer: consumer.to_owned(),
            seq,
            attempt: p.attempt,
        }),
    )
}

struct MemoryAcker {
    inner: Arc<Inner>,
    consumer: String,
    seq: u64,
    attempt: u32,
}

impl MemoryAcker {
    /// Settles only the delivery this acker was handed (a late ack of an attempt
    /// already redelivered elsewhere does nothing, as with JetStream).
    fn settle(&self, redeliver_after: Option<Duration>) {
        let mut st = self.inner.lock();
        let Some(c) = st.consumers.get_mut(&self.consumer) else {
            return;
        };
        let current = c
            .pending
            .get(&self.seq)
            .is_some_and(|p| p.in_flight && p.attempt == self.attempt);
        if !current {
            return;
        }
        match redeliver_after {
            None => {
                c.pending.remove(&self.seq);
            }
            Some(delay) => {
                if let Some(p) = c.pending.get_mut(&self.seq) {
                    p.in_flight = false;
                    p.due = Instant::now() + delay;
                }
                c.notify.notify_waiters();
            }
        }
    }
}

impl Acker for MemoryAcker {
    fn ack(&self) -> BoxFuture<'_, Result<()>> {
        self.settle(None);
        futures_util::future::ready(Ok(())).boxed()
    }

    fn nak(&self, delay: Duration) -> BoxFuture<'_, Result<()>> {
        self.settle(Some(delay));
        futures_util::future::ready(Ok(())).boxed()
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<PublishAck>> {
        futures_util::future::ready(self.publish_now(envelope)).boxed()
    }

    fn subscribe(&self, options: SubscribeOptions) -> BoxFuture<'_, Result<Subscription>> {
        futures_util::future::ready(self.subscribe_now(options)).boxed()
    }
}
