//! `advancia-bus`: the event bus services publish to and consume from (ADR 0019).
//!
//! One trait, [`EventBus`], two implementations passing the same test suite:
//! [`memory::InProcessBus`] (the default: one process, no broker) and
//! [`nats::NatsBus`] (NATS JetStream, for several processes). Semantics shared by both:
//!
//! - [`Envelope::id`] is the dedup key: a second publish of the same id within the
//!   dedup window is acknowledged as a duplicate and not delivered again.
//! - A subscription names a *durable consumer* and a subject pattern (`*` one token,
//!   `>` the rest). Subscribers using the same consumer name compete for its messages
//!   (a queue group); different names each see every message.
//! - A consumer receives the messages the bus still retains that match its pattern,
//!   starting from the first retained one when it is created, and resumes where it left
//!   off afterwards.
//! - Delivery is at-least-once: a message not acked within `ack_wait` (or `nak`ed) is
//!   delivered again with `attempt` increased, up to `max_deliver` attempts.
//! - Headers are carried as given (e.g. W3C `traceparent`).

pub mod memory;
pub mod nats;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid subject `{0}`")]
    InvalidSubject(String),
    #[error("invalid consumer name `{0}`")]
    InvalidConsumer(String),
    #[error("payload is not valid JSON for this type: {0}")]
    Payload(#[from] serde_json::Error),
    #[error("bus is closed")]
    Closed,
    #[error("NATS: {0}")]
    Nats(String),
}

pub type Result<T, E = BusError> = std::result::Result<T, E>;

/// One event: an id (the dedup key), a subject, a payload and headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    pub subject: String,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Envelope {
    /// A new envelope with a fresh (time-ordered) id.
    pub fn new(subject: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            subject: subject.into(),
            payload: payload.into(),
            headers: BTreeMap::new(),
        }
    }

    /// The payload as JSON of `value`.
    pub fn json<T: Serialize>(subject: impl Into<String>, value: &T) -> Result<Self> {
        Ok(Self::new(subject, serde_json::to_vec(value)?))
    }

    /// Sets the dedup id (e.g. an outbox row key, so a re-published row is dropped).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.payload)?)
    }
}

/// What the bus said about a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishAck {
    /// Position in the bus's log.
    pub sequence: u64,
    /// The id was seen within the dedup window: nothing new was stored.
    pub duplicate: bool,
}

/// Which messages a subscription receives and how they are redelivered.
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    /// Subject pattern: tokens separated by `.`, `*` matches one token, `>` (last) the rest.
    pub subject: String,
    /// Durable consumer name: subscribers sharing it share the work.
    pub consumer: String,
    /// Unacknowledged messages are redelivered after this long.
    pub ack_wait: Duration,
    /// Attempts before a message is given up on (0 = unlimited).
    pub max_deliver: u32,
    /// How many messages one subscriber may hold unacknowledged (prefetch).
    pub batch: usize,
}

impl SubscribeOptions {
    pub fn new(subject: impl Into<String>, consumer: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            consumer: consumer.into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 0,
            batch: 16,
        }
    }

    pub fn ack_wait(mut self, d: Duration) -> Self {
        self.ack_wait = d;
        self
    }

    pub fn max_deliver(mut self, n: u32) -> Self {
        self.max_deliver = n;
        self
    }

    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    fn validate(&self) -> Result<()> {
        validate_pattern(&self.subject)?;
        let ok = !self.consumer.is_empty()
            && self
                .consumer
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(BusError::InvalidConsumer(self.consumer.clone()));
        }
        Ok(())
    }
}

/// Settles one delivery. Implemented by each bus.
pub trait Acker: Send + Sync {
    fn ack(&self) -> BoxFuture<'_, Result<()>>;
    /// Redeliver after `delay` (at once when zero).
    fn nak(&self, delay: Duration) -> BoxFuture<'_, Result<()>>;
}

/// A message handed to a subscriber; it must be acked once handled.
pub struct Delivery {
    pub envelope: Envelope,
    /// 1 on first delivery, 2 on the first redelivery, ...
    pub attempt: u32,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("envelope", &self.envelope)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl Delivery {
    pub fn new(envelope: Envelope, attempt: u32, acker: Box<dyn Acker>) -> Self {
        Self {
            envelope,
            attempt,
            acker,
        }
    }

    pub async fn ack(&self) -> Result<()> {
        self.acker.ack().await
    }

    pub async fn nak(&self, delay: Duration) -> Result<()> {
        self.acker.nak(delay).await
    }
}

/// The deliveries of one subscription, in order of arrival.
pub type Subscription = BoxStream<'static, Result<Delivery>>;

/// Publish and subscribe (see the crate docs for the guarantees).
pub trait EventBus: Send + Sync {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<PublishAck>>;
    fn subscribe(&self, options: SubscribeOptions) -> BoxFuture<'_, Result<Subscription>>;
}

/// The handle services hold.
pub type Bus = Arc<dyn EventBus>;

fn validate_subject(subject: &str) -> Result<()> {
    let bad = subject.is_empty()
        || subject
            .split('.')
            .any(|t| t.is_empty() || t == "*" || t == ">" || t.contains(char::is_whitespace));
    if bad {
        return Err(BusError::InvalidSubject(subject.to_owned()));
    }
    Ok(())
}

fn validate_pattern(pattern: &str) -> Result<()> {
    let tokens: Vec<&str> = pattern.split('.').collect();
    let bad = pattern.is_empty()
        || tokens.iter().enumerate().any(|(i, t)| {
            t.is_empty()
                || t.contains(char::is_whitespace)
                || (*t == ">" && i + 1 != tokens.len())
                || (t.len() > 1 && (t.contains('*') || t.contains('>')))
        });
    if bad {
        return Err(BusError::InvalidSubject(pattern.to_owned()));
    }
    Ok(())
}

/// NATS subject matching: `*` one token, a final `>` one or more tokens.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(!subject_matches("a.*.c", "a.b.d"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(validate_pattern("a.>.b").is_err());
        assert!(validate_pattern("a.b*").is_err());
        assert!(validate_subject("a.*").is_err());
        assert!(validate_subject("agents.tasks.fraud_score").is_ok());
    }
}
