//! `/api/v1/notifications/*` (seed section 6): sending, a user's notifications, marking
//! read, preferences, templates, webhook endpoints, the in-app stream and dead letters.
//!
//! Users read and mark their own notifications and manage their own preferences and
//! webhook endpoints; facility admins and admins send (API keys with the
//! `notifications:send` scope too); admins manage templates and replay dead letters.

use std::convert::Infallible;
use std::time::Duration;

use advancia_auth::Role;
use advancia_notifications::{
    ChannelKind, Notification, NotificationError, NotificationFilter, PreferencesUpdate, Priority,
    SendRequest, TemplateInput,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::body::JsonObject;
use crate::pagination::{Page, PageParams};
use crate::principal::Principal;
use crate::problem::{Problem, Result};

/// Who may send notifications to any user.
const SENDERS: &[Role] = &[Role::FacilityAdmin, Role::Admin];
/// Who may manage templates, read anyone's notifications and replay dead letters.
const ADMINS: &[Role] = &[Role::Admin];
pub const SEND_SCOPE: &str = "notifications:send";

fn forbidden() -> Problem {
    Problem::forbidden()
}

fn parse_uuid(s: &str, what: &'static str) -> Result<Uuid> {
    Uuid::try_parse(s).map_err(|_| NotificationError::NotFound(what).into())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/notifications/send", post(send))
        .route(
            "/api/v1/notifications/preferences",
            get(get_preferences).put(put_preferences),
        )
        .route(
            "/api/v1/notifications/templates",
            get(list_templates).post(create_template),
        )
        .route(
            "/api/v1/notifications/templates/{key}",
            get(get_template)
                .put(update_template)
                .delete(delete_template),
        )
        .route(
            "/api/v1/notifications/webhooks",
            get(list_webhooks).post(create_webhook),
        )
        .route(
            "/api/v1/notifications/webhooks/{id}",
            axum::routing::delete(delete_webhook),
        )
        .route("/api/v1/notifications/stream", get(stream))
        .route("/api/v1/notifications/dead-letters", get(dead_letters))
        .route("/api/v1/notifications/deliveries/{id}/replay", post(replay))
        .route("/api/v1/notifications/{user_id}", get(list))
        .route("/api/v1/notifications/{id}/read", post(mark_read))
}

#[derive(Deserialize, ToSchema)]
pub struct NotificationBody {
    user_id: Uuid,
    #[schema(min_length = 1, max_length = 128)]
    event_type: String,
    /// Template key; default: the template named like `event_type`.
    template: Option<String>,
    /// Literal subject and body, when no template is used.
    subject: Option<String>,
    body: Option<String>,
    /// Template variables (a JSON object).
    #[schema(value_type = Object)]
    #[serde(default)]
    data: serde_json::Value,
    /// Restrict to these channels.
    #[schema(inline)]
    channels: Option<Vec<ChannelKind>>,
    /// `normal` (waits out quiet hours) or `high`.
    #[schema(inline)]
    #[serde(default)]
    priority: Priority,
}

/// Send a notification to a user through their preferred channels. `Idempotency-Key`
/// makes retries return the first notification instead of sending again.
#[utoipa::path(post, path = "/api/v1/notifications/send", tag = "notifications", operation_id = "send_notification", request_body = NotificationBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "One notification per key",
        pattern = "^[!-~]([ -~]{0,253}[!-~])?$", nullable = false)),
    responses((status = 201, description = "Queued"), (status = 200, description = "Already sent with this key"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn send(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    JsonObject(b): JsonObject<NotificationBody>,
) -> Result<impl IntoResponse> {
    p.require_scope_or_role(SEND_SCOPE, SENDERS)?;
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|s| !s.is_empty() && s.len() <= 255)
                .ok_or_else(|| {
                    Problem::new(StatusCode::BAD_REQUEST, "invalid-input", "Invalid input")
                        .with_detail("Idempotency-Key: 1 to 255 visible characters")
                })
        })
        .transpose()?;
    let req = SendRequest {
        user_id: b.user_id,
        event_type: b.event_type,
        template: b.template,
        subject: b.subject,
        body: b.body,
        data: b.data,
        channels: b.channels,
        priority: b.priority,
        // Keys are per caller: two senders cannot collide.
        source_key: key.map(|k| format!("api:{}:{k}", p.user_id())),
        created_by: Some(p.user_id()),
    };
    let sent = st.notifications.send(&req).await?;
    let status = if sent.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(sent)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only notifications not read yet.
    #[serde(default)]
    unread: bool,
}

