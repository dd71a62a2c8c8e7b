//! `/api/v1/kyc/*` and `/api/v1/compliance/*` (seed section 8): document upload (streamed
//! multipart), verification submission, status, the officers' review queue and decisions,
//! risk, sanctions screening and compliance reports.
//!
//! RBAC: users upload, submit and read their own status; compliance officers and admins
//! review, decide, screen, assess risk and pull reports. Partners screen with an API key
//! holding the `compliance:screen` scope.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use advancia_auth::Role;
use advancia_kyc::attestation::{AttestationWorker, ComplianceKey, WorkerConfig};
use advancia_kyc::documents::{LocalDirStore, ObjectStore};
use advancia_kyc::provider::LocalProvider;
use advancia_kyc::s3::{S3Config, S3ConfigError, S3Store};
use advancia_kyc::sanctions::SanctionsList;
use advancia_kyc::{
    ApproveRequest, DocumentKind, KycConfig, KycService, State as KycState, SubmitRequest,
};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::AppState;
use crate::body::JsonObject;
use crate::principal::Principal;
use crate::problem::{Problem, Result};

const OFFICERS: &[Role] = &[Role::Admin, Role::ComplianceOfficer];
const SCREEN_SCOPE: &str = "compliance:screen";

/// Where the KYC service keeps documents and which sanctions list it screens against.
#[derive(Clone)]
pub struct KycSettings {
    /// Root of the local store; with `s3` set, only its `.staging` directory is used.
    pub document_dir: PathBuf,
    /// The S3-compatible store, when `ADVANCIA_KYC_S3_ENDPOINT` is set (`Debug` redacts
    /// the secret key).
    pub s3: Option<S3Config>,
    pub sanctions: Arc<SanctionsList>,
    pub config: KycConfig,
}

impl std::fmt::Debug for KycSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KycSettings")
            .field("document_dir", &self.document_dir)
            .field("s3", &self.s3)
            .field("sanctions_entries", &self.sanctions.len())
            .field("config", &self.config)
            .finish()
    }
}

impl Default for KycSettings {
    fn default() -> Self {
        Self {
            document_dir: std::env::temp_dir().join("advancia-kyc-documents"),
            s3: None,
            sanctions: Arc::new(SanctionsList::default()),
            config: KycConfig::default(),
        }
    }
}

