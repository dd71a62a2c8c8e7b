//! The patient's side of a payment intent (issue #22, ADR 0026):
//!
//! - `GET /pay/{id}`: the checkout page, server-rendered, no login (the id is a random
//!   UUID): facility, amount in the asset's units, a QR code (SVG, rendered here) of the
//!   Solana Pay transaction-request URL, "open in wallet" links (`solana:` and
//!   `solana-action:`), the expiry, and a view of its own for each end state. It works
//!   without JavaScript; its one script (served from our origin, the only one the CSP
//!   admits) counts down and follows the live status.
//! - `GET /pay/{id}/events`: the live status as server-sent events, pushed from the
//!   payments outbox ([`Checkout`] follows it once per process and fans out to clients).
//! - Solana Actions: `GET /actions.json` maps `/pay/*` to `/api/v1/actions/pay/*`, whose
//!   `GET` is the `ActionGetResponse` and `POST {account}` the `ActionPostResponse` (the
//!   same unsigned transaction as the Solana Pay transaction request), with the CORS and
//!   `X-Action-Version` / `X-Blockchain-Ids` headers of the specification ([`wallet_edge`]).
//!
//! Nothing a user typed reaches a wallet as HTML: labels, facility names and messages go
//! through [`plain_text`]; the page escapes everything it prints.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use advancia_db::follow::{BoxError, Cursor, Follower, Handler};
use advancia_outbox::{Event as OutboxEvent, OutboxLog};
use advancia_payments::{AssetUnits, Mismatch, Payment, PaymentError, short_key};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::sync::{OnceCell, broadcast};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::problem::{Problem, Result};

/// Cursor rows of the per-process outbox followers (schema `api`).
pub const FEED_CURSORS: &str = "api.checkout_cursors";
/// The Solana Actions specification version we implement.
pub const ACTION_VERSION: &str = "2.4";
const SCRIPT: &str = include_str!("checkout/checkout.js");
const STYLE: &str = include_str!("checkout/checkout.css");

/// The checkout's process-wide parts: the fan-out of payment events to the live pages of
/// this process, and the cluster's CAIP-2 id (read once from the node).
#[derive(Clone)]
pub struct Checkout {
    changed: broadcast::Sender<Uuid>,
    chain_id: Arc<OnceCell<String>>,
}

impl Default for Checkout {
    fn default() -> Self {
        Checkout {
            changed: broadcast::channel(1024).0,
            chain_id: Arc::new(OnceCell::new()),
        }
    }
}

/// Hands the id of every payment an outbox entry is about to the live pages.
struct Fanout(broadcast::Sender<Uuid>);

impl Handler<OutboxEvent> for Fanout {
    async fn handle(
        &mut self,
        _conn: &mut PgConnection,
        entries: &[OutboxEvent],
    ) -> std::result::Result<(), BoxError> {
        for e in entries {
            if let Some(id) = e
                .payload
                .get("payment_id")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::try_parse(s).ok())
            {
                // No page listening is not an error.
                let _ = self.0.send(id);
            }
        }
        Ok(())
    }
}

impl Checkout {
    /// A receiver of the ids of payments that changed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.changed.subscribe()
    }

    /// Follows the payments outbox in `payments` until `stop` and tells this process's live
    /// pages about each event. Every API process needs every event, so each follows with
    /// a cursor row of its own (`checkout:<process>`, in the API's database `pool`),
    /// starting at the log's head, and removes it when it stops.
    pub async fn run(
        self,
        pool: PgPool,
        payments: PgPool,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let name = format!("checkout:{}", Uuid::new_v4());
        let log = OutboxLog::new(payments, advancia_payments::OUTBOX);
        let cursor = Cursor::new(pool.clone(), FEED_CURSORS, name.clone());
        // Rows of processes that stopped without removing theirs.
        if let Err(e) = sqlx::query(
            "DELETE FROM api.checkout_cursors WHERE updated_at < now() - interval '7 days'",
        )
        .execute(&pool)
        .await
        {
            tracing::warn!(error = %e, "checkout feed: old cursors not removed");
        }
        // Pages read the current state themselves; only what changes from now on matters.
        match log.head().await {
            Ok(head) => {
                if let Err(e) = cursor.advance_to(head).await {
                    tracing::warn!(error = %e, "checkout feed: cursor not placed at the head");
                }
            }
            Err(e) => tracing::warn!(error = %e, "checkout feed: outbox head unknown"),
        }
        let follower = Follower::new(log, cursor);
        follower.run(&mut Fanout(self.changed.clone()), stop).await;
        if let Err(e) = sqlx::query("DELETE FROM api.checkout_cursors WHERE name = $1")
            .bind(&name)
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "checkout feed: cursor not removed");
        }
    }

    /// `solana:<first 32 characters of the genesis hash>` (CAIP-2), once known.
    async fn chain_id(&self, chain: &advancia_chains::SolanaChain) -> Option<String> {
        self.chain_id
            .get_or_try_init(|| async {
                chain.genesis_hash().await.map(|h| {
                    let h = h.to_string();
                    format!("solana:{}", &h[..h.len().min(32)])
                })
            })
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "genesis hash unknown"))
            .ok()
            .cloned()
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/pay/{id}", get(page))
        .route("/pay/{id}/events", get(events))
        .route("/assets/checkout.js", get(script))
        .route("/assets/checkout.css", get(style))
        .route("/actions.json", get(actions_json))
        .route(
            "/api/v1/actions/pay/{id}",
            get(action_get).post(action_post),
        )
}

