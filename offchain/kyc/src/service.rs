//! The KYC service over Postgres (schema `kyc`): documents, the verification workflow,
//! sanctions screenings. Every state change writes its history row, and every decision its
//! `decision_events` row (and, when chain state must follow, its attestation job) in the
//! same transaction.

use std::sync::Arc;

use anchor_lang::prelude::Pubkey;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use time::{Date, Duration, OffsetDateTime, Time};
use uuid::Uuid;

use crate::KycError;
use crate::directory::{Directory, KycDirectory};
use crate::documents::{DocumentLimits, Ingest, ObjectStore, Staged};
use crate::model::*;
use crate::provider::{ProviderInput, VerificationProvider};
use crate::sanctions::{ListedAddress, NameMatch, SanctionsList};

#[derive(Debug, Clone)]
pub struct KycConfig {
    /// How long an approval is valid (capped by the document's expiry).
    pub approval_validity: Duration,
    /// Verifications nobody decided expire after this.
    pub open_validity: Duration,
    /// Name matches at or above this similarity are reported.
    pub sanctions_threshold: f64,
    pub document_limits: DocumentLimits,
}

impl Default for KycConfig {
    fn default() -> Self {
        Self {
            approval_validity: Duration::days(365),
            open_validity: Duration::days(30),
            sanctions_threshold: 0.88,
            document_limits: DocumentLimits::default(),
        }
    }
}

#[derive(Clone)]
pub struct KycService {
    pool: PgPool,
    store: Arc<dyn ObjectStore>,
    provider: Arc<dyn VerificationProvider>,
    sanctions: Arc<SanctionsList>,
    directory: Directory,
    config: KycConfig,
}

#[derive(sqlx::FromRow)]
struct VRow {
    id: Uuid,
    user_id: Uuid,
    state: String,
    full_name: String,
    birth_date: Date,
    country: String,
    document_type: String,
    document_number: String,
    document_expiry: Option<Date>,
    document_hashes: Vec<String>,
    wallet: String,
    provider: String,
    checks: serde_json::Value,
    sanctions: serde_json::Value,
    level: Option<i16>,
    reason: Option<String>,
    reviewer: Option<Uuid>,
    submitted_at: OffsetDateTime,
    decided_at: Option<OffsetDateTime>,
    expires_at: Option<OffsetDateTime>,
}

const V_COLS: &str = "id, user_id, state, full_name, birth_date, country, document_type, \
    document_number, document_expiry, document_hashes, wallet, provider, checks, sanctions, \
    level, reason, reviewer, submitted_at, decided_at, expires_at";

fn level_of(l: Option<i16>) -> Result<Option<u8>, KycError> {
    l.map(|v| u8::try_from(v).map_err(|_| KycError::Corrupt(format!("level {v}"))))
        .transpose()
}

impl VRow {
    fn into_model(self) -> Result<Verification, KycError> {
        Ok(Verification {
            id: self.id,
            user_id: self.user_id,
            state: parse_state(&self.state)?,
            full_name: self.full_name,
            birth_date: self.birth_date,
            country: self.country,
            document_type: self.document_type,
            document_number: self.document_number,
            document_expiry: self.document_expiry,
            documents: self.document_hashes,
            wallet: self.wallet,
            provider: self.provider,
            checks: serde_json::from_value(self.checks)
                .map_err(|e| KycError::Corrupt(format!("checks: {e}")))?,
            sanctions: serde_json::from_value(self.sanctions)
                .map_err(|e| KycError::Corrupt(format!("sanctions: {e}")))?,
            level: level_of(self.level)?,
            reason: self.reason,
            reviewer: self.reviewer,
            submitted_at: self.submitted_at,
            decided_at: self.decided_at,
            expires_at: self.expires_at,
        })
    }
}

fn invalid(msg: impl Into<String>) -> KycError {
    KycError::Invalid(msg.into())
}

/// The trigger's refusal of a move, as a typed error.
fn transition_error(e: sqlx::Error, from: State, to: State) -> KycError {
    match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("kyc_transition") => {
            KycError::IllegalTransition {
                from: from.as_str().into(),
                to: to.as_str().into(),
            }
        }
        _ => KycError::Database(e),
    }
}

