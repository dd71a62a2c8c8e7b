//! Channel settings from the environment and the background tasks a deployment runs.

use std::future::Future;
use std::time::Duration;

use crate::NotificationError;
use crate::channels::{
    Channels, EmailChannel, FcmPushChannel, InAppChannel, PushConfig, SmsConfig, SmtpConfig,
    SmtpSecurity, TwilioSmsChannel, WebhookChannel,
};
use crate::outbox::{OutboxWorker, WorkerConfig};
use crate::service::NotificationService;

/// Which channels are configured. Webhooks and in-app always are; email, SMS and push when
/// their settings are present.
#[derive(Debug, Clone, Default)]
pub struct ChannelsConfig {
    pub smtp: Option<SmtpConfig>,
    pub sms: Option<SmsConfig>,
    pub push: Option<PushConfig>,
    pub webhook_timeout: Option<Duration>,
}

impl ChannelsConfig {
    /// `ADVANCIA_SMTP_HOST` (with `_PORT`, `_SECURITY` tls|starttls|plain, `_USERNAME`,
    /// `_PASSWORD`, `_FROM`), `ADVANCIA_TWILIO_ACCOUNT_SID` (with `_AUTH_TOKEN`, `_FROM`,
    /// `_BASE_URL`), `ADVANCIA_FCM_PROJECT_ID` (with `_ACCESS_TOKEN`, `_BASE_URL`).
    pub fn from_env() -> Result<ChannelsConfig, String> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any variable source (a configuration file overlaid by the
    /// environment, a map in tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<ChannelsConfig, String> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let need = |k: &str| var(k).ok_or_else(|| format!("{k} is required"));
        let mut c = ChannelsConfig::default();
        if let Some(host) = var("ADVANCIA_SMTP_HOST") {
            let security = match var("ADVANCIA_SMTP_SECURITY")
                .as_deref()
                .unwrap_or("starttls")
            {
                "tls" => SmtpSecurity::Tls,
                "starttls" => SmtpSecurity::StartTls,
                "plain" => SmtpSecurity::Plain,
                other => {
                    return Err(format!(
                        "ADVANCIA_SMTP_SECURITY: `{other}` is not tls, starttls or plain"
                    ));
                }
            };
            let default_port = match security {
                SmtpSecurity::Tls => 465,
                SmtpSecurity::StartTls => 587,
                SmtpSecurity::Plain => 25,
            };
            let port = match var("ADVANCIA_SMTP_PORT") {
                Some(p) => p
                    .parse()
                    .map_err(|_| format!("ADVANCIA_SMTP_PORT: `{p}` is not a port"))?,
                None => default_port,
            };
            let from = need("ADVANCIA_SMTP_FROM")?;
            let domain = from
                .rsplit('@')
                .next()
                .unwrap_or("localhost")
                .trim_end_matches('>')
                .to_owned();
            c.smtp = Some(SmtpConfig {
                host,
                port,
                security,
                username: var("ADVANCIA_SMTP_USERNAME"),
                password: var("ADVANCIA_SMTP_PASSWORD"),
                from,
                message_id_domain: domain,
                timeout: Duration::from_secs(30),
            });
        }
        if let Some(sid) = var("ADVANCIA_TWILIO_ACCOUNT_SID") {
            c.sms = Some(SmsConfig {
                base_url: var("ADVANCIA_TWILIO_BASE_URL")
                    .unwrap_or_else(|| "https://api.twilio.com".into()),
                account_sid: sid,
                auth_token: need("ADVANCIA_TWILIO_AUTH_TOKEN")?,
                from: need("ADVANCIA_TWILIO_FROM")?,
                timeout: Duration::from_secs(15),
            });
        }
        if let Some(project) = var("ADVANCIA_FCM_PROJECT_ID") {
            c.push = Some(PushConfig {
                base_url: var("ADVANCIA_FCM_BASE_URL")
                    .unwrap_or_else(|| "https://fcm.googleapis.com".into()),
                project_id: project,
                access_token: need("ADVANCIA_FCM_ACCESS_TOKEN")?,
                timeout: Duration::from_secs(15),
            });
        }
        Ok(c)
    }

    pub fn channels(&self, svc: &NotificationService) -> Result<Channels, NotificationError> {
        let http = |e: reqwest::Error| NotificationError::Invalid(format!("HTTP client: {e}"));
        let mut ch = Channels::new()
            .with(
                WebhookChannel::new(
                    self.webhook_timeout.unwrap_or(Duration::from_secs(15)),
                    svc.egress(),
                )
                .map_err(http)?,
            )
            .with(InAppChannel::new(svc.pool().clone()));
        if let Some(s) = &self.smtp {
            ch = ch.with(EmailChannel::new(s)?);
        }
        if let Some(s) = &self.sms {
            ch = ch.with(TwilioSmsChannel::new(s.clone()).map_err(http)?);
        }
        if let Some(p) = &self.push {
            ch = ch.with(FcmPushChannel::new(p.clone()).map_err(http)?);
        }
        Ok(ch)
    }
}

/// The delivery worker until `shutdown` resolves. Several processes may run it at once:
/// claims keep them apart. The followers that turn other services' events into
/// notifications run beside it ([`crate::events::follow`]).
pub async fn run_background(
    svc: NotificationService,
    channels: Channels,
    worker: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NotificationError> {
    OutboxWorker::new(svc.pool().clone(), channels, worker)
        .run(shutdown)
        .await
}
