//! The validator's HTTP endpoint: its publication location served read-only (so relayers
//! need no access to its disk or store), its metrics, and claims to check.
//!
//! - `GET /v1/announcement`, `GET /v1/attestations/latest`, `GET /v1/attestations/{n}`
//! - `POST /v1/observations` `{"originTx": "0x…", "message": {…}}`: "this message was
//!   dispatched in that transaction". Checked against the validator's own node: 202 when the
//!   chain holds exactly that dispatch (it is signed on the next step), 422 with the reason
//!   when not. Anyone may ask; a claim costs the validator one RPC call, so the route takes
//!   few at a time and small bodies.
//! - `GET /metrics` (Prometheus text), `GET /health`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::attestation::{AttestationDir, WireMessage, latest_body};
use crate::message::Message;
use crate::source::MessageSource;
use crate::store::ValidatorStore;
use crate::validator::{Destination, Validator};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Claim {
    origin_tx: alloy::primitives::Bytes,
    message: WireMessage,
}

fn problem(status: StatusCode, kind: &str, detail: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        Json(json!({
            "type": format!("https://advancia.dev/problems/{kind}"),
            "title": kind.replace('-', " "),
            "status": status.as_u16(),
            "detail": detail,
        })),
    )
        .into_response()
}

struct Shared<S, D, St> {
    validator: Arc<Validator<S, D, St>>,
    dir: AttestationDir,
    /// Claims checked at once; the rest wait their turn.
    claims: tokio::sync::Semaphore,
}

/// Builds the router over `validator` and its publication directory.
pub fn router<S, D, St>(validator: Arc<Validator<S, D, St>>, dir: AttestationDir) -> axum::Router
where
    S: MessageSource + 'static,
    D: Destination + 'static,
    St: ValidatorStore + 'static,
{
    let shared = Arc::new(Shared {
        validator,
        dir,
        claims: tokio::sync::Semaphore::new(4),
    });
    axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/announcement", get(announcement::<S, D, St>))
        .route("/v1/attestations/latest", get(latest::<S, D, St>))
        .route("/v1/attestations/{index}", get(attestation::<S, D, St>))
        .route(
            "/v1/observations",
            post(observe::<S, D, St>).layer(DefaultBodyLimit::max(16 * 1024)),
        )
        .route("/metrics", get(metrics::<S, D, St>))
        .with_state(shared)
}

/// Serves [`router`] on `listener` in the background; returns the bound address.
pub fn serve<S, D, St>(
    listener: tokio::net::TcpListener,
    validator: Arc<Validator<S, D, St>>,
    dir: AttestationDir,
) -> std::io::Result<SocketAddr>
where
    S: MessageSource + 'static,
    D: Destination + 'static,
    St: ValidatorStore + 'static,
{
    let bound = listener.local_addr()?;
    let app = router(validator, dir);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "validator endpoint stopped");
        }
    });
    Ok(bound)
}

type Ctx<S, D, St> = State<Arc<Shared<S, D, St>>>;

fn read<T: serde::Serialize>(
    result: Result<Option<T>, crate::attestation::AttestationError>,
) -> Response {
    match result {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not-found", "not published".into()),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "publication-unreadable",
            e.to_string(),
        ),
    }
}

async fn announcement<S, D, St>(State(s): Ctx<S, D, St>) -> Response {
    read(s.dir.announcement())
}

async fn latest<S, D, St>(State(s): Ctx<S, D, St>) -> Response {
    read(s.dir.latest().map(|l| l.map(latest_body)))
}

async fn attestation<S, D, St>(State(s): Ctx<S, D, St>, Path(index): Path<u64>) -> Response {
    read(s.dir.attestation(index))
}

async fn metrics<S, D, St>(State(s): Ctx<S, D, St>) -> Response
where
    S: MessageSource,
    D: Destination,
    St: ValidatorStore,
{
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        s.validator.metrics().render(s.validator.address()),
    )
        .into_response()
}

async fn observe<S, D, St>(
    State(s): Ctx<S, D, St>,
    body: Result<Json<Claim>, axum::extract::rejection::JsonRejection>,
) -> Response
where
    S: MessageSource,
    D: Destination,
    St: ValidatorStore,
{
    let Json(claim) = match body {
        Ok(b) => b,
        Err(e) => {
            s.validator.metrics().refused("malformed");
            return problem(StatusCode::BAD_REQUEST, "malformed-claim", e.body_text());
        }
    };
    let message = Message::from(&claim.message);
    let Ok(_permit) = s.claims.acquire().await else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the validator is stopping".into(),
        );
    };
    match s.validator.observe_claim(&claim.origin_tx, &message).await {
        Ok(Ok(id)) => (
            StatusCode::ACCEPTED,
            Json(json!({ "id": id, "observed": true })),
        )
            .into_response(),
        Ok(Err(refusal)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            Json(json!({
                "type": "https://advancia.dev/problems/claim-refused",
                "title": "claim refused",
                "status": 422,
                "reason": refusal.reason(),
                "detail": refusal.to_string(),
            })),
        )
            .into_response(),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "origin-unavailable",
            e.to_string(),
        ),
    }
}
