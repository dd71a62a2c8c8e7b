//! The payment service: intents in Postgres (schema `payments`); their status is written by
//! the [`Lifecycle`] worker only, from the indexer's stream (ADR 0023).

use std::time::Duration;

use advancia_chains::{SolanaChain, associated_token_address};
use advancia_indexer_store::{lookup, query};
use advancia_ledger::Ledger;
use advancia_pay::client::{self as pay, EscrowParams, PayParams};
use advancia_pay::state::{Config, Facility, NATIVE_SOL};
use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::lifecycle::Lifecycle;
use crate::model::{
    Confirmation, HistoryFilter, InitiateRequest, LedgerLeg, LedgerRecord, MISMATCH_COLS, Mismatch,
    PAYMENT_COLS, Payment, TransactionResponse, parse_asset, parse_facility_id, parse_wallet,
};
use crate::{PaymentError, history, tx};

#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    /// Shown to wallets as the Solana Pay `label`.
    pub label: String,
    /// Absolute URL of the icon wallets show (Solana Pay `icon`: SVG, PNG or WebP).
    pub icon_url: String,
    /// How long a wallet may take to pay an intent.
    pub intent_ttl: Duration,
    /// Longest escrow hold accepted.
    pub max_escrow: Duration,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            label: "Advancia Pay".into(),
            icon_url: "https://advancia.invalid/icon.svg".into(),
            intent_ttl: Duration::from_secs(15 * 60),
            max_escrow: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

#[derive(Clone)]
pub struct PaymentService {
    pool: PgPool,
    /// The indexer's database (the payments database by default).
    indexer: PgPool,
    chain: SolanaChain,
    ledger: Ledger,
    config: PaymentsConfig,
}

const MAX_MEMO: usize = 500;
const MAX_LABEL: usize = 100;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn random_32() -> [u8; 32] {
    rand::random()
}

impl PaymentService {
    /// `pool`: the payments database; `indexer`: the indexer's (they may be one).
    pub fn new(
        pool: PgPool,
        indexer: PgPool,
        chain: SolanaChain,
        ledger: Ledger,
        config: PaymentsConfig,
    ) -> Self {
        Self {
            pool,
            indexer,
            chain,
            ledger,
            config,
        }
    }

