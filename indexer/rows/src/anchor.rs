//! Conversion from `advancia-pay`'s anchor event types, for the indexer: the anchor event's
//! own encoding (`Event::data()`, discriminator + borsh body) decoded by this crate, so the
//! indexer's rows go through the same decoder the Substreams module runs on chain bytes.

use advancia_pay::client::{AdvanciaEvent, BridgeEvent};
use anchor_lang::Event as _;

use crate::events::{DecodeError, Event};

fn from_data(data: &[u8]) -> Result<Event, DecodeError> {
    let Some((disc, body)) = data.split_first_chunk::<8>() else {
        return Err(DecodeError::Truncated);
    };
    Event::decode_body(*disc, body)
}

impl TryFrom<&AdvanciaEvent> for Event {
    type Error = DecodeError;

    fn try_from(e: &AdvanciaEvent) -> Result<Self, DecodeError> {
        use AdvanciaEvent as E;
        from_data(&match e {
            E::ConfigUpdated(v) => v.data(),
            E::AdminProposed(v) => v.data(),
            E::AdminAccepted(v) => v.data(),
            E::AssetSet(v) => v.data(),
            E::FacilityRegistered(v) => v.data(),
            E::FacilityPayoutUpdated(v) => v.data(),
            E::FacilityDeactivated(v) => v.data(),
            E::PaymentMade(v) => v.data(),
            E::PaymentRefunded(v) => v.data(),
            E::EscrowOpened(v) => v.data(),
            E::EscrowReleased(v) => v.data(),
            E::EscrowRefunded(v) => v.data(),
            E::EscrowClosed(v) => v.data(),
            E::AttestationWritten(v) => v.data(),
            E::AttestationRevoked(v) => v.data(),
            E::BatchCommitted(v) => v.data(),
        })
    }
}

impl TryFrom<&BridgeEvent> for Event {
    type Error = DecodeError;

    fn try_from(e: &BridgeEvent) -> Result<Self, DecodeError> {
        use BridgeEvent as B;
        from_data(&match e {
            B::BridgeConfigured(v) => v.data(),
            B::BridgeRouteRegistered(v) => v.data(),
            B::BridgeDispatched(v) => v.data(),
            B::BridgeProcessed(v) => v.data(),
        })
    }
}
