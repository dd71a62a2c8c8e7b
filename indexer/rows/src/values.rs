//! Each event's table and its table-specific values (`Table::cols` order) as text. Keys are
//! base58, 32-byte ids lowercase hex, bridge words `0x` + hex, amounts decimal; JSON bodies
//! for `jsonb` columns.

use serde_json::json;

use crate::events::{Event, Key};
use crate::tables::{
    ADMIN, ATTESTATIONS, BRIDGE, ESCROWS, FACILITIES, PAYMENTS, REFUNDS, SETTLEMENTS,
};

/// Base58 of a key with `five8` (fixed-size 32-byte encoder; bs58's general one was half
/// of the indexer sink's CPU in its bench).
fn b58(k: &Key) -> String {
    let mut out = [0u8; five8::BASE58_ENCODED_32_MAX_LEN];
    let len = usize::from(five8::encode_32(k, &mut out));
    // The alphabet is ASCII.
    out.get(..len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .map_or_else(|| bs58::encode(k).into_string(), str::to_string)
}

fn hex32(b: &[u8; 32]) -> String {
    hex::encode(b)
}

/// A 32-byte bridge word as the EVM source writes it: `0x` + lowercase hex.
fn word(b: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(b))
}

fn s(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

fn k(v: &Key) -> Option<String> {
    Some(b58(v))
}

/// The table an event belongs to and its table-specific values (`Table::cols` order).
pub fn event_values(event: &Event) -> (usize, Vec<Option<String>>) {
    use Event as E;
    let zero = || s(0);
    match event {
        E::PaymentMade(p) => (
            PAYMENTS,
            vec![
                k(&p.payment),
                k(&p.payer),
                k(&p.facility),
                s(hex32(&p.invoice_id)),
                k(&p.reference),
                k(&p.mint),
                s(p.amount),
                s(p.fee),
                s(p.paid_at),
            ],
        ),
        E::PaymentRefunded(r) => (
            REFUNDS,
            vec![
                k(&r.payment),
                k(&r.facility),
                k(&r.payer),
                k(&r.mint),
                s(r.amount),
                s(r.refunded_total),
            ],
        ),
        // Escrow columns: kind, escrow, actor, payer, facility, arbiter, mint, amount, fee,
        // released_total, expires_at. amount and fee default to 0 in the schema.
        E::EscrowOpened(o) => (
            ESCROWS,
            vec![
                s("opened"),
                k(&o.escrow),
                k(&o.payer),
                k(&o.payer),
                k(&o.facility),
                k(&o.arbiter),
                k(&o.mint),
                s(o.amount),
                zero(),
                None,
                s(o.expires_at),
            ],
        ),
        E::EscrowReleased(r) => (
            ESCROWS,
            vec![
                s("released"),
                k(&r.escrow),
                k(&r.by),
                None,
                None,
                None,
                None,
                s(r.amount),
                s(r.fee),
                s(r.released_total),
                None,
            ],
        ),
        E::EscrowRefunded(r) => (
            ESCROWS,
            vec![
                s("refunded"),
                k(&r.escrow),
                k(&r.by),
                None,
                None,
                None,
                None,
                s(r.amount),
                zero(),
                None,
                None,
            ],
        ),
        E::EscrowClosed(c) => (
            ESCROWS,
            vec![
                s("closed"),
                k(&c.escrow),
                k(&c.rent_to),
                None,
                None,
                None,
                None,
                zero(),
                zero(),
                None,
                None,
            ],
        ),
        E::FacilityRegistered(f) => (
            FACILITIES,
            vec![
                s("registered"),
                k(&f.facility),
                s(hex32(&f.facility_id)),
                k(&f.authority),
                k(&f.payout_wallet),
            ],
        ),
        E::FacilityPayoutUpdated(f) => (
            FACILITIES,
            vec![
                s("payout_updated"),
                k(&f.facility),
                None,
                None,
                k(&f.payout_wallet),
            ],
        ),
        E::FacilityDeactivated(f) => (
            FACILITIES,
            vec![s("deactivated"), k(&f.facility), None, None, None],
        ),
        E::AttestationWritten(a) => (
            ATTESTATIONS,
            vec![s("written"), k(&a.wallet), s(a.level), s(a.expires_at)],
        ),
        E::AttestationRevoked(a) => (ATTESTATIONS, vec![s("revoked"), k(&a.wallet), None, None]),
        E::BatchCommitted(b) => {
            let totals: Vec<_> = b
                .totals
                .iter()
                .map(|t| json!({"mint": b58(&t.mint), "amount": t.amount.to_string()}))
                .collect();
            (
                SETTLEMENTS,
                vec![
                    s(b.batch_number),
                    s(hex32(&b.root)),
                    s(b.entry_count),
                    s(serde_json::Value::Array(totals)),
                ],
            )
        }
        E::ConfigUpdated(c) => (
            ADMIN,
            vec![
                s("config_updated"),
                s(json!({
                    "admin": b58(&c.admin), "treasury": b58(&c.treasury),
                    "settlement_authority": b58(&c.settlement_authority),
                    "compliance_authority": b58(&c.compliance_authority),
                    "fee_bps": c.fee_bps, "paused": c.paused,
                })),
            ],
        ),
        E::AdminProposed(a) => (
            ADMIN,
            vec![
                s("admin_proposed"),
                s(json!({"admin": b58(&a.admin), "proposed": b58(&a.proposed)})),
            ],
        ),
        E::AdminAccepted(a) => (
            ADMIN,
            vec![
                s("admin_accepted"),
                s(json!({"previous": b58(&a.previous), "admin": b58(&a.admin)})),
            ],
        ),
        E::AssetSet(a) => (
            ADMIN,
            vec![
                s("asset_set"),
                s(
                    json!({"mint": b58(&a.mint), "kyc_threshold": a.kyc_threshold.to_string(), "enabled": a.enabled}),
                ),
            ],
        ),
        // Bridge messages go to `bridge_messages` in the EVM source's format (so one message
        // id joins both sides); bridge configuration to `admin_events`.
        E::BridgeDispatched(d) => (
            BRIDGE,
            vec![
                s("dispatched"),
                s(word(&d.id)),
                s(d.origin_domain),
                s(d.sequence),
                s(word(&d.sender)),
                s(d.destination_domain),
                s(word(&d.recipient)),
                s(word(&d.asset)),
                s(crate::u256_be_decimal(&d.amount)),
            ],
        ),
        E::BridgeProcessed(p) => (
            BRIDGE,
            vec![
                s("processed"),
                s(word(&p.id)),
                s(p.origin_domain),
                s(p.sequence),
                s(word(&p.sender)),
                None,
                s(word(&p.recipient)),
                s(word(&p.mint)),
                s(p.amount),
            ],
        ),
        E::BridgeConfigured(c) => (
            ADMIN,
            vec![
                s("bridge_configured"),
                s(json!({
                    "local_domain": c.local_domain,
                    "validators": c.validators.iter().map(|v| format!("0x{}", hex::encode(v))).collect::<Vec<_>>(),
                    "threshold": c.threshold,
                    "set_version": c.set_version.to_string(),
                    "paused": c.paused,
                })),
            ],
        ),
        E::BridgeRouteRegistered(r) => (
            ADMIN,
            vec![
                s("bridge_route_registered"),
                s(json!({
                    "local_mint": b58(&r.local_mint),
                    "destination_domain": r.destination_domain,
                    "remote_asset": word(&r.remote_asset),
                    "local_decimals": r.local_decimals,
                    "remote_decimals": r.remote_decimals,
                })),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_base58_as_bs58_writes_them() {
        let mut k = [0u8; 32];
        assert_eq!(super::b58(&k), bs58::encode(k).into_string());
        for i in 0..64u8 {
            k[usize::from(i) % 32] = i.wrapping_mul(97).wrapping_add(13);
            assert_eq!(super::b58(&k), bs58::encode(k).into_string());
        }
        assert_eq!(
            super::b58(&[0xff; 32]),
            bs58::encode([0xff; 32]).into_string()
        );
    }
}