/// Result of a sanctions screening.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Screening {
    pub id: Uuid,
    pub name_matches: Vec<NameMatch>,
    pub address_matches: Vec<ListedAddress>,
    /// Best name score, or 1.0 for a listed address; 0 when nothing matched.
    pub best_score: f64,
    pub threshold: f64,
    pub list_entries: usize,
}

impl KycService {
    pub fn new(
        pool: PgPool,
        store: Arc<dyn ObjectStore>,
        provider: Arc<dyn VerificationProvider>,
        sanctions: Arc<SanctionsList>,
        directory: Directory,
        config: KycConfig,
    ) -> KycService {
        KycService {
            pool,
            store,
            provider,
            sanctions,
            directory,
            config,
        }
    }

    /// What KYC asks other services.
    pub fn directory(&self) -> &dyn KycDirectory {
        self.directory.as_ref()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn config(&self) -> &KycConfig {
        &self.config
    }

    pub fn sanctions(&self) -> &SanctionsList {
        &self.sanctions
    }

    pub fn store(&self) -> &dyn ObjectStore {
        self.store.as_ref()
    }

    // ---- documents -----------------------------------------------------------------

    /// Starts a streamed upload declared as `content_type`.
    pub async fn begin_upload(&self, content_type: &str) -> Result<Ingest, KycError> {
        Ok(Ingest::begin(
            &self.store.staging_dir(),
            content_type,
            self.config.document_limits,
        )
        .await?)
    }

    /// Stores a finished upload for `user` (idempotent per user and content).
    pub async fn complete_upload(
        &self,
        user: Uuid,
        kind: DocumentKind,
        staged: Staged,
    ) -> Result<Document, KycError> {
        let (sha256, size, mime) = (staged.sha256.clone(), staged.size, staged.doc_type.mime());
        self.store.put(staged).await?;
        let size = i64::try_from(size).map_err(|_| invalid("document too large"))?;
        let row: (Uuid, String, OffsetDateTime, bool) = sqlx::query_as(
            "INSERT INTO kyc.documents (id, user_id, sha256, mime, size_bytes, kind)
                  VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (user_id, sha256) DO UPDATE SET kind = kyc.documents.kind
             RETURNING id, kind, uploaded_at, (xmax = 0)",
        )
        .bind(Uuid::now_v7())
        .bind(user)
        .bind(&sha256)
        .bind(mime)
        .bind(size)
        .bind(kind.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(Document {
            id: row.0,
            sha256,
            mime: mime.to_owned(),
            size_bytes: size,
            kind: row.1,
            uploaded_at: row.2,
            created: row.3,
        })
    }

    // ---- workflow ------------------------------------------------------------------

    /// Submits a verification: documents and wallet checked, the provider's checks run,
    /// the name screened; then in review, or rejected at once when a check failed.
    pub async fn submit(&self, user: Uuid, req: SubmitRequest) -> Result<Verification, KycError> {
        let name = req
            .full_name
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid("full_name must be 1 to 200 characters"));
        }
        let country = req.country.trim();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "country must be an ISO 3166-1 alpha-2 code (e.g. US)",
            ));
        }
        let number = req.document_number.trim();
        if number.is_empty() || number.len() > 64 {
            return Err(invalid("document_number must be 1 to 64 characters"));
        }
        if req.documents.is_empty() || req.documents.len() > 10 {
            return Err(invalid("attach 1 to 10 uploaded documents (their sha256)"));
        }
        if req.mrz.as_ref().is_some_and(|m| m.len() > 200) {
            return Err(invalid("mrz is too long"));
        }
        let wallet: Pubkey = req
            .wallet
            .trim()
            .parse()
            .map_err(|_| invalid("wallet is not a Solana address"))?;
        let wallet = wallet.to_string();
        let linked = self
            .directory
            .wallet_linked(user, &wallet)
            .await
            .map_err(|e| KycError::Unavailable(format!("wallet directory: {e}")))?;
        if !linked {
            return Err(invalid(
                "wallet is not one of your linked Solana wallets (link it first)",
            ));
        }
        let mut hashes: Vec<String> = req
            .documents
            .iter()
            .map(|h| h.trim().to_lowercase())
            .collect();
        hashes.sort();
        hashes.dedup();
        let kinds: Vec<(String, String)> = sqlx::query_as(
            "SELECT sha256, kind FROM kyc.documents WHERE user_id = $1 AND sha256 = ANY($2)",
        )
        .bind(user)
        .bind(&hashes)
        .fetch_all(&self.pool)
        .await?;
        if kinds.len() != hashes.len() {
            return Err(invalid("a listed document was not uploaded by you"));
        }
        for (sha, _) in &kinds {
            if !self.store.exists(sha).await? {
                return Err(KycError::Corrupt(
                    "a document is missing from the store".into(),
                ));
            }
        }
        let now = OffsetDateTime::now_utc();
        let input = ProviderInput {
            full_name: &name,
            birth_date: req.birth_date,
            document_type: req.document_type,
            document_number: number,
            document_expiry: req.document_expiry,
            mrz: req.mrz.as_deref(),
            document_kinds: kinds.into_iter().map(|(_, k)| k).collect(),
            today: now.date(),
        };
        let mut outcome = self.provider.verify(&input).await;
        // One identity document, one account: a document another account has in review or
        // approved is refused (the usual sign of a shared or stolen identity).
        let reused: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM kyc.verifications
                             WHERE user_id <> $1 AND document_type = $2
                               AND upper(document_number) = upper($3)
                               AND state IN ('in_review', 'approved'))",
        )
        .bind(user)
        .bind(req.document_type.as_str())
        .bind(number)
        .fetch_one(&self.pool)
        .await?;
        outcome.checks.push(Check {
            check: "document_unique".into(),
            passed: !reused,
            detail: "the document is not in use by another account".into(),
        });
        let matches = self
            .sanctions
            .screen_name(&name, self.config.sanctions_threshold);

        let id = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO kyc.verifications (id, user_id, state, full_name, birth_date, country,
                 document_type, document_number, document_expiry, mrz, document_hashes, wallet,
                 provider, checks, sanctions, level)
             VALUES ($1, $2, 'submitted', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(id)
        .bind(user)
        .bind(&name)
        .bind(req.birth_date)
        .bind(country)
        .bind(req.document_type.as_str())
        .bind(number)
        .bind(outcome.document_expiry)
        .bind(req.mrz.as_deref().map(str::trim))
        .bind(&hashes)
        .bind(&wallet)
        .bind(self.provider.name())
        .bind(json!(outcome.checks))
        .bind(json!(matches))
        .bind(i16::from(outcome.suggested_level))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(sqlx::Error::Database(d)) if d.constraint() == Some("verifications_open") => {
                return Err(KycError::AlreadyOpen);
            }
            r => r?,
        };
        history(&mut tx, id, None, State::Submitted, Some(user), None).await?;
        if outcome.passed() {
            move_state(&mut tx, id, State::Submitted, State::InReview, None, None).await?;
        } else {
            let reason = format!("automatic checks failed: {}", outcome.failures());
            sqlx::query(
                "UPDATE kyc.verifications SET state = 'rejected', reason = $2, decided_at = now()
                  WHERE id = $1",
            )
            .bind(id)
            .bind(&reason)
            .execute(&mut *tx)
            .await
            .map_err(|e| transition_error(e, State::Submitted, State::Rejected))?;
            decided(
                &mut tx,
                id,
                State::Submitted,
                State::Rejected,
                None,
                Some(&reason),
            )
            .await?;
        }
        tx.commit().await?;
        self.get(id).await
    }

    pub async fn get(&self, id: Uuid) -> Result<Verification, KycError> {
        sqlx::query_as::<_, VRow>(&format!(
            "SELECT {V_COLS} FROM kyc.verifications WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(KycError::NotFound("verification"))?
        .into_model()
    }

    /// Verifications in `state`, oldest first (the review queue).
    pub async fn list(&self, state: State, limit: u32) -> Result<Vec<Verification>, KycError> {
        sqlx::query_as::<_, VRow>(&format!(
            "SELECT {V_COLS} FROM kyc.verifications WHERE state = $1 ORDER BY submitted_at, id LIMIT $2"
        ))
        .bind(state.as_str())
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(VRow::into_model)
        .collect()
    }

    async fn lock(
        tx: &mut Transaction<'static, Postgres>,
        id: Uuid,
    ) -> Result<Verification, KycError> {
        sqlx::query_as::<_, VRow>(&format!(
            "SELECT {V_COLS} FROM kyc.verifications WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(KycError::NotFound("verification"))?
        .into_model()
    }

    /// Approves a verification in review: the level (default: the provider's suggestion)
    /// and expiry (validity period, capped by the document's expiry) are fixed, the
    /// decision logged and the on-chain attestation queued, all in one transaction.
    pub async fn approve(
        &self,
        id: Uuid,
        reviewer: Uuid,
        req: &ApproveRequest,
    ) -> Result<Verification, KycError> {
        let mut tx = self.pool.begin().await?;
        let v = Self::lock(&mut tx, id).await?;
        ensure(v.state, State::Approved)?;
        if let Some(best) = v.sanctions.first()
            && !req.acknowledge_sanctions
        {
            return Err(KycError::SanctionsHit(best.score));
        }
        let level = req.level.or(v.level).unwrap_or(1);
        if level == 0 {
            return Err(invalid("level must be at least 1"));
        }
        let mut expires = OffsetDateTime::now_utc() + self.config.approval_validity;
        if let Some(doc) = v.document_expiry {
            expires = expires.min(doc.with_time(Time::MIDNIGHT).assume_utc());
        }
        sqlx::query(
            "UPDATE kyc.verifications SET state = 'approved', level = $2, expires_at = $3,
                    reviewer = $4, decided_at = now(), reason = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(i16::from(level))
        .bind(expires)
        .bind(reviewer)
        .execute(&mut *tx)
        .await
        .map_err(|e| transition_error(e, v.state, State::Approved))?;
        decided(&mut tx, id, v.state, State::Approved, Some(reviewer), None).await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Rejects a verification that is submitted or in review.
    pub async fn reject(
        &self,
        id: Uuid,
        reviewer: Uuid,
        reason: &str,
    ) -> Result<Verification, KycError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(invalid("reason must be 1 to 500 characters"));
        }
        self.close(id, State::Rejected, Some(reviewer), reason)
            .await
    }

    /// Revokes an approval (e.g. a later sanctions listing); the attestation is revoked on
    /// chain.
    pub async fn revoke(
        &self,
        id: Uuid,
        actor: Uuid,
        reason: &str,
    ) -> Result<Verification, KycError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(invalid("reason must be 1 to 500 characters"));
        }
        self.close(id, State::Revoked, Some(actor), reason).await
    }

    async fn close(
        &self,
        id: Uuid,
        to: State,
        actor: Option<Uuid>,
        reason: &str,
    ) -> Result<Verification, KycError> {
        let mut tx = self.pool.begin().await?;
        let v = Self::lock(&mut tx, id).await?;
        ensure(v.state, to)?;
        sqlx::query(
            "UPDATE kyc.verifications SET state = $2, reason = $3, reviewer = COALESCE($4, reviewer),
                    decided_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(reason)
        .bind(actor)
        .execute(&mut *tx)
        .await
        .map_err(|e| transition_error(e, v.state, to))?;
        decided(&mut tx, id, v.state, to, actor, Some(reason)).await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Expires approvals past their expiry and open verifications older than the open
    /// validity, as of `now`; returns how many moved.
    pub async fn expire_due(&self, now: OffsetDateTime) -> Result<usize, KycError> {
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM kyc.verifications
              WHERE (state = 'approved' AND expires_at <= $1)
                 OR (state IN ('submitted', 'in_review') AND submitted_at <= $2)
              ORDER BY id",
        )
        .bind(now)
        .bind(now - self.config.open_validity)
        .fetch_all(&self.pool)
        .await?;
        let mut moved = 0;
        for id in due {
            let mut tx = self.pool.begin().await?;
            let v = Self::lock(&mut tx, id).await?;
            // Re-checked under the lock: a reviewer may have decided meanwhile.
            let still_due = match v.state {
                State::Approved => v.expires_at.is_some_and(|e| e <= now),
                State::Submitted | State::InReview => {
                    v.submitted_at <= now - self.config.open_validity
                }
                _ => false,
            };
            if !still_due {
                continue;
            }
            let reason = if v.state == State::Approved {
                "approval expired"
            } else {
                "not decided in time"
            };
            sqlx::query("UPDATE kyc.verifications SET state = 'expired', reason = $2, decided_at = now() WHERE id = $1")
                .bind(id)
                .bind(reason)
                .execute(&mut *tx)
                .await
                .map_err(|e| transition_error(e, v.state, State::Expired))?;
            decided(&mut tx, id, v.state, State::Expired, None, Some(reason)).await?;
            tx.commit().await?;
            moved += 1;
        }
        Ok(moved)
    }

    /// The user's latest verification, its history and the on-chain attestation job.
    pub async fn status(&self, user: Uuid) -> Result<StatusView, KycError> {
        let row = sqlx::query_as::<_, VRow>(&format!(
            "SELECT {V_COLS} FROM kyc.verifications WHERE user_id = $1
              ORDER BY submitted_at DESC, id DESC LIMIT 1"
        ))
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        let Some(v) = row.map(VRow::into_model).transpose()? else {
            return Ok(StatusView {
                user_id: user,
                state: "none".into(),
                verification_id: None,
                level: None,
                reason: None,
                submitted_at: None,
                decided_at: None,
                expires_at: None,
                wallet: None,
                attestation: None,
                history: vec![],
            });
        };
        let history = self.history(v.id).await?;
        let job: Option<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT action, state, signature FROM kyc.attestation_jobs
              WHERE verification_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(v.id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(StatusView {
            user_id: user,
            state: v.state.as_str().into(),
            verification_id: Some(v.id),
            level: if v.state == State::Approved {
                v.level
            } else {
                None
            },
            reason: v.reason,
            submitted_at: Some(v.submitted_at),
            decided_at: v.decided_at,
            expires_at: v.expires_at,
            wallet: Some(v.wallet),
            attestation: job.map(|(action, state, signature)| AttestationView {
                action,
                state,
                signature,
            }),
            history,
        })
    }

    /// Puts a dead attestation job (all attempts failed) back in the queue with a fresh
    /// attempt budget; the worker's chain-state check keeps it from writing twice.
    pub async fn retry_attestation(&self, verification: Uuid) -> Result<u64, KycError> {
        Ok(sqlx::query(
            "UPDATE kyc.attestation_jobs SET state = 'pending', attempts = 0,
                    next_attempt_at = now(), last_error = NULL
              WHERE verification_id = $1 AND state = 'failed'",
        )
        .bind(verification)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    pub async fn history(&self, id: Uuid) -> Result<Vec<HistoryEntry>, KycError> {
        let rows: Vec<(Option<String>, String, Option<String>, OffsetDateTime)> = sqlx::query_as(
            "SELECT from_state, to_state, reason, at FROM kyc.verification_history
              WHERE verification_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(from, to, reason, at)| HistoryEntry {
                from,
                to,
                reason,
                at,
            })
            .collect())
    }

    // ---- sanctions -----------------------------------------------------------------

    /// Screens a name and/or a wallet address; every screening is recorded (as a hash of
    /// the query, not the query) for the compliance reports.
    pub async fn screen(
        &self,
        requested_by: Option<Uuid>,
        name: Option<&str>,
        address: Option<&str>,
    ) -> Result<Screening, KycError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let address = address.map(str::trim).filter(|a| !a.is_empty());
        if name.is_none() && address.is_none() {
            return Err(invalid("give a name, an address or both"));
        }
        if name.is_some_and(|n| n.chars().count() > 200) || address.is_some_and(|a| a.len() > 128) {
            return Err(invalid("name or address too long"));
        }
        let threshold = self.config.sanctions_threshold;
        let name_matches = name
            .map(|n| self.sanctions.screen_name(n, threshold))
            .unwrap_or_default();
        let address_matches = address
            .map(|a| self.sanctions.screen_address(a))
            .unwrap_or_default();
        let best_score = if address_matches.is_empty() {
            name_matches.first().map_or(0.0, |m| m.score)
        } else {
            1.0
        };
        let id = Uuid::now_v7();
        let subject = if name.is_some() { "name" } else { "address" };
        let query = format!("{}\u{1f}{}", name.unwrap_or(""), address.unwrap_or(""));
        sqlx::query(
            "INSERT INTO kyc.screenings (id, requested_by, subject, query_sha256, best_score, matches)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(requested_by)
        .bind(subject)
        .bind(hex::encode(Sha256::digest(query.as_bytes())))
        .bind(best_score)
        .bind(json!({"names": name_matches, "addresses": address_matches}))
        .execute(&self.pool)
        .await?;
        Ok(Screening {
            id,
            name_matches,
            address_matches,
            best_score,
            threshold,
            list_entries: self.sanctions.len(),
        })
    }
}

fn ensure(from: State, to: State) -> Result<(), KycError> {
    if from.can_move_to(to) {
        Ok(())
    } else {
        Err(KycError::IllegalTransition {
            from: from.as_str().into(),
            to: to.as_str().into(),
        })
    }
}

async fn history(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
    from: Option<State>,
    to: State,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> Result<(), KycError> {
    sqlx::query(
        "INSERT INTO kyc.verification_history (verification_id, from_state, to_state, actor, reason)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(from.map(State::as_str))
    .bind(to.as_str())
    .bind(actor)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn move_state(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
    from: State,
    to: State,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> Result<(), KycError> {
    sqlx::query("UPDATE kyc.verifications SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(to.as_str())
        .execute(&mut **tx)
        .await
        .map_err(|e| transition_error(e, from, to))?;
    history(tx, id, Some(from), to, actor, reason).await
}

/// History, decision event and (approval, or the end of an approval) attestation job of
/// a decision already applied to the row.
async fn decided(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
    from: State,
    to: State,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> Result<(), KycError> {
    history(tx, id, Some(from), to, actor, reason).await?;
    type Decided = (
        i64,
        Uuid,
        String,
        Option<i16>,
        Option<OffsetDateTime>,
        OffsetDateTime,
    );
    let (event_id, user, wallet, level, expires_at, at): Decided = sqlx::query_as(
        "WITH v AS (SELECT id, user_id, wallet, level, expires_at FROM kyc.verifications WHERE id = $1),
              e AS (INSERT INTO kyc.decision_events (verification_id, user_id, decision, level, reason, expires_at)
                    SELECT id, user_id, $2, CASE WHEN $2 = 'approved' THEN level END, $3,
                           CASE WHEN $2 = 'approved' THEN expires_at END
                      FROM v
                    RETURNING id, user_id, level, expires_at, at)
         SELECT e.id, e.user_id, v.wallet, e.level, e.expires_at, e.at FROM e, v",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(reason)
    .fetch_one(&mut **tx)
    .await?;
    let action = match (from, to) {
        (_, State::Approved) => Some("write"),
        (State::Approved, State::Revoked | State::Expired) => Some("revoke"),
        _ => None,
    };
    if let Some(action) = action {
        sqlx::query(
            "INSERT INTO kyc.attestation_jobs (decision_event_id, verification_id, wallet, action, level, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event_id)
        .bind(id)
        .bind(wallet)
        .bind(action)
        .bind(level)
        .bind(expires_at.map(OffsetDateTime::unix_timestamp))
        .execute(&mut **tx)
        .await?;
    }
    // Last before the commit: the outbox's lock is held from here on (ADR 0023).
    advancia_outbox::append(
        tx,
        &crate::OUTBOX,
        "kyc.decided",
        &json!({
            "decision_event_id": event_id,
            "verification_id": id,
            "user_id": user,
            "decision": to.as_str(),
            "level": level,
            "reason": reason,
            "expires_at": expires_at.map(OffsetDateTime::unix_timestamp),
            "at": at.unix_timestamp(),
        }),
    )
    .await?;
    Ok(())
}
