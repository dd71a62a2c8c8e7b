//! The payment service: intents in Postgres (schema `payments`), status from the indexer.

use std::time::Duration;

use advancia_chains::{SolanaChain, associated_token_address};
use advancia_indexer::feed::{derived_id, external_ix_index};
use advancia_indexer::{SOLANA, lookup};
use advancia_ledger::Ledger;
use advancia_pay::client::{self as pay, EscrowParams, PayParams};
use advancia_pay::state::{Config, Facility, NATIVE_SOL};
use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::{
    Confirmation, HistoryFilter, InitiateRequest, LedgerLeg, LedgerRecord, PAYMENT_COLS, Payment,
    TransactionResponse, parse_asset, parse_facility_id, parse_u64, parse_wallet,
};
use crate::{PaymentError, tx};

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
    pub fn new(pool: PgPool, chain: SolanaChain, ledger: Ledger, config: PaymentsConfig) -> Self {
        Self {
            pool,
            chain,
            ledger,
            config,
        }
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
        history(&mut tx, id, "pending", json!({ "event": "initiated" })).await?;
        tx.commit().await?;
        Ok(payment)
    }

    /// The intent, if `id` exists.
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
        let payment = self.refresh(id).await?;
        match payment.status.as_str() {
            "confirmed" | "finalized" => return Err(PaymentError::AlreadyPaid),
            "expired" => {
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
                return Err(PaymentError::KycRequired {
                    wallet: payer.to_string(),
                    threshold: asset.kyc_threshold,
                    reason,
                });
            }
        }
        let reference = payment.reference_key()?;
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
        sqlx::query("UPDATE payments.payments SET payer = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(payer.to_string())
            .execute(&mut *db)
            .await?;
        history(
            &mut db,
            id,
            &payment.status,
            json!({ "event": "transaction_requested", "account": payer.to_string() }),
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

    /// Re-derives the status of `id` from indexed chain data (and the chain for transactions
    /// not indexed), storing and logging any change.
    pub async fn refresh(&self, id: Uuid) -> Result<Payment, PaymentError> {
        let p = self.get(id).await?;
        let observed = self.observe(&p).await?;
        let changed = observed.status != p.status
            || observed.signature != p.signature
            || observed.slot != p.slot
            || observed.refunded != p.refunded_u64()?
            || observed.released != p.released_u64()?
            || observed
                .payer
                .as_ref()
                .is_some_and(|o| Some(o) != p.payer.as_ref())
            || observed.failure != p.failure;
        if !changed {
            return Ok(p);
        }
        let mut db = self.pool.begin().await?;
        let updated: Payment = sqlx::query_as(&format!(
            "UPDATE payments.payments SET status = $2, signature = $3, slot = $4,
                 fee = $5::numeric, refunded = $6::numeric, released = $7::numeric,
                 payer = COALESCE($8, payer), failure = $9, updated_at = now()
              WHERE id = $1 RETURNING {PAYMENT_COLS}"
        ))
        .bind(id)
        .bind(observed.status)
        .bind(&observed.signature)
        .bind(observed.slot)
        .bind(observed.fee.map(|f| f.to_string()))
        .bind(observed.refunded.to_string())
        .bind(observed.released.to_string())
        .bind(&observed.payer)
        .bind(&observed.failure)
        .fetch_one(&mut *db)
        .await?;
        if updated.status != p.status {
            history(
                &mut db,
                id,
                &updated.status,
                json!({ "from": p.status, "signature": updated.signature, "slot": updated.slot,
                        "failure": updated.failure }),
            )
            .await?;
        }
        // Refunds and releases keep the status: log them as events of their own, which
        // the notification service follows.
        for (event, before, after) in [
            ("refunded", p.refunded_u64()?, observed.refunded),
            ("escrow_released", p.released_u64()?, observed.released),
        ] {
            if after > before {
                history(
                    &mut db,
                    id,
                    &updated.status,
                    json!({ "event": event, "amount": (after - before).to_string(),
                            "total": after.to_string() }),
                )
                .await?;
            }
        }
        db.commit().await?;
        Ok(updated)
    }

    async fn observe(&self, p: &Payment) -> Result<Observed, PaymentError> {
        let mut o = Observed {
            status: "pending",
            signature: None,
            slot: None,
            fee: None,
            refunded: 0,
            released: 0,
            payer: None,
            failure: None,
        };
        let mut by_reference = None;
        if p.is_escrow() {
            // The escrow PDA is keyed by payer: the wallet the last request was built for, or
            // (if another wallet paid) the one whose transaction carries the reference.
            let mut escrow = match p.payer_key()? {
                Some(payer) => Some(pay::escrow_pda(&payer, &p.invoice_bytes()?).to_string()),
                None => None,
            };
            let known = match &escrow {
                Some(e) => !lookup::escrow_events(&self.pool, SOLANA, e)
                    .await?
                    .is_empty(),
                None => false,
            };
            if !known {
                let sigs = self.chain.signatures_for(&p.reference_key()?, 20).await?;
                for s in sigs.iter().filter(|s| s.error.is_none()) {
                    if let Some(row) =
                        lookup::escrow_opened_in(&self.pool, SOLANA, &s.signature).await?
                    {
                        escrow = Some(row.escrow);
                        break;
                    }
                }
                by_reference = Some(sigs);
            }
            if let Some(escrow) = escrow {
                let events = lookup::escrow_events(&self.pool, SOLANA, &escrow).await?;
                if let Some(opened) = events.iter().find(|e| e.kind == "opened") {
                    o.status = commitment_status(&opened.commitment);
                    o.signature = Some(opened.signature.clone());
                    o.slot = Some(opened.slot);
                    o.payer = opened.payer.clone();
                    for e in &events {
                        let amount = parse_u64(&e.amount, "escrow amount")?;
                        match e.kind.as_str() {
                            "released" => o.released = o.released.saturating_add(amount),
                            "refunded" => o.refunded = o.refunded.saturating_add(amount),
                            _ => {}
                        }
                    }
                    return Ok(o);
                }
            }
        } else if let Some(row) = self.indexed_payment(p).await? {
            o.status = commitment_status(&row.commitment);
            o.signature = Some(row.signature.clone());
            o.slot = Some(row.slot);
            o.fee = Some(parse_u64(&row.fee, "fee")?);
            o.payer = Some(row.payer.clone());
            o.refunded = lookup::refunded_total(&self.pool, SOLANA, &row.payment, false).await?;
            return Ok(o);
        }
        // Not indexed: ask the chain for transactions carrying the reference (Solana Pay's
        // lookup). A failed one is reported; a successful one is about to be indexed.
        let sigs = match by_reference {
            Some(sigs) => sigs,
            None => self.chain.signatures_for(&p.reference_key()?, 20).await?,
        };
        if let Some(ok) = sigs.iter().find(|s| s.error.is_none()) {
            o.signature = Some(ok.signature.clone());
            o.slot = i64::try_from(ok.slot).ok();
            return Ok(o);
        }
        if let Some(failed) = sigs.first() {
            o.status = "failed";
            o.signature = Some(failed.signature.clone());
            o.slot = i64::try_from(failed.slot).ok();
            o.failure = failed.error.clone();
        }
        if o.status == "pending" && now() > p.expires_at {
            o.status = "expired";
        }
        Ok(o)
    }

    /// Verifies the finalized on-chain record against the intent (amount, asset, recipient,
    /// reference, invoice; escrow terms) and returns the ledger transfer posted for it.
    pub async fn confirm(&self, id: Uuid, actor: Uuid) -> Result<Confirmation, PaymentError> {
        let p = self.refresh(id).await?;
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
            let events = lookup::escrow_events(&self.pool, SOLANA, &escrow).await?;
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
        let ledger = self.ledger_record(&signature, ix, inner).await?;
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
            history(
                &mut db,
                id,
                &payment.status,
                json!({ "event": "verified", "by": actor, "ledger": ledger.as_ref().and_then(|l| l.legs.first()).map(|l| &l.transfer_id) }),
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

    /// The indexed payment event carrying this intent's reference key and invoice.
    async fn indexed_payment(
        &self,
        p: &Payment,
    ) -> Result<Option<advancia_indexer::query::PaymentRow>, PaymentError> {
        Ok(
            advancia_indexer::query::payment_by_reference(&self.pool, &p.reference)
                .await?
                .filter(|r| r.chain == SOLANA && r.invoice_id == p.invoice_id),
        )
    }

    /// The linked transfers the indexer's feed posted for the event at (`signature`, `ix`,
    /// `inner`): the first carries the external reference, the next ones follow the feed's
    /// deterministic ids. `None` until the feed has run.
    async fn ledger_record(
        &self,
        signature: &str,
        ix: i32,
        inner: i32,
    ) -> Result<Option<LedgerRecord>, PaymentError> {
        let (ix, inner) = (
            u32::try_from(ix).unwrap_or_default(),
            u32::try_from(inner).unwrap_or_default(),
        );
        let Some(first) = self
            .ledger
            .lookup_by_external_ref(SOLANA, signature, external_ix_index(ix, inner))
            .await?
        else {
            return Ok(None);
        };
        let mut legs = vec![first];
        for i in 1..4u32 {
            let id = derived_id(&[
                "transfer",
                SOLANA,
                signature,
                &ix.to_string(),
                &inner.to_string(),
                &i.to_string(),
            ]);
            match self.ledger.transfer(id).await? {
                Some(t) => legs.push(t),
                None => break,
            }
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

    /// The unsigned refund for the wallet `account` that must sign it: the facility's
    /// authority for a payment (full or partial, never above what remains), the facility
    /// authority or arbiter for an escrow (the whole remainder; anyone after expiry).
    pub async fn refund(
        &self,
        id: Uuid,
        requested_by: Uuid,
        account: &str,
        amount: Option<u64>,
    ) -> Result<TransactionResponse, PaymentError> {
        let p = self.refresh(id).await?;
        if p.status != "finalized" {
            return Err(PaymentError::NotFinalized(p.status));
        }
        let signer = parse_wallet(account, "account")?;
        let payer = finalized_payer(&p)?;
        let invoice = p.invoice_bytes()?;
        let facility_id = p.facility_id_bytes()?;
        let mint = p.mint_key()?;
        let facility = self
            .chain
            .facility(&facility_id)
            .await?
            .ok_or_else(|| PaymentError::FacilityNotFound(p.facility_id.clone()))?;
        let facility_pda = pay::facility_pda(&facility_id);
        let (action, refund_amount, ixs) = if p.is_escrow() {
            let escrow = self
                .chain
                .escrow(&payer, &invoice)
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
            let escrow_key = pay::escrow_pda(&payer, &invoice);
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
        self.hand_out(&p, requested_by, action, refund_amount, &signer, &ixs)
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
        let p = self.refresh(id).await?;
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
        self.hand_out(&p, requested_by, "escrow_release", amount, &signer, &ixs)
            .await
    }

    async fn hand_out(
        &self,
        p: &Payment,
        requested_by: Uuid,
        action: &str,
        amount: u64,
        signer: &Pubkey,
        ixs: &[Instruction],
    ) -> Result<TransactionResponse, PaymentError> {
        let unsigned = self.chain.unsigned_transaction(ixs, signer).await?;
        sqlx::query(
            "INSERT INTO payments.refund_requests (id, payment_id, action, amount, authority, requested_by)
             VALUES ($1, $2, $3, $4::numeric, $5, $6)",
        )
        .bind(Uuid::now_v7())
        .bind(p.id)
        .bind(action)
        .bind(amount.to_string())
        .bind(signer.to_string())
        .bind(requested_by)
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

    /// `amount` base units as wallets show it: `1.5 SOL`, or `12.25 <mint>` with the mint's
    /// decimals.
    async fn display_amount(&self, amount: u64, mint: &Pubkey) -> Result<String, PaymentError> {
        let decimals = if *mint == NATIVE_SOL {
            9
        } else {
            self.chain.mint(mint).await?.1
        };
        Ok(format!(
            "{} {}",
            format_units(amount, decimals),
            asset_name(mint)
        ))
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

struct Observed {
    status: &'static str,
    signature: Option<String>,
    slot: Option<i64>,
    fee: Option<u64>,
    refunded: u64,
    released: u64,
    payer: Option<String>,
    failure: Option<String>,
}

/// The payer of a finalized payment (set by `refresh` from the chain's event).
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

fn commitment_status(c: &str) -> &'static str {
    if c == "finalized" {
        "finalized"
    } else {
        "confirmed"
    }
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

async fn history(
    db: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
    status: &str,
    detail: serde_json::Value,
) -> Result<(), PaymentError> {
    sqlx::query(
        "INSERT INTO payments.payment_status_history (payment_id, status, detail, traceparent)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(status)
    .bind(detail)
    // The saga readers of this log continue the trace of the change's request or job.
    .bind(advancia_telemetry::current_traceparent())
    .execute(&mut **db)
    .await?;
    Ok(())
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