/// A user's notifications, newest first (the user themself, or an admin).
#[utoipa::path(get, path = "/api/v1/notifications/{user_id}", tag = "notifications", operation_id = "list_notifications",
    params(("user_id" = String, Path, description = "User id"), ListParams, PageParams),
    responses((status = 200, description = "A page of notifications"), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<ListParams>,
    Query(page): Query<PageParams>,
) -> Result<impl IntoResponse> {
    let user = Uuid::try_parse(&user_id).map_err(|_| forbidden())?;
    p.require_self_or(user, ADMINS)?;
    let after = page
        .after::<(i64, Uuid)>()?
        .map(|(nanos, id)| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
                .map(|t| (t, id))
                .map_err(|_| Problem::invalid_cursor())
        })
        .transpose()?;
    let limit = page.limit();
    let rows = st
        .notifications
        .list(&NotificationFilter {
            user_id: user,
            unread_only: q.unread,
            after,
            limit: limit + 1,
        })
        .await?;
    let page = Page::from_rows(rows, limit, |n: &Notification| {
        (
            i64::try_from(n.created_at.unix_timestamp_nanos()).unwrap_or(i64::MAX),
            n.id,
        )
    });
    let unread = st.notifications.unread_count(user).await?;
    Ok(Json(serde_json::json!({
        "items": page.items,
        "next_cursor": page.next_cursor,
        "unread": unread,
    })))
}

