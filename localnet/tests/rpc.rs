//! Drives an in-process node with the real Solana Rust RPC and PubSub clients.
#![allow(clippy::unwrap_used)] // test helpers, not #[test] fns, unwrap too

use std::time::Duration;

use advancia_localnet::{ChainError, Commitment, Localnet, LocalnetConfig};
use futures_util::StreamExt;
use serde_json::{Value, json};
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use solana_message::{AccountMeta, Instruction};
use solana_pubkey::Pubkey;
use solana_pubsub_client::nonblocking::pubsub_client::PubsubClient;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client::rpc_client::GetConfirmedSignaturesForAddress2Config;
use solana_rpc_client_api::client_error::{Error as ClientError, ErrorKind};
use solana_rpc_client_api::config::{
    RpcAccountInfoConfig, RpcBlockConfig, RpcProgramAccountsConfig, RpcSignatureSubscribeConfig,
    RpcTransactionConfig, RpcTransactionLogsConfig, RpcTransactionLogsFilter,
};
use solana_rpc_client_api::filter::{Memcmp, RpcFilterType};
use solana_rpc_client_api::request::{RpcError, RpcRequest, RpcResponseErrorData};
use solana_rpc_client_api::response::RpcSignatureResult;
use solana_signature::Signature;
use solana_signer::Signer;
use solana_transaction::Transaction;
use solana_transaction_status_client_types::option_serializer::OptionSerializer;
use solana_transaction_status_client_types::{
    EncodedTransaction, TransactionConfirmationStatus, UiInstruction, UiMessage,
    UiTransactionEncoding,
};

const SOL: u64 = 1_000_000_000;
const TOKEN_PROGRAM: Pubkey = Pubkey::from_str_const("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");
const SYSTEM_PROGRAM: Pubkey = Pubkey::from_str_const("11111111111111111111111111111111");

async fn start() -> (Localnet, RpcClient) {
    start_with(LocalnetConfig::for_tests()).await
}

async fn start_with(config: LocalnetConfig) -> (Localnet, RpcClient) {
    let node = Localnet::start(config).await.unwrap();
    let client = RpcClient::new_with_commitment(node.rpc_url(), CommitmentConfig::confirmed());
    (node, client)
}

async fn raw(client: &RpcClient, method: &str, params: Value) -> Result<Value, ClientError> {
    client
        .send::<Value>(
            RpcRequest::Custom {
                method: leak(method),
            },
            params,
        )
        .await
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn rpc_error(err: &ClientError) -> (i64, String, &RpcResponseErrorData) {
    match err.kind() {
        ErrorKind::RpcError(RpcError::RpcResponseError {
            code,
            message,
            data,
        }) => (*code, message.clone(), data),
        other => panic!("expected an RPC error response, got {other:?}"),
    }
}

async fn wait_for(client: &RpcClient, sig: &Signature, commitment: CommitmentConfig) {
    for _ in 0..200 {
        if client
            .confirm_transaction_with_commitment(sig, commitment)
            .await
            .unwrap()
            .value
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{sig} never reached {commitment:?}");
}

async fn funded(client: &RpcClient, lamports: u64) -> Keypair {
    let kp = Keypair::new();
    let sig = client
        .request_airdrop(&kp.pubkey(), lamports)
        .await
        .unwrap();
    wait_for(client, &sig, CommitmentConfig::confirmed()).await;
    kp
}

async fn send(
    client: &RpcClient,
    payer: &Keypair,
    signers: &[&Keypair],
    ixs: &[Instruction],
) -> Signature {
    let blockhash = client.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), signers, blockhash);
    client.send_and_confirm_transaction(&tx).await.unwrap()
}

fn tx_config(
    commitment: CommitmentConfig,
    encoding: UiTransactionEncoding,
) -> RpcTransactionConfig {
    RpcTransactionConfig {
        encoding: Some(encoding),
        commitment: Some(commitment),
        max_supported_transaction_version: Some(0),
    }
}

#[tokio::test]
async fn airdrop_transfer_and_fetch_transaction() {
    let (_node, client) = start().await;
    assert_eq!(client.get_health().await.unwrap(), ());
    assert_eq!(client.get_version().await.unwrap().solana_core, "3.1.12");

    let payer = funded(&client, 10 * SOL).await;
    assert_eq!(client.get_balance(&payer.pubkey()).await.unwrap(), 10 * SOL);

    let to = Pubkey::new_unique();
    let ix = solana_system_interface::instruction::transfer(&payer.pubkey(), &to, SOL);
    let sig = send(&client, &payer, &[&payer], &[ix]).await;
    assert_eq!(client.get_balance(&to).await.unwrap(), SOL);
    assert_eq!(
        client.get_balance(&payer.pubkey()).await.unwrap(),
        9 * SOL - 5000
    );

    let tx = client
        .get_transaction_with_config(
            &sig,
            tx_config(CommitmentConfig::confirmed(), UiTransactionEncoding::Json),
        )
        .await
        .unwrap();
    let meta = tx.transaction.meta.unwrap();
    assert_eq!(meta.fee, 5000);
    assert_eq!(meta.err, None);
    assert_eq!(meta.pre_balances[0], 10 * SOL);
    assert_eq!(meta.post_balances[0], 9 * SOL - 5000);
    assert_eq!(meta.post_balances[1], SOL);
    let logs = meta.log_messages.unwrap();
    assert_eq!(
        logs,
        vec![
            "Program 11111111111111111111111111111111 invoke [1]".to_string(),
            "Program 11111111111111111111111111111111 success".to_string(),
        ]
    );
    let EncodedTransaction::Json(ui) = tx.transaction.transaction else {
        panic!("json encoding expected");
    };
    assert_eq!(ui.signatures, vec![sig.to_string()]);
    let UiMessage::Raw(msg) = ui.message else {
        panic!("raw message expected");
    };
    assert_eq!(msg.account_keys[1], to.to_string());

    // base64 round-trips to the very transaction that was sent.
    let b64 = client
        .get_transaction_with_config(
            &sig,
            tx_config(CommitmentConfig::confirmed(), UiTransactionEncoding::Base64),
        )
        .await
        .unwrap();
    let decoded = b64.transaction.transaction.decode().unwrap();
    assert_eq!(decoded.signatures[0], sig);
}