impl KycSettings {
    /// `ADVANCIA_KYC_DOCUMENT_DIR` (document store root), `ADVANCIA_SANCTIONS_DIR` (a
    /// directory with OFAC's `sdn.csv`, `alt.csv`, `add.csv`), `ADVANCIA_KYC_MAX_DOCUMENT_BYTES`,
    /// and the S3-compatible store: `ADVANCIA_KYC_S3_ENDPOINT` (selects it), `_BUCKET`,
    /// `_REGION`, `_ACCESS_KEY_ID`, `_SECRET_ACCESS_KEY` (all required then), `_PREFIX`.
    pub fn from_env() -> std::result::Result<KycSettings, String> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any variable source (configuration file plus environment).
    pub fn from_vars(
        get: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<KycSettings, String> {
        let mut s = KycSettings::default();
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = var("ADVANCIA_KYC_DOCUMENT_DIR") {
            s.document_dir = PathBuf::from(v);
        }
        if let Some(endpoint) = var("ADVANCIA_KYC_S3_ENDPOINT") {
            s.s3 = Some(s3_from_vars(endpoint, &var)?);
        }
        match var("ADVANCIA_SANCTIONS_DIR") {
            Some(v) => {
                let list = SanctionsList::load_dir(std::path::Path::new(&v))
                    .map_err(|e| format!("ADVANCIA_SANCTIONS_DIR: {e}"))?;
                tracing::info!(
                    entries = list.len(),
                    addresses = list.address_count(),
                    "sanctions list loaded"
                );
                s.sanctions = Arc::new(list);
            }
            None => tracing::warn!(
                "ADVANCIA_SANCTIONS_DIR is not set: sanctions screening runs against an empty list"
            ),
        }
        if let Some(v) = var("ADVANCIA_KYC_MAX_DOCUMENT_BYTES") {
            s.config.document_limits.max_bytes = v.trim().parse().map_err(|_| {
                format!("ADVANCIA_KYC_MAX_DOCUMENT_BYTES: `{v}` is not a whole number")
            })?;
        }
        Ok(s)
    }

    pub fn service(
        &self,
        pool: advancia_db::sqlx::PgPool,
        directory: advancia_kyc::Directory,
    ) -> KycService {
        let local = LocalDirStore::new(&self.document_dir);
        let store: Arc<dyn ObjectStore> = match &self.s3 {
            // Validated in `from_vars`; a failure here means the settings were built by
            // hand, and the local store is the safe fallback (logged).
            Some(config) => match S3Store::new(config.clone(), local.staging_dir()) {
                Ok(s3) => Arc::new(s3),
                Err(e) => {
                    tracing::error!(error = %e, "S3 document store unusable; using the local directory");
                    Arc::new(local)
                }
            },
            None => Arc::new(local),
        };
        KycService::new(
            pool,
            store,
            Arc::new(LocalProvider::default()),
            self.sanctions.clone(),
            directory,
            self.config.clone(),
        )
    }
}

/// The `ADVANCIA_KYC_S3_*` settings; errors name the setting, never echo the secret.
fn s3_from_vars(
    endpoint: String,
    var: &impl Fn(&str) -> Option<String>,
) -> std::result::Result<S3Config, String> {
    let required = |k: &str| {
        var(k).ok_or_else(|| format!("{k}: required when ADVANCIA_KYC_S3_ENDPOINT is set"))
    };
    let config = S3Config {
        endpoint,
        bucket: required("ADVANCIA_KYC_S3_BUCKET")?,
        region: required("ADVANCIA_KYC_S3_REGION")?,
        access_key_id: required("ADVANCIA_KYC_S3_ACCESS_KEY_ID")?,
        secret_access_key: required("ADVANCIA_KYC_S3_SECRET_ACCESS_KEY")?,
        prefix: var("ADVANCIA_KYC_S3_PREFIX").unwrap_or_default(),
    };
    config.validate().map_err(|e| {
        let name = match &e {
            S3ConfigError::Missing("bucket") | S3ConfigError::Bucket(_) => "ADVANCIA_KYC_S3_BUCKET",
            S3ConfigError::Missing("region") => "ADVANCIA_KYC_S3_REGION",
            S3ConfigError::Missing("access key id") => "ADVANCIA_KYC_S3_ACCESS_KEY_ID",
            S3ConfigError::Missing("secret access key") => "ADVANCIA_KYC_S3_SECRET_ACCESS_KEY",
            S3ConfigError::Missing(_) | S3ConfigError::Endpoint => "ADVANCIA_KYC_S3_ENDPOINT",
            S3ConfigError::Prefix => "ADVANCIA_KYC_S3_PREFIX",
        };
        format!("{name}: {e}")
    })?;
    Ok(config)
}

/// The KYC background work of `advancia serve`: the expiry sweep (every minute) and, with the
/// compliance authority's keypair file configured, the attestation worker. Both stop when
/// `shutdown` resolves; each of their steps is one database transaction (or a chain send
/// recorded before and after), so stopping between steps loses nothing.
pub fn spawn_background(
    state: &AppState,
    compliance_keypair: Option<&std::path::Path>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::result::Result<tokio::task::JoinHandle<()>, String> {
    let worker = match compliance_keypair {
        Some(path) => {
            let key = ComplianceKey::from_file(path)
                .map_err(|e| format!("ADVANCIA_COMPLIANCE_KEYPAIR: {e}"))?;
            tracing::info!(authority = %key.pubkey(), "KYC attestation worker started");
            Some(AttestationWorker::new(
                state.kyc.pool().clone(),
                state.chain.clone(),
                Arc::new(key),
                WorkerConfig::default(),
            ))
        }
        None => {
            tracing::warn!(
                "ADVANCIA_COMPLIANCE_KEYPAIR is not set: approvals queue their attestations until a worker runs"
            );
            None
        }
    };
    let kyc = state.kyc.clone();
    Ok(tokio::spawn(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let attestations = worker.map(|w| {
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                w.run_until(Duration::from_secs(2), async move {
                    let _ = stop.changed().await;
                })
                .await;
            })
        });
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = kyc.expire_due(OffsetDateTime::now_utc()).await {
                tracing::warn!(error = %e, "KYC expiry sweep failed");
            }
        }
        let _ = stop_tx.send(true);
        if let Some(a) = attestations {
            let _ = a.await;
        }
    }))
}

fn bad_request(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-input", "Bad Request").with_detail(detail)
}

fn payload_error(e: axum::extract::multipart::MultipartError) -> Problem {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(status, "document-too-large", "Payload Too Large")
            .with_detail("the request body exceeds the upload limit")
    } else {
        bad_request(format!("malformed multipart body: {}", e.body_text()))
    }
}

/// The type of a document by its first bytes: the three kinds we store.
fn sniff(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else {
        None
    }
}

