//! RFC 9457 problem details: every error the API returns has this shape, and this module
//! is the one place where a service's error becomes one. Each domain error has a single
//! `From<…> for Problem`; handlers return [`Result`] and use `?`.

use std::error::Error as StdError;

use advancia_agents::AgentError;
use advancia_analytics::AnalyticsError;
use advancia_auth::AuthError;
use advancia_chains::ChainError;
use advancia_facilities::FacilityError;
use advancia_indexer::IndexerError;
use advancia_kyc::KycError;
use advancia_kyc::documents::DocumentError;
use advancia_ledger::LedgerError;
use advancia_notifications::NotificationError;
use advancia_payments::PaymentError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Stable `type` URIs are relative references under this base.
pub const TYPE_BASE: &str = "https://advancia.dev/problems/";

/// What every handler returns.
pub type Result<T> = std::result::Result<T, Problem>;

/// An RFC 9457 problem details object (`application/problem+json`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members (RFC 9457 §3.2), e.g. per-item `results` of a batch.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// Seconds for the `Retry-After` header (lockouts); a header, not a member.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// `kind` is the stable slug, e.g. `not-ready`.
    pub fn new(status: StatusCode, kind: &str, title: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{TYPE_BASE}{kind}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            extensions: serde_json::Map::new(),
            retry_after: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_extension(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(name.to_owned(), value);
        self
    }

    /// 400 `invalid-input` with `detail`: input the handler refuses.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-input", "Invalid input").with_detail(detail)
    }

    /// 422 `input-refused` with `detail`: input of the documented form that cannot be
    /// answered as it stands (e.g. `to` not after `from`). 400 stays for what the schema
    /// itself excludes (ADR 0024).
    pub fn refused(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "input-refused",
            "Unprocessable Content",
        )
        .with_detail(detail)
    }

    /// 403 `forbidden`, as the auth service words it.
    pub fn forbidden() -> Self {
        AuthError::Forbidden.into()
    }

    /// 422 `invalid-cursor`: a cursor that is not one of ours. (Any string is a cursor's
    /// form: being ours is not something a schema can say, hence not 400.)
    pub fn invalid_cursor() -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-cursor",
            "Invalid cursor",
        )
        .with_detail("pass back the next_cursor value of a previous page unchanged")
    }

    /// A domain error: the status's reason phrase as title and the error's text as
    /// detail. Server errors are logged and keep their text out of the response: it may
    /// describe internals.
    pub fn from_error(status: StatusCode, kind: &str, e: &(dyn StdError + 'static)) -> Self {
        Self::classified(status, kind, e, !status.is_server_error())
    }

    /// [`Self::from_error`], but a 502 keeps its detail too: it says what the upstream
    /// (chain node) answered, not how we work inside.
    pub fn from_upstream_error(
        status: StatusCode,
        kind: &str,
        e: &(dyn StdError + 'static),
    ) -> Self {
        let public = !status.is_server_error() || status == StatusCode::BAD_GATEWAY;
        Self::classified(status, kind, e, public)
    }

    fn classified(
        status: StatusCode,
        kind: &str,
        e: &(dyn StdError + 'static),
        public: bool,
    ) -> Self {
        if status == StatusCode::INTERNAL_SERVER_ERROR && database_unavailable(e) {
            // Not our bug: the database is down, restarting, read-only or full. Nothing
            // was written (each write is one transaction); the client may retry.
            tracing::warn!(error = %e, "database unavailable");
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "Service Unavailable",
            )
            .with_detail("the database is unavailable; nothing was changed, retry shortly");
            p.retry_after = Some(2);
            return p;
        }
        let p = Problem::new(status, kind, status.canonical_reason().unwrap_or("Error"));
        if public {
            p.with_detail(e.to_string())
        } else {
            tracing::error!(error = %e, kind, status = status.as_u16(), "request failed");
            p
        }
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        let status =
            StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut p = Problem::new(
            status,
            e.kind(),
            status.canonical_reason().unwrap_or("Error"),
        );
        if e.is_internal() {
            tracing::error!(error = %e, "auth internal error");
        } else {
            p = p.with_detail(e.to_string());
        }
        p.retry_after = e.retry_after().map(|d| d.as_secs());
        p
    }
}

/// Whether `e` (or what caused it) is the database being unreachable, restarting,
/// read-only or out of space, rather than a bug.
pub fn database_unavailable(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(sql) = err.downcast_ref::<advancia_db::sqlx::Error>() {
            use advancia_db::sqlx::Error as S;
            return match sql {
                S::Io(_) | S::PoolTimedOut | S::PoolClosed | S::Tls(_) | S::WorkerCrashed => true,
                S::Database(d) => d.code().is_some_and(|c| {
                    // 08: connection exception; 57P01-03: shutdown / cannot connect now;
                    // 25006: read-only transaction; 53: insufficient resources (disk full).
                    c.starts_with("08")
                        || c.starts_with("57P")
                        || c == "25006"
                        || c.starts_with("53")
                }),
                _ => false,
            };
        }
        cur = err.source();
    }
    false
}