#[tokio::test]
async fn program_call_records_logs_and_inner_instruction_events() {
    let (_node, client) = start().await;
    let admin = funded(&client, 5 * SOL).await;
    let ix = advancia_pay::client::initialize_config(
        admin.pubkey(),
        advancia_pay::InitializeConfigArgs {
            treasury: Pubkey::new_unique(),
            settlement_authority: Pubkey::new_unique(),
            compliance_authority: Pubkey::new_unique(),
            fee_bps: 25,
        },
    );
    let sig = send(&client, &admin, &[&admin], std::slice::from_ref(&ix)).await;

    let tx = client
        .get_transaction_with_config(
            &sig,
            tx_config(CommitmentConfig::confirmed(), UiTransactionEncoding::Json),
        )
        .await
        .unwrap();
    let meta = tx.transaction.meta.unwrap();
    assert_eq!(meta.err, None);
    // Runtime-shaped logs: our program, its system-program CPI (account creation) and its
    // event self-CPI, with stack heights. (Its own `msg!` lines are not captured: native
    // builtins print them to stdout.)
    let logs = meta.log_messages.unwrap();
    let program = advancia_pay::ID.to_string();
    let system = SYSTEM_PROGRAM.to_string();
    assert_eq!(
        logs,
        vec![
            format!("Program {program} invoke [1]"),
            format!("Program {system} invoke [2]"),
            format!("Program {system} success"),
            format!("Program {program} invoke [2]"),
            format!("Program {program} success"),
            format!("Program {program} success"),
        ]
    );

    // The config account is created by a system-program CPI, the event by a self-CPI.
    let EncodedTransaction::Json(ui) = tx.transaction.transaction else {
        panic!()
    };
    let UiMessage::Raw(msg) = ui.message else {
        panic!()
    };
    let OptionSerializer::Some(inner) = meta.inner_instructions else {
        panic!("inner instructions missing");
    };
    assert_eq!(inner.len(), 1);
    assert_eq!(inner[0].index, 0);
    let mut events = Vec::new();
    let mut saw_system = false;
    for ix in &inner[0].instructions {
        let UiInstruction::Compiled(c) = ix else {
            panic!("compiled expected")
        };
        assert_eq!(c.stack_height, Some(2));
        let program_id: Pubkey = msg.account_keys[usize::from(c.program_id_index)]
            .parse()
            .unwrap();
        saw_system |= program_id == SYSTEM_PROGRAM;
        let data = bs58::decode(&c.data).into_vec().unwrap();
        if let Some(event) = advancia_pay::client::decode_event(&program_id, &data).unwrap() {
            events.push(event);
        }
    }
    assert!(saw_system);
    assert_eq!(events.len(), 1);
    let advancia_pay::client::AdvanciaEvent::ConfigUpdated(event) = &events[0] else {
        panic!("unexpected event {:?}", events[0]);
    };
    assert_eq!(event.fee_bps, 25);

    let config = client
        .get_account(&advancia_pay::client::config_pda())
        .await
        .unwrap();
    assert_eq!(config.owner, advancia_pay::ID);
    let decoded: advancia_pay::state::Config =
        advancia_pay::client::decode_account(&config.data).unwrap();
    assert_eq!(decoded.admin, admin.pubkey());

    // Initializing twice fails inside the program: preflight rejects with -32002 and its logs.
    let blockhash = client.get_latest_blockhash().await.unwrap();
    let again = Transaction::new_signed_with_payer(
        &[
            ix,
            solana_system_interface::instruction::transfer(&admin.pubkey(), &admin.pubkey(), 1),
        ],
        Some(&admin.pubkey()),
        &[&admin],
        blockhash,
    );
    let err = client.send_transaction(&again).await.unwrap_err();
    let (code, message, data) = rpc_error(&err);
    assert_eq!(code, -32002);
    assert!(
        message.starts_with("Transaction simulation failed: Error processing Instruction 0"),
        "{message}"
    );
    let RpcResponseErrorData::SendTransactionPreflightFailure(sim) = data else {
        panic!("preflight data expected, got {data:?}");
    };
    // Anchor re-inits a funded account with `CreateAccountAllowPrefund`, which this runtime's
    // system program rejects; what matters here is that the failing logs come back.
    let logs = sim.logs.clone().unwrap();
    assert_eq!(logs[0], format!("Program {program} invoke [1]"));
    assert!(logs.last().unwrap().contains(" failed: "), "{logs:?}");
}

fn create_account(
    payer: &Pubkey,
    new: &Pubkey,
    lamports: u64,
    space: u64,
    owner: &Pubkey,
) -> Instruction {
    solana_system_interface::instruction::create_account(payer, new, lamports, space, owner)
}

fn initialize_mint2(mint: &Pubkey, authority: &Pubkey, decimals: u8) -> Instruction {
    let mut data = vec![20, decimals];
    data.extend_from_slice(authority.as_ref());
    data.push(0);
    Instruction::new_with_bytes(TOKEN_PROGRAM, &data, vec![AccountMeta::new(*mint, false)])
}

fn initialize_account3(account: &Pubkey, mint: &Pubkey, owner: &Pubkey) -> Instruction {
    let mut data = vec![18];
    data.extend_from_slice(owner.as_ref());
    Instruction::new_with_bytes(
        TOKEN_PROGRAM,
        &data,
        vec![
            AccountMeta::new(*account, false),
            AccountMeta::new_readonly(*mint, false),
        ],
    )
}

fn mint_to(mint: &Pubkey, account: &Pubkey, authority: &Pubkey, amount: u64) -> Instruction {
    let mut data = vec![7];
    data.extend_from_slice(&amount.to_le_bytes());
    Instruction::new_with_bytes(
        TOKEN_PROGRAM,
        &data,
        vec![
            AccountMeta::new(*mint, false),
            AccountMeta::new(*account, false),
            AccountMeta::new_readonly(*authority, true),
        ],
    )
}

fn transfer_checked(
    from: &Pubkey,
    mint: &Pubkey,
    to: &Pubkey,
    owner: &Pubkey,
    amount: u64,
    decimals: u8,
) -> Instruction {
    let mut data = vec![12];
    data.extend_from_slice(&amount.to_le_bytes());
    data.push(decimals);
    Instruction::new_with_bytes(
        TOKEN_PROGRAM,
        &data,
        vec![
            AccountMeta::new(*from, false),
            AccountMeta::new_readonly(*mint, false),
            AccountMeta::new(*to, false),
            AccountMeta::new_readonly(*owner, true),
        ],
    )
}