// ------------------------------------------------------------------------------- links

/// Solana Pay and Solana Actions URL form: the link as it is when it has no query, else
/// percent-encoded (both specifications: "conditionally URL-encoded").
pub fn wallet_url(scheme: &str, link: &str) -> String {
    if link.contains('?') {
        format!("{scheme}:{}", url_encode(link))
    } else {
        format!("{scheme}:{link}")
    }
}

/// Percent-encodes every byte outside the URI unreserved set.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The links of intent `id` under the public URL `base`.
pub struct Links {
    pub checkout: String,
    pub transaction_request: String,
    pub action: String,
}

impl Links {
    pub fn new(base: &str, id: Uuid) -> Links {
        Links {
            checkout: format!("{base}/pay/{id}"),
            transaction_request: format!("{base}/api/v1/payments/{id}/transaction-request"),
            action: format!("{base}/api/v1/actions/pay/{id}"),
        }
    }

    pub fn solana_pay(&self) -> String {
        wallet_url("solana", &self.transaction_request)
    }

    pub fn solana_action(&self) -> String {
        wallet_url("solana-action", &self.action)
    }
}

// --------------------------------------------------------------------------- text safety

/// Text for wallets and titles: tags removed, no `<` or `>` left, control characters
/// dropped, whitespace collapsed, at most `max` characters.
pub fn plain_text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            '>' => {}
            _ if in_tag => {}
            c if c.is_control() || c.is_whitespace() => {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
            }
            c => out.push(c),
        }
    }
    let out = out.trim_end();
    match out.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &out[..i]),
        None => out.to_owned(),
    }
}

/// HTML text and attribute escaping.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// --------------------------------------------------------------------------------- state

/// What the page shows about an intent; the live stream sends it again on every change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckoutState {
    /// `waiting`, `confirmed`, `paid`, `expired`, `refunded`, `kyc_required`,
    /// `mismatched` or `failed`.
    pub state: &'static str,
    /// The intent's status (pending, confirmed, finalized, failed, expired).
    pub status: String,
    pub title: String,
    pub detail: String,
    /// Whether a wallet may still pay (the QR code is shown).
    pub payable: bool,
    /// The settling transaction, once there is one.
    pub signature: Option<String>,
}

fn hhmm(t: OffsetDateTime) -> String {
    format!("{:02}:{:02} UTC", t.hour(), t.minute())
}

