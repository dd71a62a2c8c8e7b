//! Delivery channels behind one trait. A channel gets one claimed outbox row with its
//! notification and says whether it arrived, should be retried, or can never arrive.

mod email;
mod in_app;
mod providers;
mod webhook;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use uuid::Uuid;

use crate::model::{ChannelKind, Notification};

pub use email::{EmailChannel, SmtpConfig, SmtpSecurity};
pub use in_app::{INBOX_CHANNEL, InAppChannel};
pub use providers::{FcmPushChannel, PushConfig, SmsConfig, TwilioSmsChannel};
pub use webhook::{WebhookChannel, WebhookPayload};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A claimed delivery, ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub delivery_id: Uuid,
    pub channel: ChannelKind,
    /// Address, phone number, device token, user id, or webhook endpoint id.
    pub destination: String,
    /// Stable across attempts and replays: receivers deduplicate on it.
    pub idempotency_key: String,
    /// 1 for the first try.
    pub attempt: i32,
    pub notification: Notification,
    /// The endpoint, for webhook deliveries.
    pub endpoint: Option<Endpoint>,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub secret: String,
}

/// What the receiving side said.
#[derive(Debug, Clone, Default)]
pub struct Receipt {
    /// The provider's id for the message, when it gives one.
    pub provider_id: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another try later (timeouts, 5xx, 429, SMTP 4xx).
    #[error("{0}")]
    Retry(String),
    /// Will fail however often it is tried (bad address, 4xx, SMTP 5xx): dead-lettered now.
    #[error("{0}")]
    Permanent(String),
}

pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, Result<Receipt, DeliveryError>>;
}

/// The channels a worker delivers through; a row whose channel is not configured waits
/// (it is not claimed) until a worker that has it runs.
#[derive(Clone, Default)]
pub struct Channels {
    by_kind: HashMap<ChannelKind, Arc<dyn Channel>>,
}

impl Channels {
    pub fn new() -> Channels {
        Channels::default()
    }

    pub fn with(mut self, channel: impl Channel + 'static) -> Channels {
        self.by_kind.insert(channel.kind(), Arc::new(channel));
        self
    }

    pub fn get(&self, kind: ChannelKind) -> Option<&Arc<dyn Channel>> {
        self.by_kind.get(&kind)
    }

    /// Names of the configured channels, for the claim query.
    pub fn kinds(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_kind.keys().map(|k| k.as_str().to_owned()).collect();
        v.sort();
        v
    }
}

/// Maps an HTTP status to the retry policy shared by webhooks and providers: 2xx is
/// delivered, 408/429/5xx are retried, other 4xx are permanent (the request itself is
/// wrong, repeating it cannot help).
pub(crate) fn classify_status(
    status: reqwest::StatusCode,
    what: &str,
) -> Result<(), DeliveryError> {
    if status.is_success() {
        return Ok(());
    }
    let msg = format!("{what} answered {status}");
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        Err(DeliveryError::Retry(msg))
    } else {
        Err(DeliveryError::Permanent(msg))
    }
}

pub(crate) fn transport_error(e: &reqwest::Error, what: &str) -> DeliveryError {
    // Connection refused, reset, timeout: the other side may be back later.
    DeliveryError::Retry(format!("{what}: {}", without_url(e)))
}

/// reqwest errors print the URL, which may carry a provider token in its path.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_request() {
        "request failed"
    } else if e.is_body() || e.is_decode() {
        "bad response body"
    } else {
        "transport error"
    };
    kind.to_owned()
}