/// The parts of a document upload (documentation of `upload`, which streams them).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The kind of document (default `other`).
    #[schema(inline, required = false)]
    kind: DocumentKindName,
    /// The document: `application/pdf`, `image/png` or `image/jpeg`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A document kind, as `DocumentKind::parse` reads it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum DocumentKindName {
    Passport,
    IdCard,
    DrivingLicence,
    ProofOfAddress,
    Selfie,
    Other,
}

/// Upload an identity document: `multipart/form-data` with an optional text part `kind`
/// (`passport`, `id_card`, `driving_licence`, `proof_of_address`, `selfie`, `other`) and
/// one file part `file` whose content type is `application/pdf`, `image/png` or
/// `image/jpeg`. Streamed to storage while hashing; the SHA-256 is the document's address.
#[utoipa::path(post, path = "/api/v1/kyc/documents/upload", tag = "kyc",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 201, description = "Stored (sha256, size, mime)"), (status = 200, description = "Same content already uploaded"),
        (status = 400, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(st): State<AppState>,
    p: Principal,
    mut form: Multipart,
) -> Result<Response> {
    let claims = p.require_role(&Role::ALL)?;
    let user = claims.sub;
    let mut kind = DocumentKind::Other;
    let mut staged = None;
    while let Some(mut field) = form.next_field().await.map_err(payload_error)? {
        match field.name() {
            Some("kind") => {
                let text = field.text().await.map_err(payload_error)?;
                kind = DocumentKind::parse(text.trim())
                    .ok_or_else(|| bad_request("unknown document kind"))?;
            }
            Some("file") if staged.is_none() => {
                let declared = field.content_type().map(str::to_owned);
                let first = field.chunk().await.map_err(payload_error)?;
                // A part without a Content-Type (the schema says only "binary") is typed by
                // its first bytes; the ingest checks declared types against them anyway.
                let content_type = match declared {
                    Some(t) => t,
                    None => sniff(first.as_deref().unwrap_or_default())
                        .ok_or_else(|| Problem::refused("the file is not a PDF, PNG or JPEG"))?
                        .to_owned(),
                };
                let mut ingest = st.kyc.begin_upload(&content_type).await?;
                if let Some(chunk) = first {
                    ingest.write(&chunk).await?;
                }
                while let Some(chunk) = field.chunk().await.map_err(payload_error)? {
                    ingest.write(&chunk).await?;
                }
                staged = Some(ingest.finish().await?);
            }
            Some("file") => return Err(bad_request("one `file` part only")),
            // Unknown parts are drained and ignored.
            _ => while field.chunk().await.map_err(payload_error)?.is_some() {},
        }
    }
    // The whole form is read (a `kind` after the file counts, and is checked) before the
    // document is recorded.
    let staged = staged.ok_or_else(|| bad_request("no `file` part"))?;
    let doc = st.kyc.complete_upload(user, kind, staged).await?;
    let status = if doc.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(doc)).into_response())
}

