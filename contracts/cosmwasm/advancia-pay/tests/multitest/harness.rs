//! One deployed contract with its actors, an accepted and a rogue cw20 token, funded wallets,
//! and a 2-of-3 bridge validator set.

use advancia_pay_cosmwasm::ContractError;
use advancia_pay_cosmwasm::bridge::signing_digest;
use advancia_pay_cosmwasm::msg::{
    AssetConfig, BridgeMessage, ExecuteMsg, InstantiateMsg, QueryMsg, ReceiveMsg,
    ValidatorSetInput, ValidatorSignature,
};
use advancia_pay_cosmwasm::state::AssetInfo;
use cosmwasm_std::{Addr, Coin, HexBinary, StdResult, Uint128, coins, to_json_binary};
use cw_multi_test::{App, AppResponse, ContractWrapper, Executor};
use k256::ecdsa::signature::hazmat::PrehashSigner;
use k256::ecdsa::{Signature, SigningKey};
use serde::de::DeserializeOwned;

use super::token::{self, TokenInstantiate, TokenQuery};

pub const DENOM: &str = "uatom";
/// Held by the wallets but not accepted by the contract.
pub const OTHER_DENOM: &str = "uosmo";
pub const FEE_BPS: u16 = 250;
/// Payments strictly above this need a KYC attestation (native and token alike).
pub const THRESHOLD: u128 = 1_000_000;
pub const START_BALANCE: u128 = 1_000_000_000;
pub const FACILITY: &str = "clinic-1";

pub struct Suite {
    pub app: App,
    pub contract: Addr,
    pub token: Addr,
    pub rogue_token: Addr,
    pub admin: Addr,
    pub treasury: Addr,
    pub compliance: Addr,
    pub settlement: Addr,
    pub authority: Addr,
    pub payout: Addr,
    pub payer: Addr,
    pub arbiter: Addr,
    pub stranger: Addr,
    pub validators: Vec<SigningKey>,
}

pub fn validator_key(i: u8) -> SigningKey {
    SigningKey::from_slice(&[i + 1; 32]).expect("valid scalar")
}

pub fn pubkey(key: &SigningKey) -> HexBinary {
    HexBinary::from(key.verifying_key().to_encoded_point(true).as_bytes())
}

impl Suite {
    /// Deployed with one registered facility and a 2-of-3 bridge set.
    pub fn new() -> Suite {
        let mut s = Suite::bare();
        s.exec_ok(
            &s.admin.clone(),
            &ExecuteMsg::RegisterFacility {
                facility_id: FACILITY.into(),
                authority: s.authority.to_string(),
                payout: s.payout.to_string(),
            },
        );
        s
    }

    /// Deployed, no facility yet.
    pub fn bare() -> Suite {
        let mut app = App::default();
        let make = |n: &str| app.api().addr_make(n);
        let (admin, treasury, compliance, settlement) = (
            make("admin"),
            make("treasury"),
            make("compliance"),
            make("settlement"),
        );
        let (authority, payout, payer, arbiter, stranger) = (
            make("facility-authority"),
            make("payout"),
            make("payer"),
            make("arbiter"),
            make("stranger"),
        );
        app.init_modules(|router, _api, storage| {
            for who in [&payer, &authority, &stranger, &arbiter, &admin] {
                router
                    .bank
                    .init_balance(
                        storage,
                        who,
                        vec![
                            Coin::new(START_BALANCE, DENOM),
                            Coin::new(START_BALANCE, OTHER_DENOM),
                        ],
                    )
                    .unwrap();
            }
        });
        let token_code = app.store_code(token::contract());
        let token_balances = TokenInstantiate {
            balances: [&payer, &authority, &stranger]
                .iter()
                .map(|a| (a.to_string(), Uint128::new(START_BALANCE)))
                .collect(),
        };
        let token = app
            .instantiate_contract(
                token_code,
                admin.clone(),
                &token_balances,
                &[],
                "usdc",
                None,
            )
            .unwrap();
        let rogue_token = app
            .instantiate_contract(
                token_code,
                admin.clone(),
                &token_balances,
                &[],
                "rogue",
                None,
            )
            .unwrap();
        let code = app.store_code(Box::new(ContractWrapper::new(
            advancia_pay_cosmwasm::contract::execute,
            advancia_pay_cosmwasm::contract::instantiate,
            advancia_pay_cosmwasm::contract::query,
        )));
        let validators: Vec<SigningKey> = (0..3).map(validator_key).collect();
        let msg = InstantiateMsg {
            admin: None,
            treasury: treasury.to_string(),
            fee_bps: FEE_BPS,
            compliance_authority: compliance.to_string(),
            settlement_authority: settlement.to_string(),
            assets: vec![
                AssetConfig {
                    asset: AssetInfo::Native {
                        denom: DENOM.into(),
                    },
                    kyc_threshold: Uint128::new(THRESHOLD),
                    enabled: true,
                },
                AssetConfig {
                    asset: AssetInfo::Cw20 {
                        contract: token.to_string(),
                    },
                    kyc_threshold: Uint128::new(THRESHOLD),
                    enabled: true,
                },
            ],
            bridge: Some(ValidatorSetInput {
                validators: validators.iter().map(pubkey).collect(),
                threshold: 2,
            }),
        };
        let contract = app
            .instantiate_contract(code, admin.clone(), &msg, &[], "advancia-pay", None)
            .unwrap();
        Suite {
            app,
            contract,
            token,
            rogue_token,
            admin,
            treasury,
            compliance,
            settlement,
            authority,
            payout,
            payer,
            arbiter,
            stranger,
            validators,
        }
    }

