use advancia_pay_cosmwasm::ContractError;
use advancia_pay_cosmwasm::msg::{ExecuteMsg, QueryMsg};
use advancia_pay_cosmwasm::state::Attestation;

use super::harness::*;

fn write(wallet: &str, level: u8, expires_at: u64) -> ExecuteMsg {
    ExecuteMsg::WriteAttestation {
        wallet: wallet.into(),
        level,
        expires_at,
    }
}

#[test]
fn compliance_authority_writes_renews_revokes() {
    let mut s = Suite::bare();
    let (compliance, payer) = (s.compliance.clone(), s.payer.clone());
    let exp = s.now() + 1_000;
    let res = s.exec_ok(&compliance, &write(payer.as_str(), 3, exp));
    assert_eq!(s.attr(&res, "action").as_deref(), Some("write_attestation"));
    assert_eq!(s.attr(&res, "level").as_deref(), Some("3"));
    assert_eq!(s.attr(&res, "expires_at"), Some(exp.to_string()));
    let a: Option<Attestation> = s.query(&QueryMsg::Attestation {
        wallet: payer.to_string(),
    });
    let a = a.unwrap();
    assert_eq!(
        (a.level, a.expires_at, a.revoked, a.issued_at),
        (3, exp, false, s.now())
    );

    assert_err(
        s.exec(&compliance, &write(payer.as_str(), 3, exp), &[]),
        ContractError::AttestationExists {
            wallet: payer.to_string(),
        },
    );
    s.exec_ok(
        &compliance,
        &ExecuteMsg::RevokeAttestation {
            wallet: payer.to_string(),
        },
    );
    let a: Option<Attestation> = s.query(&QueryMsg::Attestation {
        wallet: payer.to_string(),
    });
    assert!(a.unwrap().revoked);
    let renew = ExecuteMsg::RenewAttestation {
        wallet: payer.to_string(),
        level: 1,
        expires_at: exp + 1,
    };
    let res = s.exec_ok(&compliance, &renew);
    assert_eq!(s.attr(&res, "action").as_deref(), Some("renew_attestation"));
    let a: Option<Attestation> = s.query(&QueryMsg::Attestation {
        wallet: payer.to_string(),
    });
    let a = a.unwrap();
    assert_eq!((a.level, a.expires_at, a.revoked), (1, exp + 1, false));
}

#[test]
fn attestation_rules_and_authorization() {
    let mut s = Suite::bare();
    let (compliance, admin, payer, stranger) = (
        s.compliance.clone(),
        s.admin.clone(),
        s.payer.clone(),
        s.stranger.clone(),
    );
    let exp = s.now() + 1_000;
    // Not even the admin writes attestations.
    assert_err(
        s.exec(&admin, &write(payer.as_str(), 1, exp), &[]),
        ContractError::unauthorized(admin.as_str(), "manage KYC attestations"),
    );
    assert_err(
        s.exec(&compliance, &write(payer.as_str(), 0, exp), &[]),
        ContractError::InvalidKycLevel,
    );
    assert_err(
        s.exec(&compliance, &write(payer.as_str(), 1, s.now()), &[]),
        ContractError::InvalidExpiry,
    );
    let renew = ExecuteMsg::RenewAttestation {
        wallet: stranger.to_string(),
        level: 1,
        expires_at: exp,
    };
    assert_err(
        s.exec(&compliance, &renew, &[]),
        ContractError::AttestationNotFound {
            wallet: stranger.to_string(),
        },
    );
    assert_err(
        s.exec(
            &compliance,
            &ExecuteMsg::RevokeAttestation {
                wallet: stranger.to_string(),
            },
            &[],
        ),
        ContractError::AttestationNotFound {
            wallet: stranger.to_string(),
        },
    );
    s.exec_ok(&compliance, &write(payer.as_str(), 1, exp));
    s.exec_ok(&compliance, &write(stranger.as_str(), 1, exp));
    let all: Vec<Attestation> = s.query(&QueryMsg::Attestations {
        start_after: None,
        limit: None,
    });
    assert_eq!(all.len(), 2);
    let rest: Vec<Attestation> = s.query(&QueryMsg::Attestations {
        start_after: Some(all[0].wallet.to_string()),
        limit: None,
    });
    assert_eq!(rest, all[1..].to_vec());
}
