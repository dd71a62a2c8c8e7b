use advancia_pay_cosmwasm::ContractError;
use advancia_pay_cosmwasm::msg::{ExecuteMsg, QueryMsg, ReceiveMsg};
use advancia_pay_cosmwasm::state::{AssetInfo, Payment};
use cosmwasm_std::{Coin, Uint128, coins};

use super::harness::*;

#[test]
fn native_payment_splits_fee_and_records_the_invoice() {
    let mut s = Suite::new();
    let payer = s.payer.clone();
    let amount = 400_000;
    let res = s.pay(&payer, "inv-1", amount).unwrap();

    let fee = fee(amount);
    assert_eq!(fee, 10_000);
    assert_eq!(s.balance(&s.payout), amount - fee);
    assert_eq!(s.balance(&s.treasury), fee);
    assert_eq!(s.balance(&payer), START_BALANCE - amount);
    assert_eq!(s.balance(&s.contract), 0, "the contract keeps nothing");

    for (key, want) in [
        ("action", "pay"),
        ("facility_id", FACILITY),
        ("invoice_id", "inv-1"),
        ("payer", payer.as_str()),
        ("asset", "native:uatom"),
        ("amount", "400000"),
        ("fee", "10000"),
        ("net", "390000"),
    ] {
        assert_eq!(s.attr(&res, key).as_deref(), Some(want), "attribute {key}");
    }
    let p: Option<Payment> = s.query(&QueryMsg::Payment {
        payer: payer.to_string(),
        invoice_id: "inv-1".into(),
    });
    let p = p.unwrap();
    assert_eq!(p.amount, Uint128::new(amount));
    assert_eq!(p.fee, Uint128::new(fee));
    assert_eq!(p.refunded, Uint128::zero());
    assert_eq!(p.paid_at, s.now());
}

#[test]
fn an_invoice_cannot_be_paid_twice() {
    let mut s = Suite::new();
    let payer = s.payer.clone();
    s.pay(&payer, "inv-1", 1_000).unwrap();
    assert_err(
        s.pay(&payer, "inv-1", 1_000),
        ContractError::AlreadyPaid {
            payer: payer.to_string(),
            invoice_id: "inv-1".into(),
        },
    );
    // Not even with tokens instead of coins.
    let token = s.token.clone();
    let hook = ReceiveMsg::Pay {
        facility_id: FACILITY.into(),
        invoice_id: "inv-1".into(),
    };
    assert_err(
        s.send_tokens(&token, &payer, 1_000, &hook),
        ContractError::AlreadyPaid {
            payer: payer.to_string(),
            invoice_id: "inv-1".into(),
        },
    );
    assert_eq!(
        s.balance(&payer),
        START_BALANCE - 1_000,
        "the failed attempt moved nothing"
    );
    let list: Vec<Payment> = s.query(&QueryMsg::Payments {
        payer: payer.to_string(),
        start_after: None,
        limit: None,
    });
    assert_eq!(list.len(), 1);
}

#[test]
fn wrong_funds_are_refused() {
    let mut s = Suite::new();
    let payer = s.payer.clone();
    let msg = ExecuteMsg::Pay {
        facility_id: FACILITY.into(),
        invoice_id: "inv-1".into(),
    };
    assert_err(
        s.exec(&payer, &msg, &[]),
        ContractError::WrongFunds {
            reason: "send exactly one coin, got 0".into(),
        },
    );
    assert_err(
        s.exec(
            &payer,
            &msg,
            &[Coin::new(5u128, DENOM), Coin::new(5u128, OTHER_DENOM)],
        ),
        ContractError::WrongFunds {
            reason: "send exactly one coin, got 2".into(),
        },
    );
    assert_err(
        s.exec(&payer, &msg, &coins(5, OTHER_DENOM)),
        ContractError::AssetNotAccepted {
            asset: "native:uosmo".into(),
        },
    );
    let unknown = ExecuteMsg::Pay {
        facility_id: "nope".into(),
        invoice_id: "inv-1".into(),
    };
    assert_err(
        s.exec(&payer, &unknown, &coins(5, DENOM)),
        ContractError::FacilityNotFound {
            facility_id: "nope".into(),
        },
    );
    assert_eq!(s.balance(&payer), START_BALANCE);
}