    pub fn exec(
        &mut self,
        sender: &Addr,
        msg: &ExecuteMsg,
        funds: &[Coin],
    ) -> StdResult<AppResponse> {
        self.app
            .execute_contract(sender.clone(), self.contract.clone(), msg, funds)
    }

    pub fn exec_ok(&mut self, sender: &Addr, msg: &ExecuteMsg) -> AppResponse {
        self.exec(sender, msg, &[]).unwrap()
    }

    pub fn pay(&mut self, payer: &Addr, invoice: &str, amount: u128) -> StdResult<AppResponse> {
        let msg = ExecuteMsg::Pay {
            facility_id: FACILITY.into(),
            invoice_id: invoice.into(),
        };
        self.exec(payer, &msg, &coins(amount, DENOM))
    }

    /// A cw20 `Send` of `amount` from `from` to the contract with `hook`.
    pub fn send_tokens(
        &mut self,
        token: &Addr,
        from: &Addr,
        amount: u128,
        hook: &ReceiveMsg,
    ) -> StdResult<AppResponse> {
        let msg = advancia_pay_cosmwasm::cw20::Cw20ExecuteMsg::Send {
            contract: self.contract.to_string(),
            amount: Uint128::new(amount),
            msg: to_json_binary(hook).unwrap(),
        };
        self.app
            .execute_contract(from.clone(), token.clone(), &msg, &[])
    }

    pub fn balance(&self, who: &Addr) -> u128 {
        let amount = self.app.wrap().query_balance(who, DENOM).unwrap().amount;
        Uint128::try_from(amount).unwrap().u128()
    }

    pub fn token_balance(&self, token: &Addr, who: &Addr) -> u128 {
        let b: Uint128 = self
            .app
            .wrap()
            .query_wasm_smart(
                token,
                &TokenQuery::Balance {
                    address: who.to_string(),
                },
            )
            .unwrap();
        b.u128()
    }

    pub fn query<T: DeserializeOwned>(&self, msg: &QueryMsg) -> T {
        self.app
            .wrap()
            .query_wasm_smart(&self.contract, msg)
            .unwrap()
    }

    pub fn now(&self) -> u64 {
        self.app.block_info().time.seconds()
    }

    pub fn advance(&mut self, seconds: u64) {
        self.app.update_block(|b| {
            b.time = b.time.plus_seconds(seconds);
            b.height += 1;
        });
    }

    pub fn attest(&mut self, wallet: &Addr, expires_in: u64) {
        let msg = ExecuteMsg::WriteAttestation {
            wallet: wallet.to_string(),
            level: 2,
            expires_at: self.now() + expires_in,
        };
        let compliance = self.compliance.clone();
        self.exec_ok(&compliance, &msg);
    }

    /// Value of attribute `key` in this contract's `wasm` event.
    pub fn attr(&self, response: &AppResponse, key: &str) -> Option<String> {
        response
            .events
            .iter()
            .filter(|e| {
                e.ty == "wasm"
                    && e.attributes
                        .iter()
                        .any(|a| a.key == "_contract_address" && a.value == self.contract.as_str())
            })
            .flat_map(|e| e.attributes.iter())
            .find(|a| a.key == key)
            .map(|a| a.value.clone())
    }

    /// Signatures of `signers` (indexes into `validators`) sorted by public key.
    pub fn sign(&self, message: &BridgeMessage, signers: &[usize]) -> Vec<ValidatorSignature> {
        let chain_id = self.app.block_info().chain_id;
        let digest = signing_digest(message, &chain_id, self.contract.as_str());
        sign_digest(&digest, signers.iter().map(|&i| &self.validators[i]))
    }
}

pub fn sign_digest<'a>(
    digest: &[u8; 32],
    keys: impl Iterator<Item = &'a SigningKey>,
) -> Vec<ValidatorSignature> {
    let mut sigs: Vec<ValidatorSignature> = keys
        .map(|k| {
            let sig: Signature = k.sign_prehash(digest).expect("signing works");
            ValidatorSignature {
                pubkey: pubkey(k),
                signature: HexBinary::from(sig.to_bytes().as_slice()),
            }
        })
        .collect();
    sigs.sort_by(|a, b| a.pubkey.cmp(&b.pubkey));
    sigs
}

/// The failure carries exactly this contract error (multi-test passes errors on as text).
#[track_caller]
pub fn assert_err(result: StdResult<AppResponse>, expected: ContractError) {
    let err = match result {
        Ok(r) => panic!("expected `{expected}`, the message succeeded: {r:?}"),
        Err(e) => e,
    };
    let text = format!("{err}");
    let want = expected.to_string();
    assert!(
        text.ends_with(&want),
        "expected error `{want}`, got `{text}`"
    );
}

pub fn fee(amount: u128) -> u128 {
    amount * u128::from(FEE_BPS) / 10_000
}
