use advancia_pay_cosmwasm::ContractError;
use advancia_pay_cosmwasm::msg::{
    BridgeMessage, ExecuteMsg, QueryMsg, ValidatorSetInput, ValidatorSetResponse,
};
use advancia_pay_cosmwasm::state::InboxMessage;
use cosmwasm_std::{Binary, HexBinary};

use super::harness::*;

fn message(id: &str, set_version: u64) -> BridgeMessage {
    BridgeMessage {
        id: id.into(),
        source_chain: "solana-devnet".into(),
        set_version,
        payload: Binary::from(b"{\"credit\":\"inv-1\"}".as_slice()),
    }
}

fn deliver(
    message: BridgeMessage,
    signatures: Vec<advancia_pay_cosmwasm::msg::ValidatorSignature>,
) -> ExecuteMsg {
    ExecuteMsg::ReceiveBridgeMessage {
        message,
        signatures,
    }
}

#[test]
fn two_of_three_signatures_deliver_once() {
    let mut s = Suite::bare();
    let relayer = s.stranger.clone();
    let m = message("msg-1", 1);
    let sigs = s.sign(&m, &[0, 2]);
    let res = s
        .exec(&relayer, &deliver(m.clone(), sigs.clone()), &[])
        .unwrap();
    assert_eq!(s.attr(&res, "action").as_deref(), Some("bridge_message"));
    assert_eq!(s.attr(&res, "message_id").as_deref(), Some("msg-1"));
    assert_eq!(s.attr(&res, "signers").as_deref(), Some("2"));
    let digest: HexBinary = s.query(&QueryMsg::BridgeDigest { message: m.clone() });
    assert_eq!(s.attr(&res, "digest"), Some(digest.to_hex()));

    let stored: Option<InboxMessage> = s.query(&QueryMsg::BridgeMessage { id: "msg-1".into() });
    let stored = stored.unwrap();
    assert_eq!(stored.payload, m.payload);
    assert_eq!(stored.signers.len(), 2);

    assert_err(
        s.exec(&relayer, &deliver(m, sigs), &[]),
        ContractError::MessageReplayed { id: "msg-1".into() },
    );
    // All three also work, for a new id.
    let m2 = message("msg-2", 1);
    let sigs = s.sign(&m2, &[0, 1, 2]);
    s.exec(&relayer, &deliver(m2, sigs), &[]).unwrap();
    let all: Vec<InboxMessage> = s.query(&QueryMsg::BridgeMessages {
        start_after: None,
        limit: None,
    });
    assert_eq!(all.len(), 2);
}

#[test]
fn below_threshold_duplicate_unsorted_and_unknown_signers_fail() {
    let mut s = Suite::bare();
    let relayer = s.stranger.clone();
    let m = message("msg-1", 1);
    assert_err(
        s.exec(&relayer, &deliver(m.clone(), s.sign(&m, &[1])), &[]),
        ContractError::BelowThreshold {
            got: 1,
            threshold: 2,
        },
    );
    // One validator signing twice is still one signer.
    let one = s.sign(&m, &[1]).remove(0);
    assert_err(
        s.exec(
            &relayer,
            &deliver(m.clone(), vec![one.clone(), one.clone()]),
            &[],
        ),
        ContractError::DuplicateSigner {
            pubkey: one.pubkey.to_hex(),
        },
    );
    let mut reversed = s.sign(&m, &[0, 1]);
    reversed.reverse();
    assert_err(
        s.exec(&relayer, &deliver(m.clone(), reversed), &[]),
        ContractError::SignersNotSorted,
    );
    let outsider = validator_key(9);
    let digest = advancia_pay_cosmwasm::bridge::signing_digest(
        &m,
        &s.app.block_info().chain_id,
        s.contract.as_str(),
    );
    let mut keys = [s.validators[0].clone(), outsider.clone()];
    keys.sort_by_key(pubkey);
    let sigs = sign_digest(&digest, keys.iter());
    assert_err(
        s.exec(&relayer, &deliver(m.clone(), sigs), &[]),
        ContractError::UnknownSigner {
            pubkey: pubkey(&outsider).to_hex(),
        },
    );
    // Nothing was stored by the failed deliveries: the message still goes through.
    let sigs = s.sign(&m, &[0, 1]);
    s.exec(&relayer, &deliver(m, sigs), &[]).unwrap();
}