/// The view of `p`: end states first (refunded, paid, expired), then what keeps it from
/// being paid (a mismatched payment, a KYC refusal, a failed attempt), else waiting.
pub fn state_of(
    p: &Payment,
    units: &AssetUnits,
    mismatches: &[Mismatch],
    history: &[(String, Value, OffsetDateTime)],
    now: OffsetDateTime,
) -> CheckoutState {
    let amount = p.amount.parse::<u64>().map(|a| units.format(a));
    let amount = amount.unwrap_or_else(|_| format!("{} base units", p.amount));
    let refunded = p.refunded.parse::<u64>().unwrap_or(0);
    let settled = matches!(p.status.as_str(), "confirmed" | "finalized");
    let make = |state: &'static str, title: &str, detail: String, payable: bool| CheckoutState {
        state,
        status: p.status.clone(),
        title: title.to_owned(),
        detail,
        payable,
        signature: p.signature.clone(),
    };
    if settled && refunded > 0 {
        let whole = refunded.to_string() == p.amount;
        return make(
            "refunded",
            if whole { "Refunded" } else { "Partly refunded" },
            format!(
                "{} of the {amount} paid went back to the paying wallet.",
                units.format(refunded)
            ),
            false,
        );
    }
    match p.status.as_str() {
        "finalized" if p.is_escrow() => {
            return make(
                "paid",
                "Paid",
                format!("{amount} is held in escrow for the facility. You can close this page."),
                false,
            );
        }
        "finalized" => {
            return make(
                "paid",
                "Paid",
                format!("{amount} received and final on chain. You can close this page."),
                false,
            );
        }
        "confirmed" => {
            return make(
                "confirmed",
                "Payment received",
                format!("{amount} is confirmed on chain; waiting a few seconds for finality."),
                false,
            );
        }
        _ => {}
    }
    if p.status == "expired" || now >= p.expires_at {
        return make(
            "expired",
            "Expired",
            format!(
                "This payment request expired at {}. Ask the facility for a new one; nothing was charged.",
                hhmm(p.expires_at)
            ),
            false,
        );
    }
    if let Some(m) = mismatches.last() {
        let reasons = m.reasons.join(", ");
        return make(
            "mismatched",
            "Payment does not match",
            format!(
                "A payment for this request arrived that differs in: {reasons}. The facility can refund it. This request can still be paid with exactly {amount}."
            ),
            true,
        );
    }
    // The last wallet that asked: refused for want of KYC, or given a transaction.
    let last_ask = history.iter().rev().find_map(|(_, detail, _)| {
        match detail.get("event").and_then(Value::as_str) {
            Some(e @ ("kyc_required" | "transaction_requested")) => Some((e, detail)),
            _ => None,
        }
    });
    if let Some(("kyc_required", detail)) = last_ask {
        let threshold = detail
            .get("threshold")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<u64>().ok())
            .map(|t| units.format(t))
            .unwrap_or_else(|| "the facility's limit".into());
        let wallet = detail
            .get("account")
            .and_then(Value::as_str)
            .map(short_key)
            .unwrap_or_default();
        return make(
            "kyc_required",
            "Identity verification needed",
            format!(
                "Payments above {threshold} need a verified identity (KYC) for the paying wallet {wallet}. Verify your identity at the front desk or in the patient portal, then scan the code again, or pay from a wallet that is already verified."
            ),
            true,
        );
    }
    if p.status == "failed" {
        return make(
            "failed",
            "The last attempt failed",
            "The wallet's transaction failed on chain and paid nothing. Scan the code again to retry.".into(),
            true,
        );
    }
    make(
        "waiting",
        "Waiting for payment",
        format!(
            "Scan the code with a Solana wallet, or open it in the wallet app on this device. Pay {amount}."
        ),
        true,
    )
}

/// Everything the page and the action show about an intent.
struct Summary {
    payment: Payment,
    facility: String,
    units: AssetUnits,
    amount: String,
    state: CheckoutState,
}

/// An intent id from the path: not a UUID is no such intent.
pub(crate) fn parse_id(s: &str) -> Result<Uuid> {
    Uuid::try_parse(s).map_err(|_| PaymentError::NotFound.into())
}

/// The transaction intent `id` asks `account` (from the request body) to sign, for the
/// Solana Pay transaction request and the action alike: every refusal, a malformed body
/// included, carries `message` for the wallet.
pub(crate) async fn wallet_transaction(
    st: &AppState,
    id: &str,
    account: std::result::Result<String, JsonRejection>,
) -> Result<advancia_payments::TransactionResponse> {
    let account = account.map_err(|e| {
        for_wallet(
            Problem::new(
                e.status(),
                crate::gateway::slug_for(e.status()),
                e.status().canonical_reason().unwrap_or("Error"),
            )
            .with_detail(e.body_text()),
        )
    })?;
    let id = parse_id(id).map_err(for_wallet)?;
    st.payments
        .transaction_request(id, &account)
        .await
        .map_err(|e| for_wallet(e.into()))
}

