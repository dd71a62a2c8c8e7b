use advancia_pay_cosmwasm::ContractError;
use advancia_pay_cosmwasm::msg::{AssetConfig, ConfigResponse, ExecuteMsg, QueryMsg};
use advancia_pay_cosmwasm::state::{AssetInfo, MAX_FEE_BPS};
use cosmwasm_std::{Uint128, coins};
use cw_multi_test::{ContractWrapper, Executor};

use super::harness::*;

fn update(fee_bps: Option<u16>, paused: Option<bool>) -> ExecuteMsg {
    ExecuteMsg::UpdateConfig {
        treasury: None,
        compliance_authority: None,
        settlement_authority: None,
        fee_bps,
        paused,
    }
}

#[test]
fn instantiate_stores_config_and_rejects_fee_above_cap() {
    let mut s = Suite::bare();
    let c: ConfigResponse = s.query(&QueryMsg::Config {});
    assert_eq!(c.admin, s.admin.as_str());
    assert_eq!(c.treasury, s.treasury.as_str());
    assert_eq!(c.fee_bps, FEE_BPS);
    assert!(!c.paused);
    assert_eq!(c.last_batch_number, 0);

    let code = s.app.store_code(Box::new(ContractWrapper::new(
        advancia_pay_cosmwasm::contract::execute,
        advancia_pay_cosmwasm::contract::instantiate,
        advancia_pay_cosmwasm::contract::query,
    )));
    let msg = advancia_pay_cosmwasm::msg::InstantiateMsg {
        admin: None,
        treasury: s.treasury.to_string(),
        fee_bps: MAX_FEE_BPS + 1,
        compliance_authority: s.compliance.to_string(),
        settlement_authority: s.settlement.to_string(),
        assets: vec![],
        bridge: None,
    };
    let err = s
        .app
        .instantiate_contract(code, s.admin.clone(), &msg, &[], "x", None)
        .unwrap_err();
    let want = ContractError::FeeTooHigh {
        fee_bps: MAX_FEE_BPS + 1,
        max: MAX_FEE_BPS,
    };
    assert!(err.to_string().ends_with(&want.to_string()), "{err}");
}

#[test]
fn admin_updates_config_others_cannot() {
    let mut s = Suite::bare();
    let admin = s.admin.clone();
    let stranger = s.stranger.clone();
    let res = s.exec_ok(&admin, &update(Some(MAX_FEE_BPS), Some(true)));
    assert_eq!(s.attr(&res, "action").as_deref(), Some("update_config"));
    assert_eq!(s.attr(&res, "fee_bps").as_deref(), Some("1000"));
    assert_eq!(s.attr(&res, "paused").as_deref(), Some("true"));
    let c: ConfigResponse = s.query(&QueryMsg::Config {});
    assert_eq!((c.fee_bps, c.paused), (MAX_FEE_BPS, true));

    assert_err(
        s.exec(&admin, &update(Some(MAX_FEE_BPS + 1), None), &[]),
        ContractError::FeeTooHigh {
            fee_bps: MAX_FEE_BPS + 1,
            max: MAX_FEE_BPS,
        },
    );
    assert_err(
        s.exec(&stranger, &update(None, Some(false)), &[]),
        ContractError::unauthorized(stranger.as_str(), "update the config"),
    );
    // Funds sent to a message that takes none are refused, not kept.
    assert_err(
        s.exec(&admin, &update(None, Some(false)), &coins(5, DENOM)),
        ContractError::WrongFunds {
            reason: "this message takes no funds".into(),
        },
    );
}

#[test]
fn admin_hand_over_takes_two_steps() {
    let mut s = Suite::bare();
    let (admin, stranger, arbiter) = (s.admin.clone(), s.stranger.clone(), s.arbiter.clone());
    let propose = ExecuteMsg::ProposeAdmin {
        new_admin: arbiter.to_string(),
    };
    assert_err(
        s.exec(&stranger, &propose, &[]),
        ContractError::unauthorized(stranger.as_str(), "propose an admin"),
    );
    let res = s.exec_ok(&admin, &propose);
    assert_eq!(s.attr(&res, "proposed").as_deref(), Some(arbiter.as_str()));
    let c: ConfigResponse = s.query(&QueryMsg::Config {});
    assert_eq!(c.admin, admin.as_str(), "nothing changes before acceptance");
    assert_eq!(c.pending_admin.as_deref(), Some(arbiter.as_str()));

    assert_err(
        s.exec(&stranger, &ExecuteMsg::AcceptAdmin {}, &[]),
        ContractError::NotPendingAdmin,
    );
    let res = s.exec_ok(&arbiter, &ExecuteMsg::AcceptAdmin {});
    assert_eq!(s.attr(&res, "previous").as_deref(), Some(admin.as_str()));
    let c: ConfigResponse = s.query(&QueryMsg::Config {});
    assert_eq!(c.admin, arbiter.as_str());
    assert_eq!(c.pending_admin, None);
    // The previous admin has lost its rights.
    assert_err(
        s.exec(&admin, &update(None, Some(true)), &[]),
        ContractError::unauthorized(admin.as_str(), "update the config"),
    );
}

#[test]
fn set_asset_adds_and_disables_assets() {
    let mut s = Suite::new();
    let (admin, stranger, payer) = (s.admin.clone(), s.stranger.clone(), s.payer.clone());
    let osmo = AssetConfig {
        asset: AssetInfo::Native {
            denom: OTHER_DENOM.into(),
        },
        kyc_threshold: Uint128::new(10),
        enabled: true,
    };
    assert_err(
        s.exec(&stranger, &ExecuteMsg::SetAsset(osmo.clone()), &[]),
        ContractError::unauthorized(stranger.as_str(), "set an asset"),
    );
    let res = s.exec_ok(&admin, &ExecuteMsg::SetAsset(osmo.clone()));
    assert_eq!(s.attr(&res, "asset").as_deref(), Some("native:uosmo"));
    let got: Option<AssetConfig> = s.query(&QueryMsg::Asset {
        asset: osmo.asset.clone(),
    });
    assert_eq!(got, Some(osmo.clone()));
    let all: Vec<AssetConfig> = s.query(&QueryMsg::Assets {
        start_after: None,
        limit: None,
    });
    assert_eq!(all.len(), 3);

    // Disabled: a payment in it fails with the specific error.
    let disabled = AssetConfig {
        enabled: false,
        ..osmo
    };
    s.exec_ok(&admin, &ExecuteMsg::SetAsset(disabled));
    let msg = ExecuteMsg::Pay {
        facility_id: FACILITY.into(),
        invoice_id: "inv-osmo".into(),
    };
    assert_err(
        s.exec(&payer, &msg, &coins(5, OTHER_DENOM)),
        ContractError::AssetDisabled {
            asset: "native:uosmo".into(),
        },
    );
}
