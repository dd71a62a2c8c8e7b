//! `advancia-pay`'s events as plain borsh structs (public keys as `[u8; 32]`), decoded from
//! the program's `emit_cpi!` self-invocations: instruction data = anchor's `EVENT_IX_TAG`
//! (little-endian), the event's 8-byte discriminator `sha256("event:<Name>")[..8]`, then the
//! borsh body. Field order and types follow `programs/advancia-pay/src/events.rs`; the
//! indexer's tests decode anchor-encoded events of every kind with this module and compare.

use std::sync::OnceLock;

use borsh::BorshDeserialize;
use sha2::{Digest, Sha256};

/// A 32-byte public key.
pub type Key = [u8; 32];

/// anchor's `EVENT_IX_TAG` (`0x1d9acb512ea545e4`) as the instruction data prefix.
pub const EVENT_IX_TAG_LE: [u8; 8] = 0x1d9a_cb51_2ea5_45e4_u64.to_le_bytes();

/// Why an event self-invocation of the program could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("event data too short")]
    Truncated,
    #[error("unknown event discriminator {0:?}")]
    UnknownDiscriminator([u8; 8]),
    #[error("malformed {event} body: {message}")]
    Body {
        event: &'static str,
        message: String,
    },
}

/// `state::AssetTotal`: one mint's total in a settlement batch.
#[derive(Debug, Clone, PartialEq, Eq, BorshDeserialize)]
pub struct AssetTotal {
    pub mint: Key,
    pub amount: u128,
}

macro_rules! events {
    ($($name:ident { $($field:ident : $ty:ty),* $(,)? })*) => {
        $(
            #[derive(Debug, Clone, PartialEq, Eq, BorshDeserialize)]
            pub struct $name { $(pub $field: $ty),* }
        )*

        /// Every event the program emits (ledger and bridge events alike).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event { $($name($name)),* }

        /// Event names in declaration order (the discriminator table's order).
        pub const EVENT_NAMES: &[&str] = &[$(stringify!($name)),*];

        impl Event {
            pub fn name(&self) -> &'static str {
                match self { $(Self::$name(_) => stringify!($name)),* }
            }

            /// Decodes a body by its discriminator; `Err(UnknownDiscriminator)` for none of ours.
            pub fn decode_body(disc: [u8; 8], body: &[u8]) -> Result<Self, DecodeError> {
                let table = discriminators();
                let mut i = 0;
                $(
                    if table[i] == disc {
                        return <$name as BorshDeserialize>::try_from_slice(body)
                            .map(Self::$name)
                            .map_err(|e| DecodeError::Body {
                                event: stringify!($name),
                                message: e.to_string(),
                            });
                    }
                    i += 1;
                )*
                let _ = i;
                Err(DecodeError::UnknownDiscriminator(disc))
            }
        }
    };
}

events! {
    ConfigUpdated {
        admin: Key,
        treasury: Key,
        settlement_authority: Key,
        compliance_authority: Key,
        fee_bps: u16,
        paused: bool,
    }
    AdminProposed { admin: Key, proposed: Key }
    AdminAccepted { previous: Key, admin: Key }
    AssetSet { mint: Key, kyc_threshold: u64, enabled: bool }
    FacilityRegistered { facility: Key, facility_id: [u8; 32], authority: Key, payout_wallet: Key }
    FacilityPayoutUpdated { facility: Key, payout_wallet: Key }
    FacilityDeactivated { facility: Key }
    PaymentMade {
        payment: Key,
        payer: Key,
        facility: Key,
        invoice_id: [u8; 32],
        reference: Key,
        mint: Key,
        amount: u64,
        fee: u64,
        paid_at: i64,
    }
    PaymentRefunded {
        payment: Key,
        facility: Key,
        payer: Key,
        mint: Key,
        amount: u64,
        refunded_total: u64,
    }
    EscrowOpened {
        escrow: Key,
        payer: Key,
        facility: Key,
        arbiter: Key,
        mint: Key,
        amount: u64,
        expires_at: i64,
    }
    EscrowReleased { escrow: Key, by: Key, amount: u64, fee: u64, released_total: u64 }
    EscrowRefunded { escrow: Key, by: Key, amount: u64 }
    EscrowClosed { escrow: Key, rent_to: Key }
    AttestationWritten { wallet: Key, level: u8, expires_at: i64 }
    AttestationRevoked { wallet: Key }
    BatchCommitted { batch_number: u64, root: [u8; 32], entry_count: u64, totals: Vec<AssetTotal> }
    BridgeConfigured {
        local_domain: u32,
        validators: Vec<[u8; 20]>,
        threshold: u8,
        set_version: u64,
        paused: bool,
    }
    BridgeRouteRegistered {
        local_mint: Key,
        destination_domain: u32,
        remote_asset: [u8; 32],
        local_decimals: u8,
        remote_decimals: u8,
    }
    BridgeDispatched {
        id: [u8; 32],
        origin_domain: u32,
        sequence: u64,
        sender: [u8; 32],
        destination_domain: u32,
        recipient: [u8; 32],
        asset: [u8; 32],
        amount: [u8; 32],
        local_mint: Key,
        local_amount: u64,
    }
    BridgeProcessed {
        id: [u8; 32],
        origin_domain: u32,
        sequence: u64,
        sender: [u8; 32],
        recipient: Key,
        mint: Key,
        amount: u64,
        set_version: u64,
    }
}

