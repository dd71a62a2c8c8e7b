//! The committed IDL matches the program: every instruction is there with the discriminator
//! the program dispatches on and the account list the client builders produce.

use advancia_pay::client::{self, EscrowParams, PayParams, TokenAccounts};
use advancia_pay::{InitializeConfigArgs, UpdateConfigArgs};
use anchor_lang::prelude::*;
use anchor_lang::solana_program::instruction::Instruction;

fn builders() -> Vec<(&'static str, Instruction)> {
    let k = Pubkey::new_unique();
    let id = [1u8; 32];
    let pay = PayParams {
        payer: k,
        facility_id: id,
        invoice_id: id,
        amount: 1,
        reference: k,
        with_kyc: true,
    };
    let esc = EscrowParams {
        payer: k,
        facility_id: id,
        escrow_id: id,
        amount: 1,
        expires_at: 1,
        arbiter: k,
        with_kyc: true,
    };
    let t = TokenAccounts {
        mint: k,
        token_program: k,
        source: k,
        payout: k,
        treasury: k,
    };
    let init = InitializeConfigArgs {
        treasury: k,
        settlement_authority: k,
        compliance_authority: k,
        fee_bps: 1,
    };
    let message = advancia_pay::bridge::BridgeMessage {
        origin_domain: 1,
        sequence: 0,
        sender: id,
        destination_domain: 2,
        recipient: id,
        asset: id,
        amount: [0; 32],
    };
    vec![
        ("initialize_config", client::initialize_config(k, init)),
        (
            "update_config",
            client::update_config(k, UpdateConfigArgs::default()),
        ),
        ("propose_admin", client::propose_admin(k, k)),
        ("accept_admin", client::accept_admin(k)),
        ("add_asset", client::add_asset(k, k, 1)),
        ("update_asset", client::update_asset(k, k, 1, true)),
        ("register_facility", client::register_facility(k, id, k, k)),
        (
            "update_facility_payout",
            client::update_facility_payout(k, id, k),
        ),
        ("deactivate_facility", client::deactivate_facility(k, id)),
        ("pay_sol", client::pay_sol(&pay, k, k)),
        ("pay_token", client::pay_token(&pay, &t)),
        ("refund_sol", client::refund_sol(k, id, k, id, 1)),
        (
            "refund_token",
            client::refund_token(k, id, k, id, k, k, k, k, 1),
        ),
        ("open_escrow_sol", client::open_escrow_sol(&esc)),
        (
            "open_escrow_token",
            client::open_escrow_token(&esc, k, k, k),
        ),
        (
            "release_escrow_sol",
            client::release_escrow_sol(k, k, k, k, k, 1),
        ),
        (
            "release_escrow_token",
            client::release_escrow_token(k, k, k, &t, 1),
        ),
        ("refund_escrow_sol", client::refund_escrow_sol(k, k, k, k)),
        (
            "refund_escrow_token",
            client::refund_escrow_token(k, k, k, k, k, k),
        ),
        ("close_escrow", client::close_escrow(k, k, k, Some(k))),
        ("write_attestation", client::write_attestation(k, k, 1, 1)),
        ("renew_attestation", client::renew_attestation(k, k, 1, 1)),
        ("revoke_attestation", client::revoke_attestation(k, k)),
        ("commit_batch", client::commit_batch(k, 1, id, 1, vec![])),
        (
            "verify_inclusion",
            client::verify_inclusion(1, id, 0, vec![]),
        ),
        (
            "initialize_bridge",
            client::initialize_bridge(k, 1, vec![[1; 20]], 1),
        ),
        (
            "set_validators",
            client::set_validators(k, vec![[1; 20]], 1),
        ),
        ("set_bridge_paused", client::set_bridge_paused(k, true)),
        (
            "register_bridge_route",
            client::register_bridge_route(k, k, 1, id, 6, 18),
        ),
        ("create_bridge_vault", client::create_bridge_vault(k, k, k)),
        (
            "bridge_dispatch_sol",
            client::bridge_dispatch_sol(k, 1, id, 1),
        ),
        (
            "bridge_dispatch_token",
            client::bridge_dispatch_token(k, k, k, k, 1, id, 1),
        ),
        (
            "bridge_process_sol",
            client::bridge_process_sol(k, message, 1, vec![[0; 65]]),
        ),
        (
            "bridge_process_token",
            client::bridge_process_token(k, message, k, 1, vec![[0; 65]]),
        ),
    ]
}

#[test]
fn committed_idl_matches_program_and_client() {
    let idl: serde_json::Value =
        serde_json::from_str(include_str!("../../idl/advancia_pay.json")).unwrap();
    assert_eq!(idl["address"], advancia_pay::ID.to_string());
    let instructions = idl["instructions"].as_array().unwrap();
    let built = builders();
    assert_eq!(
        instructions.len(),
        built.len(),
        "every instruction has a client builder"
    );
    for (name, ix) in built {
        let entry = instructions
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from the IDL"));
        let disc: Vec<u8> = entry["discriminator"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
            .collect();
        assert_eq!(disc, ix.data[..8], "{name}: discriminator");
        let accounts = entry["accounts"].as_array().unwrap();
        assert_eq!(accounts.len(), ix.accounts.len(), "{name}: account count");
        for (meta, acc) in ix.accounts.iter().zip(accounts) {
            assert_eq!(
                acc["writable"].as_bool().unwrap_or(false),
                meta.is_writable,
                "{name}.{}: writable",
                acc["name"]
            );
            assert_eq!(
                acc["signer"].as_bool().unwrap_or(false),
                meta.is_signer,
                "{name}.{}: signer",
                acc["name"]
            );
        }
    }
}