fn chain_status(e: &ChainError) -> (StatusCode, &'static str) {
    match e {
        ChainError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid-input"),
        ChainError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "transaction-rejected"),
        ChainError::Unavailable(_) => (StatusCode::BAD_GATEWAY, "chain-unavailable"),
        // The breaker answers for the node: not a gateway error, a "come back later".
        ChainError::CircuitOpen { .. } => (StatusCode::SERVICE_UNAVAILABLE, "chain-unavailable"),
        ChainError::Decode(..) => (StatusCode::UNPROCESSABLE_ENTITY, "unexpected-account"),
        ChainError::Database(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// `Retry-After` of a problem caused by `e`: the breaker's wait while it is open.
fn chain_retry(p: Problem, e: Option<&ChainError>) -> Problem {
    match e {
        Some(ChainError::CircuitOpen { retry_after_secs }) => Problem {
            retry_after: Some(*retry_after_secs),
            ..p
        },
        _ => p,
    }
}

impl From<ChainError> for Problem {
    fn from(e: ChainError) -> Self {
        let (status, kind) = chain_status(&e);
        chain_retry(Problem::from_upstream_error(status, kind, &e), Some(&e))
    }
}

impl From<PaymentError> for Problem {
    fn from(e: PaymentError) -> Self {
        use PaymentError as E;
        let (status, kind) = match &e {
            E::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid-input"),
            E::NotFound => (StatusCode::NOT_FOUND, "not-found"),
            E::FacilityNotFound(_) => (StatusCode::UNPROCESSABLE_ENTITY, "facility-not-found"),
            E::FacilityInactive(_) => (StatusCode::UNPROCESSABLE_ENTITY, "facility-inactive"),
            E::AssetNotAccepted(_) => (StatusCode::UNPROCESSABLE_ENTITY, "asset-not-accepted"),
            E::Paused => (StatusCode::SERVICE_UNAVAILABLE, "program-paused"),
            E::NotDeployed => (StatusCode::SERVICE_UNAVAILABLE, "program-not-deployed"),
            E::KycRequired { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "kyc-required"),
            E::Expired(_) => (StatusCode::GONE, "payment-expired"),
            E::AlreadyPaid => (StatusCode::CONFLICT, "already-paid"),
            E::NotFinalized(_) => (StatusCode::CONFLICT, "not-finalized"),
            E::Mismatch(_) => (StatusCode::UNPROCESSABLE_ENTITY, "payment-mismatch"),
            E::NotAllowed(_) => (StatusCode::FORBIDDEN, "wrong-signer"),
            E::NothingToRefund(_) => (StatusCode::CONFLICT, "nothing-to-refund"),
            // Transparent: the same status, type and text as the chain error alone.
            E::Chain(c) => chain_status(c),
            E::Indexer(_) | E::Ledger(_) | E::Database(_) | E::Corrupt(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let chain = match &e {
            E::Chain(c) => Some(c),
            _ => None,
        };
        chain_retry(Problem::from_upstream_error(status, kind, &e), chain)
    }
}

impl From<AgentError> for Problem {
    fn from(e: AgentError) -> Self {
        use AgentError as E;
        let (status, kind) = match &e {
            E::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid-input"),
            E::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "input-refused"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            E::Disabled(_) => (StatusCode::CONFLICT, "agent-disabled"),
            E::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            E::NotTrainable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not-trainable"),
            E::BudgetExhausted { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "budget-exhausted"),
            E::LlmNotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "llm-not-configured"),
            E::LlmRejected(_) | E::LlmUnavailable(_) => {
                (StatusCode::BAD_GATEWAY, "llm-unavailable")
            }
            E::Timeout(_) | E::WaitTimeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            E::Bus(_) => (StatusCode::SERVICE_UNAVAILABLE, "bus-unavailable"),
            E::Database(_) | E::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        // An LLM endpoint's error text may quote the prompt: kept in the logs.
        Problem::from_error(status, kind, &e)
    }
}

impl From<AnalyticsError> for Problem {
    fn from(e: AnalyticsError) -> Self {
        let (status, kind) = match &e {
            AnalyticsError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid-input"),
            AnalyticsError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "input-refused"),
            AnalyticsError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            AnalyticsError::Corrupt(_)
            | AnalyticsError::Database(_)
            | AnalyticsError::Indexer(_)
            | AnalyticsError::Follow(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Problem::from_error(status, kind, &e)
    }
}

impl From<FacilityError> for Problem {
    fn from(e: FacilityError) -> Self {
        use advancia_chains::ChainError as C;
        let (status, kind) = match &e {
            FacilityError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid-input"),
            FacilityError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            FacilityError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            FacilityError::VersionMismatch { .. } => {
                (StatusCode::PRECONDITION_FAILED, "version-mismatch")
            }
            FacilityError::SlotTaken(_) => (StatusCode::CONFLICT, "slot-taken"),
            FacilityError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            FacilityError::Deactivated(_) => (StatusCode::CONFLICT, "facility-deactivated"),
            FacilityError::Chain(C::Invalid(_)) => (StatusCode::BAD_REQUEST, "invalid-input"),
            // Our own database behind the chain service is not the chain.
            FacilityError::Chain(C::Database(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            FacilityError::Chain(c @ C::CircuitOpen { .. }) => chain_status(c),
            FacilityError::Chain(_) => (StatusCode::BAD_GATEWAY, "chain-unavailable"),
            FacilityError::Database(_) | FacilityError::Corrupt(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let chain = match &e {
            FacilityError::Chain(c) => Some(c),
            _ => None,
        };
        let p = chain_retry(Problem::from_upstream_error(status, kind, &e), chain);
        match e {
            FacilityError::VersionMismatch { current, .. } => p.with_extension(
                "current_etag",
                serde_json::Value::String(format!("\"{current}\"")),
            ),
            _ => p,
        }
    }
}

impl From<advancia_indexer::StoreError> for Problem {
    fn from(e: advancia_indexer::StoreError) -> Self {
        IndexerError::from(e).into()
    }
}

impl From<IndexerError> for Problem {
    fn from(e: IndexerError) -> Self {
        match e {
            IndexerError::BadCursor(_) => Problem::invalid_cursor(),
            IndexerError::Malformed(d) => Problem::invalid(d),
            e => Problem::from_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e),
        }
    }
}

impl From<DocumentError> for Problem {
    fn from(e: DocumentError) -> Self {
        KycError::Document(e).into()
    }
}

impl From<KycError> for Problem {
    fn from(e: KycError) -> Self {
        use advancia_chains::ChainError as C;
        let (status, kind) = match &e {
            KycError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid-input"),
            KycError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            KycError::IllegalTransition { .. } => (StatusCode::CONFLICT, "illegal-transition"),
            KycError::AlreadyOpen => (StatusCode::CONFLICT, "verification-open"),
            KycError::SanctionsHit(_) => (StatusCode::CONFLICT, "sanctions-match"),
            KycError::Document(d) => match d {
                DocumentError::TooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "document-too-large")
                }
                DocumentError::Empty => (StatusCode::BAD_REQUEST, "invalid-input"),
                DocumentError::UnsupportedType(_) => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
                }
                DocumentError::TypeMismatch { .. } => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content-type-mismatch")
                }
                DocumentError::Malicious(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "document-rejected")
                }
                DocumentError::Io(_)
                | DocumentError::StoreRefused { .. }
                | DocumentError::StoreCorrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                DocumentError::StoreUnavailable { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "document-store-unavailable",
                ),
            },
            KycError::Chain(C::Invalid(_)) => (StatusCode::BAD_REQUEST, "invalid-input"),
            KycError::Chain(C::Database(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            KycError::Chain(c @ C::CircuitOpen { .. }) => chain_status(c),
            KycError::Chain(_) => (StatusCode::BAD_GATEWAY, "chain-unavailable"),
            KycError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            KycError::Database(_) | KycError::Corrupt(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        // Error texts name no personal data (see KycError); server errors still show only
        // their kind.
        let chain = match &e {
            KycError::Chain(c) => Some(c),
            _ => None,
        };
        chain_retry(Problem::from_upstream_error(status, kind, &e), chain)
    }
}

impl From<LedgerError> for Problem {
    fn from(e: LedgerError) -> Self {
        let (status, kind) = match &e {
            LedgerError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid-input"),
            LedgerError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            LedgerError::AccountNotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            LedgerError::AccountHasPendingBalance(_) => {
                (StatusCode::CONFLICT, "account-has-pending-balance")
            }
            LedgerError::Transfer(_) => (StatusCode::UNPROCESSABLE_ENTITY, "transfer-rejected"),
            LedgerError::Overflow => (StatusCode::UNPROCESSABLE_ENTITY, "overflow"),
            LedgerError::Database(_)
            | LedgerError::Migration(_)
            | LedgerError::Corrupt(_)
            | LedgerError::WriterGone
            | LedgerError::Merkle(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Problem::from_error(status, kind, &e)
    }
}

impl From<NotificationError> for Problem {
    fn from(e: NotificationError) -> Self {
        use NotificationError as E;
        let (status, kind) = match &e {
            E::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid-input"),
            E::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "input-refused"),
            E::Template(_) => (StatusCode::UNPROCESSABLE_ENTITY, "template-error"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            E::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            E::UrlRefused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "webhook-url-refused"),
            E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            E::Database(_) | E::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Problem::from_error(status, kind, &e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_hide_their_text_and_upstream_errors_keep_it() {
        let p = Problem::from(ChainError::Unavailable("node down".into()));
        assert_eq!(p.status, 502);
        assert_eq!(
            p.detail.as_deref(),
            Some("chain node unavailable: node down")
        );
        let p = Problem::from(AgentError::LlmUnavailable("prompt text".into()));
        assert_eq!(p.status, 502);
        assert!(p.detail.is_none());
        let p = Problem::from(NotificationError::Corrupt("row 7".into()));
        assert_eq!((p.status, p.detail), (500, None));
        assert!(p.type_uri.ends_with("/internal"));
    }

    #[test]
    fn auth_errors_keep_their_headers() {
        let p = Problem::from(AuthError::LockedOut {
            retry_after: std::time::Duration::from_secs(30),
        });
        let resp = p.into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "30");
        let resp = Problem::from(AuthError::InvalidToken).into_response();
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    #[test]
    fn facility_version_mismatch_names_the_current_etag() {
        let p = Problem::from(FacilityError::VersionMismatch {
            expected: 1,
            current: 3,
        });
        assert_eq!(p.status, 412);
        assert_eq!(p.extensions["current_etag"], "\"3\"");
    }
}