#[tokio::test]
async fn token_balances_and_program_account_filters() {
    let (_node, client) = start().await;
    let payer = funded(&client, 10 * SOL).await;
    let mint = Keypair::new();
    let (a, b) = (Keypair::new(), Keypair::new());
    let owner_b = Pubkey::new_unique();
    let mint_rent = client
        .get_minimum_balance_for_rent_exemption(82)
        .await
        .unwrap();
    let acct_rent = client
        .get_minimum_balance_for_rent_exemption(165)
        .await
        .unwrap();
    send(
        &client,
        &payer,
        &[&payer, &mint, &a, &b],
        &[
            create_account(
                &payer.pubkey(),
                &mint.pubkey(),
                mint_rent,
                82,
                &TOKEN_PROGRAM,
            ),
            initialize_mint2(&mint.pubkey(), &payer.pubkey(), 6),
            create_account(&payer.pubkey(), &a.pubkey(), acct_rent, 165, &TOKEN_PROGRAM),
            initialize_account3(&a.pubkey(), &mint.pubkey(), &payer.pubkey()),
            create_account(&payer.pubkey(), &b.pubkey(), acct_rent, 165, &TOKEN_PROGRAM),
            initialize_account3(&b.pubkey(), &mint.pubkey(), &owner_b),
            mint_to(&mint.pubkey(), &a.pubkey(), &payer.pubkey(), 5_000_000),
        ],
    )
    .await;
    let sig = send(
        &client,
        &payer,
        &[&payer],
        &[transfer_checked(
            &a.pubkey(),
            &mint.pubkey(),
            &b.pubkey(),
            &payer.pubkey(),
            1_250_000,
            6,
        )],
    )
    .await;

    let meta = client
        .get_transaction_with_config(
            &sig,
            tx_config(CommitmentConfig::confirmed(), UiTransactionEncoding::Json),
        )
        .await
        .unwrap()
        .transaction
        .meta
        .unwrap();
    let OptionSerializer::Some(pre) = meta.pre_token_balances else {
        panic!("pre token balances")
    };
    let OptionSerializer::Some(post) = meta.post_token_balances else {
        panic!("post token balances")
    };
    let amount_of = |v: &Vec<solana_transaction_status_client_types::UiTransactionTokenBalance>,
                     owner: &Pubkey| {
        v.iter()
            .find(|t| t.owner == OptionSerializer::Some(owner.to_string()))
            .map(|t| {
                (
                    t.ui_token_amount.amount.clone(),
                    t.ui_token_amount.ui_amount_string.clone(),
                    t.mint.clone(),
                )
            })
            .unwrap()
    };
    assert_eq!(
        amount_of(&pre, &payer.pubkey()),
        ("5000000".into(), "5".into(), mint.pubkey().to_string())
    );
    assert_eq!(
        amount_of(&pre, &owner_b),
        ("0".into(), "0".into(), mint.pubkey().to_string())
    );
    assert_eq!(amount_of(&post, &payer.pubkey()).0, "3750000");
    assert_eq!(
        amount_of(&post, &owner_b),
        ("1250000".into(), "1.25".into(), mint.pubkey().to_string())
    );

    // getTokenAccountsByOwner, jsonParsed as wallets ask for it.
    let owned = client
        .get_token_accounts_by_owner(
            &owner_b,
            solana_rpc_client_api::request::TokenAccountsFilter::Mint(mint.pubkey()),
        )
        .await
        .unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].pubkey, b.pubkey().to_string());
    let solana_account_decoder_client_types::UiAccountData::Json(parsed) = &owned[0].account.data
    else {
        panic!("jsonParsed token account expected");
    };
    assert_eq!(parsed.program, "spl-token");
    assert_eq!(parsed.space, 165);
    assert_eq!(parsed.parsed["type"], "account");
    assert_eq!(parsed.parsed["info"]["owner"], owner_b.to_string());
    assert_eq!(parsed.parsed["info"]["state"], "initialized");
    assert_eq!(parsed.parsed["info"]["tokenAmount"]["amount"], "1250000");
    assert_eq!(
        parsed.parsed["info"]["tokenAmount"]["uiAmountString"],
        "1.25"
    );
    let none = client
        .get_token_accounts_by_owner(
            &Pubkey::new_unique(),
            solana_rpc_client_api::request::TokenAccountsFilter::ProgramId(TOKEN_PROGRAM),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    let mint_info = raw(
        &client,
        "getAccountInfo",
        // At `confirmed`, where the mint was just created: the node's default is `finalized`,
        // which lags a few slots behind and flaked under load.
        json!([mint.pubkey().to_string(), {"encoding": "jsonParsed", "commitment": "confirmed"}]),
    )
    .await
    .unwrap();
    assert_eq!(mint_info["value"]["data"]["parsed"]["type"], "mint");
    assert_eq!(
        mint_info["value"]["data"]["parsed"]["info"]["supply"],
        "5000000"
    );
    assert_eq!(mint_info["value"]["data"]["parsed"]["info"]["decimals"], 6);
    assert_eq!(
        mint_info["value"]["data"]["parsed"]["info"]["mintAuthority"],
        payer.pubkey().to_string()
    );

    let balance = client.get_token_account_balance(&b.pubkey()).await.unwrap();
    assert_eq!(
        (
            balance.amount.as_str(),
            balance.decimals,
            balance.ui_amount_string.as_str()
        ),
        ("1250000", 6, "1.25")
    );
    let err = client
        .get_token_account_balance(&payer.pubkey())
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&err).0, -32602);

    // getProgramAccounts: dataSize keeps the two accounts (not the mint); memcmp on the owner
    // field (offset 32) keeps exactly one.
    let by_size = client
        .get_program_ui_accounts_with_config(
            &TOKEN_PROGRAM,
            RpcProgramAccountsConfig {
                filters: Some(vec![
                    RpcFilterType::DataSize(165),
                    RpcFilterType::Memcmp(Memcmp::new_base58_encoded(0, mint.pubkey().as_ref())),
                ]),
                account_config: RpcAccountInfoConfig {
                    encoding: Some(solana_account_decoder_client_types::UiAccountEncoding::Base64),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut keys: Vec<Pubkey> = by_size.iter().map(|(k, _)| *k).collect();
    keys.sort();
    let mut expected = vec![a.pubkey(), b.pubkey()];
    expected.sort();
    assert_eq!(keys, expected);
    let by_owner = client
        .get_program_ui_accounts_with_config(
            &TOKEN_PROGRAM,
            RpcProgramAccountsConfig {
                filters: Some(vec![
                    RpcFilterType::DataSize(165),
                    RpcFilterType::Memcmp(Memcmp::new_base58_encoded(32, owner_b.as_ref())),
                ]),
                account_config: RpcAccountInfoConfig {
                    encoding: Some(solana_account_decoder_client_types::UiAccountEncoding::Base64),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_owner.len(), 1);
    assert_eq!(by_owner[0].0, b.pubkey());
    assert_eq!(
        &by_owner[0].1.data.decode().unwrap()[64..72],
        &1_250_000u64.to_le_bytes()
    );
    let mints = client
        .get_program_ui_accounts_with_config(
            &TOKEN_PROGRAM,
            RpcProgramAccountsConfig {
                filters: Some(vec![RpcFilterType::DataSize(82)]),
                account_config: RpcAccountInfoConfig {
                    encoding: Some(solana_account_decoder_client_types::UiAccountEncoding::Base64),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(mints.iter().any(|(k, _)| *k == mint.pubkey()));
    assert!(mints.iter().all(|(_, acc)| acc.space == Some(82)));
}

#[tokio::test]
async fn error_codes_match_solana() {
    let (_node, client) = start().await;
    let err = raw(&client, "getBalance", json!(["not-a-key"]))
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&err).0, -32602);
    let err = raw(&client, "noSuchMethod", json!([])).await.unwrap_err();
    let (code, message, _) = rpc_error(&err);
    assert_eq!((code, message.as_str()), (-32601, "Method not found"));

    let err = raw(
        &client,
        "getTransaction",
        json!([Signature::default().to_string(), {"commitment": "processed"}]),
    )
    .await
    .unwrap_err();
    let (code, message, _) = rpc_error(&err);
    assert_eq!(
        (code, message.as_str()),
        (
            -32602,
            "Method does not support commitment below `confirmed`"
        )
    );

    let future = client.get_slot().await.unwrap() + 1_000;
    let err = raw(&client, "getBlock", json!([future])).await.unwrap_err();
    let (code, message, _) = rpc_error(&err);
    assert_eq!(
        (code, message),
        (-32004, format!("Block not available for slot {future}"))
    );

    let err = raw(&client, "getSlot", json!([{"minContextSlot": future}]))
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&err).0, -32016);

    // A transaction whose signature does not match its message: -32003.
    let payer = funded(&client, SOL).await;
    let blockhash = client.get_latest_blockhash().await.unwrap();
    let mut tx = Transaction::new_signed_with_payer(
        &[solana_system_interface::instruction::transfer(
            &payer.pubkey(),
            &Pubkey::new_unique(),
            1,
        )],
        Some(&payer.pubkey()),
        &[&payer],
        blockhash,
    );
    tx.signatures[0] = Keypair::new().sign_message(b"something else");
    let err = client.send_transaction(&tx).await.unwrap_err();
    let (code, message, _) = rpc_error(&err);
    assert_eq!(
        (code, message.as_str()),
        (-32003, "Transaction signature verification failure")
    );

    // Undecodable payloads: -32602.
    let err = raw(
        &client,
        "sendTransaction",
        json!(["!!!", {"encoding": "base64"}]),
    )
    .await
    .unwrap_err();
    let (code, message, _) = rpc_error(&err);
    assert_eq!(code, -32602);
    assert!(message.starts_with("invalid base64 encoding"), "{message}");

    // An unfunded fee payer fails preflight with -32002.
    let poor = Keypair::new();
    let tx = Transaction::new_signed_with_payer(
        &[solana_system_interface::instruction::transfer(
            &poor.pubkey(),
            &Pubkey::new_unique(),
            1,
        )],
        Some(&poor.pubkey()),
        &[&poor],
        blockhash,
    );
    let err = client.send_transaction(&tx).await.unwrap_err();
    let (code, message, _) = rpc_error(&err);
    assert_eq!(code, -32002);
    assert_eq!(
        message,
        "Transaction simulation failed: Attempt to debit an account but found no record of a prior credit."
    );
}

#[tokio::test]
async fn commitment_levels_lag_and_finalize() {
    // Slots are driven by hand here (the clock would take an hour), so every step is exact.
    let mut config = LocalnetConfig::for_tests();
    config.slot_duration = Duration::from_secs(3600);
    config.finalization_lag = 5;
    let (node, client) = start_with(config).await;
    let payer = Keypair::new();
    let airdrop = client.request_airdrop(&payer.pubkey(), SOL).await.unwrap();
    node.advance_slot();
    assert!(client.confirm_transaction(&airdrop).await.unwrap());

    let to = Pubkey::new_unique();
    let blockhash = client.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(
        &[solana_system_interface::instruction::transfer(
            &payer.pubkey(),
            &to,
            1_000_000,
        )],
        Some(&payer.pubkey()),
        &[&payer],
        blockhash,
    );
    let sig = client.send_transaction(&tx).await.unwrap();
    let tx_slot = node.slot(Commitment::Processed);

    // Processed only: the slot is still open.
    let status = client.get_signature_statuses(&[sig]).await.unwrap().value[0]
        .clone()
        .unwrap();
    assert_eq!(status.slot, tx_slot);
    assert_eq!(
        status.confirmation_status,
        Some(TransactionConfirmationStatus::Processed)
    );
    assert_eq!(status.confirmations, Some(0));
    assert_eq!(
        client
            .get_balance_with_commitment(&to, CommitmentConfig::processed())
            .await
            .unwrap()
            .value,
        1_000_000
    );
    assert_eq!(
        client
            .get_balance_with_commitment(&to, CommitmentConfig::confirmed())
            .await
            .unwrap()
            .value,
        0
    );
    assert!(
        client
            .get_transaction_with_config(
                &sig,
                tx_config(CommitmentConfig::confirmed(), UiTransactionEncoding::Json)
            )
            .await
            .is_err(),
        "not confirmed yet, must read as null"
    );

    // Slot frozen: confirmed, not finalized.
    node.advance_slot();
    let status = client.get_signature_statuses(&[sig]).await.unwrap().value[0]
        .clone()
        .unwrap();
    assert_eq!(
        status.confirmation_status,
        Some(TransactionConfirmationStatus::Confirmed)
    );
    assert_eq!(
        client
            .get_balance_with_commitment(&to, CommitmentConfig::confirmed())
            .await
            .unwrap()
            .value,
        1_000_000
    );
    assert_eq!(
        client
            .get_balance_with_commitment(&to, CommitmentConfig::finalized())
            .await
            .unwrap()
            .value,
        0
    );
    assert_eq!(
        client
            .get_slot_with_commitment(CommitmentConfig::confirmed())
            .await
            .unwrap(),
        tx_slot
    );
    assert!(
        client
            .get_transaction_with_config(
                &sig,
                tx_config(CommitmentConfig::finalized(), UiTransactionEncoding::Json)
            )
            .await
            .is_err()
    );

    // Finalized exactly `finalization_lag` slots later.
    for _ in 0..4 {
        node.advance_slot();
    }
    assert_eq!(
        node.slot(Commitment::Confirmed) - node.slot(Commitment::Finalized),
        5
    );
    assert_eq!(node.slot(Commitment::Finalized), tx_slot - 1);
    let status = client.get_signature_statuses(&[sig]).await.unwrap().value[0]
        .clone()
        .unwrap();
    assert_eq!(
        status.confirmation_status,
        Some(TransactionConfirmationStatus::Confirmed)
    );
    node.advance_slot();
    assert_eq!(node.slot(Commitment::Finalized), tx_slot);
    let status = client.get_signature_statuses(&[sig]).await.unwrap().value[0]
        .clone()
        .unwrap();
    assert_eq!(
        status.confirmation_status,
        Some(TransactionConfirmationStatus::Finalized)
    );
    assert_eq!(status.confirmations, None);
    assert_eq!(
        client
            .get_balance_with_commitment(&to, CommitmentConfig::finalized())
            .await
            .unwrap()
            .value,
        1_000_000
    );
    let fetched = client
        .get_transaction_with_config(
            &sig,
            tx_config(CommitmentConfig::finalized(), UiTransactionEncoding::Json),
        )
        .await
        .unwrap();
    assert_eq!(fetched.slot, tx_slot);
    let block = client
        .get_block_with_config(
            tx_slot,
            RpcBlockConfig {
                commitment: Some(CommitmentConfig::finalized()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(block.signatures, None);
    assert_eq!(block.transactions.unwrap().len(), 1);

    // Past an accounts-cache flush (every 64 rooted slots) state and history still read back.
    for _ in 0..70 {
        node.advance_slot();
    }
    assert_eq!(
        client
            .get_balance_with_commitment(&to, CommitmentConfig::finalized())
            .await
            .unwrap()
            .value,
        1_000_000
    );
    assert_eq!(
        client.get_balance(&payer.pubkey()).await.unwrap(),
        SOL - 1_000_000 - 5000
    );
    let snapshot = node.node().chain().snapshot();
    assert!(
        snapshot
            .accounts
            .iter()
            .any(|(k, a)| *k == to && a.lamports == 1_000_000)
    );

    // Finalized transactions cannot be dropped.
    assert_eq!(
        node.drop_transaction(&sig),
        Err(ChainError::AlreadyFinalized {
            signature: sig,
            slot: tx_slot
        })
    );
}

#[tokio::test]
async fn drop_switch_rolls_back_an_unfinalized_transaction() {
    let mut config = LocalnetConfig::for_tests();
    config.finalization_lag = 10_000; // nothing finalizes during this test
    let (node, client) = start_with(config).await;
    let payer = funded(&client, SOL).await;
    let (a, b) = (Pubkey::new_unique(), Pubkey::new_unique());
    // Both use a blockhash from before their slot, so the new fork can replay `kept`.
    let blockhash = client.get_latest_blockhash().await.unwrap();
    let transfer = |to: &Pubkey, lamports: u64| {
        Transaction::new_signed_with_payer(
            &[solana_system_interface::instruction::transfer(
                &payer.pubkey(),
                to,
                lamports,
            )],
            Some(&payer.pubkey()),
            &[&payer],
            blockhash,
        )
    };
    let dropped = client
        .send_transaction(&transfer(&a, 1_000_000))
        .await
        .unwrap();
    let kept = client
        .send_transaction(&transfer(&b, 2_000_000))
        .await
        .unwrap();
    wait_for(&client, &kept, CommitmentConfig::confirmed()).await;
    let dropped_slot = client
        .get_signature_statuses(&[dropped])
        .await
        .unwrap()
        .value[0]
        .clone()
        .unwrap()
        .slot;

    let report = node.drop_transaction(&dropped).unwrap();
    assert!(report.abandoned_slots.contains(&dropped_slot));
    assert_eq!(report.replayed, vec![kept]);
    assert!(report.lost.is_empty());

    assert_eq!(
        client
            .get_signature_statuses(&[dropped])
            .await
            .unwrap()
            .value[0],
        None
    );
    assert!(
        client
            .get_transaction_with_config(
                &dropped,
                tx_config(CommitmentConfig::confirmed(), UiTransactionEncoding::Json)
            )
            .await
            .is_err()
    );
    assert_eq!(
        client
            .get_balance_with_commitment(&a, CommitmentConfig::processed())
            .await
            .unwrap()
            .value,
        0
    );
    let err = raw(
        &client,
        "getBlock",
        json!([dropped_slot, {"commitment": "confirmed"}]),
    )
    .await
    .unwrap_err();
    assert_eq!(rpc_error(&err).0, -32007, "abandoned slot reads as skipped");
    // The other transaction survives the fork switch, in a new slot.
    wait_for(&client, &kept, CommitmentConfig::confirmed()).await;
    assert_eq!(client.get_balance(&b).await.unwrap(), 2_000_000);
    let kept_slot = client.get_signature_statuses(&[kept]).await.unwrap().value[0]
        .clone()
        .unwrap()
        .slot;
    assert_eq!(kept_slot, report.new_slot);
    // And the dropped one can be resent and land again.
    let again = send(
        &client,
        &payer,
        &[&payer],
        &[solana_system_interface::instruction::transfer(
            &payer.pubkey(),
            &a,
            1_000_000,
        )],
    )
    .await;
    assert_eq!(client.get_balance(&a).await.unwrap(), 1_000_000);
    assert!(client.get_signature_statuses(&[again]).await.unwrap().value[0].is_some());

    // Same switch over RPC.
    let third = send(
        &client,
        &payer,
        &[&payer],
        &[solana_system_interface::instruction::transfer(
            &payer.pubkey(),
            &b,
            3,
        )],
    )
    .await;
    let report = raw(
        &client,
        "localnetDropTransaction",
        json!([third.to_string()]),
    )
    .await
    .unwrap();
    assert!(report["newSlot"].as_u64().unwrap() > dropped_slot);
    assert_eq!(
        client.get_signature_statuses(&[third]).await.unwrap().value[0],
        None
    );
}

#[tokio::test]
async fn websocket_subscriptions() {
    let (node, client) = start().await;
    let pubsub = PubsubClient::new(&node.ws_url()).await.unwrap();
    let payer = funded(&client, SOL).await;
    let to = Pubkey::new_unique();

    let (mut slots, _unsub_slots) = pubsub.slot_subscribe().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), slots.next())
        .await
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), slots.next())
        .await
        .unwrap()
        .unwrap();
    assert!(second.slot > first.slot);
    assert_eq!(second.parent, second.slot - 1);

    let (mut account, _unsub_account) = pubsub
        .account_subscribe(
            &to,
            Some(RpcAccountInfoConfig {
                commitment: Some(CommitmentConfig::confirmed()),
                encoding: Some(solana_account_decoder_client_types::UiAccountEncoding::Base64),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let (mut logs, _unsub_logs) = pubsub
        .logs_subscribe(
            RpcTransactionLogsFilter::Mentions(vec![to.to_string()]),
            RpcTransactionLogsConfig {
                commitment: Some(CommitmentConfig::processed()),
            },
        )
        .await
        .unwrap();

    let blockhash = client.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(
        &[solana_system_interface::instruction::transfer(
            &payer.pubkey(),
            &to,
            7_000_000,
        )],
        Some(&payer.pubkey()),
        &[&payer],
        blockhash,
    );
    let sig = tx.signatures[0];
    let (mut signature, _unsub_sig) = pubsub
        .signature_subscribe(
            &sig,
            Some(RpcSignatureSubscribeConfig {
                commitment: Some(CommitmentConfig::confirmed()),
                enable_received_notification: None,
            }),
        )
        .await
        .unwrap();
    client.send_transaction(&tx).await.unwrap();

    let note = tokio::time::timeout(Duration::from_secs(5), signature.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        note.value,
        RpcSignatureResult::ProcessedSignature(
            solana_rpc_client_api::response::ProcessedSignatureResult { err: None }
        )
    );
    let status = client.get_signature_statuses(&[sig]).await.unwrap().value[0]
        .clone()
        .unwrap();
    assert_ne!(
        status.confirmation_status,
        Some(TransactionConfirmationStatus::Processed),
        "notified at confirmed"
    );

    let log = tokio::time::timeout(Duration::from_secs(5), logs.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log.value.signature, sig.to_string());
    assert_eq!(
        log.value.logs[0],
        "Program 11111111111111111111111111111111 invoke [1]"
    );

    let acc = tokio::time::timeout(Duration::from_secs(5), account.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acc.value.lamports, 7_000_000);

    // programSubscribe: our program's config account appears when it is created.
    let (mut program, _unsub_program) = pubsub
        .program_subscribe(
            &advancia_pay::ID,
            Some(RpcProgramAccountsConfig {
                account_config: RpcAccountInfoConfig {
                    commitment: Some(CommitmentConfig::confirmed()),
                    encoding: Some(solana_account_decoder_client_types::UiAccountEncoding::Base64),
                    ..Default::default()
                },
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let init = advancia_pay::client::initialize_config(
        payer.pubkey(),
        advancia_pay::InitializeConfigArgs {
            treasury: Pubkey::new_unique(),
            settlement_authority: Pubkey::new_unique(),
            compliance_authority: Pubkey::new_unique(),
            fee_bps: 5,
        },
    );
    send(&client, &payer, &[&payer], &[init]).await;
    let created = tokio::time::timeout(Duration::from_secs(5), program.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        created.value.pubkey,
        advancia_pay::client::config_pda().to_string()
    );
    assert_eq!(created.value.account.owner, advancia_pay::ID.to_string());

    // Subscribing to an already confirmed signature notifies at once.
    let (mut late, _unsub_late) = pubsub
        .signature_subscribe(
            &sig,
            Some(RpcSignatureSubscribeConfig {
                commitment: Some(CommitmentConfig::confirmed()),
                enable_received_notification: None,
            }),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), late.next())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn history_blocks_and_queries() {
    let (node, client) = start().await;
    let payer = funded(&client, 2 * SOL).await;
    let to = Pubkey::new_unique();
    let mut sigs = Vec::new();
    for i in 0..4u64 {
        sigs.push(
            send(
                &client,
                &payer,
                &[&payer],
                &[solana_system_interface::instruction::transfer(
                    &payer.pubkey(),
                    &to,
                    1_000_000 + i,
                )],
            )
            .await,
        );
    }
    // Newest first.
    let all = client
        .get_signatures_for_address_with_config(
            &to,
            GetConfirmedSignaturesForAddress2Config {
                commitment: Some(CommitmentConfig::confirmed()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let listed: Vec<String> = all.iter().map(|s| s.signature.clone()).collect();
    let expected: Vec<String> = sigs.iter().rev().map(ToString::to_string).collect();
    assert_eq!(listed, expected);
    let page = client
        .get_signatures_for_address_with_config(
            &to,
            GetConfirmedSignaturesForAddress2Config {
                before: Some(sigs[3]),
                until: Some(sigs[0]),
                limit: Some(1),
                commitment: Some(CommitmentConfig::confirmed()),
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].signature, sigs[2].to_string());
    let bounded = client
        .get_signatures_for_address_with_config(
            &to,
            GetConfirmedSignaturesForAddress2Config {
                before: Some(sigs[3]),
                until: Some(sigs[0]),
                limit: None,
                commitment: Some(CommitmentConfig::confirmed()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        bounded
            .iter()
            .map(|s| s.signature.clone())
            .collect::<Vec<_>>(),
        vec![sigs[2].to_string(), sigs[1].to_string()]
    );

    // getBlock of the slot of the last transaction contains it.
    let slot = all[0].slot;
    let block = client
        .get_block_with_config(
            slot,
            RpcBlockConfig {
                encoding: Some(UiTransactionEncoding::Base64),
                commitment: Some(CommitmentConfig::confirmed()),
                max_supported_transaction_version: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let txs = block.transactions.unwrap();
    assert!(
        txs.iter()
            .any(|t| t.transaction.decode().map(|d| d.signatures[0]) == Some(sigs[3]))
    );
    assert_eq!(block.parent_slot, slot - 1);
    let parent = client
        .get_block_with_config(
            slot - 1,
            RpcBlockConfig {
                commitment: Some(CommitmentConfig::confirmed()),
                transaction_details: Some(
                    solana_transaction_status_client_types::TransactionDetails::None,
                ),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(parent.blockhash, block.previous_blockhash);
    assert_eq!(
        client.get_block_time(slot).await.unwrap(),
        all[0].block_time.unwrap()
    );

    // Blockhash queries, fees, rent, multiple accounts, simulation, prioritization fees.
    let (hash, last_valid) = client
        .get_latest_blockhash_with_commitment(CommitmentConfig::confirmed())
        .await
        .unwrap();
    assert!(last_valid > client.get_block_height().await.unwrap());
    assert!(
        client
            .is_blockhash_valid(&hash, CommitmentConfig::confirmed())
            .await
            .unwrap()
    );
    assert!(
        !client
            .is_blockhash_valid(
                &solana_hash::Hash::new_unique(),
                CommitmentConfig::confirmed()
            )
            .await
            .unwrap()
    );
    let message = solana_message::Message::new_with_blockhash(
        &[solana_system_interface::instruction::transfer(
            &payer.pubkey(),
            &to,
            1,
        )],
        Some(&payer.pubkey()),
        &hash,
    );
    assert_eq!(client.get_fee_for_message(&message).await.unwrap(), 5000);
    assert_eq!(
        client
            .get_minimum_balance_for_rent_exemption(0)
            .await
            .unwrap(),
        890_880
    );
    let accounts = client
        .get_multiple_accounts(&[to, Pubkey::new_unique()])
        .await
        .unwrap();
    assert_eq!(accounts[0].as_ref().unwrap().lamports, 4_000_006);
    assert!(accounts[1].is_none());
    let tx = Transaction::new(&[&payer], message, hash);
    let sim = client.simulate_transaction(&tx).await.unwrap().value;
    assert_eq!(sim.err, None);
    assert_eq!(sim.logs.unwrap().len(), 2);
    let fees = client.get_recent_prioritization_fees(&[to]).await.unwrap();
    assert!(fees.iter().any(|f| f.slot == slot));
    assert!(fees.iter().all(|f| f.prioritization_fee == 0));
    let _ = node;
}

#[tokio::test]
async fn snapshot_restores_accounts_and_slot() {
    let dir = std::env::temp_dir().join(format!("advancia-localnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.bin");
    let _ = std::fs::remove_file(&path);
    let mut config = LocalnetConfig::for_tests();
    config.snapshot_path = Some(path.clone());
    let (node, client) = start_with(config.clone()).await;
    let faucet = node.faucet().pubkey();
    let who = funded(&client, 3 * SOL).await.pubkey();
    wait_for_slot(&node).await;
    let slot = node.slot(Commitment::Confirmed);
    assert!(node.shutdown().await.is_none());
    drop(client);

    let (node, client) = start_with(config).await;
    assert_eq!(node.faucet().pubkey(), faucet);
    assert_eq!(client.get_balance(&who).await.unwrap(), 3 * SOL);
    assert!(node.slot(Commitment::Processed) > slot);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn wait_for_slot(node: &Localnet) {
    let start = node.slot(Commitment::Processed);
    while node.slot(Commitment::Confirmed) < start {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The real `@solana/web3.js` 1.x (npm) drives the node: airdrop, transfer and a call to our
/// program, each confirmed over the websocket; then the Rust client reads the call back.
/// Needs `node` and `npm` on PATH; installs web3.js once into `$CARGO_TARGET_TMPDIR/web3js`.
#[tokio::test]
async fn web3js_conformance() {
    let (node, client) = start().await;
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web3js");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web3js");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["package.json", "conformance.mjs"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    if !dir
        .join("node_modules/@solana/web3.js/package.json")
        .exists()
    {
        let status = tokio::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .await
            .expect("npm must be installed for the web3.js conformance test");
        assert!(status.success(), "npm install failed");
    }

    let admin = Keypair::new();
    let ix = advancia_pay::client::initialize_config(
        admin.pubkey(),
        advancia_pay::InitializeConfigArgs {
            treasury: Pubkey::new_unique(),
            settlement_authority: Pubkey::new_unique(),
            compliance_authority: Pubkey::new_unique(),
            fee_bps: 40,
        },
    );
    use base64::Engine;
    let spec = json!({
        "admin": admin.to_bytes().to_vec(),
        "programId": ix.program_id.to_string(),
        "keys": ix.accounts.iter().map(|m| json!({
            "pubkey": m.pubkey.to_string(), "isSigner": m.is_signer, "isWritable": m.is_writable,
        })).collect::<Vec<_>>(),
        "data": base64::prelude::BASE64_STANDARD.encode(&ix.data),
    });
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(dir.join("conformance.mjs"))
            .arg(node.rpc_url())
            .arg(spec.to_string())
            .current_dir(&dir)
            .output(),
    )
    .await
    .expect("web3.js run timed out")
    .expect("node must be installed for the web3.js conformance test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "web3.js run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["solanaCore"], "3.1.12");
    assert_eq!(result["airdropErr"], Value::Null);
    assert_eq!(result["toBalance"], 1_000_000);
    let program = advancia_pay::ID.to_string();
    let logs: Vec<String> = serde_json::from_value(result["logs"].clone()).unwrap();
    assert_eq!(logs[0], format!("Program {program} invoke [1]"));
    assert_eq!(logs.last().unwrap(), &format!("Program {program} success"));
    assert!(result["innerInstructionCount"].as_u64().unwrap() >= 2);
    let parsed_inner: Vec<String> =
        serde_json::from_value(result["parsedInnerProgramIds"].clone()).unwrap();
    assert!(parsed_inner.contains(&program));
    let preflight_logs: Vec<String> =
        serde_json::from_value(result["preflightLogs"].clone()).unwrap();
    assert_eq!(preflight_logs[0], format!("Program {program} invoke [1]"));
    assert!(
        preflight_logs.last().unwrap().contains(" failed: "),
        "{preflight_logs:?}"
    );

    // The Rust client (what the indexer uses) reads the same transaction back.
    let sig: Signature = result["programSig"].as_str().unwrap().parse().unwrap();
    let tx = client
        .get_transaction_with_config(
            &sig,
            tx_config(CommitmentConfig::confirmed(), UiTransactionEncoding::Base64),
        )
        .await
        .unwrap();
    assert_eq!(tx.slot, result["programSlot"].as_u64().unwrap());
    let decoded = tx.transaction.transaction.decode().unwrap();
    let keys = decoded.message.static_account_keys();
    let OptionSerializer::Some(inner) = tx.transaction.meta.unwrap().inner_instructions else {
        panic!()
    };
    let events: Vec<_> = inner
        .iter()
        .flat_map(|i| i.instructions.iter())
        .filter_map(|ix| match ix {
            UiInstruction::Compiled(c) => {
                let data = bs58::decode(&c.data).into_vec().unwrap();
                advancia_pay::client::decode_event(&keys[usize::from(c.program_id_index)], &data)
                    .unwrap()
            }
            UiInstruction::Parsed(_) => None,
        })
        .collect();
    assert!(
        matches!(&events[..], [advancia_pay::client::AdvanciaEvent::ConfigUpdated(e)] if e.fee_bps == 40)
    );
}

async fn post(url: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Wire shapes a non-Rust client sees, and the methods the Rust client tests above skip.
#[tokio::test]
async fn raw_json_shapes_and_remaining_methods() {
    let (node, client) = start().await;
    let url = node.rpc_url();
    let payer = funded(&client, 2 * SOL).await;

    // Batch requests, with per-item errors.
    let batch = post(
        &url,
        json!([
            {"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
            {"jsonrpc": "2.0", "id": 2, "method": "getGenesisHash"},
            {"jsonrpc": "2.0", "id": 3, "method": "getBalance", "params": ["xyz"]},
        ]),
    )
    .await;
    assert_eq!(batch[0]["result"], "ok");
    assert!(batch[1]["result"].as_str().unwrap().len() >= 32);
    assert_eq!(batch[2]["error"]["code"], -32602);
    assert_eq!(batch[2]["id"], 3);
    let parse = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(parse["error"]["code"], -32700);

    // sendTransaction in base58 (the default encoding).
    let to = Pubkey::new_unique();
    let blockhash = client.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(
        &[solana_system_interface::instruction::transfer(
            &payer.pubkey(),
            &to,
            1_000_000,
        )],
        Some(&payer.pubkey()),
        &[&payer],
        blockhash,
    );
    let wire = bs58::encode(bincode::serialize(&tx).unwrap()).into_string();
    let sent = post(
        &url,
        json!({"jsonrpc": "2.0", "id": 1, "method": "sendTransaction",
        // No encoding: base58. Preflight at the blockhash's commitment (the default is finalized).
        "params": [wire, {"preflightCommitment": "confirmed"}]}),
    )
    .await;
    assert_eq!(sent["result"], tx.signatures[0].to_string(), "{sent}");
    wait_for(&client, &tx.signatures[0], CommitmentConfig::confirmed()).await;

    // getAccountInfo: default legacy base58 string, base58 tuple with a data slice, jsonParsed
    // falling back to base64 for an unparsed account.
    let info = post(&url, json!({"jsonrpc": "2.0", "id": 1, "method": "getAccountInfo",
        "params": [TOKEN_PROGRAM.to_string(), {"encoding": "base58", "dataSlice": {"offset": 0, "length": 4}, "commitment": "confirmed"}]})).await;
    let value = &info["result"]["value"];
    assert_eq!(value["executable"], true);
    assert_eq!(
        value["owner"],
        "BPFLoader2111111111111111111111111111111111"
    );
    assert_eq!(value["data"][1], "base58");
    assert_eq!(
        bs58::decode(value["data"][0].as_str().unwrap())
            .into_vec()
            .unwrap(),
        b"\x7fELF"
    );
    assert!(info["result"]["context"]["slot"].as_u64().is_some());
    let too_big = post(
        &url,
        json!({"jsonrpc": "2.0", "id": 1, "method": "getAccountInfo",
        "params": [TOKEN_PROGRAM.to_string(), {"encoding": "base58"}]}),
    )
    .await;
    assert_eq!(too_big["error"]["code"], -32600);
    let parsed = post(
        &url,
        json!({"jsonrpc": "2.0", "id": 1, "method": "getAccountInfo",
        "params": [to.to_string(), {"encoding": "jsonParsed", "commitment": "confirmed"}]}),
    )
    .await;
    assert_eq!(parsed["result"]["value"]["data"], json!(["", "base64"]));
    assert_eq!(parsed["result"]["value"]["lamports"], 1_000_000);

    // simulateTransaction with replaceRecentBlockhash, accounts and inner instructions on a
    // program call whose blockhash is garbage.
    let ix = advancia_pay::client::initialize_config(
        payer.pubkey(),
        advancia_pay::InitializeConfigArgs {
            treasury: Pubkey::new_unique(),
            settlement_authority: Pubkey::new_unique(),
            compliance_authority: Pubkey::new_unique(),
            fee_bps: 10,
        },
    );
    let stale = Transaction::new_signed_with_payer(
        std::slice::from_ref(&ix),
        Some(&payer.pubkey()),
        &[&payer],
        solana_hash::Hash::new_unique(),
    );
    let wire = base64::Engine::encode(
        &base64::prelude::BASE64_STANDARD,
        bincode::serialize(&stale).unwrap(),
    );
    let sim = post(&url, json!({"jsonrpc": "2.0", "id": 1, "method": "simulateTransaction", "params": [wire.clone(), {
        "encoding": "base64", "replaceRecentBlockhash": true, "innerInstructions": true, "commitment": "confirmed",
        "accounts": {"encoding": "base64", "addresses": [advancia_pay::client::config_pda().to_string()]}
    }]})).await;
    let value = &sim["result"]["value"];
    assert_eq!(value["err"], Value::Null, "{sim}");
    assert!(value["replacementBlockhash"]["blockhash"].is_string());
    assert_eq!(value["accounts"][0]["owner"], advancia_pay::ID.to_string());
    assert!(
        value["innerInstructions"][0]["instructions"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    assert!(value["unitsConsumed"].as_u64().unwrap() > 0);
    // Nothing was committed.
    assert!(
        client
            .get_account_with_commitment(
                &advancia_pay::client::config_pda(),
                CommitmentConfig::processed()
            )
            .await
            .unwrap()
            .value
            .is_none()
    );
    let without = post(&url, json!({"jsonrpc": "2.0", "id": 1, "method": "simulateTransaction", "params": [wire.clone(), {"encoding": "base64"}]})).await;
    assert_eq!(without["result"]["value"]["err"], "BlockhashNotFound");
    let both = post(&url, json!({"jsonrpc": "2.0", "id": 1, "method": "simulateTransaction", "params": [wire, {"encoding": "base64", "sigVerify": true, "replaceRecentBlockhash": true}]})).await;
    assert_eq!(both["error"]["code"], -32602);

    // getTransaction jsonParsed: accountKeys objects and partially decoded instructions.
    let sig = tx.signatures[0].to_string();
    let parsed = post(
        &url,
        json!({"jsonrpc": "2.0", "id": 1, "method": "getTransaction",
        "params": [sig, {"encoding": "jsonParsed", "commitment": "confirmed"}]}),
    )
    .await;
    let message = &parsed["result"]["transaction"]["message"];
    assert_eq!(
        message["accountKeys"][0],
        json!({"pubkey": payer.pubkey().to_string(), "writable": true, "signer": true, "source": "transaction"})
    );
    assert_eq!(
        message["instructions"][0]["programId"],
        SYSTEM_PROGRAM.to_string()
    );
    assert_eq!(
        message["instructions"][0]["accounts"],
        json!([payer.pubkey().to_string(), to.to_string()])
    );
    assert_eq!(parsed["result"]["meta"]["fee"], 5000);

    // v0 transactions need maxSupportedTransactionVersion.
    let blockhash = client.get_latest_blockhash().await.unwrap();
    let v0 = solana_message::v0::Message::try_compile(
        &payer.pubkey(),
        &[solana_system_interface::instruction::transfer(
            &payer.pubkey(),
            &to,
            5,
        )],
        &[],
        blockhash,
    )
    .unwrap();
    let v0 = solana_transaction::versioned::VersionedTransaction::try_new(
        solana_message::VersionedMessage::V0(v0),
        &[&payer],
    )
    .unwrap();
    let sig = client.send_and_confirm_transaction(&v0).await.unwrap();
    let err = post(&url, json!({"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [sig.to_string(), {"commitment": "confirmed"}]})).await;
    assert_eq!(err["error"]["code"], -32015);
    let ok = post(&url, json!({"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [sig.to_string(), {"commitment": "confirmed", "maxSupportedTransactionVersion": 0}]})).await;
    assert_eq!(ok["result"]["version"], 0);
    let legacy = post(&url, json!({"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [tx.signatures[0].to_string(), {"commitment": "confirmed", "maxSupportedTransactionVersion": 0}]})).await;
    assert_eq!(legacy["result"]["version"], "legacy");

    // Slots, blocks, epoch.
    let slot = ok["result"]["slot"].as_u64().unwrap();
    let blocks = client
        .get_blocks_with_commitment(
            slot.saturating_sub(3),
            Some(slot),
            CommitmentConfig::confirmed(),
        )
        .await
        .unwrap();
    assert_eq!(blocks.last(), Some(&slot));
    let sigs = post(&url, json!({"jsonrpc": "2.0", "id": 1, "method": "getBlock", "params": [slot, {"commitment": "confirmed", "transactionDetails": "signatures", "maxSupportedTransactionVersion": 0}]})).await;
    assert!(
        sigs["result"]["signatures"]
            .as_array()
            .unwrap()
            .contains(&json!(sig.to_string()))
    );
    let epoch = client.get_epoch_info().await.unwrap();
    assert_eq!(epoch.absolute_slot, client.get_slot().await.unwrap());
    assert!(client.get_transaction_count().await.unwrap() >= 3);
    let limit = post(&url, json!({"jsonrpc": "2.0", "id": 1, "method": "getSignaturesForAddress", "params": [to.to_string(), {"limit": 1001}]})).await;
    assert_eq!(limit["error"]["code"], -32602);

    // Subscribe / unsubscribe round trip on the websocket.
    let pubsub = PubsubClient::new(&node.ws_url()).await.unwrap();
    let (mut stream, unsubscribe) = pubsub.slot_subscribe().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap();
    unsubscribe().await;
}