    /// The worker that moves this service's intents as the chain does. Its reads of the
    /// indexer go through a small pool of their own: it holds intents' row locks while it
    /// reads, so it must never wait for a connection that a request blocked on one of those
    /// locks is holding.
    pub fn lifecycle(&self) -> Lifecycle {
        let indexer = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_lazy_with((*self.indexer.connect_options()).clone());
        Lifecycle::new(self.pool.clone(), indexer, self.chain.clone())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn config(&self) -> &PaymentsConfig {
        &self.config
    }

    pub fn chain(&self) -> &SolanaChain {
        &self.chain
    }

    async fn program_config(&self) -> Result<Config, PaymentError> {
        let config = self
            .chain
            .config()
            .await?
            .ok_or(PaymentError::NotDeployed)?;
        if config.paused {
            return Err(PaymentError::Paused);
        }
        Ok(config)
    }

    async fn active_facility(&self, id: &[u8; 32]) -> Result<Facility, PaymentError> {
        let f = self
            .chain
            .facility(id)
            .await?
            .ok_or_else(|| PaymentError::FacilityNotFound(hex::encode(id)))?;
        if !f.active {
            return Err(PaymentError::FacilityInactive(hex::encode(id)));
        }
        Ok(f)
    }

    /// Records a new intent after checking the chain accepts it (program live, facility
    /// active, asset enabled, escrow terms sane).
    pub async fn initiate(
        &self,
        created_by: Uuid,
        req: &InitiateRequest,
    ) -> Result<Payment, PaymentError> {
        let facility_id = parse_facility_id(&req.facility_id)?;
        let mint = parse_asset(&req.asset)?;
        if req.amount.0 == 0 {
            return Err(PaymentError::Invalid(
                "amount must be greater than zero".into(),
            ));
        }
        let memo = req.memo.as_deref().map(str::trim).filter(|m| !m.is_empty());
        if memo.is_some_and(|m| m.chars().count() > MAX_MEMO) {
            return Err(PaymentError::Invalid(format!(
                "memo is longer than {MAX_MEMO} characters"
            )));
        }
        let label = req
            .label
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .unwrap_or(&self.config.label)
            .to_owned();
        if label.chars().count() > MAX_LABEL {
            return Err(PaymentError::Invalid(format!(
                "label is longer than {MAX_LABEL} characters"
            )));
        }
        let escrow = match &req.escrow {
            None => None,
            Some(t) => {
                let arbiter = parse_wallet(&t.arbiter, "escrow arbiter")?;
                let now = now().unix_timestamp();
                let max = now.saturating_add(self.config.max_escrow.as_secs() as i64);
                if t.expires_at <= now + 60 || t.expires_at > max {
                    return Err(PaymentError::Invalid(format!(
                        "escrow expires_at must be between a minute and {} days from now",
                        self.config.max_escrow.as_secs() / 86_400
                    )));
                }
                Some((arbiter, t.expires_at))
            }
        };
        self.program_config().await?;
        self.active_facility(&facility_id).await?;
        match self.chain.asset(&mint).await? {
            Some(a) if a.enabled => {}
            _ => return Err(PaymentError::AssetNotAccepted(asset_name(&mint))),
        }
        let id = Uuid::new_v4();
        let invoice = hex::encode(random_32());
        let reference = Pubkey::new_from_array(random_32()).to_string();
        let expires_at = now() + self.config.intent_ttl;
        let mut tx = self.pool.begin().await?;
        let payment: Payment = sqlx::query_as(&format!(
            "INSERT INTO payments.payments (id, created_by, kind, facility_id, facility, mint,
                 amount, escrow_arbiter, escrow_expires_at, invoice_id, reference, label, memo,
                 status, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8, $9, $10, $11, $12, $13,
                 'pending', $14)
             RETURNING {PAYMENT_COLS}"
        ))
        .bind(id)
        .bind(created_by)
        .bind(if escrow.is_some() {
            "escrow"
        } else {
            "payment"
        })
        .bind(hex::encode(facility_id))
        .bind(pay::facility_pda(&facility_id).to_string())
        .bind(mint.to_string())
        .bind(req.amount.0.to_string())
        .bind(escrow.map(|e| e.0.to_string()))
        .bind(escrow.map(|e| e.1))
        .bind(&invoice)
        .bind(&reference)
        .bind(&label)
        .bind(memo)
        .bind(expires_at)
        .fetch_one(&mut *tx)
        .await?;
        history(&mut tx, id, "pending", &json!({ "event": "initiated" })).await?;
        crate::events::publish(&mut tx, &payment, "payment.initiated", json!({})).await?;
        tx.commit().await?;
        Ok(payment)
    }