/// Mark one of the caller's notifications read (idempotent).
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications",
    params(("id" = String, Path, description = "Notification id")),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Read"), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn mark_read(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let claims = p.require_role(&Role::ALL)?;
    let id = parse_uuid(&id, "notification")?;
    Ok(Json(st.notifications.mark_read(id, claims.sub).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForUser {
    /// Admins only: another user's preferences.
    user_id: Option<Uuid>,
}

fn target_user(p: &Principal, q: &ForUser) -> Result<Uuid> {
    let claims = p.require_role(&Role::ALL)?;
    match q.user_id {
        Some(u) if u != claims.sub => {
            if claims.has_any(ADMINS) {
                Ok(u)
            } else {
                Err(forbidden())
            }
        }
        _ => Ok(claims.sub),
    }
}

/// The caller's channels, contact points, time zone and quiet hours.
#[utoipa::path(get, path = "/api/v1/notifications/preferences", tag = "notifications", params(ForUser),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Preferences")), security(("bearer" = [])))]
pub async fn get_preferences(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ForUser>,
) -> Result<impl IntoResponse> {
    let user = target_user(&p, &q)?;
    Ok(Json(st.notifications.preferences(user).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct PreferencesBody {
    #[schema(inline)]
    channels: Vec<ChannelKind>,
    /// An address the mail library accepts (else 422).
    #[schema(format = Email)]
    email: Option<String>,
    /// E.164: `+` and 8 to 15 digits.
    #[schema(pattern = "^\\+[0-9]{8,15}$")]
    phone: Option<String>,
    #[schema(min_length = 1, max_length = 4096)]
    push_token: Option<String>,
    /// IANA name, e.g. `Europe/Paris` (default UTC); an unknown one is 422.
    time_zone: Option<String>,
    /// `HH:MM` local (24 h); both or neither (else 422); may cross midnight.
    #[schema(pattern = "^([01]?[0-9]|2[0-3]):[0-5]?[0-9]$")]
    quiet_start: Option<String>,
    /// Like `quiet_start`.
    #[schema(pattern = "^([01]?[0-9]|2[0-3]):[0-5]?[0-9]$")]
    quiet_end: Option<String>,
}

/// Replace the caller's preferences.
#[utoipa::path(put, path = "/api/v1/notifications/preferences", tag = "notifications", params(ForUser),
    request_body = PreferencesBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Stored"), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn put_preferences(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ForUser>,
    JsonObject(b): JsonObject<PreferencesBody>,
) -> Result<impl IntoResponse> {
    let user = target_user(&p, &q)?;
    let update = PreferencesUpdate {
        channels: b.channels,
        email: b.email,
        phone: b.phone,
        push_token: b.push_token,
        time_zone: b.time_zone,
        quiet_start: b.quiet_start,
        quiet_end: b.quiet_end,
    };
    Ok(Json(st.notifications.set_preferences(user, &update).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct TemplateBody {
    #[schema(pattern = "^[a-z0-9._-]{1,128}$")]
    key: String,
    /// At most 1024 bytes.
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: String,
    subject: String,
    body_text: String,
    body_html: Option<String>,
}

impl From<TemplateBody> for TemplateInput {
    fn from(b: TemplateBody) -> Self {
        TemplateInput {
            key: b.key,
            description: b.description,
            subject: b.subject,
            body_text: b.body_text,
            body_html: b.body_html,
        }
    }
}

/// Every template.
#[utoipa::path(get, path = "/api/v1/notifications/templates", tag = "notifications",
    responses((status = 200, description = "Templates"), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn list_templates(State(st): State<AppState>, p: Principal) -> Result<impl IntoResponse> {
    p.require_role(SENDERS)?;
    Ok(Json(st.notifications.templates().await?))
}

/// Create a template (minijinja syntax; `body_html` is autoescaped).
#[utoipa::path(post, path = "/api/v1/notifications/templates", tag = "notifications", request_body = TemplateBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 201, description = "Created"), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_template(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<TemplateBody>,
) -> Result<impl IntoResponse> {
    p.require_role(ADMINS)?;
    let t = st.notifications.create_template(&b.into()).await?;
    let etag = format!("\"{}\"", t.version);
    Ok((StatusCode::CREATED, [(header::ETAG, etag)], Json(t)))
}

/// One template; `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/notifications/templates/{key}", tag = "notifications",
    params(("key" = String, Path, description = "Template key")),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "The template"), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_template(
    State(st): State<AppState>,
    p: Principal,
    Path(key): Path<String>,
) -> Result<impl IntoResponse> {
    p.require_role(SENDERS)?;
    let t = st.notifications.template(&key).await?;
    let etag = format!("\"{}\"", t.version);
    Ok(([(header::ETAG, etag)], Json(t)))
}

/// Replace a template; `If-Match` with the ETag refuses to overwrite a newer version.
#[utoipa::path(put, path = "/api/v1/notifications/templates/{key}", tag = "notifications",
    params(("key" = String, Path, description = "Template key"),
        ("If-Match" = Option<String>, Header, description = "ETag of the version being replaced",
            pattern = "^(W/)?\"?[0-9]{1,9}\"?$", nullable = false)),
    request_body = TemplateBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Updated"),
        (status = 409, description = "Another version is current", body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update_template(
    State(st): State<AppState>,
    p: Principal,
    Path(key): Path<String>,
    headers: HeaderMap,
    JsonObject(b): JsonObject<TemplateBody>,
) -> Result<impl IntoResponse> {
    p.require_role(ADMINS)?;
    let expected = headers
        .get(header::IF_MATCH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| {
                    s.trim()
                        .trim_start_matches("W/")
                        .trim_matches('"')
                        .parse::<i32>()
                        .ok()
                })
                // Outside the documented form (a version number, quoted or not).
                .ok_or_else(|| {
                    Problem::new(StatusCode::BAD_REQUEST, "invalid-input", "Invalid input")
                        .with_detail("If-Match must be an ETag this API returned")
                })
        })
        .transpose()?;
    let mut input: TemplateInput = b.into();
    input.key = key;
    let t = st.notifications.update_template(&input, expected).await?;
    let etag = format!("\"{}\"", t.version);
    Ok(([(header::ETAG, etag)], Json(t)))
}

/// Delete a template.
#[utoipa::path(delete, path = "/api/v1/notifications/templates/{key}", tag = "notifications",
    params(("key" = String, Path, description = "Template key")),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 204, description = "Deleted"), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete_template(
    State(st): State<AppState>,
    p: Principal,
    Path(key): Path<String>,
) -> Result<impl IntoResponse> {
    p.require_role(ADMINS)?;
    st.notifications.delete_template(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook endpoint; `secret` (the `whsec_` signing secret) only in the creation answer.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    id: Uuid,
    user_id: Uuid,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    event_types: Option<Vec<String>>,
    active: bool,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<advancia_notifications::WebhookEndpoint> for WebhookView {
    fn from(e: advancia_notifications::WebhookEndpoint) -> Self {
        WebhookView {
            id: e.id,
            user_id: e.user_id,
            url: e.url,
            secret: e.secret,
            event_types: e.event_types,
            active: e.active,
            created_at: e
                .created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct WebhookBody {
    /// https outside development; refused (422) when it points inside our network.
    #[schema(max_length = 2048)]
    url: String,
    /// Only these event types (default: all).
    event_types: Option<Vec<String>>,
}

/// Register a webhook endpoint for the caller; the response carries its `whsec_` secret
/// (shown once). Deliveries follow the Standard Webhooks spec.
#[utoipa::path(post, path = "/api/v1/notifications/webhooks", tag = "notifications", request_body = WebhookBody,
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 201, description = "Created, with the signing secret", body = WebhookView), (status = 400, body = Problem),
        (status = 422, description = "The URL points inside our network (or is refused by the egress policy)", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<WebhookBody>,
) -> Result<impl IntoResponse> {
    let claims = p.require_role(&Role::ALL)?;
    let e = st
        .notifications
        .create_webhook(claims.sub, &b.url, b.event_types)
        .await?;
    Ok((StatusCode::CREATED, Json(WebhookView::from(e))))
}

/// The caller's active webhook endpoints (without secrets).
#[utoipa::path(get, path = "/api/v1/notifications/webhooks", tag = "notifications",
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Endpoints", body = Vec<WebhookView>)), security(("bearer" = [])))]
pub async fn list_webhooks(State(st): State<AppState>, p: Principal) -> Result<impl IntoResponse> {
    let claims = p.require_role(&Role::ALL)?;
    let list: Vec<WebhookView> = st
        .notifications
        .webhooks(claims.sub)
        .await?
        .into_iter()
        .map(WebhookView::from)
        .collect();
    Ok(Json(list))
}

/// Deactivate one of the caller's webhook endpoints.
#[utoipa::path(delete, path = "/api/v1/notifications/webhooks/{id}", tag = "notifications",
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 204, description = "Deactivated"), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete_webhook(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let claims = p.require_role(&Role::ALL)?;
    let id = parse_uuid(&id, "webhook endpoint")?;
    st.notifications.delete_webhook(claims.sub, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Start after this inbox position. `Last-Event-ID` wins; with neither, only new
    /// notifications are sent.
    after: Option<i64>,
}

/// The caller's in-app notifications live, as server-sent events (`id` = inbox position,
/// `event` = event type, `data` = the notification).
#[utoipa::path(get, path = "/api/v1/notifications/stream", tag = "notifications",
    params(StreamParams, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position")),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "text/event-stream of notifications")), security(("bearer" = [])))]
pub async fn stream(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Query(q): Query<StreamParams>,
) -> Result<Response> {
    let claims = p.require_role(&Role::ALL)?;
    let user = claims.sub;
    let last_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    Problem::new(StatusCode::BAD_REQUEST, "invalid-input", "Invalid input")
                        .with_detail("Last-Event-ID must be an inbox position (an id we sent)")
                })?,
        ),
    };
    let after = match last_id.or(q.after) {
        Some(a) => a.max(0),
        None => advancia_notifications::stream::head(st.notifications.pool(), user).await?,
    };
    let events = advancia_notifications::stream::inbox(
        st.notifications.pool().clone(),
        user,
        after,
    )
    .map(|item| {
        Ok::<_, Infallible>(match item {
            Ok(i) => Event::default()
                .id(i.seq.to_string())
                .event(i.notification.event_type.clone())
                .json_data(&i.notification)
                .unwrap_or_else(|_| Event::default().event("error").data("encoding failed")),
            Err(err) => {
                tracing::warn!(error = %err, "notification stream failed");
                Event::default()
                    .event("error")
                    .data("stream interrupted; reconnect")
            }
        })
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadParams {
    /// At most this many (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<crate::pagination::Limit>,
}

/// Deliveries that failed their last attempt, newest first.
#[utoipa::path(get, path = "/api/v1/notifications/dead-letters", tag = "notifications", params(DeadParams),
    responses((status = 200, description = "Dead letters"), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn dead_letters(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<DeadParams>,
) -> Result<impl IntoResponse> {
    p.require_role(ADMINS)?;
    let limit = crate::pagination::Limit::or_default(q.limit);
    Ok(Json(st.notifications.dead_letters(limit).await?))
}

/// Re-queue a dead letter (same idempotency key, fresh attempt budget).
#[utoipa::path(post, path = "/api/v1/notifications/deliveries/{id}/replay", tag = "notifications",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Queued again"), (status = 409, description = "Not a dead letter", body = Problem)),
    security(("bearer" = [])))]
pub async fn replay(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    p.require_role(ADMINS)?;
    let id = parse_uuid(&id, "delivery")?;
    Ok(Json(st.notifications.replay(id).await?))
}