/// The facility's name from the facilities service when the on-chain id is one of its
/// UUIDs (16 bytes and 16 zero bytes), else its on-chain account, shortened. Raw text:
/// escape it for HTML, pass it through [`plain_text`] for wallets.
async fn facility_name(st: &AppState, p: &Payment) -> String {
    let fallback = || format!("Facility {}", short_key(&p.facility));
    let Ok(bytes) = p.facility_id_bytes() else {
        return fallback();
    };
    if bytes[16..].iter().any(|b| *b != 0) {
        return fallback();
    }
    let Ok(id) = Uuid::from_slice(&bytes[..16]) else {
        return fallback();
    };
    match st.facilities.get(id).await {
        // As typed: the page escapes it, wallets get it through `plain_text`.
        Ok(Some(f)) => f.profile.name.trim().chars().take(120).collect(),
        Ok(None) => fallback(),
        Err(e) => {
            tracing::warn!(error = %e, "facility name unavailable");
            fallback()
        }
    }
}

async fn current_state(st: &AppState, p: &Payment, units: &AssetUnits) -> Result<CheckoutState> {
    let mismatches = st.payments.mismatches(p.id).await?;
    let history = st.payments.status_history(p.id).await?;
    Ok(state_of(
        p,
        units,
        &mismatches,
        &history,
        OffsetDateTime::now_utc(),
    ))
}

async fn summary(st: &AppState, id: Uuid) -> Result<Summary> {
    let payment = st.payments.get(id).await?;
    let mint = payment.mint_key()?;
    let units = st.payments.asset_units(&mint).await?;
    let amount = units.format(payment.amount_u64()?);
    let facility = facility_name(st, &payment).await;
    let state = current_state(st, &payment, &units).await?;
    Ok(Summary {
        payment,
        facility,
        units,
        amount,
        state,
    })
}

// ---------------------------------------------------------------------------------- page

/// Only our own script and stylesheet; the live status connects to this origin only.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; \
     base-uri 'none'";

fn secured(mut resp: Response, cache: &'static str) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

/// The QR code of `data` as an inline SVG (scaled by the stylesheet).
pub fn qr_svg(data: &str) -> Result<String> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| Problem::from(PaymentError::Corrupt(format!("QR code: {e}"))))?;
    let image = code
        .render::<svg::Color>()
        .module_dimensions(1, 1)
        .quiet_zone(true)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // Inline in HTML: no XML declaration; named for assistive technology.
    let start = image.find("<svg").unwrap_or(0);
    Ok(image[start..].replacen(
        "<svg ",
        "<svg role=\"img\" aria-label=\"QR code of the Solana Pay link\" ",
        1,
    ))
}

/// The checkout page of a payment intent.
#[utoipa::path(get, path = "/pay/{id}", tag = "checkout",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "The checkout page (HTML): facility, amount, QR code of the Solana Pay link, expiry and status", content_type = "text/html", body = String),
        (status = 404, body = Problem)))]
pub async fn page(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let s = summary(&st, parse_id(&id)?).await?;
    let p = &s.payment;
    let links = Links::new(&st.public_url, p.id);
    let qr = qr_svg(&links.solana_pay())?;
    let now = OffsetDateTime::now_utc();
    let left = (p.expires_at - now).whole_minutes().max(0);
    let label = plain_text(&p.label, 100);
    let default_label = plain_text(&st.payments.config().label, 100);
    let label_line = if label == default_label || label == s.facility {
        String::new()
    } else {
        format!("<p id=\"label\">{}</p>\n", escape(&label))
    };
    let memo_line = match p.memo.as_deref().map(|m| plain_text(m, 200)) {
        Some(m) if !m.is_empty() => format!("<p id=\"memo\">{}</p>\n", escape(&m)),
        _ => String::new(),
    };
    let expires = p
        .expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let hidden = if s.state.payable { "" } else { " hidden" };
    let state = &s.state;
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pay {facility} · Advancia Pay</title>
<link rel="icon" href="/api/v1/payments/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/checkout.css">
<script src="/assets/checkout.js" defer></script>
</head>
<body data-state="{state_name}">
<main id="checkout" data-payment="{id}" data-expires="{expires_unix}" data-events="/pay/{id}/events">
<header>
<p class="to">Payment to</p>
<h1 id="facility">{facility}</h1>
{label_line}<p class="amount"><span id="amount" data-base-units="{base_units}" data-symbol="{symbol}" data-decimals="{decimals}">{amount}</span></p>
{memo_line}</header>
<section id="status" class="status" role="status" aria-live="polite" data-state="{state_name}">
<h2 id="state-title">{title}</h2>
<p id="state-detail">{detail}</p>
</section>
<section id="pay"{hidden} aria-labelledby="pay-title">
<h2 id="pay-title">Pay with a Solana wallet</h2>
<figure id="qr">{qr}<figcaption>Scan with a Solana Pay wallet (Phantom, Solflare, Backpack…)</figcaption></figure>
<p><a id="open-wallet" class="button" href="{solana_pay}">Open in wallet</a></p>
<p class="alt">On a wallet that supports Solana Actions: <a id="open-action" href="{solana_action}">open as an action</a>.</p>
<p id="expiry">Expires in <time id="countdown" datetime="{expires}">{left} min</time>, at {expires_hhmm}.</p>
</section>
<footer>
<p>Invoice <code>{invoice}…</code> · <a href="{checkout}">Refresh</a></p>
</footer>
</main>
</body>
</html>
"#,
        facility = escape(&s.facility),
        state_name = state.state,
        id = p.id,
        expires_unix = p.expires_at.unix_timestamp(),
        base_units = escape(&p.amount),
        symbol = escape(&s.units.symbol),
        decimals = s.units.decimals,
        amount = escape(&s.amount),
        title = escape(&state.title),
        detail = escape(&state.detail),
        solana_pay = escape(&links.solana_pay()),
        solana_action = escape(&links.solana_action()),
        expires_hhmm = hhmm(p.expires_at),
        invoice = escape(p.invoice_id.get(..8).unwrap_or_default()),
        checkout = escape(&links.checkout),
    );
    Ok(secured(Html(html).into_response(), "no-store"))
}

