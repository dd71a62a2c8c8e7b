//! Email over SMTP with lettre: implicit TLS (465), STARTTLS (587), or plain SMTP for a
//! local relay. The delivery's idempotency key becomes the `Message-ID`, so a repeat after
//! a crash is the same message to every mail system that deduplicates.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{BoxFuture, Channel, DeliveryError, Outgoing, Receipt};
use crate::NotificationError;
use crate::model::ChannelKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (submissions, port 465).
    Tls,
    /// Upgrade with STARTTLS, refusing servers that do not offer it (port 587).
    StartTls,
    /// No encryption: only for a relay on the same host or network.
    Plain,
}

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `Advancia <no-reply@example.org>`.
    pub from: String,
    /// Domain part of generated Message-IDs.
    pub message_id_domain: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    message_id_domain: String,
}

impl EmailChannel {
    pub fn new(c: &SmtpConfig) -> Result<EmailChannel, NotificationError> {
        let smtp = |e: lettre::transport::smtp::Error| {
            NotificationError::Invalid(format!("SMTP settings: {e}"))
        };
        let builder = match c.security {
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host).map_err(smtp)?
            }
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host).map_err(smtp)?
            }
            SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host),
        };
        let mut builder = builder.port(c.port).timeout(Some(c.timeout));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| NotificationError::Invalid(format!("sender address `{}`: {e}", c.from)))?;
        Ok(EmailChannel {
            transport: builder.build(),
            from,
            message_id_domain: c.message_id_domain.clone(),
        })
    }

    /// The message of a delivery (public for tests that inspect what is sent).
    pub fn message(&self, msg: &Outgoing) -> Result<Message, DeliveryError> {
        let n = &msg.notification;
        let to: Mailbox = msg.destination.parse().map_err(|e| {
            DeliveryError::Permanent(format!("recipient `{}`: {e}", msg.destination))
        })?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(n.subject.clone())
            .message_id(Some(format!(
                "<{}@{}>",
                msg.idempotency_key, self.message_id_domain
            )));
        let built = match &n.body_html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                n.body_text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(n.body_text.clone()),
            ),
        };
        built.map_err(|e| DeliveryError::Permanent(format!("message: {e}")))
    }

    async fn send(&self, msg: &Outgoing) -> Result<Receipt, DeliveryError> {
        let message = self.message(msg)?;
        match self.transport.send(message).await {
            Ok(resp) => Ok(Receipt {
                provider_id: resp.message().next().map(str::to_owned),
            }),
            // 5xx: the server refused this message for good (unknown mailbox, policy).
            Err(e) if e.is_permanent() => Err(DeliveryError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(DeliveryError::Retry(format!("SMTP: {e}"))),
        }
    }
}

impl Channel for EmailChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn deliver<'a>(&'a self, msg: &'a Outgoing) -> BoxFuture<'a, Result<Receipt, DeliveryError>> {
        Box::pin(self.send(msg))
    }
}
