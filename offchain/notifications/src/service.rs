//! Templates, preferences, webhook endpoints, sending (notification + outbox rows in one
//! transaction), listing, marking read, and dead-letter replay.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::NotificationError;
use crate::model::{
    ChannelKind, DELIVERY_COLS, DeadLetter, Delivery, NOTIFICATION_COLS, Notification,
    NotificationFilter, Preferences, PreferencesUpdate, Priority, SendRequest, Sent, Template,
    TemplateInput, WebhookEndpoint, parse_channels,
};
use crate::outbox::OUTBOX_CHANNEL;
use crate::{signing, template};

/// Attempts per delivery before it is dead-lettered.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 8;
const TEMPLATE_COLS: &str =
    "key, description, subject, body_text, body_html, version, created_at, updated_at";

#[derive(Clone)]
pub struct NotificationService {
    pool: PgPool,
    max_attempts: i32,
    /// Where webhook endpoints may point (checked at registration; the webhook channel
    /// checks every connection again).
    egress: advancia_egress::EgressPolicy,
}

type PrefRow = (
    Uuid,
    Vec<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

impl NotificationService {
    pub fn new(pool: PgPool) -> NotificationService {
        NotificationService {
            pool,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            egress: advancia_egress::EgressPolicy::production(),
        }
    }

    /// Where webhook endpoints may point (default: https to public addresses only).
    pub fn with_egress(mut self, egress: advancia_egress::EgressPolicy) -> NotificationService {
        self.egress = egress;
        self
    }

    pub fn egress(&self) -> &advancia_egress::EgressPolicy {
        &self.egress
    }

    /// Attempts before dead-lettering (at least 1).
    pub fn with_max_attempts(mut self, n: i32) -> NotificationService {
        self.max_attempts = n.max(1);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    // ---- templates ----

    pub async fn create_template(&self, t: &TemplateInput) -> Result<Template, NotificationError> {
        validate_template(t)?;
        sqlx::query_as(&format!(
            "INSERT INTO notifications.templates (key, description, subject, body_text, body_html)
             VALUES ($1, $2, $3, $4, $5) RETURNING {TEMPLATE_COLS}"
        ))
        .bind(&t.key)
        .bind(&t.description)
        .bind(&t.subject)
        .bind(&t.body_text)
        .bind(&t.body_html)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                NotificationError::Conflict(format!("template {} exists", t.key))
            }
            sqlx::Error::Database(d) if d.is_check_violation() => NotificationError::Invalid(
                "template keys are 1-128 of a-z, 0-9, `.`, `_`, `-`".into(),
            ),
            _ => e.into(),
        })
    }

    /// Replaces a template's parts; `expected_version` (If-Match) guards concurrent edits.
    pub async fn update_template(
        &self,
        t: &TemplateInput,
        expected_version: Option<i32>,
    ) -> Result<Template, NotificationError> {
        validate_template(t)?;
        let updated: Option<Template> = sqlx::query_as(&format!(
            "UPDATE notifications.templates SET description = $2, subject = $3, body_text = $4,
                 body_html = $5, version = version + 1, updated_at = now()
              WHERE key = $1 AND ($6::int IS NULL OR version = $6) RETURNING {TEMPLATE_COLS}"
        ))
        .bind(&t.key)
        .bind(&t.description)
        .bind(&t.subject)
        .bind(&t.body_text)
        .bind(&t.body_html)
        .bind(expected_version)
        .fetch_optional(&self.pool)
        .await?;
        match updated {
            Some(t) => Ok(t),
            None => {
                let current = self.template(&t.key).await?;
                Err(NotificationError::Conflict(format!(
                    "template {} is at version {}, not {}",
                    t.key,
                    current.version,
                    expected_version.unwrap_or_default()
                )))
            }
        }
    }

    pub async fn template(&self, key: &str) -> Result<Template, NotificationError> {
        sqlx::query_as(&format!(
            "SELECT {TEMPLATE_COLS} FROM notifications.templates WHERE key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(NotificationError::NotFound("template"))
    }

    pub async fn templates(&self) -> Result<Vec<Template>, NotificationError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TEMPLATE_COLS} FROM notifications.templates ORDER BY key"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn delete_template(&self, key: &str) -> Result<(), NotificationError> {
        let n = sqlx::query("DELETE FROM notifications.templates WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(NotificationError::NotFound("template"));
        }
        Ok(())
    }

    // ---- preferences ----

    pub async fn preferences(&self, user: Uuid) -> Result<Preferences, NotificationError> {
        let mut conn = self.pool.acquire().await?;
        preferences_in(&mut conn, user).await
    }

    pub async fn set_preferences(
        &self,
        user: Uuid,
        u: &PreferencesUpdate,
    ) -> Result<Preferences, NotificationError> {
        let tz = u.time_zone.clone().unwrap_or_else(|| "UTC".into());
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
                .bind(&tz)
                .fetch_one(&self.pool)
                .await?;
        if !known {
            return Err(NotificationError::Refused(format!(
                "unknown time zone `{tz}` (use an IANA name such as Europe/Paris)"
            )));
        }
        let quiet_start = u.quiet_start.as_deref().map(parse_hhmm).transpose()?;
        let quiet_end = u.quiet_end.as_deref().map(parse_hhmm).transpose()?;
        if quiet_start.is_some() != quiet_end.is_some() {
            return Err(NotificationError::Refused(
                "quiet_start and quiet_end go together".into(),
            ));
        }
        if let Some(e) = &u.email {
            e.parse::<lettre::Address>().map_err(|_| {
                NotificationError::Refused(format!("`{e}` is not an email address"))
            })?;
        }
        if let Some(p) = &u.phone
            && !is_e164(p)
        {
            return Err(NotificationError::Invalid(format!(
                "`{p}` is not an E.164 phone number (+ and 8 to 15 digits)"
            )));
        }
        if u.push_token
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > 4096)
        {
            return Err(NotificationError::Invalid("push token length".into()));
        }
        let mut channels: Vec<&str> = u.channels.iter().map(|c| c.as_str()).collect();
        channels.sort_unstable();
        channels.dedup();
        sqlx::query(
            "INSERT INTO notifications.preferences
                 (user_id, channels, email, phone, push_token, time_zone, quiet_start, quiet_end)
             VALUES ($1, $2, $3, $4, $5, $6, $7::time, $8::time)
             ON CONFLICT (user_id) DO UPDATE SET channels = EXCLUDED.channels,
                 email = EXCLUDED.email, phone = EXCLUDED.phone,
                 push_token = EXCLUDED.push_token, time_zone = EXCLUDED.time_zone,
                 quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end,
                 updated_at = now()",
        )
        .bind(user)
        .bind(&channels)
        .bind(&u.email)
        .bind(&u.phone)
        .bind(&u.push_token)
        .bind(&tz)
        .bind(&quiet_start)
        .bind(&quiet_end)
        .execute(&self.pool)
        .await?;
        self.preferences(user).await
    }

    // ---- webhook endpoints ----

    /// A new endpoint with a fresh `whsec_` secret (returned this once).
    pub async fn create_webhook(
        &self,
        user: Uuid,
        url: &str,
        event_types: Option<Vec<String>>,
    ) -> Result<WebhookEndpoint, NotificationError> {
        if url.len() > 2048 {
            return Err(NotificationError::Invalid(
                "the URL is longer than 2048 characters".into(),
            ));
        }
        self.egress.check_url(url).await.map_err(|e| {
            // Any URI is the documented form; which of them we deliver to is ours to say.
            if e.is_malformed() {
                NotificationError::UrlRefused(format!("webhook URL: {e}"))
            } else {
                NotificationError::UrlRefused(e.to_string())
            }
        })?;
        let secret = signing::generate_secret();
        let mut e: WebhookEndpoint = sqlx::query_as(
            "INSERT INTO notifications.webhook_endpoints (id, user_id, url, secret, event_types)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING id, user_id, url, event_types, active, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(user)
        .bind(url)
        .bind(&secret)
        .bind(&event_types)
        .fetch_one(&self.pool)
        .await?;
        e.secret = Some(secret);
        Ok(e)
    }

    pub async fn webhooks(&self, user: Uuid) -> Result<Vec<WebhookEndpoint>, NotificationError> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, url, event_types, active, created_at
               FROM notifications.webhook_endpoints WHERE user_id = $1 AND active
              ORDER BY created_at",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deactivates an endpoint of `user`; queued deliveries to it become permanent failures.
    pub async fn delete_webhook(&self, user: Uuid, id: Uuid) -> Result<(), NotificationError> {
        let n = sqlx::query(
            "UPDATE notifications.webhook_endpoints SET active = false
              WHERE id = $1 AND user_id = $2 AND active",
        )
        .bind(id)
        .bind(user)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(NotificationError::NotFound("webhook endpoint"));
        }
        Ok(())
    }

    // ---- sending ----

    pub async fn send(&self, req: &SendRequest) -> Result<Sent, NotificationError> {
        let mut tx = self.pool.begin().await?;
        let sent = self.send_in(&mut tx, req).await?;
        tx.commit().await?;
        Ok(sent)
    }

    /// An account notice by email to `address` (the account's own), whatever the user's
    /// preferences say, at high priority: security notices must not depend on settings
    /// the notice may be about. Nothing else is delivered.
    pub async fn send_account_email(
        &self,
        req: &SendRequest,
        address: &str,
    ) -> Result<Sent, NotificationError> {
        let req = SendRequest {
            channels: Some(vec![ChannelKind::Email]),
            priority: Priority::High,
            ..req.clone()
        };
        let mut tx = self.pool.begin().await?;
        let sent = self.send_with(&mut tx, &req, Some(address)).await?;
        tx.commit().await?;
        Ok(sent)
    }

    /// [`send`](Self::send) inside the caller's transaction (event readers move their cursor
    /// in the same one).
    pub async fn send_in(
        &self,
        conn: &mut PgConnection,
        req: &SendRequest,
    ) -> Result<Sent, NotificationError> {
        self.send_with(conn, req, None).await
    }

    /// `email_to`: the email destination instead of the preferences' address, and email
    /// sent even when the preferences leave it out.
    async fn send_with(
        &self,
        conn: &mut PgConnection,
        req: &SendRequest,
        email_to: Option<&str>,
    ) -> Result<Sent, NotificationError> {
        if req.event_type.is_empty() || req.event_type.chars().count() > 128 {
            return Err(NotificationError::Invalid(
                "event_type: 1 to 128 characters".into(),
            ));
        }
        let data = match &req.data {
            Value::Null => Value::Object(Default::default()),
            v @ Value::Object(_) => v.clone(),
            _ => {
                return Err(NotificationError::Invalid(
                    "data must be a JSON object".into(),
                ));
            }
        };
        if let Some(key) = &req.source_key
            && let Some(existing) = self.by_source_key(conn, key).await?
        {
            let deliveries = deliveries_of(conn, existing.id).await?;
            return Ok(Sent {
                notification: existing,
                deliveries,
                created: false,
            });
        }

        // Content: a template (named, or keyed by the event type), else literal text.
        let template_key = req
            .template
            .clone()
            .unwrap_or_else(|| req.event_type.clone());
        let stored: Option<Template> = sqlx::query_as(&format!(
            "SELECT {TEMPLATE_COLS} FROM notifications.templates WHERE key = $1"
        ))
        .bind(&template_key)
        .fetch_optional(&mut *conn)
        .await?;
        let literal = match (&req.subject, &req.body) {
            (Some(s), Some(b)) if req.template.is_none() => Some((s, b)),
            (None, None) => None,
            _ => {
                return Err(NotificationError::Refused(
                    "give a template (or an event type with one), or both subject and body".into(),
                ));
            }
        };
        let (rendered, used_template) = match (literal, &stored) {
            (Some((s, b)), _) => (
                template::Rendered {
                    subject: s.split_whitespace().collect::<Vec<_>>().join(" "),
                    body_text: b.clone(),
                    body_html: None,
                },
                None,
            ),
            (None, Some(t)) => (
                template::render(
                    &template::Parts {
                        subject: &t.subject,
                        body_text: &t.body_text,
                        body_html: t.body_html.as_deref(),
                    },
                    &data,
                )?,
                Some(t.key.clone()),
            ),
            (None, None) if req.template.is_some() => {
                return Err(NotificationError::NotFound("template"));
            }
            (None, None) => {
                return Err(NotificationError::Refused(format!(
                    "no template for event type {}: give subject and body",
                    req.event_type
                )));
            }
        };

        let prefs = preferences_in(conn, req.user_id).await?;
        let wanted: Vec<ChannelKind> = match email_to {
            Some(_) => vec![ChannelKind::Email],
            None => prefs
                .channels
                .iter()
                .copied()
                .filter(|c| req.channels.as_ref().is_none_or(|only| only.contains(c)))
                .collect(),
        };

        let inserted: Option<Notification> = sqlx::query_as(&format!(
            "INSERT INTO notifications.notifications
                 (id, user_id, event_type, template_key, priority, subject, body_text, body_html,
                  data, source_key, created_by, traceparent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (source_key) DO NOTHING
             RETURNING {NOTIFICATION_COLS}"
        ))
        .bind(Uuid::now_v7())
        .bind(req.user_id)
        .bind(&req.event_type)
        .bind(&used_template)
        .bind(req.priority.as_str())
        .bind(&rendered.subject)
        .bind(&rendered.body_text)
        .bind(&rendered.body_html)
        .bind(&data)
        .bind(&req.source_key)
        .bind(req.created_by)
        // Delivery spans (outbox worker) join the trace of whoever created this.
        .bind(advancia_telemetry::current_traceparent())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(notification) = inserted else {
            // A concurrent sender with the same source key won the insert.
            let key = req.source_key.as_deref().unwrap_or_default();
            let existing = self
                .by_source_key(conn, key)
                .await?
                .ok_or(NotificationError::NotFound("notification"))?;
            let deliveries = deliveries_of(conn, existing.id).await?;
            return Ok(Sent {
                notification: existing,
                deliveries,
                created: false,
            });
        };

        // Interruptive channels wait for the end of the user's quiet hours.
        let quiet_until: Option<OffsetDateTime> = if req.priority == Priority::Normal {
            sqlx::query_scalar(
                "SELECT notifications.quiet_until(time_zone, quiet_start, quiet_end, now())
                   FROM notifications.preferences WHERE user_id = $1",
            )
            .bind(req.user_id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten()
        } else {
            None
        };

        let mut deliveries = Vec::new();
        for channel in wanted {
            let destinations: Vec<String> = match channel {
                ChannelKind::InApp => vec![req.user_id.to_string()],
                ChannelKind::Email => match email_to {
                    Some(address) => vec![address.to_owned()],
                    None => prefs.email.iter().cloned().collect(),
                },
                ChannelKind::Sms => prefs.phone.iter().cloned().collect(),
                ChannelKind::Push => prefs.push_token.iter().cloned().collect(),
                ChannelKind::Webhook => {
                    sqlx::query_scalar(
                        "SELECT id::text FROM notifications.webhook_endpoints
                      WHERE user_id = $1 AND active
                        AND (event_types IS NULL OR $2 = ANY (event_types))
                      ORDER BY created_at",
                    )
                    .bind(req.user_id)
                    .bind(&req.event_type)
                    .fetch_all(&mut *conn)
                    .await?
                }
            };
            let at = quiet_until.filter(|_| channel.respects_quiet_hours());
            for destination in destinations {
                let id = Uuid::now_v7();
                let d: Delivery = sqlx::query_as(&format!(
                    "INSERT INTO notifications.deliveries
                         (id, notification_id, channel, destination, idempotency_key, max_attempts,
                          next_attempt_at)
                     VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()))
                     RETURNING {DELIVERY_COLS}"
                ))
                .bind(id)
                .bind(notification.id)
                .bind(channel.as_str())
                .bind(&destination)
                // Standard Webhooks' id style; also the Message-ID's local part.
                .bind(format!("msg_{}", id.simple()))
                .bind(self.max_attempts)
                .bind(at)
                .fetch_one(&mut *conn)
                .await?;
                deliveries.push(d);
            }
        }
        if !deliveries.is_empty() {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(OUTBOX_CHANNEL)
                .execute(&mut *conn)
                .await?;
        }
        Ok(Sent {
            notification,
            deliveries,
            created: true,
        })
    }

    async fn by_source_key(
        &self,
        conn: &mut PgConnection,
        key: &str,
    ) -> Result<Option<Notification>, NotificationError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {NOTIFICATION_COLS} FROM notifications.notifications WHERE source_key = $1"
        ))
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?)
    }

    // ---- reading ----

    pub async fn get(&self, id: Uuid) -> Result<Notification, NotificationError> {
        sqlx::query_as(&format!(
            "SELECT {NOTIFICATION_COLS} FROM notifications.notifications WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(NotificationError::NotFound("notification"))
    }

    /// A user's notifications, newest first (`limit` rows; ask for one more to learn whether
    /// another page exists).
    pub async fn list(
        &self,
        f: &NotificationFilter,
    ) -> Result<Vec<Notification>, NotificationError> {
        let (after_at, after_id) = f.after.unzip();
        Ok(sqlx::query_as(&format!(
            "SELECT {NOTIFICATION_COLS} FROM notifications.notifications
              WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL)
                AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
              ORDER BY created_at DESC, id DESC LIMIT $5"
        ))
        .bind(f.user_id)
        .bind(f.unread_only)
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(f.limit.max(1)))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn unread_count(&self, user: Uuid) -> Result<i64, NotificationError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM notifications.notifications WHERE user_id = $1 AND read_at IS NULL",
        )
        .bind(user)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Marks `id` read for its owner `user` (idempotent: the first read time stays).
    pub async fn mark_read(&self, id: Uuid, user: Uuid) -> Result<Notification, NotificationError> {
        sqlx::query_as(&format!(
            "UPDATE notifications.notifications SET read_at = COALESCE(read_at, now())
              WHERE id = $1 AND user_id = $2 RETURNING {NOTIFICATION_COLS}"
        ))
        .bind(id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(NotificationError::NotFound("notification"))
    }

    pub async fn deliveries(&self, notification: Uuid) -> Result<Vec<Delivery>, NotificationError> {
        let mut conn = self.pool.acquire().await?;
        deliveries_of(&mut conn, notification).await
    }

    pub async fn delivery(&self, id: Uuid) -> Result<Delivery, NotificationError> {
        sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLS} FROM notifications.deliveries WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(NotificationError::NotFound("delivery"))
    }

    // ---- dead letters ----

    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, NotificationError> {
        let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
            "SELECT d.id, n.user_id, n.event_type FROM notifications.deliveries d
               JOIN notifications.notifications n ON n.id = d.notification_id
              WHERE d.status = 'dead' ORDER BY d.dead_at DESC, d.id LIMIT $1",
        )
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, user_id, event_type) in rows {
            out.push(DeadLetter {
                delivery: self.delivery(id).await?,
                user_id,
                event_type,
            });
        }
        Ok(out)
    }

    /// Re-queues a dead letter now with a fresh attempt budget and the same idempotency
    /// key (receivers that saw an earlier attempt recognise it).
    pub async fn replay(&self, id: Uuid) -> Result<Delivery, NotificationError> {
        let mut tx = self.pool.begin().await?;
        let d: Option<Delivery> = sqlx::query_as(&format!(
            "UPDATE notifications.deliveries SET status = 'pending', attempts = 0,
                 next_attempt_at = now(), dead_at = NULL, claim = NULL, locked_until = NULL
              WHERE id = $1 AND status = 'dead' RETURNING {DELIVERY_COLS}"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(d) = d else {
            let current = self.delivery(id).await?;
            return Err(NotificationError::Conflict(format!(
                "delivery is {}, only dead letters are replayed",
                current.status
            )));
        };
        sqlx::query(
            "INSERT INTO notifications.delivery_attempts (delivery_id, attempt, outcome)
             VALUES ($1, 0, 'replayed')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(OUTBOX_CHANNEL)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(d)
    }
}

async fn deliveries_of(
    conn: &mut PgConnection,
    notification: Uuid,
) -> Result<Vec<Delivery>, NotificationError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLS} FROM notifications.deliveries WHERE notification_id = $1
          ORDER BY channel, destination"
    ))
    .bind(notification)
    .fetch_all(&mut *conn)
    .await?)
}

