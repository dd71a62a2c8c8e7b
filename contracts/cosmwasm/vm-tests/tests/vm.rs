#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The main flow on the size-optimized wasm binary (`cargo xtask wasm`) in the real CosmWasm
//! VM: instantiate, register a facility, pay, refund, escrow open/release, settlement commit,
//! a bridge message signed by 2 of 3 validators (and its replay refused). Prints the gas of
//! each message and records the events as a `block_results` fixture.

use advancia_pay_cosmwasm::bridge::signing_digest;
use advancia_pay_cosmwasm::msg::{
    AssetConfig, BridgeMessage, ExecuteMsg, InstantiateMsg, QueryMsg, ValidatorSetInput,
    ValidatorSignature,
};
use advancia_pay_cosmwasm::state::{AssetInfo, AssetTotal, Escrow, InboxMessage, Payment};
use advancia_pay_cosmwasm_vm_tests::{RecordedTx, block_results, fixture_path, load_wasm};
use cosmwasm_std::{
    BankMsg, Binary, ContractResult, CosmosMsg, Env, HexBinary, MessageInfo, Response, Uint128,
    coins, from_json,
};
use cosmwasm_vm::Instance;
use cosmwasm_vm::testing::{
    MockApi, MockInstanceOptions, MockQuerier, MockStorage, execute, instantiate,
    mock_instance_with_options, query,
};
use k256::ecdsa::signature::hazmat::PrehashSigner;
use k256::ecdsa::{Signature, SigningKey};

const DENOM: &str = "uatom";
/// wasmd's multiplier from CosmWasm gas to Cosmos SDK gas.
const SDK_GAS_MULTIPLIER: u64 = 140_000;

type Vm = Instance<MockApi, MockStorage, MockQuerier>;

struct Run {
    vm: Vm,
    env: Env,
    contract: String,
    txs: Vec<RecordedTx>,
    gas: Vec<(&'static str, u64)>,
}

impl Run {
    /// Executes `msg` in a new block (height +1, time +6 s), recording gas and events.
    fn exec(
        &mut self,
        label: &'static str,
        sender: &str,
        msg: &ExecuteMsg,
        funds: &[cosmwasm_std::Coin],
    ) -> Response {
        self.env.block.height += 1;
        self.env.block.time = self.env.block.time.plus_seconds(6);
        let info = MessageInfo {
            sender: cosmwasm_std::Addr::unchecked(sender),
            funds: funds.to_vec(),
        };
        let before = self.vm.get_gas_left();
        let result: ContractResult<Response> = execute(&mut self.vm, self.env.clone(), info, msg);
        let used = before - self.vm.get_gas_left();
        let response = match result {
            ContractResult::Ok(r) => r,
            ContractResult::Err(e) => panic!("{label} failed in the VM: {e}"),
        };
        self.gas.push((label, used));
        self.txs.push(RecordedTx {
            instantiate: false,
            sender: sender.to_owned(),
            contract: self.contract.clone(),
            attributes: response.attributes.clone(),
            events: response.events.clone(),
        });
        response
    }

    fn query<T: serde::de::DeserializeOwned>(&mut self, msg: &QueryMsg) -> T {
        match query(&mut self.vm, self.env.clone(), msg) {
            ContractResult::Ok(bin) => from_json(&bin).unwrap(),
            ContractResult::Err(e) => panic!("query failed in the VM: {e}"),
        }
    }
}

fn attr(r: &Response, key: &str) -> String {
    r.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.clone())
        .unwrap_or_else(|| panic!("no attribute {key} in {:?}", r.attributes))
}

fn bank_sends(r: &Response) -> Vec<(String, u128)> {
    r.messages
        .iter()
        .map(|m| match &m.msg {
            CosmosMsg::Bank(BankMsg::Send { to_address, amount }) => {
                assert_eq!(amount.len(), 1);
                assert_eq!(amount[0].denom, DENOM);
                (
                    to_address.clone(),
                    Uint128::try_from(amount[0].amount).unwrap().u128(),
                )
            }
            other => panic!("unexpected message {other:?}"),
        })
        .collect()
}

fn pubkey(k: &SigningKey) -> HexBinary {
    HexBinary::from(k.verifying_key().to_encoded_point(true).as_bytes())
}

