//! Mirror to the on-chain facility registry (`advancia_pay` program): instructions for
//! register, payout-wallet update and deactivation. Nothing is signed here; the API hands
//! the unsigned transaction to the admin's (or facility authority's) wallet.

use advancia_pay::client as pay;
use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use serde::Deserialize;
use uuid::Uuid;

use crate::FacilityError;
use crate::model::Facility;

/// Chain name of the payout wallet mirrored on chain.
pub const SOLANA: &str = "solana";

/// The registry id: the uuid's 16 bytes then 16 zero bytes (payments resolves uuid
/// facility ids the same way).
pub fn chain_facility_id(id: Uuid) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(id.as_bytes());
    b
}

pub fn parse_pubkey(what: &str, s: &str) -> Result<Pubkey, FacilityError> {
    s.trim()
        .parse::<Pubkey>()
        .map_err(|_| FacilityError::Invalid(format!("{what} `{s}` is not a Solana address")))
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum MirrorAction {
    /// Admin registers the facility with its authority and Solana payout wallet.
    Register { authority: String },
    /// Sets the on-chain payout wallet to the profile's Solana payout wallet; signed by
    /// the facility authority.
    UpdatePayout,
    /// Deactivates the facility on chain; signed by the authority or the admin.
    Deactivate,
}

/// The instruction for `action` on `facility`, with `signer` as the signing wallet.
pub fn instruction(
    facility: &Facility,
    action: &MirrorAction,
    signer: &Pubkey,
) -> Result<Instruction, FacilityError> {
    let id = chain_facility_id(facility.id);
    let payout = || -> Result<Pubkey, FacilityError> {
        let w = facility
            .profile
            .payout_wallets
            .iter()
            .find(|w| w.chain == SOLANA)
            .ok_or_else(|| {
                FacilityError::Invalid("the facility has no solana payout wallet".into())
            })?;
        parse_pubkey("payout wallet", &w.address)
    };
    Ok(match action {
        MirrorAction::Register { authority } => {
            let authority = parse_pubkey("authority", authority)?;
            pay::register_facility(*signer, id, authority, payout()?)
        }
        MirrorAction::UpdatePayout => pay::update_facility_payout(*signer, id, payout()?),
        MirrorAction::Deactivate => pay::deactivate_facility(*signer, id),
    })
}
