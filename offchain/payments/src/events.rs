//! The payment service's domain events (`payment.*`), written to its outbox
//! ([`crate::OUTBOX`]) in the transaction of the change they describe.
//!
//! Payloads are self-contained: a consumer (notifications, analytics, the checkout page, the
//! event bus) needs nothing else of ours. Kinds:
//! - `payment.initiated`: an intent was created;
//! - `payment.status_changed`: `from` → `status` (pending, confirmed, finalized, failed, expired);
//! - `payment.refunded` / `payment.escrow_released`: `amount_delta` more, `total` in all;
//! - `payment.mismatch_detected`: an on-chain payment that does not settle the intent;
//! - `payment.verified`: `confirm` checked the finalized payment against the chain and ledger;
//! - `payment.kyc_required`: a wallet's transaction request was refused for want of a valid
//!   KYC attestation (`account`, `threshold` in base units, `reason`).

use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::model::Payment;

/// The fields of `p` every event carries.
pub fn base(p: &Payment) -> Value {
    json!({
        "payment_id": p.id,
        "payment_kind": p.kind,
        "status": p.status,
        "created_by": p.created_by,
        "chain": p.chain,
        "facility_id": p.facility_id,
        "facility": p.facility,
        "mint": p.mint,
        "amount": p.amount,
        "label": p.label,
        "payer": p.payer,
        "signature": p.signature,
        "slot": p.slot,
        "refunded": p.refunded,
        "released": p.released,
        "expires_at": p.expires_at.unix_timestamp(),
    })
}

/// Appends event `kind` about `p` (its fields plus `extra`'s) to the outbox.
pub(crate) async fn publish(
    conn: &mut PgConnection,
    p: &Payment,
    kind: &str,
    extra: Value,
) -> Result<(), sqlx::Error> {
    let mut payload = base(p);
    if let (Value::Object(m), Value::Object(x)) = (&mut payload, extra) {
        m.extend(x);
    }
    advancia_outbox::append(conn, &crate::OUTBOX, kind, &payload).await?;
    Ok(())
}
