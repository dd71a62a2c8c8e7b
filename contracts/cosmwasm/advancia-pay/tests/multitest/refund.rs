use advancia_pay_cosmwasm::ContractError;
use advancia_pay_cosmwasm::msg::{ExecuteMsg, QueryMsg, ReceiveMsg};
use advancia_pay_cosmwasm::state::Payment;
use cosmwasm_std::{Uint128, coins};

use super::harness::*;

fn refund(s: &Suite, invoice: &str) -> ExecuteMsg {
    ExecuteMsg::Refund {
        payer: s.payer.to_string(),
        invoice_id: invoice.into(),
    }
}

#[test]
fn facility_refunds_in_parts_never_more_than_paid() {
    let mut s = Suite::new();
    let (payer, authority) = (s.payer.clone(), s.authority.clone());
    s.pay(&payer, "inv-1", 10_000).unwrap();
    let after_pay = s.balance(&payer);

    let msg = refund(&s, "inv-1");
    let res = s.exec(&authority, &msg, &coins(4_000, DENOM)).unwrap();
    assert_eq!(s.attr(&res, "action").as_deref(), Some("refund"));
    assert_eq!(s.attr(&res, "amount").as_deref(), Some("4000"));
    assert_eq!(s.attr(&res, "refunded_total").as_deref(), Some("4000"));
    assert_eq!(s.balance(&payer), after_pay + 4_000);
    assert_eq!(s.balance(&authority), START_BALANCE - 4_000);

    assert_err(
        s.exec(&authority, &msg, &coins(6_001, DENOM)),
        ContractError::RefundExceedsPayment {
            requested: "6001".into(),
            refundable: "6000".into(),
        },
    );
    s.exec(&authority, &msg, &coins(6_000, DENOM)).unwrap();
    let p: Option<Payment> = s.query(&QueryMsg::Payment {
        payer: payer.to_string(),
        invoice_id: "inv-1".into(),
    });
    assert_eq!(p.unwrap().refunded, Uint128::new(10_000));
    assert_err(
        s.exec(&authority, &msg, &coins(1, DENOM)),
        ContractError::RefundExceedsPayment {
            requested: "1".into(),
            refundable: "0".into(),
        },
    );
}

#[test]
fn only_the_facility_authority_refunds_in_the_payment_asset() {
    let mut s = Suite::new();
    let (payer, authority, stranger, admin) = (
        s.payer.clone(),
        s.authority.clone(),
        s.stranger.clone(),
        s.admin.clone(),
    );
    s.pay(&payer, "inv-1", 10_000).unwrap();
    let msg = refund(&s, "inv-1");
    assert_err(
        s.exec(&stranger, &msg, &coins(10, DENOM)),
        ContractError::unauthorized(stranger.as_str(), "refund this payment"),
    );
    // Tokens cannot refund a coin payment.
    let token = s.token.clone();
    let hook = ReceiveMsg::Refund {
        payer: payer.to_string(),
        invoice_id: "inv-1".into(),
    };
    assert_err(
        s.send_tokens(&token, &authority, 10, &hook),
        ContractError::WrongFunds {
            reason: format!("refund must be paid in native:uatom, got cw20:{token}"),
        },
    );
    assert_err(
        s.exec(&authority, &refund(&s, "nope"), &coins(10, DENOM)),
        ContractError::PaymentNotFound {
            payer: payer.to_string(),
            invoice_id: "nope".into(),
        },
    );
    // Refunds go on while paused: returning money is never blocked.
    let pause = ExecuteMsg::UpdateConfig {
        treasury: None,
        compliance_authority: None,
        settlement_authority: None,
        fee_bps: None,
        paused: Some(true),
    };
    s.exec_ok(&admin, &pause);
    s.exec(&authority, &msg, &coins(10, DENOM)).unwrap();
}

#[test]
fn cw20_payment_is_refunded_with_tokens() {
    let mut s = Suite::new();
    let (payer, authority, token) = (s.payer.clone(), s.authority.clone(), s.token.clone());
    let pay = ReceiveMsg::Pay {
        facility_id: FACILITY.into(),
        invoice_id: "inv-t".into(),
    };
    s.send_tokens(&token, &payer, 5_000, &pay).unwrap();
    let hook = ReceiveMsg::Refund {
        payer: payer.to_string(),
        invoice_id: "inv-t".into(),
    };
    let res = s.send_tokens(&token, &authority, 2_000, &hook).unwrap();
    assert_eq!(s.attr(&res, "refunded_total").as_deref(), Some("2000"));
    assert_eq!(
        s.token_balance(&token, &payer),
        START_BALANCE - 5_000 + 2_000
    );
    assert_eq!(s.token_balance(&token, &s.contract), 0);
    assert_err(
        s.send_tokens(&token, &authority, 3_001, &hook),
        ContractError::RefundExceedsPayment {
            requested: "3001".into(),
            refundable: "3000".into(),
        },
    );
}
