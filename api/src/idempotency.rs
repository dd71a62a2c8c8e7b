//! `Idempotency-Key` for POSTs that move money: a retried request with the same key and
//! the same body gets the original response without running the handler again; the same
//! key with a different body is refused; a retry while the first is still running gets
//! 409. Records live in Postgres (`api.idempotency_keys`) so every replica sees them.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::gateway::{Identity, client_ip};
use crate::problem::Problem;

pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a request may hold its key before another attempt may take it over (the
/// first attempt's process is presumed dead).
const LOCK: Duration = Duration::from_secs(60);
/// Responses bodies larger than this are not stored (money-moving responses are small).
const MAX_STORED_BODY: usize = 256 * 1024;

#[derive(Clone)]
pub struct IdempotencyState {
    pub pool: PgPool,
    pub trusted_proxy_hops: usize,
}

fn scope_of(req: &Request, hops: usize) -> String {
    match req.extensions().get::<Identity>() {
        Some(Identity::ApiKey(k)) => format!("key:{}", hex::encode(&Sha256::digest(k)[..16])),
        Some(Identity::User(u)) => format!("user:{u}"),
        None => format!(
            "ip:{}",
            client_ip(req, hops).map_or_else(|| "unknown".into(), |ip| ip.to_string())
        ),
    }
}

fn valid_key(k: &str) -> bool {
    (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())
}

fn problem(status: StatusCode, kind: &str, title: &str, detail: &str) -> Response {
    Problem::new(status, kind, title)
        .with_detail(detail)
        .into_response()
}

/// Middleware for routes that move money. Without the header the request passes through.
pub async fn enforce(State(st): State<IdempotencyState>, req: Request, next: Next) -> Response {
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(&HEADER) else {
        return next.run(req).await;
    };
    let key = match raw.to_str() {
        Ok(k) if valid_key(k) => k.to_owned(),
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                "the key must be 1 to 255 visible ASCII characters",
            );
        }
    };
    let scope = scope_of(&req, st.trusted_proxy_hops);
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    // The body limit layer runs before this one, so buffering is bounded.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Unreadable body",
                &e.to_string(),
            );
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let hash = hasher.finalize().to_vec();

    match claim(&st.pool, &scope, &key, &method, &path, &hash).await {
        Err(e) => {
            // Most often the database is down or restarting: the one 503 every route gives
            // for that (`database-unavailable`, with `Retry-After`), so clients retry.
            let mut p = Problem::from_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e);
            if p.status == StatusCode::INTERNAL_SERVER_ERROR.as_u16() {
                p = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Idempotency store unavailable",
                )
                .with_detail("retry later with the same Idempotency-Key");
                p.retry_after = Some(2);
            }
            return p.into_response();
        }
        Ok(Claim::Replay(resp)) => return resp,
        Ok(Claim::Refused(resp)) => return resp,
        Ok(Claim::Owned) => {}
    }

    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = resp.status();
    if status.is_server_error() {
        // Not a final answer: free the key so the client's retry runs again.
        let _ = sqlx::query("DELETE FROM api.idempotency_keys WHERE scope = $1 AND key = $2")
            .bind(&scope)
            .bind(&key)
            .execute(&st.pool)
            .await;
        return resp;
    }
    let (rparts, rbody) = resp.into_parts();
    let body = match axum::body::to_bytes(rbody, MAX_STORED_BODY).await {
        Ok(b) => b,
        Err(_) => {
            tracing::error!("response too large to store for idempotency");
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "",
            );
        }
    };
    let content_type = rparts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let stored = sqlx::query(
        "UPDATE api.idempotency_keys
            SET state = 'completed', status = $3, content_type = $4, body = $5, completed_at = now()
          WHERE scope = $1 AND key = $2",
    )
    .bind(&scope)
    .bind(&key)
    .bind(i16::try_from(status.as_u16()).unwrap_or(i16::MAX))
    .bind(&content_type)
    .bind(body.as_ref())
    .execute(&st.pool)
    .await;
    if let Err(e) = stored {
        // The handler's effect happened; the client still gets its answer. A retry
        // within the lock window gets 409, after it runs again: handlers that move money
        // are themselves idempotent on their ids, this layer is the first line.
        tracing::error!(error = %e, "could not record idempotent response");
    }
    Response::from_parts(rparts, Body::from(body))
}

#[derive(sqlx::FromRow)]
struct StoredRecord {
    request_hash: Vec<u8>,
    state: String,
    status: Option<i16>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
}

enum Claim {
    Owned,
    Replay(Response),
    Refused(Response),
}

async fn claim(
    pool: &PgPool,
    scope: &str,
    key: &str,
    method: &str,
    path: &str,
    hash: &[u8],
) -> Result<Claim, sqlx::Error> {
    let lock_secs = LOCK.as_secs_f64();
    // Insert, or take over an abandoned in-progress record with the same request.
    let owned: Option<(bool,)> = sqlx::query_as(
        "INSERT INTO api.idempotency_keys (scope, key, method, path, request_hash, state, locked_until)
         VALUES ($1, $2, $3, $4, $5, 'in_progress', now() + make_interval(secs => $6))
         ON CONFLICT (scope, key) DO UPDATE
            SET locked_until = now() + make_interval(secs => $6)
          WHERE idempotency_keys.state = 'in_progress'
            AND idempotency_keys.locked_until < now()
            AND idempotency_keys.request_hash = EXCLUDED.request_hash
         RETURNING true",
    )
    .bind(scope)
    .bind(key)
    .bind(method)
    .bind(path)
    .bind(hash)
    .bind(lock_secs)
    .fetch_optional(pool)
    .await?;
    if owned.is_some() {
        return Ok(Claim::Owned);
    }
    let row: Option<StoredRecord> = sqlx::query_as(
        "SELECT request_hash, state, status, content_type, body
               FROM api.idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    let Some(StoredRecord {
        request_hash: stored_hash,
        state,
        status,
        content_type,
        body,
    }) = row
    else {
        // Deleted between our insert attempt and read (a 5xx freed it): try once more
        // as a new request would.
        return Ok(Claim::Refused(conflict_in_progress()));
    };
    if stored_hash != hash {
        return Ok(Claim::Refused(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused with a different request",
            "this key was used for a different method, path or body; use a new key",
        )));
    }
    if state != "completed" {
        return Ok(Claim::Refused(conflict_in_progress()));
    }
    let status = status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut resp = (status, Bytes::from(body.unwrap_or_default())).into_response();
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp.headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(Claim::Replay(resp))
}

fn conflict_in_progress() -> Response {
    let mut resp = problem(
        StatusCode::CONFLICT,
        "idempotency-key-in-use",
        "A request with this Idempotency-Key is in progress",
        "retry after the first request completes",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// Deletes records older than `max_age`; returns how many. Run periodically.
pub async fn purge_expired(pool: &PgPool, max_age: Duration) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM api.idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
    )
    .bind(max_age.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}
