//! Gateway layers every route goes through: request ids, tracing spans, timeouts,
//! body-size limits, CORS, compression, per-route rate limits, and problem+json for
//! every error response (including the bare ones axum and tower produce).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::problem::Problem;
use crate::ratelimit::{Decision, Limiter, Quota};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Routes whose bodies may reach [`GatewayConfig::upload_limit_bytes`] instead of
/// [`GatewayConfig::body_limit_bytes`].
pub const UPLOAD_PATHS: &[&str] = &["/api/v1/kyc/documents/upload"];
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// Settings of the gateway layers. Defaults follow the design: payments 1000/min,
/// blockchain 500/min, facilities 2000/min, kyc and compliance 300/min.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Route group (first path segment after `/api/v1/`) → quota.
    pub rate_limits: BTreeMap<String, Quota>,
    /// Quota of `/api/v1` groups not listed above.
    pub default_quota: Quota,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    /// Body limit of the document upload routes ([`UPLOAD_PATHS`]), which stream files.
    pub upload_limit_bytes: usize,
    /// Allowed CORS origins; empty means no cross-origin access.
    pub cors_origins: Vec<HeaderValue>,
    /// How many reverse proxies in front of us append to `X-Forwarded-For`. 0 = use the
    /// socket address (a client-supplied header must never choose its own rate-limit key).
    pub trusted_proxy_hops: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        let rate_limits = [
            ("payments", 1000),
            ("blockchain", 500),
            ("facilities", 2000),
            // Agent runs cost CPU and LLM tokens.
            ("agents", 300),
            // Credential endpoints: low enough to slow password guessing per client.
            ("auth", 120),
            // Identity documents and screenings: per caller, enough for an officer's day.
            ("kyc", 300),
            ("compliance", 300),
        ]
        .into_iter()
        .map(|(g, n)| (g.to_owned(), Quota::per_minute(n)))
        .collect();
        Self {
            rate_limits,
            default_quota: Quota::per_minute(1000),
            request_timeout: Duration::from_secs(30),
            body_limit_bytes: 1024 * 1024,
            // A 10 MiB document plus multipart framing.
            upload_limit_bytes: 10 * 1024 * 1024 + 64 * 1024,
            cors_origins: Vec::new(),
            trusted_proxy_hops: 0,
        }
    }
}

impl GatewayConfig {
    /// Overrides from `ADVANCIA_RATE_LIMITS`, e.g. `payments=1000/min,blockchain=50/s`.
    pub fn apply_rate_limit_overrides(&mut self, spec: &str) -> Result<(), String> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (group, quota) = item
                .split_once('=')
                .ok_or_else(|| format!("rate limit override `{item}` is not group=N/unit"))?;
            let quota = Quota::parse(quota)?;
            if group == "default" {
                self.default_quota = quota;
            } else {
                self.rate_limits.insert(group.trim().to_owned(), quota);
            }
        }
        Ok(())
    }

    fn quota_for(&self, group: &str) -> Quota {
        self.rate_limits
            .get(group)
            .copied()
            .unwrap_or(self.default_quota)
    }
}

/// Who is calling, once authenticated; the auth layer inserts it into the request's
/// extensions. Rate limits key on it, falling back to the client IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    ApiKey(String),
    User(String),
}

/// The `/api/v1/<group>/...` segment a path belongs to, if any. The checkout pages and
/// their live streams (`/pay/...`, no login) are the `checkout` group.
pub fn route_group(path: &str) -> Option<&str> {
    if path.starts_with("/pay/") {
        return Some("checkout");
    }
    let rest = path.strip_prefix("/api/v1/")?;
    let group = rest.split('/').next().unwrap_or(rest);
    // Partner reads of indexed chain data share the blockchain quota.
    let group = if group == "indexer" {
        "blockchain"
    } else {
        group
    };
    (!group.is_empty()).then_some(group)
}

/// The client's address: the socket peer, or with `hops` trusted proxies the address
/// the outermost trusted proxy saw (counted from the right of `X-Forwarded-For`).
pub fn client_ip(req: &Request, hops: usize) -> Option<IpAddr> {
    client_ip_from(req.extensions(), req.headers(), hops)
}