pub async fn script() -> Response {
    let resp = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        SCRIPT,
    )
        .into_response();
    secured(resp, "public, max-age=300")
}

pub async fn style() -> Response {
    let resp = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        STYLE,
    )
        .into_response();
    secured(resp, "public, max-age=300")
}

// ------------------------------------------------------------------------------ live status

/// The intent's live status as server-sent events: `state` events carrying a
/// `CheckoutState`, the first at once, then one for every change the payment lifecycle
/// makes (pushed from the payments outbox; nothing is polled).
#[utoipa::path(get, path = "/pay/{id}/events", tag = "checkout",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "text/event-stream of `state` events (CheckoutState JSON)", content_type = "text/event-stream", body = String),
        (status = 404, body = Problem)))]
pub async fn events(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let id = parse_id(&id)?;
    // Subscribed before the first read: a change committed after it is not missed.
    let rx = st.checkout.subscribe();
    let payment = st.payments.get(id).await?;
    let units = st.payments.asset_units(&payment.mint_key()?).await?;
    let first = current_state(&st, &payment, &units).await?;
    struct Live {
        st: AppState,
        rx: broadcast::Receiver<Uuid>,
        units: AssetUnits,
        last: Option<CheckoutState>,
        first: Option<CheckoutState>,
    }
    let live = Live {
        st,
        rx,
        units,
        last: None,
        first: Some(first),
    };
    let to_event = |s: &CheckoutState| {
        Event::default()
            .event("state")
            .json_data(s)
            .unwrap_or_else(|_| Event::default().event("error").data("encoding failed"))
    };
    let stream = futures_util::stream::unfold(live, move |mut live| async move {
        if let Some(first) = live.first.take() {
            let ev = to_event(&first);
            live.last = Some(first);
            return Some((Ok::<_, Infallible>(ev), live));
        }
        loop {
            match live.rx.recv().await {
                Ok(changed) if changed != id => continue,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
            let payment = match live.st.payments.get(id).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "checkout stream: payment unreadable");
                    continue;
                }
            };
            let state = match current_state(&live.st, &payment, &live.units).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(status = e.status, "checkout stream: state unreadable");
                    continue;
                }
            };
            if live.last.as_ref() != Some(&state) {
                let ev = to_event(&state);
                live.last = Some(state);
                return Some((Ok(ev), live));
            }
        }
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

// ------------------------------------------------------------------------ Solana Actions

#[derive(Serialize, ToSchema)]
pub struct ActionRule {
    #[serde(rename = "pathPattern")]
    path_pattern: String,
    #[serde(rename = "apiPath")]
    api_path: String,
}

#[derive(Serialize, ToSchema)]
pub struct ActionsJson {
    rules: Vec<ActionRule>,
}

/// Solana Actions `actions.json`: the checkout pages (`/pay/*`) are actions at
/// `/api/v1/actions/pay/*`.
#[utoipa::path(get, path = "/actions.json", tag = "checkout",
    responses((status = 200, body = ActionsJson)))]
