//! Webhooks per the Standard Webhooks spec: `webhook-id` (the delivery's idempotency key,
//! the same on every retry and replay), `webhook-timestamp` (this attempt, Unix seconds),
//! `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`).

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::{
    BoxFuture, Channel, DeliveryError, Outgoing, Receipt, classify_status, transport_error,
};
use crate::model::ChannelKind;
use crate::signing;

#[derive(Clone)]
pub struct WebhookChannel {
    http: reqwest::Client,
    egress: advancia_egress::EgressPolicy,
}

/// The JSON body: `{type, timestamp, data}` as the spec recommends.
#[derive(Debug, Serialize)]
pub struct WebhookPayload<'a> {
    #[serde(rename = "type")]
    pub event_type: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub data: serde_json::Value,
}

impl WebhookChannel {
    /// `timeout` bounds each attempt (the spec suggests receivers answer within 15 s);
    /// `egress` is checked on every request and every connection (no redirects).
    pub fn new(
        timeout: Duration,
        egress: &advancia_egress::EgressPolicy,
    ) -> Result<WebhookChannel, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!(
                "advancia-notifications/",
                env!("CARGO_PKG_VERSION")
            ));
        Ok(WebhookChannel {
            http: egress.client(builder).build()?,
            egress: egress.clone(),
        })
    }

    /// The body of a delivery; stable across attempts (it depends on the notification only).
    pub fn body(msg: &Outgoing) -> Result<Vec<u8>, DeliveryError> {
        let n = &msg.notification;
        let payload = WebhookPayload {
            event_type: &n.event_type,
            timestamp: n.created_at,
            data: serde_json::json!({
                "notification_id": n.id,
                "user_id": n.user_id,
                "subject": n.subject,
                "body": n.body_text,
                "priority": n.priority,
                "data": n.data,
            }),
        };
        serde_json::to_vec(&payload).map_err(|e| DeliveryError::Permanent(format!("encode: {e}")))
    }

    async fn send(&self, msg: &Outgoing) -> Result<Receipt, DeliveryError> {
        let endpoint = msg
            .endpoint
            .as_ref()
            .ok_or_else(|| DeliveryError::Permanent("webhook endpoint was deleted".into()))?;
        // Registered URLs were checked then; the policy may have changed since, and an
        // address literal is not seen by the resolver.
        self.egress
            .check_request(&endpoint.url)
            .map_err(|e| DeliveryError::Permanent(format!("webhook URL refused: {e}")))?;
        let key = signing::secret_key(&endpoint.secret)
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        let body = Self::body(msg)?;
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = signing::sign(&key, &msg.idempotency_key, timestamp, &body);
        // The receiver may continue the delivery's trace (W3C trace context).
        let mut trace = reqwest::header::HeaderMap::new();
        advancia_telemetry::trace::inject_headers(&mut trace);
        let resp = self
            .http
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg.idempotency_key)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .headers(trace)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&e, "webhook endpoint"))?;
        classify_status(resp.status(), "webhook endpoint")?;
        Ok(Receipt::default())
    }
}

impl Channel for WebhookChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, Result<Receipt, DeliveryError>> {
        Box::pin(self.send(msg))
    }
}