async fn preferences_in(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Preferences, NotificationError> {
    let row: Option<PrefRow> = sqlx::query_as(
        "SELECT user_id, channels, email, phone, push_token, time_zone,
                to_char(quiet_start, 'HH24:MI'), to_char(quiet_end, 'HH24:MI')
           FROM notifications.preferences WHERE user_id = $1",
    )
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        None => Preferences::defaults(user),
        Some((user_id, channels, email, phone, push_token, time_zone, qs, qe)) => Preferences {
            user_id,
            channels: parse_channels(&channels)?,
            email,
            phone,
            push_token,
            time_zone,
            quiet_start: qs,
            quiet_end: qe,
        },
    })
}

fn validate_template(t: &TemplateInput) -> Result<(), NotificationError> {
    if t.description.len() > 1024 {
        return Err(NotificationError::Invalid(
            "description: at most 1024 bytes".into(),
        ));
    }
    template::validate(&template::Parts {
        subject: &t.subject,
        body_text: &t.body_text,
        body_html: t.body_html.as_deref(),
    })
}

/// `HH:MM` (24 h) as Postgres `time` text.
fn parse_hhmm(s: &str) -> Result<String, NotificationError> {
    let bad = || NotificationError::Invalid(format!("`{s}` is not a HH:MM time"));
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let h: u8 = h.parse().map_err(|_| bad())?;
    let m: u8 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(format!("{h:02}:{m:02}"))
}

fn is_e164(p: &str) -> bool {
    p.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_numbers() {
        assert_eq!(parse_hhmm("7:05").ok().as_deref(), Some("07:05"));
        assert!(parse_hhmm("24:00").is_err());
        assert!(parse_hhmm("noon").is_err());
        assert!(is_e164("+33612345678"));
        assert!(!is_e164("0612345678"));
        assert!(!is_e164("+3361234567890123"));
    }
}
