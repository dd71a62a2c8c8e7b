//! Decoding of the program's own (outer) instructions: the 8-byte Anchor discriminator
//! (`sha256("global:<name>")[..8]`) picks the instruction, whose borsh arguments are then
//! parsed with the program's generated `advancia_pay::instruction::*` types, as the program
//! itself would.

use advancia_pay::instruction as ix;
use anchor_lang::{AnchorDeserialize, Discriminator};

/// What an instruction's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodedInstruction {
    /// An instruction of the program with well-formed arguments.
    Known(&'static str),
    /// The discriminator of this instruction, but arguments that do not parse (the program
    /// rejects such a transaction).
    BadArgs(&'static str),
    /// No instruction of the program.
    Unknown,
}

impl DecodedInstruction {
    /// As stored in `transactions.instructions`: the name, `<name>:bad_args`, or `unknown`.
    pub fn label(self) -> String {
        match self {
            Self::Known(n) => n.to_string(),
            Self::BadArgs(n) => format!("{n}:bad_args"),
            Self::Unknown => "unknown".to_string(),
        }
    }
}

macro_rules! instructions {
    ($($ty:ident => $name:literal),* $(,)?) => {
        /// Every instruction name of the program.
        pub const NAMES: &[&str] = &[$($name),*];

        pub fn decode(data: &[u8]) -> DecodedInstruction {
            $(
                if let Some(mut args) = data.strip_prefix(ix::$ty::DISCRIMINATOR) {
                    // Like Anchor's dispatch: parse from the front, trailing bytes allowed.
                    return match <ix::$ty as AnchorDeserialize>::deserialize(&mut args) {
                        Ok(_) => DecodedInstruction::Known($name),
                        Err(_) => DecodedInstruction::BadArgs($name),
                    };
                }
            )*
            DecodedInstruction::Unknown
        }
    };
}

instructions!(
    InitializeConfig => "initialize_config",
    UpdateConfig => "update_config",
    ProposeAdmin => "propose_admin",
    AcceptAdmin => "accept_admin",
    AddAsset => "add_asset",
    UpdateAsset => "update_asset",
    RegisterFacility => "register_facility",
    UpdateFacilityPayout => "update_facility_payout",
    DeactivateFacility => "deactivate_facility",
    PaySol => "pay_sol",
    PayToken => "pay_token",
    RefundSol => "refund_sol",
    RefundToken => "refund_token",
    OpenEscrowSol => "open_escrow_sol",
    OpenEscrowToken => "open_escrow_token",
    ReleaseEscrowSol => "release_escrow_sol",
    ReleaseEscrowToken => "release_escrow_token",
    RefundEscrowSol => "refund_escrow_sol",
    RefundEscrowToken => "refund_escrow_token",
    CloseEscrow => "close_escrow",
    WriteAttestation => "write_attestation",
    RenewAttestation => "renew_attestation",
    RevokeAttestation => "revoke_attestation",
    CommitBatch => "commit_batch",
    VerifyInclusion => "verify_inclusion",
);

#[cfg(test)]
mod tests {
    use super::*;
    use advancia_pay::client as pay;
    use anchor_lang::prelude::Pubkey;

    #[test]
    fn decodes_the_client_builders_instructions() {
        let admin = Pubkey::new_unique();
        let i = pay::add_asset(admin, Pubkey::new_unique(), 5);
        assert_eq!(decode(&i.data), DecodedInstruction::Known("add_asset"));
        let i = pay::deactivate_facility(admin, [1; 32]);
        assert_eq!(
            decode(&i.data),
            DecodedInstruction::Known("deactivate_facility")
        );
        // Truncated arguments: the discriminator names it, the args do not parse.
        let i = pay::add_asset(admin, Pubkey::new_unique(), 5);
        assert_eq!(
            decode(&i.data[..20]),
            DecodedInstruction::BadArgs("add_asset")
        );
        assert_eq!(decode(&[0; 12]), DecodedInstruction::Unknown);
        assert_eq!(decode(&[]), DecodedInstruction::Unknown);
        assert_eq!(DecodedInstruction::BadArgs("x").label(), "x:bad_args");
        assert_eq!(NAMES.len(), 25);
    }
}