/// Submit an identity verification (the caller's own). The local provider's checks run at
/// once: a submission that fails them is rejected immediately, otherwise it waits in review.
#[utoipa::path(post, path = "/api/v1/kyc/verify", tag = "kyc",
    request_body(content = Object, description = "full_name, birth_date (YYYY-MM-DD), country, document_type, document_number, document_expiry?, mrz?, documents [sha256], wallet"),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 201, description = "Submitted; the caller's status"), (status = 400, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn verify(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(req): JsonObject<SubmitRequest>,
) -> Result<Response> {
    let user = p.require_role(&Role::ALL)?.sub;
    st.kyc.submit(user, req).await?;
    Ok((StatusCode::CREATED, Json(st.kyc.status(user).await?)).into_response())
}

/// A user's KYC status and history: the user themself, or compliance officers.
#[utoipa::path(get, path = "/api/v1/kyc/{userId}/status", tag = "kyc", operation_id = "kyc_status",
    params(("userId" = Uuid, Path)),
    responses((status = 200, description = "State, level, expiry, attestation"), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn status(
    State(st): State<AppState>,
    p: Principal,
    Path(user): Path<Uuid>,
) -> Result<impl IntoResponse> {
    p.require_self_or(user, OFFICERS)?;
    Ok(Json(st.kyc.status(user).await?))
}

/// A user's risk score with each factor and its points (compliance officers).
#[utoipa::path(get, path = "/api/v1/kyc/{userId}/risk", tag = "kyc",
    params(("userId" = Uuid, Path)),
    responses((status = 200, description = "Score, rating, factors"), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn risk(
    State(st): State<AppState>,
    p: Principal,
    Path(user): Path<Uuid>,
) -> Result<impl IntoResponse> {
    p.require_role(OFFICERS)?;
    Ok(Json(st.kyc.assess_risk(user).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueParams {
    /// Default `in_review`.
    #[param(inline, value_type = Option<KycStateName>)]
    state: Option<String>,
    /// At most this many (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<crate::pagination::Limit>,
}

/// The review queue: verifications in a state, oldest first (compliance officers).
#[utoipa::path(get, path = "/api/v1/kyc/verifications", tag = "kyc", params(QueueParams),
    responses((status = 200, description = "Verifications with checks and sanctions matches"), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn queue(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<QueueParams>,
) -> Result<impl IntoResponse> {
    p.require_role(OFFICERS)?;
    let state = match q.state.as_deref() {
        None => KycState::InReview,
        Some(s) => KycState::parse(s).ok_or_else(|| bad_request("unknown state"))?,
    };
    Ok(Json(
        st.kyc
            .list(state, crate::pagination::Limit::or_default(q.limit))
            .await?,
    ))
}

/// One verification in full (compliance officers).
#[utoipa::path(get, path = "/api/v1/kyc/verifications/{id}", tag = "kyc",
    params(("id" = Uuid, Path)),
    responses((status = 403, description = "The caller's roles or scopes do not allow this", body = Problem), (status = 200, description = "Verification"), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_verification(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    p.require_role(OFFICERS)?;
    Ok(Json(st.kyc.get(id).await?))
}

#[derive(Debug, Deserialize)]
pub struct ApproveBody {
    level: Option<u8>,
    #[serde(default)]
    acknowledge_sanctions: bool,
}

/// Approve a verification in review; queues the on-chain attestation for its wallet.
#[utoipa::path(post, path = "/api/v1/kyc/verifications/{id}/approve", tag = "kyc",
    params(("id" = Uuid, Path)),
    request_body(content = Object, description = "level? (1-255), acknowledge_sanctions?"),
    responses((status = 200, description = "Approved"), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn approve(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    JsonObject(b): JsonObject<ApproveBody>,
) -> Result<impl IntoResponse> {
    let officer = p.require_role(OFFICERS)?.sub;
    let req = ApproveRequest {
        level: b.level,
        acknowledge_sanctions: b.acknowledge_sanctions,
    };
    Ok(Json(st.kyc.approve(id, officer, &req).await?))
}

#[derive(Debug, Deserialize)]
pub struct ReasonBody {
    reason: String,
}

/// Reject a verification that is submitted or in review.
#[utoipa::path(post, path = "/api/v1/kyc/verifications/{id}/reject", tag = "kyc",
    params(("id" = Uuid, Path)), request_body(content = Object, description = "reason"),
    responses((status = 200, description = "Rejected"), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn reject(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    JsonObject(b): JsonObject<ReasonBody>,
) -> Result<impl IntoResponse> {
    let officer = p.require_role(OFFICERS)?.sub;
    Ok(Json(st.kyc.reject(id, officer, &b.reason).await?))
}

/// Revoke an approval; queues the on-chain revocation.
#[utoipa::path(post, path = "/api/v1/kyc/verifications/{id}/revoke", tag = "kyc",
    params(("id" = Uuid, Path)), request_body(content = Object, description = "reason"),
    responses((status = 200, description = "Revoked"), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    JsonObject(b): JsonObject<ReasonBody>,
) -> Result<impl IntoResponse> {
    let officer = p.require_role(OFFICERS)?.sub;
    Ok(Json(st.kyc.revoke(id, officer, &b.reason).await?))
}

/// Requeue the verification's failed attestation jobs (after fixing the cause, e.g. an
/// unfunded compliance authority).
#[utoipa::path(post, path = "/api/v1/kyc/verifications/{id}/attestation/retry", tag = "kyc",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "requeued: number of jobs"), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn retry_attestation(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    p.require_role(OFFICERS)?;
    let requeued = st.kyc.retry_attestation(id).await?;
    Ok(Json(serde_json::json!({ "requeued": requeued })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ScreenBody {
    /// A person's or an organisation's name.
    #[schema(max_length = 200)]
    name: Option<String>,
    /// A wallet address.
    #[schema(max_length = 128)]
    address: Option<String>,
}

/// Screen a name (fuzzy, transliterated, aliases included) and/or a wallet address
/// against the loaded sanctions list; returns scored matches.
#[utoipa::path(post, path = "/api/v1/compliance/sanctions-check", tag = "compliance",
    request_body = ScreenBody,
    responses((status = 200, description = "name_matches, address_matches, best_score"), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "Neither a name nor an address (blank ones do not count)", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn sanctions_check(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<ScreenBody>,
) -> Result<impl IntoResponse> {
    p.require_scope_or_role(SCREEN_SCOPE, OFFICERS)?;
    // Each is optional in the schema; that one of them must say something is not.
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    if blank(&b.name) && blank(&b.address) {
        return Err(Problem::refused("give a name, an address or both"));
    }
    let by = p.claims().map(|c| c.sub);
    Ok(Json(
        st.kyc
            .screen(by, b.name.as_deref(), b.address.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// RFC 3339 start (inclusive).
    #[param(format = DateTime)]
    from: String,
    /// RFC 3339 end (exclusive): after `from`, at most 366 days later (else 422).
    #[param(format = DateTime)]
    to: String,
    /// `json` (default) or `csv`.
    #[param(inline, value_type = Option<ReportFormatName>)]
    format: Option<String>,
}

/// A verification state, as `State::parse` reads it (documentation; a test keeps them equal).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum KycStateName {
    Submitted,
    InReview,
    Approved,
    Rejected,
    Expired,
    Revoked,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum ReportFormatName {
    Json,
    Csv,
}

/// Compliance report for a period: counts and one row per decision, as JSON or CSV.
#[utoipa::path(get, path = "/api/v1/compliance/reports", tag = "compliance", params(ReportParams),
    responses((status = 200, description = "Report (application/json or text/csv)"), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "`to` not after `from`, or more than 366 days", body = Problem)),
    security(("bearer" = [])))]
pub async fn reports(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ReportParams>,
) -> Result<Response> {
    p.require_role(OFFICERS)?;
    let parse = |what: &str, v: &str| {
        OffsetDateTime::parse(v, &Rfc3339)
            .map_err(|_| bad_request(format!("`{what}` is not an RFC 3339 timestamp")))
    };
    let (from, to) = (parse("from", &q.from)?, parse("to", &q.to)?);
    if to <= from {
        return Err(Problem::refused("`to` must be after `from`"));
    }
    if to - from > time::Duration::days(366) {
        return Err(Problem::refused("a report covers at most 366 days"));
    }
    let report = st.kyc.report(from, to).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(report).into_response()),
        "csv" => {
            let name = format!(
                "attachment; filename=\"compliance-{}-{}.csv\"",
                from.unix_timestamp(),
                to.unix_timestamp()
            );
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, name),
                ],
                report.to_csv(),
            )
                .into_response())
        }
        _ => Err(bad_request("format is `json` or `csv`")),
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/kyc/documents/upload",
            // The upload streams with its own limit (ingest) under the gateway's body limit.
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/kyc/verify", post(verify))
        .route("/api/v1/kyc/verifications", get(queue))
        .route("/api/v1/kyc/verifications/{id}", get(get_verification))
        .route("/api/v1/kyc/verifications/{id}/approve", post(approve))
        .route("/api/v1/kyc/verifications/{id}/reject", post(reject))
        .route("/api/v1/kyc/verifications/{id}/revoke", post(revoke))
        .route(
            "/api/v1/kyc/verifications/{id}/attestation/retry",
            post(retry_attestation),
        )
        .route("/api/v1/kyc/{user_id}/status", get(status))
        .route("/api/v1/kyc/{user_id}/risk", get(risk))
        .route("/api/v1/compliance/sanctions-check", post(sanctions_check))
        .route("/api/v1/compliance/reports", get(reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<T: utoipa::PartialSchema>() -> Vec<String> {
        let v = serde_json::to_value(T::schema()).unwrap_or_default();
        v["enum"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn documented_states_are_the_workflow_s() {
        use advancia_kyc::model::State as S;
        let all = [
            S::Submitted,
            S::InReview,
            S::Approved,
            S::Rejected,
            S::Expired,
            S::Revoked,
        ];
        // A new state fails to compile here until it is documented.
        for s in all {
            match s {
                S::Submitted
                | S::InReview
                | S::Approved
                | S::Rejected
                | S::Expired
                | S::Revoked => {}
            }
        }
        let documented = names::<KycStateName>();
        assert_eq!(
            documented,
            all.iter()
                .map(|s| s.as_str().to_owned())
                .collect::<Vec<_>>()
        );
        assert!(documented.iter().all(|n| S::parse(n).is_some()));
        assert_eq!(names::<ReportFormatName>(), ["json", "csv"]);
    }
}
