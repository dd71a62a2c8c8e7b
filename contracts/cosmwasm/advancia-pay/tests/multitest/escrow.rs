use advancia_pay_cosmwasm::ContractError;
use advancia_pay_cosmwasm::msg::{ExecuteMsg, QueryMsg, ReceiveMsg};
use advancia_pay_cosmwasm::state::Escrow;
use cosmwasm_std::{Uint128, coins};
use cw_multi_test::AppResponse;

use super::harness::*;

const AMOUNT: u128 = 100_000;
const TTL: u64 = 3_600;

fn open(s: &mut Suite, id: &str) -> AppResponse {
    let msg = ExecuteMsg::OpenEscrow {
        escrow_id: id.into(),
        facility_id: FACILITY.into(),
        arbiter: s.arbiter.to_string(),
        expires_at: s.now() + TTL,
    };
    let payer = s.payer.clone();
    s.exec(&payer, &msg, &coins(AMOUNT, DENOM)).unwrap()
}

fn release(s: &Suite, id: &str, amount: u128) -> ExecuteMsg {
    ExecuteMsg::ReleaseEscrow {
        payer: s.payer.to_string(),
        escrow_id: id.into(),
        amount: Uint128::new(amount),
    }
}

fn refund(s: &Suite, id: &str) -> ExecuteMsg {
    ExecuteMsg::RefundEscrow {
        payer: s.payer.to_string(),
        escrow_id: id.into(),
    }
}

fn escrow(s: &Suite, id: &str) -> Escrow {
    let e: Option<Escrow> = s.query(&QueryMsg::Escrow {
        payer: s.payer.to_string(),
        escrow_id: id.into(),
    });
    e.unwrap()
}

#[test]
fn open_release_in_parts_then_arbiter_refunds_the_rest() {
    let mut s = Suite::new();
    let (payer, arbiter) = (s.payer.clone(), s.arbiter.clone());
    let res = open(&mut s, "e-1");
    assert_eq!(s.attr(&res, "action").as_deref(), Some("open_escrow"));
    assert_eq!(s.attr(&res, "amount").as_deref(), Some("100000"));
    assert_eq!(
        s.balance(&s.contract),
        AMOUNT,
        "the contract holds the escrow"
    );

    let res = s.exec(&payer, &release(&s, "e-1", 30_000), &[]).unwrap();
    assert_eq!(s.attr(&res, "fee").as_deref(), Some("750"));
    assert_eq!(s.attr(&res, "released_total").as_deref(), Some("30000"));
    assert_eq!(s.balance(&s.payout), 30_000 - fee(30_000));
    assert_eq!(s.balance(&s.treasury), fee(30_000));
    s.exec(&arbiter, &release(&s, "e-1", 20_000), &[]).unwrap();
    assert_eq!(escrow(&s, "e-1").released, Uint128::new(50_000));

    assert_err(
        s.exec(&payer, &release(&s, "e-1", 50_001), &[]),
        ContractError::ReleaseExceedsEscrow {
            requested: "50001".into(),
            remaining: "50000".into(),
        },
    );
    let before = s.balance(&payer);
    let res = s.exec(&arbiter, &refund(&s, "e-1"), &[]).unwrap();
    assert_eq!(s.attr(&res, "amount").as_deref(), Some("50000"));
    assert_eq!(s.balance(&payer), before + 50_000);
    assert_eq!(s.balance(&s.contract), 0);
    assert_err(
        s.exec(&payer, &release(&s, "e-1", 1), &[]),
        ContractError::EscrowSettled,
    );
    assert_err(
        s.exec(&arbiter, &refund(&s, "e-1"), &[]),
        ContractError::EscrowSettled,
    );
}

#[test]
fn only_payer_or_arbiter_release_and_never_after_expiry() {
    let mut s = Suite::new();
    let (authority, stranger, payer) = (s.authority.clone(), s.stranger.clone(), s.payer.clone());
    open(&mut s, "e-1");
    for who in [&stranger, &authority] {
        assert_err(
            s.exec(who, &release(&s, "e-1", 1), &[]),
            ContractError::unauthorized(who.as_str(), "release this escrow"),
        );
    }
    s.advance(TTL);
    assert_err(
        s.exec(&payer, &release(&s, "e-1", 1), &[]),
        ContractError::EscrowExpired,
    );
}

#[test]
fn refund_before_expiry_needs_facility_or_arbiter_after_expiry_anyone() {
    let mut s = Suite::new();
    let (authority, stranger, payer) = (s.authority.clone(), s.stranger.clone(), s.payer.clone());
    open(&mut s, "e-1");
    open(&mut s, "e-2");
    assert_err(
        s.exec(&stranger, &refund(&s, "e-1"), &[]),
        ContractError::EarlyRefund,
    );
    // The payer too must wait for expiry or the arbiter.
    assert_err(
        s.exec(&payer, &refund(&s, "e-1"), &[]),
        ContractError::EarlyRefund,
    );
    s.exec(&authority, &refund(&s, "e-1"), &[]).unwrap();
    assert_eq!(escrow(&s, "e-1").refunded, Uint128::new(AMOUNT));

    s.advance(TTL);
    let before = s.balance(&payer);
    let res = s.exec(&stranger, &refund(&s, "e-2"), &[]).unwrap();
    assert_eq!(s.attr(&res, "by").as_deref(), Some(stranger.as_str()));
    // Whoever triggers it, the money goes to the payer.
    assert_eq!(s.balance(&payer), before + AMOUNT);
}