pub async fn actions_json() -> Json<ActionsJson> {
    Json(ActionsJson {
        rules: vec![
            ActionRule {
                path_pattern: "/pay/*".into(),
                api_path: "/api/v1/actions/pay/*".into(),
            },
            ActionRule {
                path_pattern: "/api/v1/actions/**".into(),
                api_path: "/api/v1/actions/**".into(),
            },
        ],
    })
}

#[derive(Serialize, ToSchema)]
pub struct LinkedAction {
    /// `transaction`.
    #[serde(rename = "type")]
    kind: String,
    href: String,
    label: String,
}

#[derive(Serialize, ToSchema)]
pub struct ActionLinks {
    actions: Vec<LinkedAction>,
}

#[derive(Serialize, ToSchema)]
pub struct ActionErrorBody {
    message: String,
}

/// Solana Actions `ActionGetResponse`.
#[derive(Serialize, ToSchema)]
pub struct ActionGetResponse {
    /// `action`.
    #[serde(rename = "type")]
    kind: String,
    /// Absolute URL of the icon (https outside development).
    icon: String,
    title: String,
    description: String,
    label: String,
    /// The intent can no longer be paid (paid, expired, refunded).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    links: Option<ActionLinks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ActionErrorBody>,
}

/// Solana Actions `ActionPostResponse` (a transaction for the wallet to sign).
#[derive(Serialize, ToSchema)]
pub struct ActionPostResponse {
    /// `transaction`.
    #[serde(rename = "type")]
    kind: String,
    /// Base64 of the unsigned transaction (the wallet pays the fee and signs).
    transaction: String,
    message: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ActionPostRequest {
    /// The wallet's public key (base58).
    account: String,
}

/// Wallets show an error's `message`: every refusal carries one (a problem extension).
pub fn for_wallet(p: Problem) -> Problem {
    if p.extensions.contains_key("message") {
        return p;
    }
    let message = plain_text(p.detail.as_deref().unwrap_or(&p.title), 300);
    p.with_extension("message", Value::String(message))
}

/// The icon wallets show: the configured one, or ours under the public URL.
pub fn icon_url(st: &AppState) -> String {
    let configured = &st.payments.config().icon_url;
    if configured.starts_with("https://advancia.invalid") {
        format!("{}/api/v1/payments/icon.svg", st.public_url)
    } else {
        configured.clone()
    }
}

/// Solana Action metadata of a payment intent: what a Blink or wallet shows before asking.
#[utoipa::path(get, path = "/api/v1/actions/pay/{id}", tag = "checkout",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, body = ActionGetResponse), (status = 404, description = "No such intent (`message` says so)", body = Problem)))]
pub async fn action_get(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let s = match parse_id(&id) {
        Ok(id) => summary(&st, id).await,
        Err(e) => Err(e),
    }
    .map_err(for_wallet)?;
    let p = &s.payment;
    let label = plain_text(&p.label, 100);
    let pay_label = format!("Pay {}", s.amount);
    let action = Links::new(&st.public_url, p.id).action;
    let description = plain_text(
        &format!(
            "{} to {} ({label}), invoice {}…. {}",
            s.amount,
            s.facility,
            p.invoice_id.get(..8).unwrap_or_default(),
            s.state.detail
        ),
        400,
    );
    let open = s.state.payable;
    Ok(Json(ActionGetResponse {
        kind: "action".into(),
        icon: icon_url(&st),
        title: plain_text(&format!("Pay {}", s.facility), 120),
        description,
        label: if open {
            plain_text(&pay_label, 60)
        } else {
            plain_text(&s.state.title, 60)
        },
        disabled: !open,
        links: open.then(|| ActionLinks {
            actions: vec![LinkedAction {
                kind: "transaction".into(),
                href: action,
                label: plain_text(&pay_label, 60),
            }],
        }),
        error: (!open).then(|| ActionErrorBody {
            message: plain_text(&s.state.detail, 300),
        }),
    })
    .into_response())
}

/// Solana Action POST: the unsigned payment transaction for `account` (the same one the
/// Solana Pay transaction request builds).
#[utoipa::path(post, path = "/api/v1/actions/pay/{id}", tag = "checkout",
    params(("id" = String, Path, description = "Payment id")), request_body = ActionPostRequest,
    responses((status = 200, body = ActionPostResponse), (status = 404, body = Problem),
        (status = 409, description = "Already paid (`message` says so)", body = Problem), (status = 410, description = "Expired", body = Problem),
        (status = 422, description = "KYC attestation required, facility inactive, ...", body = Problem)))]
