//! The worker that makes chain state follow KYC decisions: it claims jobs from
//! `kyc.attestation_jobs` (written with each approval, revocation and expiry of an
//! approval), signs `write_attestation` / `renew_attestation` / `revoke_attestation` with
//! the compliance authority's key, sends over JSON-RPC, waits for confirmation and records
//! the signature.
//!
//! Exactly once per decision: one job per decision event (unique), claimed under a lease
//! (`FOR UPDATE SKIP LOCKED`, fenced by a claim id), and before every send the worker
//! reads the attestation account: if it already says what the job wants (a previous
//! attempt landed but its outcome was not recorded), the job is done without sending.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use advancia_chains::{ChainError, SolanaChain};
use advancia_pay::client as pay;
use anchor_lang::prelude::Pubkey;
use base64::Engine;
use rand::Rng;
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::Transaction;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("compliance authority key: {0}")]
    Key(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("job {0}: {1}")]
    Job(i64, String),
}

/// The compliance authority's keypair (an operator key). Never printed.
pub struct ComplianceKey(Keypair);

impl std::fmt::Debug for ComplianceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ComplianceKey({})", self.0.pubkey())
    }
}

impl ComplianceKey {
    pub fn new(keypair: Keypair) -> ComplianceKey {
        ComplianceKey(keypair)
    }

    /// A Solana CLI keypair file (JSON array of 64 bytes).
    pub fn from_file(path: &Path) -> Result<ComplianceKey, AttestationError> {
        solana_keypair::read_keypair_file(path)
            .map(ComplianceKey)
            // The error text could quote file contents: report only the path.
            .map_err(|_| {
                AttestationError::Key(format!("cannot read a keypair from {}", path.display()))
            })
    }

    /// The same JSON array given directly (e.g. from a secret-mounted env variable).
    pub fn from_json(json: &str) -> Result<ComplianceKey, AttestationError> {
        let bytes: Vec<u8> = serde_json::from_str(json)
            .map_err(|_| AttestationError::Key("not a JSON array of bytes".into()))?;
        Keypair::try_from(bytes.as_slice())
            .map(ComplianceKey)
            .map_err(|_| AttestationError::Key("not a 64-byte keypair".into()))
    }