/// [`client_ip`] from a request's parts.
pub fn client_ip_from(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    hops: usize,
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if hops == 0 {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .len()
        .checked_sub(hops)
        .and_then(|i| forwarded.get(i).copied())
        .or(peer)
}

#[derive(Clone)]
struct RateLimitState {
    limiter: Limiter,
    config: std::sync::Arc<GatewayConfig>,
}

fn rate_limit_key(req: &Request, group: &str, hops: usize) -> String {
    match req.extensions().get::<Identity>() {
        // Hash so raw API keys never reach Redis or logs.
        Some(Identity::ApiKey(k)) => {
            let digest = Sha256::digest(k.as_bytes());
            format!("{group}:key:{}", hex::encode(&digest[..16]))
        }
        Some(Identity::User(u)) => format!("{group}:user:{u}"),
        None => match client_ip(req, hops) {
            Some(ip) => format!("{group}:ip:{ip}"),
            None => format!("{group}:ip:unknown"),
        },
    }
}

fn set_rate_headers(resp: &mut Response, d: &Decision, quota: &Quota) {
    let h = resp.headers_mut();
    let num = |n: u64| HeaderValue::from(n);
    h.insert("ratelimit-limit", num(u64::from(d.limit)));
    h.insert("ratelimit-remaining", num(u64::from(d.remaining)));
    h.insert("ratelimit-reset", num(d.reset.as_secs_f64().ceil() as u64));
    if let Ok(v) = HeaderValue::from_str(&format!("{};w={}", quota.limit, quota.period.as_secs())) {
        h.insert("ratelimit-policy", v);
    }
}

async fn rate_limit(State(state): State<RateLimitState>, req: Request, next: Next) -> Response {
    let Some(group) = route_group(req.uri().path()).map(str::to_owned) else {
        return next.run(req).await;
    };
    let quota = state.config.quota_for(&group);
    let key = rate_limit_key(&req, &group, state.config.trusted_proxy_hops);
    let decision = match state.limiter.check(&key, &quota).await {
        Ok(d) => d,
        Err(e) => {
            // Fail open: an unreachable limiter store must not take payments down.
            tracing::warn!(error = %e, "rate limiter unavailable; request allowed");
            return next.run(req).await;
        }
    };
    if !decision.allowed {
        let retry = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut resp = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        )
        .with_detail(format!(
            "the {group} limit is {} requests per {}s; retry in {retry}s",
            quota.limit,
            quota.period.as_secs()
        ))
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry));
        set_rate_headers(&mut resp, &decision, &quota);
        return resp;
    }
    let mut resp = next.run(req).await;
    set_rate_headers(&mut resp, &decision, &quota);
    resp
}

/// Stable problem slugs for statuses that reach the client without a problem body
/// (axum rejections, tower-http timeouts and body limits, unknown methods).
pub fn slug_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad-request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid-body",
        StatusCode::TOO_MANY_REQUESTS => "rate-limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

const MAX_DETAIL: usize = 512;

/// Turns every error response that is not already problem+json into one, keeping the
/// original text (e.g. serde's "missing field `amount`") as `detail`.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let title = status.canonical_reason().unwrap_or("Error");
    let mut problem = Problem::new(status, slug_for(status), title);
    // Server errors keep their text out of the response: it may describe internals.
    if !text.is_empty() && !status.is_server_error() {
        let mut detail = text;
        if detail.len() > MAX_DETAIL {
            let mut cut = MAX_DETAIL;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        problem = problem.with_detail(detail);
    }
    let mut out = problem.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}

/// Wraps `router` in every gateway layer, rate limiting innermost.
pub fn apply(router: Router, config: GatewayConfig, limiter: Limiter) -> Router {
    let limited = with_rate_limit(router, &config, limiter);
    apply_outer(limited, config)
}

/// The rate-limit layer alone (callers put identification between it and the rest).
pub fn with_rate_limit(router: Router, config: &GatewayConfig, limiter: Limiter) -> Router {
    router.layer(middleware::from_fn_with_state(
        RateLimitState {
            limiter,
            config: std::sync::Arc::new(config.clone()),
        },
        rate_limit,
    ))
}

#[derive(Clone, Copy)]
struct BodyLimits {
    default: usize,
    upload: usize,
}

/// `tower_http`'s request body limit, with a larger limit for the upload routes: a
/// `Content-Length` over the limit is refused at once, other bodies are cut off when they
/// pass it (extractors then answer 413).
async fn limit_body(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    let limit = if UPLOAD_PATHS.contains(&req.uri().path()) {
        limits.upload
    } else {
        limits.default
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
    }
    next.run(req.map(|b| Body::new(http_body_util::Limited::new(b, limit))))
        .await
}

/// The bytes a percent-encoded URI component stands for.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Whether a JSON text holds a NUL character in a string (the `\u0000` escape; a raw NUL
/// byte is not JSON at all and counts too).
pub fn json_has_nul(json: &[u8]) -> bool {
    let mut in_string = false;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            0 => return true,
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000") {
                    return true;
                }
                // Skip the escaped character (`\"` must not end the string).
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

fn unstorable(detail: &str) -> Response {
    Problem::invalid(detail).into_response()
}