#[test]
fn opening_rules() {
    let mut s = Suite::new();
    let (payer, admin) = (s.payer.clone(), s.admin.clone());
    open(&mut s, "e-1");
    let again = ExecuteMsg::OpenEscrow {
        escrow_id: "e-1".into(),
        facility_id: FACILITY.into(),
        arbiter: s.arbiter.to_string(),
        expires_at: s.now() + TTL,
    };
    assert_err(
        s.exec(&payer, &again, &coins(AMOUNT, DENOM)),
        ContractError::EscrowExists {
            payer: payer.to_string(),
            escrow_id: "e-1".into(),
        },
    );
    let past = ExecuteMsg::OpenEscrow {
        escrow_id: "e-2".into(),
        facility_id: FACILITY.into(),
        arbiter: s.arbiter.to_string(),
        expires_at: s.now(),
    };
    assert_err(
        s.exec(&payer, &past, &coins(AMOUNT, DENOM)),
        ContractError::InvalidExpiry,
    );
    assert_err(
        s.exec(&payer, &past, &[]),
        ContractError::WrongFunds {
            reason: "send exactly one coin, got 0".into(),
        },
    );
    // Above the KYC threshold an escrow needs an attestation like a payment.
    let big = ExecuteMsg::OpenEscrow {
        escrow_id: "e-3".into(),
        facility_id: FACILITY.into(),
        arbiter: s.arbiter.to_string(),
        expires_at: s.now() + TTL,
    };
    assert_err(
        s.exec(&payer, &big, &coins(THRESHOLD + 1, DENOM)),
        ContractError::KycRequired {
            threshold: THRESHOLD.to_string(),
        },
    );
    // Paused: no new escrow and no release; refunds still work.
    let pause = ExecuteMsg::UpdateConfig {
        treasury: None,
        compliance_authority: None,
        settlement_authority: None,
        fee_bps: None,
        paused: Some(true),
    };
    s.exec_ok(&admin, &pause);
    assert_err(
        s.exec(&payer, &big, &coins(10, DENOM)),
        ContractError::Paused,
    );
    assert_err(
        s.exec(&payer, &release(&s, "e-1", 1), &[]),
        ContractError::Paused,
    );
    let arbiter = s.arbiter.clone();
    s.exec(&arbiter, &refund(&s, "e-1"), &[]).unwrap();
    let list: Vec<Escrow> = s.query(&QueryMsg::Escrows {
        payer: payer.to_string(),
        start_after: None,
        limit: None,
    });
    assert_eq!(list.len(), 1);
}

#[test]
fn cw20_escrow_releases_tokens() {
    let mut s = Suite::new();
    let (payer, token) = (s.payer.clone(), s.token.clone());
    let hook = ReceiveMsg::OpenEscrow {
        escrow_id: "e-t".into(),
        facility_id: FACILITY.into(),
        arbiter: s.arbiter.to_string(),
        expires_at: s.now() + TTL,
    };
    s.send_tokens(&token, &payer, 40_000, &hook).unwrap();
    assert_eq!(s.token_balance(&token, &s.contract), 40_000);
    s.exec(&payer, &release(&s, "e-t", 40_000), &[]).unwrap();
    assert_eq!(s.token_balance(&token, &s.payout), 40_000 - fee(40_000));
    assert_eq!(s.token_balance(&token, &s.treasury), fee(40_000));
    assert_eq!(s.token_balance(&token, &s.contract), 0);
}

#[test]
fn deactivated_facility_receives_no_releases_but_the_payer_gets_refunded() {
    let mut s = Suite::new();
    let (admin, payer, arbiter) = (s.admin.clone(), s.payer.clone(), s.arbiter.clone());
    open(&mut s, "e-1");
    s.exec_ok(
        &admin,
        &ExecuteMsg::DeactivateFacility {
            facility_id: FACILITY.into(),
        },
    );
    assert_err(
        s.exec(&payer, &release(&s, "e-1", 1), &[]),
        ContractError::FacilityInactive {
            facility_id: FACILITY.into(),
        },
    );
    let before = s.balance(&payer);
    s.exec(&arbiter, &refund(&s, "e-1"), &[]).unwrap();
    assert_eq!(s.balance(&payer), before + AMOUNT);
    assert_err(
        s.exec(&payer, &refund(&s, "nope"), &[]),
        ContractError::EscrowNotFound {
            payer: payer.to_string(),
            escrow_id: "nope".into(),
        },
    );
}