pub async fn action_post(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: std::result::Result<Json<ActionPostRequest>, JsonRejection>,
) -> Result<Response> {
    let tx = wallet_transaction(&st, &id, body.map(|Json(b)| b.account)).await?;
    Ok(Json(ActionPostResponse {
        kind: "transaction".into(),
        transaction: tx.transaction,
        message: plain_text(&tx.message, 300),
    })
    .into_response())
}

// ------------------------------------------------------------------------ the wallet edge

fn is_action_path(path: &str) -> bool {
    path == "/actions.json" || path.starts_with("/api/v1/actions/")
}

fn is_transaction_request(path: &str) -> bool {
    path.starts_with("/api/v1/payments/") && path.ends_with("/transaction-request")
}

const ALLOW_HEADERS: &str = "Content-Type, Authorization, Content-Encoding, Accept-Encoding, \
     X-Accept-Action-Version, X-Accept-Blockchain-Ids";

async fn action_headers(st: &AppState, h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set(h, "access-control-allow-origin", "*");
    set(h, "access-control-allow-methods", "GET,POST,PUT,OPTIONS");
    set(h, "access-control-allow-headers", ALLOW_HEADERS);
    set(
        h,
        "access-control-expose-headers",
        "X-Action-Version, X-Blockchain-Ids",
    );
    set(h, "x-action-version", ACTION_VERSION);
    if let Some(id) = st.checkout.chain_id(&st.chain).await {
        set(h, "x-blockchain-ids", &id);
    }
}

/// Outermost layer for the routes wallets call from anywhere: Solana Actions answer every
/// origin's preflight and carry the specification's headers; their errors, and those of
/// the Solana Pay transaction request (gateway refusals included: 413, 415, 429 …), carry
/// the `message` member wallets show.
pub async fn wallet_edge(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let action = is_action_path(&path);
    if !action && !is_transaction_request(&path) {
        return next.run(req).await;
    }
    if action && req.method() == Method::OPTIONS {
        let mut resp = StatusCode::OK.into_response();
        action_headers(&st, resp.headers_mut()).await;
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return resp;
    }
    let mut resp = next.run(req).await;
    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        resp = with_message(resp).await;
    }
    if action {
        action_headers(&st, resp.headers_mut()).await;
    }
    resp
}

