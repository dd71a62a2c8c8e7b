//! SMS and push through HTTP providers: Twilio's Messages API for SMS and Firebase Cloud
//! Messaging's HTTP v1 API for push. Base URLs are settings, so tests (and regional or
//! self-hosted gateways speaking the same API) point them elsewhere.

use std::time::Duration;

use serde::Deserialize;

use super::{
    BoxFuture, Channel, DeliveryError, Outgoing, Receipt, classify_status, transport_error,
};
use crate::model::ChannelKind;

/// Longest SMS body we send (Twilio concatenates up to 1600 characters).
const SMS_MAX_CHARS: usize = 1600;

#[derive(Clone)]
pub struct SmsConfig {
    /// `https://api.twilio.com`.
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// Sender number (E.164) or messaging service.
    pub from: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct TwilioSmsChannel {
    http: reqwest::Client,
    config: SmsConfig,
}

#[derive(Deserialize)]
struct TwilioMessage {
    sid: String,
}

impl TwilioSmsChannel {
    pub fn new(config: SmsConfig) -> Result<TwilioSmsChannel, reqwest::Error> {
        Ok(TwilioSmsChannel {
            http: reqwest::Client::builder().timeout(config.timeout).build()?,
            config,
        })
    }

    async fn send(&self, msg: &Outgoing) -> Result<Receipt, DeliveryError> {
        let c = &self.config;
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            c.base_url.trim_end_matches('/'),
            c.account_sid
        );
        let body: String = msg
            .notification
            .body_text
            .chars()
            .take(SMS_MAX_CHARS)
            .collect();
        let resp = self
            .http
            .post(url)
            .basic_auth(&c.account_sid, Some(&c.auth_token))
            // Twilio's idempotency header for retried creates.
            .header("I-Twilio-Idempotency-Token", &msg.idempotency_key)
            .form(&[
                ("To", msg.destination.as_str()),
                ("From", c.from.as_str()),
                ("Body", body.as_str()),
            ])
            .send()
            .await
            .map_err(|e| transport_error(&e, "SMS provider"))?;
        classify_status(resp.status(), "SMS provider")?;
        let m: TwilioMessage = resp
            .json()
            .await
            .map_err(|e| transport_error(&e, "SMS provider"))?;
        Ok(Receipt {
            provider_id: Some(m.sid),
        })
    }
}

impl Channel for TwilioSmsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, Result<Receipt, DeliveryError>> {
        Box::pin(self.send(msg))
    }
}

#[derive(Clone)]
pub struct PushConfig {
    /// `https://fcm.googleapis.com`.
    pub base_url: String,
    pub project_id: String,
    /// OAuth 2 access token for the FCM scope (minted by the deployment's credential
    /// helper; rotated by restarting with a new one).
    pub access_token: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("base_url", &self.base_url)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct FcmPushChannel {
    http: reqwest::Client,
    config: PushConfig,
}

#[derive(Deserialize)]
struct FcmMessage {
    name: String,
}

impl FcmPushChannel {
    pub fn new(config: PushConfig) -> Result<FcmPushChannel, reqwest::Error> {
        Ok(FcmPushChannel {
            http: reqwest::Client::builder().timeout(config.timeout).build()?,
            config,
        })
    }

    async fn send(&self, msg: &Outgoing) -> Result<Receipt, DeliveryError> {
        let c = &self.config;
        let n = &msg.notification;
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            c.base_url.trim_end_matches('/'),
            c.project_id
        );
        // FCM data values must be strings.
        let body = serde_json::json!({
            "message": {
                "token": msg.destination,
                "notification": { "title": n.subject, "body": n.body_text },
                "data": {
                    "notification_id": n.id.to_string(),
                    "event_type": n.event_type,
                    "idempotency_key": msg.idempotency_key,
                },
            }
        });
        let resp = self
            .http
            .post(url)
            .bearer_auth(&c.access_token)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(&e, "push provider"))?;
        classify_status(resp.status(), "push provider")?;
        let m: FcmMessage = resp
            .json()
            .await
            .map_err(|e| transport_error(&e, "push provider"))?;
        Ok(Receipt {
            provider_id: Some(m.name),
        })
    }
}

impl Channel for FcmPushChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Push
    }

    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, Result<Receipt, DeliveryError>> {
        Box::pin(self.send(msg))
    }
}