#[test]
fn payments_stop_while_paused() {
    let mut s = Suite::new();
    let (admin, payer) = (s.admin.clone(), s.payer.clone());
    let pause = ExecuteMsg::UpdateConfig {
        treasury: None,
        compliance_authority: None,
        settlement_authority: None,
        fee_bps: None,
        paused: Some(true),
    };
    s.exec_ok(&admin, &pause);
    assert_err(s.pay(&payer, "inv-1", 10), ContractError::Paused);
}

#[test]
fn cw20_payment_splits_fee_in_tokens() {
    let mut s = Suite::new();
    let (payer, token) = (s.payer.clone(), s.token.clone());
    let hook = ReceiveMsg::Pay {
        facility_id: FACILITY.into(),
        invoice_id: "inv-t".into(),
    };
    let amount = 80_000;
    let res = s.send_tokens(&token, &payer, amount, &hook).unwrap();
    assert_eq!(s.token_balance(&token, &s.payout), amount - fee(amount));
    assert_eq!(s.token_balance(&token, &s.treasury), fee(amount));
    assert_eq!(s.token_balance(&token, &s.contract), 0);
    assert_eq!(s.attr(&res, "asset"), Some(format!("cw20:{token}")),);
    assert_eq!(s.attr(&res, "payer").as_deref(), Some(payer.as_str()));
    let p: Option<Payment> = s.query(&QueryMsg::Payment {
        payer: payer.to_string(),
        invoice_id: "inv-t".into(),
    });
    assert_eq!(
        p.unwrap().asset,
        AssetInfo::Cw20 {
            contract: token.to_string()
        }
    );
}

#[test]
fn cw20_from_an_unknown_token_contract_is_refused() {
    let mut s = Suite::new();
    let (payer, rogue) = (s.payer.clone(), s.rogue_token.clone());
    let hook = ReceiveMsg::Pay {
        facility_id: FACILITY.into(),
        invoice_id: "inv-r".into(),
    };
    assert_err(
        s.send_tokens(&rogue, &payer, 500, &hook),
        ContractError::UnknownToken {
            token: rogue.to_string(),
        },
    );
    // The whole Send was rolled back.
    assert_eq!(s.token_balance(&rogue, &payer), START_BALANCE);
    // Calling the Receive hook directly (forging a token transfer) is the same failure.
    let forged = ExecuteMsg::Receive(advancia_pay_cosmwasm::cw20::Cw20ReceiveMsg {
        sender: payer.to_string(),
        amount: Uint128::new(500),
        msg: cosmwasm_std::to_json_binary(&hook).unwrap(),
    });
    assert_err(
        s.exec(&payer, &forged, &[]),
        ContractError::UnknownToken {
            token: payer.to_string(),
        },
    );
}

#[test]
fn payment_above_threshold_needs_a_valid_attestation() {
    let mut s = Suite::new();
    let (payer, compliance) = (s.payer.clone(), s.compliance.clone());
    // At the threshold: no attestation needed.
    s.pay(&payer, "inv-at", THRESHOLD).unwrap();
    assert_err(
        s.pay(&payer, "inv-above", THRESHOLD + 1),
        ContractError::KycRequired {
            threshold: THRESHOLD.to_string(),
        },
    );
    s.attest(&payer, 100);
    s.pay(&payer, "inv-above", THRESHOLD + 1).unwrap();

    s.exec_ok(
        &compliance,
        &ExecuteMsg::RevokeAttestation {
            wallet: payer.to_string(),
        },
    );
    assert_err(
        s.pay(&payer, "inv-revoked", THRESHOLD + 1),
        ContractError::AttestationRevoked,
    );
    let renew = ExecuteMsg::RenewAttestation {
        wallet: payer.to_string(),
        level: 1,
        expires_at: s.now() + 50,
    };
    s.exec_ok(&compliance, &renew);
    s.pay(&payer, "inv-renewed", THRESHOLD + 1).unwrap();
    s.advance(50);
    assert_err(
        s.pay(&payer, "inv-expired", THRESHOLD + 1),
        ContractError::AttestationExpired,
    );
    // The same gate applies to token payments.
    let token = s.token.clone();
    let hook = ReceiveMsg::Pay {
        facility_id: FACILITY.into(),
        invoice_id: "inv-t".into(),
    };
    assert_err(
        s.send_tokens(&token, &payer, THRESHOLD + 1, &hook),
        ContractError::AttestationExpired,
    );
}