#[test]
fn main_flow_runs_on_the_optimized_wasm() {
    let wasm = load_wasm().unwrap_or_else(|e| panic!("{e}"));
    let api = MockApi::default();
    let [
        admin,
        treasury,
        compliance,
        settlement,
        authority,
        payout,
        payer,
        arbiter,
        relayer,
    ] = [
        "admin",
        "treasury",
        "compliance",
        "settlement",
        "facility-authority",
        "payout",
        "payer",
        "arbiter",
        "relayer",
    ]
    .map(|n| api.addr_make(n));
    let vm = mock_instance_with_options(
        &wasm,
        MockInstanceOptions {
            // Generous: the figures below are what each message used, not a limit.
            gas_limit: 1_000_000_000_000,
            ..Default::default()
        },
    );
    let env = cosmwasm_vm::testing::mock_env();
    let contract = env.contract.address.to_string();
    let mut run = Run {
        vm,
        env,
        contract,
        txs: vec![],
        gas: vec![],
    };

    // Instantiate.
    let validators: Vec<SigningKey> = (1u8..=3)
        .map(|i| SigningKey::from_slice(&[i; 32]).unwrap())
        .collect();
    let init = InstantiateMsg {
        admin: None,
        treasury: treasury.clone(),
        fee_bps: 250,
        compliance_authority: compliance.clone(),
        settlement_authority: settlement.clone(),
        assets: vec![AssetConfig {
            asset: AssetInfo::Native {
                denom: DENOM.into(),
            },
            kyc_threshold: Uint128::new(1_000_000),
            enabled: true,
        }],
        bridge: Some(ValidatorSetInput {
            validators: validators.iter().map(pubkey).collect(),
            threshold: 2,
        }),
    };
    let before = run.vm.get_gas_left();
    let info = MessageInfo {
        sender: cosmwasm_std::Addr::unchecked(&admin),
        funds: vec![],
    };
    let res: ContractResult<Response> = instantiate(&mut run.vm, run.env.clone(), info, &init);
    let res = res.into_result().unwrap();
    run.gas
        .push(("instantiate", before - run.vm.get_gas_left()));
    assert_eq!(attr(&res, "set_version"), "1");
    run.txs.push(RecordedTx {
        instantiate: true,
        sender: admin.clone(),
        contract: run.contract.clone(),
        attributes: res.attributes.clone(),
        events: res.events.clone(),
    });

    // Register a facility.
    let res = run.exec(
        "register_facility",
        &admin,
        &ExecuteMsg::RegisterFacility {
            facility_id: "clinic-1".into(),
            authority: authority.clone(),
            payout: payout.clone(),
        },
        &[],
    );
    assert_eq!(attr(&res, "facility_id"), "clinic-1");

    // Pay 400_000 uatom: 2.5 % fee to the treasury, the rest to the payout.
    let res = run.exec(
        "pay (native)",
        &payer,
        &ExecuteMsg::Pay {
            facility_id: "clinic-1".into(),
            invoice_id: "inv-1".into(),
        },
        &coins(400_000, DENOM),
    );
    assert_eq!(
        bank_sends(&res),
        vec![(payout.clone(), 390_000), (treasury.clone(), 10_000)]
    );
    assert_eq!(attr(&res, "fee"), "10000");

    // Partial refund from the facility's own funds.
    let res = run.exec(
        "refund",
        &authority,
        &ExecuteMsg::Refund {
            payer: payer.clone(),
            invoice_id: "inv-1".into(),
        },
        &coins(150_000, DENOM),
    );
    assert_eq!(bank_sends(&res), vec![(payer.clone(), 150_000)]);
    let payment: Option<Payment> = run.query(&QueryMsg::Payment {
        payer: payer.clone(),
        invoice_id: "inv-1".into(),
    });
    assert_eq!(payment.unwrap().refunded, Uint128::new(150_000));

    // Escrow: open 100_000, release 60_000 (fee 1_500).
    let expires_at = run.env.block.time.seconds() + 3_600;
    let res = run.exec(
        "open_escrow",
        &payer,
        &ExecuteMsg::OpenEscrow {
            escrow_id: "esc-1".into(),
            facility_id: "clinic-1".into(),
            arbiter: arbiter.clone(),
            expires_at,
        },
        &coins(100_000, DENOM),
    );
    assert!(res.messages.is_empty(), "the contract holds escrowed funds");
    let res = run.exec(
        "release_escrow (partial)",
        &arbiter,
        &ExecuteMsg::ReleaseEscrow {
            payer: payer.clone(),
            escrow_id: "esc-1".into(),
            amount: Uint128::new(60_000),
        },
        &[],
    );
    assert_eq!(
        bank_sends(&res),
        vec![(payout.clone(), 58_500), (treasury.clone(), 1_500)]
    );
    let escrow: Option<Escrow> = run.query(&QueryMsg::Escrow {
        payer: payer.clone(),
        escrow_id: "esc-1".into(),
    });
    assert_eq!(escrow.unwrap().remaining(), Some(Uint128::new(40_000)));

    // Settlement batch 1.
    let res = run.exec(
        "commit_batch",
        &settlement,
        &ExecuteMsg::CommitBatch {
            batch_number: 1,
            root: HexBinary::from(&[7u8; 32]),
            entry_count: 3,
            totals: vec![AssetTotal {
                asset: AssetInfo::Native {
                    denom: DENOM.into(),
                },
                amount: Uint128::new(500_000),
            }],
        },
        &[],
    );
    assert_eq!(attr(&res, "depth"), "2");

    // Bridge message signed by validators 1 and 3 (secp256k1_verify runs in the VM's host).
    let message = BridgeMessage {
        id: "sol-msg-1".into(),
        source_chain: "solana-devnet".into(),
        set_version: 1,
        payload: Binary::from(b"{\"settled\":\"inv-1\"}".as_slice()),
    };
    let digest = signing_digest(&message, &run.env.block.chain_id, &run.contract);
    let vm_digest: HexBinary = run.query(&QueryMsg::BridgeDigest {
        message: message.clone(),
    });
    assert_eq!(vm_digest.as_slice(), digest.as_slice());
    let mut signatures: Vec<ValidatorSignature> = [&validators[0], &validators[2]]
        .iter()
        .map(|k| {
            let sig: Signature = k.sign_prehash(&digest).unwrap();
            ValidatorSignature {
                pubkey: pubkey(k),
                signature: HexBinary::from(sig.to_bytes().as_slice()),
            }
        })
        .collect();
    signatures.sort_by(|a, b| a.pubkey.cmp(&b.pubkey));
    let deliver = ExecuteMsg::ReceiveBridgeMessage {
        message,
        signatures,
    };
    let res = run.exec("bridge_message (2 of 3)", &relayer, &deliver, &[]);
    assert_eq!(attr(&res, "signers"), "2");
    let stored: Option<InboxMessage> = run.query(&QueryMsg::BridgeMessage {
        id: "sol-msg-1".into(),
    });
    assert_eq!(stored.unwrap().source_chain, "solana-devnet");

    // The replay fails inside the VM with the contract's error.
    let info = MessageInfo {
        sender: cosmwasm_std::Addr::unchecked(&relayer),
        funds: vec![],
    };
    let replay: ContractResult<Response> = execute(&mut run.vm, run.env.clone(), info, &deliver);
    match replay {
        ContractResult::Err(e) => assert!(
            e.contains("bridge message sol-msg-1 was already received"),
            "{e}"
        ),
        ContractResult::Ok(_) => panic!("replayed bridge message was accepted"),
    }

    println!("gas per message (CosmWasm gas / SDK gas at wasmd's 140000 multiplier):");
    for (label, gas) in &run.gas {
        println!(
            "  {label:<26} {gas:>14} {:>8}",
            gas.div_ceil(SDK_GAS_MULTIPLIER)
        );
    }
    println!("wasm size: {} bytes", wasm.len());

    // The events as a chain would report them, for the indexer's Cosmos source.
    let fixture = serde_json::to_string_pretty(&block_results(12_345, &run.txs)).unwrap() + "\n";
    let path = fixture_path();
    if std::env::var_os("ADVANCIA_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &fixture).unwrap();
        println!("wrote {}", path.display());
    } else {
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fixture,
            "{} differs from the events of this run; rerun with ADVANCIA_UPDATE_FIXTURES=1 and \
             commit it if the change is intended",
            path.display()
        );
    }
}

/// What `cosmwasm-check` does (the VM's own static checks: memories, exports, imports,
/// capabilities, floats and other non-determinism, then a compile), through the VM crate
/// these tests already build, with `cosmwasm-check`'s default capabilities and limits:
/// no separate install of the tool.
#[test]
fn the_optimized_wasm_passes_the_vms_static_checks() {
    let wasm = load_wasm().unwrap_or_else(|e| panic!("{e}"));
    let capabilities = cosmwasm_vm::capabilities_from_csv(
        "ibc2,iterator,staking,stargate,cosmwasm_1_1,cosmwasm_1_2,cosmwasm_1_3,cosmwasm_1_4,cosmwasm_2_0,cosmwasm_2_1,cosmwasm_2_2",
    );
    cosmwasm_vm::internals::check_wasm(
        &wasm,
        &capabilities,
        &cosmwasm_vm::WasmLimits::default(),
        cosmwasm_vm::internals::Logger::Off,
    )
    .unwrap_or_else(|e| panic!("the VM refuses the optimized wasm: {e}"));
    cosmwasm_vm::internals::compile_module(&wasm, None)
        .unwrap_or_else(|e| panic!("the VM cannot compile the optimized wasm: {e}"));
}