    pub fn pubkey(&self) -> Pubkey {
        self.0.pubkey()
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub lease: Duration,
    pub max_attempts: i32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How long to wait for a sent transaction to be confirmed.
    pub confirm_timeout: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            max_attempts: 10,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(600),
            confirm_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
pub struct AttestationWorker {
    pool: PgPool,
    chain: SolanaChain,
    key: Arc<ComplianceKey>,
    config: WorkerConfig,
}

#[derive(Debug, sqlx::FromRow)]
struct Job {
    id: i64,
    wallet: String,
    action: String,
    level: Option<i16>,
    expires_at: Option<i64>,
    attempts: i32,
    signature: Option<String>,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Idle,
    /// The job is done; the signature is `None` when chain state already matched.
    Done {
        job: i64,
        signature: Option<String>,
    },
    /// Failed this time; retried later (or dead if `gave_up`).
    Retry {
        job: i64,
        error: String,
        gave_up: bool,
    },
}

impl AttestationWorker {
    pub fn new(
        pool: PgPool,
        chain: SolanaChain,
        key: Arc<ComplianceKey>,
        config: WorkerConfig,
    ) -> AttestationWorker {
        AttestationWorker {
            pool,
            chain,
            key,
            config,
        }
    }

    /// Claims one due job and runs it.
    pub async fn step(&self) -> Result<StepOutcome, AttestationError> {
        let claim = Uuid::new_v4();
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let job: Option<Job> = sqlx::query_as(
            "UPDATE kyc.attestation_jobs SET claim = $1, attempts = attempts + 1,
                    locked_until = now() + make_interval(secs => $2::double precision / 1000)
              WHERE id = (SELECT id FROM kyc.attestation_jobs
                           WHERE state = 'pending' AND next_attempt_at <= now()
                             AND (locked_until IS NULL OR locked_until < now())
                           ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
              RETURNING id, wallet, action, level, expires_at, attempts, signature",
        )
        .bind(claim)
        .bind(lease_ms)
        .fetch_optional(&self.pool)
        .await?;
        let Some(job) = job else {
            return Ok(StepOutcome::Idle);
        };
        match self.run(&job, claim).await {
            Ok(signature) => {
                sqlx::query(
                    "UPDATE kyc.attestation_jobs SET state = 'done', done_at = now(), claim = NULL,
                            locked_until = NULL, last_error = NULL,
                            signature = COALESCE($3, signature)
                      WHERE id = $1 AND claim = $2",
                )
                .bind(job.id)
                .bind(claim)
                .bind(&signature)
                .execute(&self.pool)
                .await?;
                tracing::info!(job = job.id, action = %job.action, ?signature, "attestation job done");
                Ok(StepOutcome::Done {
                    job: job.id,
                    signature,
                })
            }
            Err(e) => {
                let error = e.to_string();
                let gave_up = job.attempts >= self.config.max_attempts;
                let delay = self.backoff(job.attempts);
                sqlx::query(
                    "UPDATE kyc.attestation_jobs SET claim = NULL, locked_until = NULL,
                            last_error = $3, state = CASE WHEN $4 THEN 'failed' ELSE 'pending' END,
                            next_attempt_at = now() + make_interval(secs => $5::double precision / 1000)
                      WHERE id = $1 AND claim = $2",
                )
                .bind(job.id)
                .bind(claim)
                .bind(&error)
                .bind(gave_up)
                .bind(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await?;
                tracing::warn!(job = job.id, attempts = job.attempts, gave_up, error = %error, "attestation job failed");
                Ok(StepOutcome::Retry {
                    job: job.id,
                    error,
                    gave_up,
                })
            }
        }
    }

    /// Exponential backoff with equal jitter.
    fn backoff(&self, attempts: i32) -> Duration {
        let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
        let full = self
            .config
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.config.max_backoff);
        let half = full / 2;
        half + Duration::from_millis(
            rand::thread_rng().gen_range(0..=u64::try_from(half.as_millis()).unwrap_or(0)),
        )
    }

    /// Runs until `stop` resolves, idling `idle` between empty polls.
    pub async fn run_until(&self, idle: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let pause = match self.step().await {
                Ok(StepOutcome::Idle) => idle,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, "attestation worker step failed");
                    idle
                }
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Does the job's chain work; returns the signature of a transaction it confirmed.
    async fn run(&self, job: &Job, claim: Uuid) -> Result<Option<String>, AttestationError> {
        let wallet: Pubkey = job
            .wallet
            .parse()
            .map_err(|_| AttestationError::Job(job.id, "stored wallet is not a pubkey".into()))?;
        // A previous attempt's transaction that landed: nothing more to send.
        if let Some(sig) = &job.signature
            && let Some(st) = self.chain.status(sig).await?
            && st.error.is_none()
            && st.confirmation_status != "processed"
        {
            return Ok(Some(sig.clone()));
        }
        let current = self.chain.attestation(&wallet).await?;
        let authority = self.key.0.pubkey();
        let ix = match job.action.as_str() {
            "write" => {
                let level = job
                    .level
                    .and_then(|l| u8::try_from(l).ok())
                    .filter(|l| *l >= 1)
                    .ok_or_else(|| AttestationError::Job(job.id, "no valid level".into()))?;
                let expires_at = job
                    .expires_at
                    .ok_or_else(|| AttestationError::Job(job.id, "no expiry".into()))?;
                match current {
                    Some(a) if !a.revoked && a.level == level && a.expires_at == expires_at => {
                        return Ok(None);
                    }
                    Some(_) => pay::renew_attestation(authority, wallet, level, expires_at),
                    None => pay::write_attestation(authority, wallet, level, expires_at),
                }
            }
            "revoke" => match current {
                None => return Ok(None),
                Some(a) if a.revoked => return Ok(None),
                Some(_) => pay::revoke_attestation(authority, wallet),
            },
            other => {
                return Err(AttestationError::Job(
                    job.id,
                    format!("unknown action {other}"),
                ));
            }
        };
        let (blockhash, _) = self.chain.latest_blockhash().await?;
        let tx =
            Transaction::new_signed_with_payer(&[ix], Some(&authority), &[&self.key.0], blockhash);
        let signature = tx.signatures[0].to_string();
        // Recorded before sending: after a crash the next attempt checks this signature first.
        let owned = sqlx::query(
            "UPDATE kyc.attestation_jobs SET signature = $3 WHERE id = $1 AND claim = $2",
        )
        .bind(job.id)
        .bind(claim)
        .bind(&signature)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if owned == 0 {
            return Err(AttestationError::Job(job.id, "lease lost".into()));
        }
        let bytes = bincode::serialize(&tx)
            .map_err(|e| AttestationError::Job(job.id, format!("serialize: {e}")))?;
        self.chain
            .send(&base64::engine::general_purpose::STANDARD.encode(bytes))
            .await?;
        let deadline = tokio::time::Instant::now() + self.config.confirm_timeout;
        loop {
            if let Some(st) = self.chain.status(&signature).await? {
                if let Some(err) = st.error {
                    return Err(AttestationError::Job(
                        job.id,
                        format!("transaction failed: {err}"),
                    ));
                }
                if st.confirmation_status != "processed" {
                    return Ok(Some(signature));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AttestationError::Job(
                    job.id,
                    "not confirmed in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