/// Adds `message` to a JSON error body that lacks it.
async fn with_message(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, "").into_response();
    };
    let mut value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let Some(obj) = value.as_object_mut() else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    if !obj.contains_key("message") {
        let text = obj
            .get("detail")
            .or_else(|| obj.get("title"))
            .and_then(Value::as_str)
            .unwrap_or("Request failed");
        let message = plain_text(text, 300);
        obj.insert("message".into(), Value::String(message));
    }
    let out = serde_json::to_vec(&value).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_html() {
        assert_eq!(
            plain_text("<script>alert(1)</script>St. Mary's", 100),
            "alert(1)St. Mary's"
        );
        assert_eq!(plain_text("a <b>bold</b>\n\tclinic", 100), "a bold clinic");
        assert_eq!(plain_text("x > y < z", 100), "x y");
        assert_eq!(plain_text("<img src=x onerror=alert(1)", 100), "");
        assert_eq!(plain_text("abcdef", 3), "abc…");
        for s in ["<a>", "1 < 2 > 0", "<<script>>", "\u{0}<x>\u{1b}"] {
            let t = plain_text(s, 100);
            assert!(!t.contains('<') && !t.contains('>'), "{s:?} → {t:?}");
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn wallet_urls_are_conditionally_encoded() {
        assert_eq!(
            wallet_url(
                "solana",
                "https://pay.example.com/api/v1/payments/1/transaction-request"
            ),
            "solana:https://pay.example.com/api/v1/payments/1/transaction-request"
        );
        assert_eq!(
            wallet_url("solana-action", "https://x.example/a?b=c&d=e"),
            "solana-action:https%3A%2F%2Fx.example%2Fa%3Fb%3Dc%26d%3De"
        );
    }

    fn intent(status: &str) -> Payment {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Payment {
            id: Uuid::from_u128(7),
            created_by: Uuid::from_u128(8),
            chain: "solana".into(),
            kind: "payment".into(),
            facility_id: "42".repeat(32),
            facility: "F".repeat(44),
            mint: "11111111111111111111111111111111".into(),
            amount: "1500000000".into(),
            escrow_arbiter: None,
            escrow_expires_at: None,
            invoice_id: "ab".repeat(32),
            reference: "R".repeat(44),
            label: "Advancia Pay".into(),
            memo: None,
            payer: None,
            status: status.into(),
            signature: None,
            slot: None,
            account: None,
            ix_index: None,
            inner_index: None,
            fee: None,
            refunded: "0".into(),
            released: "0".into(),
            failure: None,
            verified_at: None,
            expires_at: t,
            created_at: t,
            updated_at: t,
        }
    }

    fn sol() -> AssetUnits {
        AssetUnits {
            symbol: "SOL".into(),
            decimals: 9,
        }
    }

    #[test]
    fn each_end_state_has_its_view() {
        let before = OffsetDateTime::from_unix_timestamp(1_799_999_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let after = OffsetDateTime::from_unix_timestamp(1_800_000_001)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let view = |p: &Payment, m: &[Mismatch], h: &[(String, Value, OffsetDateTime)], now| {
            state_of(p, &sol(), m, h, now)
        };
        let waiting = view(&intent("pending"), &[], &[], before);
        assert_eq!((waiting.state, waiting.payable), ("waiting", true));
        assert!(waiting.detail.contains("1.5 SOL"), "{}", waiting.detail);
        assert_eq!(
            view(&intent("confirmed"), &[], &[], before).state,
            "confirmed"
        );
        let paid = view(&intent("finalized"), &[], &[], after);
        assert_eq!(
            (paid.state, paid.payable, paid.title.as_str()),
            ("paid", false, "Paid")
        );
        let mut refunded = intent("finalized");
        refunded.refunded = "1500000000".into();
        let r = view(&refunded, &[], &[], before);
        assert_eq!((r.state, r.title.as_str()), ("refunded", "Refunded"));
        refunded.refunded = "500000000".into();
        assert_eq!(view(&refunded, &[], &[], before).title, "Partly refunded");
        // Past its deadline it is expired even before the worker says so.
        assert_eq!(view(&intent("pending"), &[], &[], after).state, "expired");
        assert_eq!(view(&intent("expired"), &[], &[], before).state, "expired");
        let kyc = (
            "pending".to_owned(),
            serde_json::json!({"event": "kyc_required", "account": "W".repeat(44),
                               "threshold": "50000000000", "reason": "none on chain"}),
            before,
        );
        let k = view(&intent("pending"), &[], std::slice::from_ref(&kyc), before);
        assert_eq!((k.state, k.payable), ("kyc_required", true));
        assert!(
            k.detail.contains("50 SOL") && k.detail.contains("WWWW…WWWW"),
            "{}",
            k.detail
        );
        // A later request from a verified wallet clears it.
        let asked = (
            "pending".to_owned(),
            serde_json::json!({"event": "transaction_requested", "account": "V".repeat(44)}),
            before,
        );
        assert_eq!(
            view(&intent("pending"), &[], &[kyc.clone(), asked], before).state,
            "waiting"
        );
        let m = Mismatch {
            id: Uuid::from_u128(9),
            payment_id: Uuid::from_u128(7),
            chain: "solana".into(),
            signature: "s".into(),
            ix_index: 0,
            inner_index: 0,
            slot: 1,
            commitment: "finalized".into(),
            kind: "payment".into(),
            payer: "P".into(),
            account: "A".into(),
            facility: "F".into(),
            mint: "M".into(),
            amount: "1".into(),
            fee: "0".into(),
            arbiter: None,
            expires_at: None,
            invoice_id: None,
            reference: None,
            reasons: vec!["amount".into()],
            refunded: "0".into(),
            released: "0".into(),
            detected_at: before,
        };
        let mm = view(&intent("pending"), std::slice::from_ref(&m), &[], before);
        assert_eq!((mm.state, mm.payable), ("mismatched", true));
        assert!(mm.detail.contains("amount"));
        // A duplicate after the intent is paid does not hide that it is paid.
        assert_eq!(view(&intent("finalized"), &[m], &[], before).state, "paid");
        assert_eq!(view(&intent("failed"), &[], &[], before).state, "failed");
    }

    #[test]
    fn qr_is_an_inline_svg() {
        let svg = qr_svg("solana:https://pay.example.com/x").unwrap_or_default();
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
    }
}
