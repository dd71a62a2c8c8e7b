use advancia_pay_cosmwasm::ContractError;
use advancia_pay_cosmwasm::msg::{ExecuteMsg, QueryMsg};
use advancia_pay_cosmwasm::state::Facility;

use super::harness::*;

fn register(id: &str, s: &Suite) -> ExecuteMsg {
    ExecuteMsg::RegisterFacility {
        facility_id: id.into(),
        authority: s.authority.to_string(),
        payout: s.payout.to_string(),
    }
}

#[test]
fn admin_registers_facilities_once() {
    let mut s = Suite::bare();
    let (admin, stranger) = (s.admin.clone(), s.stranger.clone());
    let msg = register("f-1", &s);
    let res = s.exec_ok(&admin, &msg);
    assert_eq!(s.attr(&res, "action").as_deref(), Some("register_facility"));
    assert_eq!(s.attr(&res, "facility_id").as_deref(), Some("f-1"));
    assert_eq!(s.attr(&res, "payout").as_deref(), Some(s.payout.as_str()));
    let f: Option<Facility> = s.query(&QueryMsg::Facility {
        facility_id: "f-1".into(),
    });
    let f = f.unwrap();
    assert!(f.active);
    assert_eq!(f.authority, s.authority);

    assert_err(
        s.exec(&admin, &msg, &[]),
        ContractError::FacilityExists {
            facility_id: "f-1".into(),
        },
    );
    let other = register("f-2", &s);
    assert_err(
        s.exec(&stranger, &other, &[]),
        ContractError::unauthorized(stranger.as_str(), "register a facility"),
    );
    let bad = register("has space", &s);
    assert_err(
        s.exec(&admin, &bad, &[]),
        ContractError::InvalidId {
            id: "has space".into(),
        },
    );
}

#[test]
fn authority_changes_payout_and_authority_or_admin_deactivates() {
    let mut s = Suite::new();
    let (authority, stranger, admin, arbiter) = (
        s.authority.clone(),
        s.stranger.clone(),
        s.admin.clone(),
        s.arbiter.clone(),
    );
    let change = ExecuteMsg::UpdateFacilityPayout {
        facility_id: FACILITY.into(),
        payout: arbiter.to_string(),
    };
    // Not even the admin may redirect a facility's money.
    assert_err(
        s.exec(&admin, &change, &[]),
        ContractError::unauthorized(admin.as_str(), "change the payout of this facility"),
    );
    let res = s.exec_ok(&authority, &change);
    assert_eq!(s.attr(&res, "payout").as_deref(), Some(arbiter.as_str()));
    let f: Option<Facility> = s.query(&QueryMsg::Facility {
        facility_id: FACILITY.into(),
    });
    assert_eq!(f.unwrap().payout, arbiter);

    let deactivate = ExecuteMsg::DeactivateFacility {
        facility_id: FACILITY.into(),
    };
    assert_err(
        s.exec(&stranger, &deactivate, &[]),
        ContractError::unauthorized(stranger.as_str(), "deactivate this facility"),
    );
    let res = s.exec_ok(&admin, &deactivate);
    assert_eq!(s.attr(&res, "by").as_deref(), Some(admin.as_str()));
    let payer = s.payer.clone();
    assert_err(
        s.pay(&payer, "inv-1", 100),
        ContractError::FacilityInactive {
            facility_id: FACILITY.into(),
        },
    );
    assert_err(
        s.exec(
            &admin,
            &ExecuteMsg::DeactivateFacility {
                facility_id: "nope".into(),
            },
            &[],
        ),
        ContractError::FacilityNotFound {
            facility_id: "nope".into(),
        },
    );
}

#[test]
fn facilities_list_pages_and_caps_the_limit() {
    let mut s = Suite::bare();
    let admin = s.admin.clone();
    for i in 0..35 {
        let msg = register(&format!("f-{i:02}"), &s);
        s.exec_ok(&admin, &msg);
    }
    let first: Vec<Facility> = s.query(&QueryMsg::Facilities {
        start_after: None,
        limit: Some(5),
    });
    let ids: Vec<&str> = first.iter().map(|f| f.facility_id.as_str()).collect();
    assert_eq!(ids, ["f-00", "f-01", "f-02", "f-03", "f-04"]);
    let next: Vec<Facility> = s.query(&QueryMsg::Facilities {
        start_after: Some("f-04".into()),
        limit: Some(2),
    });
    let ids: Vec<&str> = next.iter().map(|f| f.facility_id.as_str()).collect();
    assert_eq!(ids, ["f-05", "f-06"]);
    let capped: Vec<Facility> = s.query(&QueryMsg::Facilities {
        start_after: None,
        limit: Some(1_000),
    });
    assert_eq!(capped.len(), 30);
    let default: Vec<Facility> = s.query(&QueryMsg::Facilities {
        start_after: None,
        limit: None,
    });
    assert_eq!(default.len(), 10);
}