#[test]
fn signatures_bind_chain_contract_and_payload() {
    let mut s = Suite::bare();
    let relayer = s.stranger.clone();
    let m = message("msg-1", 1);
    // Signed for another destination chain.
    let foreign =
        advancia_pay_cosmwasm::bridge::signing_digest(&m, "other-chain", s.contract.as_str());
    let sigs = sign_digest(&foreign, s.validators[..2].iter());
    let first = sigs[0].pubkey.to_hex();
    assert_err(
        s.exec(&relayer, &deliver(m.clone(), sigs), &[]),
        ContractError::InvalidSignature { pubkey: first },
    );
    // Valid signatures over a different payload.
    let sigs = s.sign(&m, &[0, 1]);
    let tampered = BridgeMessage {
        payload: Binary::from(b"{\"credit\":\"inv-2\"}".as_slice()),
        ..m.clone()
    };
    let first = sigs[0].pubkey.to_hex();
    assert_err(
        s.exec(&relayer, &deliver(tampered, sigs), &[]),
        ContractError::InvalidSignature { pubkey: first },
    );
}

#[test]
fn validator_set_rotation_bumps_the_version() {
    let mut s = Suite::bare();
    let (admin, relayer) = (s.admin.clone(), s.stranger.clone());
    let new_keys: Vec<_> = (3..7).map(validator_key).collect();
    let update = ExecuteMsg::UpdateValidatorSet(ValidatorSetInput {
        validators: new_keys.iter().map(pubkey).collect(),
        threshold: 3,
    });
    assert_err(
        s.exec(&relayer, &update, &[]),
        ContractError::unauthorized(relayer.as_str(), "update the validator set"),
    );
    let signed_for_v1 = message("msg-1", 1);
    let old_sigs = s.sign(&signed_for_v1, &[0, 1]);
    let res = s.exec_ok(&admin, &update);
    assert_eq!(s.attr(&res, "set_version").as_deref(), Some("2"));
    let set: ValidatorSetResponse = s.query(&QueryMsg::ValidatorSet {});
    assert_eq!(
        (set.version, set.threshold, set.validators.len()),
        (2, 3, 4)
    );

    // Old signatures for the old set are refused after the rotation.
    assert_err(
        s.exec(&relayer, &deliver(signed_for_v1, old_sigs), &[]),
        ContractError::WrongSetVersion {
            expected: 2,
            got: 1,
        },
    );
    s.validators = new_keys;
    let m = message("msg-1", 2);
    let sigs = s.sign(&m, &[0, 2, 3]);
    s.exec(&relayer, &deliver(m.clone(), sigs), &[]).unwrap();
    assert_err(
        s.exec(
            &relayer,
            &deliver(message("msg-9", 3), s.sign(&m, &[0, 1, 2])),
            &[],
        ),
        ContractError::WrongSetVersion {
            expected: 2,
            got: 3,
        },
    );

    let bad_threshold = ExecuteMsg::UpdateValidatorSet(ValidatorSetInput {
        validators: s.validators.iter().map(pubkey).collect(),
        threshold: 5,
    });
    assert_err(
        s.exec(&admin, &bad_threshold, &[]),
        ContractError::InvalidValidatorSet {
            reason: "threshold must be between 1 and the number of validators".into(),
        },
    );
    let dup = pubkey(&s.validators[0]);
    let duplicate = ExecuteMsg::UpdateValidatorSet(ValidatorSetInput {
        validators: vec![dup.clone(), dup],
        threshold: 1,
    });
    assert_err(
        s.exec(&admin, &duplicate, &[]),
        ContractError::InvalidValidatorSet {
            reason: "duplicate validator key".into(),
        },
    );
}

#[test]
fn inbox_is_closed_without_a_validator_set() {
    let mut s = Suite::bare();
    let code = s
        .app
        .store_code(Box::new(cw_multi_test::ContractWrapper::new(
            advancia_pay_cosmwasm::contract::execute,
            advancia_pay_cosmwasm::contract::instantiate,
            advancia_pay_cosmwasm::contract::query,
        )));
    let msg = advancia_pay_cosmwasm::msg::InstantiateMsg {
        admin: None,
        treasury: s.treasury.to_string(),
        fee_bps: 0,
        compliance_authority: s.compliance.to_string(),
        settlement_authority: s.settlement.to_string(),
        assets: vec![],
        bridge: None,
    };
    use cw_multi_test::Executor;
    let closed = s
        .app
        .instantiate_contract(code, s.admin.clone(), &msg, &[], "closed", None)
        .unwrap();
    s.contract = closed;
    let m = message("msg-1", 0);
    let sigs = s.sign(&m, &[0, 1]);
    let relayer = s.stranger.clone();
    assert_err(
        s.exec(&relayer, &deliver(m, sigs), &[]),
        ContractError::BridgeNotConfigured,
    );
}