/// Anchor's event discriminators, `sha256("event:<Name>")[..8]`, in [`EVENT_NAMES`] order
/// (computed once; the indexer's tests compare them with anchor's constants).
pub fn discriminators() -> &'static [[u8; 8]] {
    static TABLE: OnceLock<Vec<[u8; 8]>> = OnceLock::new();
    TABLE.get_or_init(|| EVENT_NAMES.iter().map(|n| discriminator(n)).collect())
}

fn discriminator(name: &str) -> [u8; 8] {
    let digest = Sha256::digest(format!("event:{name}").as_bytes());
    let mut d = [0; 8];
    d.copy_from_slice(&digest[..8]);
    d
}

/// Decodes an inner instruction's data when it is an event self-invocation: `Ok(None)` when
/// the instruction is not one (other program, or not prefixed with the event tag). The
/// caller checks that the instruction's program is `advancia-pay`.
pub fn decode_event_ix(data: &[u8]) -> Result<Option<Event>, DecodeError> {
    let Some(rest) = data.strip_prefix(&EVENT_IX_TAG_LE[..]) else {
        return Ok(None);
    };
    let Some((disc, body)) = rest.split_first_chunk::<8>() else {
        return Err(DecodeError::Truncated);
    };
    Event::decode_body(*disc, body).map(Some)
}

impl Event {
    /// Bridge events move no money on this chain's books (the ledger feed skips them); they
    /// still have rows (`bridge_messages`, `admin_events`).
    pub fn is_bridge(&self) -> bool {
        matches!(
            self,
            Self::BridgeConfigured(_)
                | Self::BridgeRouteRegistered(_)
                | Self::BridgeDispatched(_)
                | Self::BridgeProcessed(_)
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ix(name: &str, body: &[u8]) -> Vec<u8> {
        let mut data = EVENT_IX_TAG_LE.to_vec();
        data.extend(discriminator(name));
        data.extend(body);
        data
    }

    #[test]
    fn decodes_a_self_invocation_and_rejects_bad_ones() {
        let mut body = vec![7u8; 32];
        body.extend([9u8; 32]);
        body.extend(5u64.to_le_bytes());
        let event = decode_event_ix(&ix("EscrowRefunded", &body))
            .unwrap()
            .unwrap();
        assert_eq!(
            event,
            Event::EscrowRefunded(EscrowRefunded {
                escrow: [7; 32],
                by: [9; 32],
                amount: 5
            })
        );
        assert_eq!(event.name(), "EscrowRefunded");
        assert!(!event.is_bridge());
        // Not an event self-invocation.
        assert_eq!(decode_event_ix(&body), Ok(None));
        // Tag but no discriminator; unknown discriminator; short and long bodies.
        assert_eq!(
            decode_event_ix(&EVENT_IX_TAG_LE[..]),
            Err(DecodeError::Truncated)
        );
        let mut unknown = EVENT_IX_TAG_LE.to_vec();
        unknown.extend([1; 8]);
        assert_eq!(
            decode_event_ix(&unknown),
            Err(DecodeError::UnknownDiscriminator([1; 8]))
        );
        assert!(matches!(
            decode_event_ix(&ix("EscrowRefunded", &body[..70])),
            Err(DecodeError::Body {
                event: "EscrowRefunded",
                ..
            })
        ));
        let mut long = body.clone();
        long.push(0);
        assert!(decode_event_ix(&ix("EscrowRefunded", &long)).is_err());
    }

    #[test]
    fn discriminators_are_distinct() {
        let d = discriminators();
        assert_eq!(d.len(), 20);
        let set: std::collections::HashSet<_> = d.iter().collect();
        assert_eq!(set.len(), d.len());
    }
}