/// Refuses, at the edge, text that Postgres cannot store or that is not text at all: a NUL
/// character or bytes that are not UTF-8 in the path or query (percent-encoded or not), and
/// NUL in a JSON body. Handlers then never see it, whichever parameter it is in.
async fn refuse_unstorable_text(req: Request, next: Next) -> Response {
    for (part, text) in [
        ("path", Some(req.uri().path())),
        ("query", req.uri().query()),
    ] {
        let Some(text) = text else { continue };
        let bytes = percent_decode(text);
        if bytes.contains(&0) {
            return unstorable(&format!("the {part} contains a NUL character"));
        }
        if std::str::from_utf8(&bytes).is_err() {
            return unstorable(&format!("the {part} is not UTF-8 once percent-decoded"));
        }
    }
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if !json {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // The body limit layer around this one bounds the buffer.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_large {
                (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response()
            } else {
                Problem::new(StatusCode::BAD_REQUEST, "bad-request", "Bad Request")
                    .with_detail("the request body could not be read")
                    .into_response()
            };
        }
    };
    if json_has_nul(&bytes) {
        return unstorable("a string in the body contains a NUL character (\\u0000)");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A request body the handler did not read to its end leaves the connection unusable for
/// the next request (the server cannot find where it starts), so such responses say
/// `Connection: close` and the client opens a new one instead of failing.
async fn close_after_unread_body(req: Request, next: Next) -> Response {
    use futures_util::StreamExt;
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    if !has_body {
        return next.run(req).await;
    }
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = finished.clone();
    let req = req.map(|body| {
        let mut data = body.into_data_stream();
        Body::from_stream(futures_util::stream::poll_fn(move |cx| {
            let next = data.poll_next_unpin(cx);
            if let std::task::Poll::Ready(None) = next {
                flag.store(true, std::sync::atomic::Ordering::Release);
            }
            next
        }))
    });
    let mut resp = next.run(req).await;
    if !finished.load(std::sync::atomic::Ordering::Acquire) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The layers around rate limiting (outermost first: request id, trace, CORS,
/// compression, problem conversion, unread-body connection close, timeout, body limit,
/// unstorable-text refusal).
pub fn apply_outer(router: Router, config: GatewayConfig) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(config.cors_origins.clone()))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            API_KEY_HEADER,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            REQUEST_ID,
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ])
        .max_age(Duration::from_secs(600));
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
        let id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let span = tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id, traceparent = tracing::field::Empty);
        // A caller's W3C `traceparent` makes this span (and all work under it) part of the
        // caller's trace (advancia-telemetry); an invalid value is ignored.
        if let Some(tp) = req
            .headers()
            .get(advancia_telemetry::trace::TRACEPARENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| advancia_telemetry::TraceContext::parse(v).is_ok())
        {
            span.record("traceparent", tp);
        }
        span
    });
    let limits = BodyLimits {
        default: config.body_limit_bytes,
        upload: config.upload_limit_bytes,
    };
    router
        .layer(middleware::from_fn(refuse_unstorable_text))
        .layer(middleware::from_fn_with_state(limits, limit_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(middleware::from_fn(close_after_unread_body))
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(CompressionLayer::new())
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_from_paths() {
        assert_eq!(route_group("/api/v1/payments/initiate"), Some("payments"));
        assert_eq!(route_group("/api/v1/payments"), Some("payments"));
        assert_eq!(route_group("/api/v1/indexer/stream"), Some("blockchain"));
        assert_eq!(route_group("/api/v1/"), None);
        assert_eq!(route_group("/health"), None);
        assert_eq!(route_group("/pay/x/events"), Some("checkout"));
        assert_eq!(route_group("/payments"), None);
    }

    #[test]
    fn overrides_parse_and_reject_bad_input() {
        let mut c = GatewayConfig::default();
        c.apply_rate_limit_overrides("payments=5/s, default=10/min")
            .unwrap();
        assert_eq!(c.quota_for("payments").limit, 5);
        assert_eq!(c.quota_for("unknown").limit, 10);
        assert_eq!(c.quota_for("blockchain").limit, 500);
        assert!(c.apply_rate_limit_overrides("payments").is_err());
        assert!(c.apply_rate_limit_overrides("payments=0/s").is_err());
    }

    fn req_with(peer: &str, xff: Option<&str>) -> Request {
        let mut req = Request::builder().uri("/").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        if let Some(x) = xff {
            req.headers_mut()
                .insert("x-forwarded-for", HeaderValue::from_str(x).unwrap());
        }
        req
    }

    #[test]
    fn client_ip_ignores_forwarded_for_unless_proxies_are_trusted() {
        let r = req_with("10.0.0.1:5000", Some("1.2.3.4, 5.6.7.8"));
        assert_eq!(client_ip(&r, 0), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(client_ip(&r, 1), Some("5.6.7.8".parse().unwrap()));
        assert_eq!(client_ip(&r, 2), Some("1.2.3.4".parse().unwrap()));
        // Fewer entries than trusted hops: fall back to the peer.
        assert_eq!(client_ip(&r, 3), Some("10.0.0.1".parse().unwrap()));
    }
}