    /// The intent, if `id` exists, as the lifecycle worker last wrote it (reading never
    /// changes it).
    pub async fn get(&self, id: Uuid) -> Result<Payment, PaymentError> {
        sqlx::query_as(&format!(
            "SELECT {PAYMENT_COLS} FROM payments.payments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(PaymentError::NotFound)
    }

    /// Builds the unsigned payment (or escrow) transaction for `account`, which pays the fee
    /// and signs. Refuses intents already paid or expired, and payments that the program
    /// would reject for want of a KYC attestation (before the wallet spends a fee on it).
    pub async fn transaction_request(
        &self,
        id: Uuid,
        account: &str,
    ) -> Result<TransactionResponse, PaymentError> {
        let payment = self.get(id).await?;
        match payment.status.as_str() {
            "confirmed" | "finalized" => return Err(PaymentError::AlreadyPaid),
            // Past its deadline it is expired, whether or not the worker has said so yet.
            _ if payment.status == "expired" || now() >= payment.expires_at => {
                return Err(PaymentError::Expired(rfc3339(payment.expires_at)));
            }
            _ => {}
        }
        let payer = parse_wallet(account, "account")?;
        let invoice = payment.invoice_bytes()?;
        let facility_id = payment.facility_id_bytes()?;
        let mint = payment.mint_key()?;
        let amount = payment.amount_u64()?;
        let config = self.program_config().await?;
        let facility = self.active_facility(&facility_id).await?;
        let asset = self
            .chain
            .asset(&mint)
            .await?
            .filter(|a| a.enabled)
            .ok_or_else(|| PaymentError::AssetNotAccepted(asset_name(&mint)))?;
        let with_kyc = amount > asset.kyc_threshold;
        if with_kyc {
            let reason = match self.chain.attestation(&payer).await? {
                None => Some("none on chain"),
                Some(a) if a.revoked => Some("revoked"),
                Some(a) if a.expires_at <= now().unix_timestamp() => Some("expired"),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                // Recorded with an event, so the checkout page tells the patient what to do
                // next while the wallet shows the refusal.
                let mut db = self.pool.begin().await?;
                let detail = json!({
                    "event": "kyc_required",
                    "account": payer.to_string(),
                    "threshold": asset.kyc_threshold.to_string(),
                    "reason": reason,
                });
                history(&mut db, id, &payment.status, &detail).await?;
                crate::events::publish(&mut db, &payment, "payment.kyc_required", detail).await?;
                db.commit().await?;
                return Err(PaymentError::KycRequired {
                    wallet: payer.to_string(),
                    threshold: asset.kyc_threshold,
                    reason,
                });
            }
        }
        let reference = payment.reference_key()?;
        // The account the program keys this wallet's payment by: how the lifecycle worker
        // finds an escrow (its address depends on the payer) and the payment's refunds.
        let account = if payment.is_escrow() {
            pay::escrow_pda(&payer, &invoice)
        } else {
            pay::payment_pda(&payer, &invoice)
        };
        let instructions = if payment.is_escrow() {
            if self.chain.escrow(&payer, &invoice).await?.is_some() {
                return Err(PaymentError::AlreadyPaid);
            }
            let (arbiter, expires_at) = escrow_terms(&payment)?;
            let params = EscrowParams {
                payer,
                facility_id,
                escrow_id: invoice,
                amount,
                expires_at,
                arbiter,
                with_kyc,
            };
            tx::open_escrow(&self.chain, &params, &mint, reference).await?
        } else {
            if self.chain.payment_record(&payer, &invoice).await?.is_some() {
                return Err(PaymentError::AlreadyPaid);
            }
            let inputs = tx::PayInputs {
                params: PayParams {
                    payer,
                    facility_id,
                    invoice_id: invoice,
                    amount,
                    reference,
                    with_kyc,
                },
                mint,
                payout_wallet: facility.payout_wallet,
                treasury: config.treasury,
            };
            tx::pay(&self.chain, &inputs).await?
        };
        let unsigned = self
            .chain
            .unsigned_transaction(&instructions, &payer)
            .await?;
        let mut db = self.pool.begin().await?;
        // The wallet the last request was built for, until the chain names the payer.
        sqlx::query(
            "UPDATE payments.payments SET payer = $2, updated_at = now()
              WHERE id = $1 AND status NOT IN ('confirmed', 'finalized')",
        )
        .bind(id)
        .bind(payer.to_string())
        .execute(&mut *db)
        .await?;
        sqlx::query(
            "INSERT INTO payments.attempts (payment_id, payer, account, source)
             VALUES ($1, $2, $3, 'request')
             ON CONFLICT (payment_id, payer) DO UPDATE SET requested_at = now(), source = 'request'",
        )
        .bind(id)
        .bind(payer.to_string())
        .bind(account.to_string())
        .execute(&mut *db)
        .await?;
        history(
            &mut db,
            id,
            &payment.status,
            &json!({ "event": "transaction_requested", "account": payer.to_string() }),
        )
        .await?;
        db.commit().await?;
        let verb = if payment.is_escrow() { "Hold" } else { "Pay" };
        let shown = self.display_amount(amount, &mint).await?;
        Ok(TransactionResponse {
            transaction: unsigned.transaction,
            message: format!(
                "{verb} {shown} for {} (invoice {}…)",
                payment.label,
                &payment.invoice_id[..8]
            ),
            blockhash: unsigned.blockhash,
            last_valid_block_height: unsigned.last_valid_block_height,
        })
    }

    /// Verifies the finalized on-chain record against the intent (amount, asset, recipient,
    /// reference, invoice; escrow terms) and returns the ledger transfer posted for it.
    pub async fn confirm(&self, id: Uuid, actor: Uuid) -> Result<Confirmation, PaymentError> {
        let p = self.get(id).await?;
        if p.status != "finalized" {
            return Err(PaymentError::NotFinalized(p.status));
        }
        let payer = finalized_payer(&p)?;
        let invoice = p.invoice_bytes()?;
        let amount = p.amount_u64()?;
        let mut mismatches = Vec::new();
        let mut check = |ok: bool, what: &str| {
            if !ok {
                mismatches.push(what.to_owned());
            }
        };
        let verified: Vec<&'static str>;
        let (signature, ix, inner);
        if p.is_escrow() {
            let escrow = pay::escrow_pda(&payer, &invoice).to_string();
            let events = lookup::escrow_events(&self.indexer, &p.chain, &escrow).await?;
            let opened = events
                .iter()
                .find(|e| e.kind == "opened" && e.commitment == "finalized")
                .ok_or_else(|| PaymentError::NotFinalized(p.status.clone()))?;
            check(opened.amount == p.amount, "amount");
            check(opened.mint.as_deref() == Some(p.mint.as_str()), "asset");
            check(
                opened.facility.as_deref() == Some(p.facility.as_str()),
                "facility",
            );
            check(opened.arbiter == p.escrow_arbiter, "arbiter");
            check(opened.expires_at == p.escrow_expires_at, "expiry");
            // The escrow account may be closed after release/refund; when it exists it must agree.
            if let Some(acc) = self.chain.escrow(&payer, &invoice).await? {
                check(acc.amount == amount, "escrow account amount");
                check(
                    acc.facility.to_string() == p.facility,
                    "escrow account facility",
                );
                check(acc.mint.to_string() == p.mint, "escrow account mint");
            }
            verified = vec![
                "amount",
                "asset",
                "facility",
                "arbiter",
                "expiry",
                "escrow account",
            ];
            (signature, ix, inner) = (
                opened.signature.clone(),
                opened.ix_index,
                opened.inner_index,
            );
        } else {
            let row = self
                .indexed_payment(&p)
                .await?
                .filter(|r| r.commitment == "finalized")
                .ok_or_else(|| PaymentError::NotFinalized(p.status.clone()))?;
            check(row.amount == p.amount, "amount");
            check(row.mint == p.mint, "asset");
            check(row.facility == p.facility, "facility");
            check(row.reference == p.reference, "reference");
            check(row.invoice_id == p.invoice_id, "invoice");
            match self.chain.payment_record(&payer, &invoice).await? {
                None => check(false, "payment account (missing)"),
                Some(acc) => {
                    check(acc.amount == amount, "payment account amount");
                    check(acc.mint.to_string() == p.mint, "payment account mint");
                    check(
                        acc.facility.to_string() == p.facility,
                        "payment account facility",
                    );
                    check(
                        acc.reference.to_string() == p.reference,
                        "payment account reference",
                    );
                }
            }
            verified = vec![
                "amount",
                "asset",
                "facility",
                "reference",
                "invoice",
                "payment account",
            ];
            (signature, ix, inner) = (row.signature.clone(), row.ix_index, row.inner_index);
        }
        if !mismatches.is_empty() {
            return Err(PaymentError::Mismatch(mismatches.join(", ")));
        }
        let ledger = self.ledger_record(&p.chain, &signature, ix, inner).await?;
        if let Some(l) = &ledger
            && l.amount != p.amount
        {
            return Err(PaymentError::Mismatch(format!(
                "ledger legs total {} for a payment of {}",
                l.amount, p.amount
            )));
        }
        let mut db = self.pool.begin().await?;
        let payment: Payment = sqlx::query_as(&format!(
            "UPDATE payments.payments SET verified_at = COALESCE(verified_at, now()),
                 updated_at = now() WHERE id = $1 RETURNING {PAYMENT_COLS}"
        ))
        .bind(id)
        .fetch_one(&mut *db)
        .await?;
        if p.verified_at.is_none() {
            let ledger_leg = ledger
                .as_ref()
                .and_then(|l| l.legs.first())
                .map(|l| &l.transfer_id);
            history(
                &mut db,
                id,
                &payment.status,
                &json!({ "event": "verified", "by": actor, "ledger": ledger_leg }),
            )
            .await?;
            crate::events::publish(
                &mut db,
                &payment,
                "payment.verified",
                json!({ "by": actor, "ledger_transfer": ledger_leg }),
            )
            .await?;
        }
        db.commit().await?;
        Ok(Confirmation {
            payment,
            verified,
            ledger,
        })
    }

    /// The indexed payment event that settled this intent (the lifecycle worker recorded
    /// its transaction and position).
    async fn indexed_payment(
        &self,
        p: &Payment,
    ) -> Result<Option<query::PaymentRow>, PaymentError> {
        let (Some(sig), Some(ix), Some(inner)) = (&p.signature, p.ix_index, p.inner_index) else {
            return Ok(None);
        };
        Ok(query::payments_by_reference(&self.indexer, &p.reference)
            .await?
            .into_iter()
            .find(|r| {
                r.chain == p.chain
                    && &r.signature == sig
                    && r.ix_index == ix
                    && r.inner_index == inner
            }))
    }

    /// The linked transfers the ledger's posting rules made for the event at (`signature`,
    /// `ix`, `inner`); `None` until they have run.
    async fn ledger_record(
        &self,
        chain: &str,
        signature: &str,
        ix: i32,
        inner: i32,
    ) -> Result<Option<LedgerRecord>, PaymentError> {
        let legs = advancia_ledger::projection::event_transfers(
            &self.ledger,
            chain,
            signature,
            u32::try_from(ix).unwrap_or_default(),
            u32::try_from(inner).unwrap_or_default(),
        )
        .await?;
        if legs.is_empty() {
            return Ok(None);
        }
        let total = legs.iter().map(|t| t.amount).sum::<u128>();
        Ok(Some(LedgerRecord {
            amount: total.to_string(),
            legs: legs
                .into_iter()
                .map(|t| LedgerLeg {
                    transfer_id: t.id.to_string(),
                    debit_account_id: t.debit_account_id.to_string(),
                    credit_account_id: t.credit_account_id.to_string(),
                    amount: t.amount.to_string(),
                })
                .collect(),
        }))
    }

    /// The on-chain payments recorded against `id` that do not settle it, oldest first.
    pub async fn mismatches(&self, id: Uuid) -> Result<Vec<Mismatch>, PaymentError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {MISMATCH_COLS} FROM payments.mismatches WHERE payment_id = $1
              ORDER BY slot, signature, ix_index, inner_index"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// What a refund returns: the intent's own finalized payment, or a mismatched payment
    /// recorded against it (which its facility refunds like any other).
    async fn refund_target(
        &self,
        p: &Payment,
        mismatch: Option<Uuid>,
    ) -> Result<RefundTarget, PaymentError> {
        let Some(mismatch) = mismatch else {
            if p.status != "finalized" {
                return Err(PaymentError::NotFinalized(p.status.clone()));
            }
            let payer = finalized_payer(p)?;
            let invoice = p.invoice_bytes()?;
            return Ok(RefundTarget {
                escrow: p.is_escrow().then(|| pay::escrow_pda(&payer, &invoice)),
                payer,
                invoice: Some(invoice),
                facility_id: p.facility_id_bytes()?,
                mint: p.mint_key()?,
                mismatch: None,
            });
        };
        let m = self
            .mismatches(p.id)
            .await?
            .into_iter()
            .find(|m| m.id == mismatch)
            .ok_or(PaymentError::NotFound)?;
        if m.commitment != "finalized" {
            return Err(PaymentError::NotFinalized(m.commitment));
        }
        let key = |s: &str, what: &str| {
            s.parse::<Pubkey>()
                .map_err(|_| PaymentError::Corrupt(format!("mismatch {what} {s}")))
        };
        let facility_pda = key(&m.facility, "facility")?;
        let facility = self
            .chain
            .facility_at(&facility_pda)
            .await?
            .ok_or_else(|| PaymentError::FacilityNotFound(m.facility.clone()))?;
        Ok(RefundTarget {
            escrow: (m.kind == "escrow")
                .then(|| key(&m.account, "escrow"))
                .transpose()?,
            payer: key(&m.payer, "payer")?,
            invoice: m.invoice_bytes(),
            facility_id: facility.facility_id,
            mint: key(&m.mint, "mint")?,
            mismatch: Some(m.id),
        })
    }

    /// The unsigned refund for the wallet `account` that must sign it: the facility's
    /// authority for a payment (full or partial, never above what remains), the facility
    /// authority or arbiter for an escrow (the whole remainder; anyone after expiry). With
    /// `mismatch`, of that mismatched payment instead of the intent's own.
    pub async fn refund(
        &self,
        id: Uuid,
        requested_by: Uuid,
        account: &str,
        amount: Option<u64>,
        mismatch: Option<Uuid>,
    ) -> Result<TransactionResponse, PaymentError> {
        let p = self.get(id).await?;
        let t = self.refund_target(&p, mismatch).await?;
        let signer = parse_wallet(account, "account")?;
        let (payer, mint, facility_id) = (t.payer, t.mint, t.facility_id);
        let facility = self
            .chain
            .facility(&facility_id)
            .await?
            .ok_or_else(|| PaymentError::FacilityNotFound(hex::encode(facility_id)))?;
        let facility_pda = pay::facility_pda(&facility_id);
        let (action, refund_amount, ixs) = if let Some(escrow_key) = t.escrow {
            let escrow = self
                .chain
                .escrow_at(&escrow_key)
                .await?
                .ok_or_else(|| PaymentError::NothingToRefund("the escrow is closed".into()))?;
            let remaining = escrow_remaining(&escrow);
            if remaining == 0 {
                return Err(PaymentError::NothingToRefund(
                    "the escrow is settled".into(),
                ));
            }
            if amount.is_some_and(|a| a != remaining) {
                return Err(PaymentError::Invalid(format!(
                    "an escrow refund returns the whole remainder ({remaining})"
                )));
            }
            let expired = escrow.expires_at <= now().unix_timestamp();
            if !(expired || signer == facility.authority || signer == escrow.arbiter) {
                return Err(PaymentError::NotAllowed(
                    "before expiry only the facility authority or the arbiter can refund an escrow"
                        .into(),
                ));
            }
            let ix = if mint == NATIVE_SOL {
                pay::refund_escrow_sol(signer, escrow_key, facility_pda, payer)
            } else {
                let (token_program, _) = self.chain.mint(&mint).await?;
                pay::refund_escrow_token(
                    signer,
                    escrow_key,
                    facility_pda,
                    mint,
                    token_program,
                    associated_token_address(&payer, &mint, &token_program),
                )
            };
            ("escrow_refund", remaining, vec![ix])
        } else {
            if signer != facility.authority {
                return Err(PaymentError::NotAllowed(format!(
                    "refunds are signed by the facility authority {}",
                    facility.authority
                )));
            }
            let invoice = t
                .invoice
                .ok_or_else(|| PaymentError::Corrupt("payment without an invoice".into()))?;
            let record = self
                .chain
                .payment_record(&payer, &invoice)
                .await?
                .ok_or_else(|| PaymentError::Corrupt("finalized payment account missing".into()))?;
            let remaining = record.amount.saturating_sub(record.refunded);
            if remaining == 0 {
                return Err(PaymentError::NothingToRefund("fully refunded".into()));
            }
            let amount = amount.unwrap_or(remaining);
            if amount == 0 || amount > remaining {
                return Err(PaymentError::Invalid(format!(
                    "refund amount must be between 1 and the {remaining} not yet refunded"
                )));
            }
            let ix = if mint == NATIVE_SOL {
                pay::refund_sol(signer, facility_id, payer, invoice, amount)
            } else {
                let (token_program, _) = self.chain.mint(&mint).await?;
                pay::refund_token(
                    signer,
                    facility_id,
                    payer,
                    invoice,
                    mint,
                    token_program,
                    associated_token_address(&signer, &mint, &token_program),
                    associated_token_address(&payer, &mint, &token_program),
                    amount,
                )
            };
            ("refund", amount, vec![ix])
        };
        let handout = Handout {
            action,
            amount: refund_amount,
            mismatch: t.mismatch,
        };
        self.hand_out(&p, requested_by, &handout, &signer, &ixs)
            .await
    }

    /// The unsigned escrow release (to the facility, minus the fee) for the payer or arbiter.
    pub async fn release(
        &self,
        id: Uuid,
        requested_by: Uuid,
        account: &str,
        amount: Option<u64>,
    ) -> Result<TransactionResponse, PaymentError> {
        let p = self.get(id).await?;
        if !p.is_escrow() {
            return Err(PaymentError::Invalid(
                "only escrow payments are released".into(),
            ));
        }
        if p.status != "finalized" {
            return Err(PaymentError::NotFinalized(p.status));
        }
        let signer = parse_wallet(account, "account")?;
        let payer = finalized_payer(&p)?;
        let invoice = p.invoice_bytes()?;
        let escrow = self
            .chain
            .escrow(&payer, &invoice)
            .await?
            .ok_or_else(|| PaymentError::NothingToRefund("the escrow is closed".into()))?;
        if signer != escrow.payer && signer != escrow.arbiter {
            return Err(PaymentError::NotAllowed(
                "escrow releases are signed by the payer or the arbiter".into(),
            ));
        }
        let remaining = escrow_remaining(&escrow);
        let amount = amount.unwrap_or(remaining);
        if amount == 0 || amount > remaining {
            return Err(PaymentError::Invalid(format!(
                "release amount must be between 1 and the {remaining} still held"
            )));
        }
        let config = self.program_config().await?;
        let facility_id = p.facility_id_bytes()?;
        let facility = self.active_facility(&facility_id).await?;
        let escrow_key = pay::escrow_pda(&payer, &invoice);
        let facility_pda = pay::facility_pda(&facility_id);
        let mint = p.mint_key()?;
        let ixs = if mint == NATIVE_SOL {
            vec![pay::release_escrow_sol(
                signer,
                escrow_key,
                facility_pda,
                facility.payout_wallet,
                config.treasury,
                amount,
            )]
        } else {
            let (accounts, mut ixs) = tx::token_accounts(
                &self.chain,
                &signer,
                &escrow_key,
                &facility.payout_wallet,
                &config.treasury,
                &mint,
            )
            .await?;
            ixs.push(pay::release_escrow_token(
                signer,
                escrow_key,
                facility_pda,
                &accounts,
                amount,
            ));
            ixs
        };
        let handout = Handout {
            action: "escrow_release",
            amount,
            mismatch: None,
        };
        self.hand_out(&p, requested_by, &handout, &signer, &ixs)
            .await
    }

    async fn hand_out(
        &self,
        p: &Payment,
        requested_by: Uuid,
        handout: &Handout,
        signer: &Pubkey,
        ixs: &[Instruction],
    ) -> Result<TransactionResponse, PaymentError> {
        let Handout {
            action,
            amount,
            mismatch,
        } = *handout;
        let unsigned = self.chain.unsigned_transaction(ixs, signer).await?;
        sqlx::query(
            "INSERT INTO payments.refund_requests
                 (id, payment_id, action, amount, authority, requested_by, mismatch_id)
             VALUES ($1, $2, $3, $4::numeric, $5, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind(p.id)
        .bind(action)
        .bind(amount.to_string())
        .bind(signer.to_string())
        .bind(requested_by)
        .bind(mismatch)
        .execute(&self.pool)
        .await?;
        let shown = self.display_amount(amount, &p.mint_key()?).await?;
        let what = match action {
            "refund" => "Refund",
            "escrow_refund" => "Refund escrowed",
            _ => "Release escrowed",
        };
        Ok(TransactionResponse {
            transaction: unsigned.transaction,
            message: format!("{what} {shown} (invoice {}…)", &p.invoice_id[..8]),
            blockhash: unsigned.blockhash,
            last_valid_block_height: unsigned.last_valid_block_height,
        })
    }

    /// `amount` base units as wallets show it: `1.5 SOL`, or `12.25 USDC` with the mint's
    /// decimals and the symbol the ledger knows it by.
    async fn display_amount(&self, amount: u64, mint: &Pubkey) -> Result<String, PaymentError> {
        Ok(self.asset_units(mint).await?.format(amount))
    }

    /// How people read amounts of `mint`: native SOL is `SOL` with 9 decimals; a token has
    /// its mint's decimals (on chain) and the code the ledger defined for it, or a
    /// shortened mint address when it has none.
    pub async fn asset_units(&self, mint: &Pubkey) -> Result<AssetUnits, PaymentError> {
        if *mint == NATIVE_SOL {
            return Ok(AssetUnits {
                symbol: "SOL".into(),
                decimals: 9,
            });
        }
        let decimals = self.chain.mint(mint).await?.1;
        let text = mint.to_string();
        let id = advancia_ledger::projection::ledger_id(advancia_indexer_store::SOLANA, &text);
        let symbol = self
            .ledger
            .ledgers()
            .await?
            .into_iter()
            .find(|l| l.id == id && l.code != text)
            .map(|l| l.code)
            .unwrap_or_else(|| short_key(&text));
        Ok(AssetUnits { symbol, decimals })
    }

    /// Intents newest first, filtered; keyset-paginated on (created_at, id).
    pub async fn history(&self, f: &HistoryFilter) -> Result<Vec<Payment>, PaymentError> {
        let limit = i64::from(f.limit.clamp(1, 200));
        Ok(sqlx::query_as(&format!(
            "SELECT {PAYMENT_COLS} FROM payments.payments
              WHERE ($1::uuid IS NULL OR created_by = $1)
                AND ($2::text IS NULL OR facility = $2)
                AND ($3::text IS NULL OR payer = $3)
                AND ($4::text IS NULL OR status = $4)
                AND ($5::timestamptz IS NULL OR created_at >= $5)
                AND ($6::timestamptz IS NULL OR created_at < $6)
                AND ($7::timestamptz IS NULL OR (created_at, id) < ($7, $8))
              ORDER BY created_at DESC, id DESC LIMIT $9"
        ))
        .bind(f.created_by)
        .bind(&f.facility)
        .bind(&f.payer)
        .bind(&f.status)
        .bind(f.from)
        .bind(f.to)
        .bind(f.after.map(|a| a.0))
        .bind(f.after.map(|a| a.1))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The status changes of `id`, oldest first.
    pub async fn status_history(
        &self,
        id: Uuid,
    ) -> Result<Vec<(String, serde_json::Value, OffsetDateTime)>, PaymentError> {
        Ok(sqlx::query_as(
            "SELECT status, detail, at FROM payments.payment_status_history
              WHERE payment_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// A refund or release handed to a signer, as recorded in `payments.refund_requests`.
struct Handout {
    action: &'static str,
    amount: u64,
    mismatch: Option<Uuid>,
}

/// What a refund returns and to whom.
struct RefundTarget {
    /// The escrow account, for an escrow.
    escrow: Option<Pubkey>,
    payer: Pubkey,
    /// The invoice the program keys a payment's record by.
    invoice: Option<[u8; 32]>,
    facility_id: [u8; 32],
    mint: Pubkey,
    mismatch: Option<Uuid>,
}

/// The payer of a finalized payment (the chain's, as the lifecycle worker recorded it).
fn finalized_payer(p: &Payment) -> Result<Pubkey, PaymentError> {
    p.payer_key()?
        .ok_or_else(|| PaymentError::Corrupt("finalized without a payer".into()))
}

/// What an escrow still holds: neither released nor refunded.
fn escrow_remaining(e: &advancia_pay::state::Escrow) -> u64 {
    e.amount
        .saturating_sub(e.released)
        .saturating_sub(e.refunded)
}

fn escrow_terms(p: &Payment) -> Result<(Pubkey, i64), PaymentError> {
    match (&p.escrow_arbiter, p.escrow_expires_at) {
        (Some(a), Some(e)) => Ok((
            a.parse()
                .map_err(|_| PaymentError::Corrupt(format!("arbiter {a}")))?,
            e,
        )),
        _ => Err(PaymentError::Corrupt("escrow without terms".into())),
    }
}

/// An asset as people read it: `symbol` and the decimals of its base unit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AssetUnits {
    pub symbol: String,
    pub decimals: u8,
}

impl AssetUnits {
    /// `amount` base units as `1.5 SOL`.
    pub fn format(&self, amount: u64) -> String {
        format!("{} {}", format_units(amount, self.decimals), self.symbol)
    }
}

/// `AbCd…WxYz` for a long key.
pub fn short_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return key.to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

fn asset_name(mint: &Pubkey) -> String {
    if *mint == NATIVE_SOL {
        "SOL".into()
    } else {
        mint.to_string()
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Base units as a decimal with `decimals` places, trailing zeros trimmed (integers only).
pub fn format_units(amount: u64, decimals: u8) -> String {
    let scale = 10u128.pow(u32::from(decimals));
    let (whole, frac) = (u128::from(amount) / scale, u128::from(amount) % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = usize::from(decimals));
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::format_units;

    #[test]
    fn units() {
        assert_eq!(format_units(1_500_000_000, 9), "1.5");
        assert_eq!(format_units(2_000_000_000, 9), "2");
        assert_eq!(format_units(1, 9), "0.000000001");
        assert_eq!(format_units(u64::MAX, 0), "18446744073709551615");
        assert_eq!(format_units(123_456, 6), "0.123456");
    }
}
