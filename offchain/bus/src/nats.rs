//! NATS JetStream: one stream holds the bus's subjects; the envelope id travels as
//! `Nats-Msg-Id` (the server deduplicates within the stream's duplicate window); each
//! consumer name is a durable pull consumer with explicit acks.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};

use crate::{
    Acker, BusError, Delivery, Envelope, EventBus, PublishAck, Result, SubscribeOptions,
    Subscription, validate_subject,
};

const MSG_ID: &str = "Nats-Msg-Id";

/// Where and how to keep the stream.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// e.g. `nats://127.0.0.1:4222`
    pub url: String,
    /// JetStream stream name.
    pub stream: String,
    /// Subjects the stream captures, e.g. `["agents.>", "events.>"]`.
    pub subjects: Vec<String>,
    pub max_age: Duration,
    pub dedup_window: Duration,
}

impl NatsConfig {
    pub fn new(url: impl Into<String>, stream: impl Into<String>, subjects: Vec<String>) -> Self {
        Self {
            url: url.into(),
            stream: stream.into(),
            subjects,
            max_age: Duration::from_secs(24 * 3600),
            dedup_window: Duration::from_secs(120),
        }
    }
}

fn nats_err(e: impl std::fmt::Display) -> BusError {
    BusError::Nats(e.to_string())
}

#[derive(Clone)]
pub struct NatsBus {
    js: jetstream::Context,
    stream: stream::Stream,
}

impl NatsBus {
    /// Connects and creates the stream if it does not exist yet.
    pub async fn connect(config: &NatsConfig) -> Result<Self> {
        let client = async_nats::connect(&config.url).await.map_err(nats_err)?;
        let js = jetstream::new(client);
        let stream = js
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: config.subjects.clone(),
                max_age: config.max_age,
                duplicate_window: config.dedup_window,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(nats_err)?;
        Ok(Self { js, stream })
    }

    /// Deletes the stream and its consumers (tests clean up with this).
    pub async fn delete_stream(&self) -> Result<()> {
        self.js
            .delete_stream(&self.stream.cached_info().config.name)
            .await
            .map(|_| ())
            .map_err(nats_err)
    }

    async fn publish_inner(&self, envelope: Envelope) -> Result<PublishAck> {
        validate_subject(&envelope.subject)?;
        let mut headers = async_nats::HeaderMap::new();
        for (k, v) in &envelope.headers {
            headers.insert(k.as_str(), v.as_str());
        }
        headers.insert(MSG_ID, envelope.id.as_str());
        let ack = self
            .js
            .publish_with_headers(envelope.subject, headers, envelope.payload.into())
            .await
            .map_err(nats_err)?
            .await
            .map_err(nats_err)?;
        Ok(PublishAck {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    async fn subscribe_inner(&self, options: SubscribeOptions) -> Result<Subscription> {
        options.validate()?;
        let consumer: consumer::PullConsumer = self
            .stream
            .get_or_create_consumer(
                &options.consumer,
                consumer::pull::Config {
                    durable_name: Some(options.consumer.clone()),
                    filter_subject: options.subject.clone(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: options.ack_wait,
                    max_deliver: if options.max_deliver == 0 {
                        -1
                    } else {
                        i64::from(options.max_deliver)
                    },
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats_err)?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(options.batch)
            .messages()
            .await
            .map_err(nats_err)?;
        Ok(messages
            .map(|m| {
                let m = m.map_err(nats_err)?;
                let attempt = m
                    .info()
                    .map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX))
                    .map_err(nats_err)?;
                let (msg, acker) = m.split();
                let mut headers = BTreeMap::new();
                let mut id = None;
                if let Some(h) = &msg.headers {
                    for (name, values) in h.iter() {
                        let Some(v) = values.first() else { continue };
                        if AsRef::<str>::as_ref(name) == MSG_ID {
                            id = Some(v.as_str().to_owned());
                        } else {
                            headers.insert(name.to_string(), v.as_str().to_owned());
                        }
                    }
                }
                let envelope = Envelope {
                    // Messages published by other clients without an id get the stream's.
                    id: id.unwrap_or_else(|| format!("nats-seq-{attempt}")),
                    subject: msg.subject.to_string(),
                    payload: msg.payload.to_vec(),
                    headers,
                };
                Ok(Delivery::new(envelope, attempt, Box::new(NatsAcker(acker))))
            })
            .boxed())
    }
}

struct NatsAcker(jetstream::message::Acker);

impl Acker for NatsAcker {
    fn ack(&self) -> BoxFuture<'_, Result<()>> {
        // Double ack waits for the server's confirmation, so an ack that returns Ok
        // cannot be lost on the way (the message will not come back).
        async move { self.0.double_ack_with(AckKind::Ack).await.map_err(nats_err) }.boxed()
    }

    fn nak(&self, delay: Duration) -> BoxFuture<'_, Result<()>> {
        let kind = if delay.is_zero() {
            AckKind::Nak(None)
        } else {
            AckKind::Nak(Some(delay))
        };
        async move { self.0.ack_with(kind).await.map_err(nats_err) }.boxed()
    }
}

impl EventBus for NatsBus {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<PublishAck>> {
        self.publish_inner(envelope).boxed()
    }

    fn subscribe(&self, options: SubscribeOptions) -> BoxFuture<'_, Result<Subscription>> {
        self.subscribe_inner(options).boxed()
    }
}
